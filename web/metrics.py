"""GET /metrics: the process's operational counters as JSON (names and numbers only)."""
from __future__ import annotations

from flask import Flask, jsonify

from ledger.metrics import counters


def metrics():
    """Counters of this process: webhook deliveries by outcome, reconcile runs and drift."""
    return jsonify({"counters": counters.snapshot()})


def register_metrics(app: Flask) -> None:
    """Add GET /metrics. An ops endpoint like /readyz: no credentials, no rate limit, and
    nothing in it but counter names and integers (never an id, payload or secret)."""
    app.add_url_rule("/metrics", endpoint="metrics", view_func=metrics, methods=["GET"])
    limiter = app.extensions.get("limiter_obj")
    if limiter is not None:
        limiter.exempt(metrics)
