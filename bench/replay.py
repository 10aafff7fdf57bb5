"""Figures 3 and 4: rebuild of every projection and verify() of the chain, from N events.

The same N realistic events (N/10 connections, ten events each, 1,000 interleaved) are seeded
into our ledger and into the peer's store on each backend. Per run, side by side:
  rebuild  ours  Ledger.rebuild(): replay from seq 1 into fresh projection rows, swap them in;
           peer  eventsourcing reads every notification and reconstructs every aggregate;
           raw   the driver scanning the same rows in seq order (the physical limit).
  verify   ours  Ledger.verify(): recompute every hash of the chain from the stored text;
           raw   the driver scanning the same rows and SHA-256 hashing each one's text.
"""
from __future__ import annotations

import hashlib
import sqlite3

from . import peer, workload
from .harness import Figure, Settings, log, new_ledger, side_by_side, sqlite_url, timed, wanted_figures

_SELECT = ("SELECT seq, stream, version, type, schema, data, meta, occurred_at, recorded_at, prev_hash, hash "
           "FROM events ORDER BY seq")


class Seeded:
    """One backend's seeded databases: ours (also scanned raw) and the peer's."""

    def __init__(self, settings: Settings, backend: str, pg):
        self.backend, self.n = backend, settings.events
        if backend == "sqlite":
            self.url = sqlite_url(settings.workdir, "replay_ours")
            self.path = self.url[len("sqlite:///"):]
            self.peer = peer.app_for("sqlite", f"{settings.workdir}/replay_peer.db")
        else:
            self.url = pg.create("replay_ours")
            self.peer = peer.app_for("postgresql", pg.create("replay_peer"))
        log(f"seeding {self.n:,} events on {backend}: ours")
        self.ledger = new_ledger(self.url)
        workload.seed_ledger(self.ledger, workload.history(self.n))
        log(f"seeding {self.n:,} events on {backend}: peer")
        peer.seed(self.peer, self.n)

    def scan(self, each=None) -> int:
        """Every row in seq order through the bare driver; `each(row)` per row if given."""
        count = 0
        if self.backend == "sqlite":
            conn = sqlite3.connect(self.path)
            cur = conn.execute(_SELECT)
        else:
            import psycopg
            conn = psycopg.connect(self.url)
            cur = conn.cursor(name="scan")  # server-side cursor: constant memory, like paging
            cur.itersize = 5000
            cur.execute(_SELECT)
        try:
            while rows := cur.fetchmany(5000):
                count += len(rows)
                if each:
                    for r in rows:
                        each(r)
        finally:
            conn.close()
        return count


def scan_and_hash(row) -> None:
    """The bytes verify hashes, assembled with an f-string (no JSON escaping, no checks)."""
    text = (f'{{"data":{row[5]},"meta":{row[6]},"occurred_at":"{row[7]}","prev_hash":"{row[9]}",'
            f'"recorded_at":"{row[8]}","schema":{row[4]},"seq":{row[0]},"stream":"{row[1]}",'
            f'"type":"{row[3]}","version":{row[2]}}}')
    hashlib.sha256((row[9] + "\n" + text).encode()).hexdigest()


def _checked(n: int, what: str, got: int) -> None:
    if got != n:
        raise RuntimeError(f"{what} saw {got} events, expected {n}")


def _variants_rebuild(s: Seeded) -> dict:
    def ours():
        t = timed(lambda: s.ledger.rebuild())
        return {"value": t, "rate": s.n / t}

    def peer_replay():
        out = {}
        t = timed(lambda: out.setdefault("n", peer.replay(s.peer)))
        _checked(s.n, "peer replay", out["n"])
        return {"value": t, "rate": s.n / t}

    def raw():
        out = {}
        t = timed(lambda: out.setdefault("n", s.scan()))
        _checked(s.n, "raw scan", out["n"])
        return {"value": t, "rate": s.n / t}
    return {"ours": ours, "peer": peer_replay, "raw": raw}


def _variants_verify(s: Seeded) -> dict:
    def ours():
        out = {}
        t = timed(lambda: out.setdefault("r", s.ledger.verify()))
        if not out["r"].ok or out["r"].checked != s.n:
            raise RuntimeError(f"verify failed on the seeded chain: {out['r'].as_dict()}")
        return {"value": t, "rate": s.n / t}

    def raw():
        t = timed(lambda: s.scan(scan_and_hash))
        return {"value": t, "rate": s.n / t}
    return {"ours": ours, "raw": raw}


def run(settings: Settings, pg, pg_missing: str | None) -> list[Figure]:
    """rebuild_<backend> and verify_<backend>, for SQLite and PostgreSQL."""
    figures = []
    for backend in ("sqlite", "postgresql"):
        n = f"{settings.events:,}"
        rb = Figure(f"rebuild_{backend}", f"rebuild all projections from {n} events ({backend})", "s")
        vf = Figure(f"verify_{backend}", f"verify() of {n} events ({backend})", "s")
        wanted, measurable = wanted_figures(settings, "replay", [rb, vf], backend, pg_missing)
        if not measurable:
            figures += wanted
            continue
        seeded = Seeded(settings, backend, pg)
        seeded.ledger.rebuild()  # warm-up, and every measured rebuild then finds equal rows
        if rb in wanted:
            side_by_side(rb, _variants_rebuild(seeded), settings.runs)
        if vf in wanted:
            side_by_side(vf, _variants_verify(seeded), settings.runs)
        figures += wanted
        seeded.ledger.store.engine.dispose()
        seeded.peer.close()
    return figures
