"""Given a state, when a command, then these events and Composio actions (pure, no I/O)."""
import pytest

from ledger import decisions, errors
from ledger import envelope as ev
from ledger.commands import BindAgent, Caller, RequestDisconnect, UnbindAgent
from ledger.projections import Binding, ConnectionState

NOW = "2026-11-22T12:00:00.000000Z"


def _state(status="ACTIVE", **kw):
    base = dict(connection_id="ca_1", tenant="t1", user_id="alice", toolkit="github", status=status,
                created_at=NOW, updated_at=NOW, status_changed_at=NOW, last_seq=1)
    return ConnectionState(**{**base, **kw})


def _bound(*agents):
    return tuple(Binding(a, "ca_1", "t1", NOW, "alice") for a in agents)


def test_only_the_owner_or_an_admin_key_of_the_same_tenant_may_act():
    state = _state()
    assert decisions.may_act(state, Caller("user", "alice", "alice"))
    assert not decisions.may_act(state, Caller("user", "bob", "t1"))
    assert decisions.may_act(state, Caller("service", "key_1", "t1", admin=True))
    assert not decisions.may_act(state, Caller("service", "key_2", "t2", admin=True))
    assert not decisions.may_act(None, Caller("user", "alice", "alice"))


def test_disconnect_moves_to_disconnecting_disables_now_and_purges_after_the_grace_period():
    d = decisions.decide_disconnect(_state(), (), RequestDisconnect("ca_1"), NOW, 3600)
    assert [e.type for e in d.events] == [ev.DISCONNECT_REQUESTED]
    assert d.events[0].data["purge_at"] == "2026-11-22T13:00:00.000000Z"
    assert d.events[0].data["previous_status"] == "ACTIVE"
    assert [(a.kind, a.not_before) for a in d.actions] == [("disable", NOW), ("revoke", "2026-11-22T13:00:00.000000Z")]
    assert d.answer.status == "DISCONNECTING"


def test_immediate_disconnect_purges_now_without_a_separate_disable():
    d = decisions.decide_disconnect(_state(), (), RequestDisconnect("ca_1", immediate=True), NOW, 3600)
    assert [(a.kind, a.not_before) for a in d.actions] == [("revoke", NOW)]


def test_bound_agents_block_a_disconnect_unless_forced_and_then_each_is_unbound():
    with pytest.raises(errors.AgentsBound) as caught:
        decisions.decide_disconnect(_state(), _bound("a1", "a2"), RequestDisconnect("ca_1"), NOW, 60)
    assert caught.value.details["agents"] == ["a1", "a2"]
    d = decisions.decide_disconnect(_state(), _bound("a1", "a2"), RequestDisconnect("ca_1", force=True), NOW, 60)
    assert [e.type for e in d.events] == [ev.AGENT_UNBOUND, ev.AGENT_UNBOUND, ev.DISCONNECT_REQUESTED]
    assert len(d.answer.warnings) == 2


def test_repeating_a_disconnect_records_nothing_and_answers_the_current_state():
    state = _state("DISCONNECTING", purge_at="2026-11-29T12:00:00.000000Z", previous_status="ACTIVE")
    d = decisions.decide_disconnect(state, (), RequestDisconnect("ca_1"), NOW, 60)
    assert d.events == () and d.answer.purge_at == "2026-11-29T12:00:00.000000Z"


def test_a_dry_run_answers_the_impact_and_records_nothing():
    d = decisions.decide_disconnect(_state(), _bound("a1"), RequestDisconnect("ca_1", dry_run=True), NOW, 60, True)
    assert d.events == () and d.actions == ()
    assert d.answer.agents == ("a1",) and d.answer.can_revoke is True and d.answer.dry_run is True


