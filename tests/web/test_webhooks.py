"""POST /webhooks/composio as Composio calls it: signed deliveries are recorded exactly once,
anything unsigned, stale or malformed is refused with the envelope and records nothing, and no
token ever reaches the database, the logs or a response."""
import json
import logging
import secrets as pysecrets
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select, text
from werkzeug.serving import make_server

from ledger import envelope as ev
from ledger.envelope import NewEvent
from ledger.storage.tables import events, idempotency_keys
from tests.support import webhooks as wh

SECRET = "test-webhook-secret"
NEW_SECRET = "rotated-secret-ü"  # non-ASCII: the HMAC key is the secret's raw UTF-8 bytes
URL = "/webhooks/composio"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def webhook_app(make_app):
    """A builder of apps that take Composio's deliveries signed with SECRET (or `secret`)."""
    def make(secret=SECRET, **kw):
        return make_app(COMPOSIO_WEBHOOK_SECRET=secret, COMPOSIO_USER_ID_PREFIX="app-", **kw)
    return make


@pytest.fixture
def app(webhook_app):
    return webhook_app()


def post(client, payload, secret=SECRET, **kw):
    body, headers = wh.delivery(secret, payload, **kw)
    return client.post(URL, data=body, headers=headers)


def recorded(app) -> tuple[int, int]:
    """(events, idempotency keys) in the database."""
    with app.extensions["engine"].connect() as conn:
        return (conn.execute(select(func.count()).select_from(events)).scalar(),
                conn.execute(select(func.count()).select_from(idempotency_keys)).scalar())


def stream(app, cid):
    return app.extensions["ledger"].read_stream(f"connection:{cid}")


def state_of(app, cid):
    ledger = app.extensions["ledger"]
    with ledger.transaction() as txn:
        return txn.connection(cid)


def assert_refused(resp, status, code):
    body = resp.get_json()
    assert resp.status_code == status, body
    assert body["success"] is False and body["error"]["code"] == code and body["error"]["status"] == status


# -- recorded once ---------------------------------------------------------------------------------

def test_a_valid_delivery_is_recorded_once_and_answered_with_its_outcome(app, client):
    resp = post(client, wh.trigger_message("ca_1", "app-u1"))
    assert resp.status_code == 200 and resp.get_json() == {"success": True, "outcome": "accepted"}
    assert [e.type for e in stream(app, "ca_1")] == [ev.USED]
    assert recorded(app) == (1, 1)


def test_ten_redeliveries_of_one_webhook_id_record_nothing_more(app, client):
    payload = wh.expired("ca_1", "app-u1")
    assert post(client, payload, attempt=1).get_json()["outcome"] == "accepted"
    answers = {post(client, payload, attempt=n).get_json()["outcome"] for n in range(2, 12)}
    assert answers == {"duplicate"}
    assert [e.type for e in stream(app, "ca_1")] == [ev.OBSERVED, ev.EXPIRED]
    assert recorded(app) == (2, 1)


def serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def deliver_concurrently(servers, body, headers, count=20):
    barrier, outcomes = threading.Barrier(count), []

    def one(i):
        port = servers[i % len(servers)].server_port
        req = urllib.request.Request(f"http://127.0.0.1:{port}{URL}", data=body, method="POST",
                                     headers={**headers, "x-composio-delivery-attempt": str(i + 1)})
        barrier.wait()
        with urllib.request.urlopen(req, timeout=30) as resp:
            outcomes.append(json.loads(resp.read())["outcome"])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sorted(outcomes)


def test_twenty_parallel_deliveries_of_one_id_to_a_real_server_record_it_once(app):
    server = serve(app)
    try:
        body, headers = wh.delivery(SECRET, wh.expired("ca_p", "app-u1"))
        outcomes = deliver_concurrently([server], body, headers)
    finally:
        server.shutdown()
    assert outcomes == ["accepted"] + ["duplicate"] * 19
    assert [e.type for e in stream(app, "ca_p")] == [ev.OBSERVED, ev.EXPIRED]


@pytest.mark.slow
def test_parallel_deliveries_split_across_two_gunicorn_workers_record_it_once(app, db_url):
    import os
    import socket
    import subprocess
    import sys
    import time
    from types import SimpleNamespace
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": db_url, "AUTO_MIGRATE": "false", "COMPOSIO_WEBHOOK_SECRET": SECRET,
           "COMPOSIO_API_KEY": "test", "COMPOSIO_USER_ID_PREFIX": "app-", "RATELIMIT_DEFAULT": ""}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi:app"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, "gunicorn did not start"
                time.sleep(0.1)
        body, headers = wh.delivery(SECRET, wh.trigger_message("ca_w", "app-u1"))
        outcomes = deliver_concurrently([SimpleNamespace(server_port=port)], body, headers)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert outcomes == ["accepted"] + ["duplicate"] * 19
    assert recorded(app) == (1, 1)
    assert app.extensions["ledger"].verify().ok


