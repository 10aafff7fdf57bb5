"""The webhook relay: delivers what the outbox owes the tenants' endpoints.

Like the Composio relay (ledger/outbox.py): claim under a lease, send, record the answer in a
transaction that checks the lease is still ours. A relay killed mid-delivery leaves the lease
to run out; the next one sends the same event again with the same `webhook-id` (at least once:
receivers deduplicate by it, as Standard Webhooks asks). Failures back off exponentially with
jitter up to a cap, then dead-letter with an event on the endpoint's stream (never a connection
stream: an event about a delivery must not itself be owed to the endpoint).
"""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time

from .. import webhook_guard, webhook_out
from ..clock import plus_seconds
from ..envelope import Actor, NewEvent
from ..service import make_meta
from ..storage import webhook_store

log = logging.getLogger("ledger.webhooks_out")
RELAY = Actor("system", "webhook-relay")
DEAD_LETTERED = "webhook.delivery_dead_lettered"
READ_LIMIT = 64 * 1024


def endpoint_stream(endpoint_id: str) -> str:
    return f"webhook_endpoint:{endpoint_id}"


def send(target: webhook_guard.Target, headers: dict, body: bytes, timeout: float) -> int:
    """POST to exactly the checked address (Host and TLS name kept), no redirects followed, no
    retries here (the relay owns them). Returns the status; raises OSError-like on failure."""
    import urllib3
    kw = {}
    cls = urllib3.HTTPConnectionPool
    if target.scheme == "https":
        cls = urllib3.HTTPSConnectionPool
        kw = {"server_hostname": target.host, "assert_hostname": target.host}
    default = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    host_header = host if target.port == default else f"{host}:{target.port}"
    pool = cls(target.address, target.port, timeout=urllib3.Timeout(total=timeout), retries=False, maxsize=1,
               **kw)
    try:
        resp = pool.urlopen("POST", target.path, body=body, headers={**headers, "host": host_header},
                            redirect=False, retries=False, preload_content=False, assert_same_host=False)
        try:
            resp.read(READ_LIMIT)  # a receiver's answer is not ours to keep: read a little, drop it
        finally:
            resp.release_conn()
        return resp.status
    finally:
        pool.close()


