"""Connection commands and reads: ownership checks, decisions, Composio calls, outbox rows.

Every write runs in one store transaction: events, projection rows, outbox rows and the
idempotency record commit together or not at all. Someone else's connection is answered
exactly like a missing one, and the attempt is recorded as a security event.
"""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import threading
import time

from . import decisions
from . import envelope as ev
from . import errors
from .commands import (BindAgent, Caller, RequestDisconnect, RestoreConnection, StartConnection,
                       UnbindAgent)
from .clock import plus_seconds
from .envelope import NewEvent, connection_stream
from .projections import DISCONNECTING, ConnectionState, upstream_confirmed
from .service import make_meta
from .tables import bindings, connections
from .txn import Prefetch, fitted_key

log = logging.getLogger("ledger.connections")
# A reservation older than this belongs to a request that died (Composio's timeout is far shorter).
ABANDONED_AFTER_SECONDS = 120
SECURITY_STREAM = "security"


class Denied(Exception):
    """Internal: the caller may not see this connection (answered as NotFound after commit)."""


def _scoped_key(caller: Caller, key: str | None) -> str | None:
    """A client's Idempotency-Key, scoped to the caller (two callers may pick the same key)."""
    return fitted_key("http", f"{caller.kind}:{caller.id}:{key}") if key else None


def _fingerprint(cmd) -> str:
    return hashlib.sha256(repr(cmd).encode()).hexdigest()[:32]


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


