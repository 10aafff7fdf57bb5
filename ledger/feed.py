"""The ledger's live feed: one wake source per process, and a window of recent events that
every waiter reads from memory.

Waiters (an SSE stream, a `?wait` request) never query the table to learn that something
happened: one thread per process is woken, reads what is new once, and wakes them all. It runs
only while someone waits and stops IDLE_STOP_SECONDS after the last one left, so an idle
process holds no database connection for the feed.

Wake sources. PostgreSQL: one LISTEN connection on `ledger_sequenced` (CHANNEL): the writer,
or the sequencer once there is one, sends `NOTIFY ledger_sequenced, '<last seq>'` when events
become visible in the chain. SQLite: the in-process `event_recorded` signal, plus one check
every `check_seconds` for writers in other processes on the same file (per process, never per
waiter). Either way the thread then reads `read_after(head)`: events enter the window in seq
order without gaps, whatever order the wake-ups came in.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from itertools import islice
from typing import Iterator

from .envelope import Envelope
from .errors import StorageError
from .signals import event_recorded

log = logging.getLogger("ledger.feed")

CHANNEL = "ledger_sequenced"
WINDOW = 4096            # recent events kept in memory; a waiter further behind reads the table
PAGE = 1000
IDLE_STOP_SECONDS = 30.0
RETRY_SECONDS = 1.0


class Feed:
    """The process's wake source and window of recent events for one ledger store."""

    def __init__(self, store, *, sender=None, check_seconds: float = 1.0,
                 idle_stop: float = IDLE_STOP_SECONDS, window: int = WINDOW):
        self.store = store
        self.check_seconds, self.idle_stop = check_seconds, idle_stop
        self._postgres = store.engine.dialect.name == "postgresql"
        self._cond = threading.Condition()
        self._window: deque[Envelope] = deque(maxlen=window)
        self._head: int | None = None       # None while the thread is not running
        self._waiters = 0
        self._left_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._kick = threading.Event()
        self._closed = False
        if sender is not None and not self._postgres:
            # weak=False: the feed lives as long as its app; a weak bound method could vanish.
            event_recorded.connect(self._on_recorded, sender=sender, weak=False)
            self._sender = sender

    # -- waiting --------------------------------------------------------------------------
    @contextmanager
    def subscription(self) -> Iterator["Feed"]:
        """Hold this while waiting: the wake source runs while anyone holds one."""
        with self._cond:
            self._waiters += 1
            self._ensure_running()
        try:
            yield self
        finally:
            with self._cond:
                self._waiters -= 1
                self._left_at = time.monotonic()

    def head(self, timeout: float = 10.0) -> int:
        """The last seq the feed has seen (after its first read, which a new thread does first)."""
        with self._cond:
            self._cond.wait_for(lambda: self._head is not None or self._closed, timeout)
            if self._head is None:  # its first read keeps failing: the database is away
                raise StorageError("the ledger feed could not read the chain")
            return self._head

    def events_after(self, seq: int, timeout: float, limit: int = PAGE) -> list[Envelope] | None:
        """Events with a seq above `seq`, waiting up to `timeout` for one; [] if none came.
        None when they are no longer (or not yet) in the window: read them from the store."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._head is not None and self._head > seq), timeout)
            if self._closed or self._head is None or self._head <= seq:
                return []
            window = self._window
            if not window or window[0].seq > seq + 1:
                return None
            start = seq + 1 - window[0].seq  # seqs are gap-free, so position = distance
            return list(islice(window, start, start + limit))

    @property
    def running(self) -> bool:
        """Whether this process's wake source (thread, and LISTEN connection) is up."""
        with self._cond:
            return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop the thread and wake every waiter (they see no more events)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._kick.set()
        if getattr(self, "_sender", None) is not None:
            event_recorded.disconnect(self._on_recorded, sender=self._sender)

    # -- the one thread -------------------------------------------------------------------
    def _on_recorded(self, _sender, **_kw) -> None:
        self._kick.set()

    def _ensure_running(self) -> None:
        if self._pid != os.getpid():  # forked (gunicorn --preload): the parent's thread is not ours
            self._pid, self._thread, self._head = os.getpid(), None, None
            self._window.clear()
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="ledger-feed", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        listener = None
        try:
            while True:
                try:
                    if self._postgres and listener is None:
                        listener = self._listen()  # LISTEN first, then read: nothing falls between
                    self._catch_up()
                    if self._should_stop():
                        return
                    self._wait_for_news(listener)
                except Exception as exc:  # the database went away: retry, waiters keep waiting
                    log.warning("ledger feed: %s; retrying", type(exc).__name__)
                    if listener is not None:
                        listener.close()
                        listener = None
                    if self._should_stop():
                        return
                    time.sleep(RETRY_SECONDS)
        finally:
            if listener is not None:
                listener.close()

    def _listen(self):
        from .pg_listen import PgListener
        return PgListener(self.store.engine, CHANNEL)

    def _wait_for_news(self, listener) -> None:
        if listener is not None:
            while not listener.wait(self.check_seconds):
                if self._should_stop():
                    return
            return
        self._kick.wait(self.check_seconds)  # SQLite: a signal, or the once-a-second check
        self._kick.clear()

    def _should_stop(self) -> bool:
        with self._cond:
            idle = self._waiters == 0 and time.monotonic() - self._left_at > self.idle_stop
            if self._closed or idle:
                self._thread, self._head = None, None
                self._window.clear()
                return True
        return False

    def _catch_up(self) -> None:
        if self._head is None:
            head = self.store.head()[0]
            with self._cond:
                self._head = head
                self._cond.notify_all()
        while True:
            found = self.store.read_after(self._head, PAGE)
            if not found:
                return
            with self._cond:
                self._window.extend(found)
                self._head = found[-1].seq
                self._cond.notify_all()
            if len(found) < PAGE:
                return
