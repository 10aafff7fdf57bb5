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

from .. import envelope as ev
from .. import errors
from ..clock import iso, now as clock_now, parse_iso, plus_seconds
from ..envelope import Actor, NewEvent, connection_stream
from ..decisions import Answer, Outcome, RetryPolicy, decide_relay_failure, decide_relay_outcome
from ..projections import DISCONNECTING
from ..service import make_meta

log = logging.getLogger("ledger.outbox")
RELAY = Actor("system", "relay")


@dataclass(frozen=True)
class Claimed:
    id: str
    connection_id: str
    action: str
    attempts: int
    repeated: bool = False   # an earlier attempt was made whose answer may have been lost


class Relay:
    """Carries out due actions. A failing action is retried with capped exponential backoff and
    jitter (base_delay doubling up to max_delay) for retry_for seconds from when it fell due,
    then dead-lettered: a Composio outage of hours delays actions, it does not bury them.
    max_attempts, when set (> 0), dead-letters after that many attempts even sooner."""

    def __init__(self, ledger, gateway, *, max_attempts: int = 0, base_delay: float = 2.0,
                 max_delay: float = 300.0, retry_for: float = 6 * 3600.0, lease_seconds: float = 120.0,
                 worker_id: str | None = None, rng=random.random):
        self.ledger, self.gateway = ledger, gateway
        self.policy = RetryPolicy(max_attempts, base_delay, max_delay, retry_for)
        self.lease_seconds = lease_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.rng = rng
        self._local = threading.local()

    # -- claiming ---------------------------------------------------------------------------
    def claim(self, limit: int = 20, connection_id: str | None = None) -> list[Claimed]:
        """Take due actions under a lease; a connection's actions only ever one at a time, in order."""
        with self.ledger.transaction(lock_head=False) as txn:
            return self._claim_in(txn, limit, connection_id, sealed_only=True)

    def claim_in_request(self, txn, connection_id: str) -> list[Claimed]:
        """Claim, inside the request's own write transaction, the actions it has just made due,
        so that no relay sees them as due while the request holds them (they commit claimed)
        and the request carries them out right after its commit without a claim transaction
        of its own. Pass the result to hand_over() once the transaction has committed."""
        # Its own actions: sealed before it runs them (Ledger.transaction waits for the seq).
        return self._claim_in(txn, 20, connection_id, sealed_only=False)

    def hand_over(self, claimed: list[Claimed]) -> None:
        """Claims committed by this thread's request, for its next run_once of that connection."""
        handed = self._local.__dict__.setdefault("handed", [])
        handed.extend(claimed)

    def _take_handed(self, connection_id: str | None) -> list[Claimed]:
        handed = self._local.__dict__.get("handed") or []
        mine = [c for c in handed if connection_id is None or c.connection_id == connection_id]
        self._local.handed = [c for c in handed if c not in mine]
        return mine

    def _claim_in(self, txn, limit: int, connection_id: str | None, sealed_only: bool) -> list[Claimed]:
        rows = txn.claim_actions(self.worker_id, plus_seconds(txn.now, self.lease_seconds), limit,
                                 connection_id, sealed_only)
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

    def run_forever(self, stop: threading.Event, idle_sleep: float = 1.0, heads=None, expiry=None) -> None:
        """Warm the SDK, then loop until `stop` is set (SIGTERM handler or shutdown); errors
        never kill the loop. `heads`: a services.heads.HeadSigner, `expiry`: a
        services.lifecycle.ExpiryWarner, each given its turn each pass."""
        self.warm()
        while not stop.is_set():
            try:
                n = self.run_once()
                if heads is not None:
                    heads.maybe_sign()
                if expiry is not None:
                    expiry.maybe_warn()
            except Exception:
                log.exception("relay pass failed")
                n = 0
            if n == 0:
                stop.wait(idle_sleep)

    def _execute(self, c: Claimed) -> Outcome:
        """Carry out one action at Composio; what its answer means is decided purely."""
        return decide_relay_outcome(c.action, c.connection_id, c.id, c.repeated, self._ask(c))

    def _ask(self, c: Claimed) -> Answer:
        """Send one action to Composio, its id as the Idempotency-Key; Composio's answer."""
        gw, key = self.gateway, c.id
        try:
            if c.action == "disable":
                gw.disable(c.connection_id, idempotency_key=key)
            elif c.action == "enable":
                gw.enable(c.connection_id, idempotency_key=key)
            elif c.action == "revoke":
                try:
                    return Answer("done", revoked=tuple(gw.revoke(c.connection_id, idempotency_key=key)))
                except errors.RevokeUnsupported:
                    return Answer("unsupported")
            elif c.action == "delete":
                # A 404 here is not "already deleted" (Composio does not deduplicate writes): it is
                # recorded as not found, saying when an earlier, unrecorded attempt may have done it.
                gw.delete(c.connection_id, idempotency_key=key)
            return Answer("done")
        except errors.UpstreamNotFound:
            return Answer("not_found")
        except errors.UpstreamError as exc:
            return Answer("failed", error=exc.code)

    # -- recording --------------------------------------------------------------------------
    def _record(self, c: Claimed, outcome: Outcome) -> None:
        with self.ledger.transaction() as txn:
            row = txn.action(c.id)
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
        state = txn.connection(row.connection_id) if row.action == "revoke" else None
        event, values = decide_relay_failure(row.action, row.connection_id, row.id, row.attempts, row.created_at,
                                             state, error, txn.now, self.policy, self.rng())
        txn.append(stream, [event], meta=meta)
        txn.set_action(row.id, **values)
        if values.get("status") == "dead":
            log.error("outbox %s (%s %s) dead after %d attempts: %s", row.id, row.action, row.connection_id,
                      values["attempts"], error)


def retry(ledger, action_id: str) -> bool:
    """Re-queue a dead (or stuck) action to run now, attempts and the retry window counted
    afresh (the window runs from created_at, which is reset to now)."""
    with ledger.transaction(lock_head=False) as txn:
        return txn.requeue_action(action_id)


def backlog(ledger) -> dict:
    """What the relay owes: actions due now (pending, not_before passed), how long the oldest
    of them has waited, those scheduled later, and the dead ones (an operator's to retry)."""
    at = iso(clock_now())
    due, oldest, later, dead = ledger.store.outbox_backlog(at)
    age = (parse_iso(at) - parse_iso(oldest)).total_seconds() if oldest else 0.0
    return {"pending": due, "oldest_due_age_seconds": round(max(age, 0.0), 3),
            "scheduled": later, "dead": dead}


def list_actions(ledger, statuses=("pending", "dead")) -> list[dict]:
    return ledger.store.outbox_actions(statuses)
