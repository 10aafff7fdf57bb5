"""The connections API through the real SDK against the local Composio, on both backends."""
import pytest

from ledger import envelope as ev
from tests.support.app import events_of


def _start(client, auth, user="alice", toolkit="github", **body):
    return client.post("/api/connections", json={"toolkit": toolkit, **body}, headers=auth.user(user))


def test_starting_an_oauth_connection_answers_201_with_a_redirect_and_records_the_owner(client, auth, app, composio):
    resp = _start(client, auth, callbackUrl="https://app.example/done")
    assert resp.status_code == 201
    body = resp.json
    assert body["status"] == "INITIATED" and body["redirectUrl"] and body["connectionId"].startswith("ca_")
    [initiated] = events_of(app, ev.INITIATED)
    assert initiated.data["user_id"] == "alice" and initiated.data["toolkit"] == "github"
    assert composio.account(body["connectionId"])["user_id"] == "alice"
    listed = client.get("/api/connections", headers=auth.user("alice")).json
    assert [c["connectionId"] for c in listed["data"]] == [body["connectionId"]] and listed["count"] == 1


def test_credentials_make_a_connection_active_at_once_and_are_stored_nowhere(client, auth, app, db_url, caplog):
    secret = "sk-live-very-secret-123"
    resp = _start(client, auth, toolkit="openai", credentials={"api_key": secret})
    assert resp.status_code == 201 and resp.json["status"] == "ACTIVE"
    assert secret not in resp.get_data(as_text=True)
    assert all(secret not in e.to_json_line() for e in events_of(app))
    assert secret not in caplog.text


def test_polling_an_initiated_connection_asks_composio_at_most_once_per_interval(client, auth, app, composio):
    cid = _start(client, auth).json["connectionId"]
    for _ in range(10):
        assert client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json["status"] == "INITIATED"
    assert len(composio.calls("GET", f"/connected_accounts/{cid}")) == 1


def test_polling_records_the_activation_once_oauth_completes(make_app, auth, composio):
    app = make_app(POLL_INTERVAL_SECONDS=0.0)
    client = app.test_client()
    cid = _start(client, auth).json["connectionId"]
    composio.set_status(cid, "ACTIVE")
    assert client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json["status"] == "ACTIVE"
    assert client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json["status"] == "ACTIVE"
    assert len(events_of(app, ev.ACTIVATED)) == 1


def test_list_filters_by_status_and_toolkit_and_preflight_tells_what_is_ready(client, auth, composio):
    active = _start(client, auth, toolkit="notion", credentials={"api_key": "k"}).json["connectionId"]
    _start(client, auth, toolkit="github")
    h = auth.user("alice")
    by_status = client.get("/api/connections?status=ACTIVE", headers=h).json["data"]
    assert [c["connectionId"] for c in by_status] == [active]
    assert client.get("/api/connections?toolkit=github", headers=h).json["count"] == 1
    assert client.get("/api/connections?status=NOPE", headers=h).status_code == 422
    pre = client.post("/api/connections/preflight", json={"toolkits": ["notion", "github", "slack"]}, headers=h).json
    assert pre == {"connected": ["notion"], "pending": ["github", "slack"], "initiated": ["github"],
                   "missing": ["slack"], "allReady": False}, "pending is every required toolkit not ACTIVE"


def test_preflight_names_each_toolkit_once_however_often_and_in_whatever_case_it_is_asked(client, auth, composio):
    _start(client, auth, toolkit="notion", credentials={"api_key": "k"})
    _start(client, auth, toolkit="github")
    toolkits = ["notion", "NOTION", "slack", "github", "Slack", "GitHub", "notion"]
    pre = client.post("/api/connections/preflight", json={"toolkits": toolkits}, headers=auth.user("alice")).json
    assert pre == {"connected": ["notion"], "pending": ["slack", "github"], "initiated": ["github"],
                   "missing": ["slack"], "allReady": False}, "each once, in the order first asked"