def test_restore_inside_the_window_reenables_and_outside_it_is_refused():
    state = _state("DISCONNECTING", purge_at="2026-11-22T13:00:00.000000Z", previous_status="EXPIRED")
    d = decisions.decide_restore(state, NOW, disable_unsent=False)
    assert [e.type for e in d.events] == [ev.DISCONNECT_CANCELLED] and [a.kind for a in d.actions] == ["enable"]
    assert decisions.decide_restore(state, NOW, disable_unsent=True).actions == ()
    with pytest.raises(errors.GracePeriodExpired):
        decisions.decide_restore(state, "2026-11-22T13:00:00.000000Z", disable_unsent=False)
    with pytest.raises(errors.InvalidState):
        decisions.decide_restore(_state(), NOW, disable_unsent=False)


def test_binding_twice_records_once_and_unbinding_an_unbound_agent_is_not_found():
    assert decisions.decide_bind(_state(), _bound("a1"), BindAgent("a1", "ca_1")).events == ()
    assert len(decisions.decide_bind(_state(), (), BindAgent("a1", "ca_1")).events) == 1
    with pytest.raises(errors.NotBound):
        decisions.decide_unbind(_state(), (), UnbindAgent("a1", "ca_1"))
    with pytest.raises(errors.InvalidState):
        decisions.decide_bind(_state("DISCONNECTED"), (), BindAgent("a1", "ca_1"))


# -- a webhook -----------------------------------------------------------------------------------
from ledger.gateway import Account  # noqa: E402
from ledger.webhook_parsing import EXPIRED, TRIGGER_MESSAGE, UNRECOGNISED, WebhookEvent  # noqa: E402


def _hook(kind=EXPIRED, cid="ca_1", user="app-alice", **kw):
    return WebhookEvent(kind, "wh_1", "composio.connected_account.expired", "V3", NOW, cid, user, "github", **kw)


def test_an_expiry_of_a_known_connection_is_recorded_on_its_stream_for_its_tenant():
    d = decisions.decide_webhook(_state(), _hook(reason="token revoked"), "app-")
    assert (d.outcome, d.stream, d.tenant) == ("accepted", "connection:ca_1", "t1")
    assert [(e.type, e.data, e.occurred_at) for e in d.events] == [
        (ev.EXPIRED, {"connection_id": "ca_1", "reason": "token revoked"}, NOW)]


def test_an_expiry_of_a_never_seen_connection_of_ours_observes_it_first_at_the_webhooks_time():
    d = decisions.decide_webhook(None, _hook(), "app-")
    assert [e.type for e in d.events] == [ev.OBSERVED, ev.EXPIRED] and d.tenant == "alice"
    assert d.events[0].data == {"connection_id": "ca_1", "user_id": "alice", "tenant": "alice",
                                "toolkit": "github", "status": "ACTIVE"}
    assert d.events[0].occurred_at == NOW


def test_an_expiry_for_another_apps_user_is_kept_as_unrecognised_and_adopts_nothing():
    d = decisions.decide_webhook(None, _hook(user="other-alice"), "app-")
    assert (d.outcome, d.stream) == ("unrecognised", "webhooks")
    assert d.events[0].data["reason"] == "foreign_user" and not any(e.type == ev.OBSERVED for e in d.events)


def test_a_trigger_message_records_use_and_an_unknown_type_is_recorded_not_rejected():
    used = decisions.decide_webhook(_state(), _hook(kind=TRIGGER_MESSAGE, trigger_slug="GITHUB_PUSH"))
    assert [e.type for e in used.events] == [ev.USED] and used.events[0].data["trigger_slug"] == "GITHUB_PUSH"
    unknown = decisions.decide_webhook(None, _hook(kind=UNRECOGNISED, cid=None))
    assert unknown.outcome == "unrecognised" and [e.type for e in unknown.events] == [ev.WEBHOOK_UNRECOGNISED]


# -- drift ---------------------------------------------------------------------------------------
def _account(status="ACTIVE", user="alice", **kw):
    return Account("ca_1", user, "GitHub", status, **kw)


def test_drift_a_status_that_differs_from_composios_is_recorded_and_an_equal_one_is_not():
    assert decisions.decide_drift(_state(), _account()) is None
    kind, event = decisions.decide_drift(_state(), _account("EXPIRED", status_reason="x" * 300))
    assert kind == "status_drift" and event.type == ev.STATUS_OBSERVED
    assert event.data == {"connection_id": "ca_1", "status": "EXPIRED", "reason": "x" * 200}


