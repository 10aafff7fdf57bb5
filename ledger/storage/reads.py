"""Reads of the projection and of the operational tables (outbox, reconcile runs), for the use
cases: each answers in domain values (ConnectionState, Binding), never a row or a query."""
from __future__ import annotations

import json

from sqlalchemy import func, insert, select

from ..envelope import EVENT_COLUMNS, Envelope
from ..projections import Binding, ConnectionState
from .tables import bindings, connections, events, idempotency_keys, outbox, reconcile_runs


class Reads:
    """Mixed into EventStore: every method reads through `self.read()` (one snapshot each)."""

    def connections_with_agents(self, *, user_id: str | None = None, tenant: str | None = None,
                                status: str | None = None, toolkit: str | None = None,
                                agent_id: str | None = None) -> list[tuple[ConnectionState, tuple]]:
        """Connections of a person (user_id) or a tenant, each with all its bindings (two
        statements): filtered by status, toolkit, or being bound to agent_id."""
        q = select(connections)
        if agent_id is not None:
            q = q.join(bindings, bindings.c.connection_id == connections.c.connection_id) \
                 .where(bindings.c.agent_id == agent_id)
        q = q.where(connections.c.tenant == tenant) if user_id is None else q.where(connections.c.user_id == user_id)
        if status:
            q = q.where(connections.c.status == status)
        if toolkit:
            q = q.where(connections.c.toolkit == toolkit)
        order = (connections.c.connection_id,) if agent_id is not None else \
            (connections.c.created_at, connections.c.connection_id)
        with self.read() as conn:
            rows = conn.execute(q.order_by(*order)).all()
            ids = [r.connection_id for r in rows]
            brows = conn.execute(select(bindings).where(bindings.c.connection_id.in_(ids))
                                 .order_by(bindings.c.agent_id)).all() if ids else []
        by_conn: dict = {}
        for b in brows:
            by_conn.setdefault(b.connection_id, []).append(Binding.from_row(b))
        return [(ConnectionState.from_row(r), tuple(by_conn.get(r.connection_id, ()))) for r in rows]

    def live_connection_ids(self, excluding: frozenset, user_id: str | None = None) -> set[str]:
        """Ids of connections whose status is not in `excluding` (of one person, if given)."""
        q = select(connections.c.connection_id).where(connections.c.status.not_in(sorted(excluding)))
        if user_id is not None:
            q = q.where(connections.c.user_id == user_id)
        with self.read() as conn:
            return {row[0] for row in conn.execute(q)}

    def expiring_connections(self, until: str, statuses: list[str]) -> list[str]:
        """Ids of connections in `statuses` whose credential expires by `until` and whose expiry
        has not been announced yet (expiry_warned_for differs from expires_at)."""
        c = connections.c
        q = select(c.connection_id).where(c.expires_at.is_not(None), c.expires_at <= until, c.status.in_(statuses),
                                          (c.expiry_warned_for.is_(None)) | (c.expiry_warned_for != c.expires_at)) \
            .order_by(c.expires_at, c.connection_id)
        with self.read() as conn:
            return [row[0] for row in conn.execute(q)]

    def connection_states(self, ids: list[str]) -> dict[str, ConnectionState]:
        if not ids:
            return {}
        with self.read() as conn:
            rows = conn.execute(select(connections).where(connections.c.connection_id.in_(ids))).all()
        return {r.connection_id: ConnectionState.from_row(r) for r in rows}

    # -- the outbox, as an operator sees it ------------------------------------------------------
    def outbox_backlog(self, at: str) -> tuple[int, str | None, int, int]:
        """(due now, the oldest due one's not_before, scheduled later, dead) at time `at`."""
        with self.read() as conn:
            due, oldest = conn.execute(select(func.count(), func.min(outbox.c.not_before))
                                       .where(outbox.c.status == "pending", outbox.c.not_before <= at)).one()
            later = conn.execute(select(func.count()).select_from(outbox).where(
                outbox.c.status == "pending", outbox.c.not_before > at)).scalar()
            dead = conn.execute(select(func.count()).select_from(outbox).where(outbox.c.status == "dead")).scalar()
        return int(due), oldest, int(later), int(dead)

    def outbox_actions(self, statuses) -> list[dict]:
        with self.read() as conn:
            rows = conn.execute(select(outbox).where(outbox.c.status.in_(statuses)).order_by(outbox.c.id)).all()
        return [dict(r._mapping) for r in rows]

    # -- reconcile runs (not in the ledger: a run that finds nothing records nothing there) ------
    def record_reconcile_run(self, started_at: str, finished_at: str, user_id: str | None, counts: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(reconcile_runs).values(started_at=started_at, finished_at=finished_at,
                                                       user_id=user_id, counts=json.dumps(counts, sort_keys=True)))

    def reconcile_runs(self, limit: int = 5) -> list[dict]:
        """The latest runs, newest first."""
        with self.read() as conn:
            rows = conn.execute(select(reconcile_runs).order_by(reconcile_runs.c.id.desc()).limit(limit)).all()
        return [{"started_at": r.started_at, "finished_at": r.finished_at, "user_id": r.user_id,
                 "counts": json.loads(r.counts)} for r in rows]


