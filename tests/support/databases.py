"""Test databases: a fresh SQLite file per test (copied from one migrated template) and, when
TEST_DATABASE_URL is set, a private PostgreSQL database per test session, emptied per test."""
from __future__ import annotations

import os
import shutil
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ledger.storage.engine import normalize_url

# ledger_head first: a sequencer still running locks it before events, so TRUNCATE (which locks
# the tables in this order) waits for its batch instead of deadlocking with it.
PROJECT_TABLES = ("ledger_head", "events", "idempotency_keys", "connections", "bindings", "outbox", "api_keys", "polls",
                  "reconcile_runs", "webhook_endpoints", "webhook_deliveries")


def pg_admin_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    return normalize_url(url) if url else None


def create_pg_database(admin_url: str, prefix: str = "cl_test") -> str:
    """CREATE a uniquely named database next to the admin one; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def empty_pg(url: str) -> None:
    """Every project table emptied and the chain head reset, without re-running migrations."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(PROJECT_TABLES)))
        conn.execute(text("INSERT INTO ledger_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})
    engine.dispose()


def copy_sqlite(template: str, dest_dir) -> str:
    dest = os.path.join(str(dest_dir), "ledger.db")
    shutil.copyfile(template, dest)
    return f"sqlite:///{dest}"