def test_a_never_seen_connection_of_mine_is_observed_and_one_of_someone_else_is_404(client, auth, app, composio):
    mine = composio.add_account("alice", "gmail", status="ACTIVE")
    theirs = composio.add_account("bob", "gmail", status="ACTIVE")
    resp = client.get(f"/api/connections/{mine}", headers=auth.user("alice"))
    assert resp.status_code == 200 and resp.json["status"] == "ACTIVE"
    assert [e.data["user_id"] for e in events_of(app, ev.OBSERVED)] == ["alice"]
    missing = client.get("/api/connections/ca_doesnotexist", headers=auth.user("alice"))
    other = client.get(f"/api/connections/{theirs}", headers=auth.user("alice"))
    assert other.status_code == missing.status_code == 404
    assert other.json["error"]["code"] == missing.json["error"]["code"] == "NOT_FOUND"
    assert other.json["error"]["message"] == missing.json["error"]["message"]
    assert [e.data["connection_id"] for e in events_of(app, ev.ACCESS_DENIED)] == [theirs]


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/connections/{cid}"), ("GET", "/api/connections/{cid}/history"),
    ("PUT", "/api/agents/agent-1/connections/{cid}"), ("DELETE", "/api/connections/{cid}"),
    ("POST", "/api/connections/{cid}/restore"),
])
def test_person_b_touching_a_connection_of_person_a_gets_404_and_one_security_event(
        client, auth, app, composio, method, path):
    cid = _start(client, auth).json["connectionId"]
    before = len(composio.calls())
    resp = client.open(path.format(cid=cid), method=method, headers=auth.user("bob"))
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"
    assert cid not in resp.get_data(as_text=True)
    denied = events_of(app, ev.ACCESS_DENIED)
    assert len(denied) == 1 and denied[0].data["caller"]["id"] == "bob"
    assert len(composio.calls()) == before, "Composio must not be asked about A's account"


def test_agents_bind_list_and_unbind(client, auth, app):
    cid = _start(client, auth, toolkit="slack", credentials={"api_key": "k"}).json["connectionId"]
    h = auth.user("alice")
    assert client.put(f"/api/agents/agent-7/connections/{cid}", headers=h).json["agents"] == ["agent-7"]
    assert client.put(f"/api/agents/agent-7/connections/{cid}", headers=h).status_code == 200
    assert len(events_of(app, ev.AGENT_BOUND)) == 1
    assert [c["connectionId"] for c in client.get("/api/agents/agent-7/connections", headers=h).json["data"]] == [cid]
    assert client.delete(f"/api/agents/agent-7/connections/{cid}", headers=h).status_code == 204
    again = client.delete(f"/api/agents/agent-7/connections/{cid}", headers=h)
    assert again.status_code == 404 and again.json["success"] is False
    assert client.get("/api/agents/agent-7/connections", headers=h).json["count"] == 0


def test_an_agents_connections_show_every_agent_bound_to_each(client, auth):
    cid = _start(client, auth, toolkit="slack", credentials={"api_key": "k"}).json["connectionId"]
    h = auth.user("alice")
    client.put(f"/api/agents/agent-7/connections/{cid}", headers=h)
    client.put(f"/api/agents/agent-8/connections/{cid}", headers=h)
    listed = client.get("/api/agents/agent-7/connections", headers=h).json["data"]
    assert [c["agents"] for c in listed] == [["agent-7", "agent-8"]]
    assert listed[0]["agents"] == client.get(f"/api/connections/{cid}", headers=h).json["agents"]


def test_an_admin_key_acts_on_its_tenants_connections_only(client, auth):
    cid = _start(client, auth, toolkit="slack", credentials={"api_key": "k"}).json["connectionId"]
    own = auth.service("alice", "connections:admin", name="ops")
    other = auth.service("acme", "connections:admin", name="other")
    reader = auth.service("alice", "audit:read", name="reader")
    assert client.get(f"/api/connections/{cid}", headers=own).status_code == 200
    assert client.get(f"/api/connections/{cid}", headers=other).status_code == 404
    assert client.get(f"/api/connections/{cid}", headers=reader).status_code == 403


@pytest.mark.parametrize("failure", ["status", "timeout"])
def test_composio_failing_on_initiate_answers_502_and_records_nothing(client, auth, app, composio, failure):
    if failure == "status":
        composio.fail("POST", "/connected_accounts", status=500)
    else:
        composio.delay("POST", "/connected_accounts", seconds=4)
    resp = _start(client, auth)
    assert resp.status_code == 502 and resp.json["error"]["code"] == "UPSTREAM_ERROR"
    assert events_of(app) == []


