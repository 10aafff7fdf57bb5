"""Per-request plumbing: the trace id (generated, or a valid X-Request-Id) and its echo, and the
work a process does once, when it serves its first request."""
from __future__ import annotations

import re
import secrets
import threading
from typing import Callable

from flask import Flask, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_first_lock = threading.Lock()


def on_first_request(app: Flask, fn: Callable[[], None]) -> None:
    """Run `fn` once, when this process serves its first request (never in a CLI command):
    one list checked by the one hook below, rather than a before_request hook apiece."""
    app.extensions.setdefault("first_request", []).append(fn)


def body_bytes() -> bytes:
    """The request body, or 413 when it is over MAX_CONTENT_LENGTH.

    A body with a Content-Length over the limit is refused by werkzeug before it is read. A
    chunked one (no Content-Length) is read only up to the limit and then silently cut short,
    which would surface as "not valid JSON": so when exactly the limit came back, one more byte
    is asked of the server's own input (which ends cleanly at the end of the chunked body)."""
    raw = request.get_data(cache=True)
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(raw) >= limit:
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return raw


def _begin():
    given = request.headers.get("X-Request-Id", "")
    g.trace_id = given if _VALID_REQUEST_ID.match(given) else "req_" + secrets.token_hex(16)
    pending = current_app.extensions.get("first_request")
    if pending:
        with _first_lock:
            while pending:
                pending.pop(0)()


def _echo(response):
    response.headers["X-Request-Id"] = getattr(g, "trace_id", "")
    if request.method == "OPTIONS" and response.status_code == 200 and not response.get_data():
        # Flask's automatic answer to OPTIONS: the Allow header is the answer, so no content
        # (it was an empty 200 labelled text/html).
        response.status_code = 204
        response.headers.pop("Content-Type", None)
    return response


def register_request_hooks(app: Flask) -> None:
    app.extensions.setdefault("first_request", [])
    app.before_request(_begin)
    app.after_request(_echo)
