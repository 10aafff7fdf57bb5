"""The gateway remembers each toolkit's auth config; when Composio's change, it looks again."""
from __future__ import annotations


def _start(client, auth, toolkit="github"):
    return client.post("/api/connections", json={"toolkit": toolkit}, headers=auth.user("alice"))


def test_a_create_after_composio_auth_configs_changed_looks_the_config_up_again(client, auth, composio):
    assert _start(client, auth).status_code == 201
    composio.drop_auth_configs()  # changed in Composio's dashboard while the workers run
    again = _start(client, auth)
    assert again.status_code == 201, again.json
    creates = composio.calls("POST", "/connected_accounts")
    used = [c["json"]["auth_config"]["id"] for c in creates]
    assert len(used) == 3 and used[1] == used[0] and used[2] != used[0], "one retry, with a fresh config"
    assert _start(client, auth).status_code == 201


def test_a_create_refused_for_another_reason_is_not_retried(client, auth, composio):
    assert _start(client, auth).status_code == 201
    composio.fail("POST", r"connected_accounts$", status=422, times=1)
    assert _start(client, auth).status_code == 502
    assert len(composio.calls("POST", "/connected_accounts")) == 2
