"""Operations: liveness and readiness."""
from __future__ import annotations

from flask import Blueprint, current_app

from ledger.storage.migrate import current_revision, head_revision
from ..errors import envelope
from ..ratelimit import storage_state
from ..schemas import Health, Readiness, answer

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up."""
    return answer(Health, {"status": "ok"})


@bp.get("/readyz")
def readyz():
    """The database answers and is migrated to head; 503 otherwise."""
    engine = current_app.extensions["engine"]
    try:
        current = current_revision(engine)
    except Exception:
        current_app.logger.warning("readyz: database unreachable", exc_info=True)
        return envelope(503, "NOT_READY", "The database is unreachable.")
    head = head_revision()
    if current != head:
        return envelope(503, "NOT_READY", "The database is not migrated to the latest revision.",
                        {"database_revision": current, "head_revision": head})
    # The limiter fails open, so its storage being down does not make this process unready
    # (taking every worker out of the balancer would turn a Redis outage into a full one): it is
    # reported here, logged once and counted on /metrics instead.
    return answer(Readiness, {"status": "ready", "database": engine.dialect.name, "revision": current,
                              "ratelimit": storage_state(current_app)})
