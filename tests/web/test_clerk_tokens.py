"""Attack cases against the Clerk token verifier, with real keys and a real JWKS endpoint."""
import base64
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from tests.support.clerk import AUTHORIZED_PARTY, ISSUER, JwksServer, mint, new_rsa_key
from web.clerk import ClerkVerifier, TokenRejected

SAFE_CODES = {"INVALID_TOKEN", "AUTH_UNAVAILABLE"}


@pytest.fixture(scope="module")
def key():
    return new_rsa_key("k1")


@pytest.fixture
def server(key):
    s = JwksServer([key])
    yield s
    s.stop()


def _verifier(server, **kw):
    kw.setdefault("refetch_cooldown", 0)
    return ClerkVerifier(jwks_url=server.url, issuer=ISSUER, authorized_parties=[AUTHORIZED_PARTY], **kw)


def _rejected(verifier, token):
    with pytest.raises(TokenRejected) as caught:
        verifier.verify(token)
    assert caught.value.code in SAFE_CODES
    message = str(caught.value).lower()
    for hint in ("expired", "issuer", "audience", "kid", "signature", "azp"):
        assert hint not in message
    return caught.value


def test_a_valid_token_names_the_person_and_the_org_as_tenant(server, key):
    v = _verifier(server)
    assert v.verify(mint(key, sub="alice")).tenant == "alice"
    person = v.verify(mint(key, sub="alice", org_id="org_9"))
    assert (person.user_id, person.tenant) == ("alice", "org_9")


def test_alg_none_is_refused(server, key):
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "k1"}).encode()).rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps({"sub": "alice", "iss": ISSUER, "exp": time.time() + 60,
                                                "iat": time.time()}).encode()).rstrip(b"=").decode()
    _rejected(_verifier(server), f"{header}.{body}.")


