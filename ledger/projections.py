"""Projections: pure `evolve(state, envelope) -> state` functions, and replay as a fold.

The store applies these same functions inside the append's transaction; rebuild and
state_as_of apply them to the whole history. One function per projection, dispatched on the
envelope's type with a dict. An unknown type, or anything after DISCONNECTED, changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Callable, Iterable

from . import envelope as ev
from .clock import plus_seconds
from .envelope import Envelope

DISCONNECTING = "DISCONNECTING"
DISCONNECTED = "DISCONNECTED"
TERMINAL = frozenset({DISCONNECTED})
COMPOSIO_STATUSES = frozenset({"INITIALIZING", "INITIATED", "ACTIVE", "INACTIVE", "FAILED", "EXPIRED", "REVOKED"})
STATUSES = COMPOSIO_STATUSES | {DISCONNECTING, DISCONNECTED}
# While disconnecting, these upstream states still matter for what a restore goes back to.
_REMEMBERED_WHILE_DISCONNECTING = frozenset({"FAILED", "EXPIRED", "REVOKED"})
# Reports that take away access. Composio stamps its reports with its own clock (to the
# second in webhook headers), we stamp ours with ours: times less than CLOCK_SKEW_SECONDS apart
# cannot be ordered across the two. Within that window a report that takes access away wins
# over our last change (a connection Composio says has expired must not stay ACTIVE because the
# clocks differ by a second); good news never wins that way, and anything older than the
# window is stale (recorded, not applied).
_TAKES_ACCESS_AWAY = frozenset({"FAILED", "EXPIRED", "REVOKED", "INACTIVE"})
CLOCK_SKEW_SECONDS = 3


@dataclass(frozen=True)
class ConnectionState:
    """One connection as the ledger knows it. Field names are the `connections` columns."""
    connection_id: str
    tenant: str
    user_id: str | None
    toolkit: str
    status: str
    created_at: str
    updated_at: str
    status_changed_at: str
    last_seq: int
    previous_status: str | None = None
    status_reason: str | None = None
    purge_at: str | None = None
    last_used_at: str | None = None
    scopes: str | None = None              # granted scopes, space-delimited (never a token)
    expires_at: str | None = None          # when the credential expires, where Composio says
    use_count: int = 0                     # uses recorded (trigger events)
    expiry_warned_for: str | None = None   # the expires_at last announced as connection.expiring

    def row(self) -> dict:
        return dict(self.__dict__)  # flat fields: asdict's recursive deep copy is wasted work

    def changes_since(self, older: "ConnectionState") -> dict:
        """The fields whose values differ from `older`'s."""
        old = older.__dict__
        return {k: v for k, v in self.__dict__.items() if old[k] != v}

    @classmethod
    def from_row(cls, row) -> "ConnectionState":
        m = row._mapping if hasattr(row, "_mapping") else row
        return cls(**{f.name: m[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class Binding:
    """An agent's use of a connection. Field names are the `bindings` columns."""
    agent_id: str
    connection_id: str
    tenant: str
    bound_at: str
    bound_by: str

    def row(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_row(cls, row) -> "Binding":
        m = row._mapping if hasattr(row, "_mapping") else row
        return cls(**{f.name: m[f.name] for f in fields(cls)})


Bindings = tuple  # tuple[Binding, ...] sorted by agent_id: one connection's bindings


# --- connection state -------------------------------------------------------------------

def _copy(state: ConnectionState, changes: dict) -> ConnectionState:
    # dataclasses.replace re-runs __init__ through fields(): 5x slower, and replay does this
    # once per event. A frozen dataclass only forbids setattr, so copying __dict__ is safe.
    new = object.__new__(ConnectionState)
    d = new.__dict__
    d.update(state.__dict__)
    d.update(changes)
    return new


def _touch(state: ConnectionState, env: Envelope, **changes) -> ConnectionState:
    changes["updated_at"], changes["last_seq"] = env.recorded_at, env.seq
    return _copy(state, changes)


def _set_status(state: ConnectionState, env: Envelope, status: str, reason=None) -> ConnectionState:
    """An upstream status report: late reports and reports after the end change nothing."""
    changed_at = env.occurred_at
    if env.occurred_at < state.status_changed_at:
        if not (status in _TAKES_ACCESS_AWAY and state.status not in _TAKES_ACCESS_AWAY
                and plus_seconds(env.occurred_at, CLOCK_SKEW_SECONDS) > state.status_changed_at):
            return state  # older than what we already know: recorded, but it does not move us back
        changed_at = state.status_changed_at  # keep status_changed_at from going backwards
    if state.status == DISCONNECTING:
        if status in _REMEMBERED_WHILE_DISCONNECTING:
            # an unconfirmed disconnect keeps saying so: that is what decides agents' access now
            keep = state.status_reason if not upstream_confirmed(state) else reason
            return _touch(state, env, previous_status=status, status_reason=keep)
        return state
    if status == state.status and reason == state.status_reason:
        return state
    return _touch(state, env, status=status, status_reason=reason, status_changed_at=changed_at)


def _born(env: Envelope, status: str) -> ConnectionState:
    d = env.data
    return _with_facts(ConnectionState(
        connection_id=env.connection_id, tenant=d.get("tenant") or d.get("user_id") or "",
        user_id=d.get("user_id"), toolkit=d.get("toolkit") or "unknown", status=status,
        created_at=env.occurred_at, updated_at=env.recorded_at,
        status_changed_at=env.occurred_at, last_seq=env.seq), env)


def _with_facts(state: ConnectionState, env: Envelope) -> ConnectionState:
    """The credential's safe facts an event reports (`scopes`, `expires_at`), kept as they come:
    a new grant (a reconnect) brings its own, and an event without them changes nothing."""
    changes = {}
    scopes = env.data.get("scopes")
    if isinstance(scopes, list) and " ".join(scopes) != (state.scopes or ""):
        changes["scopes"] = " ".join(scopes) or None
    if env.data.get("expires_at") and env.data["expires_at"] != state.expires_at:
        changes["expires_at"] = env.data["expires_at"]
    return _touch(state, env, **changes) if changes else state


def _initiated(state, env):
    return state if state else _born(env, env.data.get("status") or "INITIATED")


def _observed(state, env):
    return state if state else _born(env, env.data.get("status") or "ACTIVE")


def _status_from_data(status: str | None = None):
    def apply(state, env):
        if state is None:
            return None
        return _with_facts(_set_status(state, env, status or env.data.get("status"), env.data.get("reason")), env)
    return apply


def _reconnect_requested(state, env):
    """Re-authorisation in place: INITIATED again under the same id (bindings untouched)."""
    if state is None or state.status == DISCONNECTING:
        return state
    return _touch(state, env, status=env.data.get("status") or "INITIATED", status_reason=None,
                  previous_status=None, status_changed_at=max(env.occurred_at, state.status_changed_at))


def _expiring(state, env):
    if state is None:
        return None
    return _touch(state, env, expiry_warned_for=env.data.get("expires_at"))


# --- whether Composio has confirmed a disconnect -------------------------------------------
# From DISCONNECT_REQUESTED until Composio confirms that agents lost access (the disable, or a
# revoke of the grant, went through; or Composio has no such account), the status_reason of a
# DISCONNECTING connection starts with UNCONFIRMED and says why: waiting, or the attempts that
# failed, or the dead-lettered action. It is the ledger's own events that say so: rebuild agrees.
UNCONFIRMED = "upstream_unconfirmed"


def upstream_confirmed(state: ConnectionState) -> bool:
    """False while a disconnect has not been confirmed by Composio (agents may still have access)."""
    return not (state.status == DISCONNECTING and (state.status_reason or "").startswith(UNCONFIRMED))


def _disconnect_requested(state, env):
    if state is None:
        return None
    return _touch(state, env, status=DISCONNECTING, previous_status=env.data.get("previous_status", state.status),
                  purge_at=env.data.get("purge_at"), status_changed_at=env.occurred_at,
                  status_reason=f"{UNCONFIRMED}: waiting for Composio to confirm that agents lost access")


def _disconnect_cancelled(state, env):
    if state is None or state.status != DISCONNECTING:
        return state
    reason = None if not upstream_confirmed(state) else state.status_reason
    return _touch(state, env, status=state.previous_status or "ACTIVE", previous_status=None,
                  purge_at=None, status_changed_at=env.occurred_at, status_reason=reason)


def _access_ended_upstream(state, env):
    if state is None or upstream_confirmed(state):
        return state
    if env.type == ev.UPSTREAM_REVOKED and env.data.get("supported") is not True:
        return state  # nothing was revoked: the grant still works until the delete
    if env.type == ev.UPSTREAM_NOT_FOUND and env.data.get("action") == "enable":
        return state
    return _touch(state, env, status_reason=None)


def _action_not_confirmed(state, env):
    if state is None or upstream_confirmed(state) or env.data.get("action") == "enable":
        return state
    d = env.data
    if env.type == ev.PROVIDER_ACTION_DEAD_LETTERED:
        why = (f"Composio never confirmed the {d.get('action')}: given up after {d.get('attempts')} attempts "
               f"({d.get('error')}); agents may still have access until an operator retries it")
    else:
        why = (f"Composio has not confirmed the {d.get('action')}: attempt {d.get('attempt')} failed "
               f"({d.get('error')}), retrying; agents may still have access")
    return _touch(state, env, status_reason=f"{UNCONFIRMED}: {why}"[:500])


def _disconnected(state, env):
    if state is None:
        return None
    return _touch(state, env, status=DISCONNECTED, status_changed_at=env.occurred_at,
                  status_reason=env.data.get("reason"))


def _used(state, env):
    if state is None:
        return None
    at = env.data.get("at") or env.occurred_at
    if state.last_used_at and at <= state.last_used_at:
        return _touch(state, env, use_count=state.use_count + 1)  # a late report is still a use
    return _touch(state, env, last_used_at=at, use_count=state.use_count + 1)


_CONNECTION_EVOLVERS: dict[str, Callable] = {
    ev.INITIATED: _initiated,
    ev.OBSERVED: _observed,
    ev.ACTIVATED: _status_from_data("ACTIVE"),
    ev.FAILED: _status_from_data("FAILED"),
    ev.EXPIRED: _status_from_data("EXPIRED"),
    ev.STATUS_OBSERVED: _status_from_data(),
    ev.DISCONNECT_REQUESTED: _disconnect_requested,
    ev.DISCONNECT_CANCELLED: _disconnect_cancelled,
    ev.DISCONNECT_COMPLETED: _disconnected,
    ev.UPSTREAM_MISSING: _disconnected,
    ev.USED: _used,
    ev.RECONNECT_REQUESTED: _reconnect_requested,
    ev.EXPIRING: _expiring,
    ev.UPSTREAM_DISABLED: _access_ended_upstream,
    ev.UPSTREAM_REVOKED: _access_ended_upstream,
    ev.UPSTREAM_NOT_FOUND: _access_ended_upstream,
    ev.PROVIDER_ACTION_FAILED: _action_not_confirmed,
    ev.PROVIDER_ACTION_DEAD_LETTERED: _action_not_confirmed,
}


def evolve_connection(state: ConnectionState | None, env: Envelope) -> ConnectionState | None:
    """The next state of one connection after `env` (pure)."""
    if state is not None and state.status in TERMINAL:
        return state
    handler = _CONNECTION_EVOLVERS.get(env.type)
    return handler(state, env) if handler else state


# --- agent bindings ----------------------------------------------------------------------

# The only event type whose projection reads `meta` (the actor who bound the agent): replay
# parses meta for these alone.
META_READERS = frozenset({ev.AGENT_BOUND})

# The only event types evolve_bindings reacts to: the store skips loading bindings otherwise.
BINDING_EVENT_TYPES = frozenset({ev.AGENT_BOUND, ev.AGENT_UNBOUND, ev.DISCONNECT_COMPLETED, ev.UPSTREAM_MISSING})


def evolve_bindings(state: tuple, env: Envelope, tenant: str = "") -> tuple:
    """One connection's bindings after `env` (pure). A finished connection keeps none."""
    if env.type == ev.AGENT_BOUND:
        agent = env.data["agent_id"]
        if any(b.agent_id == agent for b in state):
            return state
        new = Binding(agent, env.connection_id, env.data.get("tenant") or tenant,
                      env.occurred_at, env.meta.get("actor", {}).get("id", ""))
        return tuple(sorted(state + (new,), key=lambda b: b.agent_id))
    if env.type == ev.AGENT_UNBOUND:
        return tuple(b for b in state if b.agent_id != env.data["agent_id"])
    if env.type in (ev.DISCONNECT_COMPLETED, ev.UPSTREAM_MISSING):
        return ()
    return state


# --- the one fold step --------------------------------------------------------------------------

def evolve(state: ConnectionState | None, bindings: Callable[[], tuple], env: Envelope
           ) -> tuple[ConnectionState | None, tuple | None]:
    """One event's effect on its connection: the next state, and the next bindings (None when
    the event leaves them as they are: `bindings` is then never called, which spares the store a
    read). Live update (the unit of work), rebuild, state as of and the offline auditor all fold
    with this, so they cannot disagree."""
    after = evolve_connection(state, env)
    if env.type not in BINDING_EVENT_TYPES:
        return after, None
    before = bindings()
    updated = evolve_bindings(before, env, after.tenant if after else "")
    return after, (None if updated is before else updated)


# --- replay --------------------------------------------------------------------------------

@dataclass
class Projection:
    """Every projection's state in memory: what rebuild writes and state_as_of answers."""
    connections: dict = field(default_factory=dict)   # connection_id -> ConnectionState
    bindings: dict = field(default_factory=dict)      # connection_id -> tuple[Binding]

    def apply(self, env: Envelope) -> None:
        cid = env.connection_id
        if cid is None:
            return
        after, bound = evolve(self.connections.get(cid), lambda: self.bindings.get(cid, ()), env)
        if after is not None:
            self.connections[cid] = after
        if bound is not None:
            if bound:
                self.bindings[cid] = bound
            else:
                self.bindings.pop(cid, None)

    def connection_rows(self) -> list[dict]:
        return [s.row() for _, s in sorted(self.connections.items())]

    def binding_rows(self) -> list[dict]:
        return [b.row() for _, bs in sorted(self.bindings.items()) for b in bs]

    def connection_tuples(self) -> list[tuple]:
        """connection_rows as tuples in column order (what rebuild compares and inserts)."""
        return [_connection_tuple(s) for _, s in sorted(self.connections.items())]

    def binding_tuples(self) -> list[tuple]:
        return [_binding_tuple(b) for _, bs in sorted(self.bindings.items()) for b in bs]

    def as_json(self) -> dict:
        """The state as an auditor reads it: connections with their bound agents."""
        out = {}
        for cid, state in sorted(self.connections.items()):
            row = state.row()
            row["agents"] = [b.agent_id for b in self.bindings.get(cid, ())]
            out[cid] = row
        return out


CONNECTION_COLUMNS = tuple(f.name for f in fields(ConnectionState))
BINDING_COLUMNS = tuple(f.name for f in fields(Binding))
_connection_tuple = attrgetter(*CONNECTION_COLUMNS)
_binding_tuple = attrgetter(*BINDING_COLUMNS)


def replay(envelopes: Iterable[Envelope], projection: Projection | None = None) -> Projection:
    """Fold the history into a Projection."""
    projection = projection or Projection()
    for env in envelopes:
        projection.apply(env)
    return projection
