"""Fan-out: idle SSE clients one server holds, and the delay from a write to its SSE event.

For each backend, one gunicorn with the streams' worker setup (FANOUT_WORKERS gthread workers,
FANOUT_THREADS threads each) serves our app. The bench opens N idle streams of N different
people (/api/connections/events, up to 500, all on 127.0.0.1), then WATCHERS streams of one
person whose connection is changed by HTTP writes (an agent bound, then unbound, WRITES times
at WRITE_RATE per second) while the N idle streams stay open. It reports:
  held        streams answered 200 with their first block, of N opened
  rss         the server's resident memory (master + workers) before and with N streams open
  delay       from an event's recorded_at (taken inside its write transaction, just before the
              commit) to its arrival at a watcher, p50/p99 over every watcher and write
  healthz     an ordinary request's latency while the N streams are open (threads to spare)
Everything stops by itself; results go to bench/results/fanout.md.

    python -m bench.fanout [--quick] [--clients N]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request
from datetime import datetime

from .harness import ROOT, PgDatabases, log, make_workdir, new_ledger, sqlite_url
from .servers import Process, _has_control_socket, free_port

FANOUT_WORKERS, FANOUT_THREADS = 2, int(os.environ.get("FANOUT_THREADS", "320"))
WATCHERS, WRITE_RATE = 4, 20.0
RESULTS = os.path.join(ROOT, "bench", "results", "fanout.md")


def _server(name: str, url: str, pem: str, workdir: str) -> Process:
    from tests.support.clerk import AUTHORIZED_PARTY, ISSUER
    exe = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    port = free_port()
    cmd = [exe, "-w", str(FANOUT_WORKERS), "-k", "gthread", "--threads", str(FANOUT_THREADS),
           "--worker-connections", "2000", "-b", f"127.0.0.1:{port}", "wsgi:app"]
    if _has_control_socket():
        cmd.insert(1, "--no-control-socket")
    env = {**os.environ, "DATABASE_URL": url, "RATELIMIT_DEFAULT": "", "LEDGER_ENV": "development",
           "CLERK_JWT_KEY": pem, "CLERK_ISSUER": ISSUER, "CLERK_AUTHORIZED_PARTIES": AUTHORIZED_PARTY,
           "COMPOSIO_API_KEY": "bench", "COMPOSIO_BASE_URL": "http://127.0.0.1:9", "COMPOSIO_WEBHOOK_SECRET": "x"}
    proc = Process(name, cmd, env, workdir, port)
    proc.wait_ready("/healthz")
    for _ in range(10):  # each worker warms up (it imports the composio SDK after its first request)
        urllib.request.urlopen(proc.url + "/healthz", timeout=30).read()
    time.sleep(8)
    return proc


def _rss_mb(proc: Process) -> float:
    import psutil
    root = psutil.Process(proc.proc.pid)
    return sum(p.memory_info().rss for p in [root, *root.children()]) / 2**20


async def _open(port: int, token: str):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
    # HTTP/1.0: the body comes unchunked, so lines are the stream's own lines.
    writer.write((f"GET /api/connections/events HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n").encode())
    await writer.drain()
    try:
        status = await asyncio.wait_for(reader.readline(), 30)
        while (await asyncio.wait_for(reader.readline(), 30)) not in (b"\r\n", b""):
            pass
        if b" 200 " not in status:
            raise RuntimeError(status.decode().strip())
        while (await asyncio.wait_for(reader.readline(), 30)) not in (b"\n", b""):  # the first block
            pass
    except asyncio.TimeoutError:
        writer.close()
        raise RuntimeError("no answer within 30 s") from None
    return reader, writer


async def _drain(reader, on_data=None) -> None:
    while line := await reader.readline():
        if on_data is not None and line.startswith(b"data: "):
            on_data(json.loads(line[6:]), time.time())


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _try_http(method: str, url: str, token: str) -> float | str:
    """The request's latency, or why it failed (a figure that cannot be measured says why)."""
    try:
        return _http(method, url, token)
    except OSError as exc:
        return f"{method} {url.rsplit('/', 1)[-1]}: {exc}"


def _http(method: str, url: str, token: str) -> float:
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=20) as r:
        r.read()
    return time.perf_counter() - t0


async def _measure(proc: Process, key, clients: int, writes: int, cid: str) -> dict:
    from tests.support.clerk import mint
    port = proc.port
    rss_before = _rss_mb(proc)
    opened = await asyncio.gather(*[_open(port, mint(key, sub=f"idle_{i}", exp_in=3600)) for i in range(clients)],
                                  return_exceptions=True)
    idle = [o for o in opened if not isinstance(o, BaseException)]
    errors = sorted({str(o)[:120] for o in opened if isinstance(o, BaseException)})
    drains = [asyncio.create_task(_drain(r)) for r, _ in idle]
    await asyncio.sleep(1.0)
    rss_with = _rss_mb(proc)
    loop = asyncio.get_running_loop()
    probe = [await loop.run_in_executor(None, _try_http, "GET", proc.url + "/healthz", "-") for _ in range(20)]
    refused = [p for p in probe if isinstance(p, str)]
    probe = [p for p in probe if not isinstance(p, str)] or [float("nan")]

    token = mint(key, sub="watcher", exp_in=3600)
    arrivals: dict[int, list[float]] = {}

    def seen(data: dict, at: float) -> None:
        arrivals.setdefault(data["seq"], []).append(at - _epoch(data["recordedAt"]))
    watchers = [await _open(port, token) for _ in range(WATCHERS)]
    readers = [asyncio.create_task(_drain(r, seen)) for r, _ in watchers]
    url = f"{proc.url}/api/agents/bench-agent/connections/{cid}"
    for i in range(writes):
        began = time.perf_counter()
        failed = await loop.run_in_executor(None, _try_http, "PUT" if i % 2 == 0 else "DELETE", url, token)
        if isinstance(failed, str):
            refused.append(failed)
        await asyncio.sleep(max(0.0, 1 / WRITE_RATE - (time.perf_counter() - began)))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (len(arrivals) < writes or min(map(len, arrivals.values())) < WATCHERS):
        await asyncio.sleep(0.1)
    for task in drains + readers:
        task.cancel()
    for _, w in idle + watchers:
        w.close()
    delays = sorted(d * 1000 for ds in arrivals.values() for d in ds)
    q = statistics.quantiles(delays, n=100) if len(delays) >= 2 else [float("nan")] * 99
    return {"opened": clients, "held": len(idle), "errors": errors + sorted(set(refused))[:3], "rss_before": rss_before, "rss_with": rss_with,
            "healthz_p50_ms": statistics.median(probe) * 1000, "healthz_max_ms": max(probe) * 1000,
            "writes": writes, "delivered": sum(len(v) for v in arrivals.values()), "expected": writes * WATCHERS,
            "delay_p50_ms": q[49], "delay_p99_ms": q[98], "delay_max_ms": delays[-1] if delays else float("nan")}


