"""Every error, on every route, answers the one envelope — and never a stack trace.

A refused request changes nothing: no event in the ledger and no call to Composio."""
import json

import pytest

from ledger import errors
from tests.support.app import Unchanged, assert_envelope, seed_connections

ROUTES_WITH_BODY = [
    ("POST", "/api/connections"),
    ("POST", "/api/connections/preflight"),
    ("DELETE", "/api/connections/disconnect"),
]


@pytest.fixture
def seeded(client, auth, composio):
    return seed_connections(client, auth)


def _valid_body(path, seeded) -> dict:
    return {"/api/connections": {"toolkit": "github", "callbackUrl": "https://app.example/done"},
            "/api/connections/preflight": {"toolkits": ["github"]},
            "/api/connections/disconnect": {"connectionId": seeded["active"], "force": True}}[path]


# (route, field, a value of the wrong type or shape) — every field of every body model.
WRONG_FIELDS = [
    ("/api/connections", "toolkit", 5), ("/api/connections", "toolkit", None),
    ("/api/connections", "toolkit", "git\u0000hub"), ("/api/connections", "toolkit", "g" * 101),
    ("/api/connections", "callbackUrl", 5), ("/api/connections", "callbackUrl", "javascript:alert(1)"),
    ("/api/connections", "callbackUrl", "https://app.example/\u0000"),
    ("/api/connections", "credentials", ["api_key"]), ("/api/connections", "credentials", {"api_key": 5}),
    ("/api/connections/preflight", "toolkits", "github"), ("/api/connections/preflight", "toolkits", [5]),
    ("/api/connections/preflight", "toolkits", []), ("/api/connections/preflight", "toolkits", ["x"] * 51),
    ("/api/connections/disconnect", "connectionId", 42), ("/api/connections/disconnect", "connectionId", "ca\u00001"),
    ("/api/connections/disconnect", "force", "true"), ("/api/connections/disconnect", "immediate", 1),
    ("/api/connections/disconnect", "dryRun", "yes"),
]
_METHOD = dict((path, method) for method, path in ROUTES_WITH_BODY)


@pytest.mark.parametrize("path, field, value", WRONG_FIELDS)
def test_a_wrong_field_is_a_422_naming_it_and_changes_nothing(app, client, auth, composio, seeded, path, field, value):
    body = {**_valid_body(path, seeded), field: value}
    with Unchanged(app, composio):
        resp = client.open(path, method=_METHOD[path], json=body, headers=auth.user("alice"))
    err = assert_envelope(resp, 422, "VALIDATION_ERROR")
    assert err["details"][0]["loc"][:2] == ["body", field]
    assert all({"loc", "msg", "type"} <= set(d) for d in err["details"])


BAD_BODIES = [
    pytest.param(lambda ok: "{not json", 400, "INVALID_JSON", id="malformed"),
    pytest.param(lambda ok: b"\xff\xfe", 400, "INVALID_JSON", id="not-utf8"),
    pytest.param(lambda ok: "[1, 2]", 422, "VALIDATION_ERROR", id="array"),
    pytest.param(lambda ok: '"a string"', 422, "VALIDATION_ERROR", id="string"),
    pytest.param(lambda ok: "", 422, "VALIDATION_ERROR", id="empty"),
    pytest.param(lambda ok: {**ok, "unexpected": True}, 422, "VALIDATION_ERROR", id="unknown-field"),
    pytest.param(lambda ok: {**ok, "x": "y" * 200_000}, 413, "PAYLOAD_TOO_LARGE", id="huge"),
]


