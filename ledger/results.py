"""What the connection use cases return: domain values (frozen, snake_case), never HTTP bodies.

The web turns each into its answer through the pydantic model of the same shape (web/schemas),
which also writes /openapi.json; the wire's camelCase names are the web's business alone.
An idempotent command stores its result with `dumps` and gives it again, rebuilt by `loads`,
so a repeated request gets the same value and therefore the same bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields

from .credential_facts import split_scopes
from .projections import ConnectionState, upstream_confirmed


@dataclass(frozen=True)
class ConnectionView:
    """A connection as its owner sees it: the projection's state, its agents, and whether
    Composio has confirmed a disconnect."""
    connection_id: str
    toolkit: str
    status: str
    user_id: str | None
    created_at: str
    updated_at: str
    purge_at: str | None
    last_used_at: str | None
    status_reason: str | None
    upstream_confirmed: bool
    agents: tuple[str, ...] = ()
    scopes: tuple[str, ...] | None = None   # granted scopes, where Composio reports them
    expires_at: str | None = None           # the credential's expiry, where Composio reports it
    use_count: int = 0

    @classmethod
    def of(cls, state: ConnectionState, bound: tuple = ()) -> "ConnectionView":
        scopes = split_scopes(state.scopes)
        return cls(state.connection_id, state.toolkit, state.status, state.user_id, state.created_at,
                   state.updated_at, state.purge_at, state.last_used_at, state.status_reason,
                   upstream_confirmed(state), tuple(b.agent_id for b in bound),
                   tuple(scopes) if scopes is not None else None, state.expires_at, state.use_count)


@dataclass(frozen=True)
class Started:
    """A connection just created at Composio: where to send the person for OAuth, if anywhere."""
    connection_id: str
    status: str
    redirect_url: str | None


@dataclass(frozen=True)
class Disconnected:
    """Where a disconnect got to. `upstream_confirmed` is None until the command has re-read the
    connection after its inline relay (a stored result is re-read on every repeat)."""
    connection_id: str
    status: str
    purge_at: str | None
    warnings: tuple[str, ...] = ()
    upstream_confirmed: bool | None = None


@dataclass(frozen=True)
class WouldDisconnect:
    """What a disconnect would do (a dry run changes nothing, so `status` is the current one)."""
    connection_id: str
    status: str
    current_status: str
    agents: tuple[str, ...]
    can_revoke: bool | None
    requires_force: bool
    would_succeed: bool
    would_status: str | None
    would_error: str | None
    purge_at: str | None
    warnings: tuple[str, ...] = ()
    dry_run: bool = True


@dataclass(frozen=True)
class Preflight:
    """Which of the toolkits asked about are ACTIVE; `pending` = `initiated` + `missing`."""
    connected: tuple[str, ...]
    pending: tuple[str, ...]
    initiated: tuple[str, ...]
    missing: tuple[str, ...]
    all_ready: bool


# The results an idempotency record may hold, by the name it is stored under.
@dataclass(frozen=True)
class ReconnectLink:
    """What a reconnect answers: the same connection, its status and where to re-authorise."""
    connection_id: str
    status: str
    redirect_url: str | None


@dataclass(frozen=True)
class OffboardingRef:
    """What an offboarding request's Idempotency-Key gives again: which offboarding it made (its
    progress is read anew from the chain on every repeat)."""
    offboarding_id: str


_STORED = {cls.__name__: cls for cls in (ConnectionView, Started, Disconnected, WouldDisconnect, ReconnectLink,
                                         OffboardingRef)}


def dumps(result) -> str:
    """The idempotency record of a command's result."""
    kind = type(result).__name__
    if _STORED.get(kind) is not type(result):
        raise TypeError(f"not a storable result: {kind}")
    return json.dumps({"result": kind, "fields": {f.name: getattr(result, f.name) for f in fields(result)}},
                      sort_keys=True, separators=(",", ":"))


def loads(text: str):
    """The result `dumps` stored, rebuilt (lists back to tuples). A record written before results
    were stored this way is the answer body itself: given back as that dict."""
    record = json.loads(text)
    if not (isinstance(record, dict) and set(record) == {"result", "fields"} and record["result"] in _STORED):
        return record
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in record["fields"].items()}
    return _STORED[record["result"]](**values)
