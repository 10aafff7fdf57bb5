"""EventStore contract, on every backend: chain, tamper detection, concurrency, idempotency."""
import hashlib
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger.chain import GENESIS_HASH
from ledger.envelope import NewEvent
from ledger.errors import ConcurrencyError

ROOT = Path(__file__).resolve().parents[2]


def _ev(i=0, t="test.appended"):
    return NewEvent(t, {"i": i})


def _chain(ledger, count: int, streams: int = 1) -> None:
    """`count` events, one per append, over `streams` streams."""
    for i in range(count):
        ledger.append("s" if streams == 1 else f"s:{i % streams}", [_ev(i)])


def _tamper(engine, statement: str, **params) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def _recompute_head(rows):
    prev = GENESIS_HASH
    for r in rows:
        body = {"seq": r.seq, "stream": r.stream, "version": r.version, "type": r.type,
                "schema": r.schema, "data": json.loads(r.data), "meta": json.loads(r.meta),
                "occurred_at": r.occurred_at, "recorded_at": r.recorded_at, "prev_hash": prev}
        text_ = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        prev = hashlib.sha256((prev + "\n" + text_).encode()).hexdigest()
    return prev


def test_ten_thousand_appends_verify_and_the_head_matches_an_independent_recomputation(ledger, engine):
    for batch in range(100):
        ledger.append(f"s:{batch % 7}", [_ev(batch * 100 + i) for i in range(100)])
    result = ledger.verify()
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM events ORDER BY seq")).all()
    assert result.ok and result.checked == 10_000 and result.head_seq == 10_000
    assert result.head_hash == _recompute_head(rows)


@pytest.mark.parametrize("column, new_value", [
    ("data", '{"i":8}'), ("meta", '{"actor":{"id":"x","kind":"user"}}'),
    ("type", "test.appendee"), ("recorded_at", "2026-01-01T00:00:00.000001Z"),
    ("occurred_at", "2026-01-01T00:00:00.000001Z"),
])
def test_a_direct_update_of_one_stored_field_is_named_by_its_seq(ledger, engine, column, new_value):
    _chain(ledger, 10)
    _tamper(engine, f"UPDATE events SET {column} = :v WHERE seq = 7", v=new_value)
    result = ledger.verify()
    assert not result.ok and result.first_bad_seq == 7


def test_a_deleted_row_and_a_swapped_pair_are_detected(ledger, engine):
    _chain(ledger, 10)
    _tamper(engine, "DELETE FROM events WHERE seq = 4")
    assert ledger.verify().first_bad_seq == 4
    with engine.begin() as conn:
        rows = {r.seq: r for r in conn.execute(text("SELECT seq, data, hash, prev_hash FROM events WHERE seq IN (6, 7)"))}
        for a, b in ((6, 7), (7, 6)):
            conn.execute(text("UPDATE events SET data=:d, hash=:h, prev_hash=:p WHERE seq=:s"),
                         {"d": rows[b].data, "h": rows[b].hash, "p": rows[b].prev_hash, "s": a})
    result = ledger.verify(from_seq=5)
    assert result.first_bad_seq == 6


def test_deleting_the_last_event_is_detected_through_the_head(ledger, engine):
    _chain(ledger, 5)
    _tamper(engine, "DELETE FROM events WHERE seq = 5")
    assert ledger.verify().first_bad_seq == 5


def test_a_stale_expected_version_raises_and_writes_nothing(ledger):
    ledger.append("s", [_ev(1), _ev(2)], expected_version=0)
    with pytest.raises(ConcurrencyError):
        ledger.append("s", [_ev(3)], expected_version=1)
    assert [e.version for e in ledger.read_stream("s")] == [1, 2]
    assert ledger.verify().head_seq == 2


def test_a_repeated_idempotency_key_appends_nothing_and_returns_the_original(ledger):
    first = ledger.append("s", [_ev(1)], idempotency_key="k-1")
    again = ledger.append("s", [_ev(2)], idempotency_key="k-1")
    assert [e.seq for e in again] == [e.seq for e in first] == [1]
    assert again[0].hash == first[0].hash
    assert len(ledger.read_stream("s")) == 1


