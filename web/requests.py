"""Per-request plumbing: the trace id (generated, or a valid X-Request-Id) and its echo."""
from __future__ import annotations

import re
import uuid

from flask import Flask, g, request

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _begin():
    given = request.headers.get("X-Request-Id", "")
    g.trace_id = given if _VALID_REQUEST_ID.match(given) else "req_" + uuid.uuid4().hex


def _echo(response):
    response.headers["X-Request-Id"] = getattr(g, "trace_id", "")
    return response


def register_request_hooks(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_echo)
