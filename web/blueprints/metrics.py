"""GET /metrics: operational counts as JSON (names, numbers and times only). An ops endpoint like
/readyz: no credentials, no rate limit (web/__init__.py exempts it), and nothing in it but
counter names and integers (never an id, payload or secret)."""
from __future__ import annotations

import os

from flask import Blueprint, current_app

from ledger.metrics import counters
from ledger.services.relay import backlog
from ledger.services.reconcile import last_runs

from ..schemas import MetricsPublic, answer

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """Webhook deliveries by outcome (this worker process since it started) and the latest
    reconcile runs (from the database: each run is a process of its own), and the relay's
    backlog (due actions, the oldest one's wait, dead ones)."""
    ledger = current_app.extensions["ledger"]
    return answer(MetricsPublic, {"process": {"pid": os.getpid(), "counters": counters.snapshot()},
                                  "reconcile": {"last_runs": last_runs(ledger)},
                                  "outbox": backlog(ledger)})
