"""The connection's life after it is made: the expiry warner, run from the relay's loop.

A connection whose credential expires within EXPIRY_WARNING_SECONDS is announced once as
connection.expiring (with the agents bound to it) so the app can ask the person to reconnect
before agents fail. The event is in the ledger, so the SSE stream and the outgoing webhooks
carry it like any other; the projection remembers which expiry was announced.
"""
from __future__ import annotations

import logging
import time

from ..clock import iso, now as clock_now, plus_seconds
from ..decisions.expiry import WARNED_STATUSES, decide_expiring
from ..envelope import Actor, connection_stream
from ..service import make_meta
from ..storage.unit_of_work import Prefetch

log = logging.getLogger("ledger.lifecycle")
_WARNER = Actor("system", "expiry-warner")


class ExpiryWarner:
    """Announces credentials about to expire; `maybe_warn` is given a turn each relay pass."""

    def __init__(self, ledger, window_seconds: float, every_seconds: float = 30.0):
        self.ledger, self.window, self.every = ledger, window_seconds, every_seconds
        self._next = 0.0

    def maybe_warn(self) -> int:
        """warn_due(now), at most once every `every_seconds` (a relay passes about once a second)."""
        if time.monotonic() < self._next:
            return 0
        self._next = time.monotonic() + self.every
        return self.warn_due(iso(clock_now()))

    def warn_due(self, now: str) -> int:
        """Record connection.expiring for each connection due one; how many were announced."""
        if self.window <= 0:
            return 0
        due = self.ledger.store.expiring_connections(plus_seconds(now, self.window), sorted(WARNED_STATUSES))
        warned = 0
        for cid in due:
            warned += self._warn(cid, now)
        return warned

    def _warn(self, cid: str, now: str) -> int:
        """One connection, in its own transaction: decided again on what it locked, so two relays
        racing announce it once (the loser finds the expiry already announced)."""
        with self.ledger.transaction(prefetch=Prefetch(streams=(connection_stream(cid),), connections=(cid,),
                                                       bindings=(cid,))) as txn:
            state = txn.connection(cid)
            event = decide_expiring(state, txn.bindings_of(cid), now, self.window)
            if event is None:
                return 0
            txn.append(connection_stream(cid), [event], meta=make_meta(_WARNER, state.tenant))
        log.info("connection %s: credential expires at %s, announced", cid, event.data["expires_at"])
        return 1
