"""Reading connections for their owner: one, a list, preflight, history, an agent's.

Someone else's connection is answered exactly like a missing one, and the attempt is recorded as
a security event. A connection the ledger never saw is looked up at Composio (bounded, see
UnknownIdLookups) and recorded as observed when it is the caller's.
"""
from __future__ import annotations

import collections
import logging
import threading
import time

from .. import decisions
from .. import envelope as ev
from .. import errors
from ..commands import Caller
from ..credential_facts import credential_data
from ..envelope import NewEvent, connection_stream
from ..projections import ConnectionState
from ..results import ConnectionView, Preflight
from ..service import make_meta

log = logging.getLogger("ledger.connections")
SECURITY_STREAM = "security"


class UnknownIdLookups:
    """Bounds what ids the ledger never saw cost in calls to Composio (each is a GET there):
    at most `per_minute` such lookups per caller per minute, and an id Composio said does not
    exist is not asked about again for `not_found_seconds`. Beyond either, the answer is the
    same 404 without asking. Per process (each worker keeps its own), in memory, bounded."""

    MAX_ENTRIES = 10_000

    def __init__(self, per_minute: int, not_found_seconds: float):
        self.per_minute, self.not_found_seconds = per_minute, not_found_seconds
        self._lock = threading.Lock()
        self._recent: dict[str, collections.deque] = {}      # caller -> monotonic times of lookups
        self._missing: collections.OrderedDict = collections.OrderedDict()  # id -> until

    def may_ask(self, caller: Caller, cid: str) -> bool:
        now = time.monotonic()
        who = f"{caller.kind}:{caller.tenant}:{caller.id}"
        with self._lock:
            until = self._missing.get(cid)
            if until is not None:
                if until > now:
                    return False
                del self._missing[cid]
            recent = self._recent.get(who)
            if recent is None:
                if len(self._recent) >= self.MAX_ENTRIES:
                    self._recent.pop(next(iter(self._recent)))
                recent = self._recent[who] = collections.deque()
            while recent and recent[0] <= now - 60.0:
                recent.popleft()
            if len(recent) >= self.per_minute:
                log.warning("unknown-id lookups: %s is over %d a minute; answering 404 without asking Composio",
                            who, self.per_minute)
                return False
            recent.append(now)
            return True

    def not_found(self, cid: str) -> None:
        with self._lock:
            self._missing[cid] = time.monotonic() + self.not_found_seconds
            self._missing.move_to_end(cid)
            while len(self._missing) > self.MAX_ENTRIES:
                self._missing.popitem(last=False)


