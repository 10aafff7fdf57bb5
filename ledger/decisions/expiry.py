"""Warn before it breaks: whether a connection's credential expiry is due an announcement (pure)."""
from __future__ import annotations

from .. import envelope as ev
from ..clock import parse_iso, plus_seconds
from ..envelope import NewEvent
from ..projections import ConnectionState

# Only a working connection is worth a warning: a broken one has said so already.
WARNED_STATUSES = frozenset({"ACTIVE"})


def decide_expiring(state: ConnectionState | None, bound: tuple, now: str, window_seconds: float) -> NewEvent | None:
    """connection.expiring once per expiry: when it falls within `window_seconds` of `now`, and
    that expiry has not been announced (a reconnect brings a new expiry, warned about afresh).
    Quiet when Composio gave no expiry."""
    if state is None or not state.expires_at or state.status not in WARNED_STATUSES:
        return None
    if state.expiry_warned_for == state.expires_at or state.expires_at > plus_seconds(now, window_seconds):
        return None
    left = (parse_iso(state.expires_at) - parse_iso(now)).total_seconds()
    return NewEvent(ev.EXPIRING, {"connection_id": state.connection_id, "expires_at": state.expires_at,
                                  "seconds_left": max(0, int(left)), "agents": [b.agent_id for b in bound]})
