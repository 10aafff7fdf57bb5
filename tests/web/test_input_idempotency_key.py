"""The Idempotency-Key header: 1..128 visible ASCII characters, checked before anything happens."""
import pytest

from tests.support.app import Unchanged, assert_envelope, seed_connections

# Every route that reads the header, aimed at something the request would change.
MUTATING = [
    pytest.param("POST", "/api/connections", {"toolkit": "github"}, 201, id="start"),
    pytest.param("DELETE", "/api/connections/disconnect", {"connectionId": "{active}", "force": True}, 200, id="disconnect-body"),
    pytest.param("DELETE", "/api/connections/{active}?force=true", None, 204, id="disconnect-rest"),
    pytest.param("POST", "/api/connections/{leaving}/restore", None, 200, id="restore"),
    pytest.param("PUT", "/api/agents/agent-b/connections/{active}", None, 200, id="bind"),
    pytest.param("DELETE", "/api/agents/agent-a/connections/{active}", None, 204, id="unbind"),
]
BAD_KEYS = [
    pytest.param("k" * 129, id="129-chars"),
    pytest.param("k" * 200, id="200-chars"),
    pytest.param("", id="empty"),
    pytest.param("naïve-key", id="non-ascii"),
    pytest.param("has space", id="space"),
    pytest.param("tab\tkey", id="tab"),
    pytest.param("nul\x00key", id="nul"),
    pytest.param("del\x7fkey", id="del"),
]


def _send(client, auth, ids, method, path, body, key):
    path = path.format(**ids)
    if body is not None:
        body = {k: v.format(**ids) if isinstance(v, str) else v for k, v in body.items()}
    headers = {**auth.user("alice"), "Idempotency-Key": key}
    return client.open(path, method=method, json=body, headers=headers)


@pytest.mark.parametrize("method, path, body, ok", MUTATING)
@pytest.mark.parametrize("key", BAD_KEYS)
def test_a_bad_idempotency_key_is_a_422_before_anything_happens(app, client, auth, composio, method, path, body,
                                                                ok, key):
    ids = seed_connections(client, auth)
    with Unchanged(app, composio):
        resp = _send(client, auth, ids, method, path, body, key)
    err = assert_envelope(resp, 422, "VALIDATION_ERROR")
    assert [d["loc"] for d in err["details"]] == [["header", "Idempotency-Key"]]
    assert err["details"][0]["msg"] and err["details"][0]["type"]


@pytest.mark.parametrize("method, path, body, ok", MUTATING)
def test_the_longest_valid_key_is_stored_and_a_repeat_replays_the_answer(app, client, auth, composio, method, path,
                                                                         body, ok):
    ids = seed_connections(client, auth)
    key = "".join(chr(0x21 + i % 94) for i in range(128))  # every visible ASCII character
    first = _send(client, auth, ids, method, path, body, key)
    assert first.status_code == ok, first.get_data(as_text=True)
    with Unchanged(app, composio):
        again = _send(client, auth, ids, method, path, body, key)
    assert (again.status_code, again.get_data()) == (first.status_code, first.get_data())


def test_a_key_reused_for_a_different_request_is_a_422(client, auth, composio):
    ids = seed_connections(client, auth)
    h = {**auth.user("alice"), "Idempotency-Key": "bind-1"}
    assert client.put(f"/api/agents/agent-b/connections/{ids['active']}", headers=h).status_code == 200
    resp = client.put(f"/api/agents/agent-c/connections/{ids['active']}", headers=h)
    assert_envelope(resp, 422, "IDEMPOTENCY_KEY_REUSED")
    agents = client.get(f"/api/connections/{ids['active']}", headers=auth.user("alice")).json["agents"]
    assert agents == ["agent-a", "agent-b"]
