"""The process's live side: one Feed (ledger/feed.py) of recent events for the streams and
`?wait` reads, the connection-state-as-of cache they render with, and the in-process gate that
lets one waiter per interval ask Composio for news. Built once per app by the composition root
(web/bootstrap.py), which also subscribes the feed to `event_recorded`; the blueprints only read it."""
from __future__ import annotations

import threading
import time

from flask import Flask, current_app

from ledger.feed import Feed
from ledger.stream_states import StatesAt


class Live:
    """One app's feed, its states-as-of cache and its in-process poll gate."""

    def __init__(self, app: Flask, store):
        self.store = store
        self.states = StatesAt(store)
        self.feed = Feed(store, audience=self.states.audience,
                         check_seconds=float(app.config.get("FEED_CHECK_SECONDS", 1.0)))
        self.heartbeat = float(app.config.get("SSE_HEARTBEAT_SECONDS", 15.0))
        self.poll_interval = float(app.config["POLL_INTERVAL_SECONDS"])
        self._due: dict[str, float] = {}
        self._lock = threading.Lock()

    def poll_wait(self, cid: str) -> float:
        """Seconds until this process may ask for news of `cid` again."""
        with self._lock:
            due = self._due.setdefault(cid, time.monotonic() + self.poll_interval)
        return max(0.0, due - time.monotonic())

    def claim_poll(self, cid: str) -> bool:
        """One waiter per process per interval asks (the ledger's polls row bounds all processes)."""
        now = time.monotonic()
        with self._lock:
            if now < self._due.get(cid, 0.0):
                return False
            self._due[cid] = now + self.poll_interval
            if len(self._due) > 10_000:
                self._due = {k: v for k, v in self._due.items() if v > now}
            return True


def live() -> Live:
    """The current app's Live."""
    return current_app.extensions["live"]
