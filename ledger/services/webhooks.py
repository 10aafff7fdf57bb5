"""Recording Composio webhooks: one write transaction per delivery, at most once per webhook-id.

The dedupe check, the events and the idempotency record commit together, so any number of
concurrent redeliveries of one webhook-id record it once. What a delivery means is decided
purely (decisions.decide_webhook); late or out-of-order events are recorded as they come, and
the projection decides whether they move a connection.
"""
from __future__ import annotations

import logging

from .. import errors
from ..decisions import ACCEPTED, DUPLICATE, WEBHOOK_STREAM, decide_webhook
from ..envelope import Actor, connection_stream
from ..service import make_meta
from ..storage.unit_of_work import Prefetch, fitted_key
from ..webhook_parsing import WebhookEvent
from .idempotency import earlier_use

log = logging.getLogger("ledger.ingest")

COMPOSIO = Actor("composio", "webhook")
__all__ = ["ACCEPTED", "DUPLICATE", "WEBHOOK_STREAM", "Ingest", "idempotency_key"]


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
            if earlier_use(txn, key) is not None:
                return DUPLICATE  # the first delivery's events stand; this one records nothing
            decision = decide_webhook(txn.connection(cid) if cid else None, hook, self.prefix)
            txn.append(decision.stream, list(decision.events), meta=make_meta(COMPOSIO, decision.tenant, trace_id),
                       idempotency_key=key, response=decision.outcome)
        return decision.outcome
