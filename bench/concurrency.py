"""Concurrency: 1-event commits to different streams by N writer processes, total commits/s.

For N = 1, 4, 16 writer processes, each writing to streams of its own (no conflicts between
writers), as fast as it can for a few seconds, every commit one event:
  ours  Ledger.append through the public entry points only: each process builds the app with
        web.create_app({"DATABASE_URL": ...}) and appends `connection.used` events to its own
        connections (so whatever the storage does for a write in production, a sequencer
        included, happens here too);
  bare  the driver inserting the same row shape into a table of its own (identity seq, unique
        (stream, version)), one commit each: what the database gives with no chain at all;
  peer  eventsourcing: each process its own Application, one aggregate per stream, save() per event.
Each variant has its own fresh database on the same server / file system. The writer processes
are started once per variant (spawned, warmed up, their streams created) and then told to run a
round of D seconds at a common start time; rounds at one N rotate the variants' order run by run.

Also per commit: its latency (call to return, p50/p99) and, when the storage sequences after
commit, the sequencing lag (commit -> seq assigned). The lag is read from the public hook
`Ledger.sequencing_lags()` (seconds, one per event this process appended since the last call)
when the ledger has it; a storage that sequences inline has no lag and the figure says so.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
import traceback

from . import workload
from .harness import Figure, Settings, log, sqlite_url, wanted_figures

NS = (1, 4, 16)
STREAMS_PER_WRITER = 50
LAG_HOOK = "sequencing_lags"
NO_LAG = "n/a (sequenced inline: the storage exposes no commit -> seq lag, store.sequencing_lags)"

BARE_COLS = "stream, version, type, schema, data, meta, occurred_at, recorded_at, prev_hash, hash"
BARE_TABLE = {
    "postgresql": "CREATE TABLE IF NOT EXISTS bare_events (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                  "stream VARCHAR(200) NOT NULL, version INTEGER NOT NULL, type VARCHAR(100) NOT NULL, "
                  "schema INTEGER NOT NULL, data TEXT NOT NULL, meta TEXT NOT NULL, occurred_at VARCHAR(32) NOT NULL, "
                  "recorded_at VARCHAR(32) NOT NULL, prev_hash VARCHAR(64) NOT NULL, hash VARCHAR(64) NOT NULL, "
                  "UNIQUE (stream, version))",
    "sqlite": "CREATE TABLE IF NOT EXISTS bare_events (seq INTEGER PRIMARY KEY, stream VARCHAR(200) NOT NULL, "
              "version INTEGER NOT NULL, type VARCHAR(100) NOT NULL, schema INTEGER NOT NULL, data TEXT NOT NULL, "
              "meta TEXT NOT NULL, occurred_at VARCHAR(32) NOT NULL, recorded_at VARCHAR(32) NOT NULL, "
              "prev_hash VARCHAR(64) NOT NULL, hash VARCHAR(64) NOT NULL, UNIQUE (stream, version))"}
FAKE_HASH = "f" * 64


def app_config(url: str) -> dict:
    """The app as a writer process builds it: no rate limit, no inline relay, development."""
    # Development needs a sandbox Composio URL; nothing here calls it (RELAY_INLINE off, appends only).
    return {"DATABASE_URL": url, "LEDGER_ENV": "development", "COMPOSIO_BASE_URL": "http://127.0.0.1:9",
            "RATELIMIT_DEFAULT": "", "RELAY_INLINE": False,
            "AUTO_MIGRATE": True}


def open_ledger(url: str):
    """The Ledger exactly as the app builds it (public composition root, migrated)."""
    from web import create_app
    return create_app(app_config(url)).extensions["ledger"]


# -- the writers (each runs in a process of its own) ----------------------------------------------

class OursWriter:
    def __init__(self, url: str, first: int):
        from ledger import NewEvent
        from ledger import envelope as ev
        self.NewEvent, self.USED = NewEvent, ev.USED
        self.ledger = open_ledger(url)
        self.first = first
        self.versions = {}
        for i in range(first, first + STREAMS_PER_WRITER):     # create this writer's connections
            new = [NewEvent(t, d) for t, d in (workload.step(i, 0, ""), workload.step(i, 1, ""))]
            self.ledger.append(f"connection:{workload.cid(i)}", new, expected_version=0, meta=workload.meta(i))
            self.versions[i] = 2
        # The storage that sequences after commit exposes the lag (ledger/storage/postgres.py).
        self.lag_hook = getattr(self.ledger, LAG_HOOK, None) or getattr(self.ledger.store, LAG_HOOK, None)
        self.lags()  # forget the set-up's lags

    def write(self, i: int, at: str) -> None:
        self.ledger.append(f"connection:{workload.cid(i)}", [self.NewEvent(self.USED, workload.used_data(i, at))],
                           expected_version=self.versions[i], meta=workload.meta(i))
        self.versions[i] += 1

    def lags(self) -> list[float] | None:
        return None if self.lag_hook is None else [float(x) for x in self.lag_hook()]


class BareWriter:
    def __init__(self, backend: str, url: str, first: int):
        import json
        self.json, self.backend, self.first = json, backend, first
        self.versions = {i: 0 for i in range(first, first + STREAMS_PER_WRITER)}
        if backend == "sqlite":
            import sqlite3
            self.conn = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None, timeout=60)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.sql = f"INSERT INTO bare_events ({BARE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
        else:
            import psycopg
            self.conn = psycopg.connect(url)
            self.conn.execute("SET synchronous_commit = on")
            self.conn.commit()
            self.sql = f"INSERT INTO bare_events ({BARE_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"

    def write(self, i: int, at: str) -> None:
        self.versions[i] += 1
        row = (f"connection:{workload.cid(i)}", self.versions[i], "connection.used", 1,
               self.json.dumps(workload.used_data(i, at)), self.json.dumps(workload.meta(i)), at, at,
               FAKE_HASH, FAKE_HASH)
        if self.backend == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")   # as every SQLite writer here: no SQLITE_BUSY mid-way
            self.conn.execute(self.sql, row)
            self.conn.execute("COMMIT")
        else:
            self.conn.execute(self.sql, row)
            self.conn.commit()

    def lags(self):
        return None


class PeerWriter:
    def __init__(self, backend: str, where: str, first: int):
        from . import peer
        # one thread writes: a pool of one connection (its default keeps five open per process)
        # and its tables were created by the bench before (16 processes creating them at once
        # make PostgreSQL fail one with "tuple concurrently updated")
        self.app = peer.app_for(backend, where, {"POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "0",
                                                 "CREATE_TABLE": "false"})
        self.first = first
        self.aggs = dict(zip(range(first, first + STREAMS_PER_WRITER),
                             peer.create_connections(self.app, first, STREAMS_PER_WRITER)))

    def write(self, i: int, at: str) -> None:
        agg = self.aggs[i]
        agg.used(**workload.used_data(i, at))
        self.app.save(agg)

    def lags(self):
        return None


def _build(variant: str, backend: str, where: str, first: int):
    if variant == "ours":
        return OursWriter(where, first)
    if variant == "bare":
        return BareWriter(backend, where, first)
    return PeerWriter(backend, where, first)


def _writer_main(conn, variant: str, backend: str, where: str, first: int) -> None:
    """A writer process: build, answer "ready", then run rounds until told to stop."""
    from ledger.clock import iso, now
    try:
        w = _build(variant, backend, where, first)
        w.write(first, iso(now()))  # warm-up: connections, statement caches
        w.lags()
        conn.send(("ready", None))
    except Exception:
        conn.send(("error", traceback.format_exc()[-2000:]))
        return
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            return
        _, start_at, seconds = msg
        lat, j, err = [], 0, None
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        try:
            while True:
                t0 = time.perf_counter()
                if time.time() >= end:
                    break
                w.write(first + j % STREAMS_PER_WRITER, iso(now()))
                j += 1
                t1 = time.perf_counter()
                if time.time() <= end:      # count only commits that finished inside the round
                    lat.append(t1 - t0)
        except Exception:
            err = traceback.format_exc()[-2000:]
        conn.send(("done", {"commits": len(lat), "latencies": lat, "lags": w.lags(), "error": err}))


class Pool:
    """Up to max(NS) writer processes of one variant, spawned once, each with its own streams."""

    def __init__(self, variant: str, backend: str, where: str, size: int, index_base: int):
        ctx = mp.get_context("spawn")  # a clean interpreter: nothing inherited from the bench's own pools
        self.variant, self.backend, self.procs, self.conns = variant, backend, [], []
        for k in range(size):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_writer_main, args=(child, variant, backend, where,
                                                       index_base + k * STREAMS_PER_WRITER), daemon=True)
            p.start()
            self.procs.append(p)
            self.conns.append(parent)
        for k, c in enumerate(self.conns):
            if not c.poll(600):
                self.close()
                raise RuntimeError(f"{variant} writer {k} did not get ready in 600 s")
            kind, detail = c.recv()
            if kind != "ready":
                self.close()
                last = detail.strip().splitlines()[-1] if detail.strip() else ""
                log(f"{variant} writer {k} failed to start: {detail}")
                raise RuntimeError(f"{variant} writer {k} failed to start: {last}")

    def round(self, n: int, seconds: float) -> dict:
        start_at = time.time() + 0.5
        cpu_before = _cpu_seconds(self.procs[:n], self.backend)
        for c in self.conns[:n]:
            c.send(("go", start_at, seconds))
        results = []
        for c in self.conns[:n]:
            if not c.poll(seconds + 300):
                raise RuntimeError(f"{self.variant}: a writer did not finish its round")
            results.append(c.recv()[1])
        errors = [r["error"] for r in results if r["error"]]
        if errors:
            raise RuntimeError(f"{self.variant} writer failed: {errors[0]}")
        lat = sorted(x for r in results for x in r["latencies"])
        out = {"value": sum(r["commits"] for r in results) / seconds,
               "p50_ms": _pct(lat, 50) * 1000, "p99_ms": _pct(lat, 99) * 1000}
        # Where the time goes: CPU per commit in the writer processes and in the database server
        # (every postgres process, WAL writer included; none for SQLite), over the whole round
        # with its wind-up and wind-down, so a little high for both alike.
        cpu_after, commits = _cpu_seconds(self.procs[:n], self.backend), max(1, sum(r["commits"] for r in results))
        if cpu_before and cpu_after:
            out["client_cpu_ms"] = (cpu_after[0] - cpu_before[0]) / commits * 1000
            out["server_cpu_ms"] = (cpu_after[1] - cpu_before[1]) / commits * 1000
        lags = [r["lags"] for r in results]
        if all(x is not None for x in lags):
            flat = sorted(x for r in lags for x in r)
            if flat:
                out.update(lag_p50_ms=_pct(flat, 50) * 1000, lag_p99_ms=_pct(flat, 99) * 1000)
        return out

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(("stop",))
            except OSError:
                pass
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
                p.join(5)


def _cpu_seconds(procs, backend: str) -> tuple[float, float] | None:
    """(user + system CPU seconds of the writer processes, of the PostgreSQL server's processes)."""
    try:
        import psutil
    except ImportError:
        return None

    def used(ps) -> float:
        total = 0.0
        for p in ps:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total
    writers = [psutil.Process(p.pid) for p in procs]
    server = [p for p in psutil.process_iter(["name"]) if backend == "postgresql" and (p.info["name"] or "").startswith("postgres")]
    return used(writers), used(server)


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))   # nearest rank
    return sorted_values[k]


