"""Outgoing lifecycle webhooks (issue 14, item 3): the app's backend, a receiver on 127.0.0.1
verifying every request with the `standardwebhooks` package, hears every change of its tenant's
connections, in order per connection, with each event's seq and hashes, and never a secret."""
from __future__ import annotations

import base64
import json
import time

import pytest
import requests

from ledger import envelope as ev
from tests.support import webhooks as wh
from tests.support.receiver import Receiver
from tests.support.app import events_of

ENDPOINTS = "/api/webhook-endpoints"


@pytest.fixture
def hooks_app(make_app):
    return make_app(OUTGOING_WEBHOOKS_ALLOW_PRIVATE="true", OUTGOING_WEBHOOKS_BASE_DELAY_SECONDS=0.05,
                    OUTGOING_WEBHOOKS_MAX_DELAY_SECONDS=0.2, POLL_INTERVAL_SECONDS=0.0)


@pytest.fixture
def receivers():
    made = []

    def make(**kw):
        made.append(Receiver(**kw))
        return made[-1]
    yield make
    for r in made:
        r.hold.clear()
        r.stop()


def register(client, admin, receiver, **body):
    r = client.post(ENDPOINTS, json={"url": receiver.url, **body}, headers=admin)
    assert r.status_code == 201, r.get_data(as_text=True)
    receiver.secret = r.get_json()["secret"]
    return r.get_json()


def connect(client, user, toolkit="gmail") -> str:
    r = client.post("/api/connections", json={"toolkit": toolkit}, headers=user)
    assert r.status_code == 201, r.get_data(as_text=True)
    started = r.get_json()
    requests.get(started["redirectUrl"], timeout=10)  # the person finishes OAuth at Composio
    got = client.get(f"/api/connections/{started['connectionId']}", headers=user).get_json()
    assert got["status"] == "ACTIVE"
    return started["connectionId"]


def relay_until(app, receiver, n, passes=400):
    """Run the webhook relay until the receiver holds n verified deliveries (or give up)."""
    relay = app.extensions["webhook_relay"]
    for _ in range(passes):
        relay.run_once()
        if len(receiver.received) >= n:
            break
        time.sleep(0.02)
    return receiver.received


def ledger_events(app, cid):
    return [e for e in events_of(app) if e.stream == ev.connection_stream(cid)]


def test_an_endpoint_is_registered_listed_and_deleted_and_its_secret_is_shown_once(client, auth, app):
    admin = auth.service("acme", "connections:admin")
    r = client.post(ENDPOINTS, json={"url": "https://hooks.example.com/in?token=t0k", "description": "backend",
                                     "eventTypes": ["connection.expired"]}, headers=admin)
    assert r.status_code == 201, r.get_data(as_text=True)
    created = r.get_json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[len("whsec_"):])) == 32
    assert r.headers["Cache-Control"] == "no-store"

    listed = client.get(ENDPOINTS, headers=admin).get_json()
    assert [e["id"] for e in listed["data"]] == [created["id"]]
    assert listed["data"][0]["eventTypes"] == ["connection.expired"]
    assert secret not in json.dumps(listed) and "secret" not in listed["data"][0]
    # Another tenant sees none of it and cannot delete it.
    other = auth.service("globex", "connections:admin")
    assert client.get(ENDPOINTS, headers=other).get_json()["data"] == []
    assert client.delete(f"{ENDPOINTS}/{created['id']}", headers=other).status_code == 404

    assert client.delete(f"{ENDPOINTS}/{created['id']}", headers=admin).status_code == 204
    assert client.get(ENDPOINTS, headers=admin).get_json()["data"] == []
    assert client.delete(f"{ENDPOINTS}/{created['id']}", headers=admin).status_code == 404

    types = [e.type for e in events_of(app)]
    assert types == ["webhook.endpoint_registered", "webhook.endpoint_removed"]
    export = client.get("/audit/export", headers=auth.service("acme", "audit:read")).get_data(as_text=True)
    assert secret not in export and secret[len("whsec_"):] not in export
    assert "t0k" not in export  # the URL's query (a receiver's own token) is not put in the chain
    assert events_of(app)[0].meta["tenant"] == "acme"


