"""The ledger's live feed: one wake source per process, and a window of recent events that
every waiter reads from memory.

Waiters (an SSE stream, a `?wait` request) never query the table to learn that something
happened: one thread per process is woken, reads what is new once, and wakes them all. It runs
only while someone waits and stops IDLE_STOP_SECONDS after the last one left, so an idle
process holds no database connection for the feed.

Wake sources. PostgreSQL: one LISTEN connection on `ledger_sequenced` (CHANNEL): the writer,
or the sequencer once there is one, sends `NOTIFY ledger_sequenced, '<last seq>'` when events
become visible in the chain. SQLite: the in-process `event_recorded` signal (the composition
root connects `on_recorded` when `wakes_on_signal`), plus one check
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

log = logging.getLogger("ledger.feed")

CHANNEL = "ledger_sequenced"
WINDOW = 4096            # recent events kept in memory; a waiter further behind reads the table
PAGE = 1000
IDLE_STOP_SECONDS = 30.0
EVERYONE = "*"           # an audience key: a subscription to every event, or an event for everyone
RETRY_SECONDS = 1.0


class Subscription:
    """One waiter's interest: the audience keys it listens for ("*": every event)."""

    def __init__(self, feed: "Feed", keys):
        self.feed, self.keys = feed, frozenset(keys)
        self.woken = threading.Event()

    def head(self, timeout: float = 10.0) -> int:
        return self.feed.head(timeout)

    def events_after(self, seq: int, timeout: float, limit: int = PAGE) -> tuple[list[Envelope], int] | None:
        """(events for this subscription after `seq`, the seq looked at up to), waiting up to
        `timeout` for one; an empty list at the deadline. None when the events after `seq` are
        no longer in the window: read them from the store. Only events whose audience meets
        this subscription's keys wake it, so a thousand idle streams of other people sleep
        through a write that is not theirs."""
        deadline = time.monotonic() + timeout
        while True:
            self.woken.clear()  # before looking: a wake-up after the look is not lost
            got = self.feed._select(seq, self.keys, limit)
            if got is None or got[0]:
                return got
            seq = got[1]
            left = deadline - time.monotonic()
            if left <= 0 or self.feed.closed:
                return got
            self.woken.wait(left)


class Feed:
    """The process's wake source and window of recent events for one ledger store.

    `audience(env)` names who an event is for (keys such as "user:alice", "stream:connection:ca_1");
    the feed's thread computes it once per event and wakes only the subscriptions it concerns."""

    def __init__(self, store, *, audience=None, check_seconds: float = 1.0,
                 idle_stop: float = IDLE_STOP_SECONDS, window: int = WINDOW):
        self.store = store
        self.audience = audience or (lambda env: frozenset(("stream:" + env.stream,)))
        self.check_seconds, self.idle_stop = check_seconds, idle_stop
        self._postgres = store.engine.dialect.name == "postgresql"
        self._cond = threading.Condition()
        self._window: deque[tuple[Envelope, frozenset]] = deque(maxlen=window)
        self._head: int | None = None       # None while the thread is not running
        self._subs: set[Subscription] = set()
        self._left_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._kick = threading.Event()
        self._closed = False

    @property
    def wakes_on_signal(self) -> bool:
        """Whether `on_recorded` must hear this process's `event_recorded` (SQLite: no LISTEN)."""
        return not self._postgres

    # -- waiting --------------------------------------------------------------------------
    @contextmanager
    def subscription(self, keys=(EVERYONE,)) -> Iterator[Subscription]:
        """Hold this while waiting: the wake source runs while anyone holds one."""
        sub = Subscription(self, keys)
        with self._cond:
            self._subs.add(sub)
            self._ensure_running()
        try:
            yield sub
        finally:
            with self._cond:
                self._subs.discard(sub)
                self._left_at = time.monotonic()

    def head(self, timeout: float = 10.0) -> int:
        """The last seq the feed has seen (after its first read, which a new thread does first)."""
        with self._cond:
            self._cond.wait_for(lambda: self._head is not None or self._closed, timeout)
            if self._head is None:  # its first read keeps failing: the database is away
                raise StorageError("the ledger feed could not read the chain")
            return self._head

    def _select(self, seq: int, keys: frozenset, limit: int) -> tuple[list[Envelope], int] | None:
        every = EVERYONE in keys
        with self._cond:
            if self._closed or self._head is None or self._head <= seq:
                return [], seq
            window = self._window
            if not window or window[0][0].seq > seq + 1:
                return None
            start = seq + 1 - window[0][0].seq  # seqs are gap-free, so position = distance
            looked = list(islice(window, start, start + limit))
        return [env for env, aud in looked if every or EVERYONE in aud or aud & keys], looked[-1][0].seq

    @property
    def closed(self) -> bool:
        return self._closed

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
            subs = list(self._subs)
        for sub in subs:
            sub.woken.set()
        self._kick.set()

    def on_recorded(self, _sender, **_kw) -> None:
        """A receiver of `event_recorded`: something was recorded in this process; look now."""
        self._kick.set()

    # -- the one thread -------------------------------------------------------------------

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
        from .storage.pg_listen import PgListener
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
            idle = not self._subs and time.monotonic() - self._left_at > self.idle_stop
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
            tagged = [(env, frozenset(self._audience_of(env))) for env in found]
            told = frozenset().union(*(aud for _, aud in tagged))
            with self._cond:
                self._window.extend(tagged)
                self._head = found[-1].seq
                self._cond.notify_all()
                woken = [s for s in self._subs if EVERYONE in s.keys or EVERYONE in told or s.keys & told]
            for sub in woken:
                sub.woken.set()
            if len(found) < PAGE:
                return

    def _audience_of(self, env: Envelope):
        try:
            return self.audience(env)
        except Exception:  # cannot tell who it is for: tell everyone, they filter themselves
            log.exception("ledger feed: audience of seq %s", env.seq)
            return (EVERYONE,)
