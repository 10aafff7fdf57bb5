"""The relay: carries out the Composio actions the ledger owes, exactly once as Composio sees it.

An action is claimed with a lease (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's single
writer), sent with its id as Idempotency-Key, and its outcome recorded as an event in the same
transaction that marks it done. A relay killed mid-way leaves the lease to expire; the next
relay repeats the call, which Composio deduplicates (or answers 404 for a delete: done).
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
from .storage.tables import outbox

log = logging.getLogger("ledger.outbox")
RELAY = Actor("system", "relay")


@dataclass(frozen=True)
class Claimed:
    id: str
    connection_id: str
    action: str
    attempts: int


@dataclass(frozen=True)
class Outcome:
    ok: bool
    events: tuple = ()
    follow_up: str | None = None      # the next action this one makes due (revoke -> delete)
    error: str | None = None


class Relay:
    def __init__(self, ledger, gateway, *, max_attempts: int = 6, base_delay: float = 2.0,
                 max_delay: float = 3600.0, lease_seconds: float = 120.0, worker_id: str | None = None,
                 rng=random.random):
        self.ledger, self.gateway = ledger, gateway
        self.max_attempts, self.base_delay, self.max_delay = max_attempts, base_delay, max_delay
        self.lease_seconds = lease_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.rng = rng

    # -- claiming ---------------------------------------------------------------------------
    def claim(self, limit: int = 20, connection_id: str | None = None) -> list[Claimed]:
        """Take due actions under a lease; a connection's actions only ever one at a time, in order."""
        o2 = outbox.alias("earlier")
        store = self.ledger.store
        with self.ledger.transaction(lock_head=False) as txn:
            now = txn.now
            earlier_open = exists().where(and_(o2.c.connection_id == outbox.c.connection_id,
                                               o2.c.status == "pending", o2.c.id < outbox.c.id))
            q = (select(outbox.c.id, outbox.c.connection_id, outbox.c.action, outbox.c.attempts)
                 .where(outbox.c.status == "pending", outbox.c.not_before <= now,
                        outbox.c.causation_seq > 0,  # its event is in the chain (sealed on PostgreSQL)
                        (outbox.c.claimed_until.is_(None)) | (outbox.c.claimed_until < now), ~earlier_open)
                 .order_by(outbox.c.id).limit(limit))
            if connection_id:
                q = q.where(outbox.c.connection_id == connection_id)
            if store.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True, of=outbox)
            rows = txn.conn.execute(q).all()
            until = plus_seconds(now, self.lease_seconds)
            for r in rows:
                txn.conn.execute(update(outbox).where(outbox.c.id == r.id)
                                 .values(claimed_by=self.worker_id, claimed_until=until, updated_at=now))
        return [Claimed(r.id, r.connection_id, r.action, r.attempts) for r in rows]

    # -- running ----------------------------------------------------------------------------
    def run_once(self, connection_id: str | None = None, limit: int = 20) -> int:
        """Claim and carry out what is due now; returns how many actions were attempted.

        A completed revoke makes its delete due at once, so that follow-up runs in the same
        call; a failure waits for its backoff instead of being hammered here."""
        done, follow = 0, True
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
        """Loop until `stop` is set (SIGTERM handler or shutdown); errors never kill the loop."""
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
        except errors.UpstreamError as exc:
            return Outcome(False, error=exc.code)

    def _revoke(self, c: Claimed, data: dict) -> Outcome:
        try:
            kinds = self.gateway.revoke(c.connection_id, idempotency_key=c.id)
            payload = {**data, "supported": True, "revoked": sorted(kinds)}
        except errors.RevokeUnsupported:
            payload = {**data, "supported": False, "revoked": [], "reason": "the toolkit does not support revoke"}
        except errors.UpstreamNotFound:
            payload = {**data, "supported": None, "revoked": [], "reason": "the account is no longer at Composio"}
        return Outcome(True, (NewEvent(ev.UPSTREAM_REVOKED, payload),), follow_up="delete")

    def _delete(self, c: Claimed, data: dict) -> Outcome:
        try:
            self.gateway.delete(c.connection_id, idempotency_key=c.id)
            gone = False
        except errors.UpstreamNotFound:
            gone = True  # deleted before (perhaps by a relay that died before recording it)
        return Outcome(True, (NewEvent(ev.UPSTREAM_DELETED, {**data, "already_gone": gone}),
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
                if c.action == "delete" and txn.connection(c.connection_id) is not None \
                        and txn.connection(c.connection_id).status != DISCONNECTING:
                    events = events[:1]  # already DISCONNECTED (e.g. reconcile saw it gone)
                envs = txn.append(stream, events, meta=meta)
                txn.set_action(c.id, status="done", attempts=row.attempts + 1, claimed_until=None, last_error=None)
                if outcome.follow_up:
                    txn.enqueue(c.connection_id, outcome.follow_up, txn.now, envs[-1].seq)
            else:
                self._failed(txn, row, outcome.error or "error", stream, meta)

    def _failed(self, txn, row, error: str, stream: str, meta: dict) -> None:
        attempts = row.attempts + 1
        if attempts >= self.max_attempts:
            txn.append(stream, [NewEvent(ev.PROVIDER_ACTION_DEAD_LETTERED, {
                "connection_id": row.connection_id, "action_id": row.id, "action": row.action,
                "attempts": attempts, "error": error})], meta=meta)
            txn.set_action(row.id, status="dead", attempts=attempts, last_error=error, claimed_until=None)
            log.error("outbox %s (%s %s) dead after %d attempts: %s", row.id, row.action, row.connection_id, attempts, error)
            return
        delay = min(self.max_delay, self.base_delay * 2 ** (attempts - 1)) * (0.5 + self.rng() / 2)
        retry_at = plus_seconds(txn.now, delay)
        txn.append(stream, [NewEvent(ev.PROVIDER_ACTION_FAILED, {
            "connection_id": row.connection_id, "action_id": row.id, "action": row.action,
            "attempt": attempts, "error": error, "retry_at": retry_at})], meta=meta)
        txn.set_action(row.id, attempts=attempts, last_error=error, not_before=retry_at,
                       claimed_by=None, claimed_until=None)


def retry(ledger, action_id: str) -> bool:
    """Re-queue a dead (or stuck) action to run now, attempts counted afresh."""
    with ledger.transaction(lock_head=False) as txn:
        done = txn.conn.execute(update(outbox).where(outbox.c.id == action_id, outbox.c.status.in_(("dead", "pending")))
                                .values(status="pending", attempts=0, not_before=txn.now, claimed_by=None,
                                        claimed_until=None, updated_at=txn.now))
    return done.rowcount == 1


def list_actions(ledger, statuses=("pending", "dead")) -> list[dict]:
    with ledger.store.read() as conn:
        rows = conn.execute(select(outbox).where(outbox.c.status.in_(statuses)).order_by(outbox.c.id)).all()
    return [dict(r._mapping) for r in rows]

