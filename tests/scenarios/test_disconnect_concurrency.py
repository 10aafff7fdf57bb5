"""Disconnects racing each other, and a relay killed mid-purge: the ledger still says one thing."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from ledger import envelope as ev
from tests.support.clerk import ISSUER
from tests.support.app import connect, events_of

ROOT = Path(__file__).resolve().parents[2]


def _serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def _fifty_disconnects(base, cid, headers):
    def one(i):
        if i % 2:
            r = requests.delete(f"{base}/api/connections/{cid}", headers=headers, timeout=60)
            return r.status_code, None
        r = requests.delete(f"{base}/api/connections/disconnect", json={"connectionId": cid}, headers=headers, timeout=60)
        return r.status_code, r.json().get("purgeAt")
    with ThreadPoolExecutor(max_workers=50) as pool:
        return list(pool.map(one, range(50)))


def test_fifty_concurrent_disconnects_record_one_request_and_answer_alike(app, client, auth, composio):
    cid = connect(client, auth)
    server, base = _serve(app)
    try:
        answers = _fifty_disconnects(base, cid, auth.user("alice"))
    finally:
        server.shutdown()
    assert {code for code, _ in answers} <= {200, 204}
    assert len({purge for code, purge in answers if code == 200}) == 1
    assert len(events_of(app, ev.DISCONNECT_REQUESTED)) == 1
    assert len(composio.calls("PATCH", f"/connected_accounts/{cid}/status")) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(db_url, composio, signing_key, **extra) -> dict:
    env = {**os.environ, "DATABASE_URL": db_url, "COMPOSIO_API_KEY": "test-key", "COMPOSIO_BASE_URL": composio.url,
           "CLERK_JWT_KEY": signing_key.public_pem, "CLERK_ISSUER": ISSUER, "AUTO_MIGRATE": "false",
           "RATELIMIT_DEFAULT": "100000 per minute", "DISCONNECT_GRACE_SECONDS": "3600",
           "RELAY_BASE_DELAY_SECONDS": "0"}
    env.pop("CLERK_JWKS_URL", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.mark.slow
def test_fifty_disconnects_across_two_gunicorn_workers_on_postgresql(app, client, auth, composio, db_url, signing_key):
    if not db_url.startswith("postgresql"):
        pytest.skip("the two-worker race is the PostgreSQL case (SQLite's is the threaded one above)")
    cid = connect(client, auth)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi:app"],
                            cwd=ROOT, env=_env(db_url, composio, signing_key),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: requests.get(f"{base}/healthz", timeout=1).ok, 30)
        answers = _fifty_disconnects(base, cid, auth.user("alice"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert {code for code, _ in answers} <= {200, 204}
    assert len({purge for code, purge in answers if code == 200}) == 1
    assert len(events_of(app, ev.DISCONNECT_REQUESTED)) == 1
    assert app.extensions["ledger"].verify().ok


def _wait_for(check, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def _relay(db_url, composio, signing_key):
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "ledger", "relay", "--interval", "0.2"],
                            cwd=ROOT, env=_env(db_url, composio, signing_key, RELAY_LEASE_SECONDS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.parametrize("killed", ["before_the_call_returns", "after_the_call_went_through"])
def test_a_relay_killed_mid_purge_is_completed_by_the_next_exactly_once(
        make_app, auth, composio, db_url, signing_key, killed):
    app = make_app(RELAY_INLINE=False)
    client = app.test_client()
    cid = connect(client, auth)
    assert client.delete(f"/api/connections/{cid}?immediate=true", headers=auth.user("alice")).status_code == 204
    # revoke goes through; the delete hangs long enough to kill the relay during it
    composio.delay("DELETE", f"/connected_accounts/{cid}", seconds=3 if killed == "after_the_call_went_through" else 30, times=1)
    first = _relay(db_url, composio, signing_key)
    _wait_for(lambda: composio.calls("DELETE", cid), 30)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    if killed == "after_the_call_went_through":
        _wait_for(lambda: composio.account(cid) is None, 10)  # Composio finished it; the relay never heard
    assert events_of(app, ev.UPSTREAM_DELETED) == []
    second = _relay(db_url, composio, signing_key)
    try:
        _wait_for(lambda: events_of(app, ev.DISCONNECT_COMPLETED), 30)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, "the relay stops cleanly on SIGTERM"
    if killed == "after_the_call_went_through":
        # Composio does not deduplicate: the repeat is answered 404, recorded as exactly that
        assert events_of(app, ev.UPSTREAM_DELETED) == []
        found = events_of(app, ev.UPSTREAM_NOT_FOUND)
        assert [(e.data["action"], e.data["repeated"]) for e in found] == [("delete", True)]
        assert "earlier attempt" in events_of(app, ev.DISCONNECT_COMPLETED)[0].data["reason"]
    else:
        assert len(events_of(app, ev.UPSTREAM_DELETED)) == 1
    assert len(events_of(app, ev.UPSTREAM_REVOKED)) == 1
    assert composio.account(cid) is None
    keys = {c["idempotency_key"] for c in composio.calls("DELETE", cid)}
    assert len(keys) == 1, "a repeated call carries the same Idempotency-Key"


def test_an_action_claimed_by_a_relay_that_died_before_calling_is_done_after_its_lease(make_app, auth, composio):
    app = make_app(RELAY_INLINE=False, RELAY_LEASE_SECONDS=0.2)
    client = app.test_client()
    cid = connect(client, auth)
    client.delete(f"/api/connections/{cid}?immediate=true", headers=auth.user("alice"))
    from ledger.services.relay import Relay
    dead_relay = Relay(app.extensions["ledger"], app.extensions["gateway"], lease_seconds=0.2, worker_id="dead")
    assert [c.action for c in dead_relay.claim()] == ["revoke"]  # ...and it dies here
    assert app.extensions["relay"].run_once() == 0, "the lease still holds"
    time.sleep(0.3)
    app.extensions["relay"].run_once()
    assert len(composio.calls("POST", f"/connected_accounts/{cid}/revoke")) == 1
    assert len(events_of(app, ev.UPSTREAM_DELETED)) == 1 and composio.account(cid) is None