def test_hs256_signed_with_the_public_key_is_refused(server, key):
    now = int(time.time())
    claims = {"sub": "alice", "iss": ISSUER, "iat": now, "exp": now + 60}
    import hmac, hashlib
    seg = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    signing_input = seg(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()) + "." + seg(json.dumps(claims).encode())
    sig = hmac.new(key.public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    _rejected(_verifier(server), signing_input + "." + seg(sig))


def test_unknown_kids_are_not_refetched_more_than_once_per_cooldown(server, key):
    v = _verifier(server, refetch_cooldown=60)
    v.verify(mint(key))
    before = server.requests
    for _ in range(5):
        _rejected(v, mint(new_rsa_key("stranger")))
    assert server.requests == before


def test_an_unknown_kid_is_refetched_once_and_refused(server, key):
    v = _verifier(server)
    v.verify(mint(key))
    before = server.requests
    _rejected(v, mint(new_rsa_key("stranger")))
    assert server.requests == before + 1


def test_a_key_rotated_into_the_jwks_is_picked_up(server, key):
    v = _verifier(server)
    v.verify(mint(key))
    rotated = new_rsa_key("k2")
    server.set_keys([key, rotated])
    time.sleep(0.01)
    assert v.verify(mint(rotated, sub="bob")).user_id == "bob"


@pytest.mark.parametrize("claims, ok", [
    (dict(exp_in=-3), True),          # within the 5 s leeway
    (dict(exp_in=-60), False),        # expired
    (dict(nbf_offset=60), False),     # not yet valid
    (dict(iss="https://evil.example"), False),
    (dict(azp="https://evil.example"), False),
    (dict(azp=None), True),           # azp absent is fine
    (dict(drop=("sub",)), False),
    (dict(claims_overrides={"sub": ""}), False),
    (dict(drop=("exp",)), False),
])
def test_time_issuer_party_and_subject_checks(server, key, claims, ok):
    v = _verifier(server)
    token = mint(key, **claims)
    if ok:
        assert v.verify(token).user_id
    else:
        _rejected(v, token)


def test_expiry_follows_the_clock(server, key):
    v = _verifier(server)
    token = mint(key, exp_in=60)
    v.verify(token)
    with freeze_time(datetime.now(timezone.utc) + timedelta(hours=1)):
        _rejected(v, token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA", "x" * 10000, "Ünïcode.ä.ö"])
def test_garbage_is_refused_without_an_exception_of_another_kind(server, garbage):
    _rejected(_verifier(server), garbage)


def test_a_jwks_that_goes_down_keeps_serving_its_cached_keys(server, key):
    v = _verifier(server, jwks_cache_seconds=0.05)
    v.verify(mint(key))
    server.down = True
    time.sleep(0.1)  # pyjwt's own cache has expired: only our last good keys remain
    assert v.verify(mint(key, sub="carol")).user_id == "carol"


def test_a_jwks_down_from_the_start_refuses_cleanly(key):
    server = JwksServer([key])
    server.down = True
    try:
        _rejected(_verifier(server), mint(key))
    finally:
        server.stop()


def test_pem_mode_accepts_an_escaped_pem(key):
    escaped = key.public_pem.replace("\n", "\\n")
    v = ClerkVerifier(pem=escaped, issuer=ISSUER)
    assert v.verify(mint(key, sub="dan")).user_id == "dan"


def test_dev_tokens_verify_only_with_the_dev_key(tmp_path, key):
    from web.dev_tokens import DEV_ISSUER, load_or_create_dev_key, mint_dev_token
    dev = load_or_create_dev_key(str(tmp_path))
    token = mint_dev_token(dev, "alice")
    assert ClerkVerifier(pem=dev.public_pem, issuer=DEV_ISSUER).verify(token).user_id == "alice"
    _rejected(ClerkVerifier(pem=key.public_pem, issuer=DEV_ISSUER), token)
    assert (tmp_path / "dev-signing-key.pem").stat().st_mode & 0o777 == 0o600


# --- the same attacks over HTTP: one answer for all, so a caller cannot tell which check failed ---

def _unsigned(header: dict, claims: dict) -> str:
    seg = lambda obj: base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{seg(header)}.{seg(claims)}"


def _alg_none(key):
    now = int(time.time())
    return _unsigned({"alg": "none", "kid": key.kid}, {"sub": "alice", "iss": ISSUER, "azp": AUTHORIZED_PARTY,
                                                        "iat": now, "exp": now + 60}) + "."


def _hs256_with_the_public_key(key):
    import hashlib
    import hmac
    now = int(time.time())
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": key.kid},
                              {"sub": "alice", "iss": ISSUER, "azp": AUTHORIZED_PARTY, "iat": now, "exp": now + 60})
    sig = hmac.new(key.public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


HTTP_ATTACKS = {
    "alg-none": _alg_none,
    "hs256-with-public-key": _hs256_with_the_public_key,
    "unknown-kid": lambda key: mint(new_rsa_key("stranger"), sub="alice"),
    "forged-with-the-right-kid": lambda key: mint(new_rsa_key(), sub="alice", kid=key.kid),
    "expired": lambda key: mint(key, sub="alice", exp_in=-60),
    "not-yet-valid": lambda key: mint(key, sub="alice", nbf_offset=60),
    "wrong-iss": lambda key: mint(key, sub="alice", iss="https://evil.example"),
    "wrong-azp": lambda key: mint(key, sub="alice", azp="https://evil.example"),
    "missing-sub": lambda key: mint(key, drop=("sub",)),
    "missing-exp": lambda key: mint(key, sub="alice", drop=("exp",)),
    "garbage": lambda key: "eyJhbGciOiJSUzI1NiJ9.e30.AAAA",
}


def _comparable(resp) -> dict:
    err = dict(resp.json["error"])
    del err["trace_id"], err["timestamp"]
    return {"status": resp.status_code, "error": err, "www-authenticate": resp.headers.get("WWW-Authenticate")}


@pytest.mark.parametrize("attack", HTTP_ATTACKS)
def test_every_bad_token_gets_the_same_401_over_http_and_records_nothing(app, client, auth, signing_key, attack):
    token = HTTP_ATTACKS[attack](signing_key)
    assert client.get("/api/connections", headers=auth.user("alice")).status_code == 200  # the real key works
    head = app.extensions["ledger"].store.head()[0]
    resp = client.get("/api/connections", headers={"Authorization": f"Bearer {token}"})
    reference = client.get("/api/connections", headers={"Authorization": "Bearer not-a-jwt"})
    assert resp.status_code == 401 and resp.json["success"] is False
    assert resp.json["error"]["trace_id"] == resp.headers["X-Request-Id"]
    assert _comparable(resp) == _comparable(reference)
    text = resp.get_data(as_text=True).lower()
    assert not any(hint in text for hint in ("expired", "issuer", "azp", "kid", "signature", "alg", "nbf"))
    assert "alice" not in text and "data" not in resp.json
    assert app.extensions["ledger"].store.head()[0] == head