def test_a_token_leaked_into_composio_state_appears_nowhere(client, auth, app, composio, caplog, db_url):
    cid = composio.add_account("alice", "github", status="ACTIVE")
    leaked = composio.account(cid)["state"]["val"]["access_token"]
    h = auth.user("alice")
    bodies = [client.get(f"/api/connections/{cid}", headers=h).get_data(as_text=True),
              client.get("/api/connections", headers=h).get_data(as_text=True),
              client.get(f"/api/connections/{cid}/history", headers=h).get_data(as_text=True)]
    assert all(leaked not in b for b in bodies)
    assert all(leaked not in e.to_json_line() for e in events_of(app))
    assert leaked not in caplog.text
    if db_url.startswith("sqlite"):
        path = db_url.split("sqlite:///", 1)[1]
        for suffix in ("", "-wal"):
            try:
                assert leaked.encode() not in open(path + suffix, "rb").read()
            except FileNotFoundError:
                pass


def test_a_retried_start_with_the_same_idempotency_key_creates_one_account(client, auth, app, composio):
    h = {**auth.user("alice"), "Idempotency-Key": "start-1"}
    first = client.post("/api/connections", json={"toolkit": "github"}, headers=h)
    again = client.post("/api/connections", json={"toolkit": "github"}, headers=h)
    assert first.status_code == again.status_code == 201 and again.json == first.json
    assert len(composio.calls("POST", "/connected_accounts")) == 1
    [initiated] = events_of(app, ev.INITIATED)
    assert initiated.meta["idempotency_key"] == "start-1"
    other = client.post("/api/connections", json={"toolkit": "gmail"}, headers=h)
    assert other.status_code == 422 and other.json["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(composio.calls("POST", "/connected_accounts")) == 1


def test_a_duplicate_start_while_the_first_is_in_flight_is_told_to_retry_not_served_twice(make_app, auth, composio):
    import threading
    app = make_app()
    composio.delay("POST", "/api/v3.1/connected_accounts", 1.0, times=1)
    h = {**auth.user("alice"), "Idempotency-Key": "start-2"}
    first = []
    thread = threading.Thread(target=lambda: first.append(
        app.test_client().post("/api/connections", json={"toolkit": "github"}, headers=h)))
    thread.start()
    import time
    time.sleep(0.4)
    second = app.test_client().post("/api/connections", json={"toolkit": "github"}, headers=h)
    thread.join(10)
    assert first[0].status_code == 201
    assert second.status_code == 409 and second.json["error"]["code"] == "IDEMPOTENCY_KEY_IN_USE"
    retry = app.test_client().post("/api/connections", json={"toolkit": "github"}, headers=h)
    assert retry.status_code == 201 and retry.json == first[0].json
    assert len([c for c in composio.calls("POST", "/connected_accounts") if c["path"].endswith("connected_accounts")]) == 1


def test_a_start_that_failed_at_composio_can_be_retried_with_the_same_key(client, auth, app, composio):
    composio.fail("POST", "/api/v3.1/connected_accounts", status=500, times=1)
    h = {**auth.user("alice"), "Idempotency-Key": "start-3"}
    failed = client.post("/api/connections", json={"toolkit": "github"}, headers=h)
    assert failed.status_code == 502
    retry = client.post("/api/connections", json={"toolkit": "github"}, headers=h)
    assert retry.status_code == 201 and len(events_of(app, ev.INITIATED)) == 1


def test_disconnect_and_restore_retried_with_their_keys_record_once(client, auth, app):
    cid = _start(client, auth, credentials={"api_key": "k"}).json["connectionId"]
    d = {**auth.user("alice"), "Idempotency-Key": "disc-1"}
    one = client.delete("/api/connections/disconnect", json={"connectionId": cid}, headers=d)
    two = client.delete("/api/connections/disconnect", json={"connectionId": cid}, headers=d)
    assert one.status_code == two.status_code == 200 and one.json == two.json
    r = {**auth.user("alice"), "Idempotency-Key": "rest-1"}
    one = client.post(f"/api/connections/{cid}/restore", headers=r)
    two = client.post(f"/api/connections/{cid}/restore", headers=r)
    assert one.status_code == two.status_code == 200 and one.json == two.json
    assert len(events_of(app, ev.DISCONNECT_REQUESTED)) == 1 and len(events_of(app, ev.DISCONNECT_CANCELLED)) == 1
    assert [e.meta.get("idempotency_key") for e in events_of(app, ev.DISCONNECT_CANCELLED)] == ["rest-1"]