class PageReads:
    """The inventory's keyset pages and the offboarding's reads (issue 15), mixed into EventStore
    beside Reads."""

    def connections_page(self, *, tenant: str | None = None, user_id: str | None = None,
                         status: str | None = None, toolkit: str | None = None,
                         unused_before: str | None = None, after: tuple[str, str] | None = None,
                         limit: int = 100) -> tuple[list[tuple[ConnectionState, tuple]], int]:
        """One page of connections in (created_at, connection_id) order, strictly after `after`
        (a keyset: a connection added meanwhile never shifts a page), each with all its bindings,
        and the total matching the filters. Three statements whatever the page size: the page,
        its bindings (batched, no query per connection), the count. `unused_before`: no use since that time (never
        used ones count when created before it)."""
        from sqlalchemy import and_, or_
        conds = []
        if tenant is not None:
            conds.append(connections.c.tenant == tenant)
        if user_id is not None:
            conds.append(connections.c.user_id == user_id)
        if status:
            conds.append(connections.c.status == status)
        if toolkit:
            conds.append(connections.c.toolkit == toolkit)
        if unused_before:
            conds.append(or_(connections.c.last_used_at < unused_before,
                             and_(connections.c.last_used_at.is_(None), connections.c.created_at < unused_before)))
        page = select(connections).where(*conds)
        if after is not None:
            # Spelt out rather than a row-value comparison: both backends plan it on the index.
            created, cid = after
            page = page.where(or_(connections.c.created_at > created,
                                  and_(connections.c.created_at == created, connections.c.connection_id > cid)))
        page = page.order_by(connections.c.created_at, connections.c.connection_id).limit(limit)
        with self.read() as conn:
            rows = conn.execute(page).all()
            ids = [r.connection_id for r in rows]
            brows = conn.execute(select(bindings).where(bindings.c.connection_id.in_(ids))
                                 .order_by(bindings.c.agent_id)).all() if ids else []
            total = conn.execute(select(func.count()).select_from(connections).where(*conds)).scalar()
        by_conn: dict = {}
        for b in brows:
            by_conn.setdefault(b.connection_id, []).append(Binding.from_row(b))
        return [(ConnectionState.from_row(r), tuple(by_conn.get(r.connection_id, ()))) for r in rows], int(total)

    def person_connections(self, user_id: str, tenant: str | None = None) -> list[ConnectionState]:
        """Every connection of a person (of one tenant, if given), oldest first."""
        q = select(connections).where(connections.c.user_id == user_id)
        if tenant is not None:
            q = q.where(connections.c.tenant == tenant)
        with self.read() as conn:
            rows = conn.execute(q.order_by(connections.c.created_at, connections.c.connection_id)).all()
        return [ConnectionState.from_row(r) for r in rows]

    def idempotency_record(self, key: str) -> dict | None:
        """What a key recorded: {scope (the stream), first_version, last_version, response}."""
        with self.read() as conn:
            row = conn.execute(select(idempotency_keys.c.scope, idempotency_keys.c.first_version,
                                      idempotency_keys.c.last_version, idempotency_keys.c.response)
                               .where(idempotency_keys.c.key == key)).first()
        return dict(row._mapping) if row else None

    def stream_events(self, streams: list[str], types: frozenset | None = None,
                      after_seq: int = 0) -> list[Envelope]:
        """Sealed events of several streams (of these types) after a seq, in seq order: one
        statement for all of them."""
        if not streams:
            return []
        q = select(*[events.c[name] for name in EVENT_COLUMNS]).where(
            events.c.stream.in_(streams), events.c.seq.isnot(None), events.c.seq > after_seq)
        if types:
            q = q.where(events.c.type.in_(sorted(types)))
        with self.read() as conn:
            rows = conn.execute(q.order_by(events.c.seq)).all()
        return [Envelope.from_row(r) for r in rows]
