"""What a connection may do, when it was used, and the warning before it breaks (issue 15, items
4 and 5), through the real SDK against the local Composio on both backends: scopes and expiry
are kept as safe facts (a planted token appears nowhere), uses are counted, and a credential
about to expire is announced once as connection.expiring on the stream and the outgoing webhooks."""
from __future__ import annotations

import json
import logging
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

from ledger import envelope as ev
from ledger.clock import plus_seconds
from tests.support import webhooks as wh
from tests.support.app import WEBHOOK_SECRET, events_of
from tests.support.receiver import Receiver
from tests.support.sse import SseClient

PLANTED = "PLANTED-access-token-5f1c"
PLANTED_REFRESH = "PLANTED-refresh-token-77aa"
PLANTED_ID = "PLANTED-id-token-eyJ"


@pytest.fixture
def facts_app(make_app):
    return make_app(POLL_INTERVAL_SECONDS=0.0, OUTGOING_WEBHOOKS_ALLOW_PRIVATE="true",
                    OUTGOING_WEBHOOKS_BASE_DELAY_SECONDS=0.05, OUTGOING_WEBHOOKS_MAX_DELAY_SECONDS=0.2,
                    EXPIRY_WARNING_SECONDS=3600)


def _connect(app, client, auth, composio, user="alice", toolkit="github", **grant) -> str:
    """A connection whose grant at Composio carries `grant` beside its live tokens; ACTIVE."""
    r = client.post("/api/connections", json={"toolkit": toolkit}, headers=auth.user(user))
    assert r.status_code == 201, r.get_data(as_text=True)
    cid = r.json["connectionId"]
    composio.set_grant(cid, **grant)
    requests.get(r.json["redirectUrl"], timeout=10)
    assert client.get(f"/api/connections/{cid}", headers=auth.user(user)).json["status"] == "ACTIVE"
    return cid


def _database_text(app) -> str:
    """Every row of every table, as text."""
    from sqlalchemy import MetaData, select
    engine, meta = app.extensions["engine"], MetaData()
    meta.reflect(bind=engine)
    with engine.connect() as conn:
        return "\n".join(repr(row) for table in meta.sorted_tables for row in conn.execute(select(table)))


def test_scopes_and_expiry_are_kept_and_a_planted_token_appears_nowhere(facts_app, auth, composio, caplog):
    caplog.set_level(logging.DEBUG)
    app, client, alice = facts_app, facts_app.test_client(), auth.user("alice")
    expires = plus_seconds(app.extensions["ledger"].now(), 86400 * 30)
    cid = _connect(app, client, auth, composio, scope="repo read:user", expires_at=expires,
                   access_token=PLANTED, refresh_token=PLANTED_REFRESH, id_token=PLANTED_ID,
                   client_secret="PLANTED-client-secret")
    one = client.get(f"/api/connections/{cid}", headers=alice)
    assert one.json["scopes"] == ["read:user", "repo"] and one.json["expiresAt"] == expires
    [activated] = events_of(app, ev.ACTIVATED)
    assert activated.data["scopes"] == ["read:user", "repo"] and activated.data["expires_at"] == expires
    answers = [one.get_data(as_text=True),
               client.get("/api/connections", headers=alice).get_data(as_text=True),
               client.get(f"/api/connections/{cid}/history", headers=alice).get_data(as_text=True)]
    export = client.get("/audit/export", headers=auth.service("acme", "audit:read")).get_data(as_text=True)
    assert cid in export and "read:user" in export
    state = client.get("/audit/state", headers=auth.service("acme", "audit:read")).get_data(as_text=True)
    for where, text in [("answers", "\n".join(answers)), ("export", export), ("state", state),
                        ("database", _database_text(app)), ("logs", caplog.text)]:
        for planted in (PLANTED, PLANTED_REFRESH, PLANTED_ID, "PLANTED-client-secret"):
            assert planted not in text, f"{planted} leaked into the {where}"


def test_a_connection_without_facts_answers_none_and_counts_its_uses(facts_app, auth, composio):
    app, client, alice = facts_app, facts_app.test_client(), auth.user("alice")
    cid = _connect(app, client, auth, composio)
    got = client.get(f"/api/connections/{cid}", headers=alice).json
    assert (got["scopes"], got["expiresAt"], got["useCount"], got["lastUsedAt"]) == (None, None, 0, None)
    now = app.extensions["ledger"].now()
    for when in (plus_seconds(now, -20), plus_seconds(now, -10), plus_seconds(now, -15)):
        body, headers = wh.delivery(WEBHOOK_SECRET, wh.trigger_message(cid, "alice", when=when))
        assert client.post("/webhooks/composio", data=body, headers=headers).status_code < 300
    got = client.get("/api/connections", headers=alice).json["data"][0]
    assert got["useCount"] == 3 and got["lastUsedAt"] == plus_seconds(now, -10)
    assert app.extensions["expiry_warner"].warn_due(now) == 0, "quiet when Composio gives no expiry"


