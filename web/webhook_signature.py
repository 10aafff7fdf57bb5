"""Verifying a Composio webhook's signature with the composio SDK's own `verify_webhook`,
imported lazily (the package costs ~2 s to import). A refusal is `Rejected`, carrying the
counter name and the error the blueprint answers with."""
from __future__ import annotations

import contextvars
import functools
import logging

from .errors import ApiError

log = logging.getLogger("web.webhooks")


class Rejected(Exception):
    """A delivery refused before anything was recorded; `outcome` is its counter name."""

    def __init__(self, outcome: str, status: int, code: str, message: str):
        super().__init__(message)
        self.outcome, self.error = outcome, ApiError(status, code, message)


@functools.cache
def _sdk():
    """The SDK's Triggers (for verify_webhook), its exceptions and its telemetry switch.

    `import composio` costs ~2 s and every module path that holds verify_webhook imports the
    whole package, so this runs on first use (and is warmed at start-up in a thread).
    Triggers is built without __init__: verification needs no HTTP client, and building one
    would mean constructing a whole Composio client on the webhook path."""
    from composio import exceptions
    from composio.core.models.base import allow_tracking
    from composio.core.models.triggers import Triggers
    return Triggers.__new__(Triggers), exceptions, allow_tracking


def verify_signature(body: str, webhook_id: str, timestamp: str, signature: str, secrets: list[str], tolerance: int):
    """The SDK-parsed raw payload if one of `secrets` signed it; None if signed but not a known
    V1/V2/V3 shape (or not JSON); Rejected otherwise. The SDK takes one secret per call, so
    rotation means trying each; a timestamp the SDK would refuse was rejected before this."""
    triggers, exc, allow_tracking = _sdk()

    def attempt():
        # The SDK wraps verify_webhook in telemetry that POSTs to Composio's host from a
        # background thread. Its switch is a ContextVar (default on), which
        # Composio(allow_tracking=False) sets only in the thread that built the client, so it is
        # switched off here, in a copied context, for this call only.
        allow_tracking.set(False)
        for secret in secrets:
            try:
                return triggers.verify_webhook(id=webhook_id, payload=body, secret=secret,
                                               signature=signature, timestamp=timestamp,
                                               tolerance=tolerance)["raw_payload"]
            except exc.WebhookSignatureVerificationError:
                continue
            except (exc.WebhookPayloadError, RecursionError):
                return None  # raised only after the signature matched (json.loads of the body)
        raise Rejected("rejected_signature", 401, "INVALID_SIGNATURE", "The webhook signature is not valid.")
    return contextvars.copy_context().run(attempt)


def warm_sdk() -> None:
    try:
        _sdk()
    except Exception:  # the first delivery will try again and report the error properly
        log.exception("warming the composio SDK failed")
