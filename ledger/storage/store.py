"""EventStore: the storage interface every backend implements, and what they share.

A backend (sqlite.py, postgres.py) supplies the write transaction (how writers take turns and
how events get their seq), a quick read cursor and a scan cursor; reads of the chain, verify and
rebuild are written once here. Chain readers see sequenced events only: every read of `events`
walks a seq range, or asks `seq IS NOT NULL`.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from orjson import loads as _loads  # 3-4x the stdlib's parse speed; hashing still uses stdlib json

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from .. import errors
from ..chain import GENESIS_HASH, ChainWalker, envelope_text, export_line, walk_rows
from ..envelope import EVENT_COLUMNS, Envelope
from ..projections import BINDING_COLUMNS, CONNECTION_COLUMNS, Binding, ConnectionState, Projection, replay
from .reads import PageReads, Reads
from .statements import Statements
from .tables import connections, events, ledger_head
from .unit_of_work import Prefetch, UnitOfWork
from .verifying import driver_target, verify_in_parallel

_EVENT_COLS = tuple(events.c[name] for name in EVENT_COLUMNS)
PAGE = 5000
PARALLEL_FROM = 200_000  # events: below this, starting processes costs more than it saves


def _replay_envelopes(rows) -> Iterator[Envelope]:
    """Envelopes for projections from replay_scan rows: meta parsed only where a projection reads
    it (the scan sends it only then), and no hashes (no projection reads them)."""
    for r in rows:
        yield Envelope(r[0], r[1], r[2], r[3], r[4], _loads(r[5]), _loads(r[6]) if r[6] else {}, r[7], r[8], "", "")


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class EventStore(Reads, PageReads):
    """Storage of the ledger on one engine. Use `open_store(engine)` for the backend's own."""

    #: verify() may split a long chain across processes (the database is reachable from them)
    parallel_verify = True

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect.name  # for the use cases' remaining Core queries (issue 13)
        self.hot = Statements(self.PARAMSTYLE)
        self._dbapi = engine.dialect.loaded_dbapi  # the hot path's cursor raises driver errors

    # -- what a backend supplies ------------------------------------------------------------
    PARAMSTYLE = "named"

    @contextmanager
    def write(self, clock, lock_head: bool = True, prefetch: Prefetch | None = None) -> Iterator[UnitOfWork]:
        """One write transaction (a UnitOfWork); commits on clean exit, rolls back otherwise.

        `clock` (a callable giving the envelope's time, or that time) gives recorded_at, never
        less than the head's. `prefetch` names what the transaction will read (PostgreSQL sends
        it in one round trip). lock_head=False: work that appends nothing (outbox claims)."""
        raise NotImplementedError

    def sealed(self, txn: UnitOfWork) -> dict[tuple[str, int], Envelope]:
        """The events a committed unit of work recorded or returned, with their seq and hash, by
        (stream, version): at once where sequencing is inline (SQLite), once the sequencer has
        reached them (PostgreSQL)."""
        return {(e.stream, e.version): e for e in txn.recorded}

    @contextmanager
    def _quick_read(self):
        """A driver cursor for one read statement, without a transaction around it."""
        raise NotImplementedError

    def _scan(self, driver, statement: str, params: dict, page: int) -> Iterator[tuple]:
        """Rows of one statement, streamed in pages."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop whatever the backend runs beside the requests (PostgreSQL: the sequencer)."""

    @contextmanager
    def _write_errors(self):
        """A write transaction's driver errors as the ledger's own, on either backend: those of
        any statement, and a lost race on a unique key."""
        try:
            with self._driver_errors():
                yield
        except (IntegrityError, self._dbapi.IntegrityError) as exc:
            raise errors.ConcurrencyError("a concurrent write won; retry") from exc

    @contextmanager
    def _driver_errors(self):
        """Driver errors (SQLAlchemy's or, on the hot paths run on the driver's cursor, the
        driver's own) as the ledger's own."""
        try:
            yield
        except (OperationalError, self._dbapi.OperationalError) as exc:
            raise errors.StorageError("the database is unavailable") from exc
        except (DataError, self._dbapi.DataError) as exc:
            # A value the column cannot hold got past validation: refuse it, never a 500.
            raise errors.InvalidInput("a value is too long or not storable") from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (one snapshot on SQLite while its transaction lasts)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise errors.StorageError("the database is unavailable") from exc

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

    def read_stream(self, stream: str) -> list[Envelope]:
        with self.read() as conn:
            rows = conn.execute(select(*_EVENT_COLS).where(events.c.stream == stream, events.c.seq.isnot(None))
                                .order_by(events.c.version)).all()
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
            yield export_line(text_, r[10]) + "\n"

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
        if workers > 1 and last >= first and self.parallel_verify:
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
        """Replay from seq 1 into fresh projection rows, with writers held off so no append
        slips between the replay and the swap. Returns the projection and whether the live rows
        already equalled it."""
        with self._writers_held_off(now) as cur:
            live = (self.hot.all(cur, "live_connections", {}), self.hot.all(cur, "live_bindings", {}))
            # Read on another connection: writers are held off, so nothing can be appended
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

    @contextmanager
    def _writers_held_off(self, now: str):
        """A cursor in a transaction that no writer can run beside (the writers' own lock)."""
        with self.write(now) as txn:
            yield txn.cur

    def ping(self) -> None:
        with self.read() as conn:
            conn.execute(text("SELECT 1"))
