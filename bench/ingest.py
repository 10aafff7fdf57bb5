"""Webhook ingest over HTTP on PostgreSQL at 32 concurrent connections, per gunicorn worker setup.

For each worker setup (SETUPS), ours (`wsgi:app` on a PostgreSQL database holding 1,000 ACTIVE
connections, created through Ledger.append) and hello-world (bench/hello_app.py) run under the
same gunicorn settings, one after the other, and wrk posts signed V3 trigger webhooks with unique
ids (bench/http.py's signed_webhook) over 32 keep-alive connections. Both servers read the
repository's gunicorn.conf.py when it exists (the production settings: hooks, request limits),
with the setup's worker options on the command line (which gunicorn lets override the file).

A server that does not come up, or dies, makes the figure n/a with the tail of its own log.
"""
from __future__ import annotations

import os
import time

from . import loadgen, servers, workload
from .concurrency import open_ledger
from .harness import Figure, Settings, log, side_by_side, wanted_figures
from .http import OPEN_BASE, OPEN_COUNT, SECRET, TENANT, signed_webhook
from .servers import call, missing

CONNECTIONS = 32
# name -> gunicorn worker options. sync_w2 is the README's production setup (2 sync workers).
SETUPS = {
    "sync_w2": ["-w", "2"],
    "gthread_w2_t8": ["-w", "2", "-k", "gthread", "--threads", "8"],
    "gthread_w4_t4": ["-w", "4", "-k", "gthread", "--threads", "4"],
    "gevent_w2_c64": ["-w", "2", "-k", "gevent", "--worker-connections", "64"],
}
KEYS = [f"webhook_pg_{CONNECTIONS}_{name}" for name in SETUPS]


def _seed(url: str) -> None:
    """1,000 ACTIVE connections of one tenant, through the ledger's public append."""
    from ledger import NewEvent
    ledger = open_ledger(url)
    for c in range(OPEN_BASE, OPEN_BASE + OPEN_COUNT):
        new = [NewEvent(*workload.step(c, 0, "", TENANT)), NewEvent(*workload.step(c, 1, "", TENANT))]
        ledger.append(f"connection:{workload.cid(c)}", new, expected_version=0, meta=workload.meta(c))


def _env(url: str) -> dict:
    return {"DATABASE_URL": url, "RATELIMIT_DEFAULT": "", "COMPOSIO_WEBHOOK_SECRET": SECRET,
            "COMPOSIO_API_KEY": "bench-composio-key", "RELAY_INLINE": "true", "LEDGER_ENV": "development",
            "COMPOSIO_BASE_URL": "http://127.0.0.1:9"}


def _config() -> str | None:
    return servers.REPO_CONFIG if os.path.exists(servers.REPO_CONFIG) else None


def _measure(settings: Settings, wrk: str, url: str, setup: list[str], fig: Figure) -> None:
    env, workdir = _env(url), settings.workdir
    started = []
    try:
        hello = servers.gunicorn("hello_" + fig.key, "bench.hello_app:app", env, workdir, setup, _config())
        started.append(hello)
        ours = servers.gunicorn("ours_" + fig.key, "wsgi:app", env, workdir, setup, _config())
        started.append(ours)
        for p, ready in ((hello, "/"), (ours, "/readyz")):
            try:
                p.wait_ready(ready)
            except RuntimeError as exc:
                fig.na = f"n/a ({p.name} did not start: {str(exc)[-600:]})"
                return
        # Each worker imports the composio SDK after its first request (2 s of CPU each, much
        # longer on a busy machine): generous timeouts here, then time for the imports to end.
        for _ in range(20):
            call("GET", ours.url + "/healthz", timeout=180)
        time.sleep(4 if settings.quick else 8)
        _, target, headers, body = signed_webhook(0, time.time())
        status, answer = call("POST", ours.url + target, headers, body.encode(), timeout=180)
        if status != 200:
            fig.na = missing(status, answer, "POST /webhooks/composio") + f"; {ours.why()[-400:]}"
            return
        script = loadgen.write_script(workdir, "from_file.lua", loadgen.FROM_FILE)
        ceiling = loadgen.run(wrk, hello.url + "/", 1, loadgen.write_script(workdir, "plain.lua", loadgen.PLAIN),
                              connections=CONNECTIONS)["value"]
        count = int(min(400_000, max(2000, ceiling * settings.http_seconds * 2)))

        def run(server, seconds=None) -> dict:
            now = time.time()
            path = loadgen.write_requests(os.path.join(workdir, "webhooks_pg.txt"),
                                          [signed_webhook(i, now) for i in range(count)])
            r = loadgen.run(wrk, server.url, seconds or settings.http_seconds, script, args=(path,),
                            connections=CONNECTIONS)
            if r["wrapped"] and server is ours:
                fig.note = "some webhook ids were repeated (duplicates are cheaper): the rate is flattered"
            if r["requests"] == 0:  # not a rate of 0 with a p99 of 0 (which would "pass" a latency target)
                raise RuntimeError(f"no request answered in {seconds or settings.http_seconds} s; {server.why()}")
            return r
        side_by_side(fig, {"ours": lambda: run(ours), "hello": lambda: run(hello)}, settings.runs,
                     warmup={"ours": lambda: run(ours, 1), "hello": lambda: run(hello, 1)})
        nonok = sum(fig.variants["ours"]["non2xx"].values)
        if nonok:
            fig.note = (fig.note + "; " if fig.note else "") + f"{nonok} answers of ours were not 2xx; {ours.why()[-300:]}"
    except Exception as exc:  # one setup failing must not hide the others
        why = "; ".join(p.why() for p in started)
        log(f"{fig.key} failed: {exc!r}; {why}")
        fig.na = f"n/a (failed: {type(exc).__name__}: {str(exc)[:200]}; {why[-600:]})"
    finally:
        for p in reversed(started):
            p.stop()


def run(settings: Settings, pg, pg_missing: str | None) -> list[Figure]:
    figs = [Figure(key, f"signed webhook ingest, PostgreSQL, {CONNECTIONS} connections, gunicorn "
                   + " ".join(SETUPS[key.split(f"_{CONNECTIONS}_", 1)[1]]), "req/s") for key in KEYS]
    wanted, measurable = wanted_figures(settings, "ingest", figs, "postgresql", pg_missing)
    if not measurable:
        return wanted
    wrk = loadgen.ensure_wrk()
    if wrk is None:
        for f in wanted:
            f.na = "n/a (wrk could not be installed)"
        return wanted
    url = pg.create("ingest")
    log(f"ingest: seeding {OPEN_COUNT:,} ACTIVE connections on PostgreSQL")
    _seed(url)
    for f in wanted:
        _measure(settings, wrk, url, SETUPS[f.key.split(f"_{CONNECTIONS}_", 1)[1]], f)
        config = "the repository's gunicorn.conf.py" if _config() else "no config file"
        f.note = (f.note + "; " if f.note else "") + f"same settings for both servers ({config})"
    return wanted
