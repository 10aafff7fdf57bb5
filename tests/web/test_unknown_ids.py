"""Ids the ledger never saw cost a Composio lookup each: bounded per caller, and an id Composio
said does not exist is not asked about again for a while."""
from __future__ import annotations

import pytest


def _lookups(composio):
    return len(composio.calls("GET", "/connected_accounts/"))


@pytest.mark.parametrize("method, path", [("get", "/api/connections/{cid}"), ("delete", "/api/connections/{cid}"),
                                          ("put", "/api/agents/agent-1/connections/{cid}")])
def test_an_unknown_id_asked_twice_costs_one_lookup(client, auth, composio, method, path):
    h = auth.user("alice")
    for _ in range(2):
        resp = getattr(client, method)(path.format(cid="ca_nosuchthing"), headers=h)
        assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"
    assert _lookups(composio) == 1


def test_a_caller_spraying_unknown_ids_is_bounded_and_others_are_not(make_app, auth, composio):
    app = make_app()
    client = app.test_client()
    per_minute = app.extensions["connections"].lookups.per_minute
    for n in range(per_minute + 15):
        resp = client.get(f"/api/connections/ca_spray{n}", headers=auth.user("mallory"))
        assert resp.status_code == 404
    assert _lookups(composio) == per_minute, "beyond the bound: 404 without asking Composio"
    mine = composio.add_account("alice", "gmail")
    assert client.get(f"/api/connections/{mine}", headers=auth.user("alice")).status_code == 200