@pytest.mark.parametrize("method, path", ROUTES_WITH_BODY)
@pytest.mark.parametrize("make, status, code", BAD_BODIES)
def test_bad_bodies_answer_the_envelope_on_every_route_and_change_nothing(app, client, auth, composio, seeded,
                                                                           method, path, make, status, code):
    body = make(_valid_body(path, seeded))
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    with Unchanged(app, composio):
        resp = client.open(path, method=method, data=data, content_type="application/json", headers=auth.user("alice"))
    err = assert_envelope(resp, status, code)
    if status == 422:
        assert err["details"] and all({"loc", "msg", "type"} <= set(d) for d in err["details"])
        assert err["details"][0]["loc"][0] == "body"


@pytest.mark.parametrize("method, path", ROUTES_WITH_BODY)
def test_the_valid_bodies_above_do_succeed(client, auth, composio, seeded, method, path):
    # The control: each refusal above is about the one bad part, not the rest of the request.
    resp = client.open(path, method=method, json=_valid_body(path, seeded), headers=auth.user("alice"))
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)


def test_disconnect_without_a_string_connection_id_names_the_field(client, auth):
    for body in ({}, {"connectionId": 42}, {"connectionId": None}):
        err = assert_envelope(client.delete("/api/connections/disconnect", json=body, headers=auth.user("a")), 422)
        assert err["details"][0]["loc"] == ["body", "connectionId"]


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/connections"), ("POST", "/api/connections"), ("GET", "/api/connections/ca_1"),
    ("DELETE", "/api/connections/ca_1"), ("DELETE", "/api/connections/disconnect"),
    ("GET", "/api/agents/a/connections"), ("GET", "/audit/events"), ("GET", "/audit/export"),
])
def test_no_credentials_answers_401(client, method, path):
    assert_envelope(client.open(path, method=method), 401)


def test_flasks_own_404_and_405_use_the_envelope(client):
    assert_envelope(client.get("/nowhere"), 404, "NOT_FOUND")
    resp = client.patch("/api/connections")
    assert_envelope(resp, 405, "METHOD_NOT_ALLOWED")


def test_an_unexpected_error_is_a_500_envelope_without_internals(app, auth):
    @app.get("/boom-for-test")
    def boom():
        raise RuntimeError("secret internals /etc/passwd")
    resp = app.test_client().get("/boom-for-test")
    assert_envelope(resp, 500, "INTERNAL_ERROR")
    assert "secret internals" not in resp.get_data(as_text=True)


LEDGER_ERRORS = [
    (errors.IdempotencyKeyReused, 422, "IDEMPOTENCY_KEY_REUSED"),
    (errors.InvalidInput, 422, "VALIDATION_ERROR"),
    (errors.IdempotencyKeyInUse, 409, "IDEMPOTENCY_KEY_IN_USE"),
    (errors.StorageError, 503, "STORAGE_ERROR"),
]


@pytest.mark.parametrize("cls, status, code", LEDGER_ERRORS, ids=[c.__name__ for c, _, _ in LEDGER_ERRORS])
def test_ledger_errors_map_to_their_status(app, cls, status, code):
    # Each class is imported, not looked up: one renamed or removed fails here instead of skipping.
    @app.get("/raise-for-test")
    def raise_it():
        raise cls()
    assert_envelope(app.test_client().get("/raise-for-test"), status, code)


def test_a_valid_request_id_is_echoed_and_an_invalid_one_replaced(client):
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    replaced = client.get("/healthz", headers={"X-Request-Id": "bad id <script>" + "x" * 200}).headers["X-Request-Id"]
    assert replaced.startswith("req_")


def test_a_revoked_or_unknown_api_key_is_401_and_a_missing_scope_403(client, auth, runner):
    headers = auth.service("acme", "audit:read", name="auditor")
    assert client.get("/audit/verify", headers=headers).status_code == 200
    assert_envelope(client.get("/audit/verify", headers={"X-Api-Key": "clk_nope"}), 401)
    assert_envelope(client.get("/api/connections", headers=headers), 403, "FORBIDDEN")
    key_id = runner.invoke(args=["ledger", "api-key", "list"]).stdout.split("\t")[0]
    assert runner.invoke(args=["ledger", "api-key", "revoke", key_id]).exit_code == 0
    assert_envelope(client.get("/audit/verify", headers=headers), 401)


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


