"""The auditor's page and the API docs in Chromium."""
from __future__ import annotations

import json

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (locally) or fails (CI) and says why
    expect = None
from sqlalchemy import text

from ledger.signing import generate_private_key_pem


def _some_history(server) -> str:
    alice = server.as_user("alice")
    cid = alice.post(f"{server.url}/api/connections", json={"toolkit": "github", "credentials": {"api_key": "k"}}).json()["connectionId"]
    assert alice.put(f"{server.url}/api/agents/agent-1/connections/{cid}").ok
    assert alice.delete(f"{server.url}/api/connections/{cid}?force=true").status_code == 204
    return cid


def _use_key(page, key: str) -> None:
    page.goto("/audit")
    page.get_by_label("API key with audit:read").fill(key)
    page.get_by_role("button", name="Use key").click()


@pytest.mark.app_config(LEDGER_SIGNING_KEY=generate_private_key_pem())
def test_the_auditor_verifies_the_chain_and_sees_the_tampered_seq(page, server, screens):
    cid = _some_history(server)
    from web.heads import sign_head
    head = sign_head(server.app)
    _use_key(page, server.audit_key())

    result = page.get_by_test_id("verify-result")
    expect(result).to_contain_text("Chain intact")
    heads = page.locator("#heads-table tbody tr")
    expect(heads).to_have_count(1)
    expect(heads.first).to_contain_text(str(head["seq"]))
    expect(heads.first.locator("td").nth(3)).to_have_text("valid")
    expect(heads.first.locator("td").nth(4)).to_have_text("yes")

    page.get_by_label("or seq").fill("2")
    page.get_by_role("button", name="Show state").click()
    state = page.locator("#state-table tbody tr")
    expect(state).to_have_count(1)
    expect(state.first).to_contain_text(cid)
    expect(state.first).to_contain_text("ACTIVE")   # as of seq 2: bound, not yet disconnected
    expect(state.first).to_contain_text("agent-1")
    page.screenshot(path=screens / "10-audit-intact.png", full_page=True)

    with page.expect_download() as downloaded:
        page.get_by_role("button", name="Download NDJSON").click()
    lines = open(downloaded.value.path()).read().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert len(lines) >= head["seq"]

    # Someone with database access rewrites what happened at seq 2.
    with server.app.extensions["engine"].begin() as conn:
        conn.execute(text("UPDATE events SET data = :d WHERE seq = 2"), {"d": '{"agent_id":"agent-2"}'})
    page.get_by_role("button", name="Verify now").click()
    expect(result).to_contain_text("Chain broken at seq 2")
    page.screenshot(path=screens / "11-audit-tampered.png", full_page=True)


def test_a_key_without_audit_read_is_told_so(page, server):
    from ledger.services import apikeys
    _, key = apikeys.create(server.app.extensions["engine"], "ops", ["connections:admin"], "admin")
    _use_key(page, key)
    expect(page.locator("#notice")).to_contain_text("audit:read")
    expect(page.get_by_test_id("verify-result")).to_be_hidden()


def test_docs_render_locally_and_try_it_calls_the_api_with_my_token_and_key(page, server, screens):
    server.as_user("alice").post(f"{server.url}/api/connections", json={"toolkit": "notion", "credentials": {"api_key": "k"}})
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto("/")
    page.get_by_label("Sandbox person").fill("alice")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("who")).to_have_text("alice")

    page.get_by_role("navigation", name="Pages").get_by_role("link", name="API docs").click()
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Connection Ledger")
    page.screenshot(path=screens / "12-docs.png")
    operation = _try_it_out(page, "get_api_connections", "notion")
    operation.screenshot(path=screens / "13-docs-try-it.png")

    # Now as an auditor: signed out as a person, an audit:read key entered on the Audit page.
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Connections").click()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Audit").click()
    page.get_by_label("API key with audit:read").fill(server.audit_key())
    page.get_by_role("button", name="Use key").click()
    expect(page.get_by_test_id("verify-result")).to_contain_text("Chain intact")
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="API docs").click()
    _try_it_out(page, "get_audit_verify", '"ok": true')
    # Swagger UI and everything else came from this server: no CDN, no validator badge.
    outside = [u for u in requested if not u.startswith(server.url) and not u.startswith(("data:", "blob:"))]
    assert outside == []


def _try_it_out(page, operation_id: str, answered: str):
    """Swagger UI's "Try it out" on one operation: it answers 200 with `answered` in the body."""
    operation = page.locator(f"#operations-default-{operation_id}")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Execute").click()
    response = operation.locator(".live-responses-table .response")
    expect(response.locator(".response-col_status")).to_contain_text("200")
    expect(response.locator(".response-col_description")).to_contain_text(answered)
    return operation
