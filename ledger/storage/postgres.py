"""PostgreSQL: writers commit side by side; the chain is sequenced after commit.

A write transaction takes no chain lock. It row-locks the connections it may change (SELECT …
FOR UPDATE, before its other reads), reads, and inserts its events unsequenced (seq, prev_hash,
hash NULL; the unique (stream, version) is the optimistic concurrency check) with its
projection, outbox and idempotency rows, then commits: concurrent writers share PostgreSQL's
group commit. Two round trips: the reads go with BEGIN, the writes with COMMIT (send_pg).

The sequencer (one background thread per writing process, see _Background) gives committed
events their seq, prev_hash, hash and final recorded_at, in batches, one transaction per batch.
Exactly one is active across every process and host: the holder of a session advisory lock on
its own connection; the others stand by and retry the lock, so when the holder dies its session
ends, the lock frees and a standby takes over within STANDBY_RETRY_SECONDS. Writers NOTIFY
ledger_appended with their commit; the sequencer NOTIFYs ledger_sequenced with each batch, and a
writer answers only once its events are sealed (EventStore.sealed).

The order rule: an event's seq is later than the seq of every event its transaction could have
read. The sequencer only ever sees committed rows and takes them in insertion-id order. If a
transaction T read an event E (or anything E's transaction wrote), E had committed before that
read; T's inserts all happen at flush, after all its reads, so T's insertion ids are drawn after
E's commit, hence after E's ids; and T commits later still. So whenever the sequencer sees T's
event it also sees E, and E sorts first: in the same batch by id, or in an earlier batch. A
stream's versions are therefore in seq order (each version's writer read the one before).
Ids drawn by transactions that could not see each other may commit out of id order; the later
committed one is simply sequenced later, which the rule allows.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError

from .. import errors
from ..chain import GENESIS_HASH, envelope_text, link
from ..envelope import EVENT_COLUMNS, Envelope
from .store import EventStore
from .unit_of_work import Prefetch, UnitOfWork


def configure_engine(engine: Engine) -> None:
    _ping_when_idle(engine)


PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only if it sat idle a while (a restarted server,
    a dropped idle connection). pool_pre_ping pings on every checkout: one more round trip
    per request, a third of a one-event append's."""
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn, record, _proxy):
        if time.monotonic() - record.info.get("idle_since", time.monotonic()) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_conn.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as exc:  # SQLAlchemy then discards it and checks out another
            raise DisconnectionError() from exc



PG_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE (not imported: psycopg is optional on SQLite)


class Gather:
    """A stand-in cursor that keeps statements instead of running them (PostgreSQL's writes,
    sent in one string with the COMMIT by send_pg). A batch of more than a few rows that comes
    before any other statement (the events) goes to the driver's own executemany at once: one
    prepared statement, pipelined, beats a hundred statements parsed one by one. Anything
    later keeps its place in the string, so the statements still run in the order given."""
    BULK = 5

    def __init__(self, driver=None):
        self.driver = driver
        self.statements: list = []
        self.rowcount = -1

    def execute(self, sql: str, params=None) -> None:
        self.statements.append((sql, params))

    def executemany(self, sql: str, rows) -> None:
        rows = list(rows)
        if self.driver is not None and len(rows) > self.BULK and not self.statements:
            with self.driver.cursor() as cur:
                cur.executemany(sql, rows)
        else:
            self.statements.extend((sql, row) for row in rows)


def send_pg(conn: Connection, statements: list) -> list[list]:
    """Run several PostgreSQL statements as one string, in one round trip; the rows of each.

    Parameters are bound client-side by psycopg's ClientCursor (its quoting, not ours), which is
    what lets one simple-query message carry many statements."""
    import psycopg
    cur = psycopg.ClientCursor(conn.connection.driver_connection)
    text_ = "; ".join(s if isinstance(s, str) else cur.mogrify(s[0], s[1]) for s in statements)
    cur.execute(text_)
    answers = []
    while True:
        answers.append(cur.fetchall() if cur.description is not None else [])
        if not cur.nextset():
            break
    cur.close()
    return answers


log = logging.getLogger("ledger.sequencer")

SEQUENCER_LOCK = 7274002          # the advisory lock whose holder is the one active sequencer
APPENDED, SEQUENCED = "ledger_appended", "ledger_sequenced"
BATCH = 2000                      # events sealed per sequencer transaction at most
LEADER_IDLE_SECONDS = 0.25        # the sequencer's fallback wake-up without a NOTIFY
STANDBY_RETRY_SECONDS = 0.5       # how often a standby asks for the lock
SEQUENCER_WAIT_SECONDS = 30.0     # how long a request waits for its events to be sealed (then 503: committed, sealed later)

