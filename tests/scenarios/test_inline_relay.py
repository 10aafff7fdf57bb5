"""The request that owes a Composio action carries it out itself: it claims the action in its own
write transaction, so no relay races it, and a disconnect costs two write transactions, not three.
A relay warms the SDK before its first claim."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ledger import envelope as ev
from ledger.services.relay import Relay
from ledger.signals import event_recorded
from tests.support.app import app_config, connect, events_of

ROOT = Path(__file__).resolve().parents[2]


class _CountingTransactions:
    """Counts the ledger's write transactions (its one write boundary) without changing them."""

    def __init__(self, ledger):
        self.ledger, self.count, self._real = ledger, 0, ledger.transaction

    def __enter__(self):
        def counted(*args, **kwargs):
            self.count += 1
            return self._real(*args, **kwargs)
        self.ledger.transaction = counted
        return self

    def __exit__(self, *exc):
        del self.ledger.transaction


def test_a_disconnect_with_the_inline_relay_takes_two_write_transactions(client, auth, app, composio):
    cid = connect(client, auth)
    with _CountingTransactions(app.extensions["ledger"]) as writes:
        assert client.delete(f"/api/connections/{cid}", headers=auth.user("alice")).status_code == 204
    assert len(composio.calls("PATCH", f"/connected_accounts/{cid}/status")) == 1
    assert writes.count == 2, "the request with the claim of its disable, then the disable's outcome"


def test_no_relay_sees_a_fresh_action_as_due_while_the_request_that_wrote_it_holds_it(client, auth, app, composio):
    cid = connect(client, auth)
    other = Relay(app.extensions["ledger"], app.extensions["gateway"], worker_id="other-relay")
    seen = []

    def relay_polls_right_after_the_commit(sender, envelope):
        if envelope.type == ev.DISCONNECT_REQUESTED:
            seen.extend(other.claim())

    event_recorded.connect(relay_polls_right_after_the_commit)
    try:
        assert client.delete(f"/api/connections/{cid}", headers=auth.user("alice")).status_code == 204
    finally:
        event_recorded.disconnect(relay_polls_right_after_the_commit)
    assert seen == [], "the request's own claim committed with the action"
    assert len(events_of(app, ev.UPSTREAM_DISABLED)) == 1
    assert len(composio.calls("PATCH", f"/connected_accounts/{cid}/status")) == 1


def test_a_relay_warms_the_sdk_before_its_first_claim(db_url, composio, jwks):
    config = app_config(db_url, composio, jwks)
    script = (
        "import json, sys, threading\n"
        "from web import create_app\n"
        f"app = create_app(json.loads({json.dumps(json.dumps(config))}))\n"
        "assert 'composio' not in sys.modules, 'imported lazily'\n"
        "stop = threading.Event(); stop.set()\n"
        "app.extensions['relay'].run_forever(stop)\n"
        "print(json.dumps('composio' in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) is True
    assert composio.calls() == [], "warming asks Composio nothing"
