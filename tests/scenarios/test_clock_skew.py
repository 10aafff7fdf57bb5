"""Composio's clock and ours differ: an expiry stamped a second before our activation still ends
access; an old or good-news report does not move a connection back."""
from datetime import timedelta

import pytest

from ledger.clock import iso, parse_iso
from ledger.projections import CLOCK_SKEW_SECONDS
from tests.support import webhooks as wh

SECRET = "whsec-test-secret"  # tests.web.conftest.app_config


def _active(client, auth):
    resp = client.post("/api/connections", json={"toolkit": "github", "credentials": {"api_key": "k"}},
                       headers=auth.user("alice"))
    assert resp.status_code == 201 and resp.json["status"] == "ACTIVE"
    return resp.json["connectionId"]


def _webhook(client, payload):
    body, headers = wh.delivery(SECRET, payload)
    resp = client.post("/webhooks/composio", data=body, headers=headers)
    assert resp.status_code == 200, resp.json
    return resp


def _seconds_before_activation(client, auth, cid, seconds):
    created = client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json["createdAt"]
    return iso(parse_iso(created) - timedelta(seconds=seconds))


def test_an_expiry_stamped_a_second_before_our_activation_still_expires_the_connection(client, auth):
    cid = _active(client, auth)
    _webhook(client, wh.expired(cid, "alice", when=_seconds_before_activation(client, auth, cid, 1)))
    shown = client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json
    assert shown["status"] == "EXPIRED" and shown["statusReason"] == "refresh token revoked"


@pytest.mark.parametrize("seconds", [CLOCK_SKEW_SECONDS, 3600])
def test_an_expiry_older_than_the_clock_window_is_recorded_but_stale(client, auth, seconds):
    cid = _active(client, auth)
    _webhook(client, wh.expired(cid, "alice", when=_seconds_before_activation(client, auth, cid, seconds)))
    assert client.get(f"/api/connections/{cid}", headers=auth.user("alice")).json["status"] == "ACTIVE"
