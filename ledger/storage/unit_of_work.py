"""UnitOfWork: what one write transaction reads and writes (the use cases' only handle on storage).

It reads through a cache (a connection's state, its bindings, a stream's version, an
idempotency key are each read once) and buffers what it writes (event rows, idempotency rows,
projection rows) until `flush`, so the store can send all of it at once: on PostgreSQL the
reads go out with BEGIN and the head lock, and the writes with the COMMIT, two round trips in
all (see EventStore.write). Statements run on the driver's cursor, inside SQLAlchemy's transaction
(ledger/storage/statements.py); the rarer outbox statements use SQLAlchemy Core on `conn`.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, exists, insert, literal, select, text, update
from sqlalchemy.engine import Connection

from .. import errors
from ..chain import canonical_json, envelope_text, link
from ..envelope import EVENT_COLUMNS, Envelope, NewEvent
from .statements import Statements
from ..projections import Binding, ConnectionState, evolve
from ..clock import plus_seconds
from ..envelope import UPSTREAM_REVOKED
from .tables import connections, events, idempotency_keys, outbox, polls
from . import webhook_store

_EVENT_COLS = tuple(events.c[name] for name in EVENT_COLUMNS)
_IDEMPOTENCY_FIELDS = ("key", "scope", "first_version", "last_version", "response")


KEY_WIDTH = idempotency_keys.c.key.type.length


def fitted_key(namespace: str, name: str) -> str:
    """`namespace:name` as an idempotency key; hashed when it would not fit the key column."""
    key = f"{namespace}:{name}"
    if len(key) <= KEY_WIDTH:
        return key
    return f"{namespace}:sha256:" + hashlib.sha256(name.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Prefetch:
    """What a transaction is about to read; PostgreSQL fetches it with the head lock."""
    streams: tuple = ()        # their versions
    connections: tuple = ()    # their projection rows
    bindings: tuple = ()       # connection ids whose bindings are needed
    keys: tuple = ()           # idempotency keys


@dataclass
class UnitOfWork:
    """One serialised write transaction: appends, projection updates, outbox rows."""
    conn: Connection
    head_seq: int
    head_hash: str
    now: str
    hot: Statements
    _cursor: object = None
    # True: seq, prev_hash and hash are sealed here, at the head (SQLite's one writer). False
    # (PostgreSQL): events are inserted unsequenced and their envelopes are provisional until
    # the sequencer reaches them: seq = -version (what last_seq and causation_seq hold until
    # sealed, see sealing in postgres.py), no hashes, recorded_at = this transaction's time.
    # The connections it reads are then row-locked, since no chain lock keeps writers apart.
    inline: bool = True
    awaited: list = field(default_factory=list)     # (stream, version) of earlier results returned
    sealed: dict = field(default_factory=dict)      # after commit: (stream, version) -> sealed Envelope
    batch: tuple | None = None                      # PostgreSQL: (the feed's generation before, when it
                                                    # committed, what the writer's own seal after commit
                                                    # sealed, or False if another sealer was at work)
    recorded: list = field(default_factory=list)
    _states: dict = field(default_factory=dict)     # connection_id -> ConnectionState | None
    _stored: dict = field(default_factory=dict)     # connection_id -> the row as the database has it
    _bindings: dict = field(default_factory=dict)   # connection_id -> tuple[Binding]
    _versions: dict = field(default_factory=dict)   # stream -> its version, this transaction included
    _keys: dict = field(default_factory=dict)       # idempotency key -> its record, or None
    _new_events: list = field(default_factory=list)
    _new_keys: list = field(default_factory=list)
    _dirty: set = field(default_factory=set)        # ("b" | "c", connection_id)
    _enqueued: int = 0
    _hooked: int = 0                                # recorded events already owed to webhook endpoints

    @property
    def cur(self):
        """The driver's cursor, inside this same transaction (see ledger/storage/statements.py)."""
        if self._cursor is None:
            self._cursor = self.conn.connection.driver_connection.cursor()
        return self._cursor

    # -- reads: each fact once, cached for the rest of the transaction --------------------------
    def connection(self, cid: str) -> ConnectionState | None:
        if cid not in self._states:
            self._keep_connection(cid, self.hot.one(self.cur, "connection" if self.inline else "connection_locked",
                                                    {"cid": cid}))
        return self._states[cid]

    def bindings_of(self, cid: str) -> tuple:
        if cid not in self._bindings:
            self._keep_bindings(cid, self.hot.all(self.cur, "bindings_of", {"cid": cid}))
        return self._bindings[cid]

    def stream_version(self, stream: str) -> int:
        if stream not in self._versions:
            self._keep_version(stream, self.hot.one(self.cur, "stream_version", {"stream": stream}))
        return self._versions[stream]

    def idempotent_result(self, key: str) -> dict | None:
        if key not in self._keys:
            self._keep_key(key, self.hot.one(self.cur, "idempotency", {"key": key}))
        return self._keys[key]

    def prefetch_plan(self, wanted: Prefetch) -> list[tuple[str, str, str, dict]]:
        """The reads `wanted` names, as (kind, item, statement name, parameters): the store sends
        them together and hands each answer to `keep`."""
        plan = []
        # The connections first: where they are row-locked, every later read of the plan takes
        # its snapshot once the locks are held (READ COMMITTED: one snapshot per statement), so
        # it sees what the previous holder committed. Sorted: writers lock in one order.
        for kind, name, param, items in (
                ("connection", "connection" if self.inline else "connection_locked", "cid",
                 tuple(sorted(c for c in wanted.connections if c))),
                ("version", "stream_version", "stream", wanted.streams),
                ("bindings", "bindings_of", "cid", wanted.bindings),
                ("key", "idempotency", "key", wanted.keys)):
            plan += [(kind, item, name, {param: item}) for item in dict.fromkeys(i for i in items if i)]
        return plan

    def keep(self, kind: str, item: str, rows: list) -> None:
        """Cache the answer to one planned read (all its rows)."""
        if kind == "bindings":
            self._keep_bindings(item, rows)
        else:
            getattr(self, "_keep_" + kind)(item, rows[0] if rows else None)

    def _keep_connection(self, cid, row) -> None:
        self._states[cid] = self._stored[cid] = ConnectionState(*row) if row else None

    def _keep_bindings(self, cid, rows) -> None:
        self._bindings[cid] = tuple(Binding(*r) for r in rows)

    def _keep_version(self, stream, row) -> None:
        self._versions[stream] = (row[0] if row else 0) or 0

    def _keep_key(self, key, row) -> None:
        self._keys[key] = dict(zip(_IDEMPOTENCY_FIELDS, row)) if row else None

    # -- appends -------------------------------------------------------------------------------
    def append(self, stream: str, new: list[NewEvent], expected_version: int | None = None,
               meta: dict | None = None, idempotency_key: str | None = None,
               response: str | None = None) -> list[Envelope]:
        """Append events to a stream at the chain's head; project them in this transaction."""
        if idempotency_key:
            prior = self.idempotent_result(idempotency_key)
            if prior is not None:
                return self.read_range(prior["scope"], prior["first_version"], prior["last_version"])
        current = self.stream_version(stream)
        if expected_version is not None and expected_version != current:
            raise errors.ConcurrencyError(f"{stream} is at version {current}, not {expected_version}",
                                          stream=stream, actual=current, expected=expected_version)
        envs = self._seal(stream, current, new, meta or {}, idempotency_key)
        if envs:
            self._versions[stream] = envs[-1].version
            self._new_events.extend(_env_row(e) for e in envs)
            self._project(envs)
            self.recorded.extend(envs)
        if idempotency_key:
            self.remember(idempotency_key, stream, envs, response)
        return envs

    def remember(self, key: str, scope: str, envs: list[Envelope], response: str | None) -> None:
        """Record an idempotency key and what it produced (written at flush)."""
        row = {"key": key, "scope": scope, "first_version": envs[0].version if envs else None,
               "last_version": envs[-1].version if envs else None, "response": response, "recorded_at": self.now}
        self._new_keys.append(row)
        self._keys[key] = {k: row[k] for k in _IDEMPOTENCY_FIELDS}

    def final(self, envs: list[Envelope]) -> list[Envelope]:
        """After commit: `envs` (as append returned them) with their seq and hash."""
        return [self.sealed.get((e.stream, e.version), e) for e in envs]

    def complete_key(self, key: str, envs: list[Envelope], response: str) -> None:
        """Fill in a key reserved earlier (remember with no response) with what it produced."""
        self.conn.execute(update(idempotency_keys).where(idempotency_keys.c.key == key).values(
            first_version=envs[0].version if envs else None, last_version=envs[-1].version if envs else None,
            response=response, recorded_at=self.now))

    def release_key(self, key: str) -> None:
        """Drop a reservation whose request failed, so a retry may run."""
        self.conn.execute(delete(idempotency_keys).where(idempotency_keys.c.key == key,
                                                         idempotency_keys.c.response.is_(None)))

    def take_over_key(self, key: str, older_than: str) -> bool:
        """Take over a reservation made before `older_than` (its request died); False if it is
        younger, i.e. still in flight."""
        done = self.conn.execute(update(idempotency_keys).where(
            idempotency_keys.c.key == key, idempotency_keys.c.response.is_(None),
            idempotency_keys.c.recorded_at < older_than).values(recorded_at=self.now))
        return done.rowcount == 1

    def read_range(self, stream: str, first: int | None, last: int | None) -> list[Envelope]:
        """Committed events of `stream`, versions first..last (what an earlier use of an
        idempotency key recorded). Possibly not yet sequenced: the store hands out their sealed
        envelopes after commit (see EventStore.sealed)."""
        if first is None:
            return []
        rows = self.conn.execute(select(*_EVENT_COLS).where(events.c.stream == stream,
                                                             events.c.version.between(first, last))
                                 .order_by(events.c.version)).all()
        self.awaited.extend((stream, r.version) for r in rows)
        return [Envelope.from_row(r) if r.seq is not None else
                Envelope.from_row(r)._replace(seq=-r.version, prev_hash="", hash="") for r in rows]

    def _seal(self, stream, version, new, meta, idempotency_key) -> list[Envelope]:
        out = []
        if idempotency_key:
            meta = {**meta, "idempotency_key": idempotency_key}
        meta_json = canonical_json(meta)
        if not self.inline:
            return self._provisional(stream, version, new, meta, meta_json)
        for ne in new:
            self.head_seq += 1
            version += 1
            data_json = canonical_json(ne.data)
            occurred = ne.occurred_at or self.now
            body = envelope_text(seq=self.head_seq, stream=stream, version=version, type=ne.type,
                                 schema=ne.schema, data_json=data_json, meta_json=meta_json,
                                 occurred_at=occurred, recorded_at=self.now, prev_hash=self.head_hash)
            h = link(self.head_hash, body)
            out.append(Envelope(self.head_seq, stream, version, ne.type, ne.schema, ne.data, meta,
                                occurred, self.now, self.head_hash, h, data_json, meta_json))
            self.head_hash = h
        return out

    def _provisional(self, stream, version, new, meta, meta_json) -> list[Envelope]:
        out = []
        for ne in new:
            version += 1
            data_json = canonical_json(ne.data)
            out.append(Envelope(-version, stream, version, ne.type, ne.schema, ne.data, meta,
                                ne.occurred_at or self.now, self.now, "", "", data_json, meta_json))
        return out

    def _project(self, envs: list[Envelope]) -> None:
        for env in envs:
            cid = env.connection_id
            if cid is None:
                continue
            before = self.connection(cid)
            after, bound = evolve(before, lambda: self.bindings_of(cid), env)  # noqa: B023 (called here)
            if after is not before:
                self._states[cid] = after
                self._dirty.add(("c", cid))
            if bound is not None:
                self._bindings[cid] = bound
                self._dirty.add(("b", cid))

    # -- outbox: Composio actions owed, written in the same transaction as their event ----------
    def enqueue(self, connection_id: str, action: str, not_before: str, causation_seq: int) -> str:
        # Ids sort in the order actions were owed, so the relay runs a connection's in order.
        # Made from the causing event's stream version, known at commit on both backends (its
        # seq is not, on PostgreSQL); "act_v" sorts after the older seq-made ids.
        self._enqueued += 1
        version = -causation_seq if causation_seq < 0 else next(
            (e.version for e in self.recorded if e.seq == causation_seq), 0)
        action_id = f"act_v{version:012d}_{self._enqueued:02d}_{uuid.uuid4().hex[:8]}"
        self.conn.execute(insert(outbox).values(
            id=action_id, connection_id=connection_id, action=action, status="pending",
            not_before=not_before, attempts=0, causation_seq=causation_seq,
            created_at=self.now, updated_at=self.now))
        return action_id

    def open_actions(self, connection_id: str, lock: bool = False) -> list:
        """Actions not yet done for a connection, oldest first; `lock`: row-locked until commit
        (PostgreSQL; SQLite's writer already excludes every other writer)."""
        q = (select(outbox).where(outbox.c.connection_id == connection_id, outbox.c.status == "pending")
             .order_by(outbox.c.causation_seq, outbox.c.created_at))
        return self.conn.execute(q.with_for_update() if lock else q).all()

    def state_before(self, cid: str) -> ConnectionState | None:
        """The connection as the database had it before this transaction (until flush)."""
        if cid not in self._stored:
            self.connection(cid)
        return self._stored.get(cid)

    def set_action(self, action_id: str, **values) -> None:
        self.conn.execute(update(outbox).where(outbox.c.id == action_id).values(updated_at=self.now, **values))

    def action(self, action_id: str):
        """One outbox row (id, connection_id, action, status, attempts, claimed_by, ...), or None."""
        return self.conn.execute(select(outbox).where(outbox.c.id == action_id)).first()

    def claim_actions(self, worker_id: str, until: str, limit: int, connection_id: str | None = None,
                      sealed_only: bool = True) -> list:
        """Lease due actions to `worker_id` until `until`: a connection's actions only ever one at a
        time, in order (none is due while an earlier one of its connection is still pending).
        `sealed_only`: only actions whose causing event is in the chain (sealed on PostgreSQL).
        Rows: id, connection_id, action, attempts, claimed_by (as it was before this claim)."""
        o2 = outbox.alias("earlier")
        now = self.now
        earlier_open = exists().where(and_(o2.c.connection_id == outbox.c.connection_id,
                                           o2.c.status == "pending", o2.c.id < outbox.c.id))
        q = (select(outbox.c.id, outbox.c.connection_id, outbox.c.action, outbox.c.attempts,
                    outbox.c.claimed_by)
             .where(outbox.c.status == "pending", outbox.c.not_before <= now,
                    (outbox.c.claimed_until.is_(None)) | (outbox.c.claimed_until < now), ~earlier_open)
             .order_by(outbox.c.id).limit(limit))
        if sealed_only:
            q = q.where(outbox.c.causation_seq > 0)
        if connection_id:
            q = q.where(outbox.c.connection_id == connection_id)
        if not self.inline:
            # Writers run side by side (PostgreSQL): two relays must not take the same row, and
            # neither waits for the other's (SKIP LOCKED). SQLite's one writer excludes the rest.
            q = q.with_for_update(skip_locked=True, of=outbox)
        rows = self.conn.execute(q).all()
        for r in rows:
            self.conn.execute(update(outbox).where(outbox.c.id == r.id)
                              .values(claimed_by=worker_id, claimed_until=until, updated_at=now))
        return rows

    def requeue_action(self, action_id: str) -> bool:
        """Make a dead (or stuck) action due now, with attempts and its retry window afresh."""
        done = self.conn.execute(update(outbox).where(outbox.c.id == action_id,
                                                      outbox.c.status.in_(("dead", "pending")))
                                 .values(status="pending", attempts=0, not_before=self.now, claimed_by=None,
                                         claimed_until=None, created_at=self.now, updated_at=self.now))
        return done.rowcount == 1

    # -- rarer reads and writes the use cases need -------------------------------------------------
    def revoke_supported(self, toolkit: str) -> bool | None:
        """Whether the last purge of a connection of this toolkit could revoke the grant; None if
        none was tried."""
        streams = select(literal("connection:") + connections.c.connection_id).where(connections.c.toolkit == toolkit)
        row = self.conn.execute(select(events.c.data).where(events.c.type == UPSTREAM_REVOKED,
                                                            events.c.stream.in_(streams))
                                .order_by(events.c.seq.desc()).limit(1)).first()
        return json.loads(row[0]).get("supported") if row else None

    def take_poll_turn(self, cid: str, interval_seconds: float) -> bool:
        """True (and the turn is taken) if nobody asked Composio about `cid` in the last
        `interval_seconds`, in any process: the polls row bounds them all. Race-free on both
        backends: a conditional UPDATE (PostgreSQL re-checks its WHERE after the row lock) or an
        INSERT that does nothing when a concurrent request inserted first (no unique violation,
        which used to answer 409 to waiters polling one new connection together)."""
        since = plus_seconds(self.now, -interval_seconds)
        moved = self.conn.execute(update(polls).where(polls.c.connection_id == cid, polls.c.polled_at <= since)
                                  .values(polled_at=self.now))
        if moved.rowcount == 1:
            return True
        first = self.conn.execute(text("INSERT INTO polls (connection_id, polled_at) VALUES (:cid, :at) "
                                       "ON CONFLICT (connection_id) DO NOTHING"), {"cid": cid, "at": self.now})
        return first.rowcount == 1

    # -- the writes, at the end ------------------------------------------------------------------
    def flush(self, cur=None) -> None:
        """Write the buffered events and keys and the changed projection rows, as driver
        statements on `cur` (the store may pass one that gathers them to send with the COMMIT);
        the caller commits."""
        cur = cur or self.cur
        if len(self.recorded) > self._hooked:  # outgoing webhooks, in this same transaction
            webhook_store.enqueue(self, cur, self.recorded[self._hooked:])
            self._hooked = len(self.recorded)
        if self._new_events:
            self.hot.many(cur, "insert_event" if self.inline else "insert_unsequenced", self._new_events)
            self._new_events = []
        if self._new_keys:
            self.hot.many(cur, "insert_idempotency", self._new_keys)
            self._new_keys = []
        for kind, cid in sorted(self._dirty):
            if kind == "c":
                self._write_connection(cur, cid)
            else:
                self._write_bindings(cur, cid)
        self._dirty.clear()

    def _write_connection(self, cur, cid: str) -> None:
        state, stored = self._states[cid], self._stored.get(cid)
        if stored is None:
            self.hot.run(cur, "insert_connection", state.row())
        else:
            # Only the changed columns: SQLite rewrites every index whose columns are SET, and a
            # typical event (used, status report) touches no indexed column at all.
            changed = state.changes_since(stored)
            if changed:
                self.hot.update_connection(cur, changed, cid)
        self._stored[cid] = state

    def _write_bindings(self, cur, cid: str) -> None:
        self.hot.run(cur, "delete_bindings", {"cid": cid})
        rows = [b.row() for b in self._bindings[cid]]
        if rows:
            self.hot.many(cur, "insert_binding", rows)


def _env_row(e: Envelope) -> dict:
    if e.seq < 0:  # unsequenced: the sequencer fills in seq, prev_hash and hash
        return {"stream": e.stream, "version": e.version, "type": e.type, "schema": e.schema,
                "data": e.data_json, "meta": e.meta_json, "occurred_at": e.occurred_at,
                "recorded_at": e.recorded_at}
    return {"seq": e.seq, "stream": e.stream, "version": e.version, "type": e.type,
            "schema": e.schema, "data": e.data_json, "meta": e.meta_json,
            "occurred_at": e.occurred_at, "recorded_at": e.recorded_at,
            "prev_hash": e.prev_hash, "hash": e.hash}


WriteTxn = UnitOfWork  # the name the use cases knew it by
