"""Realistic connection events, the same for us, the peer and the raw driver.

A connection lives ten events: initiated, activated, seven `used` (trigger messages), and a
disconnect request. Histories of 1,000 connections are interleaved (each step of every live
connection before the next step), so the projection keeps ~1,000 connections hot at a time,
as a busy service would. N events make N/10 connections.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from ledger import envelope as ev
from ledger.chain import GENESIS_HASH, canonical_json, envelope_text, link
from ledger.clock import UTC, iso

TRIGGER = "GITHUB_COMMIT_EVENT"
TENANTS = 10
LIFE = 10            # events per connection
LIVE = 1000          # connections interleaved at a time
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def cid(i: int) -> str:
    return f"ca_{i:08d}"


def tenant_of(i: int) -> str:
    return f"tenant_{i % TENANTS}"


def user_of(i: int) -> str:
    return f"user_{i % 10_000:05d}"


def meta(i: int) -> dict:
    return {"actor": {"kind": "composio", "id": "webhook"}, "tenant": tenant_of(i),
            "trace_id": "req_" + secrets.token_hex(16)}


def used_data(i: int, at: str) -> dict:
    """The payload of one trigger message: the append figures' event."""
    return {"connection_id": cid(i), "trigger_slug": TRIGGER, "at": at}


def step(i: int, k: int, at: str, tenant: str | None = None) -> tuple[str, dict]:
    """Event k (0..9) of connection i: (type, data)."""
    c = cid(i)
    if k == 0:
        return ev.INITIATED, {"connection_id": c, "user_id": user_of(i), "tenant": tenant or tenant_of(i),
                              "toolkit": "github", "status": "INITIATED"}
    if k == 1:
        return ev.ACTIVATED, {"connection_id": c, "status": "ACTIVE"}
    if k < LIFE - 1:
        return ev.USED, used_data(i, at)
    return ev.DISCONNECT_REQUESTED, {"connection_id": c, "purge_at": at, "previous_status": "ACTIVE",
                                     "immediate": False, "forced": False, "agents": []}


def history(n_events: int, first_conn: int = 0):
    """(connection index, version 1..10, type, data, time) for n_events, interleaved."""
    produced, block = 0, first_conn
    while produced < n_events:
        width = min(LIVE, -(-(n_events - produced) // LIFE))
        for k in range(LIFE):
            for i in range(block, block + width):
                if produced == n_events:
                    return
                at = iso(T0 + timedelta(microseconds=produced * 1000))
                type_, data = step(i, k, at)
                yield i, k + 1, type_, data, at
                produced += 1
        block += width


def opened(count: int, first_conn: int = 0, tenant: str | None = None):
    """Initiated and activated, for `count` connections: ACTIVE connections and nothing else."""
    for k in range(2):
        for i in range(first_conn, first_conn + count):
            at = iso(T0 + timedelta(microseconds=(k * count + i - first_conn) * 1000))
            type_, data = step(i, k, at, tenant)
            yield i, k + 1, type_, data, at


def chain_rows(steps, head: tuple[int, str] = (0, GENESIS_HASH)):
    """Event rows with a valid hash chain, built with ledger.chain's own functions."""
    seq, prev = head
    for i, version, type_, data, at in steps:
        seq += 1
        data_json, meta_json = canonical_json(data), canonical_json(meta(i))
        body = envelope_text(seq=seq, stream=f"connection:{cid(i)}", version=version, type=type_, schema=1,
                             data_json=data_json, meta_json=meta_json, occurred_at=at, recorded_at=at,
                             prev_hash=prev)
        h = link(prev, body)
        yield {"seq": seq, "stream": f"connection:{cid(i)}", "version": version, "type": type_, "schema": 1,
               "data": data_json, "meta": meta_json, "occurred_at": at, "recorded_at": at,
               "prev_hash": prev, "hash": h}
        prev = h


def seed_ledger(ledger, steps, batch: int = 20_000) -> None:
    """Chained events (history(n) or opened(n)) inserted in large executemany batches after the
    current head, head moved, projections rebuilt. Not measured; verify() proves the chain."""
    from sqlalchemy import insert, update
    from ledger.storage.tables import events, ledger_head
    engine = ledger.store.engine
    rows, last, latest = [], None, ""
    for row in chain_rows(steps, ledger.store.head()):
        rows.append(row)
        latest = max(latest, row["recorded_at"])
        if len(rows) == batch:
            with engine.begin() as conn:
                conn.execute(insert(events), rows)
            last, rows = rows[-1], []
    with engine.begin() as conn:
        if rows:
            conn.execute(insert(events), rows)
            last = rows[-1]
        if last:
            conn.execute(update(ledger_head).where(ledger_head.c.id == 1).values(seq=last["seq"], hash=last["hash"],
                                                                                recorded_at=latest))
    ledger.rebuild()
