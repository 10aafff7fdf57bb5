"""Browser tests: Debian's Chromium driven by Playwright against the real app served by werkzeug on
127.0.0.1, the real composio SDK pointed at the local Composio-compatible server, and the
sandbox's real development tokens.

Without Chromium or Playwright these tests skip locally, and fail under CI=true. Screenshots of
the main states go to test-output/screens/ (or $SCREENSHOT_DIR).
"""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from web import create_app

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true")


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="session")
def browser():
    missing = _missing_browser()
    if missing:
        if IN_CI:
            pytest.fail(f"browser tests need a browser in CI: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import expect, sync_playwright
    # The first call to Composio imports the SDK (2-9 s on this machine): patient assertions.
    expect.set_options(timeout=30_000)
    with sync_playwright() as pw:
        # Debian's build, never a downloaded one (`playwright install` is not used anywhere).
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screens() -> Path:
    path = Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "test-output" / "screens")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Server:
    """The app under a real HTTP server in a thread, and the calls a test makes beside the page."""

    def __init__(self, app):
        self.app = app
        self._http = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._http.server_port}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        live = self.app.extensions.get("live")  # the live streams' feed (web/events.py), if one started
        if live is not None:
            live.feed.close()  # ends open streams and its thread before the database goes away
        self._http.shutdown()
        # PostgreSQL: the store's sequencer thread holds the sequencer's advisory lock in the
        # session's shared test database until closed; a leaked one would hold it for every
        # later test.
        self.app.extensions["ledger"].store.close()
        self.app.extensions["engine"].dispose()

    def token(self, user: str) -> str:
        """A sandbox token, minted the way the page gets one."""
        resp = requests.post(f"{self.url}/dev/token", json={"user": user}, timeout=60)
        resp.raise_for_status()
        return resp.json()["token"]

    def as_user(self, user: str) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.token(user)}"
        return s

    def audit_key(self) -> str:
        from ledger.services import apikeys
        _, key = apikeys.create(self.app.extensions["engine"], "ops", ["audit:read"], "auditor")
        return key


def sandbox_config(db_url: str, composio_url: str, **overrides) -> dict:
    # No Clerk settings: the development sandbox, whose own key signs and verifies dev tokens.
    config = {"DATABASE_URL": db_url, "AUTO_MIGRATE": False, "LEDGER_ENV": "development",
              "COMPOSIO_API_KEY": "test-key", "COMPOSIO_BASE_URL": composio_url, "COMPOSIO_TIMEOUT_SECONDS": 5.0,
              "COMPOSIO_WEBHOOK_SECRET": "whsec-test-secret", "RATELIMIT_DEFAULT": "10000 per minute",
              "DISCONNECT_GRACE_SECONDS": 3600, "RELAY_BASE_DELAY_SECONDS": 0.0, "POLL_INTERVAL_SECONDS": 3.0,
              "API_KEY_CACHE_SECONDS": 0.0}
    config.update(overrides)
    return config


@pytest.fixture
def make_server_for(db_url, composio):
    servers = []

    def build(**overrides) -> Server:
        server = Server(create_app(sandbox_config(db_url, composio.url, **overrides)))
        servers.append(server)
        return server
    yield build
    for server in servers:
        server.stop()


def pytest_configure(config):
    config.addinivalue_line("markers", "app_config(**settings): settings for the server the page talks to")


@pytest.fixture
def server(make_server_for, request) -> Server:
    marker = request.node.get_closest_marker("app_config")
    return make_server_for(**(marker.kwargs if marker else {}))


@pytest.fixture
def context(browser, server):
    ctx = browser.new_context(base_url=server.url, viewport={"width": 1100, "height": 800}, accept_downloads=True)
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()
