"""`flask ledger reconcile` closes the gap webhooks leave: drift recorded once, across pages."""
import json

from ledger import envelope as ev
from tests.support.app import connect, events_of


def _reconcile(runner, *args):
    out = runner.invoke(args=["ledger", "reconcile", *args])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_out_of_band_deletes_status_drift_and_unseen_accounts_are_recorded_once(app, client, auth, composio, runner):
    deleted = connect(client, auth)
    drifted = connect(client, auth, toolkit="slack")
    unseen = composio.add_account("bob", "gmail", status="ACTIVE")
    with composio.lock:
        del composio.accounts[deleted]          # deleted at Composio without a webhook
    composio.set_status(drifted, "EXPIRED")     # expired without a webhook
    counts = _reconcile(runner)
    assert (counts["missing"], counts["status_drift"], counts["observed"]) == (1, 1, 1)
    h = auth.user("alice")
    assert client.get(f"/api/connections/{deleted}", headers=h).json["status"] == "DISCONNECTED"
    assert client.get(f"/api/connections/{drifted}", headers=h).json["status"] == "EXPIRED"
    seen = client.get(f"/api/connections/{unseen}", headers=auth.user("bob")).json
    assert seen["status"] == "ACTIVE" and seen["userId"] == "bob", "an account never seen is adopted for its owner"
    assert [e.data["user_id"] for e in events_of(app, ev.OBSERVED)] == ["bob"]
    before = len(events_of(app))
    again = _reconcile(runner)
    assert (again["missing"], again["status_drift"], again["observed"]) == (0, 0, 0)
    assert len(events_of(app)) == before, "a second run on unchanged data records nothing"


def test_reconcile_walks_every_page(app, client, auth, composio, runner):
    ids = [composio.add_account("carol", "github") for _ in range(7)]
    counts = _reconcile(runner, "--page-size", "2")
    assert counts["pages"] >= 4 and counts["accounts"] == 7 and counts["observed"] == 7
    assert {e.data["connection_id"] for e in events_of(app, ev.OBSERVED)} == set(ids)
    assert len(composio.calls("GET", "/api/v3.1/connected_accounts")) >= 4


def test_a_disconnecting_connection_is_never_judged_as_drift(app, client, auth, composio, runner):
    cid = connect(client, auth)
    client.delete(f"/api/connections/{cid}", headers=auth.user("alice"))   # disabled: INACTIVE at Composio
    counts = _reconcile(runner, "--user", "alice")
    assert counts["status_drift"] == 0
    assert client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json["status"] == "DISCONNECTING"


def test_each_reconcile_run_is_visible_on_metrics_though_it_ran_in_another_process(app, client, auth, composio, runner):
    composio.add_account("dave", "github")
    _reconcile(runner)
    _reconcile(runner, "--user", "dave")
    runs = client.get("/metrics").get_json()["reconcile"]["last_runs"]
    assert [r["user_id"] for r in runs[:2]] == ["dave", None]
    assert runs[1]["counts"]["observed"] == 1 and runs[0]["counts"]["observed"] == 0
    assert runs[0]["finished_at"] >= runs[0]["started_at"]
