"""Reconciliation: walk Composio's connected accounts and record where the ledger has drifted.

Webhooks can be lost, and accounts can change or vanish at Composio without one. A run records
  - `connection.status_observed`  Composio's status differs from the projection's;
  - `connection.observed`         an account of one of our users the ledger never saw;
  - `connection.upstream_missing` a live connection Composio no longer has (-> DISCONNECTED).
DISCONNECTING and DISCONNECTED connections are ours to drive (a DISCONNECTING one is disabled at
Composio on purpose, so it shows INACTIVE there): they are never judged.

Safe beside the running service (cron): each connection is checked and appended in its own
short write transaction that re-reads the projection under the writers' lock, so a disconnect
or webhook that lands mid-run is never overwritten. Only connections that were live *before*
the listing started can be judged missing, and each is confirmed with a direct lookup first:
a listing that shifted under deletes must not end a live connection (DISCONNECTED is terminal).
A second run on unchanged data finds nothing to record.
"""
from __future__ import annotations

import logging

from .. import errors
from ..decisions import OURS, decide_drift, decide_missing
from ..envelope import Actor, connection_stream
from ..metrics import counters
from ..projections import ConnectionState
from ..service import make_meta

log = logging.getLogger("ledger.reconcile")

RECONCILER = Actor("system", "reconcile")
DRIFT = ("status_drift", "observed", "missing")


def reconcile(ledger, gateway, user_id: str | None = None, page_size: int = 100) -> dict:
    """Compare every Composio account (of one user, if given) with the projection; record drift.
    Returns counts: pages, accounts, status_drift, observed, missing, foreign, errors."""
    counts = dict.fromkeys(("pages", "accounts", *DRIFT, "foreign", "errors"), 0)
    started = ledger.now()
    candidates = _live_ids(ledger, user_id)  # judged for "missing" only if live before the walk
    seen: set[str] = set()
    for page in _pages(gateway, user_id, page_size):
        counts["pages"] += 1
        known = _states(ledger, [a.id for a in page])
        for account in page:
            seen.add(account.id)
            counts["accounts"] += 1
            _count(counts, _check_account(ledger, account, known.get(account.id)))
    for cid in sorted(candidates - seen):
        _count(counts, _check_missing(ledger, gateway, cid))
    _report(ledger, counts, user_id, started)
    return counts


def _pages(gateway, user_id, page_size):
    """Each page of accounts, following the cursor until Composio has no more."""
    cursor, used = None, set()
    while True:
        accounts, cursor = gateway.list(user_id=user_id, cursor=cursor, limit=page_size)
        yield accounts
        if not cursor or cursor in used:  # a cursor that repeats would loop forever
            return
        used.add(cursor)


# -- one connection, one transaction ---------------------------------------------------------

def _check_account(ledger, account, seen_state) -> str | None:
    """Record drift for one listed account. A cheap read first; the write transaction (which
    takes the writers' lock) only when something seems to have drifted, and it decides again."""
    first = decide_drift(seen_state, account)
    if first is None or first[1] is None:
        return first[0] if first else None
    with ledger.transaction() as txn:
        state = txn.connection(account.id)
        decision = decide_drift(state, account)
        if decision is None or decision[1] is None:
            return decision[0] if decision else None
        tenant = state.tenant if state else account.user_id
        txn.append(connection_stream(account.id), [decision[1]], meta=make_meta(RECONCILER, tenant))
    return decision[0]


def _check_missing(ledger, gateway, cid: str) -> str | None:
    """A live connection absent from the listing: confirm with Composio, then record it."""
    try:
        account = gateway.get(cid)
    except errors.UpstreamNotFound:
        account = None
    except errors.UpstreamError as exc:
        log.warning("reconcile: could not confirm %s is gone (%s); left as it is", cid, exc.code)
        return "errors"
    if account is not None:  # the listing missed it (it moved between pages): check it normally
        return _check_account(ledger, account, _states(ledger, [cid]).get(cid))
    with ledger.transaction() as txn:
        state = txn.connection(cid)
        gone = decide_missing(state)
        if gone is None:
            return None  # disconnected by the service meanwhile
        txn.append(connection_stream(cid), [gone], meta=make_meta(RECONCILER, state.tenant))
    return "missing"


# -- reads -------------------------------------------------------------------------------------

def _live_ids(ledger, user_id: str | None) -> set[str]:
    return ledger.store.live_connection_ids(OURS, user_id)


def _states(ledger, ids: list[str]) -> dict[str, ConnectionState]:
    return ledger.store.connection_states(ids)


def _count(counts: dict, outcome: str | None) -> None:
    if outcome:
        counts[outcome] += 1


def _report(ledger, counts: dict, user_id: str | None, started: str) -> None:
    """The run's counts: in the log, and in reconcile_runs for /metrics (cron runs this in a
    process of its own, whose counters die with it). Not in the ledger: a run that finds
    nothing must record nothing there."""
    counters.inc("reconcile.runs")
    for name in (*DRIFT, "errors"):
        if counts[name]:
            counters.inc(f"reconcile.{name}", counts[name])
    ledger.store.record_reconcile_run(started, ledger.now(), user_id, counts)
    log.info("reconcile%s: %s", f" (user {user_id})" if user_id else "",
             " ".join(f"{k}={v}" for k, v in counts.items()))


def last_runs(ledger, limit: int = 5) -> list[dict]:
    """The latest reconcile runs, newest first."""
    return ledger.store.reconcile_runs(limit)