# -- refused, nothing recorded ------------------------------------------------------------------------

def test_a_body_altered_by_one_byte_is_refused(app, client):
    body, headers = wh.delivery(SECRET, wh.expired("ca_1", "app-u1"))
    tampered = body.replace(b'"ca_1"', b'"ca_2"')
    assert len(tampered) == len(body) and tampered != body
    assert_refused(client.post(URL, data=tampered, headers=headers), 401, "INVALID_SIGNATURE")
    assert recorded(app) == (0, 0)


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_timestamp_301_seconds_old_or_ahead_is_stale(app, client, skew):
    sent = 1_900_000_000
    body, headers = wh.delivery(SECRET, wh.expired("ca_1", "app-u1"), timestamp=sent)
    with freeze_time(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sent - skew))):
        assert_refused(client.post(URL, data=body, headers=headers), 401, "STALE_WEBHOOK")
    assert recorded(app) == (0, 0)


def test_a_timestamp_300_seconds_old_is_still_accepted(app, client):
    sent = 1_900_000_000
    body, headers = wh.delivery(SECRET, wh.expired("ca_1", "app-u1"), timestamp=sent)
    with freeze_time(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sent + 300))):
        assert client.post(URL, data=body, headers=headers).status_code == 200


def test_during_rotation_the_old_and_the_new_secret_are_both_accepted(webhook_app):
    app = webhook_app(secret=f"{SECRET}, {NEW_SECRET}")
    client = app.test_client()
    assert post(client, wh.trigger_message("ca_1", "app-u"), secret=SECRET).status_code == 200
    assert post(client, wh.trigger_message("ca_1", "app-u"), secret=NEW_SECRET).status_code == 200
    assert_refused(post(client, wh.trigger_message("ca_1", "app-u"), secret="retired"), 401, "INVALID_SIGNATURE")
    assert recorded(app) == (2, 2)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(app, client, header):
    body, headers = wh.delivery(SECRET, wh.expired("ca_1", "app-u1"))
    del headers[header]
    assert_refused(client.post(URL, data=body, headers=headers), 401, "INVALID_SIGNATURE")
    assert recorded(app) == (0, 0)


@pytest.mark.parametrize("timestamp", ["soon", "1.5e9", "-1", "19e8"])
def test_a_malformed_timestamp_is_a_401_never_a_500(app, client, timestamp):
    body, headers = wh.delivery(SECRET, wh.expired("ca_1", "app-u1"))
    headers["webhook-timestamp"] = timestamp
    assert_refused(client.post(URL, data=body, headers=headers), 401, "INVALID_SIGNATURE")


@pytest.mark.parametrize("body, status, code", [
    ("{not json", 400, "INVALID_JSON"),
    ('["a", "list"]', 422, "VALIDATION_ERROR"),
    ('"just a string"', 422, "VALIDATION_ERROR"),
])
def test_signed_bodies_that_are_not_a_json_object_are_refused(app, client, body, status, code):
    assert_refused(post(client, body), status, code)
    assert recorded(app) == (0, 0)


