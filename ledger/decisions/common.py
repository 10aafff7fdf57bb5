"""What several decisions share: the one OBSERVED payload."""
from __future__ import annotations

from .. import envelope as ev
from ..envelope import NewEvent


def observed(connection_id: str, user_id: str, tenant: str, toolkit: str | None, status: str | None,
             occurred_at: str | None = None) -> NewEvent:
    """A connection the ledger meets for the first time (a lookup, a webhook, reconciliation)."""
    data = {"connection_id": connection_id, "user_id": user_id, "tenant": tenant,
            "toolkit": toolkit or "unknown", "status": status or "ACTIVE"}
    return NewEvent(ev.OBSERVED, data, occurred_at=occurred_at)


def _compact(d: dict) -> dict:
    """Leave out unknown fields, so the hashed payload holds only facts."""
    return {k: v for k, v in d.items() if v is not None}