# -- the family --------------------------------------------------------------------------------

def _databases(settings: Settings, backend: str, pg) -> dict:
    """One fresh database per variant, migrated / created before any writer starts."""
    if backend == "sqlite":
        w = settings.workdir
        where = {"ours": sqlite_url(w, "conc_ours"), "bare": sqlite_url(w, "conc_bare"), "peer": f"{w}/conc_peer.db"}
    else:
        where = {"ours": pg.create("conc_ours"), "bare": pg.create("conc_bare"), "peer": pg.create("conc_peer")}
    open_ledger(where["ours"])
    _create_bare_table(backend, where["bare"])
    from . import peer
    app = peer.app_for(backend, where["peer"])       # creates the peer's tables, once
    if backend == "sqlite":
        where["peer_synchronous"] = peer.sqlite_synchronous(app)
    app.close()
    return where


def _create_bare_table(backend: str, url: str) -> None:
    if backend == "sqlite":
        import sqlite3
        conn = sqlite3.connect(url[len("sqlite:///"):])
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(BARE_TABLE["sqlite"])
        conn.commit()
        conn.close()
        return
    import psycopg
    with psycopg.connect(url) as conn:
        conn.execute(BARE_TABLE["postgresql"])


def figures_for(backend: str) -> list[Figure]:
    return [Figure(f"concurrency_{n}_{backend}", f"1-event commits, {n} writer process{'es' if n > 1 else ''} "
                   f"({backend})", "commits/s") for n in NS]


