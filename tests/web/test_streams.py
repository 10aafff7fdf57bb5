"""Live streams over a real server on 127.0.0.1, read by a browser-like SSE client: a person sees
exactly their own connection changes in seq order and resumes without loss or duplicate; ?wait
answers when the OAuth completes at the local Composio; auditors follow the whole chain."""
from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

from ledger import envelope as ev
from ledger.chain import GENESIS_HASH, canonical_json, link
from tests.support import webhooks as wh
from tests.support.sse import SseClient
from tests.web.conftest import events_of

EVENTS = "/api/connections/events"


class Served:
    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        live = self.app.extensions.get("live")
        if live is not None:
            live.feed.close()


@pytest.fixture
def serve(make_app):
    started = []

    def start(**overrides):
        overrides.setdefault("SSE_HEARTBEAT_SECONDS", 0.5)
        started.append(Served(make_app(**overrides)))
        return started[-1]
    yield start
    for s in started:
        s.stop()


def start_connection(served, headers, toolkit) -> dict:
    r = requests.post(served.url + "/api/connections", json={"toolkit": toolkit}, headers=headers, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def complete_oauth(served, headers, started) -> dict:
    requests.get(started["redirectUrl"], timeout=10)  # the person finishes OAuth at Composio
    return requests.get(f"{served.url}/api/connections/{started['connectionId']}", headers=headers, timeout=30).json()


def seqs_of_streams(app, ids) -> list[int]:
    streams = {ev.connection_stream(i) for i in ids}
    return [e.seq for e in events_of(app) if e.stream in streams]


def test_a_person_sees_exactly_their_changes_in_order_and_resumes_without_loss_or_duplicate(serve, auth):
    s = serve(POLL_INTERVAL_SECONDS=0.0)
    alice, bob = auth.user("alice"), auth.user("bob")
    # EventSource cannot send headers: alice's page passes the token in the query string.
    alice_stream = SseClient(f"{s.url}{EVENTS}?access_token={auth.token('alice')}")
    bob_stream = SseClient(s.url + EVENTS, headers=bob)
    assert (alice_stream.status, bob_stream.status) == (200, 200)

    a1 = start_connection(s, alice, "github")
    b1 = start_connection(s, bob, "slack")
    a2 = start_connection(s, alice, "gmail")
    assert complete_oauth(s, alice, a1)["status"] == "ACTIVE"
    assert complete_oauth(s, bob, b1)["status"] == "ACTIVE"
    r = requests.delete(f"{s.url}/api/connections/{a2['connectionId']}", headers=alice, timeout=30)
    assert r.status_code == 204
    mine = [a1["connectionId"], a2["connectionId"]]
    expected = seqs_of_streams(s.app, mine)
    assert len(expected) >= 4

    first = alice_stream.events(2)
    alice_stream.close()  # the page goes away mid-stream; the browser reconnects with Last-Event-ID
    assert alice_stream.last_event_id == first[-1]["id"]
    requests.post(f"{s.url}/api/connections/{a2['connectionId']}/restore", headers=alice, timeout=30).raise_for_status()
    expected = seqs_of_streams(s.app, mine)

    again = SseClient(s.url + EVENTS, headers=alice, last_event_id=alice_stream.last_event_id)
    rest = again.events(len(expected) - 2)
    got = first + rest
    assert [int(e["id"]) for e in got] == expected          # every one, in seq order, none twice
    assert {e["data"]["connection"]["connectionId"] for e in got} == set(mine)
    assert all(e["data"]["connection"]["userId"] == "alice" for e in got)
    assert [e["data"]["seq"] for e in got] == expected
    by_type = {e["data"]["type"]: e["data"]["connection"] for e in got}
    assert by_type[ev.ACTIVATED]["status"] == "ACTIVE"
    assert by_type[ev.DISCONNECT_REQUESTED]["status"] == "DISCONNECTING"
    assert by_type[ev.DISCONNECT_REQUESTED]["purgeAt"]
    assert by_type[ev.DISCONNECT_CANCELLED]["status"] == "INITIATED"
    # the latest state equals what GET /api/connections/<id> answers
    now = requests.get(f"{s.url}/api/connections/{a1['connectionId']}", headers=alice, timeout=30).json()
    assert [e for e in got if e["data"]["connection"]["connectionId"] == a1["connectionId"]][-1]["data"]["connection"] == now

    # bob's stream: his own, never alice's, and nothing of alice's lies between
    bob_expected = seqs_of_streams(s.app, [b1["connectionId"]])
    bob_got = bob_stream.events(len(bob_expected))
    assert [int(e["id"]) for e in bob_got] == bob_expected
    start_connection(s, alice, "notion")
    b2 = start_connection(s, bob, "linear")
    nxt = bob_stream.next_event()
    assert nxt["data"]["connection"]["connectionId"] == b2["connectionId"]
    again.close()
    bob_stream.close()


def test_a_stream_never_carries_a_secret_or_another_persons_data(serve, auth, composio):
    s = serve(POLL_INTERVAL_SECONDS=0.0)
    alice = auth.user("alice")
    stream = SseClient(s.url + EVENTS, headers=alice)
    a1 = start_connection(s, alice, "github")
    complete_oauth(s, alice, a1)
    raw = []
    for _ in range(2):
        raw.append(json.dumps(stream.next_event()))
    text = " ".join(raw)
    token_values = composio.account(a1["connectionId"])["state"]["val"]
    assert token_values["access_token"] not in text and token_values["refresh_token"] not in text
    assert "meta" not in text and "trace_id" not in text and "idempotency" not in text
    stream.close()


def test_an_expiry_webhook_from_composio_shows_on_the_owners_stream(serve, auth):
    s = serve(POLL_INTERVAL_SECONDS=0.0)
    alice = auth.user("alice")
    a1 = start_connection(s, alice, "gmail")
    complete_oauth(s, alice, a1)
    stream = SseClient(s.url + EVENTS, headers=alice)   # from now on
    body, headers = wh.delivery("whsec-test-secret", wh.expired(a1["connectionId"], "alice", toolkit="gmail",
                                                                       when=s.app.extensions["ledger"].now()))
    r = requests.post(s.url + "/webhooks/composio", data=body, headers=headers, timeout=30)
    assert r.status_code < 300, r.text
    got = stream.next_event()["data"]
    assert got["type"] == ev.EXPIRED
    assert got["connection"]["connectionId"] == a1["connectionId"]
    assert got["connection"]["status"] == "EXPIRED"
    assert "ya29" not in json.dumps(got)
    stream.close()


def test_wait_answers_soon_after_the_oauth_completes_and_at_the_deadline_otherwise(serve, auth):
    s = serve(POLL_INTERVAL_SECONDS=0.3)
    alice = auth.user("alice")
    pending = start_connection(s, alice, "github")
    url = f"{s.url}/api/connections/{pending['connectionId']}"

    completed_at = {}

    def complete_later():
        time.sleep(1.5)
        requests.get(pending["redirectUrl"], timeout=10)
        completed_at["t"] = time.monotonic()
    t = threading.Thread(target=complete_later)
    t.start()
    began = time.monotonic()
    r = requests.get(url + "?wait=30", headers=alice, timeout=60)
    answered = time.monotonic()
    t.join()
    assert r.status_code == 200 and r.json()["status"] == "ACTIVE"
    assert answered - completed_at["t"] < 2.0, "answered long after the OAuth completed"
    assert answered - began < 29

    other = start_connection(s, alice, "slack")
    began = time.monotonic()
    r = requests.get(f"{s.url}/api/connections/{other['connectionId']}?wait=1", headers=alice, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "INITIATED"
    assert 1.0 <= time.monotonic() - began < 10


def test_twenty_waiters_ask_composio_at_most_once_per_interval(serve, auth, composio):
    s = serve(POLL_INTERVAL_SECONDS=1.0)
    alice = auth.user("alice")
    pending = start_connection(s, alice, "github")
    cid = pending["connectionId"]
    url = f"{s.url}/api/connections/{cid}?wait=3"
    before = len(composio.calls("GET", f"/connected_accounts/{cid}"))
    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: requests.get(url, headers=alice, timeout=60), range(20)))
    elapsed = time.monotonic() - began
    assert [a.json().get("status", a.text) for a in answers] == ["INITIATED"] * 20
    calls = composio.calls("GET", f"/connected_accounts/{cid}")[before:]
    assert len(calls) <= int(elapsed / 1.0) + 1, [round(c["at"] - calls[0]["at"], 2) for c in calls]
    gaps = [b["at"] - a["at"] for a, b in zip(calls, calls[1:])]
    assert all(g >= 0.9 for g in gaps), gaps


