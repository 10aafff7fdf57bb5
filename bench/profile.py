"""python -m bench --profile: where our append, rebuild, verify, export and request paths spend time.

pyinstrument (a bench extra) samples each path on SQLite and, when it answers, PostgreSQL, and
writes bench/results/profile_<path>_<backend>.txt; the request paths (status read, webhook) run
in process through Flask's test client. bench/README.md summarises what they show.
"""
from __future__ import annotations

import os
import time

from . import appends, workload
from .harness import PgDatabases, Settings, log, new_ledger, sqlite_url
from .report import RESULTS


def _profile(name: str, fn) -> None:
    from pyinstrument import Profiler
    profiler = Profiler(interval=0.0005)
    profiler.start()
    fn()
    profiler.stop()
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"profile_{name}.txt")
    with open(path, "w") as f:
        f.write(profiler.output_text(unicode=False, color=False, show_all=False))
    log(f"wrote {path}")


def _requests(settings: Settings) -> None:
    """Status read and webhook ingest, in process (no gunicorn, no sockets)."""
    from ledger.services import apikeys
    from web import create_app
    from .http import OPEN_BASE, OPEN_COUNT, SECRET, TENANT, signed_webhook
    url = sqlite_url(settings.workdir, "profile_http")
    ledger = new_ledger(url)
    workload.seed_ledger(ledger, workload.opened(OPEN_COUNT, OPEN_BASE, TENANT))
    key = apikeys.create(ledger.store.engine, TENANT, ["connections:admin"])[1]
    app = create_app({"DATABASE_URL": url, "LEDGER_ENV": "development", "RATELIMIT_DEFAULT": "", "COMPOSIO_WEBHOOK_SECRET": SECRET,
                      "COMPOSIO_API_KEY": "bench", "COMPOSIO_BASE_URL": "http://127.0.0.1:9"})
    client = app.test_client()
    path, hdr = f"/api/connections/{workload.cid(OPEN_BASE)}", {"X-Api-Key": key}
    assert client.get(path, headers=hdr).status_code == 200
    _profile("status_read_sqlite", lambda: [client.get(path, headers=hdr) for _ in range(2000)])
    hooks = [signed_webhook(i, time.time()) for i in range(1501)]
    first = client.post(hooks[0][1], data=hooks[0][3], headers=hooks[0][2])
    if first.status_code != 200:
        log(f"webhook not profiled: POST /webhooks/composio answered {first.status_code}")
        return
    _profile("webhook_sqlite", lambda: [client.post(p, data=b, headers=h) for _, p, h, b in hooks[1:]])


def run(settings: Settings) -> None:
    pg = PgDatabases()
    backends = {"sqlite": lambda name: sqlite_url(settings.workdir, name)}
    if pg.available() is None:
        backends["postgresql"] = pg.create
    n = min(settings.events, 200_000)
    try:
        for backend, make_url in backends.items():
            ours = appends.Ours(make_url("profile_append"))
            ours.write(1)
            _profile(f"append_1_{backend}", lambda: [ours.write(1) for _ in range(settings.appends)])
            _profile(f"append_100_{backend}", lambda: [ours.write(100) for _ in range(settings.batches)])
            ledger = new_ledger(make_url("profile_replay"))
            log(f"seeding {n:,} events on {backend}")
            workload.seed_ledger(ledger, workload.history(n))
            _profile(f"rebuild_{backend}", ledger.rebuild)
            _profile(f"verify_{backend}", lambda: ledger.verify(workers=1))  # the per-process walk
            _profile(f"export_lines_{backend}", lambda: sum(1 for _ in ledger.store.iter_export_lines()))
        _requests(settings)
    finally:
        pg.drop_all()