def test_an_expiry_within_the_window_is_announced_once_and_again_for_a_new_expiry(facts_app, auth, composio):
    app, client, alice = facts_app, facts_app.test_client(), auth.user("alice")
    now = app.extensions["ledger"].now()
    far = _connect(app, client, auth, composio, toolkit="gmail", expires_at=plus_seconds(now, 7200))
    near = _connect(app, client, auth, composio, expires_at=plus_seconds(now, 600))
    client.put(f"/api/agents/agent-1/connections/{near}", headers=alice)
    warner = app.extensions["expiry_warner"]
    assert warner.warn_due(now) == 1 and warner.warn_due(now) == 0
    [warned] = events_of(app, ev.EXPIRING)
    assert warned.connection_id == near and warned.data["agents"] == ["agent-1"]
    assert warned.data["expires_at"] == plus_seconds(now, 600) and warned.data["seconds_left"] == 600
    assert warner.warn_due(plus_seconds(now, 3600)) == 1, "the far one's turn comes later"
    # The near one broke anyway; a reconnect brings a new expiry, which is warned about in its turn.
    composio.set_status(near, "EXPIRED")
    body, headers = wh.delivery(WEBHOOK_SECRET, wh.expired(near, "alice", when=app.extensions["ledger"].now()))
    client.post("/webhooks/composio", data=body, headers=headers)
    r = client.post(f"/api/connections/{near}/reconnect", headers=alice)
    composio.set_grant(near, expires_at=plus_seconds(now, 1200))
    requests.get(r.json["redirectUrl"], timeout=10)
    assert client.get(f"/api/connections/{near}", headers=alice).json["expiresAt"] == plus_seconds(now, 1200)
    assert warner.warn_due(now) == 1
    assert [e.connection_id for e in events_of(app, ev.EXPIRING)] == [near, far, near]


def test_the_stream_and_an_outgoing_webhook_hear_connection_expiring_once(facts_app, auth, composio):
    app, alice = facts_app, auth.user("alice")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    receiver = Receiver()
    try:
        client = app.test_client()
        r = client.post("/api/webhook-endpoints", json={"url": receiver.url, "eventTypes": ["connection.expiring"]},
                        headers=auth.service("alice", "connections:admin"))
        assert r.status_code == 201, r.get_data(as_text=True)
        receiver.secret = r.json["secret"]
        now = app.extensions["ledger"].now()
        cid = _connect(app, client, auth, composio, expires_at=plus_seconds(now, 60), scope="mail.read")
        client.put(f"/api/agents/agent-9/connections/{cid}", headers=alice)
        stream = SseClient(f"{url}/api/connections/events?access_token={auth.token('alice')}")
        head = max(e.seq for e in events_of(app))
        app.extensions["expiry_warner"].warn_due(now)
        app.extensions["expiry_warner"].warn_due(now)
        seen = []
        while not seen or int(seen[-1]["id"]) < max(e.seq for e in events_of(app)):
            seen.append(stream.next_event())
        expiring = [e for e in seen if int(e["id"]) > head and e["data"]["type"] == ev.EXPIRING]
        assert len(expiring) == 1
        assert expiring[0]["data"]["connection"]["expiresAt"] == plus_seconds(now, 60)
        assert expiring[0]["data"]["connection"]["scopes"] == ["mail.read"]
        stream.close()
        relay = app.extensions["webhook_relay"]
        for _ in range(200):
            relay.run_once()
            if receiver.received:
                break
            time.sleep(0.02)
        time.sleep(0.2)
        relay.run_once()
        assert [g["body"]["type"] for g in receiver.received] == ["connection.expiring"]
        hook = receiver.received[0]["body"]
        assert hook["connection_id"] == cid and hook["data"]["agents"] == ["agent-9"]
        assert hook["data"]["expires_at"] == plus_seconds(now, 60)
        assert hook["reconnect"]["path"] == f"/api/connections/{cid}/reconnect"
        assert "access_token" not in json.dumps(hook)
    finally:
        receiver.stop()
        server.shutdown()
        live = app.extensions.get("live")
        if live is not None:
            live.feed.close()


def test_the_relay_announces_what_is_due_in_its_loop(facts_app, auth, composio):
    app, client = facts_app, facts_app.test_client()
    _connect(app, client, auth, composio, expires_at=plus_seconds(app.extensions["ledger"].now(), 120))
    runner = app.test_cli_runner()
    first = runner.invoke(args=["ledger", "relay", "--once"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output.strip().splitlines()[-1])["expiring_announced"] == 1
    again = runner.invoke(args=["ledger", "relay", "--once"])
    assert json.loads(again.output.strip().splitlines()[-1])["expiring_announced"] == 0
    assert len(events_of(app, ev.EXPIRING)) == 1


def test_the_relay_workers_loop_gives_the_warner_its_turn(facts_app, auth, composio):
    app, client = facts_app, facts_app.test_client()
    _connect(app, client, auth, composio, expires_at=plus_seconds(app.extensions["ledger"].now(), 120))
    stop = threading.Event()
    worker = threading.Thread(target=app.extensions["relay"].run_forever, args=(stop, 0.05),
                              kwargs={"expiry": app.extensions["expiry_warner"]}, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not events_of(app, ev.EXPIRING) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(10)
    assert len(events_of(app, ev.EXPIRING)) == 1