def test_a_body_over_the_size_limit_gets_the_413_envelope(app, client):
    payload = wh.trigger_message("ca_1", "app-u1", data={"blob": "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)})
    assert_refused(post(client, payload), 413, "PAYLOAD_TOO_LARGE")
    assert recorded(app) == (0, 0)


def test_without_a_configured_secret_deliveries_are_refused_for_a_later_retry(webhook_app):
    app = webhook_app(secret="")
    assert_refused(post(app.test_client(), wh.expired("ca_1", "app-u1")), 503, "WEBHOOKS_NOT_CONFIGURED")
    assert recorded(app) == (0, 0)


# -- what the events do -------------------------------------------------------------------------------

def test_expiry_of_a_disconnected_connection_is_recorded_and_changes_nothing(app, client):
    ledger = app.extensions["ledger"]
    ledger.append("connection:ca_d", [NewEvent(ev.OBSERVED, {"user_id": "u1", "toolkit": "github"},
                                               occurred_at="2025-12-01T00:00:00.000000Z")])
    ledger.append("connection:ca_d", [NewEvent(ev.DISCONNECT_COMPLETED, {}, occurred_at="2025-12-02T00:00:00.000000Z")])
    before = state_of(app, "ca_d")
    assert post(client, wh.expired("ca_d", "app-u1", when="2026-01-01T00:00:00Z")).get_json()["outcome"] == "accepted"
    assert [e.type for e in stream(app, "ca_d")][-1] == ev.EXPIRED
    assert state_of(app, "ca_d") == before and before.status == "DISCONNECTED"


def test_expiry_of_an_unknown_connection_observes_it_with_its_owner_first(app, client):
    post(client, wh.expired("ca_n", "app-user_42", toolkit="gmail", when="2026-01-01T00:00:00Z"))
    observed, expired = stream(app, "ca_n")
    assert (observed.type, expired.type) == (ev.OBSERVED, ev.EXPIRED)
    assert observed.data == {"connection_id": "ca_n", "user_id": "user_42", "tenant": "user_42",
                             "toolkit": "gmail", "status": "ACTIVE"}
    assert expired.occurred_at == "2026-01-01T00:00:00.000000Z"
    state = state_of(app, "ca_n")
    assert (state.user_id, state.tenant, state.status) == ("user_42", "user_42", "EXPIRED")


def test_an_unknown_event_type_is_recorded_and_answered_200(app, client):
    payload = {"id": wh.new_id(), "timestamp": "2026-01-01T00:00:00Z", "type": "composio.account.renamed",
               "metadata": {"connected_account_id": "ca_r"}, "data": {}}
    assert post(client, payload).get_json() == {"success": True, "outcome": "unrecognised"}
    [env] = app.extensions["ledger"].read_stream("webhooks")
    assert env.data == {"type": "composio.account.renamed", "webhook_id": payload["id"], "connection_id": "ca_r"}


# -- privacy --------------------------------------------------------------------------------------------

def database_text(app, db_url) -> str:
    """Everything the database holds, as text (the SQLite files themselves, or every PG row)."""
    if db_url.startswith("sqlite"):
        path = Path(db_url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*")).decode("latin-1")
    with app.extensions["engine"].connect() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
        return "\n".join(str(row) for t in tables for row in conn.execute(text(f'SELECT * FROM "{t}"')))


def test_tokens_planted_in_every_known_place_reach_no_table_log_export_or_response(app, client, db_url, caplog):
    caplog.set_level(logging.DEBUG)
    tokens = [f"tok_{pysecrets.token_hex(8)}" for _ in range(5)]
    message = wh.trigger_message("ca_s", "app-u1", data={
        "state": {"val": {"access_token": tokens[0]}}, "api_key": tokens[1], "text": tokens[2]})
    expired = wh.expired("ca_s", "app-u1", access_token=tokens[3])
    expired["data"]["data"] = {"client_secret": tokens[4]}
    responses = [post(client, message), post(client, expired), post(client, message)]
    bad_sig = wh.delivery("wrong", message)
    responses.append(client.post(URL, data=bad_sig[0], headers=bad_sig[1]))
    responses.append(client.get("/metrics"))
    export = "".join(app.extensions["ledger"].store.iter_export_lines())
    seen = [database_text(app, db_url), caplog.text, export] + [r.get_data(as_text=True) for r in responses]
    assert [r.status_code for r in responses] == [200, 200, 200, 401, 200]
    assert "ca_s" in seen[0] and "ca_s" in export  # the searches did look at the recorded events
    for token in tokens:
        assert not any(token in place for place in seen), token


# -- operations -------------------------------------------------------------------------------------------

def test_metrics_count_deliveries_by_outcome(app, client):
    before = client.get("/metrics").get_json()["process"]["counters"]
    payload = wh.trigger_message("ca_m", "app-u1")
    post(client, payload)
    post(client, payload)
    post(client, payload, secret="nope")
    after = client.get("/metrics").get_json()["process"]["counters"]
    for name in ("webhook.accepted", "webhook.duplicate", "webhook.rejected_signature"):
        assert after.get(name, 0) - before.get(name, 0) == 1, name


def test_the_webhook_route_is_not_throttled_by_the_per_caller_limit(webhook_app):
    app = webhook_app(RATELIMIT_DEFAULT="2 per minute")
    client = app.test_client()
    answers = [post(client, wh.trigger_message("ca_l", "app-u1")).status_code for _ in range(5)]
    assert answers == [200] * 5


def test_verifying_sends_no_telemetry_even_from_a_fresh_thread():
    # The SDK's telemetry switch is per thread (a ContextVar, default on): a request thread would
    # queue a POST to Composio's telemetry host unless the verifier turns it off itself.
    code = ("import threading\n"
            "from tests.support import webhooks as wh\n"
            "from web.webhook_signature import verify_signature as verify\n"
            "from composio.core.models import _telemetry\n"
            "body, h = wh.delivery('s', wh.expired('ca_1', 'u'))\n"
            "out = []\n"
            "t = threading.Thread(target=lambda: out.append(verify(body.decode(), h['webhook-id'], "
            "h['webhook-timestamp'], h['webhook-signature'], ['s'], 300)))\n"
            "t.start(); t.join()\n"
            "assert out and out[0]['data']['id'] == 'ca_1', out\n"
            "assert _telemetry._queue is None, 'telemetry was queued'\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_metrics_count_the_events_the_process_recorded(app, client):
    before = client.get("/metrics").get_json()["process"]["counters"].get("ledger.events_recorded", 0)
    post(client, wh.trigger_message("ca_r", "app-u1"))
    after = client.get("/metrics").get_json()["process"]["counters"].get("ledger.events_recorded", 0)
    assert after - before == 1
