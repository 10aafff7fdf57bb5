"""python -m bench [--quick] [--only NAME[,NAME]] [--runs N] [--events N] [--profile]

Every figure beside its peer (eventsourcing), its limit (the raw driver) or its ceiling
(hello-world Flask under the same gunicorn), printed as a table and written to
bench/results/latest.{json,md}. See bench/README.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import time

from . import appends, concurrency, http, ingest, replay, report, webhook_delivery
from .harness import ROOT, PgDatabases, Settings, log, make_workdir

FAMILIES = {
    "appends": ("append_1_sqlite", "append_100_sqlite", "append_1_postgresql", "append_100_postgresql"),
    "replay": ("rebuild_sqlite", "verify_sqlite", "rebuild_postgresql", "verify_postgresql"),
    "http": ("export", "status_read", "webhook", "disconnect"),
    "concurrency": tuple(f.key for b in ("sqlite", "postgresql") for f in concurrency.figures_for(b)),
    "ingest": tuple(ingest.KEYS),
    # issue 14: commit -> outgoing webhook delivery, written to results/webhook-delivery.{md,json}
    "webhook_delivery": webhook_delivery.KEYS,
}
# The families of a plain run; the concurrency and ingest families (issue 12) are asked for by
# name with --only, and then written to a results file of their own (--out).
DEFAULT_FAMILIES = ("appends", "replay", "http", "fanout", "webhook_delivery")


def parse(argv: list[str]) -> tuple[Settings, bool]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    p.add_argument("--quick", action="store_true", help="small sizes (20k events, 3 runs): a smoke run")
    p.add_argument("--only", default="", help="comma-separated figures or families: "
                   + ", ".join(list(FAMILIES) + [k for ks in FAMILIES.values() for k in ks]))
    p.add_argument("--runs", type=int, default=None, help="runs per figure (default 5; 3 with --quick)")
    p.add_argument("--events", type=int, default=None, help="events for rebuild/verify/replay/export "
                   "(default 1,000,000; 20,000 with --quick)")
    p.add_argument("--out", default="latest", help="results file name under bench/results/ "
                   "(NAME.md and NAME.json; default latest)")
    p.add_argument("--profile", action="store_true", help="profile our append, rebuild and verify "
                   "(pyinstrument) into bench/results/profile_*.txt instead of measuring figures")
    a = p.parse_args(argv)
    only = frozenset(x.strip() for x in a.only.split(",") if x.strip())
    known = set(FAMILIES) | {k for ks in FAMILIES.values() for k in ks}
    if only - known:
        p.error(f"unknown figure(s): {', '.join(sorted(only - known))}; known: {', '.join(sorted(known))}")
    s = Settings(quick=a.quick, only=only, out=a.out)
    if a.quick:
        s.runs, s.events, s.appends, s.batches, s.http_seconds, s.round_seconds = 3, 20_000, 500, 10, 3.0, 1.0
    s.runs = a.runs or s.runs
    s.events = a.events or s.events
    return s, a.profile


def _commit() -> str:
    """HEAD, with "+dirty" when tracked files differ from it (read-only git commands)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "ledger", "web"], cwd=ROOT,
                               capture_output=True, timeout=10).returncode
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return head + ("+dirty" if dirty else "")


def _meta(settings: Settings, started: float, commit_at_start: str) -> dict:
    commit = _commit()
    if commit != commit_at_start:
        commit = f"{commit_at_start} (start) .. {commit} (end): the code changed during the run"
    return {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            # how busy the machine was (others' work included): the noise these figures carry
            "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
            "machine": f"{platform.node()} ({os.cpu_count()} cores, {platform.platform()})",
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "commit": commit,
            "runs": settings.runs, "events": settings.events, "appends_per_run": settings.appends,
            "txns_of_100_per_run": settings.batches, "http_seconds": settings.http_seconds,
            "quick": settings.quick, "only": sorted(settings.only),
            "round_seconds": settings.round_seconds, "wall_seconds": round(time.time() - started)}


def main(argv: list[str] | None = None) -> int:
    settings, profile = parse(sys.argv[1:] if argv is None else argv)
    settings.workdir = make_workdir()
    if profile:
        from . import profile as prof
        prof.run(settings)
        return 0
    started, commit = time.time(), _commit()
    pg = PgDatabases()
    pg_missing = pg.available()
    if pg_missing:
        log(pg_missing + ": PostgreSQL figures are n/a")
    figures = []
    try:
        for name, family in (("appends", appends), ("replay", replay), ("http", http),
                             ("concurrency", concurrency), ("ingest", ingest),
                             ("fanout", __import__("bench.fanout", fromlist=["run"])),
                             ("webhook_delivery", webhook_delivery)):
            if settings.only or name in DEFAULT_FAMILIES:
                figures += family.run(settings, pg, pg_missing)
    finally:
        pg.drop_all()
    if not figures:  # only families with results files of their own ran: keep latest.* as they are
        return 0
    ts = report.targets({f.key: f for f in figures}, settings)
    md = report.write(figures, ts, _meta(settings, started, commit), settings.out)
    print(md)
    out = os.path.relpath(report.RESULTS, os.getcwd())
    print(f"written: {out}/{settings.out}.json and {settings.out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
