"""The table, the targets (ratios measured in the same run), bench/results/latest.{json,md}."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .harness import ROOT, Figure, Settings

RESULTS = os.path.join(ROOT, "bench", "results")
FULL_N = 1_000_000


@dataclass
class Target:
    name: str
    goal: str
    measured: float | None
    ok: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        return "n/a" if self.ok is None else ("PASS" if self.ok else "MISS")

    def as_dict(self) -> dict:
        return {"name": self.name, "goal": self.goal, "measured": self.measured, "verdict": self.verdict,
                "note": self.note}


def _m(figs: dict, key: str, label: str, metric: str = "value"):
    f = figs.get(key)
    return None if f is None or f.na else f.median(label, metric)


def _worst(figs: dict, key: str, label: str, metric: str):
    f = figs.get(key)
    m = None if f is None or f.na else f.variants.get(label, {}).get(metric)
    return max(m.values) if m and m.values else None


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def _at_least(name, goal, value, bound, note="") -> Target:
    return Target(name, goal, value, None if value is None else value >= bound, note)


def _at_most(name, goal, value, bound, note="") -> Target:
    return Target(name, goal, value, None if value is None else value <= bound, note)


def targets(figs: dict, settings: Settings) -> list[Target]:
    """Issue 7's targets. Absolute times are for 1M events; for another N they scale with N."""
    scale = settings.events / FULL_N
    scaled = "" if scale == 1 else f"bound scaled to {settings.events:,} events"
    rb_sq, rb_pg = _m(figs, "rebuild_sqlite", "ours"), _m(figs, "rebuild_postgresql", "ours")
    hello_p99 = _m(figs, "status_read", "hello", "p99_ms")
    return [
        _at_least("append 1/commit SQLite vs peer", ">= 1.30x", _ratio(_m(figs, "append_1_sqlite", "ours"),
                                                                       _m(figs, "append_1_sqlite", "peer")), 1.3),
        _at_least("append 1/commit SQLite vs raw insert", ">= 0.70x",
                  _ratio(_m(figs, "append_1_sqlite", "ours"), _m(figs, "append_1_sqlite", "raw")), 0.7),
        _at_least("append 100/txn SQLite vs peer", ">= 1.00x",
                  _ratio(_m(figs, "append_100_sqlite", "ours"), _m(figs, "append_100_sqlite", "peer")), 1.0),
        _at_least("append 1/commit PostgreSQL vs peer", ">= 2.00x",
                  _ratio(_m(figs, "append_1_postgresql", "ours"), _m(figs, "append_1_postgresql", "peer")), 2.0),
        _at_least("rebuild SQLite vs peer replay rate", ">= 1.75x",
                  _ratio(_m(figs, "rebuild_sqlite", "peer"), rb_sq), 1.75),
        _at_most("rebuild SQLite time (s)", f"<= {4 * scale:.3g} s", rb_sq, 4 * scale, scaled),
        _at_least("rebuild PostgreSQL vs peer replay rate", ">= 1.75x",
                  _ratio(_m(figs, "rebuild_postgresql", "peer"), rb_pg), 1.75),
        _at_most("rebuild PostgreSQL time (s)", f"<= {10 * scale:.3g} s", rb_pg, 10 * scale, scaled),
        _at_most("verify SQLite time (s)", f"<= {5 * scale:.3g} s", _m(figs, "verify_sqlite", "ours"), 5 * scale,
                 scaled),
        _at_least("webhook ingest vs hello-world req/s", ">= 0.35x",
                  _ratio(_m(figs, "webhook", "ours"), _m(figs, "webhook", "hello")), 0.35),
        _at_most("webhook ingest p99 (ms)", "<= 10 ms", _m(figs, "webhook", "ours", "p99_ms"), 10),
        _at_least("status read vs hello-world req/s", ">= 0.80x",
                  _ratio(_m(figs, "status_read", "ours"), _m(figs, "status_read", "hello")), 0.8),
        _at_most("status read p99 (ms)", "<= 2x hello p99" + (f" = {2 * hello_p99:.2f} ms" if hello_p99 else ""),
                 _m(figs, "status_read", "ours", "p99_ms"), 2 * hello_p99 if hello_p99 else 0),
        _at_most("export server RSS growth (MB), worst run", "<= 50 MB",
                 _worst(figs, "export", "ours", "rss_growth_mb"), 50),
        *issue12_targets(figs),
    ]


