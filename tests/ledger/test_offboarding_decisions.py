"""Given/when/then for the pure parts of offboarding: the decision, each connection's outcome,
and the receipt's signature (no database, no Flask)."""
from __future__ import annotations

import pytest

from ledger import envelope as ev
from ledger.decisions.offboarding import Cited, OffboardingView, decide_offboarding, decide_outcome, person_stream
from ledger.envelope import Envelope
from ledger.projections import Binding, ConnectionState
from ledger.receipts import build_receipt, cited_events, sign_receipt, verify_receipt
from ledger.signing import load_private_key, generate_private_key_pem

NOW = "2026-12-07T12:00:00.000000Z"


def _state(cid, status="ACTIVE", **kw):
    return ConnectionState(cid, "acme", "alice", kw.pop("toolkit", "github"), status, NOW, NOW, NOW, 1, **kw)


def _env(seq, cid, type_, **data):
    return Envelope(seq, f"connection:{cid}", seq, type_, 1, {"connection_id": cid, **data}, {}, NOW, NOW,
                    "0" * 64, f"{seq:064x}")


def test_every_live_connection_is_disconnected_as_a_forced_single_disconnect():
    bound = (Binding("agent-a", "ca_1", "acme", NOW, "alice"),)
    d = decide_offboarding("off_1", "acme", "alice", [(_state("ca_1"), bound), (_state("ca_2"), ())],
                           immediate=True, now=NOW, grace_seconds=3600, requested_by={"kind": "user", "id": "alice"})
    assert d.requested.type == ev.OFFBOARDING_REQUESTED and d.requested.data["connection_ids"] == ["ca_1", "ca_2"]
    assert "connection_id" not in d.requested.data, "the offboarding event is about no single connection"
    first = dict(d.disconnects)["ca_1"]
    assert [e.type for e in first.events] == [ev.AGENT_UNBOUND, ev.DISCONNECT_REQUESTED]
    assert [a.kind for a in first.actions] == ["revoke"], "immediate: purged now, no disable first"


def test_a_connection_already_being_disconnected_is_not_disconnected_twice():
    d = decide_offboarding("off_1", "acme", "alice", [(_state("ca_1", "DISCONNECTING", purge_at=NOW), ())],
                           immediate=False, now=NOW, grace_seconds=3600, requested_by={})
    assert dict(d.disconnects)["ca_1"].events == () and dict(d.disconnects)["ca_1"].actions == ()


@pytest.mark.parametrize("after, outcome, revoked", [
    ([(ev.UPSTREAM_REVOKED, {"supported": True, "revoked": ["access_token"]}), (ev.DISCONNECT_COMPLETED, {})],
     "revoked", ("access_token",)),
    ([(ev.UPSTREAM_REVOKED, {"supported": False, "revoked": [], "reason": "no revoke"}), (ev.DISCONNECT_COMPLETED, {})],
     "not_revocable", ()),
    ([(ev.UPSTREAM_NOT_FOUND, {"action": "revoke"}), (ev.DISCONNECT_COMPLETED, {"reason": "not found"})],
     "not_found_upstream", ()),
])
def test_a_disconnected_connection_says_what_was_revoked_and_cites_its_events(after, outcome, revoked):
    envs = [_env(10 + i, "ca_1", t, **data) for i, (t, data) in enumerate(after)]
    got = decide_outcome(_state("ca_1", "DISCONNECTED"), "ca_1", envs)
    assert got.outcome == outcome and got.revoked == revoked and got.final
    assert [c.seq for c in got.events] == [10, 11] and got.at == NOW


def test_dead_lettered_is_final_waiting_is_not():
    dead = _env(12, "ca_1", ev.PROVIDER_ACTION_DEAD_LETTERED, action="delete", attempts=6, error="UPSTREAM_UNAVAILABLE")
    assert decide_outcome(_state("ca_1", "DISCONNECTING"), "ca_1", [dead]).outcome == "failed"
    waiting = decide_outcome(_state("ca_1", "DISCONNECTING", purge_at=NOW), "ca_1", [])
    assert waiting.outcome == "pending" and not waiting.final


def test_a_long_person_gets_a_stream_name_that_fits():
    assert person_stream("acme", "alice") == "offboarding:acme:alice"
    assert len(person_stream("t" * 200, "u" * 200)) <= 200


def test_a_receipt_verifies_with_its_key_only_and_not_once_changed():
    key = load_private_key(generate_private_key_pem())
    other = load_private_key(generate_private_key_pem())
    got = decide_outcome(_state("ca_1", "DISCONNECTED"), "ca_1", [
        _env(3, "ca_1", ev.UPSTREAM_REVOKED, supported=True, revoked=["access_token"]),
        _env(4, "ca_1", ev.DISCONNECT_COMPLETED)])
    view = OffboardingView("off_1", "acme", "alice", True, NOW, Cited(ev.OFFBOARDING_REQUESTED, 2, "a" * 64), (got,))
    signed = sign_receipt(key, build_receipt(view))
    assert signed == sign_receipt(key, build_receipt(view)), "deterministic: the same receipt every time"
    assert verify_receipt(key.public_key(), signed) is None
    assert verify_receipt(other.public_key(), signed) is not None
    changed = {**signed, "receipt": {**signed["receipt"], "user_id": "mallory"}}
    assert verify_receipt(key.public_key(), changed) is not None
    assert [c[0] for c in cited_events(signed["receipt"])] == [2, 3, 4]
