"""Bodies no JSON decoder can take apart, answered in the envelope and never as a 500."""
import pytest

from tests.support import webhooks as wh

DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"connectionId": ' + "[" * 5000 + "]" * 5000 + "}"


def _envelope(resp, status, code):
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    assert resp.is_json and resp.json["success"] is False and resp.json["error"]["code"] == code


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT])
def test_a_deeply_nested_start_body_is_a_400(client, auth, body):
    resp = client.post("/api/connections", data=body, content_type="application/json", headers=auth.user("alice"))
    _envelope(resp, 400, "INVALID_JSON")


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT])
def test_a_deeply_nested_disconnect_body_is_a_400(client, auth, body):
    resp = client.delete("/api/connections/disconnect", data=body, content_type="application/json",
                         headers=auth.user("alice"))
    _envelope(resp, 400, "INVALID_JSON")


def test_a_signed_deeply_nested_webhook_is_a_400_and_counted(client, app):
    body, headers = wh.delivery(app.config["COMPOSIO_WEBHOOK_SECRET"], DEEP)
    _envelope(client.post("/webhooks/composio", data=body, headers=headers), 400, "INVALID_JSON")
    assert client.get("/metrics").json["process"]["counters"].get("webhook.invalid", 0) >= 1
