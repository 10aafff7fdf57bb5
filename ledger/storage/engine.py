"""Engines as the ledger needs them: the backend's own settings (sqlite.configure_engine,
postgres.configure_engine), and the store that goes with each (open_store)."""
from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine


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
        from . import sqlite
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **kw)
        sqlite.configure_engine(engine)
        return engine
    from . import postgres
    sizes = {} if "poolclass" in kw else {"pool_size": 10, "max_overflow": 20}
    engine = create_engine(url, **sizes, **kw)
    postgres.configure_engine(engine)
    return engine


def open_store(engine: Engine, **options):
    """The EventStore for the engine's backend."""
    if engine.dialect.name == "sqlite":
        from .sqlite import SQLiteStore
        return SQLiteStore(engine)
    from .postgres import PostgresStore
    return PostgresStore(engine, **options)


def check_reachable(url: str) -> None:
    """Connect once and run SELECT 1 (start-up checks); the driver's error propagates as is,
    and the engine is disposed so a forking server's children inherit no connection."""
    from sqlalchemy import text
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def unreachable_reason(exc: BaseException) -> str | None:
    """One line naming why the database could not be reached, or None if `exc` is not that."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from ..errors import StorageError
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return "storage unreachable: " + (first[0] if first else type(exc).__name__)
    if isinstance(exc, StorageError):
        return f"storage unreachable: {exc.message}"
    return None
