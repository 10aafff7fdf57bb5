"""One log line per incident, not one per request: a failure that repeats on every request (the
rate limiter's storage down, a flood of unsigned webhooks) is logged when it starts, summarised
at most once a minute while it lasts, and once more when it ends; a counter counts every one."""
from __future__ import annotations

import logging
import threading
import time

from ledger.metrics import counters


class Incident:
    """Failures of one kind in this process. `fail` on each, `ok` when the thing works again."""

    def __init__(self, log: logging.Logger, what: str, counter: str, every: float = 60.0):
        self.log, self.what, self.counter, self.every = log, what, counter, every
        self._lock = threading.Lock()
        self.active, self.since, self.total = False, None, 0
        self._last_line, self._last_fail, self._unreported = 0.0, 0.0, 0

    def fail(self, detail: str) -> None:
        counters.inc(self.counter)
        now = time.monotonic()
        with self._lock:
            self.total += 1
            quiet = now - self._last_fail >= self.every  # a minute without one: a new incident
            self._last_fail = now
            if not self.active or quiet:
                self.active, self.since, self._last_line, self._unreported = True, time.time(), now, 0
                line = f"{self.what}: {detail}"
            elif now - self._last_line >= self.every:
                line = f"{self.what}: still happening, {self._unreported + 1} more since the last line ({detail})"
                self._last_line, self._unreported = now, 0
            else:
                self._unreported += 1
                return
        self.log.warning(line)

    def ok(self) -> None:
        with self._lock:
            if not self.active:
                return
            self.active = False
            lasted = time.time() - (self.since or time.time())
        self.log.warning("%s: recovered after %.0f s", self.what, lasted)

    def state(self) -> dict:
        with self._lock:
            return {"failing": self.active, "failures": self.total}