class Connections:
    """The connection use cases over a Ledger and a ComposioGateway."""

    def __init__(self, ledger, gateway, *, grace_seconds: int = 604800, poll_interval: float = 3.0,
                 after_commit=None, unknown_lookups_per_minute: int = 20, not_found_seconds: float = 30.0,
                 relay=None):
        self.ledger, self.gateway = ledger, gateway
        self.grace_seconds, self.poll_interval = grace_seconds, poll_interval
        self.after_commit = after_commit or (lambda connection_id: None)
        self.lookups = UnknownIdLookups(unknown_lookups_per_minute, not_found_seconds)
        # The inline relay (after_commit runs it): a write claims the actions it makes due in
        # its own transaction and hands them to it, so the relay needs no claim transaction.
        self.relay = relay

    # -- the write path ----------------------------------------------------------------------
    def _write(self, caller: Caller, cid: str | None, decide, *, trace_id=None, idempotency_key=None,
               fingerprint: str = "", action: str = "") -> dict:
        """load -> authorize -> decide -> append + outbox + idempotency -> commit -> signal."""
        denied, handed = False, []
        idem = _scoped_key(caller, idempotency_key)
        wanted = Prefetch(streams=(connection_stream(cid),) if cid else (), connections=(cid,),
                          bindings=(cid,), keys=(idem,))
        with self.ledger.transaction(prefetch=wanted) as txn:
            if idem:
                prior = txn.idempotent_result(idem)
                if prior is not None:
                    if prior["scope"] != fingerprint:
                        raise errors.IdempotencyKeyReused()
                    return json.loads(prior["response"])
            state = txn.connection(cid) if cid else None
            if cid and state is None:
                raise errors.NotFound("No such connection.")
            if cid and not decisions.may_act(state, caller):
                self._record_denied(txn, caller, cid, action, trace_id)
                denied = True
                answer = None
            else:
                decision = decide(txn, state)
                answer = self._apply(txn, caller, cid, decision, make_meta(
                    caller.actor, caller.tenant, trace_id, idempotency_key=idempotency_key))
                if decision.actions and self.relay is not None:
                    handed = self.relay.claim_in_request(txn, cid)
                if idem:
                    txn.remember(idem, fingerprint, [], json.dumps(answer))
        if denied:
            raise errors.NotFound("No such connection.")
        if handed:
            self.relay.hand_over(handed)
        if txn.recorded and cid:
            self.after_commit(cid)
        return answer

    def _apply(self, txn, caller, cid, decision, meta: dict) -> dict:
        if decision.events:
            envs = txn.append(connection_stream(cid), list(decision.events), meta=meta)
            for act in decision.actions:
                txn.enqueue(cid, act.kind, act.not_before, envs[-1].seq)
        return decision.answer if decision.answer is not None else self._public(txn.connection(cid), txn.bindings_of(cid))

    def _record_denied(self, txn, caller: Caller, cid: str, action: str, trace_id) -> None:
        log.warning("access denied: %s %s tried %s on %s", caller.kind, caller.id, action, cid)
        txn.append(SECURITY_STREAM, [NewEvent(ev.ACCESS_DENIED, {
            "connection_id": cid, "action": action,
            "caller": {"kind": caller.kind, "id": caller.id, "tenant": caller.tenant}})],
            meta=make_meta(caller.actor, caller.tenant, trace_id))

    # -- commands ----------------------------------------------------------------------------
    def disconnect(self, caller: Caller, cmd: RequestDisconnect, **kw) -> dict:
        def decide(txn, state):
            can_revoke = self.revocable(txn.conn, state.toolkit) if cmd.dry_run else None
            return decisions.decide_disconnect(state, txn.bindings_of(state.connection_id), cmd,
                                               txn.now, self.grace_seconds, can_revoke)
        if cmd.dry_run:
            kw.pop("idempotency_key", None)
        answer = self._write(caller, cmd.connection_id, decide, fingerprint=_fingerprint(cmd),
                             action="disconnect", **kw)
        if not cmd.dry_run and answer.get("status") == DISCONNECTING:
            # The inline relay ran right after the commit (the disable, or an immediate purge):
            # answer where it got to, and whether Composio has confirmed it.
            state, _ = self._read_one(cmd.connection_id)
            if state is not None:
                now = decisions.disconnect_answer(state)
                answer = {**answer, "status": state.status, "upstreamConfirmed": now["upstreamConfirmed"],
                          "warnings": list(answer.get("warnings", [])) + now["warnings"]}
        return answer

    def restore(self, caller: Caller, cmd: RestoreConnection, **kw) -> dict:
        def decide(txn, state):
            # Locked (PostgreSQL): a relay claiming the purge right now either committed its claim
            # before this read (seen below: refused) or skips these rows (SKIP LOCKED) until the
            # cancellation has committed. Restore and purge never both happen.
            open_actions = txn.open_actions(state.connection_id, lock=True)
            if any(a.action in ("revoke", "delete") and a.claimed_until and a.claimed_until > txn.now
                   for a in open_actions):
                raise errors.GracePeriodExpired("The purge is already under way.")
            # A disable never tried has not reached Composio: cancel it, nothing to re-enable. One
            # that was tried (even if it failed: a timeout may have landed) is answered by an enable.
            unsent = [a for a in open_actions if a.action == "disable" and not a.claimed_by and not a.attempts]
            decision = decisions.decide_restore(state, txn.now, disable_unsent=bool(unsent))
            for a in open_actions:
                if a.action in ("revoke", "delete") or a in unsent:
                    txn.set_action(a.id, status="cancelled", last_error="cancelled by restore")
            return decision
        return self._write(caller, cmd.connection_id, decide, fingerprint=_fingerprint(cmd),
                           action="restore", **kw)

    def bind(self, caller: Caller, cmd: BindAgent, **kw) -> dict:
        return self._write(caller, cmd.connection_id,
                           lambda txn, s: decisions.decide_bind(s, txn.bindings_of(s.connection_id), cmd),
                           fingerprint=_fingerprint(cmd), action="bind", **kw)

    def unbind(self, caller: Caller, cmd: UnbindAgent, **kw) -> dict:
        return self._write(caller, cmd.connection_id,
                           lambda txn, s: decisions.decide_unbind(s, txn.bindings_of(s.connection_id), cmd),
                           fingerprint=_fingerprint(cmd), action="unbind", **kw)

    def start(self, caller: Caller, cmd: StartConnection, *, trace_id=None, idempotency_key=None) -> dict:
        """Create the account at Composio, then record it; a Composio failure records nothing.

        With an Idempotency-Key the key is reserved before Composio is called, so a retry (or a
        concurrent duplicate) never creates a second account: it gets the first answer, or 409
        while the first is still in flight."""
        if caller.kind != "user":
            raise errors.InvalidState("Only a person can start a connection of their own.")
        idem = _scoped_key(caller, idempotency_key)
        fingerprint = _fingerprint(cmd)
        if idem:
            prior = self._reserve(idem, fingerprint)
            if prior is not None:
                return prior
        try:
            link = self.gateway.initiate(caller.id, cmd.toolkit, cmd.callback_url, cmd.credentials)
        except BaseException:
            if idem:
                try:
                    with self.ledger.transaction() as txn:
                        txn.release_key(idem)
                except errors.LedgerError:  # the database is failing too: the reservation lapses
                    log.warning("could not release idempotency key after a failed start", exc_info=True)
            raise
        data = {"connection_id": link.id, "user_id": caller.id, "tenant": caller.tenant,
                "toolkit": cmd.toolkit.lower(), "status": link.status}
        answer = {"connectionId": link.id, "status": link.status, "redirectUrl": link.redirect_url}
        with self.ledger.transaction() as txn:
            envs = txn.append(connection_stream(link.id), [NewEvent(ev.INITIATED, data)],
                              meta=make_meta(caller.actor, caller.tenant, trace_id, idempotency_key=idempotency_key))
            if idem:
                txn.complete_key(idem, envs, json.dumps(answer))
        return answer

    def _reserve(self, idem: str, fingerprint: str) -> dict | None:
        """Reserve an idempotency key; the first answer if it was used before."""
        with self.ledger.transaction(prefetch=Prefetch(keys=(idem,))) as txn:
            prior = txn.idempotent_result(idem)
            if prior is None:
                txn.remember(idem, fingerprint, [], None)
                return None
            if prior["scope"] != fingerprint:
                raise errors.IdempotencyKeyReused()
            if prior["response"] is not None:
                return json.loads(prior["response"])
            if not txn.take_over_key(idem, older_than=plus_seconds(txn.now, -ABANDONED_AFTER_SECONDS)):
                raise errors.IdempotencyKeyInUse()
        return None  # a reservation abandoned by a crashed request: ours now

    # -- reads -------------------------------------------------------------------------------
    @staticmethod
    def revocable(conn, toolkit: str) -> bool | None:
        """Whether the provider's grant can be revoked for this toolkit, as the last purge of one
        of its connections found out (Composio answers 400 when it cannot); None if never tried.
        Composio publishes no such list, and asking would mean revoking."""
        from sqlalchemy import literal, select
        from .tables import events
        streams = select(literal("connection:") + connections.c.connection_id).where(connections.c.toolkit == toolkit)
        row = conn.execute(select(events.c.data).where(events.c.type == ev.UPSTREAM_REVOKED, events.c.stream.in_(streams))
                           .order_by(events.c.seq.desc()).limit(1)).first()
        return json.loads(row[0]).get("supported") if row else None

    @staticmethod
    def _public(state: ConnectionState, bound: tuple = ()) -> dict:
        return {"connectionId": state.connection_id, "toolkit": state.toolkit, "status": state.status,
                "userId": state.user_id, "createdAt": state.created_at, "updatedAt": state.updated_at,
                "purgeAt": state.purge_at, "lastUsedAt": state.last_used_at,
                "statusReason": state.status_reason, "upstreamConfirmed": upstream_confirmed(state),
                "agents": [b.agent_id for b in bound]}

    def _read_one(self, cid: str) -> tuple[ConnectionState | None, tuple]:
        return self.ledger.store.read_connection(cid)

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
        data = {"connection_id": cid, "user_id": caller.id, "tenant": caller.tenant,
                "toolkit": account.toolkit, "status": account.status}
        with self.ledger.transaction() as txn:
            if txn.connection(cid) is None:
                txn.append(connection_stream(cid), [NewEvent(ev.OBSERVED, data)],
                           meta=make_meta(caller.actor, caller.tenant, trace_id))
            state = txn.connection(cid)
        return state

    def get(self, caller: Caller, cid: str, trace_id=None) -> dict:
        """One connection; while it waits for OAuth, Composio is asked (rate-bound) for news."""
        state, bound = self.visible(caller, cid, "read", trace_id)
        if state.status in ("INITIATED", "INITIALIZING") and self._poll_due(cid):
            state = self._poll(caller, state, trace_id)
        return self._public(state, bound)

    def _poll_due(self, cid: str) -> bool:
        from sqlalchemy import insert, select, update
        from .clock import plus_seconds
        from .tables import polls
        with self.ledger.transaction() as txn:
            row = txn.conn.execute(select(polls.c.polled_at).where(polls.c.connection_id == cid)).first()
            if row is not None and plus_seconds(row[0], self.poll_interval) > txn.now:
                return False
            if row is None:
                txn.conn.execute(insert(polls).values(connection_id=cid, polled_at=txn.now))
            else:
                txn.conn.execute(update(polls).where(polls.c.connection_id == cid).values(polled_at=txn.now))
        return True

    def _poll(self, caller: Caller, state: ConnectionState, trace_id) -> ConnectionState:
        try:
            account = self.gateway.get(state.connection_id)
        except errors.UpstreamError as exc:
            log.info("poll of %s failed: %s", state.connection_id, exc.code)
            return state
        if account.status == state.status:
            return state
        kind = {"ACTIVE": ev.ACTIVATED, "FAILED": ev.FAILED}.get(account.status, ev.STATUS_OBSERVED)
        data = {"connection_id": state.connection_id, "status": account.status}
        if account.status_reason:
            data["reason"] = account.status_reason[:200]
        with self.ledger.transaction() as txn:
            current = txn.connection(state.connection_id)
            if current is not None and current.status == state.status:
                txn.append(connection_stream(state.connection_id), [NewEvent(kind, data)],
                           meta=make_meta(caller.actor, caller.tenant, trace_id))
            state = txn.connection(state.connection_id)
        return state

    def _scope(self, q, caller: Caller):
        if caller.admin:
            return q.where(connections.c.tenant == caller.tenant)
        return q.where(connections.c.user_id == caller.id)

    def list(self, caller: Caller, status: str | None = None, toolkit: str | None = None) -> list[dict]:
        """The caller's connections from the projection, with their agents (two queries)."""
        from sqlalchemy import select
        from .projections import Binding
        q = self._scope(select(connections), caller)
        if status:
            q = q.where(connections.c.status == status.upper())
        if toolkit:
            q = q.where(connections.c.toolkit == toolkit.lower())
        with self.ledger.store.read() as conn:
            rows = conn.execute(q.order_by(connections.c.created_at, connections.c.connection_id)).all()
            ids = [r.connection_id for r in rows]
            brows = conn.execute(select(bindings).where(bindings.c.connection_id.in_(ids))
                                 .order_by(bindings.c.agent_id)).all() if ids else []
        by_conn: dict = {}
        for b in brows:
            by_conn.setdefault(b.connection_id, []).append(Binding.from_row(b))
        return [self._public(ConnectionState.from_row(r), tuple(by_conn.get(r.connection_id, ())))
                for r in rows]

    def preflight(self, caller: Caller, toolkits: list[str]) -> dict:
        """`pending` is every required toolkit not ACTIVE (a frontend offers Connect for each);
        `initiated` (OAuth under way) and `missing` (nothing usable) split it finer."""
        mine = self.list(caller)
        wanted = [t.lower() for t in toolkits]
        active = {c["toolkit"] for c in mine if c["status"] == "ACTIVE"}
        started = {c["toolkit"] for c in mine if c["status"] in ("INITIATED", "INITIALIZING")} - active
        return {"connected": [t for t in wanted if t in active],
                "pending": [t for t in wanted if t not in active],
                "initiated": [t for t in wanted if t in started],
                "missing": [t for t in wanted if t not in active and t not in started],
                "allReady": all(t in active for t in wanted)}

    def history(self, caller: Caller, cid: str, trace_id=None) -> list[dict]:
        """The connection's own events, for its owner."""
        state, _ = self._read_one(cid)
        if state is None:
            raise errors.NotFound("No such connection.")
        if not decisions.may_act(state, caller):
            raise self.deny(caller, cid, "history", trace_id)
        return [e.as_dict() for e in self.ledger.read_stream(connection_stream(cid))]

    def agent_connections(self, caller: Caller, agent_id: str) -> list[dict]:
        """The caller's connections bound to one agent, each with all its agents (two queries)."""
        from sqlalchemy import select
        from .projections import Binding
        q = self._scope(select(connections).join(bindings, bindings.c.connection_id == connections.c.connection_id)
                        .where(bindings.c.agent_id == agent_id), caller)
        with self.ledger.store.read() as conn:
            rows = conn.execute(q.order_by(connections.c.connection_id)).all()
            ids = [r.connection_id for r in rows]
            brows = conn.execute(select(bindings).where(bindings.c.connection_id.in_(ids))
                                 .order_by(bindings.c.agent_id)).all() if ids else []
        by_conn: dict = {}
        for b in brows:
            by_conn.setdefault(b.connection_id, []).append(Binding.from_row(b))
        return [self._public(ConnectionState.from_row(r), tuple(by_conn.get(r.connection_id, ()))) for r in rows]
