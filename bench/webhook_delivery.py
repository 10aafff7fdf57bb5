"""Outgoing webhooks: the delay from a write's commit to its delivery at the app's backend.

For each backend (SQLite, PostgreSQL) the real processes run side by side: our app under
gunicorn (gthread workers: one thread holds the SSE stream), a real `ledger relay` process
(it runs the outgoing webhook relay beside the Composio relay), and a receiver on 127.0.0.1
that verifies every request with the `standardwebhooks` package and notes when it arrived.
The bench registers an endpoint of one tenant through POST /api/webhook-endpoints
(OUTGOING_WEBHOOKS_ALLOW_PRIVATE=true), opens that tenant's SSE stream
(/api/connections/events, the admin key) as the peer, then drives signed Composio trigger
webhooks (POST /webhooks/composio -> one `connection.used` event each, on CONNECTIONS
connections of that tenant):

  steady   one client at STEADY_RATE writes/s
  burst    BURST_CLIENTS clients as fast as they are answered (each owns its connections)

For every event written it reports, from the event's `recorded_at` (read back from the ledger:
taken inside the write transaction just before its commit, the same clock the SSE figure uses)
to the verified arrival at the receiver: p50/p99/max, and from the write's HTTP answer too;
deliveries/s; how many arrived twice (same webhook-id) or out of order within a connection
(a version lower than one already arrived), and how many never came (all should be 0).
Beside it, in the same run: the same events' delay on the SSE stream (the peer), and the bare
HTTP round trip to the receiver through the relay's own `send` (the limit: what one delivery
costs with nothing else in the way).

    python -m bench.webhook_delivery [--quick]      (or python -m bench --only webhook_delivery)

Results: bench/results/webhook-delivery.{md,json}.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import socket
import statistics
import sys
import threading
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .harness import ROOT, PgDatabases, log, make_workdir, new_ledger, sqlite_url
from .servers import Process, call, gunicorn

KEYS = ("webhook_delivery",)
TENANT = "tenant_hooks"
SECRET = "bench-webhook-secret"        # Composio's inbound secret (the writes), not the endpoint's
CONNECTIONS = 40
STEADY_RATE = 20.0
BURST_CLIENTS = 8
THREADS = 8                            # gthread threads per worker (one holds the SSE stream)
RESULTS = os.path.join(ROOT, "bench", "results", "webhook-delivery")


# -- the receiver: the app's backend ------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: the relay's eight parallel sends overflow it, a
    # dropped SYN is retried after a second, and the relay looks 40 times slower than it is.
    request_queue_size = 128
    daemon_threads = True


class Receiver:
    """Verifies each request with `standardwebhooks`; keeps (arrival time, webhook-id, body)."""

    def __init__(self):
        from standardwebhooks import Webhook
        self.secret = ""
        self.got: list[tuple[float, str, dict]] = []
        self.rejected: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                at = time.time()
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    body = Webhook(outer.secret).verify(raw, headers)
                    with outer.lock:
                        outer.got.append((at, headers["webhook-id"], body))
                    status = 204
                except Exception as exc:  # what a receiver would refuse
                    with outer.lock:
                        outer.rejected.append(f"{type(exc).__name__}: {exc}"[:200])
                    status = 400
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def arrived(self) -> dict[int, list[tuple[float, str, dict]]]:
        by_seq: dict[int, list] = {}
        with self.lock:
            for item in self.got:
                by_seq.setdefault(item[2]["seq"], []).append(item)
        return by_seq

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the peer: the tenant's SSE stream ----------------------------------------------------------

class SseWatcher:
    """GET /api/connections/events with the tenant's admin key; seq -> arrival time."""

    def __init__(self, port: int, key: str):
        self.arrivals: dict[int, float] = {}
        self.recorded: dict[int, str] = {}
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        # HTTP/1.0: the body comes unchunked, so lines are the stream's own lines.
        self.sock.sendall((f"GET /api/connections/events HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Api-Key: {key}\r\n"
                           "Accept: text/event-stream\r\n\r\n").encode())
        self.file = self.sock.makefile("rb")
        status = self.file.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"SSE stream answered {status!r}")
        self.sock.settimeout(None)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.file:
                if line.startswith(b"data: "):
                    at = time.time()
                    data = json.loads(line[6:])
                    self.arrivals.setdefault(data["seq"], at)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# -- the writes ---------------------------------------------------------------------------------

