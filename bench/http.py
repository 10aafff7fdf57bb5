"""Figure 5: our app over HTTP beside a hello-world Flask app under the same gunicorn and wrk.

One SQLite database holds N seeded events plus 1,000 ACTIVE connections (status reads and
webhooks) and a pool of ACTIVE connections to disconnect, all of one tenant with two API keys
(connections:admin, audit:read). Figures, each beside its reference in the same run:
  status_read  GET /api/connections/<id> (X-Api-Key)         vs hello-world, same request
  webhook      POST /webhooks/composio, signed, unique ids    vs hello-world, same requests
  disconnect   DELETE /api/connections/<id>, outbox + relay   vs hello-world, same requests
  export       GET /audit/export (see bench/export.py)        vs the driver's scan
An endpoint that is not there yet is reported as "n/a (endpoint missing)".
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import time

from . import disconnect, export, loadgen, servers, workload
from .harness import Figure, Settings, log, new_ledger, side_by_side, sqlite_url
from .servers import call, missing

SECRET = "bench-webhook-secret"
TENANT = "tenant_bench"
OPEN_BASE, OPEN_COUNT = 50_000_000, 1000


class Site:
    """The seeded database, the API keys, and the running servers."""

    def __init__(self, settings: Settings, wrk: str):
        from ledger.services import apikeys
        self.settings, self.wrk, self.workdir = settings, wrk, settings.workdir
        self.disc_count = 5000 if settings.quick else 30_000
        self.url = sqlite_url(self.workdir, "http")
        log(f"HTTP: seeding {settings.events:,} events + {OPEN_COUNT + self.disc_count:,} ACTIVE connections")
        ledger = new_ledger(self.url)
        workload.seed_ledger(ledger, itertools.chain(
            workload.history(settings.events), workload.opened(OPEN_COUNT, OPEN_BASE, TENANT),
            workload.opened(self.disc_count, disconnect.DISC_BASE, TENANT)))
        self.events = ledger.store.head()[0]
        engine = ledger.store.engine
        self.admin_key = apikeys.create(engine, TENANT, ["connections:admin"], "bench-admin")[1]
        self.audit_key = apikeys.create(engine, TENANT, ["audit:read"], "bench-audit")[1]
        engine.dispose()
        self.disc_next = self.disc_registered = 0
        self.procs: list[servers.Process] = []
        self.start_errors: dict[str, str] = {}
        self.composio = servers.fake_composio(self.workdir)
        if self.composio:
            self.procs.append(self.composio)
        self.hello = self._start("hello", "bench.hello_app:app", {}, "/")
        # /readyz: the database answers and is migrated (on a large database that can take a while)
        self.ours = self._start("ours", "wsgi:app", self._app_env(), "/readyz")
        if self.ours is not None:
            self._settle(self.ours)

    @staticmethod
    def _settle(server, seconds: float = 8.0) -> None:
        """Each worker imports the composio SDK in a thread after its first request (~2 s of CPU,
        so the first webhook need not wait for it): let that finish before anything is measured."""
        for _ in range(20):
            call("GET", server.url + "/healthz")
        time.sleep(seconds)

    def _app_env(self) -> dict:
        return {"DATABASE_URL": self.url, "RATELIMIT_DEFAULT": "", "COMPOSIO_WEBHOOK_SECRET": SECRET,
                "COMPOSIO_API_KEY": "bench-composio-key", "RELAY_INLINE": "true", "LEDGER_ENV": "development",
                "COMPOSIO_BASE_URL": self.composio.url if self.composio else "http://127.0.0.1:9"}

    def _start(self, name: str, app: str, env: dict, ready: str):
        proc = servers.gunicorn(name, app, env, self.workdir)
        self.procs.append(proc)
        try:
            proc.wait_ready(ready)
            return proc
        except RuntimeError as exc:
            log(f"{name} did not start: {exc}")
            self.start_errors[name] = str(exc)[-600:]
            return None

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()

    def load(self, server, path_or_script, headers=None, args=(), seconds=None) -> dict:
        script = path_or_script if path_or_script.endswith(".lua") else self.plain
        url = server.url + ("" if path_or_script.endswith(".lua") else path_or_script)
        return loadgen.run(self.wrk, url, seconds or self.settings.http_seconds, script, headers, args)

    @property
    def plain(self) -> str:
        return loadgen.write_script(self.workdir, "plain.lua", loadgen.PLAIN)

    def file_script(self) -> str:
        return loadgen.write_script(self.workdir, "from_file.lua", loadgen.FROM_FILE)


# -- the figures ------------------------------------------------------------------------------------

def status_read(site: Site, fig: Figure) -> None:
    path, hdr = f"/api/connections/{workload.cid(OPEN_BASE)}", {"X-Api-Key": site.admin_key}
    status, body = call("GET", site.ours.url + path, hdr)
    if status != 200:
        fig.na = missing(status, body, f"GET {path}")
        return
    side_by_side(fig, {"ours": lambda: site.load(site.ours, path, hdr),
                       "hello": lambda: site.load(site.hello, path, hdr)}, site.settings.runs,
                 warmup={"ours": lambda: site.load(site.ours, path, hdr, seconds=1),
                         "hello": lambda: site.load(site.hello, path, hdr, seconds=1)})


def signed_webhook(i: int, now: float) -> tuple[str, str, dict, str]:
    """One V3 composio.trigger.message delivery, signed as Standard Webhooks with a unique id."""
    msg_id = f"msg_{os.urandom(12).hex()}"
    ts = str(int(now))
    c = OPEN_BASE + i % OPEN_COUNT
    body = json.dumps({"id": msg_id, "type": "composio.trigger.message",
                       "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
                       "metadata": {"log_id": f"log_{i}", "trigger_slug": workload.TRIGGER, "trigger_id": "ti_bench",
                                    "connected_account_id": workload.cid(c), "auth_config_id": "ac_bench",
                                    "user_id": workload.user_of(c)},
                       "data": {"connected_account_id": workload.cid(c), "trigger_slug": workload.TRIGGER,
                                "message": "fix typo", "author": "ann"}}, separators=(",", ":"))
    mac = hmac.new(SECRET.encode(), f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()
    headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": "v1," + base64.b64encode(mac).decode(),
               "x-composio-webhook-version": "V3", "x-composio-delivery-attempt": "1",
               "content-type": "application/json"}
    return "POST", "/webhooks/composio", headers, body


def webhook(site: Site, fig: Figure) -> None:
    _, target, headers, body = signed_webhook(0, time.time())
    status, answer = call("POST", site.ours.url + target, headers, body.encode())
    if status != 200:
        fig.na = missing(status, answer, "POST /webhooks/composio")
        return
    ceiling = site.load(site.hello, "/")["value"]          # sizes the files: ids never repeat
    count = int(min(400_000, max(2000, ceiling * site.settings.http_seconds * 2)))

    def run(server, seconds=None) -> dict:
        now = time.time()
        path = loadgen.write_requests(os.path.join(site.workdir, "webhooks.txt"),
                                      [signed_webhook(i, now) for i in range(count)])
        r = site.load(server, site.file_script(), args=(path,), seconds=seconds)
        if r["wrapped"] and server is site.ours:  # hello-world does not deduplicate: no matter there
            log(f"webhook: more than {count} requests were sent; webhook ids repeated")
            fig.note = "some webhook ids were repeated (duplicates are cheaper): the rate is flattered"
        return r
    side_by_side(fig, {"ours": lambda: run(site.ours), "hello": lambda: run(site.hello)}, site.settings.runs,
                 warmup={"ours": lambda: run(site.ours, 1), "hello": lambda: run(site.hello, 1)})


def run(settings: Settings, pg=None, pg_missing=None) -> list[Figure]:
    n = f"{settings.events:,}"
    figs = {"export": Figure("export", f"/audit/export of {n} events (SQLite)", "events/s"),
            "status_read": Figure("status_read", "status read GET /api/connections/<id> (SQLite)", "req/s"),
            "webhook": Figure("webhook", "signed webhook ingest POST /webhooks/composio (SQLite)", "req/s"),
            "disconnect": Figure("disconnect", "disconnect DELETE /api/connections/<id>, outbox + relay (SQLite)",
                                 "req/s")}
    wanted = [f for k, f in figs.items() if settings.wants(k) or settings.wants("http")]
    if not wanted:
        return []
    wrk = loadgen.ensure_wrk()
    if wrk is None:
        for f in wanted:
            f.na = "n/a (wrk could not be installed)"
        return wanted
    site = Site(settings, wrk)
    try:
        for f in wanted:
            if site.ours is None or site.hello is None:
                f.na = f"n/a (gunicorn did not start: {'; '.join(site.start_errors.values())})"
                continue
            dead = [p for p in (site.ours, site.hello) if p.proc.poll() is not None]
            if dead:
                f.na = f"n/a ({dead[0].why()})"
                continue
            try:
                {"status_read": status_read, "webhook": webhook, "disconnect": disconnect.figure,
                 "export": export.figure}[f.key](site, f)
            except Exception as exc:  # one broken figure must not hide the others
                log(f"{f.key} failed: {exc!r}; {site.ours.why()}")
                f.na = f"n/a (failed: {type(exc).__name__}: {str(exc)[:200]}; {site.ours.why()[-600:]})"
    finally:
        site.close()
    return wanted
