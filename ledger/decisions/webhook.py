"""What one verified Composio webhook delivery records."""
from __future__ import annotations

from dataclasses import dataclass

from .. import envelope as ev
from ..envelope import NewEvent, connection_stream
from ..projections import ConnectionState
from ..users import our_user_id
from ..webhook_parsing import EXPIRED, TRIGGER_DISABLED, TRIGGER_MESSAGE, UNRECOGNISED, WebhookEvent
from .common import _compact, observed

WEBHOOK_STREAM = "webhooks"
ACCEPTED, DUPLICATE = "accepted", "duplicate"


@dataclass(frozen=True)
class WebhookDecision:
    outcome: str           # accepted | unrecognised
    stream: str
    events: tuple
    tenant: str | None


def decide_webhook(state: ConnectionState | None, hook: WebhookEvent, user_id_prefix: str = "") -> WebhookDecision:
    """What one verified delivery records. Late or out-of-order events are recorded as they come:
    the projection decides whether they move a connection, so the ledger keeps the whole story."""
    if hook.kind == UNRECOGNISED:
        return _unrecognised(hook)
    stream = connection_stream(hook.connection_id)
    if hook.kind == EXPIRED:
        expired = NewEvent(ev.EXPIRED, _compact({"connection_id": hook.connection_id, "reason": hook.reason}),
                           occurred_at=hook.occurred_at)
        if state is not None:
            return WebhookDecision(ACCEPTED, stream, (expired,), state.tenant)
        owner = our_user_id(hook.user_id, user_id_prefix)
        if owner is None:
            # Not one of our users (another app sharing the Composio project): keep the fact,
            # but do not adopt someone else's connection into our projection.
            return _unrecognised(hook, "foreign_user")
        # occurred_at = the webhook's time, not "now": the projection ignores a status report
        # older than the connection's last change, so the expiry must not predate its birth.
        return WebhookDecision(ACCEPTED, stream, (observed(hook.connection_id, owner, owner, hook.toolkit, "ACTIVE",
                                                           hook.occurred_at), expired), owner)
    tenant = state.tenant if state else our_user_id(hook.user_id, user_id_prefix)
    if hook.kind == TRIGGER_MESSAGE:
        data = {"connection_id": hook.connection_id, "trigger_slug": hook.trigger_slug, "at": hook.occurred_at}
        return WebhookDecision(ACCEPTED, stream, (NewEvent(ev.USED, data, occurred_at=hook.occurred_at),), tenant)
    if hook.kind == TRIGGER_DISABLED:
        data = _compact({"connection_id": hook.connection_id, "trigger_id": hook.trigger_id,
                         "trigger_slug": hook.trigger_slug, "reason": hook.reason})
        return WebhookDecision(ACCEPTED, stream, (NewEvent(ev.TRIGGER_DISABLED, data, occurred_at=hook.occurred_at),),
                               tenant)
    return _unrecognised(hook)


def _unrecognised(hook: WebhookEvent, why: str | None = None) -> WebhookDecision:
    data = _compact({"type": hook.type, "webhook_id": hook.webhook_id, "connection_id": hook.connection_id,
                     "reason": why})
    return WebhookDecision(UNRECOGNISED, WEBHOOK_STREAM,
                           (NewEvent(ev.WEBHOOK_UNRECOGNISED, data, occurred_at=hook.occurred_at),), None)
