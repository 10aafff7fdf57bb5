"""A person leaves: every connection disconnected in one request, through the outbox as a single
disconnect is, and a receipt signed with the head-signing key that an auditor verifies offline
against an export (and that fails on a single changed byte)."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from ledger import envelope as ev
from ledger.offline_audit import main as audit_main
from ledger.signing import generate_private_key_pem
from tests.support.app import events_of

ORG = "acme"


def _person(auth, user):
    return auth.user(user, org_id=ORG)


def _connect(client, auth, user, toolkit="github") -> str:
    resp = client.post("/api/connections", json={"toolkit": toolkit, "credentials": {"api_key": "k"}},
                       headers=_person(auth, user))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json["connectionId"]


@pytest.fixture
def signed_app(make_app):
    return make_app(LEDGER_SIGNING_KEY=generate_private_key_pem())


def _settle(app, client, headers, off_id, rounds=8):
    """Run the relay (as a worker would) until the offboarding is complete; its last answer."""
    for _ in range(rounds):
        shown = client.get(f"/api/offboardings/{off_id}", headers=headers)
        assert shown.status_code == 200, shown.get_data(as_text=True)
        if shown.json["status"] == "completed":
            return shown.json
        app.extensions["relay"].run_once(limit=50)
    raise AssertionError(f"not complete: {shown.json}")


def _export(client, auth, tmp_path) -> str:
    resp = client.get("/audit/export", headers=auth.service(ORG, "audit:read", name="auditor"))
    assert resp.status_code == 200
    path = tmp_path / "export.ndjson"
    path.write_bytes(resp.data)
    return str(path)


def test_offboarding_twenty_connections_ends_with_a_receipt_that_verifies_offline(signed_app, auth, composio, tmp_path):
    app, client = signed_app, signed_app.test_client()
    me = _person(auth, "alice")
    ids = [_connect(client, auth, "alice") for _ in range(18)]
    no_revoke = _connect(client, auth, "alice", "no-revoke-toolkit")
    flaky = _connect(client, auth, "alice")
    ids += [no_revoke, flaky]
    for agent, cid in (("agent-a", ids[0]), ("agent-b", ids[0]), ("agent-c", ids[5]), ("agent-d", flaky)):
        assert client.put(f"/api/agents/{agent}/connections/{cid}", headers=me).status_code == 200
    bystander = _connect(client, auth, "bob")
    composio.fail("DELETE", f"/connected_accounts/{flaky}", status=500, times=2)

    resp = client.delete("/api/me/connections?immediate=true", headers=me)
    assert resp.status_code == 202, resp.get_data(as_text=True)
    off_id = resp.json["offboardingId"]
    assert off_id.startswith("off_") and sorted(resp.json["connections"]) == sorted(ids)

    shown = _settle(app, client, me, off_id)
    assert {c["connectionId"]: c["status"] for c in shown["connections"]} == {cid: "DISCONNECTED" for cid in ids}
    assert client.get(f"/api/connections/{bystander}", headers=_person(auth, "bob")).json["status"] == "ACTIVE"
    for cid in ids:  # revoke before delete, each once as Composio sees it (the flaky delete retried)
        calls = composio.calls(path_contains=f"/connected_accounts/{cid}")
        kinds = [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in calls]
        assert kinds.index(("POST", "revoke")) < kinds.index(("DELETE", cid))
        assert kinds.count(("POST", "revoke")) == 1
        assert composio.account(cid) is None
    assert len(composio.calls("DELETE", f"/connected_accounts/{flaky}")) == 3
    assert len([e for e in events_of(app, ev.PROVIDER_ACTION_FAILED) if e.data["connection_id"] == flaky]) == 2
    unbound = {(e.data["agent_id"], e.data["connection_id"]) for e in events_of(app, ev.AGENT_UNBOUND)}
    assert unbound == {("agent-a", ids[0]), ("agent-b", ids[0]), ("agent-c", ids[5]), ("agent-d", flaky)}

    receipt = shown["receipt"]
    body = receipt["receipt"]
    assert body["offboarding_id"] == off_id and body["user_id"] == "alice" and body["tenant"] == ORG
    outcomes = {c["connection_id"]: c for c in body["connections"]}
    assert sorted(outcomes) == sorted(ids)
    assert outcomes[no_revoke]["outcome"] == "not_revocable" and outcomes[no_revoke]["revoked"] == []
    assert outcomes[no_revoke]["reason"]
    for cid in set(ids) - {no_revoke}:
        assert outcomes[cid]["outcome"] == "revoked" and outcomes[cid]["revoked"], outcomes[cid]
        assert [e["type"] for e in outcomes[cid]["events"]] == [ev.UPSTREAM_REVOKED, ev.DISCONNECT_COMPLETED]
    recorded = {e.seq: e.hash for e in events_of(app)}
    for c in body["connections"]:
        assert all(recorded[e["seq"]] == e["hash"] for e in c["events"])

    # The auditor: the receipt, an export and the public key, nothing else.
    receipt_path, key = tmp_path / "receipt.json", client.get("/audit/public-key").json["public_key"]
    receipt_path.write_text(json.dumps(receipt, separators=(",", ":")))
    export = _export(client, auth, tmp_path)
    assert audit_main(["verify-receipt", str(receipt_path), "--export", export, "--public-key", key]) == 0
    done = subprocess.run([sys.executable, "-m", "ledger.audit", "verify-receipt", str(receipt_path),
                           "--public-key", key], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["ok"] is True, done.stderr

    text = receipt_path.read_text()
    at = text.index('"revoked":["') + len('"revoked":["')  # one byte of what was revoked
    changed = tmp_path / "changed.json"
    changed.write_text(text[:at] + ("X" if text[at] != "X" else "Y") + text[at + 1:])
    assert audit_main(["verify-receipt", str(changed), "--export", export, "--public-key", key]) == 1
    assert audit_main(["verify-receipt", str(tmp_path / "missing.json"), "--public-key", key]) == 2


def test_a_receipt_citing_an_event_the_export_does_not_hold_fails(signed_app, auth, composio, tmp_path):
    app, client = signed_app, signed_app.test_client()
    me = _person(auth, "alice")
    _connect(client, auth, "alice")
    off_id = client.delete("/api/me/connections", json={"immediate": True}, headers=me).json["offboardingId"]
    receipt = _settle(app, client, me, off_id)["receipt"]
    key = client.get("/audit/public-key").json["public_key"]
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    export = _export(client, auth, tmp_path)
    lines = open(export).read().splitlines()
    cut = tmp_path / "cut.ndjson"  # a shorter chain: still verifies, but lacks the cited events
    cut.write_text("\n".join(lines[:receipt["receipt"]["requested"]["seq"] - 1]) + "\n")
    assert audit_main(["verify-receipt", str(path), "--export", str(cut), "--public-key", key]) == 1
    assert audit_main(["verify-receipt", str(path), "--export", export, "--public-key", key]) == 0


def test_with_the_grace_period_connections_are_disabled_now_and_purged_after_the_window(signed_app, auth, composio):
    app, client = signed_app, signed_app.test_client()
    me = _person(auth, "alice")
    ids = [_connect(client, auth, "alice") for _ in range(2)]
    resp = client.delete("/api/me/connections", headers=me)
    assert resp.status_code == 202 and resp.json["status"] == "in_progress"
    off_id = resp.json["offboardingId"]
    shown = client.get(f"/api/offboardings/{off_id}", headers=me).json
    assert {c["status"] for c in shown["connections"]} == {"DISCONNECTING"}
    assert {c["outcome"] for c in shown["connections"]} == {"pending"} and shown["receipt"] is None
    assert all(len(composio.calls("PATCH", f"/connected_accounts/{cid}/status")) == 1 for cid in ids)
    assert composio.calls("POST", "/revoke") == []
    with freeze_time(datetime.now(timezone.utc) + timedelta(seconds=3601)):
        app.extensions["relay"].run_once()
    shown = client.get(f"/api/offboardings/{off_id}", headers=me).json
    assert shown["status"] == "completed" and len(shown["receipt"]["receipt"]["connections"]) == 2


def test_asking_again_returns_the_same_offboarding_and_disconnects_nothing_twice(signed_app, auth, composio):
    client = signed_app.test_client()
    me = _person(auth, "alice")
    ids = [_connect(client, auth, "alice") for _ in range(3)]
    first = client.delete("/api/me/connections", headers=me)
    before = len(events_of(signed_app))
    again = client.delete("/api/me/connections", headers=me)
    assert again.status_code == 202 and again.json["offboardingId"] == first.json["offboardingId"]
    assert sorted(again.json["connections"]) == sorted(ids)
    assert len(events_of(signed_app)) == before, "a repeat records nothing"
    assert len(events_of(signed_app, ev.DISCONNECT_REQUESTED)) == 3
    assert all(len(composio.calls("PATCH", f"/connected_accounts/{cid}/status")) == 1 for cid in ids)

    admin = auth.service(ORG, "connections:admin", name="hr")
    keyed = {**admin, "Idempotency-Key": "leaver-alice-1"}
    by_admin = client.delete("/api/users/alice/connections", headers=keyed)
    assert by_admin.status_code == 202 and by_admin.json["offboardingId"] == first.json["offboardingId"]
    assert client.delete("/api/users/alice/connections", headers=keyed).json == by_admin.json
    assert len(events_of(signed_app, ev.DISCONNECT_REQUESTED)) == 3


def test_an_admin_key_offboards_a_person_of_its_tenant_and_reads_the_progress(signed_app, auth, composio):
    client = signed_app.test_client()
    cid = _connect(client, auth, "alice")
    admin = auth.service(ORG, "connections:admin", name="hr")
    resp = client.delete("/api/users/alice/connections?immediate=true", headers=admin)
    assert resp.status_code == 202 and resp.json["connections"] == [cid]
    shown = client.get(f"/api/offboardings/{resp.json['offboardingId']}", headers=admin).json
    assert shown["userId"] == "alice" and shown["connections"][0]["status"] == "DISCONNECTED"
    assert shown["receipt"]["receipt"]["connections"][0]["outcome"] == "revoked"
    reader = auth.service(ORG, "audit:read", name="reader")
    assert client.delete("/api/users/alice/connections", headers=reader).status_code == 403
    assert client.delete("/api/me/connections", headers=admin).status_code == 403


@pytest.mark.parametrize("connections", [3, 0])
def test_two_requests_at_once_make_one_offboarding(signed_app, auth, composio, connections):
    import threading
    ids = [_connect(signed_app.test_client(), auth, "alice") for _ in range(connections)]
    me = _person(auth, "alice")
    answers, go = [], threading.Barrier(2)

    def offboard():
        client = signed_app.test_client()
        go.wait()
        answers.append(client.delete("/api/me/connections", headers=me))
    threads = [threading.Thread(target=offboard) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [202, 202], [a.get_data(as_text=True) for a in answers]
    assert answers[0].json["offboardingId"] == answers[1].json["offboardingId"]
    assert len(events_of(signed_app, ev.OFFBOARDING_REQUESTED)) == 1
    assert len(events_of(signed_app, ev.DISCONNECT_REQUESTED)) == connections
    assert all(len(composio.calls("PATCH", f"/connected_accounts/{cid}/status")) == 1 for cid in ids)
    if not connections:  # nothing to disconnect: complete at once, and its receipt says so
        shown = signed_app.test_client().get(f"/api/offboardings/{answers[0].json['offboardingId']}", headers=me).json
        assert shown["status"] == "completed" and shown["receipt"]["receipt"]["connections"] == []