_SEALED = ("SELECT " + ", ".join(EVENT_COLUMNS) + " "
           "FROM events WHERE (stream, version) IN (SELECT * FROM unnest(%s::text[], %s::int[])) "
           "AND seq IS NOT NULL")


class PostgresStore(EventStore):
    """The ledger on PostgreSQL: writers commit side by side, a sequencer seals the chain."""
    PARAMSTYLE = "pyformat"

    def __init__(self, engine: Engine, *, wait_seconds: float = SEQUENCER_WAIT_SECONDS, sequencer: bool = True):
        super().__init__(engine)
        self.wait_seconds = wait_seconds
        self.run_sequencer = sequencer  # False: this process only waits (another one sequences)
        self._beacon = _Beacon()
        self._background: threading.Thread | None = None
        self._background_pid: int | None = None
        self._background_lock = threading.Lock()
        self._lags: collections.deque = collections.deque(maxlen=100_000)

    @contextmanager
    def write(self, clock, lock_head: bool = True, prefetch: Prefetch | None = None) -> Iterator[UnitOfWork]:
        """A write transaction beside others: row locks on the connections it reads, events in
        unsequenced. `clock` never gives less than the head's recorded_at (the sequencer keeps
        an event's recorded_at unless the head has gone past it). `lock_head` means nothing here
        any more: no writer takes the chain."""
        self.start_sequencer()
        with self._write_errors():
            with self._write_connection() as (conn, cur), self._transaction(conn, cur):
                txn = UnitOfWork(conn, 0, GENESIS_HASH, "", hot=self.hot, _cursor=cur, inline=False)
                seq, h, last_at = self._begin(txn, prefetch)
                txn.head_seq, txn.head_hash = seq, h
                txn.now = max(clock() if callable(clock) else clock, last_at)
                yield txn
                self._finish(txn)

    def _begin(self, txn: UnitOfWork, prefetch: Prefetch | None) -> tuple[int, str, str]:
        """BEGIN, the head (read, not locked: signed heads sign it) and the reads `prefetch`
        names, the connection row locks first, leave as one multi-statement string: one round
        trip. Each read is its own statement after the locks, so in READ COMMITTED each takes
        its snapshot once the locks are held and sees what the previous holder committed."""
        plan = txn.prefetch_plan(prefetch) if prefetch else []
        answers = send_pg(txn.conn, ["BEGIN", self.hot.sql["head"]]
                          + [(self.hot.sql[name], params) for _, _, name, params in plan])
        for (kind, item, _, _), rows in zip(plan, answers[2:]):
            txn.keep(kind, item, rows)
        return self._head_tuple(answers[1][0] if answers[1] else None)

    def _finish(self, txn: UnitOfWork) -> None:
        """Every write, the NOTIFY that wakes the sequencer (delivered at commit) and the COMMIT
        leave as one multi-statement string: one round trip."""
        cur = Gather(txn.conn.connection.driver_connection)
        txn.flush(cur)
        send_pg(txn.conn, cur.statements + (["NOTIFY " + APPENDED] if txn.recorded else []) + ["COMMIT"])

    def sealed(self, txn: UnitOfWork) -> dict[tuple[str, int], Envelope]:
        """Wait until the sequencer has sealed every event `txn` recorded or returned (woken by
        its NOTIFY), up to wait_seconds; then StorageError (503): the events are committed and
        will be sequenced, the answer just cannot say so yet."""
        wanted = list(dict.fromkeys([(e.stream, e.version) for e in txn.recorded] + txn.awaited))
        if not wanted:
            return {}
        streams, versions = [w[0] for w in wanted], [w[1] for w in wanted]
        committed = time.monotonic()
        deadline = committed + self.wait_seconds
        beacon = self._beacon
        while True:
            seen = beacon.generation
            with self._quick_read() as cur:
                cur.execute(_SEALED, (streams, versions))
                rows = cur.fetchall()
            if len(rows) == len(wanted):
                self._lags.extend([time.monotonic() - committed] * len(txn.recorded))
                return {(r[1], r[2]): Envelope.from_row(r) for r in rows}
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.StorageError("recorded, but not yet in the chain; it will be sequenced")
            if self.run_sequencer:
                self.start_sequencer()
            with beacon.cond:
                beacon.cond.wait_for(lambda: beacon.generation != seen, timeout=min(left, LEADER_IDLE_SECONDS * 2))

    def sequencing_lags(self) -> list[float]:
        """Seconds from each commit to its events seen sealed, one per event this process
        appended since the last call (the bench's commit -> seq lag)."""
        lags = list(self._lags)
        self._lags.clear()
        return lags

    def wait_sequenced(self, timeout: float | None = None) -> None:
        """Wait until no committed event is left unsequenced (rebuild, tests, shutdown)."""
        deadline = time.monotonic() + (self.wait_seconds if timeout is None else timeout)
        while True:
            seen = self._beacon.generation
            with self._quick_read() as cur:
                cur.execute("SELECT 1 FROM events WHERE seq IS NULL LIMIT 1")
                if cur.fetchone() is None:
                    return
            if time.monotonic() > deadline:
                raise errors.StorageError("events are still waiting to be sequenced")
            self.start_sequencer()
            with self._beacon.cond:
                self._beacon.cond.wait_for(lambda: self._beacon.generation != seen, timeout=LEADER_IDLE_SECONDS * 2)

    @contextmanager
    def _writers_held_off(self, now: str):
        """Rebuild: no writer can touch a connection while the connections and bindings tables
        are locked EXCLUSIVE (their row locks need ROW SHARE), and nothing may be unsequenced
        then, or the replay would miss it: wait for the sequencer, lock, check, else retry."""
        for _ in range(100):
            self.wait_sequenced()
            with self._write_connection() as (conn, cur), self._transaction(conn, cur):
                cur.execute("BEGIN")
                cur.execute("LOCK TABLE connections, bindings IN EXCLUSIVE MODE")
                cur.execute("SELECT 1 FROM events WHERE seq IS NULL LIMIT 1")
                if cur.fetchone() is not None:
                    cur.execute("ROLLBACK")
                    continue
                yield cur
                cur.execute("COMMIT")
                return
        raise errors.StorageError("writers kept the chain busy; try the rebuild again")

    def start_sequencer(self) -> None:
        """The sequencer (or its standby) and the listener: one thread per process, started by
        the first write (a forked worker starts its own)."""
        if self._background is not None and self._background_pid == os.getpid() and self._background.is_alive():
            return
        with self._background_lock:
            if self._background is not None and self._background_pid == os.getpid() and self._background.is_alive():
                return
            if self._beacon.stop or self._background_pid not in (None, os.getpid()):
                self._beacon = _Beacon()  # closed before, or inherited by a fork: a fresh one
            dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._background = threading.Thread(target=_background, name="ledger-sequencer", daemon=True,
                                                args=(weakref.ref(self), dsn, self._beacon, self.run_sequencer))
            self._background_pid = os.getpid()
            self._background.start()

    def close(self) -> None:
        """Stop the background thread (its session ends: a held sequencer lock goes to a standby).
        A later write starts it again."""
        self._beacon.stop = True
        self._beacon.bump()
        if self._background is not None and self._background_pid == os.getpid():
            self._background.join(timeout=5)

    @contextmanager
    def _transaction(self, conn: Connection, cur):
        """The connection is in autocommit mode and _begin/_finish send BEGIN and COMMIT with the
        statements around them; here only a failure's ROLLBACK is left to do."""
        driver = conn.connection.driver_connection
        try:
            yield
        except BaseException:
            if driver.info.transaction_status != PG_IDLE:
                driver.execute("ROLLBACK")
            raise

    @contextmanager
    def _write_connection(self) -> Iterator[tuple[Connection, object]]:
        """A pooled connection per transaction, in autocommit mode (see _transaction)."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT", ledger_write=True) as conn:
            yield conn, conn.connection.driver_connection.cursor()

    # -- reads ---------------------------------------------------------------------------------
    @contextmanager
    def _quick_read(self):
        """A pooled connection in autocommit mode for the statement (psycopg would otherwise send
        BEGIN and ROLLBACK: two round trips)."""
        with self._driver_errors():
            raw = self.engine.raw_connection()
        driver = raw.driver_connection
        try:
            driver.autocommit = True
            with self._driver_errors():
                yield driver.cursor()
        finally:
            try:
                driver.autocommit = False
            finally:
                raw.close()

    def _scan(self, driver, statement: str, params: dict, page: int) -> Iterator[tuple]:
        cur = driver.cursor(name="ledger_scan_" + uuid.uuid4().hex[:12])
        cur.itersize = page
        cur.execute(self.hot.sql[statement], params)
        while rows := cur.fetchmany(page):
            yield from rows
        cur.close()


class _Beacon:
    """Wake-ups from the background thread to the writers waiting for their seqs."""

    def __init__(self):
        self.cond = threading.Condition()
        self.generation = 0
        self.stop = False

    def bump(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()


def _background(store_ref, dsn: str, beacon: _Beacon, sequence: bool) -> None:
    """One connection: LISTEN for sealed batches (and wake the waiting writers); try for the
    sequencer's lock; while holding it, LISTEN for appends and seal until nothing is left. Ends
    with the store (a weak reference: a dropped store does not keep a connection open)."""
    import psycopg
    conn, leader = None, False
    while not beacon.stop and store_ref() is not None:
        try:
            if conn is None or conn.closed:
                conn, leader = psycopg.connect(dsn, autocommit=True), False
                conn.execute("LISTEN " + SEQUENCED)
                beacon.bump()  # a notification may have been missed while disconnected
            if sequence and not leader:
                leader = conn.execute("SELECT pg_try_advisory_lock(%s)", (SEQUENCER_LOCK,)).fetchone()[0]
                if leader:
                    conn.execute("LISTEN " + APPENDED)
                    log.info("sequencer active in process %s", os.getpid())
            while leader and not beacon.stop:
                sealed = seal_batch(conn)
                if sealed:
                    beacon.bump()
                if sealed < BATCH:  # what commits meanwhile wakes us with its NOTIFY
                    break
            wait = LEADER_IDLE_SECONDS if leader else STANDBY_RETRY_SECONDS
            for note in conn.notifies(timeout=wait, stop_after=1):
                if note.channel == SEQUENCED:
                    beacon.bump()
        except psycopg.Error as exc:
            (log.warning if conn is not None else log.debug)(
                "sequencer connection lost (%s); reconnecting", exc.__class__.__name__)
            try:
                conn.close()
            except Exception:
                pass
            conn, leader = None, False
            time.sleep(STANDBY_RETRY_SECONDS)
    if conn is not None:
        conn.close()  # the session ends: the lock, if held, frees for a standby


def seal_batch(conn) -> int:
    """Seal the oldest committed unsequenced events, in one transaction; how many.

    seq follows the head gap-free, in insertion-id order (see the module's order rule);
    prev_hash and hash by the chain's formula; recorded_at is the writer's time unless the head's
    is later (never back along the chain). The projection and outbox columns the writer could
    only fill with the provisional -version (last_seq, updated_at; causation_seq) are set to the
    event's seq and final time here. A crash rolls all of it back: the next holder redoes it."""
    with conn.transaction():
        seq, prev, last_at = conn.execute(
            "SELECT seq, hash, recorded_at FROM ledger_head WHERE id = 1 FOR UPDATE").fetchone()
        rows = conn.execute("SELECT id, stream, version, type, schema, data, meta, occurred_at, recorded_at "
                            "FROM events WHERE seq IS NULL ORDER BY id LIMIT %s", (BATCH,)).fetchall()
        if not rows:
            return 0
        ids, seqs, prevs, hashes, ats, cids, markers, cid_seqs, cid_ats = ([] for _ in range(9))
        for id_, stream, version, type_, schema, data, meta, occurred, recorded in rows:
            seq += 1
            at = recorded if recorded > last_at else last_at
            h = link(prev, envelope_text(seq=seq, stream=stream, version=version, type=type_, schema=schema,
                                         data_json=data, meta_json=meta, occurred_at=occurred,
                                         recorded_at=at, prev_hash=prev))
            ids.append(id_), seqs.append(seq), prevs.append(prev), hashes.append(h), ats.append(at)
            if stream.startswith("connection:"):
                cids.append(stream[len("connection:"):]), markers.append(-version)
                cid_seqs.append(seq), cid_ats.append(at)
            prev, last_at = h, at
        with conn.pipeline():  # the writes below in one round trip, not one each
            _seal_writes(conn, (ids, seqs, prevs, hashes, ats), (cids, markers, cid_seqs, cid_ats), (seq, prev, last_at))
    return len(rows)


def _seal_writes(conn, sealed, touched, head) -> None:
    ids, seqs, prevs, hashes, ats = sealed
    cids, markers, cid_seqs, cid_ats = touched
    seq, prev, last_at = head
    conn.execute("UPDATE events e SET seq = v.seq, prev_hash = v.prev, hash = v.hash, recorded_at = v.at "
                 "FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[]) "
                 "AS v(id, seq, prev, hash, at) WHERE e.id = v.id", (ids, seqs, prevs, hashes, ats))
    if cids:
        # Row locks in connection_id order, as writers take theirs: no deadlock between us.
        conn.execute("SELECT 1 FROM connections WHERE connection_id = ANY(%s) ORDER BY connection_id FOR UPDATE",
                     (sorted(set(cids)),))
        conn.execute("UPDATE connections c SET last_seq = v.seq, updated_at = v.at "
                     "FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[]) AS v(cid, marker, seq, at) "
                     "WHERE c.connection_id = v.cid AND c.last_seq = v.marker", (cids, markers, cid_seqs, cid_ats))
        conn.execute("UPDATE outbox o SET causation_seq = v.seq "
                     "FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) AS v(cid, marker, seq) "
                     "WHERE o.connection_id = v.cid AND o.causation_seq = v.marker", (cids, markers, cid_seqs))
    conn.execute("UPDATE ledger_head SET seq = %s, hash = %s, recorded_at = %s WHERE id = 1", (seq, prev, last_at))
    conn.execute("SELECT pg_notify(%s, %s)", (SEQUENCED, str(seq)))