def test_drift_never_judges_a_connection_being_disconnected_and_observes_a_new_one_of_ours():
    assert decisions.decide_drift(_state("DISCONNECTING"), _account("INACTIVE")) is None
    kind, event = decisions.decide_drift(None, _account())
    assert kind == "observed" and event.data["toolkit"] == "github" and event.data["user_id"] == "alice"
    assert decisions.decide_drift(None, _account(user=None)) == ("foreign", None)
    assert decisions.decide_missing(_state("DISCONNECTED")) is None
    assert decisions.decide_missing(_state()).type == ev.UPSTREAM_MISSING


# -- Composio's answer to a relayed action --------------------------------------------------------
def _outcome(action, answer, repeated=False):
    return decisions.decide_relay_outcome(action, "ca_1", "act_1", repeated, answer)


def test_a_revoke_records_what_was_revoked_and_makes_the_delete_due():
    out = _outcome("revoke", decisions.Answer("done", revoked=("refresh", "access")))
    assert out.ok and out.follow_up == "delete"
    assert out.events[0].data == {"connection_id": "ca_1", "action_id": "act_1", "supported": True,
                                  "revoked": ["access", "refresh"]}
    unsupported = _outcome("revoke", decisions.Answer("unsupported"))
    assert unsupported.events[0].data["supported"] is False and unsupported.follow_up == "delete"


def test_a_delete_completes_the_disconnect_and_a_failure_records_no_event():
    assert [e.type for e in _outcome("delete", decisions.Answer("done")).events] == [
        ev.UPSTREAM_DELETED, ev.DISCONNECT_COMPLETED]
    failed = _outcome("disable", decisions.Answer("failed", error="UPSTREAM_UNAVAILABLE"))
    assert not failed.ok and failed.events == () and failed.error == "UPSTREAM_UNAVAILABLE"


def test_not_found_at_composio_is_never_recorded_as_a_revoke_or_delete_that_happened():
    out = _outcome("revoke", decisions.Answer("not_found"), repeated=True)
    assert [e.type for e in out.events] == [ev.UPSTREAM_NOT_FOUND, ev.DISCONNECT_COMPLETED]
    assert "repeated" in out.events[1].data["reason"] and out.follow_up is None
    assert [e.type for e in _outcome("disable", decisions.Answer("not_found")).events] == [ev.UPSTREAM_NOT_FOUND]


def test_a_failed_attempt_is_retried_later_with_backoff_and_dead_lettered_past_the_window():
    policy = decisions.RetryPolicy(base_delay=2.0, max_delay=300.0, retry_for=3600.0)
    event, values = decisions.decide_relay_failure("disable", "ca_1", "act_1", 2, NOW, None, "UPSTREAM_UNAVAILABLE",
                                                   NOW, policy, jitter=1.0)
    assert event.type == ev.PROVIDER_ACTION_FAILED and event.data["attempt"] == 3
    assert values["not_before"] == "2026-11-22T12:00:08.000000Z" and values["claimed_by"] is None
    late = "2026-11-22T13:00:00.000000Z"
    event, values = decisions.decide_relay_failure("disable", "ca_1", "act_1", 9, NOW, None, "X", late, policy, 0.0)
    assert event.type == ev.PROVIDER_ACTION_DEAD_LETTERED and values["status"] == "dead"


def test_a_revokes_retry_window_runs_from_the_end_of_the_grace_period():
    policy = decisions.RetryPolicy(retry_for=3600.0)
    later = "2026-11-29T12:00:00.000000Z"
    event, _ = decisions.decide_relay_failure("revoke", "ca_1", "act_1", 0, NOW, _state("DISCONNECTING", purge_at=later),
                                              "X", "2026-11-29T12:30:00.000000Z", policy, 0.0)
    assert event.type == ev.PROVIDER_ACTION_FAILED
