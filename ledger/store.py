"""EventStore: append, read, verify, rebuild. The only dialect-aware code in the ledger.

Writers take turns on one lock so `seq` is gap-free and in commit order and the chain never
forks: on PostgreSQL the single `ledger_head` row is locked (`SELECT … FOR UPDATE`); on SQLite
every write transaction is `BEGIN IMMEDIATE` (a deferred read-then-write can fail with
SQLITE_BUSY without waiting), entered under a process lock and an flock on a file beside the
database, so writers in other worker processes queue instead of spinning in the busy handler.
"""
from __future__ import annotations

import fcntl
import os
import threading
import uuid
from contextlib import contextmanager
from typing import Iterator

from orjson import loads as _loads  # 3-4x the stdlib's parse speed; hashing still uses stdlib json

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from . import errors
from .chain import GENESIS_HASH, ChainWalker, envelope_text, walk_rows
from .engine import PG_IDLE, Gather, send_pg
from .envelope import Envelope
from .hotsql import HotSQL
from .projections import BINDING_COLUMNS, CONNECTION_COLUMNS, Binding, ConnectionState, Projection, replay
from .tables import connections, events, ledger_head
from .txn import Prefetch, WriteTxn
from .verifying import driver_target, verify_in_parallel

_EVENT_COLS = (events.c.seq, events.c.stream, events.c.version, events.c.type, events.c.schema,
               events.c.data, events.c.meta, events.c.occurred_at, events.c.recorded_at,
               events.c.prev_hash, events.c.hash)
PAGE = 5000
PARALLEL_FROM = 200_000  # events: below this, starting processes costs more than it saves