def issue12_targets(figs: dict) -> list[Target]:
    """Issue 12's targets: writers that scale, and webhook ingest on PostgreSQL at 32 connections."""
    c16, c1 = "concurrency_16_postgresql", "concurrency_1_postgresql"
    out = [
        _at_least("PostgreSQL 16 writers: ours vs bare insert", ">= 0.60x",
                  _ratio(_m(figs, c16, "ours"), _m(figs, c16, "bare")), 0.6),
        _at_least("PostgreSQL 16 writers: ours vs peer", ">= 4.00x",
                  _ratio(_m(figs, c16, "ours"), _m(figs, c16, "peer")), 4.0),
        _at_least("PostgreSQL 1 writer: ours vs bare insert", ">= 0.60x (not below 0.3x)",
                  _ratio(_m(figs, c1, "ours"), _m(figs, c1, "bare")), 0.6),
        _at_most("sequencing lag p99 at 16 writers (ms)", "<= 50 ms", _m(figs, c16, "ours", "lag_p99_ms"), 50,
                 "" if _m(figs, c16, "ours", "lag_p99_ms") is not None or c16 not in figs
                 else "sequenced inline: no lag to measure"),
    ]
    hooks = [k for k in figs if k.startswith("webhook_pg_32_") and not figs[k].na]
    for k in hooks:
        setup = k[len("webhook_pg_32_"):]
        out += [_at_least(f"webhook PostgreSQL 32 conn. [{setup}] vs hello-world", ">= 0.50x",
                          _ratio(_m(figs, k, "ours"), _m(figs, k, "hello")), 0.5),
                _at_most(f"webhook PostgreSQL 32 conn. [{setup}] p99 (ms)", "<= 50 ms",
                         _m(figs, k, "ours", "p99_ms"), 50)]
    return out


def _num(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _cell(f: Figure, label: str, metric: str) -> str:
    m = f.variants.get(label, {}).get(metric)
    return _num(m.median) if m else ""


def table(figures: list[Figure]) -> str:
    lines = ["| figure | variant | median | min – max | unit | p50 ms | p99 ms | also |",
             "|---|---|---:|---:|---|---:|---:|---|"]
    for f in figures:
        if f.na:
            na = " ".join(f.na.split()).replace("|", "/")   # one table row, whatever the reason says
            lines.append(f"| {f.title} | | {na} | | | | | |")
            continue
        for label, metrics in f.variants.items():
            v = metrics["value"]
            extra = []
            if "rate" in metrics:
                extra.append(f"{_num(metrics['rate'].median)} events/s")
            if "rss_growth_mb" in metrics:
                r = metrics["rss_growth_mb"]
                extra.append(f"RSS +{_num(r.median)} MB (max {_num(max(r.values))})")
            if "lag_p99_ms" in metrics:
                extra.append(f"seq lag p50 {_num(metrics['lag_p50_ms'].median)} ms, "
                             f"p99 {_num(metrics['lag_p99_ms'].median)} ms")
            if "non2xx" in metrics and max(metrics["non2xx"].values):
                extra.append(f"non-2xx: {sum(metrics['non2xx'].values)}")
            lines.append(f"| {f.title} | {label} | {_num(v.median)} | {_num(min(v.values))} – {_num(max(v.values))} "
                         f"| {f.unit} | {_cell(f, label, 'p50_ms')} | {_cell(f, label, 'p99_ms')} | {'; '.join(extra)} |")
    return "\n".join(lines)


def target_table(ts: list[Target]) -> str:
    lines = ["| target | goal | measured | verdict | note |", "|---|---|---:|---|---|"]
    for t in ts:
        measured = _num(t.measured) + ("x" if t.goal.startswith(">=") and "x" in t.goal else "")
        lines.append(f"| {t.name} | {t.goal} | {measured if t.measured is not None else 'n/a'} | {t.verdict} | {t.note} |")
    return "\n".join(lines)


def write(figures: list[Figure], ts: list[Target], meta: dict, name: str = "latest") -> str:
    """<name>.json and <name>.md (latest by default); returns the Markdown. A run of some
    figures only (--only) lists only the targets it measured."""
    os.makedirs(RESULTS, exist_ok=True)
    if meta.get("only"):
        ts = [t for t in ts if t.measured is not None or "inline" in t.note]
    notes = [f"- {f.key}: {f.note}" for f in figures if f.note]
    md = "\n".join([
        f"# Benchmark results ({'latest run' if name == 'latest' else name})", "",
        f"Run {meta['finished']} on {meta['machine']}; {meta['runs']} runs per figure, variants alternated run "
        f"by run; N = {meta['events']:,} events{' (--quick)' if meta['quick'] else ''}. Median and min – max "
        "over the runs. Seconds: lower is better; rates: higher is better.", "",
        table(figures), "", "## Targets (ratios of medians measured in the same run)", "", target_table(ts), "",
        *(["## Notes", "", *notes, ""] if notes else []),
        "Settings: " + ", ".join(f"{k}={v}" for k, v in meta.items() if k not in ("finished", "machine")), ""])
    with open(os.path.join(RESULTS, f"{name}.md"), "w") as f:
        f.write(md)
    with open(os.path.join(RESULTS, f"{name}.json"), "w") as f:
        json.dump({"meta": meta, "figures": [x.as_dict() for x in figures], "targets": [t.as_dict() for t in ts]},
                  f, indent=1)
    return md
