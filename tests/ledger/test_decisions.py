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
    assert d.answer["status"] == "DISCONNECTING"


def test_immediate_disconnect_purges_now_without_a_separate_disable():
    d = decisions.decide_disconnect(_state(), (), RequestDisconnect("ca_1", immediate=True), NOW, 3600)
    assert [(a.kind, a.not_before) for a in d.actions] == [("revoke", NOW)]


def test_bound_agents_block_a_disconnect_unless_forced_and_then_each_is_unbound():
    with pytest.raises(errors.AgentsBound) as caught:
        decisions.decide_disconnect(_state(), _bound("a1", "a2"), RequestDisconnect("ca_1"), NOW, 60)
    assert caught.value.details["agents"] == ["a1", "a2"]
    d = decisions.decide_disconnect(_state(), _bound("a1", "a2"), RequestDisconnect("ca_1", force=True), NOW, 60)
    assert [e.type for e in d.events] == [ev.AGENT_UNBOUND, ev.AGENT_UNBOUND, ev.DISCONNECT_REQUESTED]
    assert len(d.answer["warnings"]) == 2


def test_repeating_a_disconnect_records_nothing_and_answers_the_current_state():
    state = _state("DISCONNECTING", purge_at="2026-11-29T12:00:00.000000Z", previous_status="ACTIVE")
    d = decisions.decide_disconnect(state, (), RequestDisconnect("ca_1"), NOW, 60)
    assert d.events == () and d.answer["purgeAt"] == "2026-11-29T12:00:00.000000Z"


def test_a_dry_run_answers_the_impact_and_records_nothing():
    d = decisions.decide_disconnect(_state(), _bound("a1"), RequestDisconnect("ca_1", dry_run=True), NOW, 60, True)
    assert d.events == () and d.actions == ()
    assert d.answer["agents"] == ["a1"] and d.answer["canRevoke"] is True and d.answer["dryRun"] is True


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