def _replay_envelopes(rows) -> Iterator[Envelope]:
    """Envelopes for projections from replay_scan rows: meta parsed only where a projection reads
    it (the scan sends it only then), and no hashes (no projection reads them)."""
    for r in rows:
        yield Envelope(r[0], r[1], r[2], r[3], r[4], _loads(r[5]), _loads(r[6]) if r[6] else {}, r[7], r[8], "", "")


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class EventStore:
    """Storage of the ledger on one engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._thread_lock = threading.Lock()
        self._lock_path = self._sqlite_lock_path(engine)
        self.hot = HotSQL(self.dialect)
        self._dbapi = engine.dialect.loaded_dbapi  # the hot path's cursor raises driver errors
        self._lock_fd: int | None = None
        self._writer: Connection | None = None   # SQLite: this process's one write connection
        self._writer_pid: int | None = None
        self._writer_cursor = None
        self._readers = threading.local()        # SQLite: each thread's quick-read connection

    @staticmethod
    def _sqlite_lock_path(engine: Engine) -> str | None:
        if engine.dialect.name != "sqlite":
            return None
        db = make_url(str(engine.url)).database
        return f"{db}.lock" if db and db != ":memory:" else None

    # -- transactions --------------------------------------------------------------------
    @contextmanager
    def write(self, clock, lock_head: bool = True, prefetch: Prefetch | None = None) -> Iterator[WriteTxn]:
        """A serialised write transaction; commits on clean exit, rolls back otherwise.

        `clock` (a callable giving the envelope's time, or that time) is read only once the
        writers' lock is held, and never gives less than the head's recorded_at: so
        recorded_at never goes back along the chain, and "up to a time" is a prefix of seqs.
        `prefetch` names what the transaction will read, so PostgreSQL can fetch it with the
        head lock (one round trip); the writes then go with the COMMIT (a second one).
        lock_head=False is for work that appends nothing (outbox claims): on PostgreSQL it
        then runs beside appends, relying on row locks (SKIP LOCKED) instead of the chain lock."""
        with self._writer_turn():
            try:
                with self._write_connection() as (conn, cur), self._transaction(conn, cur):
                    txn = WriteTxn(conn, 0, GENESIS_HASH, "", hot=self.hot, _cursor=cur)
                    seq, h, last_at = self._begin(txn, lock_head, prefetch)
                    txn.head_seq, txn.head_hash = seq, h
                    txn.now = max(clock() if callable(clock) else clock, last_at)
                    yield txn
                    if txn.head_seq != seq and not lock_head:
                        raise RuntimeError("appended without holding the chain lock")
                    self._finish(txn, txn.head_seq != seq)
            except (IntegrityError, self._dbapi.IntegrityError) as exc:
                raise errors.ConcurrencyError("a concurrent write won; retry") from exc
            except (OperationalError, self._dbapi.OperationalError) as exc:
                raise errors.StorageError("the database is unavailable") from exc
            except (DataError, self._dbapi.DataError) as exc:
                # A value the column cannot hold got past validation: refuse it, never a 500.
                raise errors.InvalidInput("a value is too long or not storable") from exc

    def _begin(self, txn: WriteTxn, lock: bool, prefetch: Prefetch | None) -> tuple[int, str, str]:
        """Lock (PostgreSQL) and read the head, and read what `prefetch` names.

        PostgreSQL: BEGIN, the head lock and the reads leave as one multi-statement string, so
        one round trip. Each read is its own statement after the lock, so in READ COMMITTED
        each takes its snapshot once the lock is held and sees what the previous holder
        committed (a subquery of the locking statement would not)."""
        if self.dialect != "postgresql":
            return self._lock_head(txn, lock)  # BEGIN IMMEDIATE was sent by _transaction
        plan = txn.prefetch_plan(prefetch) if prefetch else []
        answers = send_pg(txn.conn, ["BEGIN", self.hot.sql["head_locked" if lock else "head"]]
                        + [(self.hot.sql[name], params) for _, _, name, params in plan])
        for (kind, item, _, _), rows in zip(plan, answers[2:]):
            txn.keep(kind, item, rows)
        return self._head_tuple(answers[1][0] if answers[1] else None)

    def _finish(self, txn: WriteTxn, head_moved: bool) -> None:
        """Write what the transaction buffered and the new head. PostgreSQL: every write and the
        COMMIT leave as one multi-statement string, so one round trip."""
        cur = Gather(txn.conn.connection.driver_connection) if self.dialect == "postgresql" else txn.cur
        txn.flush(cur)
        if head_moved:
            self.hot.run(cur, "update_head", {"seq": txn.head_seq, "hash": txn.head_hash, "recorded_at": txn.now})
            if self.dialect == "postgresql":
                # FEED NOTIFY (H7, issue 14): tells ledger/feed.py's listeners, delivered at COMMIT.
                # Stand-in until the sequencer sends it after sequencing (issue 12): move it there.
                cur.execute("SELECT pg_notify('ledger_sequenced', %(seq)s)", {"seq": str(txn.head_seq)})
        if self.dialect == "postgresql":
            send_pg(txn.conn, cur.statements + ["COMMIT"])

    @contextmanager
    def _transaction(self, conn: Connection, cur):
        """The transaction, on the driver. SQLite: BEGIN IMMEDIATE and COMMIT (SQLAlchemy's
        begin and commit cost more than the statements of a one-event append); a Core statement
        run inside joins it (see _on_begin) and SQLAlchemy then commits it. PostgreSQL: the
        connection is in autocommit mode and _begin/_finish send BEGIN and COMMIT with the
        statements around them; here only a failure's ROLLBACK is left to do."""
        driver = conn.connection.driver_connection
        if self.dialect == "postgresql":
            try:
                yield
            except BaseException:
                if driver.info.transaction_status != PG_IDLE:
                    driver.execute("ROLLBACK")
                raise
            return
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback() if conn.in_transaction() else driver.rollback()
            raise
        conn.commit() if conn.in_transaction() else driver.commit()

    @contextmanager
    def _write_connection(self) -> Iterator[tuple[Connection, object]]:
        """PostgreSQL: a pooled connection per transaction (writers run side by side until the
        head lock), in autocommit mode (see _transaction). SQLite: writers in this process
        already take turns on one lock, so they share one connection, kept open: checking a
        connection out of the pool and back cost more than the statements of an append."""
        if self.dialect == "postgresql":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT", ledger_write=True) as conn:
                yield conn, conn.connection.driver_connection.cursor()
            return
        if self._lock_path is None:
            with self.engine.connect().execution_options(ledger_write=True) as conn:
                yield conn, conn.connection.driver_connection.cursor()
            return
        conn = self._writer
        if conn is None or self._writer_pid != os.getpid():
            conn = self._writer = self.engine.connect().execution_options(ledger_write=True)
            self._writer_cursor = conn.connection.driver_connection.cursor()
            self._writer_pid = os.getpid()
        try:
            yield conn, self._writer_cursor
        except BaseException:
            if conn.invalidated or conn.closed:
                self._writer = None
            raise

    @contextmanager
    def _driver_errors(self):
        """Driver errors on the hot read paths (run on the driver's cursor) as the ledger's own."""
        try:
            yield
        except (OperationalError, self._dbapi.OperationalError) as exc:
            raise errors.StorageError("the database is unavailable") from exc
        except (DataError, self._dbapi.DataError) as exc:
            raise errors.InvalidInput("a value is not storable") from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (one snapshot on SQLite while its transaction lasts)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise errors.StorageError("the database is unavailable") from exc

    @contextmanager
    def _writer_turn(self):
        if self._lock_path is None:
            yield
            return
        with self._thread_lock:
            if self._lock_fd is None or self._lock_pid != os.getpid():
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                self._lock_pid = os.getpid()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _lock_head(self, txn: WriteTxn, lock: bool = True) -> tuple[int, str, str]:
        return self._head_tuple(self.hot.one(txn.cur, "head_locked" if self.dialect == "postgresql" and lock else "head"))

    @staticmethod
    def _head_tuple(row) -> tuple[int, str, str]:
        if row is None:
            raise errors.StorageError("the ledger is not initialised (run the migrations)")
        return row[0], row[1], row[2] or ""

    # -- reads ---------------------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        with self.read() as conn:
            return self._head_row(conn)

    @staticmethod
    def _head_row(conn) -> tuple[int, str]:
        row = conn.execute(select(ledger_head.c.seq, ledger_head.c.hash).where(ledger_head.c.id == 1)).first()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    def read_connection(self, cid: str) -> tuple[ConnectionState | None, tuple]:
        """One connection's projection row and bindings: the status-read hot path. One statement
        (one snapshot), on a connection kept for quick reads (see _quick_read)."""
        with self._quick_read() as cur:
            rows = self.hot.all(cur, "connection_and_agents", {"cid": cid})
        if not rows:
            return None, ()
        width = len(CONNECTION_COLUMNS)
        bound = tuple(Binding(r[width], cid, *r[width + 1:]) for r in rows if r[width] is not None)
        return ConnectionState(*rows[0][:width]), bound

    @contextmanager
    def _quick_read(self):
        """A driver cursor for one read statement, without a transaction around it.

        SQLite: each thread keeps a connection of its own, detached from the pool (the pool's
        checkout and checkin cost more than the read); in autocommit mode a statement is its own
        snapshot and holds nothing after it. PostgreSQL: a pooled connection in autocommit mode
        for the statement (psycopg would otherwise send BEGIN and ROLLBACK: two round trips)."""
        if self._lock_path is not None:
            local = self._readers
            try:
                with self._driver_errors():
                    raw = getattr(local, "raw", None)
                    if raw is None or local.pid != os.getpid():
                        raw = local.raw = self.engine.raw_connection()
                        raw.detach()
                        local.pid = os.getpid()
                    yield raw.dbapi_connection.cursor()  # detached: the fairy no longer reaches it otherwise
            except errors.StorageError:
                local.raw = None  # opened afresh next time
                raise
            return
        with self._driver_errors():
            raw = self.engine.raw_connection()
        driver = raw.driver_connection
        try:
            if self.dialect == "postgresql":
                driver.autocommit = True
            with self._driver_errors():
                yield driver.cursor()
        finally:
            try:
                if self.dialect == "postgresql":
                    driver.autocommit = False
                else:
                    driver.rollback()
            finally:
                raw.close()

    def read_stream(self, stream: str) -> list[Envelope]:
        with self.read() as conn:
            rows = conn.execute(select(*_EVENT_COLS).where(events.c.stream == stream).order_by(events.c.version)).all()
        return [Envelope.from_row(r) for r in rows]

    def read_after(self, after: int = 0, limit: int = 1000) -> list[Envelope]:
        """Up to `limit` events with seq > after, in order (paging by seq)."""
        with self.read() as conn:
            rows = conn.execute(select(*_EVENT_COLS).where(events.c.seq > after)
                                .order_by(events.c.seq).limit(limit)).all()
        return [Envelope.from_row(r) for r in rows]

    def iter_rows(self, after: int = 0, until_seq: int | None = None, until_time: str | None = None,
                  page: int = PAGE, statement: str = "scan") -> Iterator[tuple]:
        """Raw event rows in seq order, streamed by the driver in constant memory: one
        statement (one consistent snapshot); a server-side cursor on PostgreSQL."""
        if until_time is not None:
            at = self.seq_at(until_time)
            until_seq = at if until_seq is None else min(until_seq, at)
        params = {"after": after, "until_seq": until_seq if until_seq is not None else 2 ** 62,
                  "until_time": until_time or "9999"}
        with self._driver_errors():
            raw = self.engine.raw_connection()
        driver = raw.driver_connection
        try:
            with self._driver_errors():
                yield from self._scan(driver, statement, params, page)
        finally:
            try:
                driver.rollback()
            except self._dbapi.Error:
                pass  # the connection broke mid-scan: the pool discards it
            finally:
                raw.close()

    def _scan(self, driver, statement: str, params: dict, page: int) -> Iterator[tuple]:
        if self.dialect == "postgresql":
            cur = driver.cursor(name="ledger_scan_" + uuid.uuid4().hex[:12])
            cur.itersize = page
        else:
            cur = driver.cursor()
            cur.arraysize = page
        cur.execute(self.hot.sql[statement], params)
        while rows := cur.fetchmany(page):
            yield from rows
        cur.close()

    def seq_at(self, time: str, strict: bool = False) -> int:
        """The last seq recorded at or before `time` (before it, if strict); 0 if none.

        recorded_at never decreases along the chain (EventStore.write), so this bisects seq on
        the primary key: about 20 point reads for a million events, and no index on time."""
        def early_enough(at: str | None) -> bool:
            return at is None or (at < time if strict else at <= time)
        with self.read() as conn:
            lo, hi = 0, self._head_row(conn)[0]
            while lo < hi:
                mid = (lo + hi + 1) // 2
                at = conn.execute(select(events.c.recorded_at).where(events.c.seq == mid)).scalar()
                if early_enough(at):
                    lo = mid
                else:
                    hi = mid - 1
        return lo

    def replay(self, until_seq: int | None = None, until_time: str | None = None) -> Projection:
        """Every projection folded from seq 1 up to a seq or a recorded time, in memory."""
        return replay(_replay_envelopes(self.iter_rows(0, until_seq, until_time, statement="replay_scan")))

    def iter_envelopes(self, after: int = 0, until_seq: int | None = None,
                       until_time: str | None = None) -> Iterator[Envelope]:
        """Everything after a seq, up to a seq or a time (recorded_at), in order."""
        for r in self.iter_rows(after, until_seq, until_time):
            yield Envelope.from_row(r)

    def iter_export_lines(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[str]:
        """NDJSON lines (hashed envelope + hash) straight from the stored canonical text."""
        for r in self.iter_rows(max(0, from_seq - 1), until_seq=to_seq):
            text_ = envelope_text(seq=r[0], stream=r[1], version=r[2], type=r[3], schema=r[4],
                                  data_json=r[5], meta_json=r[6], occurred_at=r[7],
                                  recorded_at=r[8], prev_hash=r[9])
            yield text_[:-1] + ',"hash":"' + r[10] + '"}\n'

    def query_events(self, after: int = 0, limit: int = 100, *, connection_id: str | None = None,
                     user_id: str | None = None, type: str | None = None, since: str | None = None,
                     until: str | None = None) -> list[Envelope]:
        """Filtered page of events with seq > after (the auditor's search). Times become seq
        bounds first (see seq_at), so every filter walks one seq range."""
        from sqlalchemy import literal, or_
        if since:
            after = max(after, self.seq_at(since, strict=True))
        q = select(*_EVENT_COLS).where(events.c.seq > after)
        if until:
            q = q.where(events.c.seq <= self.seq_at(until))
        if connection_id:
            q = q.where(or_(events.c.stream == f"connection:{connection_id}",
                            events.c.data.like(f'%"connection_id":"{_like_escape(connection_id)}"%', escape="\\")))
        if user_id:
            owned = select(literal("connection:") + connections.c.connection_id).where(connections.c.user_id == user_id)
            q = q.where(events.c.stream.in_(owned))
        if type:
            q = q.where(events.c.type == type)
        if since:
            q = q.where(events.c.recorded_at >= since)
        if until:
            q = q.where(events.c.recorded_at <= until)
        with self.read() as conn:
            rows = conn.execute(q.order_by(events.c.seq).limit(limit)).all()
        return [Envelope.from_row(r) for r in rows]

    # -- verification and rebuild ----------------------------------------------------------
    def verify(self, from_seq: int | None = None, to_seq: int | None = None, workers: int | None = None):
        """Walk the chain from the stored columns; the first bad seq if any.

        Each event's hash depends only on its own row, so contiguous seq ranges are checked in
        `workers` processes side by side and stitched (each range must start where the one
        before ended). By default: one per core, for ranges of PARALLEL_FROM events or more."""
        first = max(from_seq or 1, 1)
        last = to_seq if to_seq is not None else self._last_seq()
        if workers is None:
            workers = (os.cpu_count() or 1) if last - first + 1 >= PARALLEL_FROM else 1
        if workers > 1 and last >= first and (self._lock_path or self.dialect == "postgresql"):
            result = verify_in_parallel(driver_target(self.engine), first, last, workers)
        else:
            walker = ChainWalker() if first == 1 else ChainWalker(None, None)
            walk_rows(walker, self.iter_rows(first - 1, until_seq=to_seq))
            result = walker.result()
        if result.ok and to_seq is None and first == 1:
            head_seq, head_hash = self.head()
            if (head_seq, head_hash) != (result.head_seq, result.head_hash):
                bad = min(head_seq, result.head_seq) + 1
                return type(result)(False, result.head_seq, result.head_hash, result.checked, bad,
                                    "events are missing after the last intact one")
        return result

    def _last_seq(self) -> int:
        with self.read() as conn:
            return conn.execute(select(func.max(events.c.seq))).scalar() or 0

    def projection_rows(self) -> tuple[list[dict], list[dict]]:
        """The live projection rows, ordered like Projection's rows."""
        raw = self.engine.raw_connection()
        try:
            cur = raw.driver_connection.cursor()
            rows = self.hot.all(cur, "live_connections", {}), self.hot.all(cur, "live_bindings", {})
        finally:
            raw.driver_connection.rollback()
            raw.close()
        return ([dict(zip(CONNECTION_COLUMNS, r)) for r in rows[0]],
                [dict(zip(BINDING_COLUMNS, r)) for r in rows[1]])

    def rebuild(self, now: str) -> tuple[Projection, bool]:
        """Replay from seq 1 into fresh projection rows, under the writers' lock so no append
        slips between the replay and the swap. Returns the projection and whether the live rows
        already equalled it."""
        with self.write(now) as txn:
            cur = txn.cur
            live = (self.hot.all(cur, "live_connections", {}), self.hot.all(cur, "live_bindings", {}))
            # Read on another connection: we hold the writers' lock, so nothing can be appended
            # between this scan and the swap below.
            projection = replay(_replay_envelopes(self.iter_rows(statement="replay_scan")))
            same = [tuple(r) for r in live[0]] == projection.connection_tuples() and \
                [tuple(r) for r in live[1]] == projection.binding_tuples()
            if not same:
                self.hot.run(cur, "delete_all_bindings", {})
                self.hot.run(cur, "delete_all_connections", {})
                for name, rows in (("insert_connection", projection.connection_rows()),
                                   ("insert_binding", projection.binding_rows())):
                    for i in range(0, len(rows), PAGE):
                        self.hot.many(cur, name, rows[i:i + PAGE])
        return projection, same

    def ping(self) -> None:
        with self.read() as conn:
            conn.execute(text("SELECT 1"))
