"""Text no UTF-8 column or hash can hold: refused at the door when a caller sends it (422), and
written out legibly when a verified Composio webhook carries it, so the fact is still recorded."""
import json

import pytest

from ledger import envelope as ev
from tests.support import webhooks as wh
from tests.web.conftest import events_of


def _connection_events(app, cid):
    return [(e.type, e.data) for e in app.extensions["ledger"].read_stream(f"connection:{cid}")]


@pytest.mark.parametrize("credentials", ['{"api_key": "\\ud800"}', '{"\\udfff": "key"}'])
def test_a_lone_surrogate_in_credentials_is_a_422_and_composio_is_not_called(client, auth, composio, credentials):
    body = '{"toolkit": "serpapi", "credentials": %s}' % credentials
    resp = client.post("/api/connections", data=body, content_type="application/json", headers=auth.user("alice"))
    assert resp.status_code == 422, resp.get_data(as_text=True)[:300]
    err = resp.json["error"]
    assert err["code"] == "VALIDATION_ERROR" and err["details"][0]["loc"][:2] == ["body", "credentials"]
    assert client.get("/api/connections", headers=auth.user("alice")).json["count"] == 0


def _post(client, app, payload_text: str):
    body, headers = wh.delivery(app.config["COMPOSIO_WEBHOOK_SECRET"], payload_text)
    return client.post("/webhooks/composio", data=body, headers=headers)


def test_a_signed_webhook_whose_type_has_a_lone_surrogate_is_recorded_escaped(client, app, auth):
    payload = wh.trigger_message("ca_1", "alice")
    payload["type"] = "composio.\ud800weird"
    text = json.dumps(payload)  # ASCII, with the surrogate as the JSON escape \ud800
    assert "\\ud800" in text
    resp = _post(client, app, text)
    assert resp.status_code == 200 and resp.json["outcome"] == "unrecognised"
    [event] = events_of(app, ev.WEBHOOK_UNRECOGNISED)
    assert event.data["type"] == "composio.\\ud800weird"
    verified = client.get("/audit/verify", headers=auth.service("ops", "audit:read"))
    assert verified.status_code == 200 and verified.json["ok"] is True


def test_a_nul_in_a_signed_expiry_reason_is_recorded_and_the_connection_expires(client, app, auth):
    payload = wh.expired("ca_nul", "alice")
    payload["data"]["status_reason"] = "revoked\x00by user"
    resp = _post(client, app, json.dumps(payload))
    assert resp.status_code == 200 and resp.json["outcome"] == "accepted", resp.get_data(as_text=True)[:300]
    events = _connection_events(app, "ca_nul")
    assert [t for t, _ in events] == [ev.OBSERVED, ev.EXPIRED]
    assert events[-1][1]["reason"] == "revoked\\u0000by user"
    mine = client.get("/api/connections/ca_nul", headers=auth.user("alice"))
    assert mine.status_code == 200 and mine.json["status"] == "EXPIRED"
