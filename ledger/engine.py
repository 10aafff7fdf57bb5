"""Engines as the ledger needs them, and PostgreSQL's one-round-trip statement batches.

SQLite: WAL, synchronous=FULL, a long busy timeout, and BEGIN issued by us (pysqlite's own is
deferred; writers need BEGIN IMMEDIATE). PostgreSQL: psycopg 3, with a ping only for
connections that sat idle (see _ping_when_idle).
"""
from __future__ import annotations

import time

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError


def normalize_url(url: str) -> str:
    """postgres:// and postgresql:// mean psycopg 3 here."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def make_engine(url: str, **kw) -> Engine:
    """An engine with the durability and locking settings the ledger relies on."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **kw)
        _configure_sqlite(engine)
        return engine
    sizes = {} if "poolclass" in kw else {"pool_size": 10, "max_overflow": 20}
    engine = create_engine(url, **sizes, **kw)
    _ping_when_idle(engine)
    return engine


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


def _configure_sqlite(engine: Engine) -> None:
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
            return  # the store's writer began it already (see EventStore._transaction)
        # On the driver's connection: exec_driver_sql's bookkeeping cost more than the BEGIN.
        driver.execute("BEGIN IMMEDIATE" if conn.get_execution_options().get("ledger_write") else "BEGIN")



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