def _prepare(url: str) -> str:
    from ledger import envelope as ev
    from ledger.envelope import NewEvent
    ledger = new_ledger(url)
    cid = "ca_fanout_watched"
    ledger.append(ev.connection_stream(cid), [NewEvent(ev.OBSERVED, {
        "connection_id": cid, "user_id": "watcher", "tenant": "watcher", "toolkit": "github", "status": "ACTIVE"})])
    ledger.store.engine.dispose()
    return cid


def run_backend(name: str, url: str, clients: int, writes: int, workdir: str) -> dict:
    from tests.support.clerk import new_rsa_key
    key = new_rsa_key("bench")
    cid = _prepare(url)
    proc = _server(f"fanout_{name}", url, key.public_pem, workdir)
    try:
        return asyncio.run(_measure(proc, key, clients, writes, cid))
    except Exception as exc:  # a figure that cannot be measured says why
        return {"na": f"{type(exc).__name__}: {exc}; server log: {proc.tail(5)}"}
    finally:
        proc.stop()


def write_report(results: dict, clients: int) -> str:
    lines = ["# Fan-out: idle SSE clients and write-to-event delay", "",
             f"`python -m bench.fanout` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"{os.cpu_count()} cores shared with other work (load average {os.getloadavg()[0]:.1f} at the end). gunicorn `-w {FANOUT_WORKERS} -k gthread "
             f"--threads {FANOUT_THREADS}`; {clients} idle streams of different people on 127.0.0.1, "
             f"{WATCHERS} watcher streams of one person, writes (agent bind/unbind over HTTP) at "
             f"{WRITE_RATE:.0f}/s while the idle streams stay open. Delay = arrival at a watcher minus the "
             "event's recorded_at (read inside the write transaction, just before its commit).", "",
             "| backend | held / opened | RSS before → with streams (MB) | /healthz p50 (max) with streams open "
             "| events delivered | delay p50 | delay p99 | delay max |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if "na" in r:
            lines.append(f"| {name} | n/a ({r['na']}) | | | | | | |")
            continue
        lines.append(f"| {name} | {r['held']} / {r['opened']} | {r['rss_before']:.0f} → {r['rss_with']:.0f} "
                     f"| {r['healthz_p50_ms']:.1f} ms ({r['healthz_max_ms']:.0f} ms) | {r['delivered']} / {r['expected']} "
                     f"| {r['delay_p50_ms']:.0f} ms | {r['delay_p99_ms']:.0f} ms | {r['delay_max_ms']:.0f} ms |")
        if r["errors"]:
            lines.append(f"|  | refused: {'; '.join(r['errors'])} | | | | | | |")
    lines += ["", "Reading: on SQLite a worker learns of another worker's write by its once-a-second check "
              "(FEED_CHECK_SECONDS), so about half the watchers wait up to a second; a write's own worker "
              "wakes its streams at once (the in-process signal). On PostgreSQL every worker LISTENs, so "
              "the delay is the NOTIFY's round trip plus one read of the new events per worker.", ""]
    text = "\n".join(lines)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        f.write(text)
    return text


def run(settings, pg: PgDatabases, pg_missing: str | None) -> list:
    """The bench family entry (a full run, or `python -m bench.fanout` alone): measures both
    backends and writes fanout.md; it adds no figures to latest.md."""
    if settings.only:
        return []
    clients, writes = (100, 40) if settings.quick else (500, 200)
    main_for(clients, writes, settings.workdir, pg, pg_missing)
    return []


def main_for(clients: int, writes: int, workdir: str, pg: PgDatabases, pg_missing: str | None) -> str:
    results = {}
    log(f"fanout: sqlite, {clients} idle streams")
    results["sqlite"] = run_backend("sqlite", sqlite_url(workdir, "fanout"), clients, writes, workdir)
    if pg_missing:
        results["postgresql"] = {"na": pg_missing}
    else:
        log(f"fanout: postgresql, {clients} idle streams")
        results["postgresql"] = run_backend("postgresql", pg.create("fanout"), clients, writes, workdir)
    text = write_report(results, clients)
    log("fanout written: " + os.path.relpath(RESULTS, os.getcwd()))
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100 idle streams, 40 writes")
    p.add_argument("--clients", type=int, default=None, help="idle streams (at most 500)")
    a = p.parse_args(argv)
    clients = min(a.clients or (100 if a.quick else 500), 500)
    writes = 40 if a.quick else 200
    pg = PgDatabases()
    try:
        print(main_for(clients, writes, make_workdir(), pg, pg.available()))
    finally:
        pg.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
