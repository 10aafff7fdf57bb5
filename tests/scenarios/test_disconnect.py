"""A person disconnects, sees the warning, undoes it — and after the window Composio holds nothing."""
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from ledger import envelope as ev
from tests.web.conftest import events_of


def _connected(client, auth, user="alice", toolkit="github"):
    resp = client.post("/api/connections", json={"toolkit": toolkit, "credentials": {"api_key": "k"}},
                       headers=auth.user(user))
    assert resp.status_code == 201
    return resp.json["connectionId"]


def _types(app, cid):
    return [e.type for e in app.extensions["ledger"].read_stream(f"connection:{cid}")]


def _after_window(app, seconds=3601):
    """Run the relay as if the grace period had passed."""
    with freeze_time(datetime.now(timezone.utc) + timedelta(seconds=seconds)):
        return app.extensions["relay"].run_once()


@pytest.mark.parametrize("form", ["body", "rest"])
def test_happy_path_disables_now_then_revokes_and_deletes_after_the_window(client, auth, app, composio, form):
    cid = _connected(client, auth)
    if form == "body":
        resp = client.delete("/api/connections/disconnect", json={"connectionId": cid}, headers=auth.user("alice"))
        assert resp.status_code == 200
        assert resp.json["success"] is True and resp.json["status"] == "DISCONNECTING" and resp.json["purgeAt"]
    else:
        resp = client.delete(f"/api/connections/{cid}", headers=auth.user("alice"))
        assert resp.status_code == 204 and resp.data == b""
    patches = composio.calls("PATCH", f"/connected_accounts/{cid}/status")
    assert len(patches) == 1 and patches[0]["json"] == {"enabled": False}
    assert composio.calls("DELETE") == [] and composio.calls("POST", "/revoke") == []
    _after_window(app)
    assert len(composio.calls("POST", f"/connected_accounts/{cid}/revoke")) == 1
    deletes = composio.calls("DELETE", f"/connected_accounts/{cid}")
    assert len(deletes) == 1
    revoke_at = composio.calls().index(composio.calls("POST", "/revoke")[0])
    assert revoke_at < composio.calls().index(deletes[0]), "the grant is revoked before the account is deleted"
    assert composio.account(cid) is None
    assert _types(app, cid)[-5:] == [ev.DISCONNECT_REQUESTED, ev.UPSTREAM_DISABLED, ev.UPSTREAM_REVOKED,
                                     ev.UPSTREAM_DELETED, ev.DISCONNECT_COMPLETED]
    revoked = events_of(app, ev.UPSTREAM_REVOKED)[0].data
    assert revoked["supported"] is True and revoked["revoked"]
    assert client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json["status"] == "DISCONNECTED"


def test_a_toolkit_without_revoke_support_is_recorded_and_still_deleted(client, auth, app, composio):
    cid = _connected(client, auth, toolkit="no-revoke-toolkit")
    client.delete(f"/api/connections/{cid}?immediate=true", headers=auth.user("alice"))
    app.extensions["relay"].run_once()
    revoked = events_of(app, ev.UPSTREAM_REVOKED)[0].data
    assert revoked["supported"] is False and revoked["revoked"] == []
    assert len(composio.calls("DELETE", f"/connected_accounts/{cid}")) == 1
    assert composio.account(cid) is None


def test_composio_failing_three_times_then_succeeding_deletes_exactly_once(client, auth, app, composio):
    cid = _connected(client, auth)
    composio.fail("DELETE", f"/connected_accounts/{cid}", status=500, times=3)
    client.delete(f"/api/connections/{cid}?immediate=true", headers=auth.user("alice"))
    relay = app.extensions["relay"]
    for _ in range(6):
        relay.run_once()
    assert len(events_of(app, ev.PROVIDER_ACTION_FAILED)) == 3
    assert [e.data["attempt"] for e in events_of(app, ev.PROVIDER_ACTION_FAILED)] == [1, 2, 3]
    assert len(events_of(app, ev.UPSTREAM_DELETED)) == 1
    assert len(composio.calls("DELETE", f"/connected_accounts/{cid}")) == 4
    assert client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json["status"] == "DISCONNECTED"


