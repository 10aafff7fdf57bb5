"""The relay: carries out the Composio actions the ledger owes, exactly once as Composio sees it.

An action is claimed with a lease (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's single
writer), sent with its id as Idempotency-Key, and its outcome recorded as an event in the same
transaction that marks it done. A relay killed mid-way leaves the lease to expire; the next
relay repeats the call, which Composio deduplicates. A 404 is recorded as not found at
Composio (upstream_not_found), never as a revoke or delete that did not happen.
Failures back off exponentially with jitter, then dead-letter with an event.
"""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
from dataclasses import dataclass

from sqlalchemy import and_, exists, select, update

from . import envelope as ev
from . import errors
from .clock import plus_seconds
from .envelope import Actor, NewEvent, connection_stream
from .projections import DISCONNECTING
from .service import make_meta
from .tables import outbox

log = logging.getLogger("ledger.outbox")
RELAY = Actor("system", "relay")


@dataclass(frozen=True)
class Claimed:
    id: str
    connection_id: str
    action: str
    attempts: int
    repeated: bool = False   # an earlier attempt was made whose answer may have been lost


@dataclass(frozen=True)
class Outcome:
    ok: bool
    events: tuple = ()
    follow_up: str | None = None      # the next action this one makes due (revoke -> delete)
    error: str | None = None


