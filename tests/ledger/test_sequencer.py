"""PostgreSQL's sequence-after-commit, with real processes: a writer killed after its commit, a
sequencer killed mid-batch, many writers at once. What an auditor would check: seq 1..n without a
gap, each stream's versions in seq order, the sealed prefix never rewritten, verify() ok."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from ledger.envelope import NewEvent
from ledger.storage.postgres import SEQUENCER_LOCK
from tests.support import databases as dbs

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not dbs.pg_admin_url(), reason="PostgreSQL only (TEST_DATABASE_URL)")


@pytest.fixture
def pg(pg_url):
    dbs.empty_pg(pg_url)
    return pg_url


@pytest.fixture
def pg_ledger(pg):
    from ledger.service import Ledger
    from ledger.storage.engine import make_engine, open_store
    engine = make_engine(pg)
    store = open_store(engine)
    yield Ledger(store)
    store.close()
    engine.dispose()


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _sql(url: str, query: str, params=()) -> list:
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _until(predicate, what: str, limit: float = 60.0):
    """Wait for something another process does (not a timed assertion: the limit only ends a hang)."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _chain(url: str) -> list:
    return _sql(url, "SELECT seq, stream, version, hash FROM events WHERE seq IS NOT NULL ORDER BY seq")


def _appender(url: str, stream: str, count: int, start_at: float = 0.0):
    return subprocess.Popen([sys.executable, "-m", "tests.support.appender", url, stream, str(count),
                             "--start-at", str(start_at)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _sequencer_holder(url: str) -> list:
    return [r[0] for r in _sql(url, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted "
                                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                               (SEQUENCER_LOCK,))]


def _well_formed(url: str, ledger) -> None:
    chain = _chain(url)
    assert [r[0] for r in chain] == list(range(1, len(chain) + 1))            # gap-free
    by_stream: dict = {}
    for _, stream, version, _ in chain:
        by_stream.setdefault(stream, []).append(version)
    assert all(v == list(range(1, len(v) + 1)) for v in by_stream.values())  # versions in seq order
    assert _sql(url, "SELECT count(*) FROM events WHERE seq IS NULL") == [(0,)]
    assert ledger.verify().ok


def test_a_writer_killed_after_its_commit_still_gets_its_events_sequenced(pg, pg_ledger):
    pg_ledger.append("before", [NewEvent("test.appended", {"i": 0})])
    # No one can seal while we hold the sealer's lock: the writer commits, then waits for its seq.
    with psycopg.connect(_dsn(pg), autocommit=True) as blocker:
        assert blocker.execute("SELECT pg_try_advisory_lock(%s)", (SEQUENCER_LOCK,)).fetchone()[0]
        writer = _appender(pg, "killed", 1)
        _until(lambda: _sql(pg, "SELECT count(*) FROM events WHERE stream = 'killed'") == [(1,)],
               "the writer's commit")
        assert _sql(pg, "SELECT seq FROM events WHERE stream = 'killed'") == [(None,)]
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    # The lock is free again: this process seals the orphaned event.
    pg_ledger.store.wait_sequenced(timeout=60)
    assert [e.version for e in pg_ledger.read_stream("killed")] == [1]
    assert [r[1] for r in _chain(pg)] == ["before", "killed"]
    _well_formed(pg, pg_ledger)


def test_a_sealer_killed_mid_batch_loses_nothing_and_a_standby_process_takes_over(pg, pg_ledger):
    for i in range(3):
        pg_ledger.append(f"connection:ca_{i}", [NewEvent("test.appended", {"i": i})])
    sealed_before = _chain(pg)
    pg_ledger.store.close()  # this process seals nothing more: the standby below is the only one
    standby = subprocess.Popen([sys.executable, "-m", "tests.support.sequencer", pg], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert standby.stdout.readline().strip() == "started"
        # An owed action for the next event of ca_9 (causation = -version until sealed): while we
        # hold its row, the writer sealing its own batch stops there, its events already numbered.
        _sql(pg, "INSERT INTO outbox (id, connection_id, action, status, not_before, attempts, causation_seq, "
                 "created_at, updated_at) VALUES ('act_t', 'ca_9', 'disable', 'pending', '', 0, -1, '', '')")
        with psycopg.connect(_dsn(pg)) as holder:
            holder.execute("SELECT * FROM outbox WHERE id = 'act_t' FOR UPDATE")
            writer = _appender(pg, "connection:ca_9", 1)
            _until(lambda: _sql(pg, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                    "AND datname = current_database() AND query LIKE '%%UPDATE outbox%%'") == [(1,)],
                   "the writer's batch to reach the outbox")
            assert _sql(pg, "SELECT count(*) FROM events WHERE seq IS NULL") == [(1,)]  # the seal not committed
            assert len(_sequencer_holder(pg)) == 1                                     # the writer is sealing
            os.kill(writer.pid, signal.SIGKILL)   # after its commit, in the middle of its seal
            writer.wait()
            holder.rollback()
        # Only the standby process is left to seal the orphaned event.
        _until(lambda: _sql(pg, "SELECT count(*) FROM events WHERE seq IS NULL") == [(0,)],
               "the standby process to seal the orphaned event")
        assert standby.poll() is None
    finally:
        if standby.poll() is None:
            standby.kill()
            standby.wait()
    chain = _chain(pg)
    assert chain[:len(sealed_before)] == sealed_before          # nothing rewritten, no fork
    assert [r[1] for r in chain] == ["connection:ca_0", "connection:ca_1", "connection:ca_2", "connection:ca_9"]
    assert _sql(pg, "SELECT causation_seq FROM outbox WHERE id = 'act_t'") == [(4,)]  # the whole batch, redone
    _well_formed(pg, pg_ledger)


def test_many_writer_processes_at_once_give_a_gap_free_chain_in_stream_order(pg, pg_ledger):
    start = time.time() + 3.0  # every interpreter is up and waiting by then
    procs = [_appender(pg, "shared" if i % 2 else f"own:{i}", 40, start_at=start) for i in range(6)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    won = sum(r["won"] for r in results)
    assert won + sum(r["lost"] for r in results) == 240
    assert len(_chain(pg)) == won
    _well_formed(pg, pg_ledger)


def test_a_writer_whose_connection_the_database_drops_mid_seal_still_answers_with_its_event_in_the_chain(pg, pg_ledger):
    import threading
    pg_ledger.append("connection:ca_0", [NewEvent("test.appended", {"i": 0})])
    _sql(pg, "INSERT INTO outbox (id, connection_id, action, status, not_before, attempts, causation_seq, "
             "created_at, updated_at) VALUES ('act_t', 'ca_5', 'disable', 'pending', '', 0, -1, '', '')")
    answer: dict = {}

    def write():
        try:
            answer["events"] = pg_ledger.append("connection:ca_5", [NewEvent("test.appended", {"i": 5})])
        except Exception as exc:  # the assertion below names it
            answer["error"] = exc

    with psycopg.connect(_dsn(pg)) as holder:
        holder.execute("SELECT * FROM outbox WHERE id = 'act_t' FOR UPDATE")
        writer = threading.Thread(target=write)
        writer.start()
        waiting = "wait_event_type = 'Lock' AND datname = current_database() AND query LIKE '%%UPDATE outbox%%'"
        _until(lambda: _sql(pg, f"SELECT count(*) FROM pg_stat_activity WHERE {waiting}") == [(1,)],
               "the writer's seal to reach the outbox")
        # The database ends the sealing session: committed event, rolled-back seal, lock freed.
        assert _sql(pg, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {waiting}") == [(True,)]
        _until(lambda: _sql(pg, f"SELECT count(*) FROM pg_stat_activity WHERE {waiting}") == [(1,)],
               "the writer to seal again on a new connection")
        holder.rollback()
    writer.join(timeout=120)
    assert "error" not in answer, answer.get("error")
    (event,) = answer["events"]
    assert (event.seq, event.stream, event.version) == (2, "connection:ca_5", 1) and event.hash
    assert _sql(pg, "SELECT causation_seq FROM outbox WHERE id = 'act_t'") == [(2,)]
    _well_formed(pg, pg_ledger)
