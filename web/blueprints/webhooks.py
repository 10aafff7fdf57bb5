"""POST /webhooks/composio: verify a signed Composio event, record it once, answer at once.

The view stays thin: read headers and raw body -> verify the signature (web/webhook_signature.py:
the composio SDK's `verify_webhook`, trying each configured secret) -> parse
(ledger.webhook_parsing) -> `Ingest.record` (ledger/services/webhooks.py) -> answer. No
outbound call happens on this path, and nothing is recorded unless the signature is valid.

Answers (all errors in the one envelope; nothing recorded):
  401 INVALID_SIGNATURE  a webhook-* header missing or malformed, or no secret signed it.
                         Missing headers answer 401, not 400: nothing proves Composio sent it.
  401 STALE_WEBHOOK      webhook-timestamp further than WEBHOOK_TOLERANCE_SECONDS from now.
  400 INVALID_JSON       the body is not UTF-8 (checked before the signature: the SDK verifies
                         text), or it is signed but not JSON (nested too deeply to decode
                         included): nothing in it can be read, so there is no fact to record,
                         and the refusal is counted (webhook.invalid) and logged.
  422 VALIDATION_ERROR   signed JSON that is not an object.
  413 PAYLOAD_TOO_LARGE  over MAX_CONTENT_LENGTH (Flask raises it; web.errors renders it).
  503 WEBHOOKS_NOT_CONFIGURED  no COMPOSIO_WEBHOOK_SECRET: Composio retries until there is one.
  200 {"success": true, "outcome": "accepted" | "duplicate" | "unrecognised"}

Rate limiting: this route is exempt from the per-caller limit. Composio delivers from shared,
changing addresses in bursts (retries included), so a per-address limit would delay or drop
real events; an unsigned request costs one HMAC per configured secret and never reaches the
database, and the body size is capped by MAX_CONTENT_LENGTH.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time

from flask import Blueprint, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from ledger.services.webhooks import Ingest
from ledger.metrics import counters
from ledger.webhook_parsing import parse_webhook

from ..config import secrets_list
from ..incident_log import Incident
from ..request_context import body_bytes
from ..schemas import WebhookAnswer, answer
from ..webhook_signature import Rejected, verify_signature, warm_sdk

bp = Blueprint("webhooks", __name__)
log = logging.getLogger("web.webhooks")

_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]{1,256}$")  # one token of visible ASCII (ids, signatures)


@bp.post("/webhooks/composio")
def composio():
    """Receive one signed Composio webhook."""
    webhook_id = request.headers.get("webhook-id", "")
    try:
        hook = _verified_event(webhook_id)
    except Rejected as rejected:
        _note(rejected.outcome, webhook_id, rejected.error.code)
        raise rejected.error from None
    except RequestEntityTooLarge:
        _note("invalid", webhook_id, "PAYLOAD_TOO_LARGE")
        raise
    ingest = Ingest(current_app.extensions["ledger"], current_app.config["COMPOSIO_USER_ID_PREFIX"])
    outcome = ingest.record(hook, trace_id=g.get("trace_id"))
    _note(outcome, webhook_id)
    return answer(WebhookAnswer, {"success": True, "outcome": outcome})


def _verified_event(webhook_id: str):
    """Size, headers, time, signature, then the body: a WebhookEvent or Rejected."""
    raw_body = body_bytes()  # over MAX_CONTENT_LENGTH (chunked too): 413 before anything else
    headers = {name: request.headers.get(name, "") for name in _HEADERS}
    missing = [name for name, value in headers.items() if not value]
    if missing:
        raise Rejected("rejected_signature", 401, "INVALID_SIGNATURE", "Missing header(s): " + ", ".join(missing) + ".")
    if not _PRINTABLE.match(webhook_id) or not _TIMESTAMP.match(headers["webhook-timestamp"]):
        raise Rejected("rejected_signature", 401, "INVALID_SIGNATURE", "Malformed webhook-id or webhook-timestamp.")
    tolerance = int(current_app.config["WEBHOOK_TOLERANCE_SECONDS"])
    if abs(int(time.time()) - int(headers["webhook-timestamp"])) > tolerance:  # as the SDK counts
        raise Rejected("stale", 401, "STALE_WEBHOOK", "The webhook timestamp is outside the allowed tolerance.")
    secrets = secrets_list(current_app.config.get("COMPOSIO_WEBHOOK_SECRET"))
    if not secrets:
        log.error("a Composio webhook arrived but COMPOSIO_WEBHOOK_SECRET is not set")
        raise Rejected("unconfigured", 503, "WEBHOOKS_NOT_CONFIGURED", "Webhooks are not configured.")
    body = _body_text(raw_body)
    raw = verify_signature(body, webhook_id, headers["webhook-timestamp"], headers["webhook-signature"], secrets, tolerance)
    if raw is None:  # signed, but not a shape the SDK knows: decide ourselves what it is
        raw = _json_object(body)
    return parse_webhook(raw, webhook_id, current_app.extensions["ledger"].now())


def _body_text(raw: bytes) -> str:
    # The SDK verifies text; strict UTF-8 decoding round-trips to exactly the signed bytes.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("invalid", 400, "INVALID_JSON", "The body is not UTF-8 JSON.") from None


def _json_object(body: str) -> dict:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        raise Rejected("invalid", 400, "INVALID_JSON", "The body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise Rejected("invalid", 422, "VALIDATION_ERROR", "The body must be a JSON object.")
    return value


_REFUSED = frozenset({"rejected_signature", "stale", "invalid", "unconfigured"})
_SUMMARY_EVERY = 60.0
_last_summary = [time.monotonic()]
# Refusals are one incident while they keep coming (someone probing, or a wrong secret): the
# first is logged, then a line a minute; each is counted (webhook.<outcome>). 600 WARNING lines
# in 2.7 s helped nobody.
_refusals = Incident(log, "composio webhooks refused", "webhook.refused")


def _note(outcome: str, webhook_id: str, code: str | None = None) -> None:
    """Count every delivery; log refusals as an incident and, once a minute, the counts by
    outcome. A line per accepted delivery cost a tenth of the request at load, and says
    nothing the counts do not."""
    counters.inc(f"webhook.{outcome}")
    attempt = request.headers.get("x-composio-delivery-attempt", "-")
    if outcome in _REFUSED:
        _refusals.fail(f"id={_loggable(webhook_id)} attempt={_loggable(attempt)} outcome={outcome}"
                       + (f" code={code}" if code else ""))
    elif log.isEnabledFor(logging.DEBUG):
        log.debug("composio webhook id=%s attempt=%s outcome=%s", _loggable(webhook_id), _loggable(attempt), outcome)
    now = time.monotonic()
    if now - _last_summary[0] >= _SUMMARY_EVERY:
        _last_summary[0] = now
        counts = {k.split(".", 1)[1]: v for k, v in counters.snapshot().items() if k.startswith("webhook.")}
        log.info("composio webhooks so far in this process: %s", " ".join(f"{k}={v}" for k, v in counts.items()))


def _loggable(value: str) -> str:
    return value if _PRINTABLE.match(value or "") and len(value) <= 80 else "-"


@bp.record_once
def _on_register(state) -> None:
    app = state.app
    limiter = app.extensions.get("limiter_obj")
    if limiter is not None:
        limiter.exempt(bp)  # see the module docstring: Composio's deliveries are not throttled
    if app.config.get("WEBHOOK_WARM_SDK", True):
        # Warm on the first request of any kind (a health probe, usually), not in create_app:
        # CLI commands and app creation stay free of the ~2 s import.
        from ..request_context import on_first_request
        on_first_request(app, lambda: threading.Thread(target=warm_sdk, name="composio-sdk-warm",
                                                       daemon=True).start())
