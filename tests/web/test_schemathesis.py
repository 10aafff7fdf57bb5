"""schemathesis over /openapi.json against the app: no server error, every status code and
content type the service answers is one the spec declares, and every body matches the schema the
spec gives for its status (a 2xx body its response model, an error the envelope). Bounded (few examples per operation,
SQLite only) so CI keeps it; run with more examples by hand (SCHEMATHESIS_EXAMPLES=200)."""
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                                status_code_conformance)

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api(db_url, make_app):
    if not db_url.startswith("sqlite"):
        pytest.skip("bounded run on SQLite only")
    # schemathesis sends many requests; limits are tested elsewhere. A signing key, so the head
    # endpoints answer 200 and their bodies are checked too.
    from ledger.signing import generate_private_key_pem
    return make_app(RATELIMIT_DEFAULT="", LEDGER_SIGNING_KEY=generate_private_key_pem(),
                    OUTGOING_WEBHOOKS_ALLOW_PRIVATE=True)


@pytest.fixture
def credentials(api, signing_key):
    """A person's Clerk token and an audit:read API key: every case is sent with each."""
    from tests.support.app import AuthActions
    actions = AuthActions(api, signing_key)
    return [actions.user("alice"), actions.service("acme", "audit:read", name="auditor")]


def test_every_operation_keeps_its_openapi_contract(api, credentials):
    # Each operation in turn, with hypothesis driving schemathesis' strategy for it (the
    # pytest plugin's lazy fixtures do not run under pytest 9).
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:
        for mode in schemathesis.GenerationMode:  # valid inputs, then invalid ones
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                for headers in credentials:
                    case.call_and_validate(headers=headers, checks=CHECKS)
            try:
                run()
            except Unsatisfiable:
                assert mode == schemathesis.GenerationMode.NEGATIVE  # nothing to get wrong: no parameters


def test_every_success_answer_matches_the_schema_its_operation_declares(api, credentials, composio, signing_key):
    # Random inputs rarely reach a success (a webhook must be signed, a connection must exist):
    # here one real request per operation, in story order, each answer checked by schemathesis
    # against the response schema of its status; at the end every operation has had its 2xx.
    from tests.support import webhooks as wh
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api)
    person, auditor = credentials
    succeeded = set()
    paths = api.test_client().get("/openapi.json").json["paths"]

    def call(method, path, status, headers=person, *, path_parameters=None, query=None, body=None):
        operation = schema[path][method]
        kw = {"body": body, "media_type": "application/json"} if body is not None else {}
        case = operation.Case(path_parameters=path_parameters or {}, query=query or {}, **kw)
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        assert response.status_code == status, (method, path, response.status_code, response.text[:300])
        documented = paths[path][method.lower()]["responses"][str(status)]
        assert status == 204 and "content" not in documented or documented["content"], (method, path)
        succeeded.add((method, path))
        return response

    cid = call("POST", "/api/connections", 201, body={"toolkit": "github"}).json()["connectionId"]
    one, agent = {"connectionId": cid}, {"agentId": "agent-1", "connectionId": cid}
    call("GET", "/api/connections", 200)
    call("POST", "/api/connections/preflight", 200, body={"toolkits": ["github", "slack"]})
    call("GET", "/api/connections/{connectionId}", 200, path_parameters=one, query={"wait": "0.01"})
    call("GET", "/api/connections/{connectionId}/history", 200, path_parameters=one)
    call("PUT", "/api/agents/{agentId}/connections/{connectionId}", 200, path_parameters=agent)
    call("GET", "/api/agents/{agentId}/connections", 200, path_parameters={"agentId": "agent-1"})
    call("DELETE", "/api/agents/{agentId}/connections/{connectionId}", 204, path_parameters=agent)
    call("DELETE", "/api/connections/{connectionId}", 200, path_parameters=one, query={"dry_run": "true"})
    call("DELETE", "/api/connections/disconnect", 200, body={"connectionId": cid, "dryRun": True})
    call("DELETE", "/api/connections/disconnect", 200, body={"connectionId": cid})
    call("POST", "/api/connections/{connectionId}/restore", 200, path_parameters=one)
    call("DELETE", "/api/connections/{connectionId}", 204, path_parameters=one)

    # A signed delivery: the signature covers the exact bytes, so it is sent as they are.
    body, headers = wh.delivery("whsec-test-secret", wh.expired("ca_other", "bob"))
    response = api.test_client().post("/webhooks/composio", data=body, headers=headers)
    assert response.status_code == 200, response.json
    schema["/webhooks/composio"]["POST"].Case(body={}, media_type="application/json").validate_response(
        response, checks=CHECKS)
    succeeded.add(("POST", "/webhooks/composio"))

    # Reconnect in place: a connection Composio says expired (signed, like the delivery above).
    broken = call("POST", "/api/connections", 201, body={"toolkit": "gmail"}).json()["connectionId"]
    body, headers = wh.delivery("whsec-test-secret", wh.expired(broken, "ignored", when=api.extensions["ledger"].now()))
    assert api.test_client().post("/webhooks/composio", data=body, headers=headers).status_code == 200
    call("POST", "/api/connections/{connectionId}/reconnect", 200, path_parameters={"connectionId": broken}, body={})

    assert api.test_cli_runner().invoke(args=["ledger", "sign-head"]).exit_code == 0
    for path in ("/audit/events", "/audit/export", "/audit/verify", "/audit/heads", "/audit/public-key",
                 "/audit/stream"):
        call("GET", path, 200, auditor)
    call("GET", "/audit/state", 200, auditor, query={"as_of": "3"})
    for path in ("/healthz", "/readyz", "/metrics"):
        call("GET", path, 200)
    call("GET", "/api/connections/events", 200, {**person, "Last-Event-ID": "0"})  # from the start: data events

    from tests.support.app import AuthActions
    admin = AuthActions(api, signing_key).service("acme", "connections:admin", name="backend")
    endpoint = call("POST", "/api/webhook-endpoints", 201, admin, body={"url": "http://127.0.0.1:9/hook"}).json()
    which = {"endpointId": endpoint["id"]}
    call("GET", "/api/webhook-endpoints", 200, admin)
    call("GET", "/api/webhook-endpoints/{endpointId}/deliveries", 200, admin, path_parameters=which)
    call("POST", "/api/webhook-endpoints/{endpointId}/redeliver", 202, admin, path_parameters=which, body={})
    call("DELETE", "/api/webhook-endpoints/{endpointId}", 204, admin, path_parameters=which)

    # Issue 15: the tenant's inventory, offboarding and its receipt.
    alice = AuthActions(api, signing_key).user("alice", org_id="acme")
    kept = call("POST", "/api/connections", 201, alice, body={"toolkit": "slack", "credentials": {"api_key": "k"}})
    call("GET", "/api/admin/connections", 200, admin, query={"limit": "1", "user": "alice"})
    started = call("DELETE", "/api/users/{userId}/connections", 202, admin, path_parameters={"userId": "alice"},
                   query={"immediate": "true"}).json()
    assert started["connections"] == [kept.json()["connectionId"]]
    shown = call("GET", "/api/offboardings/{offboardingId}", 200, admin,
                 path_parameters={"offboardingId": started["offboardingId"]}).json()
    assert shown["receipt"]["receipt"]["offboarding_id"] == started["offboardingId"]
    call("DELETE", "/api/me/connections", 202, person)

    declared = {(method.upper(), path) for path, ops in paths.items()
                for method, op in ops.items() if any(code.startswith("2") for code in op["responses"])}
    assert declared - succeeded == set()
