"""Junk in a query parameter is a 422 naming it — never a 500 from the database — and changes nothing."""
from urllib.parse import urlencode

import pytest

from ledger import envelope as ev
from ledger.envelope import NewEvent
from tests.web.test_envelope import Unchanged, assert_envelope, seed_connections

NUL, LONG = "\x00", "x" * 5000
AUDIT = ("/audit/events", "/audit/export", "/audit/verify", "/audit/state")

# (path, parameter, junk values). "{cid}" is the caller's own ACTIVE connection, so the same
# request without the junk would act on it.
JUNK = [
    ("/api/connections", "status", [NUL, "NOPE", "active;drop", LONG]),
    ("/api/connections", "toolkit", [NUL, "git hub", "ü", "t" * 101, LONG]),
    ("/api/connections/{cid}", "force", [NUL, "maybe", "2", LONG]),
    ("/api/connections/{cid}", "immediate", [NUL, "soon", "-1"]),
    ("/api/connections/{cid}", "dry_run", [NUL, "perhaps", "10"]),
    ("/api/connections/disconnect", "dry_run", [NUL, "perhaps", LONG]),
    ("/audit/events", "after", [NUL, "abc", "-1", "1.5", "1e3", "9" * 30, LONG]),
    ("/audit/events", "limit", [NUL, "0", "-5", "5000", "ten"]),
    ("/audit/events", "connection_id", [NUL, "ca 1", "ca_1%", "c" * 101]),
    ("/audit/events", "user_id", [NUL, "ü", "a b", "u" * 201]),
    ("/audit/events", "type", [NUL, "a b", "connection.used'--", "t" * 101]),
    ("/audit/events", "since", [NUL, "yesterday", "5", LONG]),
    ("/audit/events", "until", [NUL, "tomorrow", "2026-13-45T99:00:00Z"]),
    ("/audit/export", "from_seq", [NUL, "0", "-1", "x", "9" * 30]),
    ("/audit/export", "to_seq", [NUL, "0", "1.0", "9" * 30]),
    ("/audit/verify", "from_seq", [NUL, "0", "-1", "x", "9" * 30]),
    ("/audit/verify", "to_seq", [NUL, "0", "y", "9" * 30]),
    ("/audit/state", "as_of", [NUL, "soon", "9" * 30, LONG]),
]


@pytest.fixture
def world(app, client, auth, composio):
    """Alice's connections, some events, and an auditor's key."""
    ids = seed_connections(client, auth)
    app.extensions["ledger"].append(ev.connection_stream(ids["active"]),
                                    [NewEvent(ev.USED, {"connection_id": ids["active"]})])
    return {**ids, "alice": auth.user("alice"), "auditor": auth.service("acme", "audit:read")}


def _request(client, world, path, params):
    headers = world["auditor"] if path.startswith("/audit") else world["alice"]
    url = path.format(cid=world["active"]) + "?" + urlencode(params)
    if path == "/api/connections/disconnect":
        return client.delete(url, json={"connectionId": world["active"], "force": True}, headers=headers)
    if path == "/api/connections/{cid}":
        return client.delete(url, headers=headers)
    return client.get(url, headers=headers)


@pytest.mark.parametrize("path, name, values", JUNK, ids=[f"{p}?{n}" for p, n, _ in JUNK])
def test_junk_in_a_query_parameter_is_a_422_naming_it(app, client, composio, world, path, name, values):
    for value in values:
        with Unchanged(app, composio):
            resp = _request(client, world, path, {name: value})
        err = assert_envelope(resp, 422, "VALIDATION_ERROR")
        assert [d["loc"] for d in err["details"]] == [["query", name]], repr(value)


@pytest.mark.parametrize("path", ["/audit/export", "/audit/verify"])
def test_a_seq_range_that_ends_before_it_starts_is_a_422(app, client, world, path):
    resp = _request(client, world, path, {"from_seq": 3, "to_seq": 2})
    err = assert_envelope(resp, 422, "VALIDATION_ERROR")
    assert [d["loc"] for d in err["details"]] == [["query", "to_seq"]]
    assert _request(client, world, path, {"from_seq": 3, "to_seq": 3}).status_code == 200


def test_valid_values_of_the_same_parameters_are_answered(client, world):
    # The control for the refusals above: the parameters work when the values are sane.
    ok = [("/api/connections", {"status": "active", "toolkit": "openai"}),
          ("/audit/events", {"after": 1, "limit": 2, "connection_id": world["active"], "user_id": "alice",
                             "type": ev.USED, "since": "2000-01-01T00:00:00Z", "until": "2999-01-01T00:00:00Z"}),
          ("/audit/export", {"from_seq": 1, "to_seq": 2}), ("/audit/verify", {"from_seq": 2}),
          ("/audit/state", {"as_of": 3})]
    for path, params in ok:
        assert _request(client, world, path, params).status_code == 200, (path, params)
    listed = _request(client, world, "/api/connections", {"status": "active", "toolkit": "openai"}).json
    assert [c["connectionId"] for c in listed["data"]] == [world["active"]]
    found = _request(client, world, "/audit/events", {"type": ev.USED, "user_id": "alice"}).json["events"]
    assert [e["type"] for e in found] == [ev.USED]


@pytest.mark.parametrize("path, params", [
    ("/api/connections", {"status": "", "toolkit": ""}),
    ("/api/connections", {"toolkit": ""}),
    ("/audit/events", {"after": "", "type": ""}),
    ("/audit/state", {"as_of": ""}),
])
def test_an_empty_parameter_is_a_422_as_the_openapi_spec_says(client, world, path, params):
    # /openapi.json gives each of these a minLength, an enum or a format: "" matches none.
    err = assert_envelope(_request(client, world, path, params), 422, "VALIDATION_ERROR")
    assert sorted(d["loc"][1] for d in err["details"]) == sorted(params)


@pytest.mark.parametrize("path", ["/api/connections/{cid}", "/api/connections/disconnect"])
def test_a_misspelt_flag_on_a_disconnect_is_refused_not_ignored(app, client, composio, world, path):
    with Unchanged(app, composio):
        resp = _request(client, world, path, {"dryrun": "true"})
    err = assert_envelope(resp, 422, "VALIDATION_ERROR")
    assert [d["loc"] for d in err["details"]] == [["query", "dryrun"]]
    status = client.get(f"/api/connections/{world['active']}", headers=world["alice"]).json["status"]
    assert status == "ACTIVE"