def test_composio_always_failing_dead_letters_and_outbox_retry_completes_it(make_app, auth, composio):
    app = make_app(RELAY_MAX_ATTEMPTS=6)  # an explicit cap; by default time decides (test_relay_backoff)
    client, runner = app.test_client(), app.test_cli_runner()
    cid = _connected(client, auth)
    composio.fail("DELETE", f"/connected_accounts/{cid}", status=503)
    client.delete(f"/api/connections/{cid}?immediate=true", headers=auth.user("alice"))
    for _ in range(10):
        app.extensions["relay"].run_once()
    dead = events_of(app, ev.PROVIDER_ACTION_DEAD_LETTERED)
    assert len(dead) == 1 and dead[0].data["attempts"] == app.config["RELAY_MAX_ATTEMPTS"]
    listing = runner.invoke(args=["ledger", "outbox"]).stdout
    assert "dead" in listing and cid in listing
    action_id = dead[0].data["action_id"]
    composio.clear_failures()
    assert runner.invoke(args=["ledger", "outbox", "retry", action_id]).exit_code == 0
    app.extensions["relay"].run_once()
    assert len(events_of(app, ev.UPSTREAM_DELETED)) == 1 and composio.account(cid) is None


def test_bound_agents_answer_409_unless_forced_and_then_every_binding_ends(client, auth, app, composio):
    cid = _connected(client, auth)
    h = auth.user("alice")
    for agent in ("agent-a", "agent-b"):
        client.put(f"/api/agents/{agent}/connections/{cid}", headers=h)
    resp = client.delete("/api/connections/disconnect", json={"connectionId": cid}, headers=h)
    assert resp.status_code == 409 and resp.json["error"]["code"] == "AGENTS_USING_CONNECTION"
    assert resp.json["error"]["details"]["agents"] == ["agent-a", "agent-b"]
    assert composio.calls("PATCH") == [] and events_of(app, ev.DISCONNECT_REQUESTED) == []
    forced = client.delete("/api/connections/disconnect", json={"connectionId": cid, "force": True}, headers=h)
    assert forced.status_code == 200 and len(forced.json["warnings"]) == 2
    assert len(events_of(app, ev.AGENT_UNBOUND)) == 2
    assert client.get("/api/agents/agent-a/connections", headers=h).json["count"] == 0


def test_a_dry_run_tells_the_impact_and_changes_nothing(client, auth, app, composio):
    cid = _connected(client, auth)
    h = auth.user("alice")
    client.put(f"/api/agents/agent-a/connections/{cid}", headers=h)
    before = len(events_of(app))
    resp = client.delete(f"/api/connections/{cid}?dry_run=true", headers=h)
    assert resp.status_code == 200, "the REST dry run answers 200 with the preview, not 204"
    assert resp.json["agents"] == ["agent-a"] and resp.json["requiresForce"] is True
    assert resp.json["canRevoke"] is None, "no github connection was purged yet: unknown, not guessed"
    body = client.delete("/api/connections/disconnect", json={"connectionId": cid, "dryRun": True}, headers=h)
    assert body.json["dryRun"] is True
    assert len(events_of(app)) == before and composio.calls("PATCH") == []


def test_a_dry_run_without_force_on_a_bound_connection_says_it_would_be_refused(client, auth, app):
    cid = _connected(client, auth)
    h = auth.user("alice")
    client.put(f"/api/agents/agent-a/connections/{cid}", headers=h)
    preview = client.delete(f"/api/connections/{cid}?dry_run=true", headers=h).json
    assert preview["status"] == "ACTIVE", "a dry run changes nothing: the status it shows is today's"
    assert preview["wouldSucceed"] is False and preview["wouldError"] == "AGENTS_USING_CONNECTION"
    assert preview["wouldStatus"] is None and preview["purgeAt"] is None and preview["requiresForce"] is True
    assert len(preview["warnings"]) == 1 and "would be refused" in preview["warnings"][0]
    assert "409" in preview["warnings"][0] and "agent-a" in preview["warnings"][0]
    assert not any("was unbound" in w for w in preview["warnings"])
    forced = client.delete(f"/api/connections/{cid}?dry_run=true&force=true", headers=h).json
    assert forced["wouldSucceed"] is True and forced["wouldStatus"] == "DISCONNECTING" and forced["purgeAt"]
    assert forced["warnings"] == ["agent agent-a would be unbound"] and forced["status"] == "ACTIVE"
    real = client.delete(f"/api/connections/{cid}", headers=h)
    assert real.status_code == 409 and real.json["error"]["code"] == preview["wouldError"]


@pytest.mark.parametrize("toolkit, supported", [("github", True), ("no-revoke-toolkit", False)])
def test_a_dry_run_knows_whether_revoke_works_once_a_connection_of_the_toolkit_was_purged(
        client, auth, app, toolkit, supported):
    first, second = _connected(client, auth, toolkit=toolkit), _connected(client, auth, toolkit=toolkit)
    client.delete(f"/api/connections/{first}?immediate=true", headers=auth.user("alice"))
    preview = client.delete(f"/api/connections/{second}?dry_run=true", headers=auth.user("alice"))
    assert preview.json["canRevoke"] is supported