def cid(i: int) -> str:
    return f"ca_hook{i:05d}"


def signed_trigger(c: int) -> tuple[dict, bytes]:
    """One V3 composio.trigger.message for connection c, signed as Composio signs (unique id)."""
    msg_id = f"msg_{os.urandom(12).hex()}"
    now = time.time()
    body = json.dumps({"id": msg_id, "type": "composio.trigger.message",
                       "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
                       "metadata": {"log_id": f"log_{msg_id}", "trigger_slug": "GITHUB_COMMIT_EVENT",
                                    "trigger_id": "ti_bench", "connected_account_id": cid(c),
                                    "auth_config_id": "ac_bench", "user_id": f"user_{c}"},
                       "data": {"connected_account_id": cid(c), "trigger_slug": "GITHUB_COMMIT_EVENT",
                                "message": "fix typo", "author": "ann"}}, separators=(",", ":")).encode()
    ts = str(int(now))
    mac = hmac.new(SECRET.encode(), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": "v1," + base64.b64encode(mac).decode(),
            "x-composio-webhook-version": "V3", "content-type": "application/json"}, body


class Writer:
    """Writes to its own connections in turn; keeps each write's answer time per connection,
    in order (a connection's k-th answered write is its k-th new version)."""

    def __init__(self, base_url: str, conns: list[int]):
        self.url, self.conns = base_url + "/webhooks/composio", conns
        self.answers: dict[str, list[float]] = {cid(c): [] for c in conns}
        self.failed: list[str] = []
        self.n = 0

    def write(self) -> None:
        c = self.conns[self.n % len(self.conns)]
        self.n += 1
        headers, body = signed_trigger(c)
        try:
            status, answer = call("POST", self.url, headers, body, timeout=30)
        except OSError as exc:
            self.failed.append(f"{type(exc).__name__}: {exc}"[:120])
            return
        if status != 200:
            self.failed.append(f"HTTP {status}: {answer[:120]!r}")
            return
        self.answers[cid(c)].append(time.time())


def steady(base_url: str, seconds: float) -> list[Writer]:
    w = Writer(base_url, list(range(CONNECTIONS)))
    start = time.perf_counter()
    for i in range(int(seconds * STEADY_RATE)):
        time.sleep(max(0.0, start + i / STEADY_RATE - time.perf_counter()))
        w.write()
    return [w]


