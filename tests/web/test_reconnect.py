"""Reconnect in place (issue 15, item 1) through the real SDK against the local Composio, on both
backends: a broken connection is re-authorised under the same id, Composio sees one refresh,
the status returns to ACTIVE once the person finishes OAuth, and its agents stay bound."""
from __future__ import annotations

import pytest
import requests

from ledger import envelope as ev
from tests.support import webhooks as wh
from tests.support.app import WEBHOOK_SECRET, assert_envelope, events_of


def _start(client, auth, user="alice", toolkit="github") -> str:
    r = client.post("/api/connections", json={"toolkit": toolkit}, headers=auth.user(user))
    assert r.status_code == 201, r.get_data(as_text=True)
    requests.get(r.json["redirectUrl"], timeout=10)  # the person finishes OAuth at Composio
    cid = r.json["connectionId"]
    assert client.get(f"/api/connections/{cid}", headers=auth.user(user)).json["status"] == "ACTIVE"
    return cid


def _expire(app, client, cid, user="alice", toolkit="github"):
    """Composio says the connection expired (a signed webhook), and it has at Composio too."""
    body, headers = wh.delivery(WEBHOOK_SECRET, wh.expired(cid, user, toolkit=toolkit, when=app.extensions["ledger"].now()))
    assert client.post("/webhooks/composio", data=body, headers=headers).status_code < 300


@pytest.fixture
def polling_app(make_app):
    return make_app(POLL_INTERVAL_SECONDS=0.0)


def test_an_expired_connection_reconnects_under_the_same_id_and_keeps_its_agents(polling_app, auth, composio):
    app, client, alice = polling_app, polling_app.test_client(), auth.user("alice")
    cid = _start(client, auth)
    assert client.put(f"/api/agents/agent-7/connections/{cid}", headers=alice).status_code == 200
    _expire(app, client, cid)
    composio.set_status(cid, "EXPIRED")
    assert client.get(f"/api/connections/{cid}", headers=alice).json["status"] == "EXPIRED"

    r = client.post(f"/api/connections/{cid}/reconnect", headers=alice)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.json["connectionId"] == cid and r.json["status"] == "INITIATED" and r.json["redirectUrl"]
    assert composio.refreshes(cid) == 1
    assert client.get(f"/api/connections/{cid}", headers=alice).json["status"] == "INITIATED"

    requests.get(r.json["redirectUrl"], timeout=10)
    back = client.get(f"/api/connections/{cid}?wait=5", headers=alice).json
    assert back["status"] == "ACTIVE" and back["connectionId"] == cid and back["agents"] == ["agent-7"]
    listed = client.get("/api/connections", headers=alice).json
    assert listed["count"] == 1, "no duplicate connection"
    steps = [e["type"] for e in client.get(f"/api/connections/{cid}/history", headers=alice).json["events"]]
    assert steps[-3:] == [ev.EXPIRED, ev.RECONNECT_REQUESTED, ev.ACTIVATED]
    [requested] = events_of(app, ev.RECONNECT_REQUESTED)
    assert requested.data == {"connection_id": cid, "previous_status": "EXPIRED", "status": "INITIATED"}
    assert composio.refreshes() == 1


def test_someone_elses_or_a_missing_connection_answers_404_alike_and_is_recorded(polling_app, auth, composio):
    app, client = polling_app, polling_app.test_client()
    cid = _start(client, auth, user="bob")
    _expire(app, client, cid, user="bob")
    theirs = client.post(f"/api/connections/{cid}/reconnect", headers=auth.user("alice"))
    missing = client.post("/api/connections/ca_nope/reconnect", headers=auth.user("alice"))
    assert assert_envelope(theirs, 404, "NOT_FOUND")["message"] == assert_envelope(missing, 404, "NOT_FOUND")["message"]
    assert [e.data["action"] for e in events_of(app, ev.ACCESS_DENIED)] == ["reconnect"]
    assert composio.refreshes() == 0


def test_a_disconnecting_connection_is_not_reconnectable_and_a_working_one_is_refused_too(polling_app, auth, composio):
    client, alice = polling_app.test_client(), auth.user("alice")
    working = _start(client, auth)
    refused = client.post(f"/api/connections/{working}/reconnect", headers=alice)
    assert "ACTIVE" in assert_envelope(refused, 409, "INVALID_STATE")["message"]
    leaving = _start(client, auth, toolkit="gmail")
    assert client.delete(f"/api/connections/{leaving}", headers=alice).status_code == 204
    gone = client.post(f"/api/connections/{leaving}/reconnect", headers=alice)
    assert assert_envelope(gone, 409, "NOT_RECONNECTABLE")["details"]["status"] == "DISCONNECTING"
    assert composio.refreshes() == 0 and not events_of(polling_app, ev.RECONNECT_REQUESTED)


