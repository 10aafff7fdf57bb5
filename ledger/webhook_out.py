"""Outgoing lifecycle webhooks, the pure parts: what a connection event is called for the app's
backend, the body it receives, and the Standard Webhooks signature over it.

Standard Webhooks (https://www.standardwebhooks.com): the secret is `whsec_` + base64 of the key
bytes; the signature is `v1,` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), sent in
`webhook-signature` beside `webhook-id` (the same on every retry) and `webhook-timestamp`
(seconds, of this attempt). Composio's own inbound scheme keys the HMAC with the secret's UTF-8
text instead (DESIGN.md): the two must not be confused, so this module never shares code with it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from . import envelope as ev

SECRET_PREFIX = "whsec_"
KEY_BYTES = 32

# The ledger's event types as the app's backend hears them. Anything not named here is sent
# under its ledger name (every type is a connection.* name already): nothing is held back, so a
# receiver's per-connection `version` has no holes.
PUBLIC_TYPES = {
    ev.INITIATED: "connection.initiated",
    ev.ACTIVATED: "connection.activated",
    ev.FAILED: "connection.failed",
    ev.EXPIRED: "connection.expired",
    ev.OBSERVED: "connection.discovered",
    ev.STATUS_OBSERVED: "connection.status_changed",
    ev.USED: "connection.used",
    ev.TRIGGER_DISABLED: "connection.trigger_disabled",
    ev.DISCONNECT_REQUESTED: "connection.disconnect_requested",
    ev.DISCONNECT_CANCELLED: "connection.restored",
    ev.DISCONNECT_COMPLETED: "connection.disconnected",
    ev.UPSTREAM_DISABLED: "connection.upstream_disabled",
    ev.UPSTREAM_ENABLED: "connection.upstream_enabled",
    ev.UPSTREAM_REVOKED: "connection.grant_revoked",
    ev.UPSTREAM_DELETED: "connection.upstream_deleted",
    ev.UPSTREAM_MISSING: "connection.upstream_missing",
    ev.UPSTREAM_NOT_FOUND: "connection.upstream_not_found",
    ev.PROVIDER_ACTION_FAILED: "connection.upstream_failed",
    ev.PROVIDER_ACTION_DEAD_LETTERED: "connection.upstream_dead_lettered",
    ev.AGENT_BOUND: "connection.agent_bound",
    ev.AGENT_UNBOUND: "connection.agents_unbound",
    ev.RECONNECT_REQUESTED: "connection.reconnect_requested",
    ev.EXPIRING: "connection.expiring",
}

# What of an event's data a receiver gets, per type: named fields only (an event's data never
# holds a secret, and a whitelist keeps it that way should one ever gain a field).
_DETAILS = {
    ev.EXPIRED: ("reason",),
    ev.FAILED: ("reason",),
    ev.STATUS_OBSERVED: ("status", "previous_status"),
    ev.TRIGGER_DISABLED: ("trigger_id", "trigger_slug", "reason"),
    ev.USED: ("trigger_slug", "at"),
    ev.DISCONNECT_REQUESTED: ("purge_at", "immediate", "forced", "agents", "previous_status"),
    ev.DISCONNECT_COMPLETED: ("outcome", "reason"),
    ev.UPSTREAM_REVOKED: ("supported", "revoked", "reason"),
    ev.UPSTREAM_NOT_FOUND: ("action", "outcome"),
    ev.PROVIDER_ACTION_FAILED: ("action", "attempt", "error", "retry_at"),
    ev.PROVIDER_ACTION_DEAD_LETTERED: ("action", "attempts", "error"),
    ev.AGENT_BOUND: ("agent_id",),
    ev.AGENT_UNBOUND: ("agent_id", "reason"),
    ev.RECONNECT_REQUESTED: ("previous_status",),
    ev.EXPIRING: ("expires_at", "seconds_left", "agents"),
}
_RECONNECT_STATUSES = frozenset({"EXPIRED", "FAILED", "INACTIVE"})


def public_type(ledger_type: str) -> str:
    return PUBLIC_TYPES.get(ledger_type, ledger_type)


def event_types() -> list[str]:
    """Every name a receiver may filter on (eventTypes at registration)."""
    return sorted(set(PUBLIC_TYPES.values()))


def new_secret() -> str:
    """A fresh signing secret as shown to the app once: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def key_of(secret: str) -> bytes:
    """The HMAC key: the base64-decoded part after `whsec_` (what the spec keys with)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode("utf-8") + body
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, msg_id, timestamp, body),
            "content-type": "application/json", "user-agent": "connection-ledger-webhooks/1"}


def message_id(endpoint_id: str, stream: str, version: int) -> str:
    """The `webhook-id`: one per (endpoint, event), the same on every retry and redelivery."""
    digest = hashlib.sha256(f"{endpoint_id}\n{stream}\n{version}".encode("utf-8")).hexdigest()
    return "msg_" + digest[:32]


def payload(env: ev.Envelope, state) -> dict:
    """The body without seq, prev_hash and hash (known only once the event is sealed: filled in
    at delivery by `body`). `state` is the connection as this event left it."""
    cid = env.connection_id
    details = {k: env.data[k] for k in _DETAILS.get(env.type, ()) if k in env.data}
    out = {"type": public_type(env.type), "ledger_type": env.type, "connection_id": cid,
           "user_id": getattr(state, "user_id", None), "toolkit": getattr(state, "toolkit", None),
           "status": getattr(state, "status", None), "version": env.version,
           "occurred_at": env.occurred_at, "data": details}
    if env.type in (ev.EXPIRED, ev.EXPIRING) or (env.type in (ev.FAILED, ev.STATUS_OBSERVED)
                                  and out["status"] in _RECONNECT_STATUSES):
        out["reconnect"] = {"method": "POST", "path": f"/api/connections/{cid}/reconnect",
                            "hint": "ask the user to reconnect; the connection keeps its id"}
    return out


def with_revoked(out: dict, revoked: dict | None) -> dict:
    """connection.disconnected carries what was revoked at the provider (the revoke event's data)."""
    if revoked is not None:
        out["data"]["revoked"] = {"supported": revoked.get("supported"), "kinds": revoked.get("revoked", []),
                                  **({"reason": revoked["reason"]} if revoked.get("reason") else {})}
    return out


def body(stored_payload: str, *, msg_id: str, seq: int, prev_hash: str, hash_: str, tenant: str) -> bytes:
    """The exact bytes sent (and signed): the stored payload plus the sealed event's place in the
    chain. Deterministic, so a retry sends the same bytes."""
    out = json.loads(stored_payload)
    out.update({"id": msg_id, "tenant": tenant, "seq": seq, "prev_hash": prev_hash, "hash": hash_})
    return json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
