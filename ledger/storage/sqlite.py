"""SQLite: one writer at a time, so events are sequenced inline in the writing transaction.

Every write transaction is `BEGIN IMMEDIATE` (a deferred read-then-write can fail with
SQLITE_BUSY without waiting), entered under a process lock and an flock on a file beside the
database, so writers in other worker processes queue instead of spinning in the busy handler.
The writer holds the chain for its whole transaction: it reads the head, seals its events
(seq, prev_hash, hash, recorded_at) and moves the head before COMMIT.
"""
from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from .. import errors
from ..chain import GENESIS_HASH
from .store import EventStore
from .unit_of_work import Prefetch, UnitOfWork


def configure_engine(engine: Engine) -> None:
    """WAL, synchronous=FULL, a long busy timeout, and BEGIN issued by us (pysqlite's own is
    deferred; writers need BEGIN IMMEDIATE)."""
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite's is deferred)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        driver = conn.connection.driver_connection
        if driver.in_transaction:
            return  # the store's writer began it already (see SQLiteStore._transaction)
        # On the driver's connection: exec_driver_sql's bookkeeping cost more than the BEGIN.
        driver.execute("BEGIN IMMEDIATE" if conn.get_execution_options().get("ledger_write") else "BEGIN")


class SQLiteStore(EventStore):
    """The ledger on SQLite: inline sequencing under one writers' lock."""

    def __init__(self, engine: Engine):
        super().__init__(engine)
        self._thread_lock = threading.Lock()
        db = make_url(str(engine.url)).database
        self._lock_path = f"{db}.lock" if db and db != ":memory:" else None
        # An in-memory database is private to its connection: no second process can read it.
        self.parallel_verify = self._lock_path is not None
        self._lock_fd: int | None = None
        self._lock_pid: int | None = None
        self._writer: Connection | None = None   # this process's one write connection
        self._writer_pid: int | None = None
        self._writer_cursor = None
        self._readers = threading.local()        # each thread's quick-read connection

    # -- the write transaction ---------------------------------------------------------------
    @contextmanager
    def write(self, clock, lock_head: bool = True, prefetch: Prefetch | None = None) -> Iterator[UnitOfWork]:
        """A serialised write transaction. `clock` is read only once the writers' lock is held,
        and never gives less than the head's recorded_at: so recorded_at never goes back along
        the chain, and "up to a time" is a prefix of seqs. `prefetch` changes nothing here (a
        read is a local call)."""
        with self._writer_turn():
            with self._write_errors():
                with self._write_connection() as (conn, cur), self._transaction(conn, cur):
                    txn = UnitOfWork(conn, 0, GENESIS_HASH, "", hot=self.hot, _cursor=cur)
                    seq, h, last_at = self._head_tuple(self.hot.one(cur, "head"))
                    txn.head_seq, txn.head_hash = seq, h
                    txn.now = max(clock() if callable(clock) else clock, last_at)
                    yield txn
                    txn.flush(cur)
                    if txn.head_seq != seq:
                        self.hot.run(cur, "update_head", {"seq": txn.head_seq, "hash": txn.head_hash,
                                                          "recorded_at": txn.now})

    @contextmanager
    def _transaction(self, conn: Connection, cur):
        """BEGIN IMMEDIATE and COMMIT on the driver (SQLAlchemy's begin and commit cost more than
        the statements of a one-event append); a Core statement run inside joins it (see
        configure_engine's _on_begin) and SQLAlchemy then commits it."""
        driver = conn.connection.driver_connection
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback() if conn.in_transaction() else driver.rollback()
            raise
        conn.commit() if conn.in_transaction() else driver.commit()

    @contextmanager
    def _write_connection(self) -> Iterator[tuple[Connection, object]]:
        """Writers in this process already take turns on one lock, so they share one connection,
        kept open: checking a connection out of the pool and back cost more than the statements
        of an append. (An in-memory database: a pooled one per transaction.)"""
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

    # -- reads ---------------------------------------------------------------------------------
    @contextmanager
    def _quick_read(self):
        """Each thread keeps a connection of its own, detached from the pool (the pool's checkout
        and checkin cost more than the read); in autocommit mode a statement is its own snapshot
        and holds nothing after it."""
        if self._lock_path is None:
            with self._driver_errors():
                raw = self.engine.raw_connection()
            try:
                with self._driver_errors():
                    yield raw.driver_connection.cursor()
            finally:
                try:
                    raw.driver_connection.rollback()
                finally:
                    raw.close()
            return
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

    def _scan(self, driver, statement: str, params: dict, page: int) -> Iterator[tuple]:
        cur = driver.cursor()
        cur.arraysize = page
        cur.execute(self.hot.sql[statement], params)
        while rows := cur.fetchmany(page):
            yield from rows
        cur.close()
