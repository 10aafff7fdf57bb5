"""The pages' server side, without a browser: the sandbox sign-in exists only in the sandbox, and
the pages forbid anything from another origin."""
from __future__ import annotations

import pytest

from web import create_app


def _app(tmp_path, **config):
    return create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db", **config})


@pytest.fixture
def sandbox(tmp_path):
    return _app(tmp_path, LEDGER_ENV="development", COMPOSIO_API_KEY="k", COMPOSIO_BASE_URL="http://127.0.0.1:9")


def test_the_sandbox_mints_a_token_the_api_accepts(sandbox):
    client = sandbox.test_client()
    minted = client.post("/dev/token", json={"user": "alice"})
    assert minted.status_code == 200
    assert minted.json["userId"] == "alice" and minted.json["sandbox"] is True
    assert minted.headers["Cache-Control"] == "no-store"
    listed = client.get("/api/connections", headers={"Authorization": f"Bearer {minted.json['token']}"})
    assert listed.status_code == 200 and listed.json["count"] == 0


@pytest.mark.parametrize("body", [{}, {"user": ""}, {"user": 5}, {"user": "alice", "admin": True}])
def test_the_sandbox_sign_in_refuses_a_bad_body_in_the_envelope(sandbox, body):
    resp = sandbox.test_client().post("/dev/token", json=body)
    assert resp.status_code == 422
    assert resp.json["error"]["code"] == "VALIDATION_ERROR"


def test_production_has_no_sandbox_sign_in_and_says_nothing_of_one(tmp_path):
    from web.devkeys import load_or_create_dev_key
    key = load_or_create_dev_key(str(tmp_path / "inst"))
    app = _app(tmp_path, LEDGER_ENV="production", COMPOSIO_API_KEY="k", COMPOSIO_WEBHOOK_SECRET="s",
               CLERK_ISSUER="https://clerk.example", CLERK_JWT_KEY=key.public_pem)
    client = app.test_client()
    resp = client.post("/dev/token", json={"user": "alice"})
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"
    page = client.get("/")
    assert page.status_code == 200
    assert b"Sandbox" not in page.data and b'data-sandbox="false"' in page.data


def test_development_with_clerk_settings_mints_nothing_clerk_would_refuse(tmp_path):
    from web.devkeys import load_or_create_dev_key
    key = load_or_create_dev_key(str(tmp_path / "inst"))
    app = _app(tmp_path, LEDGER_ENV="development", COMPOSIO_API_KEY="k", COMPOSIO_BASE_URL="http://127.0.0.1:9",
               CLERK_ISSUER="https://clerk.example", CLERK_JWT_KEY=key.public_pem)
    assert app.test_client().post("/dev/token", json={"user": "alice"}).status_code == 404


@pytest.mark.parametrize("path", ["/", "/audit", "/docs", "/connect/done"])
def test_every_page_forbids_other_origins(sandbox, path):
    resp = sandbox.test_client().get(path)
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp


def test_swagger_ui_is_served_from_the_installed_package(sandbox):
    client = sandbox.test_client()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        resp = client.get(f"/docs/assets/{name}")
        assert resp.status_code == 200 and len(resp.data) > 100_000
    assert client.get("/docs/assets/../pages.py").status_code == 404
