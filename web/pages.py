"""The pages people use: the connections page (/), the auditor's page (/audit), the API docs
(/docs), and in the development sandbox a sign-in that mints dev tokens.

The pages are static HTML plus plain JavaScript that calls the public API (web/static), so an
app team can read them as a reference frontend, override a template, or replace them whole.
Nothing is fetched from another host: Swagger UI comes from the flask-swagger-ui package, and
the Content-Security-Policy below makes the browser refuse anything that is not this origin's.
"""
from __future__ import annotations

import os
import time

from flask import Blueprint, current_app, jsonify, render_template, send_from_directory
from pydantic import BaseModel, ConfigDict

from .errors import ApiError
from .schemas import UserId, parse_body

bp = Blueprint("pages", __name__)

# The people offered by the sandbox sign-in (any other id may be typed in).
SANDBOX_PEOPLE = ("alice", "bob", "carol")
DEV_TOKEN_TTL_SECONDS = 3600

# 'unsafe-inline' styles only: Swagger UI sets style attributes. Scripts come from files here.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'self'; base-uri 'self'; form-action 'self'")


def sandbox_key():
    """The development signing key when this app accepts dev tokens (development, no Clerk), else None."""
    if current_app.config["LEDGER_ENV"] != "development":
        return None
    return current_app.extensions.get("dev_key")


def _page(template: str, **context):
    body = render_template(template, sandbox=sandbox_key() is not None, people=SANDBOX_PEOPLE,
                           env=current_app.config["LEDGER_ENV"], **context)
    headers = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}
    return body, 200, headers


@bp.get("/")
def connections_page():
    """The signed-in person's connections: connect, disconnect, undo, reconnect, history."""
    return _page("connections.html")


@bp.get("/connect/done")
def connect_done():
    """Where the OAuth popup lands (the callbackUrl): tells the opener, then closes."""
    return _page("connect_done.html")


@bp.get("/audit")
def audit_page():
    """The auditor's page: head, verify, signed heads, state as of, export."""
    return _page("audit.html")


@bp.get("/docs")
def docs_page():
    """Swagger UI over /openapi.json, served from the flask-swagger-ui package's files."""
    return _page("docs.html")


def _swagger_dist() -> str:
    import flask_swagger_ui
    return os.path.join(os.path.dirname(flask_swagger_ui.__file__), "dist")


@bp.get("/docs/assets/<path:name>")
def docs_asset(name):
    return send_from_directory(_swagger_dist(), name, max_age=3600)


class DevTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    user: UserId


@bp.post("/dev/token")
def dev_token():
    """Development sandbox only: a session token for a sandbox person. Absent (404) elsewhere."""
    key = sandbox_key()
    if key is None:
        raise ApiError(404, "NOT_FOUND", "No such resource.")
    from .devkeys import mint_dev_token
    body = parse_body(DevTokenRequest)
    token = mint_dev_token(key, body.user, ttl_seconds=DEV_TOKEN_TTL_SECONDS)
    expires = int(time.time()) + DEV_TOKEN_TTL_SECONDS
    answer = jsonify({"token": token, "userId": body.user, "expiresAt": expires, "sandbox": True})
    answer.headers["Cache-Control"] = "no-store"  # a credential: never kept by a cache
    return answer
