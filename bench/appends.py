"""Figures 1 and 2: appends, one event per commit and 100 events per transaction.

Three writers of the same `connection.used` event (same payload) to 1,000 connection streams
round-robin, each on its own fresh database on the same file system / PostgreSQL server:
  ours  Ledger.append (hash chain, optimistic concurrency, projection update, one commit);
  peer  eventsourcing: the aggregate triggers the event(s), Application.save() commits;
  raw   the driver inserting the same row shape into the same `events` table, nothing else
        (sqlite3 with WAL + synchronous=FULL; psycopg with synchronous_commit=on).
"""
from __future__ import annotations

import json
import sqlite3

from ledger import envelope as ev
from ledger.clock import iso, now
from ledger.envelope import NewEvent

from . import peer, workload
from .harness import Figure, Settings, log, new_ledger, side_by_side, sqlite_url, timed, wanted_figures

STREAMS = 1000
COLS = "seq, stream, version, type, schema, data, meta, occurred_at, recorded_at, prev_hash, hash"
FAKE_HASH = "f" * 64


class Ours:
    def __init__(self, url: str):
        self.ledger = new_ledger(url)
        workload.seed_ledger(self.ledger, workload.opened(STREAMS))   # 1,000 ACTIVE connections
        self.versions = [2] * STREAMS
        self.j = 0

    def write(self, per_txn: int) -> None:
        i = self.j % STREAMS
        self.j += 1
        at = iso(now())
        new = [NewEvent(ev.USED, workload.used_data(i, at)) for _ in range(per_txn)]
        self.ledger.append(f"connection:{workload.cid(i)}", new, expected_version=self.versions[i],
                           meta=workload.meta(i))
        self.versions[i] += per_txn


class Peer:
    def __init__(self, backend: str, where: str):
        self.app = peer.app_for(backend, where)
        self.aggs = peer.create_connections(self.app, 0, STREAMS)
        self.j = 0

    def write(self, per_txn: int) -> None:
        i = self.j % STREAMS
        self.j += 1
        agg, at = self.aggs[i], iso(now())
        for _ in range(per_txn):
            agg.used(**workload.used_data(i, at))
        self.app.save(agg)


class Raw:
    """The bare insert: what the driver does for the same rows, with no chain and no checks."""

    def __init__(self, backend: str, url: str, path: str | None = None):
        new_ledger(url)  # the same migrated schema, used by the driver only
        self.backend, self.seq, self.j = backend, 0, 0
        self.versions = [0] * STREAMS
        if backend == "sqlite":
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.sql = f"INSERT INTO events ({COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
        else:
            import psycopg
            self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
            self.conn.execute("SET synchronous_commit = on")
            self.conn.commit()
            self.sql = f"INSERT INTO events ({COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"

    def _row(self, i: int, at: str) -> tuple:
        self.seq += 1
        self.versions[i] += 1
        return (self.seq, f"connection:{workload.cid(i)}", self.versions[i], ev.USED, 1,
                json.dumps(workload.used_data(i, at)), json.dumps(workload.meta(i)), at, at, FAKE_HASH, FAKE_HASH)

    def write(self, per_txn: int) -> None:
        i = self.j % STREAMS
        self.j += 1
        at = iso(now())
        rows = [self._row(i, at) for _ in range(per_txn)]
        if self.backend == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(self.sql, rows) if per_txn > 1 else self.conn.execute(self.sql, rows[0])
            self.conn.execute("COMMIT")
        else:
            with self.conn.cursor() as cur:
                cur.executemany(self.sql, rows) if per_txn > 1 else cur.execute(self.sql, rows[0])
            self.conn.commit()


def wal_pages_per_commit(writer, path: str, commits: int = 40) -> float:
    """SQLite pages one commit appends to the WAL (what its fsync and checkpoints must carry)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for _ in range(commits):
            writer.write(1)
        return conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1] / commits
    finally:
        conn.close()


def _rate(writer, per_txn: int, txns: int):
    def measure() -> dict:
        seconds = timed(lambda: [writer.write(per_txn) for _ in range(txns)])
        return {"value": per_txn * txns / seconds}
    return measure


def _writers(settings: Settings, backend: str, pg) -> dict:
    if backend == "sqlite":
        w = settings.workdir
        raw_path = f"{w}/append_raw.db"
        return {"ours": Ours(sqlite_url(w, "append_ours")),
                "peer": Peer("sqlite", f"{w}/append_peer.db"),
                "raw": Raw("sqlite", f"sqlite:///{raw_path}", raw_path)}
    return {"ours": Ours(pg.create("append_ours")),
            "peer": Peer("postgresql", pg.create("append_peer")),
            "raw": Raw("postgresql", pg.create("append_raw"))}


def run(settings: Settings, pg, pg_missing: str | None) -> list[Figure]:
    """append_1_<backend> and append_100_<backend> for SQLite and PostgreSQL."""
    figures = []
    for backend in ("sqlite", "postgresql"):
        f1 = Figure(f"append_1_{backend}", f"append, 1 event per commit ({backend})", "events/s")
        f100 = Figure(f"append_100_{backend}", f"append, 100 events per transaction ({backend})", "events/s")
        wanted, measurable = wanted_figures(settings, "appends", [f1, f100], backend, pg_missing)
        if not measurable:
            figures += wanted
            continue
        log(f"appends on {backend}: preparing three fresh databases")
        writers = _writers(settings, backend, pg)
        for w in writers.values():  # warm-up: connections, statement caches, file growth
            w.write(1)
            w.write(100)
        if f1 in wanted:
            side_by_side(f1, {k: _rate(w, 1, settings.appends) for k, w in writers.items()}, settings.runs)
        if f100 in wanted:
            side_by_side(f100, {k: _rate(w, 100, settings.batches) for k, w in writers.items()}, settings.runs)
        if backend == "sqlite":
            level = peer.sqlite_synchronous(writers["peer"].app)
            w = settings.workdir
            pages = {k: wal_pages_per_commit(writers[k], f"{w}/append_{k}.db") for k in ("ours", "peer", "raw")}
            note = (f"peer's SQLite connections run with PRAGMA synchronous={level} (2 = FULL), as ours and raw; "
                    "WAL pages per 1-event commit: " + ", ".join(f"{k} {v:.1f}" for k, v in pages.items()))
            for f in wanted:
                f.note = note
        figures += wanted
    return figures
