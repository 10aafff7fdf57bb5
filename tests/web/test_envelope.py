"""Every error, on every route, answers the one envelope — and never a stack trace."""
import pytest

ROUTES_WITH_BODY = [
    ("POST", "/api/connections"),
    ("POST", "/api/connections/preflight"),
    ("DELETE", "/api/connections/disconnect"),
]
BAD_BODIES = [
    ("{not json", 400, "INVALID_JSON"),
    ("[1, 2]", 422, "VALIDATION_ERROR"),
    ('{"toolkit": 5, "toolkits": "x", "connectionId": 5}', 422, "VALIDATION_ERROR"),
    ('{"toolkit": "github", "toolkits": ["github"], "connectionId": "ca_1", "unexpected": true}', 422, "VALIDATION_ERROR"),
]


def _assert_envelope(resp, status, code=None):
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.json
    assert body["success"] is False
    err = body["error"]
    assert err["status"] == status and err["message"] and err["type"] and err["timestamp"].endswith("Z")
    assert err["trace_id"] == resp.headers["X-Request-Id"]
    if code:
        assert err["code"] == code
    assert "Traceback" not in resp.get_data(as_text=True)
    return err


@pytest.mark.parametrize("method, path", ROUTES_WITH_BODY)
@pytest.mark.parametrize("body, status, code", BAD_BODIES)
def test_bad_bodies_answer_the_envelope_on_every_route(client, auth, method, path, body, status, code):
    resp = client.open(path, method=method, data=body, content_type="application/json", headers=auth.user("alice"))
    err = _assert_envelope(resp, status, code)
    if status == 422:
        assert all({"loc", "msg", "type"} <= set(d) for d in err["details"])


@pytest.mark.parametrize("method, path", ROUTES_WITH_BODY)
def test_a_huge_body_answers_413(client, auth, method, path):
    resp = client.open(path, method=method, data="x" * 200_000, content_type="application/json",
                       headers=auth.user("alice"))
    _assert_envelope(resp, 413, "PAYLOAD_TOO_LARGE")


def test_disconnect_without_a_string_connection_id_names_the_field(client, auth):
    for body in ({}, {"connectionId": 42}, {"connectionId": None}):
        err = _assert_envelope(client.delete("/api/connections/disconnect", json=body, headers=auth.user("a")), 422)
        assert err["details"][0]["loc"] == ["body", "connectionId"]


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/connections"), ("POST", "/api/connections"), ("GET", "/api/connections/ca_1"),
    ("DELETE", "/api/connections/ca_1"), ("DELETE", "/api/connections/disconnect"),
    ("GET", "/api/agents/a/connections"), ("GET", "/audit/events"), ("GET", "/audit/export"),
])
def test_no_credentials_answers_401(client, method, path):
    _assert_envelope(client.open(path, method=method), 401)


def test_flasks_own_404_and_405_use_the_envelope(client):
    _assert_envelope(client.get("/nowhere"), 404, "NOT_FOUND")
    resp = client.patch("/api/connections")
    _assert_envelope(resp, 405, "METHOD_NOT_ALLOWED")


def test_an_unexpected_error_is_a_500_envelope_without_internals(app, auth):
    @app.get("/boom-for-test")
    def boom():
        raise RuntimeError("secret internals /etc/passwd")
    resp = app.test_client().get("/boom-for-test")
    err = _assert_envelope(resp, 500, "INTERNAL_ERROR")
    assert "secret internals" not in resp.get_data(as_text=True)


def test_a_valid_request_id_is_echoed_and_an_invalid_one_replaced(client):
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    replaced = client.get("/healthz", headers={"X-Request-Id": "bad id <script>" + "x" * 200}).headers["X-Request-Id"]
    assert replaced.startswith("req_")


def test_a_revoked_or_unknown_api_key_is_401_and_a_missing_scope_403(client, auth, runner):
    headers = auth.service("acme", "audit:read", name="auditor")
    assert client.get("/audit/verify", headers=headers).status_code == 200
    _assert_envelope(client.get("/audit/verify", headers={"X-Api-Key": "clk_nope"}), 401)
    _assert_envelope(client.get("/api/connections", headers=headers), 403, "FORBIDDEN")
    key_id = runner.invoke(args=["ledger", "api-key", "list"]).stdout.split("\t")[0]
    assert runner.invoke(args=["ledger", "api-key", "revoke", key_id]).exit_code == 0
    _assert_envelope(client.get("/audit/verify", headers=headers), 401)


def test_api_key_create_prints_the_key_once_as_the_last_line_and_stores_only_a_hash(app, runner):
    out = runner.invoke(args=["ledger", "api-key", "create", "--tenant", "acme", "--scope", "audit:read",
                              "--scope", "connections:admin", "--name", "ops"])
    assert out.exit_code == 0
    key = out.stdout.strip().splitlines()[-1]
    listed = runner.invoke(args=["ledger", "api-key", "list"]).stdout
    assert "ops" in listed and key not in listed
    from sqlalchemy import text
    with app.extensions["engine"].connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(text("SELECT * FROM api_keys")) for v in row)
    assert key not in stored
    assert app.test_client().get("/audit/verify", headers={"X-Api-Key": key}).status_code == 200
    bad = runner.invoke(args=["ledger", "api-key", "create", "--tenant", "acme", "--scope", "root"])
    assert bad.exit_code != 0


def test_openapi_documents_every_endpoint_and_the_error_envelope(client):
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    for path in ("/api/connections", "/api/connections/disconnect", "/api/connections/{connectionId}/restore",
                 "/api/agents/{agentId}/connections/{connectionId}", "/webhooks/composio", "/audit/export"):
        assert path in doc["paths"]
    schemas = doc["components"]["schemas"]
    assert "connectionId" in schemas["DisconnectRequest"]["required"]
    assert schemas["DisconnectRequest"]["additionalProperties"] is False
    assert "ErrorEnvelope" in schemas


def test_a_revoked_key_stops_working_once_the_lookup_cache_expires(make_app, auth):
    import time
    from ledger import apikeys
    app = make_app(API_KEY_CACHE_SECONDS=0.3)
    record, key = apikeys.create(app.extensions["engine"], "acme", ["audit:read"], "cached")
    client = app.test_client()
    assert client.get("/audit/verify", headers={"X-Api-Key": key}).status_code == 200
    apikeys.revoke(app.extensions["engine"], record.id)
    time.sleep(0.4)
    assert client.get("/audit/verify", headers={"X-Api-Key": key}).status_code == 401
