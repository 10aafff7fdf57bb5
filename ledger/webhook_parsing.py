"""Composio webhook bodies -> a small, secret-free `WebhookEvent` (pure: no I/O, no clock).

A verified body is parsed once, here, into the handful of facts the ledger records. The
trigger's payload (`data` of a trigger message) and the account's `state.val` (live OAuth
tokens) are never copied into the result, so nothing downstream can store or log them.

Shapes (the composio SDK 0.29 detects versions with the same rules, see `_version`):
  V3  {"id", "timestamp", "type": "composio.…", "metadata": {...}, "data": {...}}
      connected_account.expired: data = the connected account (id, user_id, toolkit.slug,
        status_reason, state.val …); trigger.message: metadata has connected_account_id,
        user_id, trigger_slug, trigger_id; trigger.disabled: data (or metadata) has
        connected_account_id, trigger id (`trigger_id` or `id`), `trigger_slug`/`trigger_name`,
        user_id, disabled_reason.
  V2  {"type": "<trigger slug>", "timestamp", "log_id", "data": {"connection_id",
      "connection_nano_id", "trigger_id", "trigger_nano_id", "user_id", ...payload}}
  V1  {"trigger_name", "connection_id", "trigger_id", "payload", "log_id"} (no time, no user)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from .clock import UTC, iso, normalize_iso

EXPIRED = "connection_expired"
TRIGGER_MESSAGE = "trigger_message"
TRIGGER_DISABLED = "trigger_disabled"
UNRECOGNISED = "unrecognised"

V3_EXPIRED = "composio.connected_account.expired"
V3_TRIGGER_MESSAGE = "composio.trigger.message"
V3_TRIGGER_DISABLED = "composio.trigger.disabled"
_V3_KINDS = {V3_EXPIRED: EXPIRED, V3_TRIGGER_MESSAGE: TRIGGER_MESSAGE, V3_TRIGGER_DISABLED: TRIGGER_DISABLED}

# Ids become part of a stream name (`connection:<id>`): accept only what Composio's ids look like.
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_MAX_TEXT = 200


@dataclass(frozen=True)
class WebhookEvent:
    """What the ledger needs from one delivery. Never holds a payload, token or secret."""
    kind: str                       # EXPIRED | TRIGGER_MESSAGE | TRIGGER_DISABLED | UNRECOGNISED
    webhook_id: str
    type: str                       # Composio's type as sent ("" when the body has none)
    version: str                    # V1 | V2 | V3 | unknown
    occurred_at: str                # envelope form; never later than the delivery was received
    connection_id: str | None = None
    user_id: str | None = None      # Composio's user id: our COMPOSIO_USER_ID_PREFIX still on it
    toolkit: str | None = None      # lower case, like the ledger's other events
    trigger_slug: str | None = None
    trigger_id: str | None = None
    reason: str | None = None


def parse_webhook(body: dict, webhook_id: str, received_at: str) -> WebhookEvent:
    """Parse a verified, JSON-decoded body. `received_at` (envelope form) stands in for a
    missing or unreadable event time and caps a time in the future."""
    if not isinstance(body, dict):
        raise ValueError("a webhook body is a JSON object")
    version = _version(body)
    fields = {"V3": _v3, "V2": _v2, "V1": _v1}.get(version, _unknown)(body)
    kind = fields.pop("kind")
    if kind != UNRECOGNISED and not fields.get("connection_id"):
        kind = UNRECOGNISED  # nothing to attach it to; still recorded, so nothing is lost
    occurred = _time(fields.pop("time", None), received_at)
    return WebhookEvent(kind=kind, webhook_id=webhook_id, version=version, occurred_at=occurred, **fields)


def _version(body: dict) -> str:
    """The SDK's detection order: V3 envelope, then V2, then V1."""
    kind = body.get("type")
    if isinstance(kind, str) and kind.startswith("composio.") and isinstance(body.get("metadata"), dict) \
            and "id" in body and "data" in body:
        return "V3"
    data = body.get("data")
    if "type" in body and "timestamp" in body and isinstance(data, dict) and "connection_id" in data:
        return "V2"
    if all(k in body for k in ("trigger_name", "connection_id", "trigger_id", "payload")):
        return "V1"
    return "unknown"


