"""Header size bounds: an oversize header is a 431 in the JSON envelope, before anything reads it.
gunicorn.conf.py lets headers up to 64 KB through to here, so the answer is ours, not an HTML page."""
from __future__ import annotations

from flask import Flask, request

from .errors import ApiError

MAX_HEADER_BYTES = 16 * 1024     # any one header (a Clerk session token is a few KB)
MAX_HEADERS_BYTES = 32 * 1024    # all of them together


def _check_headers() -> None:
    total = 0
    for name, value in request.headers.items():
        size = len(name) + len(value)
        total += size
        if size > MAX_HEADER_BYTES:
            raise ApiError(431, "HEADER_TOO_LARGE",
                           f"The {name} header is larger than {MAX_HEADER_BYTES} bytes.")
    if total > MAX_HEADERS_BYTES:
        raise ApiError(431, "HEADERS_TOO_LARGE", f"The request headers are larger than {MAX_HEADERS_BYTES} bytes.")


def register_header_limits(app: Flask) -> None:
    app.before_request(_check_headers)