def burst(base_url: str, seconds: float) -> list[Writer]:
    writers = [Writer(base_url, list(range(k, CONNECTIONS, BURST_CLIENTS))) for k in range(BURST_CLIENTS)]
    until = time.perf_counter() + seconds

    def loop(w: Writer) -> None:
        while time.perf_counter() < until:
            w.write()
    threads = [threading.Thread(target=loop, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return writers


# -- one backend --------------------------------------------------------------------------------

def _prepare(url: str) -> str:
    """CONNECTIONS ACTIVE connections of TENANT, and its admin key (through the ledger's own API)."""
    from ledger import envelope as ev
    from ledger.envelope import NewEvent
    from ledger.services import apikeys
    ledger = new_ledger(url)
    for i in range(CONNECTIONS):
        ledger.append(ev.connection_stream(cid(i)), [NewEvent(ev.OBSERVED, {
            "connection_id": cid(i), "user_id": f"user_{i}", "tenant": TENANT, "toolkit": "github",
            "status": "ACTIVE"})])
    key = apikeys.create(ledger.store.engine, TENANT, ["connections:admin"], "bench-hooks")[1]
    ledger.store.engine.dispose()
    return key


def _events_after(url: str, after: int) -> list:
    """The tenant's connection events after seq `after` (sealed), read back from the ledger."""
    from ledger.service import Ledger
    from ledger.storage.engine import make_engine, open_store
    engine = make_engine(url)
    store = Ledger(open_store(engine)).store
    out = []
    try:
        while True:
            page = store.read_after(after, 1000)
            out += [e for e in page if e.stream.startswith("connection:")]
            if len(page) < 1000:
                return out
            after = page[-1].seq
    finally:
        engine.dispose()


def _head(url: str) -> int:
    evs = _events_after(url, 0)
    return evs[-1].seq if evs else 0


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _q(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    v = sorted(values)
    q = statistics.quantiles(v, n=100, method="inclusive") if len(v) >= 2 else [v[0]] * 99
    return {"n": len(v), "p50": q[49], "p99": q[98], "max": v[-1]}


def _bare_round_trip(receiver: Receiver, n: int = 200) -> dict:
    """The limit: the relay's own `send` of a signed body to the receiver (which verifies it)."""
    from ledger import webhook_guard, webhook_out
    from ledger.services.webhook_delivery import send
    target = webhook_guard.check(receiver.url, allow_private=True)
    times = []
    for i in range(n):
        body = json.dumps({"seq": -1 - i, "bare": True}).encode()
        headers = webhook_out.headers(receiver.secret, f"msg_bare{i}", int(time.time()), body)
        t0 = time.perf_counter()
        status = send(target, headers, body, 5.0)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 204:
            raise RuntimeError(f"the receiver answered {status} to a bare request")
    return _q(times)


def _phase(name: str, url: str, drive, seconds: float, receiver: Receiver, sse: SseWatcher,
           base_url: str) -> dict:
    start_seq = _head(url)
    t0 = time.time()
    writers = drive(base_url, seconds)
    wrote_for = time.time() - t0
    events = _events_after(url, start_seq)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        arrived = receiver.arrived()
        if all(e.seq in arrived for e in events) and all(e.seq in sse.arrivals for e in events):
            break
        time.sleep(0.2)
    arrived = receiver.arrived()
    mine = {e.seq for e in events}
    delays, sse_delays, from_answer, first_at = [], [], [], []
    twice = sum(len(v) - 1 for s, v in arrived.items() if s in mine)
    answers = {c: list(ts) for w in writers for c, ts in w.answers.items()}
    by_conn: dict[str, list] = {}
    for e in events:
        rec = _epoch(e.recorded_at)
        if e.seq in arrived:
            at = arrived[e.seq][0][0]
            delays.append((at - rec) * 1000)
            first_at.append(at)
            by_conn.setdefault(e.connection_id, []).append((at, e.version))
        if e.seq in sse.arrivals:
            sse_delays.append((sse.arrivals[e.seq] - rec) * 1000)
    # the k-th answered write to a connection made its k-th new version in this phase
    for c, got in by_conn.items():
        in_version_order = sorted(got, key=lambda x: x[1])
        for (at, _), answered in zip(in_version_order, answers.get(c, [])):
            from_answer.append((at - answered) * 1000)
    out_of_order = 0
    for got in by_conn.values():
        highest = 0
        for _, version in sorted(got):
            if version < highest:
                out_of_order += 1
            highest = max(highest, version)
    span = (max(first_at) - min(first_at)) if len(first_at) > 1 else float("nan")
    failed = [f for w in writers for f in w.failed]
    return {"phase": name, "seconds": round(wrote_for, 1), "writes": sum(len(v) for v in answers.values()),
            "write_failures": len(failed), "failure_examples": sorted(set(failed))[:3],
            "writes_per_s": sum(len(v) for v in answers.values()) / wrote_for,
            "events": len(events), "delivered": len(mine & set(arrived)), "twice": twice,
            "out_of_order": out_of_order, "missing": len(mine - set(arrived)),
            "deliveries_per_s": (len(first_at) - 1) / span if span and span > 0 else None,
            "delay_ms": _q(delays), "from_answer_ms": _q(from_answer), "sse_ms": _q(sse_delays),
            "sse_missing": len(mine - set(sse.arrivals))}


def _relay(url: str, workdir: str, env: dict) -> Process:
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    proc = Process("webhook_relay", [flask, "--app", "wsgi", "ledger", "relay"], {**os.environ, **env}, workdir, 0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"ledger relay exited: {proc.tail()}")
        with open(proc.log_path) as f:
            if " running" in f.read():
                return proc
        time.sleep(0.2)
    raise RuntimeError(f"ledger relay not running after 120 s: {proc.tail()}")


def run_backend(name: str, url: str, workdir: str, quick: bool) -> dict:
    key = _prepare(url)
    env = {"DATABASE_URL": url, "RATELIMIT_DEFAULT": "", "LEDGER_ENV": "development", "RELAY_IN_PROCESS": "false",
           "COMPOSIO_API_KEY": "bench", "COMPOSIO_BASE_URL": "http://127.0.0.1:9", "COMPOSIO_WEBHOOK_SECRET": SECRET,
           "OUTGOING_WEBHOOKS_ALLOW_PRIVATE": "true"}
    procs: list[Process] = []
    receiver = Receiver()
    sse = None
    try:
        ours = gunicorn(f"hooks_{name}", "wsgi:app", env, workdir, args=["-w", "2", "-k", "gthread", "--threads", str(THREADS)])
        procs.append(ours)
        ours.wait_ready("/readyz")
        for _ in range(20):  # each worker imports the composio SDK after its first request
            urllib.request.urlopen(ours.url + "/healthz", timeout=30).read()
        time.sleep(8)
        status, answer = call("POST", ours.url + "/api/webhook-endpoints",
                              {"X-Api-Key": key, "content-type": "application/json"},
                              json.dumps({"url": receiver.url, "description": "bench"}).encode())
        if status != 201:
            return {"na": f"POST /api/webhook-endpoints answered {status}: {answer[:200]!r}"}
        receiver.secret = json.loads(answer)["secret"]
        procs.append(_relay(url, workdir, env))
        sse = SseWatcher(ours.port, key)
        bare = _bare_round_trip(receiver)
        steady_s, burst_s = (8.0, 6.0) if quick else (30.0, 20.0)
        # warm-up (not recorded): the relay's first pass, the SDK, the pools
        _phase("warm-up", url, steady, 2.0, receiver, sse, ours.url)
        out = {"bare_round_trip_ms": bare, "rejected": list(receiver.rejected[:3])}
        for phase, drive, secs in (("steady", steady, steady_s), ("burst", burst, burst_s)):
            log(f"webhook delivery: {name} {phase} ({secs:.0f} s)")
            out[phase] = _phase(phase, url, drive, secs, receiver, sse, ours.url)
            log(f"webhook delivery: {name} {phase}: {_line(out[phase])}")
        out["rejected"] = list(receiver.rejected[:3])
        return out
    except Exception as exc:  # a figure that cannot be measured says why
        return {"na": f"{type(exc).__name__}: {exc}; " + "; ".join(p.why() for p in procs)}
    finally:
        if sse is not None:
            sse.close()
        for p in reversed(procs):
            p.stop()
        receiver.stop()


def _ms(x) -> str:
    return "n/a" if x is None else (f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms")


def _line(r: dict) -> str:
    d = r["delay_ms"]
    return (f"{r['writes']} writes ({r['writes_per_s']:.0f}/s), {r['delivered']}/{r['events']} delivered, "
            f"p50 {_ms(d['p50'])} p99 {_ms(d['p99'])} max {_ms(d['max'])}; SSE p50 {_ms(r['sse_ms']['p50'])}")


def write_report(results: dict, quick: bool) -> str:
    lines = ["# Outgoing webhooks: commit → delivery delay", "",
             f"`python -m bench.webhook_delivery{' --quick' if quick else ''}` — "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores shared with other work "
             f"(load average {os.getloadavg()[0]:.1f} at the end). gunicorn `-w 2 -k gthread --threads {THREADS}`, "
             "one `ledger relay` process, a receiver on 127.0.0.1 verifying with `standardwebhooks`; writes are "
             f"signed Composio trigger webhooks (one `connection.used` each) on {CONNECTIONS} connections of one "
             f"tenant: **steady** = one client at {STEADY_RATE:.0f}/s, **burst** = {BURST_CLIENTS} clients as fast "
             "as answered. Delay = verified arrival at the receiver minus the event's `recorded_at` (read back from "
             "the ledger: taken inside the write transaction just before its commit, the clock the SSE figure uses "
             "too). *From answer*: arrival minus the moment the write's HTTP answer came back.", "",
             "| backend | phase | writes (/s) | delivered | twice · out of order · missing | delay p50 | p99 | max "
             "| from answer p50 · p99 | deliveries/s | SSE (peer) p50 · p99 | bare round trip (limit) p50 · p99 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if "na" in r:
            lines.append(f"| {name} | n/a ({r['na'][:600]}) | | | | | | | | | | |")
            continue
        b = r["bare_round_trip_ms"]
        for phase in ("steady", "burst"):
            p = r[phase]
            d, a, s = p["delay_ms"], p["from_answer_ms"], p["sse_ms"]
            dps = "n/a" if p["deliveries_per_s"] is None else f"{p['deliveries_per_s']:.0f}"
            lines.append(f"| {name} | {phase} | {p['writes']} ({p['writes_per_s']:.0f}/s) | {p['delivered']} / {p['events']} "
                         f"| {p['twice']} · {p['out_of_order']} · {p['missing']} | {_ms(d['p50'])} | {_ms(d['p99'])} "
                         f"| {_ms(d['max'])} | {_ms(a['p50'])} · {_ms(a['p99'])} | {dps} "
                         f"| {_ms(s['p50'])} · {_ms(s['p99'])} | {_ms(b['p50'])} · {_ms(b['p99'])} |")
            if p["write_failures"]:
                lines.append(f"|  | {phase}: {p['write_failures']} writes failed: {'; '.join(p['failure_examples'])} "
                             "| | | | | | | | | | |")
        if r["rejected"]:
            lines.append(f"|  | refused by the receiver: {'; '.join(r['rejected'])} | | | | | | | | | | |")
    lines.append("")
    text = "\n".join(lines)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS + ".json", "w") as f:
        json.dump({"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": quick,
                   "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
                   "connections": CONNECTIONS, "steady_rate": STEADY_RATE, "burst_clients": BURST_CLIENTS,
                   "results": results}, f, indent=1)
    return text


def main_for(workdir: str, pg: PgDatabases, pg_missing: str | None, quick: bool,
             backends: tuple = ("sqlite", "postgresql")) -> str:
    results = {}
    if "sqlite" in backends:
        log("webhook delivery: sqlite")
        results["sqlite"] = run_backend("sqlite", sqlite_url(workdir, "hooks"), workdir, quick)
    if "postgresql" in backends:
        if pg_missing:
            results["postgresql"] = {"na": pg_missing}
        else:
            log("webhook delivery: postgresql")
            results["postgresql"] = run_backend("postgresql", pg.create("hooks"), workdir, quick)
    text = write_report(results, quick)
    # The reading below the table is written by hand (bench/results/webhook-delivery.md keeps it
    # after the generated table): keep what follows the marker.
    path = RESULTS + ".md"
    kept = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if MARK in old:
            kept = old[old.index(MARK):]
    with open(path, "w") as f:
        f.write(text + ("\n" + kept if kept else ""))
    log("webhook delivery written: " + os.path.relpath(path, os.getcwd()))
    return text


MARK = "<!-- reading -->"


def run(settings, pg: PgDatabases, pg_missing: str | None) -> list:
    """The bench family entry (`python -m bench --only webhook_delivery`): both backends into
    webhook-delivery.{md,json}; it adds no figures to latest.md."""
    if settings.only and not settings.wants("webhook_delivery"):
        return []
    main_for(settings.workdir, pg, pg_missing, settings.quick)
    return []


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.webhook_delivery", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="8 s steady, 6 s burst per backend")
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    a = p.parse_args(argv)
    pg = PgDatabases()
    try:
        backends = ("sqlite", "postgresql") if a.backend == "both" else (a.backend,)
        print(main_for(make_workdir(), pg, pg.available() if "postgresql" in backends else None, a.quick, backends))
    finally:
        pg.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
