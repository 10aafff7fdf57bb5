"""Rate limits per caller (Flask-Limiter), shared across processes when storage is Redis."""
from __future__ import annotations

import logging
import time

from flask import Flask, current_app, g, has_app_context, request
from flask_limiter import Limiter
from werkzeug.exceptions import TooManyRequests

from ledger.clock import UTC
from .errors import envelope
from .incident_log import Incident

log = logging.getLogger("web.ratelimit")


def caller_key() -> str:
    """The person or API key when known (auth runs first), else the client address."""
    principal = g.get("principal")
    return principal.rate_key if principal is not None else f"ip:{request.remote_addr}"


def too_many(exc):
    """A 429 in the envelope, with when to come back (registered for TooManyRequests: this
    handler is found before web/errors.py's one for every HTTPException)."""
    limiter: Limiter = current_app.extensions["limiter_obj"]
    current = limiter.current_limit
    now = time.time()
    reset_at = current.reset_at if current else int(now) + 1
    retry_after = max(1, int(reset_at - now))  # the same rounding Flask-Limiter uses for its header
    from datetime import datetime
    details = {"retry_after": retry_after,
               "limit": str(current.limit) if current else None,
               "remaining": current.remaining if current else 0,
               "reset_at": datetime.fromtimestamp(reset_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    headers = {"Retry-After": str(retry_after)}
    if current:
        # X-RateLimit-* are Flask-Limiter's to add (it does, to this answer too): setting them
        # here as well sent each one twice.
        headers.update({"RateLimit-Limit": str(current.limit.amount), "RateLimit-Remaining": "0",
                        "RateLimit-Reset": str(retry_after)})
    return envelope(429, "RATE_LIMITED", "Too many requests; slow down.", details, headers)


def _retry_after_only_when_refused(response):
    # Flask-Limiter sets Retry-After on every response it counts, a 201 included; the header
    # means "come back later", so it stays only on the answers that say so.
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


class _StorageFailures(logging.Filter):
    """Flask-Limiter logs a traceback on every request it cannot count (swallow_errors). This
    filter, on its logger, turns those into the app's storage Incident: one line when the
    storage goes, a summary a minute, a counter; the tracebacks themselves are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        incident = current_app.extensions.get("ratelimit_storage") if has_app_context() else None
        if incident is None or record.exc_info is None:
            return True
        exc = record.exc_info[1]
        g.ratelimit_storage_failed = True
        incident.fail(f"unreachable ({type(exc).__name__}: {str(exc)[:200]}); "
                      "requests are served without rate limits until it is back")
        return False


_FILTER = _StorageFailures()


def _storage_recovered(response):
    # A request the limiter counted (current_limit is only set when the storage answered) ends
    # an incident; one it could not count does not, nor does an exempt route.
    incident = current_app.extensions.get("ratelimit_storage")
    if incident is not None and incident.active and not g.get("ratelimit_storage_failed") \
            and current_app.extensions["limiter_obj"].current_limit is not None:
        incident.ok()
    return response


def storage_state(app: Flask) -> dict:
    """For /readyz: is the limiter's storage answering (a ping now), and what requests saw."""
    limiter: Limiter = app.extensions["limiter_obj"]
    incident: Incident = app.extensions["ratelimit_storage"]
    if not limiter.enabled:
        return {"enabled": False}
    try:
        reachable = bool(limiter.storage.check())
    except Exception:
        reachable = False
    if reachable:
        incident.ok()
    return {"enabled": True, "storage": "ok" if reachable else "unreachable", "failOpen": True, **incident.state()}


def init_limiter(app: Flask) -> Limiter:
    # With no limit configured the limiter is switched off, not left to find out on every request
    # that nothing applies: that took Flask-Limiter ~100 us a request.
    enabled = bool(app.config["RATELIMIT_DEFAULT"])
    if enabled:
        # Registered before the Limiter: after_request hooks run last-registered first, so this
        # runs after the limiter has added its headers.
        app.after_request(_retry_after_only_when_refused)
    limiter = Limiter(
        enabled=enabled,
        key_func=caller_key, app=app,
        default_limits=[app.config["RATELIMIT_DEFAULT"]] if app.config["RATELIMIT_DEFAULT"] else [],
        storage_uri=app.config["RATELIMIT_STORAGE_URI"],
        headers_enabled=True, key_prefix=app.config.get("RATELIMIT_KEY_PREFIX", "cl"),
        # Fail open: a broken Redis must not take the service down with it; limits resume when
        # it is back. Each incident is logged once (see _StorageFailures), counted on /metrics
        # and shown on /readyz (docs/ratelimit-note.md).
        swallow_errors=True,
    )
    app.extensions["limiter_obj"] = limiter
    app.register_error_handler(TooManyRequests, too_many)
    app.extensions["ratelimit_storage"] = Incident(log, "rate limit storage", "ratelimit.storage_errors")
    if enabled:
        if _FILTER not in logging.getLogger("flask-limiter").filters:
            logging.getLogger("flask-limiter").addFilter(_FILTER)
        app.after_request(_storage_recovered)
    return limiter
