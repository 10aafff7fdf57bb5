"""Figure 5e: GET /audit/export of the whole seeded ledger, and the server's memory meanwhile.

  ours  the NDJSON export streamed by gunicorn, read to the end by this process; events/s, and
        the peak RSS growth of the gunicorn workers (psutil, sampled every 20 ms) over their RSS
        just before the request, once both workers have served requests and their RSS is steady
        (the target is judged on the largest growth of any run);
  raw   the driver scanning the same rows and writing the same line shape (the limit).
"""
from __future__ import annotations

import http.client
import sqlite3
import threading
import time

MB = 1024 * 1024


class RssWatch:
    """Peak RSS of some processes, sampled in a thread, against their RSS at the start."""

    def __init__(self, pids: list[int], every: float = 0.02):
        import psutil
        self.procs = [psutil.Process(p) for p in pids]
        self.base = {p.pid: p.memory_info().rss for p in self.procs}
        self.peak = dict(self.base)
        self.every, self._stop = every, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for p in self.procs:
                try:
                    self.peak[p.pid] = max(self.peak[p.pid], p.memory_info().rss)
                except Exception:  # a worker restarted: its successor is not watched
                    pass
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def growth_mb(self) -> float:
        return max(self.peak[pid] - self.base[pid] for pid in self.base) / MB


def settle(pids: list[int], timeout: float = 60.0) -> None:
    """Until the workers' RSS stops moving (the app warms the composio SDK in a thread on its
    first request, ~100 MB that is not the export's)."""
    import psutil
    procs = [psutil.Process(p) for p in pids]
    last, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = [p.memory_info().rss for p in procs]
        if last is not None and all(abs(a - b) < MB for a, b in zip(now, last)):
            return
        last = now
        time.sleep(2.0)


def read_export(port: int, key: str) -> int:
    """GET /audit/export to the end; the number of lines."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", "/audit/export", headers={"X-Api-Key": key})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"/audit/export answered {resp.status}: {resp.read(200)!r}")
    lines = 0
    while chunk := resp.read(1 << 20):
        lines += chunk.count(b"\n")
    conn.close()
    return lines


def raw_export(path: str) -> int:
    """The same lines, built by the bare driver from the same rows."""
    conn = sqlite3.connect(path)
    lines = 0
    cur = conn.execute("SELECT seq, stream, version, type, schema, data, meta, occurred_at, recorded_at, "
                       "prev_hash, hash FROM events ORDER BY seq")
    with open("/dev/null", "w") as sink:
        while rows := cur.fetchmany(5000):
            sink.write("".join(
                f'{{"data":{r[5]},"meta":{r[6]},"occurred_at":"{r[7]}","prev_hash":"{r[9]}",'
                f'"recorded_at":"{r[8]}","schema":{r[4]},"seq":{r[0]},"stream":"{r[1]}","type":"{r[3]}",'
                f'"version":{r[2]},"hash":"{r[10]}"}}\n' for r in rows))
            lines += len(rows)
    conn.close()
    return lines


def figure(site, fig) -> None:
    """Side by side: our export over HTTP (rate, RSS growth) and the driver's scan (rate)."""
    from .harness import side_by_side
    from .servers import call, missing
    status, body = call("GET", site.ours.url + "/audit/export?to_seq=1", {"X-Api-Key": site.audit_key})
    if status != 200:
        fig.na = missing(status, body, "GET /audit/export")
        return
    fig.title = f"/audit/export of {site.events:,} events (SQLite)"
    path = site.url[len("sqlite:///"):]
    site.load(site.ours, "/healthz", seconds=2)   # every worker has served a request and warmed up
    settle(site.ours.worker_pids())

    def ours() -> dict:
        with RssWatch(site.ours.worker_pids()) as watch:
            t0 = time.perf_counter()
            lines = read_export(site.ours.port, site.audit_key)
            seconds = time.perf_counter() - t0
        if lines < site.events:
            raise RuntimeError(f"the export ended after {lines} of {site.events} events")
        return {"value": lines / seconds, "seconds": seconds, "rss_growth_mb": watch.growth_mb()}

    def raw() -> dict:
        t0 = time.perf_counter()
        lines = raw_export(path)
        seconds = time.perf_counter() - t0
        return {"value": lines / seconds, "seconds": seconds}
    side_by_side(fig, {"ours": ours, "raw": raw}, site.settings.runs)
