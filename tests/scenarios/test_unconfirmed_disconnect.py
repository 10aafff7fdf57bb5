"""A disconnect Composio has not confirmed says so (agents may still have access), from the
ledger's own events: the live rows and a rebuild agree."""
from tests.web.conftest import events_of
from ledger import envelope as ev


def _connected(client, auth):
    resp = client.post("/api/connections", json={"toolkit": "github", "credentials": {"api_key": "k"}},
                       headers=auth.user("alice"))
    return resp.json["connectionId"]


def _disconnect(client, auth, cid):
    resp = client.delete("/api/connections/disconnect", json={"connectionId": cid}, headers=auth.user("alice"))
    assert resp.status_code == 200
    return resp.json


def test_a_disconnect_whose_disable_failed_says_composio_has_not_confirmed_it(client, auth, app, composio):
    cid = _connected(client, auth)
    composio.fail("PATCH", f"/connected_accounts/{cid}/status", status=503)
    answer = _disconnect(client, auth, cid)
    assert answer["status"] == "DISCONNECTING" and answer["upstreamConfirmed"] is False
    assert any("not confirmed" in w and "may still have access" in w for w in answer["warnings"])
    shown = client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json
    assert shown["upstreamConfirmed"] is False and "attempt 1 failed" in shown["statusReason"]
    again = _disconnect(client, auth, cid)
    assert again["upstreamConfirmed"] is False and again["warnings"], "a repeat says so too"
    listed = client.get("/api/connections", headers=auth.user("alice")).json["data"][0]
    assert listed["upstreamConfirmed"] is False
    assert app.extensions["ledger"].rebuild()[1] is True, "the projection's rows equal a replay"
    composio.clear_failures()
    app.extensions["relay"].run_once()
    shown = client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json
    assert shown["upstreamConfirmed"] is True and shown["statusReason"] is None
    assert app.extensions["ledger"].rebuild()[1] is True


def test_a_dead_lettered_disable_is_shown_until_an_operator_retries_it(make_app, auth, composio):
    app = make_app(RELAY_MAX_ATTEMPTS=2)
    client = app.test_client()
    cid = _connected(client, auth)
    composio.fail("PATCH", f"/connected_accounts/{cid}/status", status=503)
    _disconnect(client, auth, cid)
    app.extensions["relay"].run_once()
    assert len(events_of(app, ev.PROVIDER_ACTION_DEAD_LETTERED)) == 1
    shown = client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json
    assert shown["upstreamConfirmed"] is False and "never confirmed the disable" in shown["statusReason"]


def test_a_confirmed_disconnect_has_no_such_warning(client, auth):
    cid = _connected(client, auth)
    answer = _disconnect(client, auth, cid)
    assert answer["upstreamConfirmed"] is True and answer["warnings"] == []
    shown = client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json
    assert shown["upstreamConfirmed"] is True and shown["statusReason"] is None