@pytest.mark.parametrize("headers_of", ["person", "reader"])
def test_only_a_connections_admin_key_manages_endpoints(client, auth, headers_of):
    headers = auth.user("alice") if headers_of == "person" else auth.service("acme", "audit:read")
    r = client.post(ENDPOINTS, json={"url": "https://hooks.example.com/in"}, headers=headers)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "FORBIDDEN"
    assert client.get(ENDPOINTS, headers=headers).status_code == 403
    assert client.get(ENDPOINTS).status_code == 401


@pytest.mark.parametrize("body", [
    {"url": "ftp://hooks.example.com/in"}, {"url": "not a url"}, {"url": "https://hooks.example.com/", "x": 1},
    {"url": "https://hooks.example.com/", "eventTypes": ["connection.nonsense"]}, {}])
def test_a_bad_registration_is_refused_in_the_envelope(client, auth, body):
    r = client.post(ENDPOINTS, json=body, headers=auth.service("acme", "connections:admin"))
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/in", "http://localhost/in", "http://10.1.2.3/in", "http://192.168.0.10/in",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]/in", "http://[fd00::1]/in",
    "http://100.64.0.1/in", "http://0.0.0.0/in", "http://[::ffff:127.0.0.1]/in"])
def test_loopback_private_link_local_and_metadata_urls_are_refused_at_registration(client, auth, url):
    r = client.post(ENDPOINTS, json={"url": url}, headers=auth.service("acme", "connections:admin"))
    assert r.status_code == 422, r.get_data(as_text=True)
    assert "may not call" in r.get_json()["error"]["message"]


def test_every_change_is_delivered_signed_with_its_place_in_the_chain(client, auth, hooks_app, receivers):
    client = hooks_app.test_client()
    receiver = receivers()
    created = register(client, auth.service("alice", "connections:admin"), receiver)
    cid = connect(client, auth.user("alice"))
    r = client.delete("/api/connections/disconnect", json={"connectionId": cid}, headers=auth.user("alice"))
    assert r.status_code == 200
    assert client.post(f"/api/connections/{cid}/restore", headers=auth.user("alice")).status_code == 200

    recorded = ledger_events(hooks_app, cid)
    got = relay_until(hooks_app, receiver, len(recorded))
    assert receiver.rejected == []   # every one verified by standardwebhooks
    bodies = [g["body"] for g in got]
    assert [b["version"] for b in bodies] == [e.version for e in recorded]
    assert [(b["seq"], b["prev_hash"], b["hash"]) for b in bodies] == [(e.seq, e.prev_hash, e.hash) for e in recorded]
    types = [b["type"] for b in bodies]
    assert types[:2] == ["connection.initiated", "connection.activated"]
    assert "connection.disconnect_requested" in types and types[-1] in ("connection.restored", "connection.upstream_enabled")
    assert "connection.restored" in types
    assert {b["connection_id"] for b in bodies} == {cid} and {b["user_id"] for b in bodies} == {"alice"}
    assert bodies[1]["status"] == "ACTIVE"
    assert all(g["id"] == g["body"]["id"] for g in got) and len({g["id"] for g in got}) == len(got)
    assert receiver.secret not in json.dumps(bodies)
    # the webhook relay's own answers are on the endpoint's stream, never owed to it
    listed = client.get(ENDPOINTS, headers=auth.service("alice", "connections:admin")).get_json()["data"][0]
    assert listed["id"] == created["id"] and listed["deliveries"] == {"done": len(recorded)}