def run(settings: Settings, pg, pg_missing: str | None) -> list[Figure]:
    """concurrency_<N>_<backend> for N in NS, SQLite and PostgreSQL."""
    out = []
    seconds = settings.round_seconds
    for backend in ("sqlite", "postgresql"):
        wanted, measurable = wanted_figures(settings, "concurrency", figures_for(backend), backend, pg_missing)
        if not measurable:
            out += wanted
            continue
        size = max(int(f.key.split("_")[1]) for f in wanted)
        log(f"concurrency on {backend}: three fresh databases, {size} writer processes per variant")
        pools: dict[str, Pool] = {}
        try:
            where = _databases(settings, backend, pg)
            for k, variant in enumerate(("ours", "bare", "peer")):
                t0 = time.time()
                pools[variant] = Pool(variant, backend, where[variant], size, 1_000_000 * (k + 1))
                log(f"concurrency {backend}: {variant} writers ready in {time.time() - t0:.0f} s")
            for f in wanted:
                n = int(f.key.split("_")[1])
                labels = list(pools)
                for i in range(settings.runs):
                    order = labels[i % len(labels):] + labels[:i % len(labels)]
                    for label in order:
                        f.add(label, pools[label].round(n, seconds))
                    log(f"{f.key} run {i + 1}/{settings.runs}: " + ", ".join(
                        f"{lbl}={f.variants[lbl]['value'].values[-1]:,.0f}" for lbl in labels))
                _annotate(f)
                if backend == "sqlite":
                    f.note += (f"; the peer's SQLite connections run with PRAGMA synchronous="
                               f"{where['peer_synchronous']} (2 = FULL), as ours and bare")
        except Exception as exc:  # one backend failing must not hide the other
            log(f"concurrency on {backend} failed: {exc}")
            for f in wanted:
                if not f.variants:
                    f.na = f"n/a (failed: {str(exc)[-300:]})"
        finally:
            for p in pools.values():
                p.close()
        out += wanted
    return out


def _annotate(f: Figure) -> None:
    ours, bare, peer = (f.median(k) for k in ("ours", "bare", "peer"))
    parts = []
    if ours and bare:
        parts.append(f"ours/bare {ours / bare:.2f}x")
    if ours and peer:
        parts.append(f"ours/peer {ours / peer:.2f}x")
    cpu = [f"{k} {f.median(k, 'client_cpu_ms'):.2f} + {f.median(k, 'server_cpu_ms'):.2f}" for k in ("ours", "bare", "peer")
           if f.median(k, "client_cpu_ms") is not None and f.median(k, "server_cpu_ms") is not None]
    if cpu:
        parts.append("CPU ms per commit, writers + server: " + ", ".join(cpu))
    lag50, lag99 = f.median("ours", "lag_p50_ms"), f.median("ours", "lag_p99_ms")
    parts.append(f"sequencing lag p50 {lag50:.1f} ms, p99 {lag99:.1f} ms" if lag99 is not None else
                 "sequencing lag " + NO_LAG)
    f.note = "; ".join(parts)

