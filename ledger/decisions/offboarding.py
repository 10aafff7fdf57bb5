"""Offboarding a person: every live connection disconnected in one decision (each exactly as a
single forced disconnect decides it), and, from the events that follow, each connection's
outcome. Pure: the states, bindings and events are passed in, and so is `now`."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .. import envelope as ev
from ..commands import RequestDisconnect
from ..envelope import Envelope, NewEvent
from ..projections import DISCONNECTED, DISCONNECTING, ConnectionState
from .connection import decide_disconnect

STREAM_PREFIX = "offboarding:"
_STREAM_WIDTH = 200   # the events.stream column

# The events after the request that settle a connection's outcome (and that a receipt cites).
OUTCOME_EVENTS = frozenset({ev.UPSTREAM_REVOKED, ev.UPSTREAM_NOT_FOUND, ev.DISCONNECT_COMPLETED, ev.UPSTREAM_MISSING,
                            ev.PROVIDER_ACTION_DEAD_LETTERED, ev.DISCONNECT_CANCELLED})


def person_stream(tenant: str, user_id: str) -> str:
    """The stream of one person's offboardings in one tenant: its version orders them, and two
    concurrent requests for the same person collide on it instead of both disconnecting."""
    name = f"{STREAM_PREFIX}{tenant}:{user_id}"
    if len(name) <= _STREAM_WIDTH:
        return name
    return STREAM_PREFIX + "sha256:" + hashlib.sha256(f"{tenant}\n{user_id}".encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Cited:
    """An event a receipt points at: anyone with the export can find it at `seq` with `hash`."""
    type: str
    seq: int
    hash: str

    @classmethod
    def of(cls, env: Envelope) -> "Cited":
        return cls(env.type, env.seq, env.hash)


@dataclass(frozen=True)
class ConnectionOutcome:
    connection_id: str
    toolkit: str
    status: str
    outcome: str         # pending | revoked | not_revocable | not_found_upstream | failed | restored | already_disconnected
    revoked: tuple = ()  # the kinds of tokens revoked
    reason: str | None = None
    at: str | None = None
    events: tuple = ()   # Cited

    @property
    def final(self) -> bool:
        return self.outcome != "pending"


@dataclass(frozen=True)
class OffboardingView:
    """One offboarding as the ledger's events tell it: what was asked, and where each connection is."""
    offboarding_id: str
    tenant: str
    user_id: str
    immediate: bool
    requested_at: str
    requested: Cited
    connections: tuple = ()      # ConnectionOutcome, in the order they were offboarded
    receipt: dict | None = None

    @property
    def completed(self) -> bool:
        return all(c.final for c in self.connections)


@dataclass(frozen=True)
class OffboardingDecision:
    requested: NewEvent
    disconnects: tuple      # (connection_id, Decision), each exactly a forced single disconnect's


def decide_offboarding(offboarding_id: str, tenant: str, user_id: str, targets: list, immediate: bool,
                       now: str, grace_seconds: int, requested_by: dict) -> OffboardingDecision:
    """`targets`: [(ConnectionState, bindings)] of the person's connections not yet DISCONNECTED.
    Agents are unbound (force is implied: the person is leaving); a connection already being
    disconnected keeps its own purge (a repeat of a disconnect changes nothing)."""
    disconnects = tuple((state.connection_id, decide_disconnect(
        state, bound, RequestDisconnect(state.connection_id, force=True, immediate=immediate), now, grace_seconds))
        for state, bound in targets)
    requested = NewEvent(ev.OFFBOARDING_REQUESTED, {
        "offboarding_id": offboarding_id, "tenant": tenant, "user_id": user_id, "immediate": immediate,
        "connection_ids": [cid for cid, _ in disconnects], "requested_by": requested_by})
    return OffboardingDecision(requested, disconnects)


def decide_outcome(state: ConnectionState | None, cid: str, after: list[Envelope]) -> ConnectionOutcome:
    """Where one offboarded connection stands, from its state and its OUTCOME_EVENTS recorded
    after the offboarding was requested (in seq order)."""
    if state is None:  # cannot happen for a connection the ledger offboarded; said, not hidden
        return ConnectionOutcome(cid, "unknown", "UNKNOWN", "pending", reason="the ledger has no such connection")
    base = dict(connection_id=cid, toolkit=state.toolkit, status=state.status)
    last = {e.type: e for e in after}
    if state.status == DISCONNECTED:
        done = last.get(ev.DISCONNECT_COMPLETED) or last.get(ev.UPSTREAM_MISSING)
        revoke = last.get(ev.UPSTREAM_REVOKED)
        if done is None:
            return ConnectionOutcome(**base, outcome="already_disconnected", at=state.status_changed_at,
                                     reason="disconnected before the offboarding was requested")
        cited = tuple(Cited.of(e) for e in (revoke, done) if e is not None)
        if revoke is not None and revoke.data.get("supported") is True:
            return ConnectionOutcome(**base, outcome="revoked", revoked=tuple(revoke.data.get("revoked") or ()),
                                     at=done.recorded_at, events=cited)
        if revoke is not None:
            return ConnectionOutcome(**base, outcome="not_revocable", at=done.recorded_at, events=cited,
                                     reason=revoke.data.get("reason") or "the toolkit does not support revoke")
        found = last.get(ev.UPSTREAM_NOT_FOUND)
        cited = tuple(Cited.of(e) for e in (found, done) if e is not None)
        return ConnectionOutcome(**base, outcome="not_found_upstream", at=done.recorded_at, events=cited,
                                 reason=done.data.get("reason") or "Composio no longer had the account")
    dead = last.get(ev.PROVIDER_ACTION_DEAD_LETTERED)
    if state.status == DISCONNECTING and dead is not None and dead.data.get("action") in ("revoke", "delete"):
        return ConnectionOutcome(**base, outcome="failed", at=dead.recorded_at, events=(Cited.of(dead),),
                                 reason=f"Composio never confirmed the {dead.data.get('action')}: given up after "
                                        f"{dead.data.get('attempts')} attempts ({dead.data.get('error')})")
    cancelled = last.get(ev.DISCONNECT_CANCELLED)
    if state.status != DISCONNECTING and cancelled is not None:
        return ConnectionOutcome(**base, outcome="restored", at=cancelled.recorded_at, events=(Cited.of(cancelled),),
                                 reason="the disconnect was undone within the grace period")
    waiting = f"waiting for the purge at {state.purge_at}" if state.purge_at else "waiting for Composio"
    return ConnectionOutcome(**base, outcome="pending", reason=state.status_reason or waiting)


def still_open(states: list[ConnectionState | None]) -> bool:
    """An offboarding is open while any of its connections is still being disconnected."""
    return any(s is not None and s.status == DISCONNECTING for s in states)
