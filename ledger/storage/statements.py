"""The append path's statements, run on the driver's own cursor inside SQLAlchemy's transaction.

Measured here (bench/README.md): building and executing each small statement through
SQLAlchemy cost several times the statement itself, and an append runs about six of them.
The transaction, pooling and every other query stay with SQLAlchemy; only these fixed
statements skip its per-call work. Written with :name parameters, rewritten for psycopg.
"""
from __future__ import annotations

import re

from ..envelope import EVENT_COLUMNS
from ..projections import BINDING_COLUMNS, CONNECTION_COLUMNS, META_READERS

# What a writer inserts where the sequencer seals later (PostgreSQL): no seq and no hashes yet.
UNSEQUENCED_COLUMNS = tuple(c for c in EVENT_COLUMNS if c not in ("seq", "prev_hash", "hash"))

_STATEMENTS = {
    "head": "SELECT seq, hash, recorded_at FROM ledger_head WHERE id = 1",
    "head_locked": "SELECT seq, hash, recorded_at FROM ledger_head WHERE id = 1 FOR UPDATE",
    "update_head": "UPDATE ledger_head SET seq = :seq, hash = :hash, recorded_at = :recorded_at WHERE id = 1",
    "stream_version": "SELECT max(version) FROM events WHERE stream = :stream",
    "insert_event": "INSERT INTO events ({}) VALUES ({})".format(
        ", ".join(EVENT_COLUMNS), ", ".join(":" + c for c in EVENT_COLUMNS)),
    "connection": "SELECT {} FROM connections WHERE connection_id = :cid".format(", ".join(CONNECTION_COLUMNS)),
    "insert_connection": "INSERT INTO connections ({}) VALUES ({})".format(
        ", ".join(CONNECTION_COLUMNS), ", ".join(":" + c for c in CONNECTION_COLUMNS)),
    "scan": "SELECT {} FROM events WHERE seq > :after AND seq <= :until_seq AND recorded_at <= :until_time "
            "ORDER BY seq".format(", ".join(EVENT_COLUMNS)),
    # What the projections read, and no more: meta only where one reads it, no hashes.
    "replay_scan": "SELECT seq, stream, version, type, schema, data, CASE WHEN type IN ({}) THEN meta END, "
                   "occurred_at, recorded_at FROM events WHERE seq > :after AND seq <= :until_seq "
                   "AND recorded_at <= :until_time ORDER BY seq".format(
                       ", ".join("'%s'" % t for t in sorted(META_READERS))),
    "bindings_of": "SELECT agent_id, connection_id, tenant, bound_at, bound_by FROM bindings "
                   "WHERE connection_id = :cid ORDER BY agent_id",
    "connection_and_agents": "SELECT {}, b.agent_id, b.tenant, b.bound_at, b.bound_by FROM connections c "
                             "LEFT JOIN bindings b ON b.connection_id = c.connection_id "
                             "WHERE c.connection_id = :cid ORDER BY b.agent_id".format(
                                 ", ".join("c." + col for col in CONNECTION_COLUMNS)),
    "idempotency": "SELECT key, scope, first_version, last_version, response FROM idempotency_keys WHERE key = :key",
    "insert_idempotency": "INSERT INTO idempotency_keys (key, scope, first_version, last_version, response, recorded_at) "
                          "VALUES (:key, :scope, :first_version, :last_version, :response, :recorded_at)",
    # PostgreSQL's writers: events go in unsequenced, and a connection they may change is row-locked.
    "insert_unsequenced": "INSERT INTO events ({}) VALUES ({})".format(
        ", ".join(UNSEQUENCED_COLUMNS), ", ".join(":" + c for c in UNSEQUENCED_COLUMNS)),
    "connection_locked": "SELECT {} FROM connections WHERE connection_id = :cid FOR UPDATE".format(
        ", ".join(CONNECTION_COLUMNS)),
    "delete_bindings": "DELETE FROM bindings WHERE connection_id = :cid",
    "delete_all_bindings": "DELETE FROM bindings",
    "delete_all_connections": "DELETE FROM connections",
    "live_connections": "SELECT {} FROM connections ORDER BY connection_id".format(", ".join(CONNECTION_COLUMNS)),
    "live_bindings": "SELECT {} FROM bindings ORDER BY connection_id, agent_id".format(", ".join(BINDING_COLUMNS)),
    "insert_binding": "INSERT INTO bindings (agent_id, connection_id, tenant, bound_at, bound_by) "
                      "VALUES (:agent_id, :connection_id, :tenant, :bound_at, :bound_by)",
}
_NAMED = re.compile(r":([a-z_]+)")
_CONNECTION_COLUMN_SET = frozenset(CONNECTION_COLUMNS)


class Statements:
    """Statement text in one driver's parameter style ("named": sqlite3, "pyformat": psycopg)."""

    def __init__(self, paramstyle: str = "named"):
        self._convert = (lambda s: _NAMED.sub(r"%(\1)s", s)) if paramstyle == "pyformat" else (lambda s: s)
        self.sql = {name: self._convert(text) for name, text in _STATEMENTS.items()}
        self._updates: dict[tuple, str] = {}

    def update_connection(self, cur, changes: dict, cid: str) -> None:
        """UPDATE of just the changed columns (one statement text per column set, cached)."""
        columns = tuple(changes)
        sql = self._updates.get(columns)
        if sql is None:
            if not set(columns) <= _CONNECTION_COLUMN_SET or "connection_id" in columns:
                raise ValueError(f"not updatable connection columns: {columns}")
            sql = self._updates[columns] = self._convert("UPDATE connections SET {} WHERE connection_id = :cid_".format(
                ", ".join(f"{c} = :{c}" for c in columns)))
        cur.execute(sql, {**changes, "cid_": cid})

    def one(self, cur, name: str, params: dict | None = None):
        cur.execute(self.sql[name], params or {})
        return cur.fetchone()

    def all(self, cur, name: str, params: dict) -> list:
        cur.execute(self.sql[name], params)
        return cur.fetchall()

    def run(self, cur, name: str, params: dict) -> int:
        cur.execute(self.sql[name], params)
        return cur.rowcount

    def many(self, cur, name: str, rows: list[dict]) -> None:
        cur.executemany(self.sql[name], rows)
