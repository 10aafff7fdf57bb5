"""What reconciliation's walk of Composio's accounts finds: drift, a new account, a missing one."""
from __future__ import annotations

from .. import envelope as ev
from ..envelope import NewEvent
from ..projections import DISCONNECTED, DISCONNECTING, ConnectionState
from .common import observed

OURS = frozenset({DISCONNECTING, DISCONNECTED})   # ours to drive: never judged against Composio


def decide_drift(state: ConnectionState | None, account) -> tuple[str, NewEvent | None] | None:
    """What one Composio account (a gateway Account) tells us, given the projection: None when
    nothing drifted; ("foreign", None) for an account that is not one of our users'."""
    if state is None:
        if account.user_id is None:
            return "foreign", None
        return "observed", observed(account.id, account.user_id, account.user_id,
                                    (account.toolkit or "unknown").lower(), account.status)
    if state.status in OURS or not account.status or account.status == state.status:
        return None
    data = {"connection_id": account.id, "status": account.status}
    if account.status_reason:
        data["reason"] = str(account.status_reason)[:200]
    return "status_drift", NewEvent(ev.STATUS_OBSERVED, data)


def decide_missing(state: ConnectionState | None) -> NewEvent | None:
    """A connection Composio confirms it no longer has: DISCONNECTED, unless it is ours to drive."""
    if state is None or state.status in OURS:
        return None
    return NewEvent(ev.UPSTREAM_MISSING, {"connection_id": state.connection_id})