class Relay:
    """Carries out due actions. A failing action is retried with capped exponential backoff and
    jitter (base_delay doubling up to max_delay) for retry_for seconds from when it fell due,
    then dead-lettered: a Composio outage of hours delays actions, it does not bury them.
    max_attempts, when set (> 0), dead-letters after that many attempts even sooner."""

    def __init__(self, ledger, gateway, *, max_attempts: int = 0, base_delay: float = 2.0,
                 max_delay: float = 300.0, retry_for: float = 6 * 3600.0, lease_seconds: float = 120.0,
                 worker_id: str | None = None, rng=random.random):
        self.ledger, self.gateway = ledger, gateway
        self.max_attempts, self.base_delay, self.max_delay = max_attempts, base_delay, max_delay
        self.retry_for = retry_for
        self.lease_seconds = lease_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.rng = rng
        self._local = threading.local()

    # -- claiming ---------------------------------------------------------------------------
    def claim(self, limit: int = 20, connection_id: str | None = None) -> list[Claimed]:
        """Take due actions under a lease; a connection's actions only ever one at a time, in order."""
        with self.ledger.transaction(lock_head=False) as txn:
            return self._claim_in(txn, limit, connection_id)

    def claim_in_request(self, txn, connection_id: str) -> list[Claimed]:
        """Claim, inside the request's own write transaction, the actions it has just made due,
        so that no relay sees them as due while the request holds them (they commit claimed)
        and the request carries them out right after its commit without a claim transaction
        of its own. Pass the result to hand_over() once the transaction has committed."""
        return self._claim_in(txn, 20, connection_id)

    def hand_over(self, claimed: list[Claimed]) -> None:
        """Claims committed by this thread's request, for its next run_once of that connection."""
        handed = self._local.__dict__.setdefault("handed", [])
        handed.extend(claimed)

    def _take_handed(self, connection_id: str | None) -> list[Claimed]:
        handed = self._local.__dict__.get("handed") or []
        mine = [c for c in handed if connection_id is None or c.connection_id == connection_id]
        self._local.handed = [c for c in handed if c not in mine]
        return mine

    def _claim_in(self, txn, limit: int, connection_id: str | None) -> list[Claimed]:
        o2 = outbox.alias("earlier")
        now = txn.now
        earlier_open = exists().where(and_(o2.c.connection_id == outbox.c.connection_id,
                                           o2.c.status == "pending", o2.c.id < outbox.c.id))
        q = (select(outbox.c.id, outbox.c.connection_id, outbox.c.action, outbox.c.attempts,
                    outbox.c.claimed_by)
             .where(outbox.c.status == "pending", outbox.c.not_before <= now,
                    (outbox.c.claimed_until.is_(None)) | (outbox.c.claimed_until < now), ~earlier_open)
             .order_by(outbox.c.id).limit(limit))
        if connection_id:
            q = q.where(outbox.c.connection_id == connection_id)
        if self.ledger.store.dialect == "postgresql":
            q = q.with_for_update(skip_locked=True, of=outbox)
        rows = txn.conn.execute(q).all()
        until = plus_seconds(now, self.lease_seconds)
        for r in rows:
            txn.conn.execute(update(outbox).where(outbox.c.id == r.id)
                             .values(claimed_by=self.worker_id, claimed_until=until, updated_at=now))
        # claimed_by still set: a relay took it and never recorded an answer (killed, or lost)
        return [Claimed(r.id, r.connection_id, r.action, r.attempts, bool(r.claimed_by) or r.attempts > 0)
                for r in rows]

    # -- running ----------------------------------------------------------------------------
    def warm(self) -> None:
        """Import the SDK and build its client now (`import composio` takes seconds), so the
        first action a relay claims is not kept waiting for it."""
        try:
            warm = getattr(self.gateway, "warm", None)  # a lazy gateway is built here
            if warm is not None:
                warm()
        except Exception:  # not configured, say: the first action reports it properly
            log.warning("could not prepare the Composio client in advance", exc_info=True)

    def run_once(self, connection_id: str | None = None, limit: int = 20) -> int:
        """Claim and carry out what is due now; returns how many actions were attempted.

        Actions a request claimed in its own transaction (hand_over) are carried out first,
        without a claim transaction. A completed revoke makes its delete due at once, so that
        follow-up runs in the same call; a failure waits for its backoff instead of being
        hammered here."""
        done, follow = 0, True
        handed = self._take_handed(connection_id)
        if handed:
            follow = False
            for c in handed:
                outcome = self._execute(c)
                self._record(c, outcome)
                follow = follow or bool(outcome.ok and outcome.follow_up)
            done = len(handed)
        while follow and done < 10 * limit:
            claimed = self.claim(limit, connection_id)
            if not claimed:
                break
            follow = False
            for c in claimed:
                outcome = self._execute(c)
                self._record(c, outcome)
                follow = follow or bool(outcome.ok and outcome.follow_up)
            done += len(claimed)
        return done

    def run_forever(self, stop: threading.Event, idle_sleep: float = 1.0, on_idle=None) -> None:
        """Warm the SDK, then loop until `stop` is set (SIGTERM handler or shutdown); errors
        never kill the loop."""
        self.warm()
        while not stop.is_set():
            try:
                n = self.run_once()
                if on_idle is not None:
                    on_idle()
            except Exception:
                log.exception("relay pass failed")
                n = 0
            if n == 0:
                stop.wait(idle_sleep)

    def _execute(self, c: Claimed) -> Outcome:
        gw, key = self.gateway, c.id
        data = {"connection_id": c.connection_id, "action_id": c.id}
        try:
            if c.action == "disable":
                gw.disable(c.connection_id, idempotency_key=key)
                return Outcome(True, (NewEvent(ev.UPSTREAM_DISABLED, data),))
            if c.action == "enable":
                gw.enable(c.connection_id, idempotency_key=key)
                return Outcome(True, (NewEvent(ev.UPSTREAM_ENABLED, data),))
            if c.action == "revoke":
                return self._revoke(c, data)
            if c.action == "delete":
                return self._delete(c, data)
            return Outcome(False, error=f"unknown action {c.action}")
        except errors.UpstreamNotFound:
            return self._not_found(c, data)
        except errors.UpstreamError as exc:
            return Outcome(False, error=exc.code)

    @staticmethod
    def _not_found(c: Claimed, data: dict) -> Outcome:
        """Composio has no such account: record that, not a revoke or a delete that never happened.

        Retrying a 404 would not change it; a purge ends here (there is nothing left to purge
        at Composio, and nothing was revoked: the events say so, and so does the connection)."""
        found = NewEvent(ev.UPSTREAM_NOT_FOUND, {**data, "action": c.action, "outcome": ev.NOT_FOUND_UPSTREAM,
                                                 "repeated": c.repeated})
        if c.action not in ("revoke", "delete"):
            return Outcome(True, (found,))
        if c.repeated:  # Composio does not deduplicate: our own lost attempt may have done it
            reason = (f"not found at Composio when the {c.action} was repeated: "
                      "an earlier attempt whose answer was lost may have done it")
        else:
            reason = "not found at Composio: nothing was revoked or deleted there"
        return Outcome(True, (found, NewEvent(ev.DISCONNECT_COMPLETED, {
            "connection_id": c.connection_id, "outcome": ev.NOT_FOUND_UPSTREAM, "reason": reason})))

    def _revoke(self, c: Claimed, data: dict) -> Outcome:
        try:
            kinds = self.gateway.revoke(c.connection_id, idempotency_key=c.id)
            payload = {**data, "supported": True, "revoked": sorted(kinds)}
        except errors.RevokeUnsupported:
            payload = {**data, "supported": False, "revoked": [], "reason": "the toolkit does not support revoke"}
        return Outcome(True, (NewEvent(ev.UPSTREAM_REVOKED, payload),), follow_up="delete")

    def _delete(self, c: Claimed, data: dict) -> Outcome:
        # A 404 here is not "already deleted" (Composio does not deduplicate writes): _not_found
        # records it as not found, saying when an earlier, unrecorded attempt may have done it.
        self.gateway.delete(c.connection_id, idempotency_key=c.id)
        return Outcome(True, (NewEvent(ev.UPSTREAM_DELETED, data),
                              NewEvent(ev.DISCONNECT_COMPLETED, {"connection_id": c.connection_id,
                                                                 "reason": "purged at Composio"})))

    # -- recording --------------------------------------------------------------------------
    def _record(self, c: Claimed, outcome: Outcome) -> None:
        with self.ledger.transaction() as txn:
            row = txn.conn.execute(select(outbox).where(outbox.c.id == c.id)).first()
            stream = connection_stream(c.connection_id)
            meta = make_meta(RELAY, causation=row.causation_seq if row is not None else None)
            if row is None or row.claimed_by != self.worker_id:
                return  # our lease ran out; the relay that took over repeats the call and records it
            if row.status != "pending":
                # Cancelled while the call was under way (restores lock these rows, so this
                # should not happen): what Composio did is still recorded, never dropped.
                if outcome.ok:
                    txn.append(stream, [NewEvent(e.type, {**e.data, "after_cancel": True}) for e in outcome.events
                                        if e.type != ev.DISCONNECT_COMPLETED], meta=meta)
                return
            if outcome.ok:
                events = list(outcome.events)
                state = txn.connection(c.connection_id)
                if state is not None and state.status != DISCONNECTING:
                    # already DISCONNECTED (e.g. reconcile saw it gone): only what Composio said
                    events = [e for e in events if e.type != ev.DISCONNECT_COMPLETED]
                envs = txn.append(stream, events, meta=meta)
                txn.set_action(c.id, status="done", attempts=row.attempts + 1, claimed_until=None, last_error=None)
                if outcome.follow_up:
                    txn.enqueue(c.connection_id, outcome.follow_up, txn.now, envs[-1].seq)
            else:
                self._failed(txn, row, outcome.error or "error", stream, meta)

    def _failed(self, txn, row, error: str, stream: str, meta: dict) -> None:
        attempts = row.attempts + 1
        due = row.created_at
        if row.action == "revoke":  # enqueued at the request, due at the end of the grace period
            state = txn.connection(row.connection_id)
            due = max(due, state.purge_at or due) if state is not None else due
        give_up_at = plus_seconds(due, self.retry_for)
        if txn.now >= give_up_at or (self.max_attempts and attempts >= self.max_attempts):
            txn.append(stream, [NewEvent(ev.PROVIDER_ACTION_DEAD_LETTERED, {
                "connection_id": row.connection_id, "action_id": row.id, "action": row.action,
                "attempts": attempts, "error": error})], meta=meta)
            txn.set_action(row.id, status="dead", attempts=attempts, last_error=error, claimed_until=None)
            log.error("outbox %s (%s %s) dead after %d attempts: %s", row.id, row.action, row.connection_id, attempts, error)
            return
        delay = min(self.max_delay, self.base_delay * 2 ** min(attempts - 1, 60)) * (0.5 + self.rng() / 2)
        retry_at = min(plus_seconds(txn.now, delay), give_up_at)  # one last try at the deadline
        txn.append(stream, [NewEvent(ev.PROVIDER_ACTION_FAILED, {
            "connection_id": row.connection_id, "action_id": row.id, "action": row.action,
            "attempt": attempts, "error": error, "retry_at": retry_at})], meta=meta)
        txn.set_action(row.id, attempts=attempts, last_error=error, not_before=retry_at,
                       claimed_by=None, claimed_until=None)


