"""A Composio outage of hours delays the relay's actions; it does not dead-letter them after a
minute. The backlog is visible on /metrics and in `ledger outbox`."""
from datetime import datetime, timedelta, timezone

from freezegun import freeze_time

from ledger import envelope as ev
from ledger.clock import parse_iso
from tests.web.conftest import events_of


def _connected(client, auth):
    resp = client.post("/api/connections", json={"toolkit": "github", "credentials": {"api_key": "k"}},
                       headers=auth.user("alice"))
    return resp.json["connectionId"]


def test_an_outage_of_hours_is_retried_with_capped_backoff_and_dead_lettered_only_after_the_window(
        make_app, auth, composio):
    app = make_app(RELAY_BASE_DELAY_SECONDS=2.0)  # the defaults otherwise: 6 h window, 300 s cap
    client, relay = app.test_client(), app.extensions["relay"]
    cid = _connected(client, auth)
    composio.fail("DELETE", f"/connected_accounts/{cid}", status=503)
    start = datetime.now(timezone.utc)
    assert client.delete(f"/api/connections/{cid}?immediate=true", headers=auth.user("alice")).status_code == 204
    for minutes in range(10, 5 * 60, 10):  # five hours of outage, the relay passing every ten minutes
        with freeze_time(start + timedelta(minutes=minutes)):
            relay.run_once()
    assert events_of(app, ev.PROVIDER_ACTION_DEAD_LETTERED) == [], "five hours in, still retrying"
    failed = events_of(app, ev.PROVIDER_ACTION_FAILED)
    assert len(failed) >= 30
    waits = [(parse_iso(e.data["retry_at"]) - parse_iso(e.recorded_at)).total_seconds() for e in failed]
    assert max(waits) <= 300 and waits[-1] > waits[0], "exponential, capped at RELAY_MAX_DELAY_SECONDS"
    with freeze_time(start + timedelta(hours=5)):
        shown = client.get("/metrics").json["outbox"]
        listing = app.test_cli_runner().invoke(args=["ledger", "outbox"]).stdout
    assert shown["pending"] == 1 and shown["dead"] == 0 and shown["oldest_due_age_seconds"] > 0
    assert listing.startswith("backlog: 1 due") and "0 dead" in listing.splitlines()[0]
    with freeze_time(start + timedelta(hours=6, minutes=10)):
        relay.run_once()
        shown = client.get("/metrics").json["outbox"]
    assert len(events_of(app, ev.PROVIDER_ACTION_DEAD_LETTERED)) == 1
    assert shown["pending"] == 0 and shown["dead"] == 1
    listing = app.test_cli_runner().invoke(args=["ledger", "outbox"]).stdout
    assert "1 dead" in listing.splitlines()[0] and cid in listing