class WebhookRelay:
    def __init__(self, ledger, *, allow_private: bool = False, timeout: float = 5.0, base_delay: float = 5.0,
                 max_delay: float = 600.0, retry_for: float = 3 * 86400.0, max_attempts: int = 0,
                 lease_seconds: float = 60.0, worker_id: str | None = None, rng=random.random,
                 sender=send, resolver=webhook_guard.resolve, clock=time.time, parallel: int = 8):
        self.ledger = ledger
        self.allow_private, self.timeout = allow_private, timeout
        self.base_delay, self.max_delay, self.retry_for = base_delay, max_delay, retry_for
        self.max_attempts, self.lease_seconds = max_attempts, lease_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.rng, self.sender, self.resolver, self.clock = rng, sender, resolver, clock
        self.wake = threading.Event()
        self.parallel = parallel
        self._executor = None

    def claim(self, limit: int = 20, endpoint_id: str | None = None) -> list[dict]:
        with self.ledger.transaction(lock_head=False) as txn:
            return webhook_store.claim(txn.conn, now=txn.now, until=plus_seconds(txn.now, self.lease_seconds),
                                       worker=self.worker_id, limit=limit,
                                       postgres=self.ledger.store.dialect == "postgresql", endpoint_id=endpoint_id)

    def run_once(self, limit: int = 20, endpoint_id: str | None = None) -> int:
        """Deliver what is due now: each connection's next event per endpoint, again while a pass
        delivered something (that makes the connection's following event due); a failure waits
        for its backoff rather than being hammered here. Returns how many were attempted."""
        done, delivered = 0, True
        while delivered and done < 50 * limit:
            claimed = self.claim(limit, endpoint_id)
            if not claimed:
                break
            delivered = False
            # A pass holds at most one delivery per (endpoint, connection): they are independent,
            # so they go out side by side, and one slow endpoint does not hold up the others.
            answers = list(self._pool().map(self._deliver, claimed)) if len(claimed) > 1 else [self._deliver(claimed[0])]
            self._record(claimed, answers)
            delivered = any(error is None for error in answers)
            done += len(claimed)
        return done

    def _pool(self):
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor
            self._executor = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="webhook-send")
        return self._executor

    def run_forever(self, stop: threading.Event, idle_sleep: float = 0.5) -> None:
        while not stop.is_set():
            # cleared before the pass, not after the wait: a wake-up that comes while the pass
            # runs (or between its end and the wait) is kept, and the wait returns at once
            self.wake.clear()
            try:
                n = self.run_once()
            except Exception:
                log.exception("webhook relay pass failed")
                n = 0
            if n == 0:
                self.wake.wait(idle_sleep)

    def on_recorded(self, _sender=None, **_kw) -> None:
        """event_recorded receiver: something may be owed now."""
        self.wake.set()

    def _deliver(self, row: dict) -> str | None:
        """None when the endpoint took it (2xx), else why not (kept short, no secret, no body)."""
        msg_id = webhook_out.message_id(row["endpoint_id"], row["stream"], row["version"])
        try:
            target = webhook_guard.check(row["url"], allow_private=self.allow_private, resolver=self.resolver)
        except webhook_guard.Refused as exc:
            return f"refused: {exc}"
        data = webhook_out.body(row["payload"], msg_id=msg_id, seq=row["seq"], prev_hash=row["prev_hash"],
                                hash_=row["hash"], tenant=row["tenant"])
        headers = webhook_out.headers(row["secret"], msg_id, int(self.clock()), data)
        try:
            status = self.sender(target, headers, data, self.timeout)
        except Exception as exc:  # refused, reset, timed out, TLS: all a failed attempt
            return f"{type(exc).__name__}"[:100]
        if 200 <= status < 300:
            return None
        if 300 <= status < 400:
            return f"HTTP {status} (redirects are not followed)"
        return f"HTTP {status}"

    def _record(self, rows: list[dict], errors: list[str | None]) -> None:
        """A pass's answers in one transaction (one commit per pass, not per delivery: on
        PostgreSQL a transaction is several round trips). A relay that dies before it commits
        leaves the leases to run out: the pass is sent again, same webhook-ids (at least once)."""
        with self.ledger.transaction() as txn:
            now_rows = webhook_store.claimed_rows(txn.conn, [r["id"] for r in rows])
            done = []
            for row, error in zip(rows, errors):
                now_row = now_rows.get(row["id"])
                if now_row is None or now_row.claimed_by != self.worker_id or now_row.status != "pending":
                    continue  # our lease ran out; whoever took it over records it
                if error is None:
                    done.append(row["id"])
                else:
                    self._failed(txn, row, now_row, error)
            if done:
                webhook_store.set_done(txn.conn, done, txn.now)

    def _failed(self, txn, row: dict, now_row, error: str) -> None:
        attempts = now_row.attempts + 1
        give_up_at = plus_seconds(now_row.created_at, self.retry_for)
        if txn.now >= give_up_at or (self.max_attempts and attempts >= self.max_attempts):
            webhook_store.set_delivery(txn.conn, row["id"], txn.now, status="dead", attempts=attempts,
                                       last_error=error, claimed_until=None)
            txn.append(endpoint_stream(row["endpoint_id"]), [NewEvent(DEAD_LETTERED, {
                "endpoint_id": row["endpoint_id"], "delivery_id": f"whd_{row['id']}",
                "webhook_id": webhook_out.message_id(row["endpoint_id"], row["stream"], row["version"]),
                "connection_id": row["connection_id"], "event_seq": row["seq"], "attempts": attempts,
                "error": error})], meta=make_meta(RELAY, row["tenant"]))
            log.error("webhook delivery whd_%s to endpoint %s dead after %d attempts: %s",
                      row["id"], row["endpoint_id"], attempts, error)
            return
        delay = min(self.max_delay, self.base_delay * 2 ** min(attempts - 1, 60)) * (0.5 + self.rng() / 2)
        retry_at = min(plus_seconds(txn.now, delay), give_up_at)
        webhook_store.set_delivery(txn.conn, row["id"], txn.now, attempts=attempts, last_error=error,
                                   not_before=retry_at, claimed_by=None, claimed_until=None)
        log.warning("webhook delivery whd_%s to endpoint %s failed (attempt %d): %s; next at %s",
                    row["id"], row["endpoint_id"], attempts, error, retry_at)

def wake_on_news(relay: WebhookRelay, feed, stop: threading.Event, after: int | None = None,
                 timeout: float = 1.0) -> None:
    """Wake `relay` whenever the ledger's `feed` (ledger.feed.Feed) sees events after `after`
    (default: the head when this starts), until `stop`.

    `ledger relay` records none of the connection events it delivers: the web processes do, so
    its own event_recorded signal never fires for them and it would find them only at its next
    idle pass. The feed is the cross-process wake-up: on PostgreSQL the sequencer's NOTIFY (the
    events are sealed, hence claimable, when it comes); on SQLite a read for new seqs every
    `check_seconds` of the feed. A wake-up only makes the relay claim now; what is owed is
    still read from the outbox, so a missed or extra wake-up loses or doubles nothing."""
    with feed.subscription() as sub:
        cursor = sub.head() if after is None else after
        while not stop.is_set() and not feed.closed:
            got = sub.events_after(cursor, timeout)
            if got is None:  # further behind than the feed's window: no need to read what it was
                cursor = sub.head()
                relay.wake.set()
                continue
            found, cursor = got
            if found:
                relay.wake.set()


def retry(ledger, delivery_id: str) -> bool:
    """`ledger outbox retry whd_N`: re-queue a dead (or stuck pending) delivery to run now."""
    try:
        n = int(delivery_id.removeprefix("whd_"))
    except ValueError:
        return False
    with ledger.transaction(lock_head=False) as txn:
        return webhook_store.requeue(txn.conn, txn.now, delivery_ids=[n], statuses=("dead", "pending")) == 1


def backlog(ledger) -> dict:
    from ..clock import iso, now
    with ledger.store.read() as conn:
        return webhook_store.backlog(conn, iso(now()))


def list_deliveries(ledger, statuses=("pending", "dead")) -> list[dict]:
    with ledger.store.read() as conn:
        return webhook_store.list_deliveries(conn, statuses=statuses)
