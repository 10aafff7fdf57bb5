"""The ledger's feed on every backend: a waiter is woken by a write from another OS process
(NOTIFY on PostgreSQL, the once-a-second check on SQLite) and by one in this process, reads
every event once in seq order, and learns when what it wants fell out of the window."""
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ledger.envelope import NewEvent
from ledger.feed import Feed
from ledger.signals import event_recorded

ROOT = Path(__file__).resolve().parents[2]


def _append_elsewhere(url: str, count: int) -> None:
    out = subprocess.run([sys.executable, "-m", "tests.support.appender", url, "elsewhere", str(count)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def _drain(sub, after: int, want: int, deadline_s: float = 30.0) -> list:
    got, deadline = [], time.monotonic() + deadline_s
    while len(got) < want and time.monotonic() < deadline:
        found = sub.events_after(after, 1.0)
        assert found is not None
        got += found[0]
        after = found[1]
    return got


@contextmanager
def _feed(ledger, **options):
    feed = Feed(ledger.store, **options)
    if feed.wakes_on_signal:  # what the composition root connects (web/bootstrap.py)
        event_recorded.connect(feed.on_recorded, sender=ledger)
    try:
        yield feed
    finally:
        feed.close()
        event_recorded.disconnect(feed.on_recorded)


def _waiter(sub, after: int) -> tuple[threading.Thread, dict]:
    """A thread waiting (up to 30 s) for what follows `after`; its answer lands in result["got"]."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.__setitem__("got", sub.events_after(after, 30.0)))
    thread.start()
    return thread, result


def test_a_write_by_another_process_wakes_a_waiter(ledger, db_url):
    with _feed(ledger) as feed:
        with feed.subscription() as sub:
            head = sub.head()
            _append_elsewhere(db_url, 3)
            got = _drain(sub, head, 3)
        assert [e.seq for e in got] == [head + 1, head + 2, head + 3]
        assert {e.stream for e in got} == {"elsewhere"}


def test_a_write_in_this_process_wakes_a_waiter_without_waiting_for_the_check(ledger):
    # The check for other processes is slowed to 60 s: only the signal (SQLite) or NOTIFY
    # (PostgreSQL) can deliver within the test's bound.
    with _feed(ledger, check_seconds=60.0) as feed:
        with feed.subscription() as sub:
            head = sub.head()
            t, result = _waiter(sub, head)
            time.sleep(0.3)
            began = time.monotonic()
            ledger.append("here", [NewEvent("test.appended", {"i": 1})])
            t.join(40)
            assert time.monotonic() - began < 20
        assert [e.stream for e in result["got"][0]] == ["here"]


def test_a_waiter_further_behind_than_the_window_is_told_to_read_the_table(ledger):
    with _feed(ledger, window=2) as feed:
        with feed.subscription() as sub:
            head = sub.head()
            for i in range(5):
                ledger.append("s", [NewEvent("test.appended", {"i": i})])
            last = _drain(sub, head + 4, 1)
            assert [e.data["i"] for e in last] == [4]
            assert sub.events_after(head, 1.0) is None
            assert sub.events_after(head + 5, 0.1) == ([], head + 5)   # nothing new: the deadline passes


def test_the_feed_thread_stops_when_nobody_waits(ledger):
    with _feed(ledger, idle_stop=0.1, check_seconds=0.1) as feed:
        with feed.subscription() as sub:
            sub.head()
            assert feed.running
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and feed.running:
            time.sleep(0.1)
        assert not feed.running
        with feed.subscription() as sub:                      # and starts again for the next waiter
            head = sub.head()
            ledger.append("s", [NewEvent("test.appended", {"i": 9})])
            assert [e.seq for e in _drain(sub, head, 1)] == [head + 1]


def test_a_waiter_is_answered_with_its_own_events_only(ledger):
    with _feed(ledger) as feed:
        with feed.subscription({"stream:mine"}) as sub:
            head = sub.head()
            t, result = _waiter(sub, head)
            for i in range(3):
                ledger.append("theirs", [NewEvent("test.appended", {"i": i})])
            ledger.append("mine", [NewEvent("test.appended", {"i": 9})])
            t.join(30)
        found, upto = result["got"]
        assert [e.stream for e in found] == ["mine"] and upto == head + 4
