"""Shared fixtures. Storage tests run once per backend: SQLite always, PostgreSQL when
TEST_DATABASE_URL is set (and in CI it must be reachable)."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

from tests.support import databases as dbs
from web.db import upgrade

# A "discard" address: a test app that reaches Composio without naming one gets a refused
# connection, never an answer that could be recorded as a fact.
NOWHERE_COMPOSIO = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _sandbox_by_default(monkeypatch):
    """Production is the service's default; apps built in tests ask for the sandbox explicitly
    (a test of production mode passes LEDGER_ENV=production, or a clean environment to a process)."""
    monkeypatch.setenv("LEDGER_ENV", "development")
    monkeypatch.setenv("COMPOSIO_BASE_URL", NOWHERE_COMPOSIO)


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
    from ledger.engine import make_engine
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine):
    from ledger.store import EventStore
    return EventStore(engine)


@pytest.fixture
def ledger(store):
    from ledger.service import Ledger
    return Ledger(store)


# -- a summary per backend, printed above pytest's own closing line --------------------------------
_OUTCOMES: dict[str, dict[str, int]] = {}


def _backend_of(item_or_report) -> str:
    callspec = getattr(item_or_report, "callspec", None)
    if callspec is not None:
        return str(callspec.params.get("db_url", "any backend"))
    return "any backend"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().ledger_backend = _backend_of(item)


def pytest_runtest_logreport(report):
    backend = getattr(report, "ledger_backend", "any backend")
    counts = _OUTCOMES.setdefault(backend, {"passed": 0, "failed": 0, "skipped": 0})
    if report.when == "call" or (report.when == "setup" and not report.passed):
        kind = "passed" if report.passed else "skipped" if report.skipped else "failed"
        counts[kind] += 1
    elif report.when == "teardown" and report.failed:
        counts["failed"] += 1


def pytest_terminal_summary(terminalreporter):
    if not _OUTCOMES:
        return
    terminalreporter.section("per backend")
    for backend in sorted(_OUTCOMES):
        c = _OUTCOMES[backend]
        terminalreporter.write_line(f"  {backend:<12} {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped")
