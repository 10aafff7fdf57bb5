"""The connection's life, pure (issue 15): which statuses a reconnect fixes, when an expiry is
due its one warning, what the projection keeps of a grant and its uses, and what of Composio's
account object counts as a safe fact."""
import pytest

from ledger import envelope as ev
from ledger import errors
from ledger.credential_facts import expires_at_of, scopes_of
from ledger.decisions.expiry import decide_expiring
from ledger.decisions.reconnect import check_reconnect, reconnect_requested
from ledger.envelope import Envelope
from ledger.projections import Binding, ConnectionState, evolve

NOW = "2026-11-22T12:00:00.000000Z"


def _state(status="ACTIVE", **kw):
    base = dict(connection_id="ca_1", tenant="t1", user_id="alice", toolkit="github", status=status,
                created_at=NOW, updated_at=NOW, status_changed_at=NOW, last_seq=1)
    return ConnectionState(**{**base, **kw})


def _env(type_, data, seq=2, at=NOW):
    return Envelope(seq, "connection:ca_1", seq, type_, 1, {"connection_id": "ca_1", **data}, {}, at, at, "0" * 64, "h")


@pytest.mark.parametrize("status", ["EXPIRED", "FAILED", "INACTIVE"])
def test_a_broken_connection_may_be_reconnected_and_is_initiated_again(status):
    check_reconnect(_state(status))
    event = reconnect_requested(_state(status), "INITIATED")
    assert event.type == ev.RECONNECT_REQUESTED and event.data["previous_status"] == status


@pytest.mark.parametrize("status", ["DISCONNECTING", "DISCONNECTED", "REVOKED"])
def test_an_ended_connection_is_not_reconnectable(status):
    with pytest.raises(errors.NotReconnectable) as caught:
        check_reconnect(_state(status))
    assert caught.value.code == "NOT_RECONNECTABLE" and caught.value.details["status"] == status


@pytest.mark.parametrize("status", ["ACTIVE", "INITIATED", "INITIALIZING"])
def test_a_working_or_pending_connection_is_refused_with_its_status(status):
    with pytest.raises(errors.InvalidState) as caught:
        check_reconnect(_state(status))
    assert not isinstance(caught.value, errors.NotReconnectable) and status in caught.value.message


def test_the_projection_reinitiates_on_reconnect_and_keeps_the_bindings():
    state = _state("EXPIRED", status_reason="refresh token revoked")
    after, bindings = evolve(state, lambda: pytest.fail("bindings are not read"),
                             _env(ev.RECONNECT_REQUESTED, {"previous_status": "EXPIRED", "status": "INITIATED"},
                                  at="2026-11-22T12:05:00.000000Z"))
    assert after.status == "INITIATED" and after.status_reason is None and bindings is None
    activated, _ = evolve(after, tuple, _env(ev.ACTIVATED, {"scopes": ["repo"], "expires_at": "2026-11-23T12:00:00.000000Z"},
                                             seq=3, at="2026-11-22T12:06:00.000000Z"))
    assert (activated.status, activated.scopes, activated.expires_at) == ("ACTIVE", "repo", "2026-11-23T12:00:00.000000Z")


def test_every_use_is_counted_even_a_late_one_and_last_use_only_moves_forward():
    state = _state()
    for seq, at in enumerate(["2026-11-22T11:00:00.000000Z", "2026-11-22T11:30:00.000000Z",
                              "2026-11-22T11:10:00.000000Z"], start=2):
        state, _ = evolve(state, tuple, _env(ev.USED, {"at": at}, seq=seq))
    assert state.use_count == 3 and state.last_used_at == "2026-11-22T11:30:00.000000Z"


def test_an_expiry_is_warned_about_once_within_the_window_with_its_agents():
    bound = (Binding("agent-1", "ca_1", "t1", NOW, "alice"),)
    soon = _state(expires_at="2026-11-22T12:30:00.000000Z")
    assert decide_expiring(soon, bound, NOW, 600) is None, "outside the window"
    event = decide_expiring(soon, bound, NOW, 3600)
    assert event.data == {"connection_id": "ca_1", "expires_at": soon.expires_at, "seconds_left": 1800,
                          "agents": ["agent-1"]}
    warned, _ = evolve(soon, tuple, _env(ev.EXPIRING, event.data))
    assert decide_expiring(warned, bound, NOW, 3600) is None, "once per expiry"
    renewed, _ = evolve(warned, tuple, _env(ev.ACTIVATED, {"expires_at": "2026-11-22T12:45:00.000000Z"}, seq=3))
    assert decide_expiring(renewed, bound, NOW, 3600) is not None, "a new expiry is warned about again"


def test_no_expiry_or_a_broken_connection_is_never_warned_about():
    assert decide_expiring(_state(), (), NOW, 86400) is None
    assert decide_expiring(_state("EXPIRED", expires_at=NOW), (), NOW, 86400) is None
    assert decide_expiring(None, (), NOW, 86400) is None


def test_only_scopes_and_expiry_are_read_from_the_credential():
    val = {"access_token": "t", "refresh_token": "r", "scope": "repo, read:user repo", "expires_at": 1795334400}
    assert scopes_of(val) == ("read:user", "repo")
    assert expires_at_of(val) == "2026-11-22T08:00:00.000000Z"
    assert scopes_of({"scopes": ["b", "a", 3]}) == ("a", "b")
    assert expires_at_of({"expires_at": "2026-11-22T09:00:00+01:00"}) == "2026-11-22T08:00:00.000000Z"
    assert scopes_of({"scope": ""}, {}) is None and expires_at_of({"expires_at": "soon"}) is None
