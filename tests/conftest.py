"""Shared fixtures. Storage tests run once per backend: SQLite always, PostgreSQL when
TEST_DATABASE_URL is set (and in CI it must be reachable)."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

from tests.support import databases as dbs
from ledger.storage.migrate import upgrade

BACKENDS = ["sqlite"] + (["postgresql"] if dbs.pg_admin_url() else [])


def pytest_sessionstart(session):
    if os.environ.get("CI", "").lower() in ("1", "true") and not dbs.pg_admin_url():
        pytest.exit("CI needs TEST_DATABASE_URL (PostgreSQL) set", returncode=1)
    admin = dbs.pg_admin_url()
    if admin:
        try:
            engine = create_engine(admin)
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
        except Exception as exc:  # an unreachable PostgreSQL is a failure, never a skip
            pytest.exit(f"TEST_DATABASE_URL is set but PostgreSQL is unreachable: {exc}", returncode=1)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return str(path)


@pytest.fixture(scope="session")
def pg_url():
    admin = dbs.pg_admin_url()
    if not admin:
        pytest.skip("TEST_DATABASE_URL not set")
    url = dbs.create_pg_database(admin)
    upgrade(url)
    yield url
    dbs.drop_pg_database(admin, url)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path, sqlite_template) -> str:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        return dbs.copy_sqlite(sqlite_template, tmp_path)
    url = request.getfixturevalue("pg_url")
    dbs.empty_pg(url)
    return url


@pytest.fixture
def engine(db_url):
    from ledger.storage.engine import make_engine
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine):
    from ledger.storage.engine import open_store
    store = open_store(engine)
    yield store
    store.close()


@pytest.fixture
def ledger(store):
    from ledger.service import Ledger
    return Ledger(store)