def test_a_waiter_hears_a_change_made_by_another_request(serve, auth):
    s = serve()
    alice = auth.user("alice")
    r = requests.post(s.url + "/api/connections", json={"toolkit": "openai", "credentials": {"api_key": "sk-x"}},
                      headers=alice, timeout=30)
    cid = r.json()["connectionId"]
    assert r.json()["status"] == "ACTIVE"

    def disconnect_later():
        time.sleep(1.0)
        requests.delete(f"{s.url}/api/connections/{cid}", headers=alice, timeout=30)
    t = threading.Thread(target=disconnect_later)
    t.start()
    r = requests.get(f"{s.url}/api/connections/{cid}?wait=30", headers=alice, timeout=60)
    t.join()
    assert r.json()["status"] == "DISCONNECTING"


@pytest.mark.parametrize("wait", ["61", "-1", "soon", "nan", "inf"])
def test_a_wait_outside_0_to_60_seconds_is_refused(client, auth, wait):
    r = client.get(f"/api/connections/ca_x?wait={wait}", headers=auth.user("alice"))
    assert r.status_code == 422
    assert r.json["error"]["details"][0]["loc"] == ["query", "wait"]


def test_bad_resume_points_and_missing_credentials_are_refused_in_the_envelope(client, auth):
    r = client.get(EVENTS, headers={**auth.user("alice"), "Last-Event-ID": "12abc"})
    assert r.status_code == 422 and r.json["error"]["details"][0]["loc"] == ["header", "Last-Event-ID"]
    assert client.get(EVENTS).status_code == 401
    assert client.get(EVENTS + "?access_token=not-a-token").status_code == 401
    # the query-string token is accepted on the stream only
    assert client.get("/api/connections?access_token=" + auth.token("alice")).status_code == 401
    key = auth.service("t1", "connections:admin")
    assert client.get("/audit/stream", headers=key).status_code == 403
    assert client.get("/audit/stream", headers=auth.user("alice")).status_code == 403
    r = client.get("/audit/stream?from_seq=0", headers=auth.service("t1", "audit:read"))
    assert r.status_code == 422


