"""Migrations: empty -> head on both backends, no drift from the models, readyz tells the truth."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from ledger.storage.engine import normalize_url
from ledger.storage.tables import metadata
from tests.support import databases as dbs
from web import create_app
from ledger.storage.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.db"
        return
    admin = dbs.pg_admin_url()
    if not admin:
        pytest.skip("TEST_DATABASE_URL not set")
    url = dbs.create_pg_database(admin, "cl_mig")
    yield url
    dbs.drop_pg_database(admin, url)


def test_upgrade_from_empty_to_head_creates_every_table_and_autogenerate_finds_no_diff(empty_url):
    upgrade(empty_url)
    engine = create_engine(normalize_url(empty_url))
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert set(metadata.tables) <= tables
    assert diff == []


def test_readyz_is_503_on_an_unmigrated_database_and_200_after_upgrade(empty_url):
    app = create_app({"DATABASE_URL": empty_url, "AUTO_MIGRATE": False})
    client = app.test_client()
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json["error"]["code"] == "NOT_READY" and resp.json["success"] is False
    assert client.get("/healthz").status_code == 200
    upgrade(empty_url)
    assert client.get("/readyz").status_code == 200
    app.extensions["engine"].dispose()


def test_readyz_is_503_when_the_database_is_unreachable():
    app = create_app({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere", "AUTO_MIGRATE": False})
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503 and resp.json["error"]["status"] == 503