def test_two_threads_with_the_same_expected_version_one_wins(ledger):
    ledger.append("s", [_ev(0)])
    barrier = threading.Barrier(2)
    outcomes = []

    def attempt(i):
        barrier.wait()
        try:
            ledger.append("s", [_ev(i), _ev(i)], expected_version=1)
            outcomes.append("won")
        except ConcurrencyError:
            outcomes.append("lost")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(outcomes) == ["lost", "won"]
    assert [e.version for e in ledger.read_stream("s")] == [1, 2, 3]
    assert ledger.verify().ok


def _spawn(db_url, stream, count, expected=None, start_at=0.0):
    args = [sys.executable, "-m", "tests.support.appender", db_url, stream, str(count),
            "--start-at", str(start_at)]
    if expected is not None:
        args += ["--expected-version", str(expected)]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _collect(procs):
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=240)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_two_processes_with_the_same_expected_version_one_wins(ledger, db_url):
    ledger.append("s", [_ev(0)])
    start = time.time() + 2.5  # both interpreters are up and waiting by then
    results = _collect([_spawn(db_url, "s", 1, expected=1, start_at=start) for _ in range(2)])
    assert sorted(r["won"] for r in results) == [0, 1]
    assert [e.version for e in ledger.read_stream("s")] == [1, 2]
    assert ledger.verify().ok


@pytest.mark.slow
def test_four_processes_appending_give_seq_one_to_two_thousand_and_a_valid_chain(ledger, db_url, engine):
    start = time.time() + 2.5
    _collect([_spawn(db_url, f"p:{i}", 500, start_at=start) for i in range(4)])
    with engine.connect() as conn:
        seqs = [r[0] for r in conn.execute(text("SELECT seq FROM events ORDER BY seq"))]
        pids = {json.loads(r[0])["pid"] for r in conn.execute(text("SELECT data FROM events"))}
    assert seqs == list(range(1, 2001))
    assert len(pids) == 4
    assert ledger.verify().ok


def test_reads_one_stream_after_a_seq_and_up_to_a_time_or_seq(ledger):
    ledger.append("a", [_ev(1)])
    ledger.append("b", [_ev(2)])
    cut = ledger.read_after(0)[-1].recorded_at
    time.sleep(0.002)
    ledger.append("a", [_ev(3)])
    assert [e.seq for e in ledger.read_stream("a")] == [1, 3]
    assert [e.seq for e in ledger.read_after(1, limit=1)] == [2]
    assert [e.seq for e in ledger.store.iter_envelopes(0, until_time=cut)] == [1, 2]
    assert [e.seq for e in ledger.store.iter_envelopes(0, until_seq=1)] == [1]


def test_each_recorded_event_is_signalled_once_after_commit(ledger):
    from ledger.signals import event_recorded
    seen = []
    with event_recorded.connected_to(lambda sender, envelope: seen.append(envelope.seq)):
        ledger.append("s", [_ev(1), _ev(2)])
        with pytest.raises(ConcurrencyError):
            ledger.append("s", [_ev(3)], expected_version=0)
    assert seen == [1, 2]


def test_recorded_at_never_goes_back_along_the_chain_even_when_the_clock_does(ledger):
    from freezegun import freeze_time
    with freeze_time("2026-11-22T21:00:00Z"):
        ledger.append("s", [_ev(1)])
    with freeze_time("2026-11-22T20:00:00Z"):  # the host's clock was stepped back an hour
        ledger.append("s", [_ev(2)])
    with freeze_time("2026-11-22T21:30:00Z"):
        ledger.append("s", [_ev(3)])
    assert [e.recorded_at for e in ledger.read_stream("s")] == [
        "2026-11-22T21:00:00.000000Z", "2026-11-22T21:00:00.000000Z", "2026-11-22T21:30:00.000000Z"]
    assert ledger.verify().ok