def test_a_receiver_down_for_a_while_gets_everything_after_in_order_and_once(client, auth, hooks_app, receivers):
    client = hooks_app.test_client()
    receiver = receivers()
    admin = auth.service("alice", "connections:admin")
    endpoint = register(client, admin, receiver)
    receiver.stop()                                  # the backend goes down
    first, second = connect(client, auth.user("alice")), connect(client, auth.user("alice"), "github")
    client.delete("/api/connections/disconnect", json={"connectionId": first, "immediate": True},
                  headers=auth.user("alice"))
    hooks_app.extensions["relay"].run_once()         # the purge at Composio: more events
    relay = hooks_app.extensions["webhook_relay"]
    for _ in range(5):
        relay.run_once()                             # attempts fail: connection refused
        time.sleep(0.05)
    failing = client.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries", headers=admin).get_json()["data"]
    assert failing and all(d["status"] == "pending" for d in failing) and max(d["attempts"] for d in failing) >= 1
    assert all(d["lastError"] for d in failing if d["attempts"])

    receiver.start()                                 # back, on the same port
    wanted = ledger_events(hooks_app, first) + ledger_events(hooks_app, second)
    got = relay_until(hooks_app, receiver, len(wanted))
    assert receiver.rejected == []
    for cid in (first, second):
        mine = [g["body"] for g in got if g["body"]["connection_id"] == cid]
        assert [b["version"] for b in mine] == [e.version for e in ledger_events(hooks_app, cid)]
    assert len({g["id"] for g in got}) == len(got) == len(wanted)
    done = client.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries?status=done", headers=admin).get_json()["data"]
    assert len(done) == len(wanted) and len({d["webhookId"] for d in done}) == len(wanted)
    disconnected = [g["body"] for g in got if g["body"]["type"] == "connection.disconnected"]
    assert disconnected and disconnected[0]["data"]["revoked"]["supported"] in (True, False)


def test_a_tenant_never_receives_another_tenants_events(client, auth, hooks_app, receivers):
    client = hooks_app.test_client()
    alice_rx, bob_rx = receivers(), receivers()
    register(client, auth.service("alice", "connections:admin"), alice_rx)
    register(client, auth.service("bob", "connections:admin"), bob_rx)
    a = connect(client, auth.user("alice"))
    b = connect(client, auth.user("bob"), "slack")
    relay_until(hooks_app, alice_rx, 2)
    relay_until(hooks_app, bob_rx, 2)
    assert {x["body"]["connection_id"] for x in alice_rx.received} == {a}
    assert {x["body"]["connection_id"] for x in bob_rx.received} == {b}
    assert {x["body"]["tenant"] for x in alice_rx.received} == {"alice"}


def test_an_expiry_from_composio_reaches_the_apps_backend_as_connection_expired(client, auth, hooks_app, receivers):
    client = hooks_app.test_client()
    receiver = receivers()
    register(client, auth.service("alice", "connections:admin"), receiver, eventTypes=["connection.expired"])
    cid = connect(client, auth.user("alice"))
    body, headers = wh.delivery("whsec-test-secret", wh.expired(cid, "alice", toolkit="gmail",
                                                                when=hooks_app.extensions["ledger"].now()))
    assert client.post("/webhooks/composio", data=body, headers=headers).status_code < 300
    got = relay_until(hooks_app, receiver, 1)
    assert [g["body"]["type"] for g in got] == ["connection.expired"]   # only the type it asked for
    hook = got[0]["body"]
    assert hook["connection_id"] == cid and hook["status"] == "EXPIRED" and hook["user_id"] == "alice"
    assert hook["reconnect"]["path"] == f"/api/connections/{cid}/reconnect"
    assert "ya29" not in json.dumps(hook) and "refresh-secret" not in json.dumps(hook)


def test_a_dead_delivery_is_visible_and_is_redelivered_with_the_same_webhook_id(make_app, auth, receivers):
    app = make_app(OUTGOING_WEBHOOKS_ALLOW_PRIVATE="true", OUTGOING_WEBHOOKS_MAX_ATTEMPTS=2,
                   OUTGOING_WEBHOOKS_BASE_DELAY_SECONDS=0.0, POLL_INTERVAL_SECONDS=0.0)
    client, admin = app.test_client(), auth.service("alice", "connections:admin")
    receiver = receivers(status=500)                  # the backend answers errors
    endpoint = register(client, admin, receiver, eventTypes=["connection.activated"])
    connect(client, auth.user("alice"))
    app.extensions["webhook_relay"].run_once()       # attempt 1: HTTP 500, retried at once (no delay)
    app.extensions["webhook_relay"].run_once()       # attempt 2: the last one allowed
    dead = client.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries?status=dead", headers=admin).get_json()["data"]
    assert len(dead) == 1 and dead[0]["attempts"] == 2 and dead[0]["lastError"] == "HTTP 500"
    letters = events_of(app, "webhook.delivery_dead_lettered")
    assert len(letters) == 1 and letters[0].data["webhook_id"] == dead[0]["webhookId"]
    listing = app.test_cli_runner().invoke(args=["ledger", "outbox"])
    assert dead[0]["id"] in listing.output and "1 dead" in listing.output

    receiver.status = 204
    r = app.test_cli_runner().invoke(args=["ledger", "outbox", "retry", dead[0]["id"]])
    assert r.exit_code == 0, r.output
    app.extensions["webhook_relay"].run_once()
    ok = [g for g in receiver.received if g["body"]["type"] == "connection.activated"]
    assert ok[-1]["id"] == dead[0]["webhookId"]     # the same webhook-id as every earlier attempt
    assert len({g["id"] for g in receiver.received}) == 1

    # per endpoint: everything named is sent again, with its webhook-id
    r = client.post(f"{ENDPOINTS}/{endpoint['id']}/redeliver", json={"deliveryIds": [dead[0]["id"]]}, headers=admin)
    assert r.status_code == 202 and r.get_json()["requeued"] == 1
    app.extensions["webhook_relay"].run_once()
    assert [g["id"] for g in receiver.received][-1] == dead[0]["webhookId"]
    assert client.post(f"{ENDPOINTS}/we_0000/redeliver", headers=admin).status_code == 404