def test_restore_inside_the_window_reenables_and_after_it_is_409(client, auth, app, composio):
    cid = _connected(client, auth)
    h = auth.user("alice")
    client.delete(f"/api/connections/{cid}", headers=h)
    resp = client.post(f"/api/connections/{cid}/restore", headers=h)
    assert resp.status_code == 200 and resp.json["status"] == "ACTIVE"
    enables = composio.calls("PATCH", f"/connected_accounts/{cid}/status")
    assert [c["json"] for c in enables] == [{"enabled": False}, {"enabled": True}]
    _after_window(app)
    assert composio.calls("DELETE") == [] and composio.account(cid) is not None, "a restored connection is never purged"
    client.delete(f"/api/connections/{cid}", headers=h)
    with freeze_time(datetime.now(timezone.utc) + timedelta(seconds=3601)):
        late = client.post(f"/api/connections/{cid}/restore", headers=auth.user("alice"))
    assert late.status_code == 409 and late.json["error"]["code"] == "GRACE_PERIOD_EXPIRED"


def test_a_restore_racing_a_claimed_purge_ends_in_one_consistent_state(client, auth, app, composio):
    cid = _connected(client, auth)
    h = auth.user("alice")
    client.delete(f"/api/connections/{cid}", headers=h)
    relay = app.extensions["relay"]
    later = datetime.now(timezone.utc) + timedelta(seconds=3601)
    with freeze_time(later):
        claimed = relay.claim()
    assert [c.action for c in claimed] == ["revoke"]
    with freeze_time(later - timedelta(seconds=2)):  # a restore whose clock says "still inside"
        resp = client.post(f"/api/connections/{cid}/restore", headers=auth.user("alice"))
    assert resp.status_code == 409, "the purge is under way: the restore must not cross it"
    with freeze_time(later):
        relay._record(claimed[0], relay._execute(claimed[0]))
        relay.run_once()
        assert client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json["status"] == "DISCONNECTED"
    assert events_of(app, ev.DISCONNECT_CANCELLED) == []


def test_repeating_a_disconnect_records_nothing_new_and_answers_the_same(client, auth, app):
    cid = _connected(client, auth)
    h = auth.user("alice")
    first = client.delete("/api/connections/disconnect", json={"connectionId": cid}, headers=h).json
    count = len(events_of(app))
    again = client.delete("/api/connections/disconnect", json={"connectionId": cid}, headers=h).json
    assert again["purgeAt"] == first["purgeAt"] and again["status"] == "DISCONNECTING"
    assert len(events_of(app)) == count


def test_an_idempotency_key_makes_a_retry_safe(client, auth, app):
    cid = _connected(client, auth)
    h = {**auth.user("alice"), "Idempotency-Key": "retry-1"}
    client.put(f"/api/agents/agent-a/connections/{cid}", headers=h)
    one = client.delete(f"/api/agents/agent-a/connections/{cid}", headers={**auth.user("alice"), "Idempotency-Key": "u-1"})
    two = client.delete(f"/api/agents/agent-a/connections/{cid}", headers={**auth.user("alice"), "Idempotency-Key": "u-1"})
    assert one.status_code == two.status_code == 204
    assert len(events_of(app, ev.AGENT_UNBOUND)) == 1


def test_disconnect_while_composio_is_down_still_answers_and_completes_later(client, auth, app, composio):
    cid = _connected(client, auth)
    composio.fail("PATCH", "/status", status=503)
    resp = client.delete("/api/connections/disconnect", json={"connectionId": cid}, headers=auth.user("alice"))
    assert resp.status_code == 200 and resp.json["status"] == "DISCONNECTING"
    assert len(events_of(app, ev.PROVIDER_ACTION_FAILED)) == 1
    composio.clear_failures()
    app.extensions["relay"].run_once()
    assert len(events_of(app, ev.UPSTREAM_DISABLED)) == 1
    assert composio.account(cid)["status"] == "INACTIVE"


def test_person_b_cannot_disconnect_a_connection_of_person_a(client, auth, app, composio):
    cid = _connected(client, auth)
    before = len(composio.calls())
    resp = client.delete("/api/connections/disconnect", json={"connectionId": cid}, headers=auth.user("bob"))
    assert resp.status_code == 404
    assert len(composio.calls()) == before and len(events_of(app, ev.ACCESS_DENIED)) == 1
    assert events_of(app, ev.DISCONNECT_REQUESTED) == []