class ConnectionReads:
    """The read use cases (and the security events and observations reading can record)."""

    ledger = gateway = lookups = None
    poll_interval: float = 3.0

    def _read_one(self, cid: str) -> tuple[ConnectionState | None, tuple]:
        return self.ledger.store.read_connection(cid)

    def _record_denied(self, txn, caller: Caller, cid: str, action: str, trace_id) -> None:
        log.warning("access denied: %s %s tried %s on %s", caller.kind, caller.id, action, cid)
        txn.append(SECURITY_STREAM, [NewEvent(ev.ACCESS_DENIED, {
            "connection_id": cid, "action": action,
            "caller": {"kind": caller.kind, "id": caller.id, "tenant": caller.tenant}})],
            meta=make_meta(caller.actor, caller.tenant, trace_id))

    def deny(self, caller: Caller, cid: str, action: str, trace_id=None) -> errors.NotFound:
        """Record the attempt and return the NotFound to raise (the same a missing one gets)."""
        with self.ledger.transaction() as txn:
            self._record_denied(txn, caller, cid, action, trace_id)
        return errors.NotFound("No such connection.")

    def visible(self, caller: Caller, cid: str, action: str, trace_id=None) -> tuple[ConnectionState, tuple]:
        """The connection and its bindings if the caller may act on it; else NotFound.

        A connection the ledger never saw is looked up at Composio: if its owner is the
        caller it is recorded as observed, if it is someone else's the attempt is recorded."""
        state, bound = self._read_one(cid)
        if state is None:
            state = self._observe(caller, cid, action, trace_id)
        elif not decisions.may_act(state, caller):
            raise self.deny(caller, cid, action, trace_id)
        return state, bound

    def observe_unseen(self, caller: Caller, cid: str, action: str, trace_id=None) -> None:
        """A connection the ledger never saw: look it up at Composio and record it as observed
        if it is the caller's (else NotFound, and the attempt recorded). Known ones: nothing."""
        if self._read_one(cid)[0] is None:
            self._observe(caller, cid, action, trace_id)

    def _observe(self, caller: Caller, cid: str, action: str, trace_id) -> ConnectionState:
        if not self.lookups.may_ask(caller, cid):
            raise errors.NotFound("No such connection.")
        try:
            account = self.gateway.get(cid)
        except errors.UpstreamNotFound:
            self.lookups.not_found(cid)
            raise errors.NotFound("No such connection.") from None
        if caller.kind != "user" or account.user_id != caller.id:
            raise self.deny(caller, cid, action, trace_id)
        seen = decisions.observed(cid, caller.id, caller.tenant, account.toolkit, account.status)
        seen = NewEvent(seen.type, {**seen.data, **credential_data(account)}, occurred_at=seen.occurred_at)
        with self.ledger.transaction() as txn:
            if txn.connection(cid) is None:
                txn.append(connection_stream(cid), [seen], meta=make_meta(caller.actor, caller.tenant, trace_id))
            state = txn.connection(cid)
        return state

    def get(self, caller: Caller, cid: str, trace_id=None) -> ConnectionView:
        """One connection; while it waits for OAuth, Composio is asked (rate-bound) for news."""
        state, bound = self.visible(caller, cid, "read", trace_id)
        if state.status in ("INITIATED", "INITIALIZING") and self._poll_due(cid):
            state = self._poll(caller, state, trace_id)
        return ConnectionView.of(state, bound)

    def _poll_due(self, cid: str) -> bool:
        with self.ledger.transaction() as txn:
            return txn.take_poll_turn(cid, self.poll_interval)

    def _poll(self, caller: Caller, state: ConnectionState, trace_id) -> ConnectionState:
        try:
            account = self.gateway.get(state.connection_id)
        except errors.UpstreamError as exc:
            log.info("poll of %s failed: %s", state.connection_id, exc.code)
            return state
        if account.status == state.status:
            return state
        kind = {"ACTIVE": ev.ACTIVATED, "FAILED": ev.FAILED}.get(account.status, ev.STATUS_OBSERVED)
        data = {"connection_id": state.connection_id, "status": account.status, **credential_data(account)}
        if account.status_reason:
            data["reason"] = account.status_reason[:200]
        with self.ledger.transaction() as txn:
            current = txn.connection(state.connection_id)
            if current is not None and current.status == state.status:
                txn.append(connection_stream(state.connection_id), [NewEvent(kind, data)],
                           meta=make_meta(caller.actor, caller.tenant, trace_id))
            state = txn.connection(state.connection_id)
        return state

    def _mine(self, caller: Caller, **filters) -> list[ConnectionView]:
        """The caller's connections (an admin key: its tenant's) with their agents."""
        who = {"tenant": caller.tenant} if caller.admin else {"user_id": caller.id}
        return [ConnectionView.of(state, bound)
                for state, bound in self.ledger.store.connections_with_agents(**who, **filters)]

    def list(self, caller: Caller, status: str | None = None, toolkit: str | None = None) -> list[ConnectionView]:
        """The caller's connections from the projection, with their agents (two queries)."""
        return self._mine(caller, status=status.upper() if status else None,
                          toolkit=toolkit.lower() if toolkit else None)

    def preflight(self, caller: Caller, toolkits: list[str]) -> Preflight:
        """`pending` is every required toolkit not ACTIVE (a frontend offers Connect for each);
        `initiated` (OAuth under way) and `missing` (nothing usable) split it finer."""
        mine = self.list(caller)
        # Toolkit slugs are case-insensitive: "notion" and "NOTION" are one toolkit, named once
        # (in the order first asked), or a frontend would offer Connect for it twice.
        wanted = list(dict.fromkeys(t.lower() for t in toolkits))
        active = {c.toolkit for c in mine if c.status == "ACTIVE"}
        started = {c.toolkit for c in mine if c.status in ("INITIATED", "INITIALIZING")} - active
        return Preflight(connected=tuple(t for t in wanted if t in active),
                         pending=tuple(t for t in wanted if t not in active),
                         initiated=tuple(t for t in wanted if t in started),
                         missing=tuple(t for t in wanted if t not in active and t not in started),
                         all_ready=all(t in active for t in wanted))

    def history(self, caller: Caller, cid: str, trace_id=None) -> list[dict]:
        """The connection's own events, for its owner."""
        state, _ = self._read_one(cid)
        if state is None:
            raise errors.NotFound("No such connection.")
        if not decisions.may_act(state, caller):
            raise self.deny(caller, cid, "history", trace_id)
        return [e.as_dict() for e in self.ledger.read_stream(connection_stream(cid))]

    def agent_connections(self, caller: Caller, agent_id: str) -> list[ConnectionView]:
        """The caller's connections bound to one agent, each with all its agents (two queries)."""
        return self._mine(caller, agent_id=agent_id)
