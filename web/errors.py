"""The one error envelope, and the only place ledger errors become HTTP statuses."""
from __future__ import annotations

import json
import logging
import sys

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ledger import errors as le
from ledger.clock import iso, now

log = logging.getLogger("web")

_TYPES = {400: "invalid_request", 401: "authentication_error", 403: "permission_error",
          404: "not_found", 405: "invalid_request", 409: "conflict", 413: "invalid_request",
          415: "invalid_request", 422: "validation_error", 429: "rate_limit_error",
          502: "upstream_error", 503: "unavailable", 500: "internal_error"}
_HTTP_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND",
               405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE",
               415: "UNSUPPORTED_MEDIA_TYPE", 422: "VALIDATION_ERROR", 429: "RATE_LIMITED",
               500: "INTERNAL_ERROR", 502: "UPSTREAM_ERROR", 503: "UNAVAILABLE"}
# IdempotencyKeyInUse may not exist yet in ledger.errors: map it only when it does.
_KEY_IN_USE = getattr(le, "IdempotencyKeyInUse", None)
_LEDGER_STATUS = [
    *([(_KEY_IN_USE, 409)] if _KEY_IN_USE else []),
    (le.NotFound, 404), (le.NotBound, 404), (le.AgentsBound, 409), (le.GracePeriodExpired, 409),
    (le.AlreadyTerminal, 409), (le.InvalidState, 409), (le.ConcurrencyError, 409),
    # The IETF Idempotency-Key draft: a key reused with a different request is a 422.
    (le.IdempotencyKeyReused, 422), (le.InvalidInput, 422),
    (le.StorageError, 503), (le.UpstreamError, 502),
]
_LEDGER_CODES = [(le.InvalidInput, "VALIDATION_ERROR"), (le.UpstreamError, "UPSTREAM_ERROR")]


class ApiError(Exception):
    """An error a view raises on purpose; rendered as the envelope."""

    def __init__(self, status: int, code: str, message: str, details=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers or {}


def envelope(status: int, code: str, message: str, details=None, headers=None):
    """Build the error response every failure uses."""
    body = {"success": False, "error": {
        "code": code, "message": message, "type": _TYPES.get(status, "error"), "status": status,
        "trace_id": getattr(g, "trace_id", None), "timestamp": iso(now())}}
    if details is not None:
        body["error"]["details"] = _encodable(details)
    resp = jsonify(body)
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _encodable(value):
    """`value` with every string UTF-8 can carry: a lone surrogate a client sent (as a key, say)
    is echoed in `loc` as its escape, so the error about it cannot itself fail to render."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encodable(v) for v in value]
    return value


def ledger_status(exc: le.LedgerError) -> int:
    for cls, status in _LEDGER_STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def _ledger_error(exc: le.LedgerError):
    status = ledger_status(exc)
    code = next((code for cls, code in _LEDGER_CODES if isinstance(exc, cls)), exc.code)
    if status >= 500:
        log.warning("ledger error %s on %s %s: %s", exc.code, request.method, request.path, exc.message)
    return envelope(status, code, exc.message, exc.details or None)


def _http_error(exc: HTTPException):
    status = exc.code or 500
    message = {404: "No such resource.", 405: "Method not allowed on this resource.",
               413: "The request body is too large."}.get(status, exc.description or "Request failed.")
    headers = {"Allow": exc.response.headers["Allow"]} if status == 405 and exc.response else None
    if status == 405 and not headers:
        valid = getattr(exc, "valid_methods", None)
        headers = {"Allow": ", ".join(valid)} if valid else None
    return envelope(status, _HTTP_CODES.get(status, "HTTP_ERROR"), message, headers=headers)


def _unexpected(exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return envelope(500, "INTERNAL_ERROR", "Something went wrong on our side.")


_SERVER_MESSAGES = {400: "The request is not valid HTTP (a malformed request line or header).",
                    414: "The request line is too long.", 431: "The request headers are too large.",
                    501: "This transfer coding is not supported."}


def server_error_bytes(status: int, reason: str) -> bytes:
    """A whole HTTP/1.1 response carrying the envelope, for errors the server answers itself,
    before any request reaches Flask (no trace id exists yet: none is given)."""
    body = json.dumps({"success": False, "error": {
        "code": _HTTP_CODES.get(status, {414: "URI_TOO_LONG", 431: "HEADERS_TOO_LARGE"}.get(status, "HTTP_ERROR")),
        "message": _SERVER_MESSAGES.get(status, reason), "type": _TYPES.get(status, "invalid_request"),
        "status": status, "trace_id": None, "timestamp": iso(now())}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    return head + body


def _gunicorn_answers_in_the_envelope() -> None:
    """gunicorn answers a request it cannot parse (a DEL in a header, an oversized header or
    request line) itself, with an HTML page, through `gunicorn.util.write_error`. Only when the
    app runs under gunicorn is that function swapped for one that writes the envelope; a
    gunicorn config file is not needed for it, and other servers are untouched."""
    util = sys.modules.get("gunicorn.util")
    if util is None or getattr(util.write_error, "_envelope", False):
        return

    def write_error(sock, status_int, reason, mesg):
        util.write_nonblock(sock, server_error_bytes(int(status_int), str(reason)))
    write_error._envelope = True
    util.write_error = write_error


def register_error_handlers(app: Flask) -> None:
    _gunicorn_answers_in_the_envelope()
    app.register_error_handler(ApiError, lambda e: envelope(e.status, e.code, e.message, e.details, e.headers))
    app.register_error_handler(le.LedgerError, _ledger_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
