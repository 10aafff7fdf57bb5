"""PostgreSQL: psycopg 3; a write transaction in two round trips (reads with BEGIN, writes
with COMMIT), statements sent as one multi-statement string.
"""
from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, DisconnectionError, IntegrityError, OperationalError

from .. import errors
from ..chain import GENESIS_HASH
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


class PostgresStore(EventStore):
    """The ledger on PostgreSQL."""
    PARAMSTYLE = "pyformat"

    def __init__(self, engine: Engine, **options):
        super().__init__(engine)

    @contextmanager
    def write(self, clock, lock_head: bool = True, prefetch: Prefetch | None = None) -> Iterator[UnitOfWork]:
        """A serialised write transaction; commits on clean exit, rolls back otherwise.

        `clock` (a callable giving the envelope's time, or that time) is read only once the
        writers' lock is held, and never gives less than the head's recorded_at: so
        recorded_at never goes back along the chain, and "up to a time" is a prefix of seqs.
        `prefetch` names what the transaction will read, so PostgreSQL can fetch it with the
        head lock (one round trip); the writes then go with the COMMIT (a second one).
        lock_head=False is for work that appends nothing (outbox claims): on PostgreSQL it
        then runs beside appends, relying on row locks (SKIP LOCKED) instead of the chain lock."""
        if True:
            try:
                with self._write_connection() as (conn, cur), self._transaction(conn, cur):
                    txn = UnitOfWork(conn, 0, GENESIS_HASH, "", hot=self.hot, _cursor=cur)
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

    def _begin(self, txn: UnitOfWork, lock: bool, prefetch: Prefetch | None) -> tuple[int, str, str]:
        """Lock and read the head, and read what `prefetch` names.

        BEGIN, the head lock and the reads leave as one multi-statement string, so
        one round trip. Each read is its own statement after the lock, so in READ COMMITTED
        each takes its snapshot once the lock is held and sees what the previous holder
        committed (a subquery of the locking statement would not)."""
        plan = txn.prefetch_plan(prefetch) if prefetch else []
        answers = send_pg(txn.conn, ["BEGIN", self.hot.sql["head_locked" if lock else "head"]]
                        + [(self.hot.sql[name], params) for _, _, name, params in plan])
        for (kind, item, _, _), rows in zip(plan, answers[2:]):
            txn.keep(kind, item, rows)
        return self._head_tuple(answers[1][0] if answers[1] else None)

    def _finish(self, txn: UnitOfWork, head_moved: bool) -> None:
        """Write what the transaction buffered and the new head: every write and the
        COMMIT leave as one multi-statement string, so one round trip."""
        cur = Gather(txn.conn.connection.driver_connection)
        txn.flush(cur)
        if head_moved:
            self.hot.run(cur, "update_head", {"seq": txn.head_seq, "hash": txn.head_hash, "recorded_at": txn.now})
        send_pg(txn.conn, cur.statements + ["COMMIT"])

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