def retry(ledger, action_id: str) -> bool:
    """Re-queue a dead (or stuck) action to run now, attempts and the retry window counted
    afresh (the window runs from created_at, which is reset to now)."""
    with ledger.transaction(lock_head=False) as txn:
        done = txn.conn.execute(update(outbox).where(outbox.c.id == action_id, outbox.c.status.in_(("dead", "pending")))
                                .values(status="pending", attempts=0, not_before=txn.now, claimed_by=None,
                                        claimed_until=None, created_at=txn.now, updated_at=txn.now))
    return done.rowcount == 1


def backlog(ledger) -> dict:
    """What the relay owes: actions due now (pending, not_before passed), how long the oldest
    of them has waited, those scheduled later, and the dead ones (an operator's to retry)."""
    from sqlalchemy import func
    from .clock import iso, now as clock_now, parse_iso
    at = iso(clock_now())
    with ledger.store.read() as conn:
        due, oldest = conn.execute(select(func.count(), func.min(outbox.c.not_before))
                                   .where(outbox.c.status == "pending", outbox.c.not_before <= at)).one()
        later = conn.execute(select(func.count()).select_from(outbox).where(outbox.c.status == "pending",
                                                        outbox.c.not_before > at)).scalar()
        dead = conn.execute(select(func.count()).select_from(outbox).where(outbox.c.status == "dead")).scalar()
    age = (parse_iso(at) - parse_iso(oldest)).total_seconds() if oldest else 0.0
    return {"pending": int(due), "oldest_due_age_seconds": round(max(age, 0.0), 3),
            "scheduled": int(later), "dead": int(dead)}


def list_actions(ledger, statuses=("pending", "dead")) -> list[dict]:
    with ledger.store.read() as conn:
        rows = conn.execute(select(outbox).where(outbox.c.status.in_(statuses)).order_by(outbox.c.id)).all()
    return [dict(r._mapping) for r in rows]