def test_the_time_is_read_after_the_writers_lock_so_recorded_at_follows_seq(ledger):
    # Writers that waited for the lock must not stamp the time they started waiting.
    def writer(k):
        for i in range(25):
            ledger.append(f"w:{k}", [_ev(i)])
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times = [e.recorded_at for e in ledger.store.iter_envelopes()]
    assert len(times) == 100 and times == sorted(times)


def test_time_bounds_find_the_same_events_as_filtering_every_one(ledger):
    from freezegun import freeze_time
    with freeze_time("2026-11-22T21:00:00Z") as clock:
        for i in range(60):
            ledger.append(f"s:{i % 3}", [_ev(i)])
            clock.tick(1 + (i % 4))  # uneven gaps, and several events in one second
    every = list(ledger.store.iter_envelopes())
    for since, until in [("2026-11-22T21:00:30Z", "2026-11-22T21:01:10Z"),
                         ("2026-11-22T20:00:00Z", "2026-11-22T21:00:05.5Z"),
                         ("2026-11-22T21:02:40Z", "2026-11-23T00:00:00Z")]:
        from ledger.clock import normalize_iso
        lo, hi = normalize_iso(since), normalize_iso(until)
        expected = [e.seq for e in every if lo <= e.recorded_at <= hi]
        found = ledger.store.query_events(0, 1000, since=lo, until=hi)
        assert [e.seq for e in found] == expected
        assert [e.seq for e in ledger.store.iter_envelopes(0, until_time=hi)] == [e.seq for e in every if e.recorded_at <= hi]


# damage: (the statement, then what verify names: first bad seq, reason, events checked before it,
# and whether the range 5..20 alone still checks out). 30 events; three workers take 1-10, 11-20, 21-30.
DAMAGE = {
    "none": (None, (None, None, 30), True),
    "edit": ("UPDATE events SET data = '{\"i\": 99}' WHERE seq = 17",
             (17, "hash does not match the content", 16), False),
    "delete_at_a_range_start": ("DELETE FROM events WHERE seq = 11", (11, "seq out of order or missing", 10), False),
    "delete_inside": ("DELETE FROM events WHERE seq = 24", (24, "seq out of order or missing", 23), True),
    "delete_last": ("DELETE FROM events WHERE seq = 30",
                    (30, "events are missing after the last intact one", 29), True),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_verify_in_several_processes_names_the_same_seq_and_reason_as_one(ledger, engine, damage):
    statement, (bad_seq, reason, checked), range_ok = DAMAGE[damage]
    _chain(ledger, 30, streams=4)
    if statement:
        _tamper(engine, statement)
    one, three = ledger.verify(workers=1), ledger.verify(workers=3)
    for result in (one, three):
        assert (result.ok, result.first_bad_seq, result.reason, result.checked, result.head_seq) == \
            (bad_seq is None, bad_seq, reason, checked, checked)
    assert three.head_hash == one.head_hash
    assert ledger.verify(from_seq=5, to_seq=20, workers=2).ok is range_ok


def test_a_database_gone_mid_read_is_a_storage_error_not_a_driver_error(tmp_path):
    from ledger.storage.engine import make_engine
    from ledger.errors import StorageError
    from ledger.storage.engine import open_store
    from ledger.storage.migrate import upgrade
    url = f"sqlite:///{tmp_path}/gone.db"
    upgrade(url)
    store = open_store(make_engine(url))
    assert store.read_connection("ca_1") == (None, ())
    (tmp_path / "gone.db").unlink()
    (tmp_path / "gone.db").mkdir()  # a path that cannot be opened as a database any more
    store.engine.dispose()
    # A thread that has not read yet opens the database afresh (one it already had open keeps
    # reading the unlinked file, as SQLite does).
    with ThreadPoolExecutor(1) as fresh_thread:
        with pytest.raises(StorageError):
            fresh_thread.submit(store.read_connection, "ca_1").result()
    with pytest.raises(StorageError):
        list(store.iter_rows())
    with pytest.raises(StorageError):
        store.verify(workers=2)
