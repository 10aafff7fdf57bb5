"""What the connection use cases return, and the idempotency record that gives it again."""
import json

import pytest

from ledger import results
from ledger.projections import UNCONFIRMED, Binding, ConnectionState
from ledger.results import ConnectionView, Disconnected, Started, WouldDisconnect

STATE = ConnectionState("ca_1", "t1", "alice", "github", "DISCONNECTING", "2026-11-22T12:00:00.000000Z",
                        "2026-11-22T12:00:01.000000Z", "2026-11-22T12:00:01.000000Z", 3,
                        previous_status="ACTIVE", purge_at="2026-11-29T12:00:00.000000Z",
                        status_reason=f"{UNCONFIRMED}: waiting for Composio")


@pytest.mark.parametrize("result", [
    ConnectionView.of(STATE, (Binding("agent-7", "ca_1", "t1", "2026-11-22T12:00:00.000000Z", "user:alice"),)),
    Started("ca_2", "INITIATED", "https://composio.example/oauth"),
    Disconnected("ca_1", "DISCONNECTING", "2026-11-29T12:00:00.000000Z", ("agent agent-7 was unbound",)),
    WouldDisconnect("ca_1", "ACTIVE", "ACTIVE", ("agent-7",), True, True, False, None, "AGENTS_BOUND", None, ("w",)),
], ids=lambda r: type(r).__name__)
def test_a_stored_result_comes_back_as_the_same_value(result):
    assert results.loads(results.dumps(result)) == result


def test_a_connection_view_says_whether_composio_confirmed_a_disconnect():
    view = ConnectionView.of(STATE)
    assert view.upstream_confirmed is False and view.agents == () and view.status == "DISCONNECTING"


def test_only_a_known_result_is_stored():
    with pytest.raises(TypeError):
        results.dumps({"connectionId": "ca_1"})


def test_a_record_written_before_results_were_stored_comes_back_as_it_was():
    body = {"connectionId": "ca_1", "status": "DISCONNECTING", "purgeAt": None, "warnings": []}
    assert results.loads(json.dumps(body)) == body
