"""flaskr-style fixtures: a real app per test on each backend, the real composio SDK pointed at a
local Composio-compatible server, and Clerk tokens signed with real RSA keys served as a JWKS."""
from __future__ import annotations

import pytest

from tests.support.clerk import AUTHORIZED_PARTY, ISSUER, JwksServer, mint, new_rsa_key
from web import create_app


@pytest.fixture(scope="session")
def signing_key():
    return new_rsa_key(kid="test-key-1")


@pytest.fixture(scope="session")
def jwks(signing_key):
    server = JwksServer([signing_key])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _composio_server():
    from tests.support.composio import start_fake_composio
    fake = start_fake_composio()
    yield fake
    fake.stop()


@pytest.fixture
def composio(_composio_server):
    """The local Composio: empty, no failures, no recorded calls at the start of each test."""
    _composio_server.reset()
    yield _composio_server
    _composio_server.reset()


def app_config(db_url, composio, jwks, **overrides) -> dict:
    config = {
        "DATABASE_URL": db_url, "AUTO_MIGRATE": False, "LEDGER_ENV": "development",
        "COMPOSIO_API_KEY": "test-key", "COMPOSIO_BASE_URL": composio.url,
        "COMPOSIO_TIMEOUT_SECONDS": 2.0,
        "CLERK_JWKS_URL": jwks.url, "CLERK_ISSUER": ISSUER, "CLERK_AUTHORIZED_PARTIES": AUTHORIZED_PARTY,
        "COMPOSIO_WEBHOOK_SECRET": "whsec-test-secret",
        "RATELIMIT_DEFAULT": "10000 per minute", "DISCONNECT_GRACE_SECONDS": 3600,
        "RELAY_BASE_DELAY_SECONDS": 0.0, "POLL_INTERVAL_SECONDS": 3.0, "API_KEY_CACHE_SECONDS": 0.0,
    }
    config.update(overrides)
    return config


@pytest.fixture
def make_app(db_url, composio, jwks):
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


class AuthActions:
    """Headers for a person (a real RS256 Clerk-style token) or a service (an API key)."""

    def __init__(self, app, key):
        self.app, self.key = app, key

    def token(self, user: str, **kw) -> str:
        return mint(self.key, sub=user, **kw)

    def user(self, user: str, **kw) -> dict:
        return {"Authorization": f"Bearer {self.token(user, **kw)}"}

    def service(self, tenant: str, *scopes: str, name: str = "svc") -> dict:
        from ledger.services import apikeys
        _, key = apikeys.create(self.app.extensions["engine"], tenant, list(scopes), name)
        return {"X-Api-Key": key}


@pytest.fixture
def auth(app, signing_key):
    return AuthActions(app, signing_key)


def events_of(app, type_: str | None = None) -> list:
    """Every recorded envelope (optionally of one type), for assertions."""
    envs = list(app.extensions["ledger"].store.iter_envelopes())
    return [e for e in envs if type_ is None or e.type == type_]
