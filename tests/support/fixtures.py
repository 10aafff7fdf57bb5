"""flaskr-style fixtures, for every test package: a real app per test on each backend, the real
composio SDK pointed at a local Composio-compatible server, and Clerk tokens signed with real RSA
keys served as a JWKS. tests/conftest.py makes them available everywhere."""
from __future__ import annotations

import pytest

from tests.support.app import AuthActions, app_config
from tests.support.clerk import JwksServer, new_rsa_key


@pytest.fixture(scope="session")
def signing_key():
    return new_rsa_key(kid="test-key-1")


@pytest.fixture(scope="session")
def jwks(signing_key):
    server = JwksServer([signing_key])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def composio_server():
    from tests.support.composio import start_fake_composio
    fake = start_fake_composio()
    yield fake
    fake.stop()


@pytest.fixture
def composio(composio_server):
    """The local Composio: empty, no failures, no recorded calls at the start of each test."""
    composio_server.reset()
    yield composio_server
    composio_server.reset()


@pytest.fixture
def make_app(db_url, composio, jwks):
    from web import create_app
    apps = []

    def build(**overrides):
        app = create_app(app_config(db_url, composio, jwks, **overrides))
        app.config["TESTING"] = True
        apps.append(app)
        return app
    yield build
    for app in apps:
        app.extensions["ledger"].store.close()  # PostgreSQL: its sequencer thread and connection
        app.extensions["engine"].dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def auth(app, signing_key):
    return AuthActions(app, signing_key)