def _v3(body: dict) -> dict:
    kind = _V3_KINDS.get(body["type"], UNRECOGNISED)
    meta = body.get("metadata") or {}
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    out = {"kind": kind, "type": _text(body["type"]), "time": body.get("timestamp")}
    if kind == EXPIRED:
        toolkit = data.get("toolkit")
        out.update(connection_id=_id(data.get("id")) or _id(meta.get("connected_account_id")),
                   user_id=_text(data.get("user_id")),
                   toolkit=_lower(toolkit.get("slug") if isinstance(toolkit, dict) else toolkit),
                   reason=_text(data.get("status_reason")))
    elif kind == TRIGGER_MESSAGE:
        slug = _text(meta.get("trigger_slug"))
        out.update(connection_id=_id(meta.get("connected_account_id")), user_id=_text(meta.get("user_id")),
                   trigger_slug=slug, trigger_id=_id(meta.get("trigger_id")), toolkit=_toolkit_of(slug))
    elif kind == TRIGGER_DISABLED:
        def pick(*names):
            return next((v for src in (data, meta) for n in names if (v := src.get(n))), None)
        slug = _text(pick("trigger_slug", "trigger_name"))
        out.update(connection_id=_id(pick("connected_account_id", "connection_id")),
                   user_id=_text(pick("user_id")), trigger_id=_id(pick("trigger_id", "id")),
                   trigger_slug=slug, toolkit=_toolkit_of(slug),
                   reason=_text(pick("disabled_reason", "reason")))
    else:
        out["connection_id"] = _id(meta.get("connected_account_id") or data.get("connected_account_id"))
    return out


def _v2(body: dict) -> dict:
    data = body["data"]
    slug = _text(body.get("type"))
    slug = slug.upper() if slug else None  # as the SDK normalises it
    return {"kind": TRIGGER_MESSAGE, "type": _text(body.get("type")) or "", "time": body.get("timestamp"),
            "connection_id": _id(data.get("connection_nano_id")) or _id(data.get("connection_id")),
            "user_id": _text(data.get("user_id")), "trigger_slug": slug, "toolkit": _toolkit_of(slug),
            "trigger_id": _id(data.get("trigger_nano_id")) or _id(data.get("trigger_id"))}


def _v1(body: dict) -> dict:
    slug = _text(body.get("trigger_name"))
    return {"kind": TRIGGER_MESSAGE, "type": "", "connection_id": _id(body.get("connection_id")),
            "trigger_slug": slug, "toolkit": _toolkit_of(slug), "trigger_id": _id(body.get("trigger_id"))}


def _unknown(body: dict) -> dict:
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    return {"kind": UNRECOGNISED, "type": _text(body.get("type")) or "", "time": body.get("timestamp"),
            "connection_id": _id(meta.get("connected_account_id") or data.get("connected_account_id")
                                 or data.get("connection_id"))}


# --- field hygiene: only short scalar strings leave this module --------------------------------

def _text(value) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return storable(value.strip())[:_MAX_TEXT]


def storable(text: str) -> str:
    """`text` with what no column or hash can hold written out as escapes: a NUL (PostgreSQL's
    text refuses it) becomes `\\u0000` and a lone surrogate (no UTF-8 can encode it) `\\ud800`.
    A verified delivery is a fact from Composio: it is recorded legibly, never refused for this."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text




def _id(value) -> str | None:
    return value if isinstance(value, str) and _ID.match(value) else None


def _lower(value) -> str | None:
    text = _text(value)
    return text.lower() if text else None


def _toolkit_of(slug: str | None) -> str | None:
    """GITHUB_COMMIT_EVENT -> github (the SDK's rule: the part before the first underscore)."""
    return slug.split("_", 1)[0].lower() if slug and "_" in slug else None


def _time(value, received_at: str) -> str:
    """The event's time in envelope form; unreadable -> received_at; later than received_at
    (clock skew, or a bad value) -> received_at, so it cannot block later status changes."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            when = iso(datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC))
        elif isinstance(value, str):
            when = normalize_iso(value)
        else:
            return received_at
    except (ValueError, OverflowError, OSError):
        return received_at
    return min(when, received_at)
