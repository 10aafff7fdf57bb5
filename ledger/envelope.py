"""The event envelope and the names of every event type the lifecycle records."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .chain import canonical_json, envelope_text, export_line


@dataclass(frozen=True)
class Actor:
    """Who caused an event: kind is user, service, composio or system."""
    kind: str
    id: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id}


SYSTEM = Actor("system", "ledger")


@dataclass(frozen=True)
class NewEvent:
    """An event decided but not yet recorded (no seq, no hash yet)."""
    type: str
    data: dict
    schema: int = 1
    occurred_at: str | None = None  # defaults to the time it is recorded


class Envelope(NamedTuple):
    """A recorded event exactly as hashed; `hash` seals the rest.

    A NamedTuple, not a frozen dataclass: just as immutable, and built several times faster
    (a frozen dataclass sets each field through object.__setattr__), which is most of what
    replaying a million events costs besides the projections themselves."""
    seq: int
    stream: str
    version: int
    type: str
    schema: int
    data: dict
    meta: dict
    occurred_at: str
    recorded_at: str
    prev_hash: str
    hash: str
    # The exact canonical text stored for data/meta, so re-hashing never re-serialises.
    data_json: str = ""
    meta_json: str = ""

    @property
    def connection_id(self) -> str | None:
        prefix, _, rest = self.stream.partition(":")
        return rest if prefix == "connection" else self.data.get("connection_id")

    def as_dict(self) -> dict:
        """The export form: the hashed envelope plus its hash."""
        return {"seq": self.seq, "stream": self.stream, "version": self.version,
                "type": self.type, "schema": self.schema, "data": self.data, "meta": self.meta,
                "occurred_at": self.occurred_at, "recorded_at": self.recorded_at,
                "prev_hash": self.prev_hash, "hash": self.hash}

    def to_json_line(self) -> str:
        """One NDJSON export line, built from the stored canonical text (no re-parse)."""
        return export_line(self.hashed_text(), self.hash)

    def hashed_text(self) -> str:
        return envelope_text(
            seq=self.seq, stream=self.stream, version=self.version, type=self.type,
            schema=self.schema, data_json=self.data_json or canonical_json(self.data),
            meta_json=self.meta_json or canonical_json(self.meta),
            occurred_at=self.occurred_at, recorded_at=self.recorded_at, prev_hash=self.prev_hash)

    @classmethod
    def from_row(cls, r) -> "Envelope":
        """From a stored row (the events columns in order), keeping its canonical text."""
        from orjson import loads  # 3-4x the stdlib's parse speed; hashing still uses the stdlib
        return cls(r[0], r[1], r[2], r[3], r[4], loads(r[5]), loads(r[6]), r[7], r[8], r[9], r[10], r[5], r[6])

    @classmethod
    def from_dict(cls, d: dict) -> "Envelope":
        return cls(seq=int(d["seq"]), stream=d["stream"], version=int(d["version"]),
                   type=d["type"], schema=int(d["schema"]), data=d["data"], meta=d["meta"],
                   occurred_at=d["occurred_at"], recorded_at=d["recorded_at"],
                   prev_hash=d["prev_hash"], hash=d["hash"])


#: The events table's columns, in the order Envelope.from_row reads a row: the one list of them.
EVENT_COLUMNS = Envelope._fields[:11]



def connection_stream(connection_id: str) -> str:
    return f"connection:{connection_id}"


# Event type names (past tense). Payload schema is 1 for all of them today.
INITIATED = "connection.initiated"
ACTIVATED = "connection.activated"
FAILED = "connection.failed"
EXPIRED = "connection.expired"
OBSERVED = "connection.observed"                  # first sight of an account made elsewhere
STATUS_OBSERVED = "connection.status_observed"    # Composio reports a status we did not record
USED = "connection.used"
TRIGGER_DISABLED = "connection.trigger_disabled"
DISCONNECT_REQUESTED = "connection.disconnect_requested"
DISCONNECT_CANCELLED = "connection.disconnect_cancelled"
DISCONNECT_COMPLETED = "connection.disconnect_completed"
UPSTREAM_DISABLED = "connection.upstream_disabled"
UPSTREAM_ENABLED = "connection.upstream_enabled"
UPSTREAM_REVOKED = "connection.upstream_revoked"
UPSTREAM_DELETED = "connection.upstream_deleted"
UPSTREAM_MISSING = "connection.upstream_missing"  # Composio no longer has it (deleted out of band)
# Composio answered 404 to one of our actions: it has no such account. Nothing was done there
# (no grant revoked, nothing deleted): recorded as exactly that, never as a revoke or a delete.
UPSTREAM_NOT_FOUND = "connection.upstream_not_found"
NOT_FOUND_UPSTREAM = "not_found_upstream"         # the outcome such an action and its completion carry
PROVIDER_ACTION_FAILED = "connection.provider_action_failed"
PROVIDER_ACTION_DEAD_LETTERED = "connection.provider_action_dead_lettered"
AGENT_BOUND = "agent.bound"
AGENT_UNBOUND = "agent.unbound"
# A person asked to re-authorise a broken connection in place (Composio's refresh): INITIATED
# again under the same id; its activation is recorded as for a new connection.
RECONNECT_REQUESTED = "connection.reconnect_requested"
# The credential's expiry is near: announced once per expiry, so the app can ask for a reconnect.
EXPIRING = "connection.expiring"
ACCESS_DENIED = "security.access_denied"
WEBHOOK_UNRECOGNISED = "webhook.unrecognised"
HEAD_SIGNED = "ledger.head_signed"
OFFBOARDING_REQUESTED = "offboarding.requested"   # every connection of a person, in one request

EVENT_TYPES = frozenset(v for k, v in dict(globals()).items() if k.isupper() and isinstance(v, str) and "." in v)
