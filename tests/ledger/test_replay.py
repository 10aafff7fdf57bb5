"""Replay and live updating can never disagree: same pure functions, same rows."""
import random

import pytest

from ledger import envelope as ev
from ledger.envelope import NewEvent
from ledger.projections import ConnectionState, Projection, evolve_connection, replay
from tests.support import history


def _rows(ledger):
    connections, bindings = ledger.store.projection_rows()
    return connections, bindings


def _as_rows(projection: Projection):
    return projection.connection_rows(), projection.binding_rows()


@pytest.mark.slow
def test_rebuild_yields_exactly_the_live_rows_and_as_of_equals_the_state_captured_then(ledger):
    rng = random.Random(7)
    checkpoints = {}

    def capture(seq):
        if rng.random() < 0.01:
            checkpoints[seq] = _rows(ledger)

    history.build(ledger, n_events=5000, n_connections=300, seed=11, on_event=capture)
    live = _rows(ledger)
    assert len(live[0]) >= 250 and live[1], "the history should touch hundreds of connections and bindings"
    projection, same = ledger.rebuild()
    assert same and _rows(ledger) == live == _as_rows(projection)
    assert len(checkpoints) >= 20
    for seq, captured in checkpoints.items():
        assert _as_rows(ledger.state_as_of(seq=seq)) == captured, f"state_as_of({seq}) differs"


def test_rebuild_repairs_a_projection_that_drifted_and_says_so(ledger, engine):
    from sqlalchemy import text
    ledger.append("connection:ca_1", [NewEvent(ev.INITIATED, {"user_id": "u", "toolkit": "github"})])
    with engine.begin() as conn:
        conn.execute(text("UPDATE connections SET status = 'ACTIVE'"))
    _, same = ledger.rebuild()
    assert not same
    assert ledger.store.projection_rows()[0][0]["status"] == "INITIATED"


def test_state_as_of_a_time_replays_only_what_was_recorded_by_then(ledger):
    first = ledger.append("connection:ca_1", [NewEvent(ev.INITIATED, {"user_id": "u", "toolkit": "github"})])
    ledger.append("connection:ca_1", [NewEvent(ev.ACTIVATED, {})])
    then = ledger.state_as_of(time=first[0].recorded_at).connections["ca_1"]
    assert then.status == "INITIATED"
    assert ledger.state_as_of().connections["ca_1"].status == "ACTIVE"


def _env(seq, type_, data=None, occurred="2026-01-01T00:00:10.000000Z"):
    from ledger.envelope import Envelope
    return Envelope(seq, "connection:ca_1", seq, type_, 1, data or {}, {}, occurred,
                    "2026-01-01T00:00:10.000000Z", "0" * 64, "0" * 64)


def test_a_late_upstream_report_does_not_move_the_status_back():
    state = replay([_env(1, ev.INITIATED, {"user_id": "u", "toolkit": "g"}),
                    _env(2, ev.ACTIVATED, occurred="2026-01-01T00:00:20.000000Z"),
                    _env(3, ev.EXPIRED, {"reason": "old"}, occurred="2026-01-01T00:00:15.000000Z")])
    assert state.connections["ca_1"].status == "ACTIVE"


def test_nothing_changes_a_disconnected_connection():
    state = replay([_env(1, ev.INITIATED, {"user_id": "u", "toolkit": "g"}),
                    _env(2, ev.DISCONNECT_COMPLETED, occurred="2026-01-01T00:00:20.000000Z"),
                    _env(3, ev.ACTIVATED, occurred="2026-01-01T00:00:30.000000Z")])
    assert state.connections["ca_1"].status == "DISCONNECTED"


def test_an_unknown_event_type_leaves_the_state_unchanged():
    state = replay([_env(1, ev.INITIATED, {"user_id": "u", "toolkit": "g"})]).connections["ca_1"]
    assert evolve_connection(state, _env(2, "connection.something_new")) is state
    assert isinstance(state, ConnectionState)
