"""What tests do to and read from a running app, from the outside: its configuration, the headers
of a person or a service, a new connection, the recorded events, and the error envelope."""
from __future__ import annotations

from tests.support.clerk import AUTHORIZED_PARTY, ISSUER, mint

WEBHOOK_SECRET = "whsec-test-secret"


def app_config(db_url, composio, jwks, **overrides) -> dict:
    config = {
        "DATABASE_URL": db_url, "AUTO_MIGRATE": False, "LEDGER_ENV": "development",
        "COMPOSIO_API_KEY": "test-key", "COMPOSIO_BASE_URL": composio.url,
        "COMPOSIO_TIMEOUT_SECONDS": 2.0,
        "CLERK_JWKS_URL": jwks.url, "CLERK_ISSUER": ISSUER, "CLERK_AUTHORIZED_PARTIES": AUTHORIZED_PARTY,
        "COMPOSIO_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "RATELIMIT_DEFAULT": "10000 per minute", "DISCONNECT_GRACE_SECONDS": 3600,
        "RELAY_BASE_DELAY_SECONDS": 0.0, "POLL_INTERVAL_SECONDS": 3.0, "API_KEY_CACHE_SECONDS": 0.0,
    }
    config.update(overrides)
    return config


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


def connect(client, auth, user: str = "alice", toolkit: str = "github") -> str:
    """A new ACTIVE connection of `user` (an API-key toolkit connects at once); its id."""
    resp = client.post("/api/connections", json={"toolkit": toolkit, "credentials": {"api_key": "k"}},
                       headers=auth.user(user))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json["connectionId"]


def events_of(app, type_: str | None = None) -> list:
    """Every recorded envelope (optionally of one type), for assertions."""
    envs = list(app.extensions["ledger"].store.iter_envelopes())
    return [e for e in envs if type_ is None or e.type == type_]


def assert_envelope(resp, status, code=None):
    """The response is the error envelope with this status (and code); returns its `error`."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.json
    assert body["success"] is False
    err = body["error"]
    assert err["status"] == status and err["message"] and err["type"] and err["timestamp"].endswith("Z")
    assert err["trace_id"] == resp.headers["X-Request-Id"]
    if code:
        assert err["code"] == code
    assert "Traceback" not in resp.get_data(as_text=True)
    return err


class Unchanged:
    """`with Unchanged(app, composio):` — the block records no event and calls Composio not at all."""

    def __init__(self, app, composio=None):
        self.store, self.composio = app.extensions["ledger"].store, composio

    def __enter__(self):
        self.head, self.calls = self.store.head()[0], self.composio_calls()
        return self

    def composio_calls(self) -> int:
        return len(self.composio.calls()) if self.composio is not None else 0

    def __exit__(self, *exc):
        if exc[0] is None:
            assert self.store.head()[0] == self.head, "a refused request recorded an event"
            assert self.composio_calls() == self.calls, "a refused request called Composio"


def seed_connections(client, auth, user="alice") -> dict:
    """Two of the user's connections: one ACTIVE and bound to agent-a, one DISCONNECTING."""
    h = auth.user(user)
    active, leaving = (connect(client, auth, user, toolkit) for toolkit in ("openai", "notion"))
    assert client.delete(f"/api/connections/{leaving}", headers=h).status_code == 204
    assert client.put(f"/api/agents/agent-a/connections/{active}", headers=h).status_code == 200
    return {"active": active, "leaving": leaving}


def redis_up() -> bool:
    try:
        import redis
        return redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping()
    except Exception:
        return False
