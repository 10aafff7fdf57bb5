"""SQL of the outgoing lifecycle webhooks: endpoints, and the deliveries owed to them.

A delivery row is written by the write transaction that records the event (UnitOfWork.flush
calls `enqueue`): one INSERT ... SELECT per event over the tenant's live endpoints, sent with
the transaction's other writes (on PostgreSQL in the same round trip as the COMMIT). It names
the event by (stream, version), which is known at commit on both backends; the relay claims
only deliveries whose event has been sealed and reads its seq, prev_hash and hash then.
"""
from __future__ import annotations

import json
import re

from sqlalchemy import and_, func, select, update

from .. import envelope as ev
from ..projections import evolve_connection
from .tables import events, webhook_deliveries as wd, webhook_endpoints as we

_ENQUEUE = (
    "INSERT INTO webhook_deliveries (endpoint_id, tenant, connection_id, stream, version, event_type, payload, "
    "status, attempts, not_before, created_at, updated_at) "
    "SELECT id, tenant, :cid, :stream, :version, :etype, :payload, 'pending', 0, :now, :now, :now "
    "FROM webhook_endpoints WHERE tenant = :tenant AND deleted_at IS NULL "
    "AND (event_types = '' OR event_types LIKE :pattern ESCAPE '\\')")
_NAMED = re.compile(r":([a-z_]+)")
_PYFORMAT = _NAMED.sub(r"%(\1)s", _ENQUEUE)


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def enqueue(txn, cur, envs: list) -> None:
    """Owe each connection event of `envs` (just appended by `txn`) to its tenant's endpoints.

    Each event's body is taken with the connection as that event left it (the projection
    replayed over the transaction's own events, from the row as the database had it)."""
    from ..webhook_out import payload, with_revoked
    states, rows = {}, []
    for env in envs:
        if not env.stream.startswith("connection:"):
            continue  # only a connection stream's versions are gap-free per connection
        cid = env.connection_id
        before = states[cid] if cid in states else txn.state_before(cid)
        state = states[cid] = evolve_connection(before, env)
        if state is None or not state.tenant:
            continue
        body = payload(env, state)
        if env.type == ev.DISCONNECT_COMPLETED:
            body = with_revoked(body, _revoked(txn, env))
        public = body["type"]
        rows.append({"cid": cid, "stream": env.stream, "version": env.version, "etype": public,
                     "payload": json.dumps(body, sort_keys=True, separators=(",", ":")),
                     "now": txn.now, "tenant": state.tenant, "pattern": "%," + _like_literal(public) + ",%"})
    if rows:
        cur.executemany(_PYFORMAT if txn.conn.dialect.name == "postgresql" else _ENQUEUE, rows)


def _revoked(txn, env) -> dict | None:
    """The data of the stream's last grant revoke (what connection.disconnected reports)."""
    for e in reversed(txn.recorded):
        if e.stream == env.stream and e.type == ev.UPSTREAM_REVOKED:
            return e.data
    row = txn.conn.execute(select(events.c.data).where(events.c.stream == env.stream,
                                                        events.c.type == ev.UPSTREAM_REVOKED)
                           .order_by(events.c.version.desc()).limit(1)).first()
    return json.loads(row[0]) if row else None


# -- endpoints ---------------------------------------------------------------------------------
PUBLIC_ENDPOINT_COLUMNS = (we.c.id, we.c.tenant, we.c.url, we.c.description, we.c.event_types, we.c.created_at,
                           we.c.created_by)


def insert_endpoint(conn, **values) -> None:
    conn.execute(we.insert().values(**values))


def list_endpoints(conn, tenant: str) -> list[dict]:
    """The tenant's live endpoints with their delivery counts; never the secret."""
    rows = conn.execute(select(*PUBLIC_ENDPOINT_COLUMNS).where(we.c.tenant == tenant, we.c.deleted_at.is_(None))
                        .order_by(we.c.created_at, we.c.id)).all()
    counts = {}
    if rows:
        for eid, status, n in conn.execute(select(wd.c.endpoint_id, wd.c.status, func.count())
                                           .where(wd.c.endpoint_id.in_([r.id for r in rows]))
                                           .group_by(wd.c.endpoint_id, wd.c.status)).all():
            counts.setdefault(eid, {})[status] = int(n)
    return [{**dict(r._mapping), "counts": counts.get(r.id, {})} for r in rows]


def live_endpoint(conn, tenant: str, endpoint_id: str):
    return conn.execute(select(*PUBLIC_ENDPOINT_COLUMNS).where(
        we.c.id == endpoint_id, we.c.tenant == tenant, we.c.deleted_at.is_(None))).first()


def delete_endpoint(conn, endpoint_id: str, now: str) -> int:
    """Mark it deleted (its secret is wiped: it signs nothing any more) and cancel what it was owed."""
    conn.execute(update(we).where(we.c.id == endpoint_id).values(deleted_at=now, secret=""))
    return conn.execute(update(wd).where(wd.c.endpoint_id == endpoint_id, wd.c.status == "pending")
                        .values(status="cancelled", updated_at=now)).rowcount


