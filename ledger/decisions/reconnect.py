"""Reconnect in place: whether a connection may be re-authorised, and what that records (pure)."""
from __future__ import annotations

from .. import envelope as ev
from .. import errors
from ..envelope import NewEvent
from ..projections import DISCONNECTED, DISCONNECTING, ConnectionState

RECONNECTABLE = frozenset({"EXPIRED", "FAILED", "INACTIVE"})
# Statuses that never come back through a reconnect: ours ended (or is ending) by the person's
# own choice, or the provider's grant was revoked (a new connection is the honest way back).
_ENDED = frozenset({DISCONNECTING, DISCONNECTED, "REVOKED"})


def check_reconnect(state: ConnectionState) -> None:
    """Raise unless `state` is broken in a way a re-authorisation fixes."""
    if state.status in RECONNECTABLE:
        return
    if state.status in _ENDED:
        raise errors.NotReconnectable(
            f"A {state.status} connection cannot be reconnected: start a new connection instead.",
            status=state.status)
    raise errors.InvalidState(
        f"Only an EXPIRED, FAILED or INACTIVE connection can be reconnected; this one is {state.status}.",
        status=state.status)


def reconnect_requested(state: ConnectionState, status: str) -> NewEvent:
    """The event of a refresh Composio accepted: `status` is what Composio answered (INITIATED
    while the person re-authorises; ACTIVE for schemes that need no redirect)."""
    check_reconnect(state)
    return NewEvent(ev.RECONNECT_REQUESTED, {"connection_id": state.connection_id,
                                             "previous_status": state.status, "status": status})
