"""Recording Composio webhooks: one write transaction per delivery, at most once per webhook-id.

The dedupe check, the events and the idempotency record commit together, and writers take turns
on the chain lock, so any number of concurrent redeliveries of one webhook-id record it once.
Late or out-of-order events are recorded as they come: the projection decides whether they move
a connection (`_set_status` ignores reports older than the last change, and nothing changes a
DISCONNECTED connection), so the ledger keeps the whole story and the state never goes back.
"""
from __future__ import annotations

import logging

from . import envelope as ev
from . import errors
from .envelope import Actor, NewEvent, connection_stream
from .service import make_meta
from .storage.unit_of_work import Prefetch, fitted_key
from .webhooks import EXPIRED, TRIGGER_DISABLED, TRIGGER_MESSAGE, UNRECOGNISED, WebhookEvent

log = logging.getLogger("ledger.ingest")

COMPOSIO = Actor("composio", "webhook")
WEBHOOK_STREAM = "webhooks"
ACCEPTED, DUPLICATE = "accepted", "duplicate"


def idempotency_key(webhook_id: str) -> str:
    """`webhook:<id>` (hashed if too long for the key column)."""
    return fitted_key("webhook", webhook_id)


class Ingest:
    """Records verified webhook events in the ledger."""

    def __init__(self, ledger, user_id_prefix: str = ""):
        self.ledger = ledger
        self.prefix = user_id_prefix or ""

    def record(self, hook: WebhookEvent, trace_id: str | None = None) -> str:
        """Record one delivery; returns "accepted", "duplicate" or "unrecognised"."""
        try:
            return self._record(hook, trace_id)
        except errors.ConcurrencyError:
            # Two deliveries raced past the dedupe read into the unique key: the loser retries
            # once and now reads the winner's key, so it answers "duplicate".
            return self._record(hook, trace_id)

    def _record(self, hook: WebhookEvent, trace_id: str | None) -> str:
        key = idempotency_key(hook.webhook_id)
        cid = hook.connection_id
        wanted = Prefetch(streams=(connection_stream(cid) if cid else WEBHOOK_STREAM,), connections=(cid,), keys=(key,))
        with self.ledger.transaction(prefetch=wanted) as txn:
            if txn.idempotent_result(key) is not None:
                return DUPLICATE  # the first delivery's events stand; this one records nothing
            outcome, stream, events, tenant = self._decide(txn, hook)
            txn.append(stream, events, meta=make_meta(COMPOSIO, tenant, trace_id),
                       idempotency_key=key, response=outcome)
        return outcome

    # -- decisions (read the projection inside the transaction) --------------------------------
    def _decide(self, txn, hook: WebhookEvent) -> tuple[str, str, list[NewEvent], str | None]:
        if hook.kind == UNRECOGNISED:
            return self._unrecognised(hook)
        state = txn.connection(hook.connection_id)
        if hook.kind == EXPIRED:
            if state is None:
                owner = self.owner(hook.user_id)
                if owner is None:
                    # Not one of our users (another app sharing the Composio project): keep the
                    # fact, but do not adopt someone else's connection into our projection.
                    return self._unrecognised(hook, "foreign_user")
                return ACCEPTED, connection_stream(hook.connection_id), \
                    [self._observed(hook, owner), self._expired(hook)], owner
            return ACCEPTED, connection_stream(hook.connection_id), [self._expired(hook)], state.tenant
        tenant = state.tenant if state else self.owner(hook.user_id)
        if hook.kind == TRIGGER_MESSAGE:
            data = {"connection_id": hook.connection_id, "trigger_slug": hook.trigger_slug, "at": hook.occurred_at}
            return ACCEPTED, connection_stream(hook.connection_id), \
                [NewEvent(ev.USED, data, occurred_at=hook.occurred_at)], tenant
        if hook.kind == TRIGGER_DISABLED:
            data = _compact({"connection_id": hook.connection_id, "trigger_id": hook.trigger_id,
                             "trigger_slug": hook.trigger_slug, "reason": hook.reason})
            return ACCEPTED, connection_stream(hook.connection_id), \
                [NewEvent(ev.TRIGGER_DISABLED, data, occurred_at=hook.occurred_at)], tenant
        return self._unrecognised(hook)

    def _observed(self, hook: WebhookEvent, owner: str) -> NewEvent:
        # occurred_at = the webhook's time, not "now": the projection ignores a status report
        # older than the connection's last change, so the expiry must not predate its birth.
        data = {"connection_id": hook.connection_id, "user_id": owner, "tenant": owner,
                "toolkit": hook.toolkit or "unknown", "status": "ACTIVE"}
        return NewEvent(ev.OBSERVED, data, occurred_at=hook.occurred_at)

    @staticmethod
    def _expired(hook: WebhookEvent) -> NewEvent:
        data = _compact({"connection_id": hook.connection_id, "reason": hook.reason})
        return NewEvent(ev.EXPIRED, data, occurred_at=hook.occurred_at)

    @staticmethod
    def _unrecognised(hook: WebhookEvent, why: str | None = None):
        data = _compact({"type": hook.type, "webhook_id": hook.webhook_id,
                         "connection_id": hook.connection_id, "reason": why})
        return UNRECOGNISED, WEBHOOK_STREAM, [NewEvent(ev.WEBHOOK_UNRECOGNISED, data, occurred_at=hook.occurred_at)], None

    def owner(self, composio_user_id: str | None) -> str | None:
        """Our user id: Composio's with COMPOSIO_USER_ID_PREFIX removed; None if not ours."""
        if not composio_user_id or not composio_user_id.startswith(self.prefix):
            return None
        return composio_user_id[len(self.prefix):] or None


def _compact(d: dict) -> dict:
    """Leave out unknown fields, so the hashed payload holds only facts."""
    return {k: v for k, v in d.items() if v is not None}