# -- deliveries --------------------------------------------------------------------------------
def claim(conn, *, now: str, until: str, worker: str, limit: int, postgres: bool,
          endpoint_id: str | None = None) -> list[dict]:
    """Due deliveries of sealed events, at most the oldest pending one per (endpoint, connection)
    so each connection's events reach an endpoint in order; leased to `worker` until `until`."""
    # Each (endpoint, stream)'s lowest pending version, grouped once: a NOT EXISTS (an earlier
    # pending one) per candidate was planned, before the table's statistics caught up with a
    # burst, as one index scan of every pending row per pending row (74 ms a claim at 1,000).
    d2 = wd.alias("open")
    first_open = (select(d2.c.endpoint_id, d2.c.stream, func.min(d2.c.version).label("version"))
                  .where(d2.c.status == "pending").group_by(d2.c.endpoint_id, d2.c.stream).subquery("first_open"))
    q = (select(wd.c.id, wd.c.endpoint_id, wd.c.tenant, wd.c.connection_id, wd.c.stream, wd.c.version,
                wd.c.payload, wd.c.attempts, wd.c.claimed_by, wd.c.created_at,
                events.c.seq, events.c.prev_hash, events.c.hash, we.c.url, we.c.secret)
         .select_from(wd)
         .join(first_open, and_(first_open.c.endpoint_id == wd.c.endpoint_id, first_open.c.stream == wd.c.stream,
                                first_open.c.version == wd.c.version))
         .join(events, and_(events.c.stream == wd.c.stream, events.c.version == wd.c.version))
         .join(we, we.c.id == wd.c.endpoint_id)
         # deleted_at: a write that read the endpoint just before its deletion committed may
         # still owe it a delivery; a deleted endpoint is never called (its secret is wiped).
         .where(wd.c.status == "pending", wd.c.not_before <= now, events.c.seq.is_not(None), we.c.deleted_at.is_(None),
                (wd.c.claimed_until.is_(None)) | (wd.c.claimed_until < now))
         .order_by(wd.c.id).limit(limit))
    if endpoint_id:
        q = q.where(wd.c.endpoint_id == endpoint_id)
    if postgres:
        q = q.with_for_update(skip_locked=True, of=wd)
    rows = [dict(r._mapping) for r in conn.execute(q).all()]
    if rows:  # one statement for the lot: on PostgreSQL each statement is a round trip
        conn.execute(update(wd).where(wd.c.id.in_([r["id"] for r in rows])).values(
            claimed_by=worker, claimed_until=until, updated_at=now))
    return rows


def claimed_rows(conn, delivery_ids: list[int]) -> dict:
    """The deliveries as they are now, by id (whose lease, which status, attempts so far)."""
    return {r.id: r for r in conn.execute(select(wd).where(wd.c.id.in_(delivery_ids))).all()}


def set_done(conn, delivery_ids: list[int], now: str) -> None:
    """Delivered: one statement for a relay pass's successes."""
    conn.execute(update(wd).where(wd.c.id.in_(delivery_ids)).values(
        status="done", attempts=wd.c.attempts + 1, delivered_at=now, claimed_until=None, last_error=None,
        updated_at=now))


def set_delivery(conn, delivery_id: int, now: str, **values) -> None:
    conn.execute(update(wd).where(wd.c.id == delivery_id).values(updated_at=now, **values))


def requeue(conn, now: str, *, delivery_ids=None, endpoint_id: str | None = None,
            statuses=("dead",)) -> int:
    """Put deliveries back to run now, attempts and retry window counted afresh."""
    q = update(wd).where(wd.c.status.in_(statuses))
    if delivery_ids is not None:
        q = q.where(wd.c.id.in_(list(delivery_ids)))
    if endpoint_id is not None:
        q = q.where(wd.c.endpoint_id == endpoint_id)
    # never one whose endpoint was deleted: it has no secret left to sign with
    q = q.where(wd.c.endpoint_id.in_(select(we.c.id).where(we.c.deleted_at.is_(None))))
    return conn.execute(q.values(status="pending", attempts=0, not_before=now, claimed_by=None,
                                 claimed_until=None, created_at=now, updated_at=now)).rowcount


def backlog(conn, now: str) -> dict:
    due = conn.execute(select(func.count()).select_from(wd).where(wd.c.status == "pending",
                                                                 wd.c.not_before <= now)).scalar()
    later = conn.execute(select(func.count()).select_from(wd).where(wd.c.status == "pending",
                                                                   wd.c.not_before > now)).scalar()
    dead = conn.execute(select(func.count()).select_from(wd).where(wd.c.status == "dead")).scalar()
    return {"pending": int(due), "scheduled": int(later), "dead": int(dead)}


def list_deliveries(conn, *, statuses=("pending", "dead"), endpoint_id: str | None = None,
                    limit: int = 500) -> list[dict]:
    q = (select(wd.c.id, wd.c.endpoint_id, wd.c.tenant, wd.c.connection_id, wd.c.stream, wd.c.version,
                wd.c.event_type, wd.c.status, wd.c.attempts, wd.c.not_before, wd.c.last_error,
                wd.c.delivered_at, wd.c.created_at)
         .where(wd.c.status.in_(statuses)).order_by(wd.c.id).limit(limit))
    if endpoint_id is not None:
        q = q.where(wd.c.endpoint_id == endpoint_id)
    return [dict(r._mapping) for r in conn.execute(q).all()]
