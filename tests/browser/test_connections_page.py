"""The connections page in Chromium: sandbox sign-in, connect through the OAuth popup, disconnect
with the dry-run preview, undo, and live updates across tabs."""
from __future__ import annotations

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (locally) or fails (CI) and says why
    expect = None

from web import create_app


def sign_in(page, person: str = "alice") -> None:
    page.goto("/")
    page.get_by_label("Sandbox person").fill(person)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("who")).to_have_text(person)


def card(page, toolkit: str):
    return page.locator("li.card").filter(has=page.get_by_role("heading", name=toolkit))


def connect_through_popup(page, toolkit: str):
    """Click Connect; the popup opens the local Composio's OAuth page, which completes it."""
    page.get_by_label("Toolkit").fill(toolkit)
    with page.expect_popup() as opened:
        page.get_by_role("button", name="Connect").click()
    popup = opened.value
    expect(card(page, toolkit).get_by_test_id("status")).to_have_text("INITIATED")
    popup.wait_for_url("**/_fake/oauth/**")
    expect(popup.locator("body")).to_contain_text("Connected")
    return popup


def test_the_sandbox_sign_in_says_it_is_the_sandbox_and_lists_my_connections(page, server, screens):
    alice = server.as_user("alice")
    made = alice.post(f"{server.url}/api/connections", json={"toolkit": "notion", "credentials": {"api_key": "k"}})
    assert made.status_code == 201, made.text
    page.goto("/")
    expect(page.get_by_test_id("sandbox-banner")).to_contain_text("Sandbox")
    page.screenshot(path=screens / "01-sandbox-sign-in.png", full_page=True)
    sign_in(page, "alice")
    expect(card(page, "notion").get_by_test_id("status")).to_have_text("ACTIVE")
    expect(page.locator("li.card")).to_have_count(1)


def test_bob_never_sees_alices_connections(page, server):
    alice = server.as_user("alice")
    assert alice.post(f"{server.url}/api/connections", json={"toolkit": "notion", "credentials": {"api_key": "k"}}).ok
    sign_in(page, "bob")
    expect(page.get_by_text("No connections yet.")).to_be_visible()
    expect(page.locator("li.card")).to_have_count(0)


def test_connect_opens_the_popup_and_the_badge_turns_active_without_reload(page, server, screens):
    sign_in(page)
    page.screenshot(path=screens / "02-signed-in-empty.png", full_page=True)
    popup = connect_through_popup(page, "github")
    page.screenshot(path=screens / "03-connect-initiated.png", full_page=True)
    url_before = page.url
    popup.close()  # the person closes the "Connected" window; the page reads the connection once
    badge = card(page, "github").get_by_test_id("status")
    expect(badge).to_have_text("ACTIVE")
    expect(page.locator("#notice")).to_have_text("github is connected.")
    assert page.url == url_before
    page.screenshot(path=screens / "04-connected-active.png", full_page=True)


def test_the_provider_sending_the_popup_back_closes_it_and_the_badge_turns_active(page, server, composio):
    sign_in(page)
    popup = connect_through_popup(page, "slack")
    cid = card(page, "slack").locator(".cid").inner_text()
    callback = composio.account(cid)["callback_url"]
    assert callback == f"{server.url}/connect/done"
    # Real Composio sends the popup back to the callbackUrl with the account's id once OAuth is
    # done (the local server stops at its "Connected" page): follow it as the browser would.
    with popup.expect_event("close"):
        popup.evaluate("url => { window.location.href = url; }", f"{callback}?status=success&connected_account_id={cid}")
    expect(card(page, "slack").get_by_test_id("status")).to_have_text("ACTIVE")


def test_a_second_tab_turns_active_from_the_stream(context, server):
    first, second = context.new_page(), context.new_page()
    sign_in(first)
    second.goto("/")  # same tab session? no: a new tab signs in on its own
    sign_in(second)
    expect(second.get_by_test_id("live")).to_have_text("on")
    popup = connect_through_popup(first, "github")
    popup.close()
    expect(card(first, "github").get_by_test_id("status")).to_have_text("ACTIVE")
    # The second tab never clicked anything: only the stream can have told it.
    expect(card(second, "github").get_by_test_id("status")).to_have_text("ACTIVE")


def test_disconnect_previews_the_agent_then_force_then_undo(page, server, screens):
    alice = server.as_user("alice")
    made = alice.post(f"{server.url}/api/connections", json={"toolkit": "gmail", "credentials": {"api_key": "k"}}).json()
    cid = made["connectionId"]
    assert alice.put(f"{server.url}/api/agents/agent-mail/connections/{cid}").ok
    sign_in(page)
    gmail = card(page, "gmail")
    expect(gmail.get_by_test_id("agents")).to_have_text("agent-mail")

    gmail.get_by_role("button", name="Disconnect").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_test_id("preview-agents")).to_contain_text("agent-mail")
    expect(dialog).to_contain_text("You can undo until")
    page.screenshot(path=screens / "05-disconnect-preview.png", full_page=True)
    # The preview changed nothing.
    assert alice.get(f"{server.url}/api/connections/{cid}").json()["status"] == "ACTIVE"

    dialog.get_by_role("button", name="Disconnect and unbind 1 agent").click()
    expect(gmail.get_by_test_id("status")).to_have_text("DISCONNECTING")
    expect(gmail.get_by_test_id("purge")).to_contain_text("left")
    expect(gmail.get_by_test_id("agents")).to_have_text("none")
    page.screenshot(path=screens / "06-disconnecting-undo.png", full_page=True)
    assert alice.get(f"{server.url}/api/connections/{cid}").json()["status"] == "DISCONNECTING"

    gmail.get_by_role("button", name="Undo disconnect").click()
    expect(gmail.get_by_test_id("status")).to_have_text("ACTIVE")
    assert alice.get(f"{server.url}/api/connections/{cid}").json()["status"] == "ACTIVE"

    gmail.get_by_role("button", name="History").click()
    timeline = gmail.locator(".timeline")
    for step in ("Agent bound", "Disconnect requested", "Disconnect undone"):
        expect(timeline).to_contain_text(step)
    page.screenshot(path=screens / "07-history.png", full_page=True)


