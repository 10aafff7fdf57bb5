"""Who is calling: a person (Clerk session JWT) or a service (X-Api-Key).

Credentials are read once per request, before the rate limiter runs, so limits are per caller.
A view then demands what it needs with require_person_or_admin / require_scope.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from flask import Flask, current_app, g, request

from ledger.services import apikeys
from ledger.commands import Caller

from .errors import ApiError

log = logging.getLogger("web.auth")


@dataclass(frozen=True)
class Principal:
    kind: str            # "user" or "service"
    id: str              # person id (sub) or API key id
    tenant: str
    name: str
    scopes: frozenset = frozenset()

    @property
    def rate_key(self) -> str:
        return f"{self.kind}:{self.id}"

    def caller(self) -> Caller:
        return Caller(kind=self.kind, id=self.id, tenant=self.tenant,
                      admin=self.kind == "service" and "connections:admin" in self.scopes)


def _unauthenticated(code: str = "UNAUTHENTICATED", message: str = "Authentication required.") -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": 'Bearer realm="connection-ledger"'})


def _read_credentials() -> None:
    g.principal, g.auth_error = None, None
    key = request.headers.get("X-Api-Key")
    header = request.headers.get("Authorization", "")
    if key is not None:
        found = current_app.extensions["api_keys"].find(key.strip())
        if found is None:
            g.auth_error = _unauthenticated("INVALID_API_KEY", "The API key is not valid.")
            return
        g.principal = Principal("service", found.id, found.tenant, found.name, found.scopes)
    elif header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            g.auth_error = _unauthenticated("INVALID_TOKEN", "The session token is not valid.")
            return
        _verify_token(token.strip())


def _verify_token(token: str) -> None:
    from .clerk import TokenRejected
    verifier = current_app.extensions.get("clerk")
    if verifier is None:
        g.auth_error = _unauthenticated("AUTH_UNAVAILABLE", "Sign-in is not configured.")
        return
    try:
        person = verifier.verify(token)
    except TokenRejected as exc:
        g.auth_error = _unauthenticated(exc.code, "The session token is not valid.")
        return
    g.principal = Principal("user", person.user_id, person.tenant, person.user_id)


def current() -> Principal:
    """The authenticated caller, or a 401."""
    if g.get("auth_error") is not None:
        raise g.auth_error
    if g.get("principal") is None:
        raise _unauthenticated()
    return g.principal


def require_person_or_admin(view):
    """A person acting on their own connections, or a service key with connections:admin."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        p = current()
        if p.kind == "service" and "connections:admin" not in p.scopes:
            raise ApiError(403, "FORBIDDEN", "This API key lacks the connections:admin scope.")
        return view(*args, **kwargs)
    return wrapper


def require_scope(scope: str):
    """A service key holding `scope` (people never have scopes)."""
    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            p = current()
            if scope not in p.scopes:
                raise ApiError(403, "FORBIDDEN", f"This caller lacks the {scope} scope.")
            return view(*args, **kwargs)
        return wrapper
    return decorate


def build_verifier(app: Flask):
    """The Clerk verifier for this configuration; in development without Clerk, the dev key."""
    from .clerk import ClerkVerifier
    cfg = app.config
    parties = [p.strip() for p in (cfg["CLERK_AUTHORIZED_PARTIES"] or "").split(",") if p.strip()]
    common = dict(authorized_parties=parties, leeway=int(cfg["CLERK_LEEWAY_SECONDS"]))
    if cfg.get("CLERK_JWKS_URL") or cfg.get("CLERK_JWT_KEY"):
        return ClerkVerifier(jwks_url=cfg.get("CLERK_JWKS_URL"), pem=cfg.get("CLERK_JWT_KEY"),
                             issuer=cfg.get("CLERK_ISSUER"), **common)
    if cfg["LEDGER_ENV"] == "production":
        return None  # refused earlier by config.check; never fall back to dev tokens
    from .dev_tokens import DEV_ISSUER, load_or_create_dev_key
    key = load_or_create_dev_key(app.instance_path)
    app.extensions["dev_key"] = key
    return ClerkVerifier(pem=key.public_pem, issuer=DEV_ISSUER, **common)


def init_auth(app: Flask) -> None:
    app.extensions["clerk"] = build_verifier(app)
    app.extensions["api_keys"] = apikeys.KeyCache(app.extensions["engine"], ttl=float(app.config["API_KEY_CACHE_SECONDS"]))
    app.before_request(_read_credentials)
