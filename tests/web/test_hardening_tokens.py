"""Signed tokens with claims of the wrong JSON type: 401 in the envelope, never a 500 or a coercion."""
import time

import pytest


@pytest.mark.parametrize("claims", [
    {"azp": ["http://localhost:3000"]},
    {"azp": {"party": "http://localhost:3000"}},
    {"exp": ("str", 300)},
    {"exp": ("list", 300)},
    {"exp": True},
    {"nbf": ("str", 0)},
    {"nbf": ("dict", 0)},
    {"iat": ("str", 0)},
    {"iat": False},
    {"sub": 12345},
    {"sub": ["alice"]},
    {"sid": 7},
    {"org_id": ["org_1"]},
    {"org_id": 3},
], ids=repr)
def test_a_claim_of_the_wrong_type_is_a_401_in_the_envelope(client, auth, claims):
    claims = {name: _wrapped(value) for name, value in claims.items()}
    resp = client.get("/api/connections", headers=auth.user("alice", claims_overrides=claims))
    assert resp.status_code == 401, resp.get_data(as_text=True)[:300]
    assert resp.is_json and resp.json["error"]["code"] == "INVALID_TOKEN"


def _wrapped(value):
    """A time (now + offset, so the token is otherwise valid) in the wrong JSON type."""
    if not isinstance(value, tuple):
        return value
    kind, offset = value
    when = int(time.time()) + offset
    return {"str": str(when), "list": [when], "dict": {"t": when}}[kind]


def test_well_typed_claims_still_pass(client, auth):
    resp = client.get("/api/connections", headers=auth.user("alice", org_id="org_1",
                                                            claims_overrides={"exp": time.time() + 300.5}))
    assert resp.status_code == 200
