"""Signing Composio webhooks exactly as Composio does, for tests.

Composio signs `f"{webhook_id}.{timestamp}.{body}"` with HMAC-SHA256 keyed by the secret's
UTF-8 bytes, and sends `webhook-signature: v1,<base64 digest>`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid


def sign(secret: str, webhook_id: str, timestamp: str, body: str | bytes) -> str:
    """The `webhook-signature` header value for this delivery."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    digest = hmac.new(secret.encode("utf-8"), f"{webhook_id}.{timestamp}.{text}".encode("utf-8"),
                      hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def new_id() -> str:
    return f"msg_{uuid.uuid4()}"


def delivery(secret: str, payload, webhook_id: str | None = None, timestamp: int | None = None,
             attempt: int = 1, version: str = "V3") -> tuple[bytes, dict]:
    """(body bytes, headers) for one signed delivery. `payload` may be a dict or raw text."""
    webhook_id = webhook_id or (payload.get("id") if isinstance(payload, dict) and payload.get("id") else new_id())
    ts = str(int(time.time()) if timestamp is None else timestamp)
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    body_bytes = body.encode("utf-8") if isinstance(body, str) else body
    headers = {"webhook-id": webhook_id, "webhook-timestamp": ts,
               "webhook-signature": sign(secret, webhook_id, ts, body_bytes),
               "x-composio-webhook-version": version, "x-composio-delivery-attempt": str(attempt),
               "content-type": "application/json"}
    return body_bytes, headers


# -- payloads as Composio sends them (V3 unless named otherwise) ------------------------------------

def expired(connection_id: str, user_id: str, toolkit: str = "github", when: str = "2026-01-01T00:00:00.000Z",
            msg_id: str | None = None, access_token: str = "ya29.live-token") -> dict:
    return {"id": msg_id or new_id(), "timestamp": when, "type": "composio.connected_account.expired",
            "metadata": {"project_id": "pr_1", "org_id": "ok_1"},
            "data": {"id": connection_id, "user_id": user_id, "status": "EXPIRED",
                     "status_reason": "refresh token revoked", "toolkit": {"slug": toolkit},
                     "auth_config": {"id": "ac_1", "auth_scheme": "OAUTH2", "is_composio_managed": True,
                                     "is_disabled": False},
                     "created_at": "2025-12-01T00:00:00Z", "updated_at": when,
                     "state": {"authScheme": "OAUTH2", "val": {"status": "EXPIRED", "access_token": access_token,
                                                                "refresh_token": "1//refresh-secret"}},
                     "data": {}, "params": {}, "is_disabled": False}}


def trigger_message(connection_id: str, user_id: str, slug: str = "GITHUB_COMMIT_EVENT",
                    when: str = "2026-01-01T00:00:00.000Z", data: dict | None = None) -> dict:
    return {"id": new_id(), "timestamp": when, "type": "composio.trigger.message",
            "metadata": {"log_id": "log_1", "trigger_slug": slug, "trigger_id": "ti_1",
                         "connected_account_id": connection_id, "auth_config_id": "ac_1", "user_id": user_id},
            "data": data if data is not None else {"message": "fix typo", "author": "ann"}}


def trigger_disabled(connection_id: str, user_id: str, when: str = "2026-01-01T00:00:00.000Z") -> dict:
    return {"id": new_id(), "timestamp": when, "type": "composio.trigger.disabled",
            "metadata": {"project_id": "pr_1"},
            "data": {"id": "ti_9", "connected_account_id": connection_id, "trigger_name": "GMAIL_NEW_GMAIL_MESSAGE",
                     "user_id": user_id, "disabled_reason": "connection_expired"}}