def test_cancelling_the_preview_disconnects_nothing(page, server):
    alice = server.as_user("alice")
    cid = alice.post(f"{server.url}/api/connections", json={"toolkit": "slack", "credentials": {"api_key": "k"}}).json()["connectionId"]
    sign_in(page)
    card(page, "slack").get_by_role("button", name="Disconnect").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice has the focus
    page.keyboard.press("Escape")  # the dialog is modal and closes from the keyboard
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(card(page, "slack").get_by_test_id("status")).to_have_text("ACTIVE")
    assert alice.get(f"{server.url}/api/connections/{cid}").json()["status"] == "ACTIVE"


def test_the_page_is_usable_on_a_phone(browser, server, screens):
    ctx = browser.new_context(base_url=server.url, viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = ctx.new_page()
        alice = server.as_user("alice")
        alice.post(f"{server.url}/api/connections", json={"toolkit": "github", "credentials": {"api_key": "k"}})
        sign_in(page)
        expect(card(page, "github").get_by_test_id("status")).to_have_text("ACTIVE")
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=screens / "08-phone.png", full_page=True)
    finally:
        ctx.close()


def _expire(server, cid: str, user: str) -> None:
    """Composio tells the service the connection expired (a signed webhook, as Composio sends it)."""
    from datetime import datetime, timezone

    import requests

    from tests.support import webhooks
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body, headers = webhooks.delivery("whsec-test-secret", webhooks.expired(cid, user, toolkit="github", when=now))
    assert requests.post(f"{server.url}/webhooks/composio", data=body, headers=headers, timeout=60).ok


def test_reconnect_brings_an_expired_connection_back_under_the_same_id(page, server, composio, screens):
    alice = server.as_user("alice")
    cid = alice.post(f"{server.url}/api/connections", json={"toolkit": "github", "credentials": {"api_key": "k"}}).json()["connectionId"]
    composio.set_status(cid, "EXPIRED")
    _expire(server, cid, "alice")
    sign_in(page)
    github = card(page, "github")
    expect(github.get_by_test_id("status")).to_have_text("EXPIRED")
    page.screenshot(path=screens / "09-expired-reconnect.png", full_page=True)
    composio.set_grant(cid, scope="repo read:user", expires_at="2031-01-01T00:00:00Z")  # the new grant's facts
    with page.expect_popup() as opened:
        github.get_by_role("button", name="Reconnect").click()
    popup = opened.value
    # The popup opens blank and is pointed at the provider once the answer arrives: wait for the
    # local Composio's sign-in to have completed, not for the blank page to load.
    popup.wait_for_url("**/_fake/oauth/**")
    expect(popup.locator("body")).to_contain_text("Connected")
    popup.close()
    expect(github.get_by_test_id("status")).to_have_text("ACTIVE")
    expect(page.locator("li.card")).to_have_count(1)
    assert github.locator(".cid").inner_text() == cid
    expect(github.locator(".scopes")).to_have_text("read:user repo")
    expect(github.locator(".f-expires")).to_be_visible()


def test_in_production_the_page_takes_the_session_from_the_app(browser, db_url, composio, screens):
    """No sandbox: the embedding app hands the page its Clerk session token (window.ledgerGetToken,
    as `() => window.Clerk.session.getToken()` would), and the page never offers a dev token."""
    from tests.browser.conftest import Server, sandbox_config
    from tests.support.clerk import ISSUER, JwksServer, mint, new_rsa_key
    key = new_rsa_key()
    jwks = JwksServer([key])
    server = Server(create_app(sandbox_config(db_url, composio.url, LEDGER_ENV="production",
                                              CLERK_JWKS_URL=jwks.url, CLERK_ISSUER=ISSUER)))
    ctx = browser.new_context(base_url=server.url)
    try:
        token = mint(key, sub="user_prod", exp_in=600)
        import requests
        made = requests.post(f"{server.url}/api/connections", json={"toolkit": "github", "credentials": {"api_key": "k"}},
                             headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert made.status_code == 201, made.text
        assert requests.post(f"{server.url}/dev/token", json={"user": "user_prod"}, timeout=60).status_code == 404
        ctx.add_init_script(f"window.ledgerGetToken = async () => {token!r};")
        page = ctx.new_page()
        page.goto("/")
        expect(card(page, "github").get_by_test_id("status")).to_have_text("ACTIVE")
        expect(page.get_by_test_id("who")).to_have_text("user_prod")
        expect(page.get_by_test_id("sandbox-banner")).to_have_count(0)
        expect(page.get_by_label("Sandbox person")).to_have_count(0)
        page.screenshot(path=screens / "14-production-session-from-app.png", full_page=True)
    finally:
        ctx.close()
        server.stop()
        jwks.stop()