def test_the_query_string_token_never_reaches_a_log_line(serve, auth, caplog):
    s = serve()
    token = auth.token("alice")
    with caplog.at_level(logging.INFO):
        stream = SseClient(f"{s.url}{EVENTS}?access_token={token}")
        assert stream.status == 200
        stream.close()
        r = requests.get(f"{s.url}{EVENTS}?access_token={token}x", timeout=10)
        assert r.status_code == 401
        time.sleep(0.2)  # the server logs the request line after answering
    assert token not in caplog.text
    assert "access_token=[redacted]" in caplog.text


def test_an_auditor_follows_the_whole_chain_with_hashes_and_resumes_by_seq(serve, auth):
    s = serve(POLL_INTERVAL_SECONDS=0.0)
    alice, bob = auth.user("alice"), auth.user("bob")
    key = auth.service("ops", "audit:read")
    a1 = start_connection(s, alice, "github")
    start_connection(s, bob, "slack")
    feed = SseClient(s.url + "/audit/stream", headers=key)
    head = len(events_of(s.app))
    lines = [e["data"] for e in feed.events(head)]
    complete_oauth(s, alice, a1)
    lines += [e["data"] for e in feed.events(len(events_of(s.app)) - head)]
    feed.close()
    export = requests.get(s.url + "/audit/export", headers=key, timeout=30).text.splitlines()
    assert [json.loads(x) for x in export] == lines            # exactly the export's lines, in order
    prev = GENESIS_HASH
    for line in lines:                                         # and the chain verifies as it goes
        body = {k: v for k, v in line.items() if k != "hash"}
        assert body["prev_hash"] == prev
        assert link(prev, canonical_json(body)) == line["hash"]
        prev = line["hash"]
    assert lines[-1]["type"] == ev.ACTIVATED

    resumed = SseClient(s.url + "/audit/stream?from_seq=2", headers=key)
    assert resumed.next_event()["data"] == lines[1]
    resumed.close()
    by_id = SseClient(s.url + "/audit/stream?from_seq=1", headers=key, last_event_id=str(len(lines) - 1))
    assert by_id.next_event()["data"] == lines[-1]             # Last-Event-ID wins over from_seq
    by_id.close()


def test_openapi_documents_the_streams_and_wait(client):
    doc = client.get("/openapi.json").json
    person = doc["paths"]["/api/connections/events"]["get"]
    assert "text/event-stream" in person["responses"]["200"]["content"]
    assert {p["name"] for p in person["parameters"]} == {"Last-Event-ID", "access_token"}
    assert {p["name"] for p in doc["paths"]["/audit/stream"]["get"]["parameters"]} == {"Last-Event-ID", "from_seq"}
    wait = {p["name"]: p for p in doc["paths"]["/api/connections/{connectionId}"]["get"]["parameters"]}["wait"]
    assert wait["schema"]["maximum"] == 60


def _shipper_code() -> str:
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "streams.md").read_text()
    section = doc[doc.index("### A shipper"):]
    return section[section.index("```python") + len("```python"):section.index("```\n", section.index("```python") + 9)]


def _lines_when(path, count: int, proc, deadline_s: float = 60.0) -> list[str]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            break
        time.sleep(0.1)
    return path.read_text().splitlines() if path.exists() else []


def test_the_documented_siem_shipper_resumes_after_a_kill_and_ships_the_chain_once(serve, auth, tmp_path):
    import os
    import subprocess
    import sys
    s = serve(POLL_INTERVAL_SECONDS=0.0)
    alice = auth.user("alice")
    for toolkit in ("github", "slack"):
        start_connection(s, alice, toolkit)
    env = {**os.environ, "LEDGER_URL": s.url, "AUDIT_KEY": auth.service("ops", "audit:read")["X-Api-Key"]}
    out = tmp_path / "ledger.ndjson"
    code = _shipper_code()
    first = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert len(_lines_when(out, len(events_of(s.app)), first)) == len(events_of(s.app))
    finally:
        first.kill()
        first.wait()
    a3 = start_connection(s, alice, "gmail")
    complete_oauth(s, alice, a3)
    second = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        shipped = _lines_when(out, len(events_of(s.app)), second)
    finally:
        second.kill()
        second.wait()
    export = requests.get(s.url + "/audit/export", headers={"X-Api-Key": env["AUDIT_KEY"]}, timeout=30).text.splitlines()
    assert [json.loads(x) for x in shipped] == [json.loads(x) for x in export]   # all of it, once, in order
    check = subprocess.run([sys.executable, "-m", "ledger.audit", "verify-export", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