def _params(doc, path, method) -> dict:
    return {p["name"]: p for p in doc["paths"][path][method].get("parameters", [])}


def test_openapi_documents_filters_errors_dry_runs_metrics_and_the_idempotency_key(client):
    doc = client.get("/openapi.json").json
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert {"401", "422", "500", "503"} <= set(op["responses"]), (method, path)
    events = _params(doc, "/audit/events", "get")
    assert {"after", "limit", "connection_id", "user_id", "type", "since", "until"} <= set(events)
    assert events["limit"]["schema"]["maximum"] == 1000 and events["since"]["schema"]["format"] == "date-time"
    assert {"from_seq", "to_seq"} <= set(_params(doc, "/audit/verify", "get"))
    preview = doc["components"]["schemas"]["DisconnectPreview"]["properties"]
    assert {"dryRun", "agents", "canRevoke", "currentStatus", "requiresForce"} <= set(preview)
    assert "200" in doc["paths"]["/api/connections/{connectionId}"]["delete"]["responses"]
    assert "/metrics" in doc["paths"] and "get" in doc["paths"]["/metrics"]
    from web.schemas import MetricsPublic
    MetricsPublic.model_validate(client.get("/metrics").json)  # the documented shape is the served one
    for path, method in (("/api/connections", "post"), ("/api/connections/disconnect", "delete"),
                         ("/api/connections/{connectionId}/restore", "post"),
                         ("/api/agents/{agentId}/connections/{connectionId}", "put")):
        key = _params(doc, path, method)["Idempotency-Key"]
        assert key["in"] == "header" and key["schema"]["minLength"] == 1 and key["schema"]["pattern"]


def test_the_documented_limits_are_the_enforced_ones(client, auth):
    # The document is generated from the models that validate: one past each documented limit is refused.
    doc = client.get("/openapi.json").json
    longest = _params(doc, "/api/connections", "post")["Idempotency-Key"]["schema"]["maxLength"]
    h = auth.user("alice")
    resp = client.post("/api/connections", json={"toolkit": "github"}, headers={**h, "Idempotency-Key": "k" * (longest + 1)})
    assert resp.status_code == 422
    assert client.post("/api/connections", json={"toolkit": "github"},
                       headers={**h, "Idempotency-Key": "k" * longest}).status_code == 201
    limit = _params(doc, "/audit/events", "get")["limit"]["schema"]["maximum"]
    auditor = auth.service("acme", "audit:read")
    assert client.get(f"/audit/events?limit={limit + 1}", headers=auditor).status_code == 422
    assert client.get(f"/audit/events?limit={limit}", headers=auditor).status_code == 200


def test_a_revoked_key_stops_working_once_the_lookup_cache_expires(make_app, auth):
    import time
    from ledger.services import apikeys
    app = make_app(API_KEY_CACHE_SECONDS=0.3)
    record, key = apikeys.create(app.extensions["engine"], "acme", ["audit:read"], "cached")
    client = app.test_client()
    assert client.get("/audit/verify", headers={"X-Api-Key": key}).status_code == 200
    apikeys.revoke(app.extensions["engine"], record.id)
    time.sleep(0.4)
    assert client.get("/audit/verify", headers={"X-Api-Key": key}).status_code == 401


def test_an_oversize_header_is_a_431_in_the_envelope_before_anything_reads_it(client):
    for headers in ({"Authorization": "Bearer " + "a" * 20_000},
                    {f"X-Pad-{i}": "b" * 10_000 for i in range(4)}):
        resp = client.get("/api/connections", headers=headers)
        assert resp.status_code == 431 and resp.is_json
        assert resp.json["success"] is False and resp.json["error"]["status"] == 431
    assert client.get("/api/connections", headers={"Authorization": "Bearer " + "a" * 4000}).status_code == 401