def test_a_redirect_is_not_followed(client, auth, hooks_app, receivers):
    client = hooks_app.test_client()
    elsewhere = receivers()
    receiver = receivers(status=307)
    receiver.location = elsewhere.url
    admin = auth.service("alice", "connections:admin")
    endpoint = register(client, admin, receiver, eventTypes=["connection.activated"])
    elsewhere.secret = receiver.secret
    connect(client, auth.user("alice"))
    hooks_app.extensions["webhook_relay"].run_once()
    assert len(receiver.received) >= 1 and elsewhere.received == []
    pending = client.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries", headers=admin).get_json()["data"]
    assert "redirects are not followed" in pending[0]["lastError"]


def test_a_relay_killed_mid_delivery_is_followed_by_one_that_sends_the_same_webhook_id(
        db_url, composio, auth, hooks_app, receivers):
    # Real `ledger relay` processes; the receiver holds the first request unanswered while the
    # relay that sent it is killed (SIGKILL: no chance to record anything).
    import subprocess
    from tests.support import processes as ps
    client, admin = hooks_app.test_client(), auth.service("alice", "connections:admin")
    receiver = receivers()
    endpoint = register(client, admin, receiver, eventTypes=["connection.activated"])
    connect(client, auth.user("alice"))
    env = ps.clean_env(DATABASE_URL=db_url, LEDGER_ENV="development", COMPOSIO_BASE_URL=composio.url,
                       AUTO_MIGRATE="false", OUTGOING_WEBHOOKS_ALLOW_PRIVATE="true",
                       OUTGOING_WEBHOOKS_TIMEOUT_SECONDS="1", OUTGOING_WEBHOOKS_LEASE_SECONDS="2")
    argv = [str(ps.BIN / "flask"), "--app", "wsgi", "ledger", "relay", "--interval", "0.1"]
    receiver.hold.set()
    first = subprocess.Popen(argv, cwd=ps.ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        held = receiver.wait_for(1, timeout=120)
        assert len(held) == 1, "the first relay never delivered"
    finally:
        first.kill()
        first.wait()
    receiver.hold.clear()
    second = subprocess.Popen(argv, cwd=ps.ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        got = receiver.wait_for(2, timeout=120)
        assert len(got) == 2 and got[0]["id"] == got[1]["id"]
        assert got[0]["body"] == got[1]["body"]
        for _ in range(600):
            done = client.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries?status=done", headers=admin).get_json()["data"]
            if done:
                break
            time.sleep(0.05)
        assert [(d["webhookId"], d["attempts"]) for d in done] == [(got[0]["id"], 1)]  # recorded once
    finally:
        ps.stop(second)


def test_a_name_that_resolves_to_a_private_address_at_delivery_is_not_called(hooks_app, auth, receivers):
    # Registered while its name resolved to a public address; by delivery it resolves to the
    # receiver on 127.0.0.1 (DNS rebinding). The delivery checks again and refuses to call it.
    from ledger.services import webhook_endpoints as uc
    from ledger.commands import Caller
    from ledger.services.webhook_delivery import WebhookRelay
    receiver = receivers()
    url = f"http://hooks.example.com:{receiver.port}/hooks"
    created = uc.register(hooks_app.extensions["ledger"], Caller("service", "k1", "alice", admin=True), url=url,
                          allow_private=False, resolver=lambda host, port: ["93.184.216.34"])
    receiver.secret = created.secret
    client = hooks_app.test_client()
    connect(client, auth.user("alice"))
    relay = WebhookRelay(hooks_app.extensions["ledger"], allow_private=False, base_delay=0.0, max_attempts=1000,
                         resolver=lambda host, port: ["127.0.0.1"])
    assert relay.run_once() >= 1
    assert receiver.received == [] and receiver.rejected == []
    pending = client.get(f"{ENDPOINTS}/{created.id}/deliveries",
                         headers=auth.service("alice", "connections:admin")).get_json()["data"]
    tried = [d for d in pending if d["attempts"]]
    assert tried and all("loopback" in d["lastError"] for d in tried)
    # the same delivery, with the name resolving where it was registered for, goes (to our receiver)
    allowed = WebhookRelay(hooks_app.extensions["ledger"], allow_private=True, base_delay=0.0,
                           resolver=lambda host, port: ["127.0.0.1"])
    for _ in range(200):
        allowed.run_once()
        if len(receiver.received) == len(pending):
            break
        time.sleep(0.02)
    assert len(receiver.received) == len(pending) and receiver.rejected == []


def test_a_delivery_is_owed_exactly_when_its_event_commits(hooks_app, auth):
    # The delivery row is written by the event's own transaction: rolled back together, and an
    # idempotent repeat (which appends nothing) owes nothing more.
    from ledger.envelope import NewEvent
    from ledger.service import make_meta
    client, admin = hooks_app.test_client(), auth.service("alice", "connections:admin")
    endpoint = client.post(ENDPOINTS, json={"url": "https://hooks.example.com/in"}, headers=admin).get_json()
    ledger = hooks_app.extensions["ledger"]
    observed = NewEvent(ev.OBSERVED, {"connection_id": "ca_tx1", "user_id": "alice", "tenant": "alice",
                                      "toolkit": "gmail", "status": "ACTIVE"})

    def owed():
        got = client.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries", headers=admin).get_json()["data"]
        return [(d["connectionId"], d["type"]) for d in got]

    with pytest.raises(RuntimeError):
        with ledger.transaction() as txn:
            txn.append(ev.connection_stream("ca_tx1"), [observed], meta=make_meta(ev.SYSTEM, "alice"))
            raise RuntimeError("the request failed after appending")
    assert owed() == [] and events_of(hooks_app, ev.OBSERVED) == []
    for _ in range(2):
        ledger.append(ev.connection_stream("ca_tx1"), [observed], idempotency_key="k-observed-1")
    assert owed() == [("ca_tx1", "connection.discovered")]


def test_the_relay_of_another_process_is_woken_by_the_ledgers_feed_not_by_its_idle_pass(hooks_app, auth, receivers):
    # `ledger relay` records none of the events it delivers: a relay told nothing by
    # event_recorded (as in that process) and idle for an hour still delivers the activation,
    # woken by the ledger's feed (PostgreSQL: the sequencer's NOTIFY; SQLite: its read for new seqs).
    import threading
    from ledger.feed import Feed
    from ledger.services.webhook_delivery import WebhookRelay, wake_on_news
    client, admin = hooks_app.test_client(), auth.service("alice", "connections:admin")
    receiver = receivers()
    register(client, admin, receiver, eventTypes=["connection.activated"])
    ledger = hooks_app.extensions["ledger"]
    relay = WebhookRelay(ledger, allow_private=True)
    feed = Feed(ledger.store, check_seconds=0.05)
    stop = threading.Event()
    threads = [threading.Thread(target=relay.run_forever, args=(stop, 3600.0), daemon=True),
               threading.Thread(target=wake_on_news, args=(relay, feed, stop, ledger.store.head()[0]), daemon=True)]
    for t in threads:
        t.start()
    try:
        cid = connect(client, auth.user("alice"))
        got = receiver.wait_for(1, timeout=60)
        assert [(g["body"]["type"], g["body"]["connection_id"]) for g in got] == [("connection.activated", cid)]
    finally:
        stop.set()
        relay.wake.set()
        feed.close()
        for t in threads:
            t.join(timeout=10)
