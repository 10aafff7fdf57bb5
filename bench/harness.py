"""What every figure family shares: settings, side-by-side runs, figures, scratch databases.

A figure is measured with its references in the same run: for run i the variants are run in an
order rotated by i (A B C, B C A, C A B, ...), so a noisy neighbour hurts every variant alike.
"""
from __future__ import annotations

import atexit
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_URL = os.environ.get("BENCH_PG_URL") or os.environ.get("TEST_DATABASE_URL") \
    or "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Settings:
    runs: int = 5
    events: int = 1_000_000        # rebuild / verify / replay / export
    appends: int = 3000            # commits per run, 1 event per commit
    batches: int = 200             # transactions per run, 100 events each
    http_seconds: float = 5.0      # wrk duration per run
    round_seconds: float = 2.0     # concurrency: one round of N writers
    quick: bool = False
    only: frozenset = frozenset()
    workdir: str = ""
    out: str = "latest"            # bench/results/<out>.{md,json}

    def wants(self, name: str) -> bool:
        return not self.only or name in self.only


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- figures ----------------------------------------------------------------------------------

@dataclass
class Metric:
    """One variant's values of one metric over the runs."""
    values: list = field(default_factory=list)

    @property
    def median(self):
        return statistics.median(self.values) if self.values else None

    def as_dict(self) -> dict:
        v = self.values
        return {"median": self.median, "min": min(v) if v else None, "max": max(v) if v else None,
                "runs": list(v)}


@dataclass
class Figure:
    """A measured quantity for several variants (ours first, then peer / limit / ceiling)."""
    key: str                        # e.g. "append_1_sqlite"
    title: str
    unit: str                       # "events/s", "s", "req/s", "ms", "MB"
    variants: dict = field(default_factory=dict)   # label -> {metric -> Metric}
    note: str = ""
    na: str | None = None           # "n/a (...)" when it could not be measured

    def add(self, label: str, values: dict) -> None:
        slot = self.variants.setdefault(label, {})
        for name, value in values.items():
            slot.setdefault(name, Metric()).values.append(value)

    def median(self, label: str, metric: str = "value"):
        m = self.variants.get(label, {}).get(metric)
        return m.median if m else None

    def as_dict(self) -> dict:
        return {"key": self.key, "title": self.title, "unit": self.unit, "note": self.note,
                "na": self.na, "variants": {label: {name: m.as_dict() for name, m in metrics.items()}
                                            for label, metrics in self.variants.items()}}


def wanted_figures(settings: Settings, family: str, figures: list, backend: str,
                   pg_missing: str | None) -> tuple[list, bool]:
    """The family's figures this run asks for, and whether they can be measured (PostgreSQL
    figures are n/a, with the reason, when it does not answer)."""
    wanted = [f for f in figures if settings.wants(f.key) or settings.wants(family)]
    if wanted and backend == "postgresql" and pg_missing:
        for f in wanted:
            f.na = f"n/a ({pg_missing})"
        return wanted, False
    return wanted, bool(wanted)


def side_by_side(figure: Figure, variants: dict[str, Callable[[], dict]], runs: int,
                 warmup: dict[str, Callable[[], object]] | None = None) -> Figure:
    """Run every variant once per run, the order rotated run by run; collect their metrics.
    `warmup` callables (not measured) run first: imports, caches and pools are then warm."""
    for warm in (warmup or {}).values():
        warm()
    labels = list(variants)
    for i in range(runs):
        order = labels[i % len(labels):] + labels[:i % len(labels)]
        for label in order:
            figure.add(label, variants[label]())
        summary = ", ".join(f"{lbl}={_fmt(figure.variants[lbl])}" for lbl in labels)
        log(f"{figure.key} run {i + 1}/{runs}: {summary}")
    return figure


def _fmt(metrics: dict) -> str:
    m = metrics.get("value") or next(iter(metrics.values()))
    v = m.values[-1]
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# -- scratch space: SQLite files and PostgreSQL databases of our own -------------------------------

def make_workdir() -> str:
    path = tempfile.mkdtemp(prefix="ledger-bench-")
    atexit.register(shutil.rmtree, path, True)
    return path


def sqlite_url(workdir: str, name: str) -> str:
    return f"sqlite:///{os.path.join(workdir, name)}.db"


class PgDatabases:
    """CREATE/DROP of databases named bench_<random>_<name>; nothing else on the server is touched."""

    def __init__(self, base_url: str = PG_URL):
        self.base_url = base_url
        self.prefix = "bench_" + secrets.token_hex(4)
        self.created: list[str] = []
        atexit.register(self.drop_all)

    def available(self) -> str | None:
        """None if PostgreSQL answers, else why not."""
        try:
            import psycopg
            with psycopg.connect(self.base_url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return None
        except Exception as exc:  # any failure means: no PostgreSQL figures
            return f"PostgreSQL unreachable at {self.base_url}: {type(exc).__name__}"

    def create(self, name: str) -> str:
        import psycopg
        db = f"{self.prefix}_{name}"
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        self.created.append(db)
        return self.url(db)

    def url(self, db: str) -> str:
        from sqlalchemy.engine import make_url
        return make_url(self.base_url).set(database=db).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        import psycopg
        while self.created:
            db = self.created.pop()
            try:
                with psycopg.connect(self.base_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            except Exception as exc:  # keep dropping the others
                log(f"could not drop {db}: {exc}")


def pg_params(url: str) -> dict:
    """host/port/user/password/dbname of a PostgreSQL URL."""
    from sqlalchemy.engine import make_url
    u = make_url(url)
    return {"host": u.host or "127.0.0.1", "port": str(u.port or 5432), "user": u.username or "postgres",
            "password": u.password or "", "dbname": u.database}


def new_ledger(url: str):
    """A fresh, migrated database and the Ledger over it, exactly as the app builds it."""
    from ledger.service import Ledger
    from ledger.engine import make_engine
    from ledger.store import EventStore
    from web.db import upgrade
    upgrade(url)
    return Ledger(EventStore(make_engine(url)))