def test_a_repeated_idempotency_key_answers_the_first_reconnect_and_refreshes_once(polling_app, auth, composio):
    app, client, alice = polling_app, polling_app.test_client(), auth.user("alice")
    cid = _start(client, auth)
    _expire(app, client, cid)
    key = {**alice, "Idempotency-Key": "reconnect-1"}
    first = client.post(f"/api/connections/{cid}/reconnect", headers=key)
    again = client.post(f"/api/connections/{cid}/reconnect", headers=key)
    assert first.status_code == again.status_code == 200 and first.json == again.json
    assert composio.refreshes(cid) == 1 and len(events_of(app, ev.RECONNECT_REQUESTED)) == 1
    other = client.post(f"/api/connections/{cid}/reconnect", headers=key, json={"callbackUrl": "https://x.example/"})
    assert_envelope(other, 422, "IDEMPOTENCY_KEY_REUSED")


def test_a_composio_failure_records_nothing_and_frees_the_key(polling_app, auth, composio):
    app, client, alice = polling_app, polling_app.test_client(), auth.user("alice")
    cid = _start(client, auth)
    _expire(app, client, cid)
    composio.fail("POST", "/refresh", status=503, times=1)
    key = {**alice, "Idempotency-Key": "reconnect-2"}
    assert client.post(f"/api/connections/{cid}/reconnect", headers=key).status_code == 502
    assert not events_of(app, ev.RECONNECT_REQUESTED)
    assert client.post(f"/api/connections/{cid}/reconnect", headers=key).status_code == 200


def test_the_callback_url_goes_to_composio_as_the_refresh_redirect(polling_app, auth, composio):
    app, client, alice = polling_app, polling_app.test_client(), auth.user("alice")
    cid = _start(client, auth)
    _expire(app, client, cid)
    r = client.post(f"/api/connections/{cid}/reconnect", headers=alice, json={"callbackUrl": "https://app.example/done"})
    assert r.status_code == 200, r.get_data(as_text=True)
    [refresh] = composio.calls("POST", f"/connected_accounts/{cid}/refresh")
    assert refresh["json"] == {"redirect_url": "https://app.example/done"}
    bad = client.post(f"/api/connections/{cid}/reconnect", headers=alice, json={"callbackUrl": "javascript:x"})
    assert_envelope(bad, 422, "VALIDATION_ERROR")


def test_an_admin_key_of_the_tenant_may_reconnect_a_persons_connection(polling_app, auth, composio):
    app, client = polling_app, polling_app.test_client()
    cid = _start(client, auth)
    _expire(app, client, cid)
    other = client.post(f"/api/connections/{cid}/reconnect", headers=auth.service("acme", "connections:admin"))
    assert_envelope(other, 404, "NOT_FOUND")
    r = client.post(f"/api/connections/{cid}/reconnect", headers=auth.service("alice", "connections:admin"))
    assert r.status_code == 200 and r.json["connectionId"] == cid


def test_an_account_composio_no_longer_has_is_recorded_gone_and_not_reconnected(polling_app, auth, composio):
    app, client, alice = polling_app, polling_app.test_client(), auth.user("alice")
    cid = _start(client, auth)
    assert client.put(f"/api/agents/agent-7/connections/{cid}", headers=alice).status_code == 200
    _expire(app, client, cid)
    composio.forget(cid)  # deleted at Composio out of band

    r = client.post(f"/api/connections/{cid}/reconnect", headers=alice)
    assert assert_envelope(r, 409, "NOT_RECONNECTABLE")["message"].startswith("Composio no longer has this account")
    [gone] = events_of(app, ev.UPSTREAM_MISSING)
    assert gone.data == {"connection_id": cid}
    shown = client.get(f"/api/connections/{cid}", headers=alice).json
    assert shown["status"] == "DISCONNECTED" and shown["agents"] == []
    assert not events_of(app, ev.RECONNECT_REQUESTED)


def test_a_404_to_the_refresh_of_an_account_composio_still_has_records_no_fact(polling_app, auth, composio):
    # Only Composio's own read of the account may say it is gone: a 404 from the refresh alone
    # (a wrong route, a proxy) must not put "gone" in the chain.
    app, client, alice = polling_app, polling_app.test_client(), auth.user("alice")
    cid = _start(client, auth)
    _expire(app, client, cid)
    composio.fail("POST", "/refresh", status=404, times=1)
    assert client.post(f"/api/connections/{cid}/reconnect", headers=alice).status_code == 502
    assert not events_of(app, ev.UPSTREAM_MISSING)
    assert client.get(f"/api/connections/{cid}", headers=alice).json["status"] == "EXPIRED"
