"""In-process counters for operators: webhook deliveries by outcome, reconcile runs and drift.

Deliberately tiny (a dict behind a lock): the numbers are per process and reset on restart,
which is what an operator glancing at `GET /metrics` or the logs needs. A Prometheus exporter
could read `snapshot()` later without changing any caller.
"""
from __future__ import annotations

import threading
from collections import Counter


class Counters:
    """A thread-safe registry of named monotonically increasing counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter = Counter()

    def inc(self, name: str, amount: int = 1) -> None:
        """Add `amount` (default 1) to the counter `name`, creating it at 0 if new."""
        with self._lock:
            self._values[name] += amount

    def get(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter, sorted by name (safe to serialise: names and ints only)."""
        with self._lock:
            return dict(sorted(self._values.items()))


# The process's registry. Module-level on purpose: counters are process state, like logging.
counters = Counters()

# The outcomes of a webhook delivery, named once so logs, counters and tests agree.
WEBHOOK_OUTCOMES = ("accepted", "duplicate", "unrecognised", "rejected_signature", "stale", "invalid")


def count_recorded(_ledger, envelope=None, **_kw) -> None:
    """An event_recorded receiver (the composition root connects it): events this process recorded."""
    counters.inc("ledger.events_recorded")