def test_a_restore_arriving_while_a_relay_claims_the_purge_waits_for_it_and_is_refused(client, auth, app, composio):
    import threading
    import time
    from sqlalchemy import select, update
    from ledger.clock import iso, now
    from ledger.tables import outbox
    cid = _connected(client, auth)
    client.delete(f"/api/connections/{cid}", headers=auth.user("alice"))
    engine = app.extensions["engine"]
    with engine.connect() as conn:
        [revoke] = conn.execute(select(outbox.c.id).where(outbox.c.connection_id == cid,
                                                          outbox.c.action == "revoke")).scalars().all()
    answers = []
    restore = threading.Thread(target=lambda: answers.append(
        app.test_client().post(f"/api/connections/{cid}/restore", headers=auth.user("alice"))))
    # Another relay's claim, caught mid-transaction: the restore must wait for it, then see it.
    with engine.connect().execution_options(ledger_write=True) as conn, conn.begin():
        conn.execute(select(outbox).where(outbox.c.id == revoke).with_for_update())
        conn.execute(update(outbox).where(outbox.c.id == revoke).values(
            claimed_by="relay-elsewhere", claimed_until=iso(now() + timedelta(seconds=120))))
        restore.start()
        time.sleep(0.5)
        assert restore.is_alive(), "the restore must wait for the claim, not read around it"
    restore.join(30)
    assert answers[0].status_code == 409 and answers[0].json["error"]["code"] == "GRACE_PERIOD_EXPIRED"
    assert events_of(app, ev.DISCONNECT_CANCELLED) == []
    with engine.connect() as conn:
        row = conn.execute(select(outbox).where(outbox.c.id == revoke)).one()
    assert row.status == "pending" and row.claimed_by == "relay-elsewhere", "the purge goes on"


def test_failed_actions_back_off_exponentially_with_jitter_before_they_are_retried(make_app, auth, composio):
    app = make_app(RELAY_BASE_DELAY_SECONDS=2.0, RELAY_MAX_ATTEMPTS=4)
    client, auth.app = app.test_client(), app
    cid = _connected(client, auth)
    composio.fail("PATCH", "/status", status=500)
    start = datetime.now(timezone.utc)
    with freeze_time(start) as clock:
        client.delete(f"/api/connections/{cid}", headers=auth.user("alice"))  # attempt 1, inline
        waits = []
        for attempt in range(1, 4):
            [failed] = events_of(app, ev.PROVIDER_ACTION_FAILED)[-1:]
            assert failed.data["attempt"] == attempt
            due = datetime.fromisoformat(failed.data["retry_at"].replace("Z", "+00:00"))
            wait = (due - datetime.now(timezone.utc)).total_seconds()
            waits.append(wait)
            calls = len(composio.calls("PATCH"))
            clock.tick(wait - 0.05)
            app.extensions["relay"].run_once()
            assert len(composio.calls("PATCH")) == calls, "nothing is retried before its time"
            clock.tick(0.1)
            app.extensions["relay"].run_once()
            assert len(composio.calls("PATCH")) == calls + 1
    for attempt, wait in enumerate(waits, start=1):
        full = 2.0 * 2 ** (attempt - 1)
        assert full / 2 <= wait <= full, f"attempt {attempt} waited {wait}s, outside [{full / 2}, {full}]"
    dead = events_of(app, ev.PROVIDER_ACTION_DEAD_LETTERED)
    assert len(dead) == 1 and dead[0].data["attempts"] == 4


def test_an_immediate_disconnect_answers_disconnected_once_composio_holds_nothing(client, auth, app, composio):
    cid = _connected(client, auth)
    resp = client.delete("/api/connections/disconnect", json={"connectionId": cid, "immediate": True},
                         headers=auth.user("alice"))
    assert resp.status_code == 200 and resp.json["status"] == "DISCONNECTED"
    assert composio.account(cid) is None and composio.calls("PATCH") == [], "no disable before an immediate purge"
    assert _types(app, cid)[-4:] == [ev.DISCONNECT_REQUESTED, ev.UPSTREAM_REVOKED, ev.UPSTREAM_DELETED,
                                     ev.DISCONNECT_COMPLETED]
    composio.fail("DELETE", "/connected_accounts", status=503)
    other = _connected(client, auth)
    down = client.delete("/api/connections/disconnect", json={"connectionId": other, "immediate": True},
                         headers=auth.user("alice"))
    assert down.status_code == 200 and down.json["status"] == "DISCONNECTING", "Composio down: the purge waits"
