"""Verification of Clerk session tokens (RS256 only), with no Flask in sight.

Keys come from the JWKS (pyjwt's PyJWKClient: cached, refetched on an unknown kid at most once
per `refetch_cooldown`, so a flood of made-up kids cannot hammer Clerk) or from a
PEM. The last good key set is kept, so a JWKS endpoint that goes down after a first fetch does
not lock everybody out. Every failure is one safe code; which check failed is logged, not told.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import jwt
from jwt import PyJWKClient
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError

log = logging.getLogger("web.auth")
_REQUIRED = ["exp", "iat", "sub"]
_NUMERIC = ("exp", "nbf", "iat")
_TEXT = ("sub", "sid", "org_id", "azp", "iss")


@dataclass(frozen=True)
class Person:
    user_id: str
    tenant: str
    session_id: str | None = None


class TokenRejected(Exception):
    """The token is not acceptable. `code` is safe to show; the reason is only logged."""

    def __init__(self, code: str = "INVALID_TOKEN", reason: str = ""):
        super().__init__("The session token is not valid.")
        self.code, self.reason = code, reason


def _pem(text: str) -> str:
    return text.replace("\\n", "\n").strip()


class ClerkVerifier:
    def __init__(self, *, jwks_url: str | None = None, pem: str | None = None, issuer: str | None = None,
                 authorized_parties=(), leeway: int = 5, jwks_cache_seconds: int = 300,
                 timeout: float = 3.0, extra_pems=(), refetch_cooldown: float = 5.0):
        self.issuer, self.leeway = issuer, leeway
        self.parties = frozenset(authorized_parties or ())
        self._pems = [_pem(p) for p in ([pem] if pem else []) + list(extra_pems or [])]
        self._jwks = PyJWKClient(jwks_url, lifespan=jwks_cache_seconds, timeout=timeout,
                                 cooldown_duration=refetch_cooldown) if jwks_url else None
        self._last_good: dict[str, object] = {}
        self._lock = threading.Lock()

    def verify(self, token: str) -> Person:
        """The person behind a valid token, or TokenRejected."""
        if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
            raise TokenRejected(reason="malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected(reason="unreadable header") from None
        if header.get("alg") != "RS256":
            raise TokenRejected(reason=f"alg {header.get('alg')!r}")
        claims = None
        for key in self._keys_for(header.get("kid")):
            claims = self._decode(token, key)
            if claims is not None:
                break
        if claims is None:
            raise TokenRejected(reason="no key verified the signature")
        return self._person(claims)

    def _keys_for(self, kid):
        keys = []
        if self._jwks is not None and kid:
            key = self._jwks_key(kid)
            if key is not None:
                keys.append(key)
        keys.extend(self._pems)
        if not keys:
            raise TokenRejected("AUTH_UNAVAILABLE" if self._jwks and not self._last_good and kid else "INVALID_TOKEN",
                                reason="no key for this token")
        return keys

    def _jwks_key(self, kid: str):
        try:
            key = self._jwks.get_signing_key(kid).key
            with self._lock:
                self._last_good[kid] = key
            return key
        except PyJWKClientConnectionError:
            log.warning("JWKS endpoint unreachable; using the last keys fetched")
        except PyJWKClientError:
            pass  # unknown kid even after a refetch, or an unusable key set
        except Exception:  # a JWKS that answers garbage must not become a 500
            log.warning("JWKS fetch failed", exc_info=True)
        with self._lock:
            return self._last_good.get(kid)

    def _decode(self, token: str, key) -> dict | None:
        try:
            return jwt.decode(token, key, algorithms=["RS256"], leeway=self.leeway, issuer=self.issuer,
                              options={"require": _REQUIRED + (["iss"] if self.issuer else []),
                                       "verify_aud": False})
        except jwt.InvalidSignatureError:
            return None  # maybe another configured key signed it
        except jwt.PyJWTError as exc:
            raise TokenRejected(reason=type(exc).__name__) from None
        except (TypeError, ValueError, OverflowError):  # pyjwt's int() of a list, NaN or 1e400 in `exp`
            raise TokenRejected(reason="a time claim is not a number") from None

    def _person(self, claims: dict) -> Person:
        _check_types(claims)
        sub = claims["sub"]
        if not sub.strip():
            raise TokenRejected(reason="no sub")
        azp = claims.get("azp")
        if azp is not None and self.parties and azp not in self.parties:
            raise TokenRejected(reason="azp not authorized")
        org = claims.get("org_id")
        tenant = org if org else sub
        return Person(sub, tenant, claims.get("sid"))


def _check_types(claims: dict) -> None:
    """Claims of the wrong JSON type are refused, not coerced: pyjwt reads an `exp` of "9999999999"
    as a number and `true` as 1, and a list in `azp` would not even compare with a string."""
    for name in _NUMERIC:
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise TokenRejected(reason=f"{name} is not a number")
    for name in _TEXT:
        if name in claims and not isinstance(claims[name], str):
            raise TokenRejected(reason=f"{name} is not a string")
