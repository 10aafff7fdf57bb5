"""The auditor's HTTP bench: events, export, verify, state, signed heads — audit:read only."""
import io
import json
import logging
import threading
import time
from contextlib import redirect_stdout

import pytest

from ledger import offline_audit as audit, signing
from ledger import envelope as ev
from ledger.envelope import NewEvent


@pytest.fixture
def audit_app(make_app):
    return make_app(LEDGER_SIGNING_KEY=signing.generate_private_key_pem())


def _seed(app, n=9):
    ledger = app.extensions["ledger"]
    for i in range(n):
        cid = f"ca_{i % 3}"
        kind = ev.INITIATED if i < 3 else ev.USED
        ledger.append(ev.connection_stream(cid), [NewEvent(kind, {"connection_id": cid, "user_id": f"u{i % 3}",
                                                                  "tenant": f"u{i % 3}", "toolkit": "github"})])


def _offline(*argv):
    out = io.StringIO()
    with redirect_stdout(out):
        code = audit.main([str(a) for a in argv])
    return code, json.loads(out.getvalue())


def test_an_export_verifies_offline_with_the_head_verify_reports(audit_app, auth, tmp_path):
    _seed(audit_app)
    client, h = audit_app.test_client(), auth.service("acme", "audit:read", name="auditor")
    resp = client.get("/audit/export", headers=h)
    assert resp.status_code == 200 and resp.mimetype == "application/x-ndjson"
    (tmp_path / "e.ndjson").write_bytes(resp.data)
    code, report = _offline("verify-export", tmp_path / "e.ndjson")
    assert code == 0 and report["head"] == client.get("/audit/verify", headers=h).json["head"]
    ranged = client.get("/audit/export?from_seq=3&to_seq=6", headers=h).data
    (tmp_path / "r.ndjson").write_bytes(ranged)
    assert _offline("verify-export", tmp_path / "r.ndjson", "--range", "3:6")[1]["checked"] == 4


def _page_through(client, headers, after: int, seen: list, during: list, writer) -> int:
    """Follow next_after with small pages until it is null; returns the last seq seen."""
    while True:
        during.append(writer.is_alive())
        resp = client.get(f"/audit/events?after={after}&limit=3", headers=headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        page = resp.json
        seen += [e["seq"] for e in page["events"]]
        if page["next_after"] is None:
            return seen[-1] if seen else after
        assert page["next_after"] == seen[-1]
        after = page["next_after"]


def test_paging_walks_every_event_exactly_once_in_order_while_events_keep_arriving(audit_app, auth):
    _seed(audit_app)
    ledger = audit_app.extensions["ledger"]
    client, h = audit_app.test_client(), auth.service("acme", "audit:read")
    reading, failures = threading.Event(), []

    def append_more():
        reading.wait(5)
        try:
            for i in range(40):
                ledger.append("connection:ca_9", [NewEvent(ev.USED, {"connection_id": "ca_9", "n": i})])
                time.sleep(0.002)
        except Exception as exc:  # surfaced below: a silent writer would make the test vacuous
            failures.append(exc)

    writer = threading.Thread(target=append_more)
    writer.start()
    seen, during = [], []
    reading.set()
    try:
        last = _page_through(client, h, 0, seen, during, writer)
    finally:
        writer.join(30)
    _page_through(client, h, last, seen, during, writer)  # once more, now that nothing is arriving

    assert not failures and not writer.is_alive()
    head = ledger.store.head()[0]
    assert head == 9 + 40
    assert seen == list(range(1, head + 1))
    assert sum(during) >= 2, "the writer finished before the second page: nothing ran concurrently"


def test_filters_narrow_the_events(audit_app, auth):
    _seed(audit_app)
    client, h = audit_app.test_client(), auth.service("acme", "audit:read")
    by_conn = client.get("/audit/events?connection_id=ca_1", headers=h).json["events"]
    assert by_conn and {e["stream"] for e in by_conn} == {"connection:ca_1"}
    by_type = client.get(f"/audit/events?type={ev.INITIATED}", headers=h).json["events"]
    assert len(by_type) == 3
    by_user = client.get("/audit/events?user_id=u2", headers=h).json["events"]
    assert {e["stream"] for e in by_user} == {"connection:ca_2"}
    first = by_type[0]["recorded_at"]
    assert all(e["recorded_at"] >= first for e in client.get(f"/audit/events?since={first}", headers=h).json["events"])
    assert client.get("/audit/events?limit=5000", headers=h).status_code == 422
    assert client.get("/audit/events?since=yesterday", headers=h).status_code == 422


def test_only_audit_read_keys_may_read_and_people_may_not(audit_app, auth):
    client = audit_app.test_client()
    for path in ("/audit/events", "/audit/export", "/audit/verify", "/audit/state", "/audit/heads"):
        assert client.get(path, headers=auth.service("acme", "connections:admin")).status_code == 403
        assert client.get(path, headers=auth.user("alice")).status_code == 403


def test_state_as_of_a_seq_or_time_equals_the_projection_then(audit_app, auth):
    _seed(audit_app)
    ledger = audit_app.extensions["ledger"]
    client, h = audit_app.test_client(), auth.service("acme", "audit:read")
    by_seq = client.get("/audit/state?as_of=4", headers=h).json["connections"]
    assert by_seq == json.loads(json.dumps(ledger.state_as_of(seq=4).as_json()))
    at = ledger.read_after(0, 2)[-1].recorded_at
    assert set(client.get(f"/audit/state?as_of={at}", headers=h).json["connections"]) == {"ca_0", "ca_1"}
    assert client.get("/audit/state?as_of=soon", headers=h).status_code == 422


def test_signed_heads_are_listed_served_and_checked_offline(audit_app, auth, tmp_path, caplog):
    _seed(audit_app)
    out = audit_app.test_cli_runner().invoke(args=["ledger", "sign-head"])
    assert out.exit_code == 0 and json.loads(out.stdout)["seq"] == 9
    client, h = audit_app.test_client(), auth.service("acme", "audit:read", name="auditor-jane")
    caplog.set_level(logging.INFO, logger="web.audit")
    heads = client.get("/audit/heads", headers=h).json
    assert [x["seq"] for x in heads["heads"]] == [9]
    key = client.get("/audit/public-key").json["public_key"]
    (tmp_path / "e.ndjson").write_bytes(client.get("/audit/export", headers=h).data)
    (tmp_path / "heads.json").write_text(json.dumps(heads))
    code, report = _offline("verify-export", tmp_path / "e.ndjson", "--public-key", key, "--heads", tmp_path / "heads.json")
    assert code == 0 and report["signed_heads_checked"] == 2  # the one in the export and the one beside it
    assert "auditor-jane" in caplog.text


def test_public_key_without_a_signing_key_is_a_404_envelope(client):
    resp = client.get("/audit/public-key")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_CONFIGURED"


@pytest.mark.parametrize("path", ["/audit/export", "/audit/verify"])
def test_a_range_that_ends_before_it_starts_is_a_422_not_an_empty_answer(audit_app, auth, path):
    _seed(audit_app)
    client, h = audit_app.test_client(), auth.service("acme", "audit:read")
    resp = client.get(f"{path}?from_seq=3&to_seq=2", headers=h)
    assert resp.status_code == 422 and resp.json["error"]["details"][0]["loc"] == ["query", "to_seq"]
    assert client.get(f"{path}?from_seq=3&to_seq=3", headers=h).status_code == 200
