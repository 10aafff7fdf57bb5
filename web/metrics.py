"""GET /metrics: operational counts as JSON (names, numbers and times only)."""
from __future__ import annotations

import os

from flask import Flask, current_app, jsonify

from ledger.metrics import counters
from ledger.services.relay import backlog
from ledger.services.reconcile import last_runs


def metrics():
    """Webhook deliveries by outcome (this worker process since it started) and the latest
    reconcile runs (from the database: each run is a process of its own), and the relay's
    backlog (due actions, the oldest one's wait, dead ones)."""
    return jsonify({"process": {"pid": os.getpid(), "counters": counters.snapshot()},
                    "reconcile": {"last_runs": last_runs(current_app.extensions["ledger"])},
                    "outbox": backlog(current_app.extensions["ledger"])})


def register_metrics(app: Flask) -> None:
    """Add GET /metrics. An ops endpoint like /readyz: no credentials, no rate limit, and
    nothing in it but counter names and integers (never an id, payload or secret)."""
    app.add_url_rule("/metrics", endpoint="metrics", view_func=metrics, methods=["GET"])
    limiter = app.extensions.get("limiter_obj")
    if limiter is not None:
        limiter.exempt(metrics)
