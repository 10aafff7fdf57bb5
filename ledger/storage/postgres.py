"""PostgreSQL: writers commit side by side; the chain is sequenced after commit.

A write transaction takes no chain lock. It row-locks the connections it may change (SELECT …
FOR UPDATE, before its other reads), reads, and inserts its events unsequenced (seq, prev_hash,
hash NULL; the unique (stream, version) is the optimistic concurrency check) with its
projection, outbox and idempotency rows, then commits: concurrent writers share PostgreSQL's
group commit. Two round trips: the reads go with BEGIN, the writes with COMMIT (send_pg). The
commit carries no NOTIFY: PostgreSQL serialises notifying commits through their flush.

Sealing gives committed events their seq, prev_hash, hash and final recorded_at, in batches, one
transaction per batch (seal_turn). Exactly one sealer at a time across every process and host:
the holder of the session advisory lock SEQUENCER_LOCK, tried without waiting. The writer tries
it with its own COMMIT and, holding it, seals in one more round trip: its own events and whatever
else has committed. When another sealer is at work the writer waits for that batch's NOTIFY
ledger_sequenced, whose payload names what it sealed and whether its sealer goes on with another
batch (up to TURN_BATCHES while more keep committing), and tries again only if neither: under
load one batch carries many writers' events, as a group commit does, and nobody queues on a lock.
A writer killed between its commit and its seal leaves events no one is waiting for: every
writing process runs a standby thread (_background) that seals them within STANDBY_TICK_SECONDS.
A sealer killed mid-batch rolls the batch back and its session's lock frees; the next one redoes
it. A request answers only once its events are sealed (EventStore.sealed).

The order rule: an event's seq is later than the seq of every event its transaction could have
read. The sequencer only ever sees committed rows and takes them in insertion-id order. If a
transaction T read an event E (or anything E's transaction wrote), E had committed before that
read; T's inserts all happen at flush, after all its reads, so T's insertion ids are drawn after
E's commit, hence after E's ids; and T commits later still. So whenever the sequencer sees T's
event it also sees E, and E sorts first: in the same batch by id, or in an earlier batch. A
stream's versions are therefore in seq order (each version's writer read the one before).
Ids drawn by transactions that could not see each other may commit out of id order; the later
committed one is simply sequenced later, which the rule allows.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError

from .. import errors
from ..chain import GENESIS_HASH, envelope_text, link
from ..envelope import EVENT_COLUMNS, Envelope
from .store import EventStore
from .unit_of_work import Prefetch, UnitOfWork


def configure_engine(engine: Engine) -> None:
    _ping_when_idle(engine)


PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only if it sat idle a while (a restarted server,
    a dropped idle connection). pool_pre_ping pings on every checkout: one more round trip
    per request, a third of a one-event append's."""
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn, record, _proxy):
        if time.monotonic() - record.info.get("idle_since", time.monotonic()) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_conn.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as exc:  # SQLAlchemy then discards it and checks out another
            raise DisconnectionError() from exc



PG_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE (not imported: psycopg is optional on SQLite)


class Gather:
    """A stand-in cursor that keeps statements instead of running them (PostgreSQL's writes,
    sent in one string with the COMMIT by send_pg). A batch of more than a few rows that comes
    before any other statement (the events) goes to the driver's own executemany at once: one
    prepared statement, pipelined, beats a hundred statements parsed one by one. Anything
    later keeps its place in the string, so the statements still run in the order given."""
    BULK = 5

    def __init__(self, driver=None):
        self.driver = driver
        self.statements: list = []
        self.rowcount = -1

    def execute(self, sql: str, params=None) -> None:
        self.statements.append((sql, params))

    def executemany(self, sql: str, rows) -> None:
        rows = list(rows)
        if self.driver is not None and len(rows) > self.BULK and not self.statements:
            with self.driver.cursor() as cur:
                cur.executemany(sql, rows)
        else:
            self.statements.extend((sql, row) for row in rows)


def send_pg(conn: Connection, statements: list) -> list[list]:
    """Run several PostgreSQL statements as one string, in one round trip; the rows of each.

    Parameters are bound client-side by psycopg's ClientCursor (its quoting, not ours), which is
    what lets one simple-query message carry many statements."""
    return send_driver(conn.connection.driver_connection, statements)


def send_driver(driver, statements: list) -> list[list]:
    """send_pg on a psycopg connection."""
    import psycopg
    cur = psycopg.ClientCursor(driver)
    text_ = "; ".join(s if isinstance(s, str) else cur.mogrify(s[0], s[1]) for s in statements)
    cur.execute(text_)
    answers = []
    while True:
        answers.append(cur.fetchall() if cur.description is not None else [])
        if not cur.nextset():
            break
    cur.close()
    return answers


log = logging.getLogger("ledger.sequencer")

SEQUENCER_LOCK = 7274002          # the advisory lock whose holder is the one sealer (the active sequencer)
SEQUENCED = "ledger_sequenced"    # NOTIFY of each sealed batch; payload: head seq, then the sealed keys
BATCH = 2000                      # events sealed per sequencer transaction at most
TURN_BATCHES = 4                  # batches one sealer seals in a row while more keep committing
STANDBY_TICK_SECONDS = 0.5        # how often each process's standby looks for committed, unsealed events
RETRY_FIRST_SECONDS = 0.005       # a writer that missed the lock looks again this soon, then twice as late
SEQUENCER_WAIT_SECONDS = 30.0     # how long a request waits for its events to be sealed (then 503: committed, sealed later)
NOTE_BYTES = 7000                 # a NOTIFY payload holds under 8000 bytes: past this, "*" (everything)

_SEALED = ("SELECT " + ", ".join(EVENT_COLUMNS) + " "
           "FROM events WHERE (stream, version) IN (SELECT * FROM unnest(%s::text[], %s::int[])) "
           "AND seq IS NOT NULL")


class PostgresStore(EventStore):
    """The ledger on PostgreSQL: writers commit side by side, a sequencer seals the chain."""
    PARAMSTYLE = "pyformat"

    def __init__(self, engine: Engine, *, wait_seconds: float = SEQUENCER_WAIT_SECONDS):
        super().__init__(engine)
        self.wait_seconds = wait_seconds
        self._beacon = _Beacon()
        self._background: threading.Thread | None = None
        self._background_pid: int | None = None
        self._background_lock = threading.Lock()
        self._lags: collections.deque = collections.deque(maxlen=100_000)

    @contextmanager
    def write(self, clock, lock_head: bool = True, prefetch: Prefetch | None = None) -> Iterator[UnitOfWork]:
        """A write transaction beside others: row locks on the connections it reads, events in
        unsequenced. `clock` never gives less than the head's recorded_at (the sequencer keeps
        an event's recorded_at unless the head has gone past it). `lock_head` means nothing here
        any more: no writer takes the chain."""
        self.start_sequencer()
        with self._write_errors():
            with self._write_connection() as (conn, cur), self._transaction(conn, cur):
                txn = UnitOfWork(conn, 0, GENESIS_HASH, "", hot=self.hot, _cursor=cur, inline=False)
                seq, h, last_at = self._begin(txn, prefetch)
                txn.head_seq, txn.head_hash = seq, h
                txn.now = max(clock() if callable(clock) else clock, last_at)
                yield txn
                self._finish(txn)

    def _begin(self, txn: UnitOfWork, prefetch: Prefetch | None) -> tuple[int, str, str]:
        """BEGIN, the head (read, not locked: signed heads sign it) and the reads `prefetch`
        names, the connection row locks first, leave as one multi-statement string: one round
        trip. Each read is its own statement after the locks, so in READ COMMITTED each takes
        its snapshot once the locks are held and sees what the previous holder committed."""
        plan = txn.prefetch_plan(prefetch) if prefetch else []
        answers = send_pg(txn.conn, ["BEGIN", self.hot.sql["head"]]
                          + [(self.hot.sql[name], params) for _, _, name, params in plan])
        for (kind, item, _, _), rows in zip(plan, answers[2:]):
            txn.keep(kind, item, rows)
        return self._head_tuple(answers[1][0] if answers[1] else None)

    def _finish(self, txn: UnitOfWork) -> None:
        """Every write, the COMMIT and the start of the writer's own seal (seal_turn) leave as
        one multi-statement string: one round trip; the seal's writes are one more. No NOTIFY
        in the write: PostgreSQL serialises the commits of notifying transactions (a global lock
        held through the commit's flush), which would undo the group commit writers share."""
        cur = Gather(txn.conn.connection.driver_connection)
        txn.flush(cur)
        seal = bool(txn.recorded)
        seen = self._beacon.generation  # a batch announced from now on may hold our events
        answers = send_pg(txn.conn, cur.statements + ["COMMIT"] + (_SEAL_START if seal else []))
        if seal:
            committed = time.monotonic()  # the COMMIT's answer came with the seal's first ones
            try:  # committed: a failure from here on only leaves the seal to someone else
                txn.batch = (seen, committed, seal_turn(txn.conn.connection.driver_connection, answers[-3:]))
            except Exception as exc:
                log.warning("the writer's seal after commit failed (%s); it is left to the next sealer",
                            exc.__class__.__name__)
                txn.conn.invalidate()  # its session ends: the sealer's lock, if still held, with it

    def sealed(self, txn: UnitOfWork) -> dict[tuple[str, int], Envelope]:
        """The sealed envelopes of every event `txn` recorded or returned, once they are in the
        chain. The writer sequences them itself when no one else is sealing (one batch: its own
        events and whatever else has committed, as in a group commit); when someone is, it waits
        for that batch's NOTIFY and looks again. Up to wait_seconds, then StorageError (503):
        the events are committed and will be sequenced, the answer just cannot say so yet."""
        wanted = set([(e.stream, e.version) for e in txn.recorded] + txn.awaited)
        if not wanted:
            return {}
        beacon, found = self._beacon, {}
        seen, committed, batch = txn.batch or (beacon.generation, time.monotonic(), None)
        deadline = committed + self.wait_seconds
        look, turn = bool(txn.awaited), batch is None  # awaited: maybe sealed already
        # A sealer that found nothing to seal announces nothing: a writer that missed the lock
        # to it would wait for a NOTIFY that never comes. So it looks again soon, then less often.
        retry = RETRY_FIRST_SECONDS
        while True:
            if look:
                found.update(self._read_sealed(wanted - found.keys()))
            elif turn:
                with self._driver() as driver:
                    batch = seal_turn(driver)
            if batch is not None and batch is not False:  # we were the sealer: ours are in what we
                # sealed, or someone sealed them before
                found.update({k: env for k, env in batch.items() if k in wanted})
                found.update(self._read_sealed(wanted - found.keys()))
            if not wanted - found.keys():
                self._lags.extend([time.monotonic() - committed] * len(txn.recorded))
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.StorageError("recorded, but not yet in the chain; it will be sequenced")
            self.start_sequencer()
            with beacon.cond:
                beacon.cond.wait_for(lambda: beacon.generation != seen, timeout=min(left, retry))
            retry = min(retry * 2, STANDBY_TICK_SECONDS)
            notes = beacon.since(seen)
            seen, batch = beacon.generation, None
            # Look in the chain only if a batch since named one of ours (or did not say what it
            # held); seal ourselves unless the last batch's sealer said it goes on.
            look = any(keys is None or not keys.isdisjoint(wanted - found.keys()) for keys, _ in notes)
            turn = not look and not (notes and notes[-1][1])

    def _read_sealed(self, keys) -> dict[tuple[str, int], Envelope]:
        if not keys:
            return {}
        keys = list(keys)
        with self._quick_read() as cur:
            cur.execute(_SEALED, ([k[0] for k in keys], [k[1] for k in keys]))
            return {(r[1], r[2]): Envelope.from_row(r) for r in cur.fetchall()}

    def sequencing_lags(self) -> list[float]:
        """Seconds from each commit to its events seen sealed, one per event this process
        appended since the last call (the bench's commit -> seq lag)."""
        lags = list(self._lags)
        self._lags.clear()
        return lags

    def wait_sequenced(self, timeout: float | None = None) -> None:
        """Seal, or wait for, every committed unsequenced event (rebuild, tests, shutdown)."""
        deadline = time.monotonic() + (self.wait_seconds if timeout is None else timeout)
        while True:
            seen = self._beacon.generation
            with self._driver() as driver:
                batch = seal_turn(driver)
                if batch is not False and \
                        driver.execute("SELECT 1 FROM events WHERE seq IS NULL LIMIT 1").fetchone() is None:
                    return
            if time.monotonic() > deadline:
                raise errors.StorageError("events are still waiting to be sequenced")
            if batch is False:  # someone else is sealing: its NOTIFY, or the next tick
                self.start_sequencer()
                with self._beacon.cond:
                    self._beacon.cond.wait_for(lambda: self._beacon.generation != seen, timeout=STANDBY_TICK_SECONDS)

    @contextmanager
    def _writers_held_off(self, now: str):
        """Rebuild: no writer can touch a connection while the connections and bindings tables
        are locked EXCLUSIVE (their row locks need ROW SHARE), and nothing may be unsequenced
        then, or the replay would miss it: wait for the sequencer, lock, check, else retry."""
        for _ in range(100):
            self.wait_sequenced()
            with self._write_connection() as (conn, cur), self._transaction(conn, cur):
                cur.execute("BEGIN")
                cur.execute("LOCK TABLE connections, bindings IN EXCLUSIVE MODE")
                cur.execute("SELECT 1 FROM events WHERE seq IS NULL LIMIT 1")
                if cur.fetchone() is not None:
                    cur.execute("ROLLBACK")
                    continue
                yield cur
                cur.execute("COMMIT")
                return
        raise errors.StorageError("writers kept the chain busy; try the rebuild again")

    def start_sequencer(self) -> None:
        """The standby and the listener: one thread per process, started by the first write (a
        forked worker starts its own). It wakes this process's waiting writers on each sealed
        batch and, every STANDBY_TICK_SECONDS, seals what no writer sealed (a writer killed
        between its commit and its seal)."""
        if self._background is not None and self._background_pid == os.getpid() and self._background.is_alive():
            return
        with self._background_lock:
            if self._background is not None and self._background_pid == os.getpid() and self._background.is_alive():
                return
            if self._beacon.stop or self._background_pid not in (None, os.getpid()):
                self._beacon = _Beacon()  # closed before, or inherited by a fork: a fresh one
            dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._background = threading.Thread(target=_background, name="ledger-sequencer", daemon=True,
                                                args=(weakref.ref(self), dsn, self._beacon))
            self._background_pid = os.getpid()
            self._background.start()

    def close(self) -> None:
        """Stop the background thread (its session ends: a held sequencer lock goes to a standby).
        A later write starts it again."""
        self._beacon.stop = True
        self._beacon.bump()
        if self._background is not None and self._background_pid == os.getpid():
            self._background.join(timeout=5)

    @contextmanager
    def _transaction(self, conn: Connection, cur):
        """The connection is in autocommit mode and _begin/_finish send BEGIN and COMMIT with the
        statements around them; here only a failure's ROLLBACK is left to do."""
        driver = conn.connection.driver_connection
        try:
            yield
        except BaseException:
            if driver.info.transaction_status != PG_IDLE:
                driver.execute("ROLLBACK")
            raise

    @contextmanager
    def _write_connection(self) -> Iterator[tuple[Connection, object]]:
        """A pooled connection per transaction, in autocommit mode (see _transaction)."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT", ledger_write=True) as conn:
            yield conn, conn.connection.driver_connection.cursor()

    @contextmanager
    def _driver(self):
        """A pooled driver connection in autocommit mode: one round trip per statement (psycopg
        would otherwise send BEGIN and ROLLBACK around a read; seal_turn sends its own BEGIN).
        One that failed is dropped, not pooled: its session ends, with any lock it still held."""
        with self._driver_errors():
            raw = self.engine.raw_connection()
        driver = raw.driver_connection
        try:
            driver.autocommit = True
            with self._driver_errors():
                try:
                    yield driver
                except BaseException:
                    raw.invalidate()
                    raise
        finally:
            try:
                if not driver.closed:
                    driver.autocommit = False
            finally:
                raw.close()

    # -- reads ---------------------------------------------------------------------------------
    @contextmanager
    def _quick_read(self):
        with self._driver() as driver:
            yield driver.cursor()

    def _scan(self, driver, statement: str, params: dict, page: int) -> Iterator[tuple]:
        cur = driver.cursor(name="ledger_scan_" + uuid.uuid4().hex[:12])
        cur.itersize = page
        cur.execute(self.hot.sql[statement], params)
        while rows := cur.fetchmany(page):
            yield from rows
        cur.close()


class _Beacon:
    """Wake-ups from the listener thread to this process's writers waiting for their seqs, with
    what each recent batch said: the keys it sealed (None: it did not say) and whether its
    sealer goes on with another batch."""

    def __init__(self):
        self.cond = threading.Condition()
        self.generation = 0
        self.stop = False
        self.notes: collections.deque = collections.deque(maxlen=256)

    def bump(self, note: tuple | None = None) -> None:
        with self.cond:
            self.generation += 1
            self.notes.append((self.generation, note or (None, False)))
            self.cond.notify_all()

    def since(self, generation: int) -> list[tuple]:
        """The notes of batches announced after `generation`, oldest first; one that says
        nothing (None, False) stands for any that are no longer kept."""
        with self.cond:
            notes = [n for g, n in self.notes if g > generation]
            if len(notes) < self.generation - generation:
                notes.insert(0, (None, False))
        return notes


def _note(payload: str) -> tuple:
    """(the keys a batch sealed or None, whether its sealer goes on) from its NOTIFY payload."""
    first, _, keys = payload.partition("\n")
    more = first.endswith(" +")
    if keys == "*" or not first:
        return None, more
    return frozenset((k.rpartition(" ")[0], int(k.rpartition(" ")[2])) for k in keys.split("\n") if k), more


def _background(store_ref, dsn: str, beacon: _Beacon) -> None:
    """One connection: LISTEN for sealed batches (and wake this process's waiting writers);
    every STANDBY_TICK_SECONDS, seal what is committed and unsealed, if no one else is sealing.
    Ends with the store (a weak reference: a dropped store does not keep a connection open)."""
    import psycopg
    conn, next_tick = None, 0.0
    while not beacon.stop and store_ref() is not None:
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(dsn, autocommit=True)
                conn.execute("LISTEN " + SEQUENCED)
                beacon.bump()  # a notification may have been missed while disconnected
            if time.monotonic() >= next_tick:
                # Only when something waits: an idle standby holding the lock for nothing would
                # make a writer that tries just then wait for a NOTIFY that never comes.
                waiting = conn.execute("SELECT 1 FROM events WHERE seq IS NULL LIMIT 1").fetchone()
                batch = seal_turn(conn) if waiting else None
                if batch:  # under load: waiting writers' events, taken in their stead
                    log.debug("standby in process %s sealed %d events", os.getpid(), len(batch))
                next_tick = time.monotonic() + STANDBY_TICK_SECONDS
            wait = max(0.0, next_tick - time.monotonic())
            for note in conn.notifies(timeout=wait):
                if note.channel == SEQUENCED:
                    beacon.bump(_note(note.payload))
        except psycopg.Error as exc:
            (log.warning if conn is not None else log.debug)(
                "sequencer connection lost (%s); reconnecting", exc.__class__.__name__)
            try:
                conn.close()  # its session ends: the sealer's lock, if held, frees
            except Exception:
                pass
            conn = None
            time.sleep(STANDBY_TICK_SECONDS)
    if conn is not None:
        conn.close()


# The sealer's turn. The lock is a session advisory lock, tried without waiting, so a writer
# never queues behind another's batch (it waits for that batch's NOTIFY instead) and one that is
# busy costs no round trip of its own: the try rides on the writer's COMMIT string. Head and rows
# are read only by the lock's holder: each is gated on the transaction-level try of the same
# key, which a session holding it always passes (PostgreSQL: "regardless of whether the existing
# lock hold and new request are at session level or transaction level").
_P = {"lock": SEQUENCER_LOCK, "batch": BATCH}
_HEAD = ("SELECT seq, hash, recorded_at FROM ledger_head WHERE id = 1 "
         "AND (SELECT pg_try_advisory_xact_lock(%(lock)s)) FOR UPDATE")
_ROWS = ("SELECT id, stream, version, type, schema, data, meta, occurred_at, recorded_at "
         "FROM events WHERE seq IS NULL AND (SELECT pg_try_advisory_xact_lock(%(lock)s)) "
         "ORDER BY id LIMIT %(batch)s")
_SEAL_START = [("SELECT pg_try_advisory_lock(%(lock)s)", _P), (_HEAD, _P), (_ROWS, _P)]
_SEAL_NEXT = [(_HEAD, _P), (_ROWS, _P)]
# "more": something committed after the batch's rows were read. Looked for past the batch's last
# id only: the partial index's entries below it are mostly the rows just sealed (dead to this
# scan), and a later commit with a lower id is not lost: its writer, not named by this batch and
# told the sealer stops, tries for itself.
_SEAL_END = ("WITH m AS (SELECT %(may_go_on)s AND EXISTS (SELECT 1 FROM events WHERE seq IS NULL AND id > %(after)s) AS more) "
             "SELECT more, pg_notify(%(channel)s, %(seq)s || CASE WHEN more THEN ' +' ELSE '' END || %(keys)s), "
             "CASE WHEN more THEN true ELSE pg_advisory_unlock(%(lock)s) END FROM m")


def seal_turn(conn, started: list | None = None) -> dict[tuple[str, int], Envelope] | bool:
    """Seal the oldest committed unsequenced events if no one else is sealing (False then): up
    to TURN_BATCHES batches while more keep committing, one transaction each; the envelopes
    sealed, by (stream, version). `started`: the answers of _SEAL_START, sent already.

    Exactly one sealer at a time across every process and host: the holder of the session
    advisory lock SEQUENCER_LOCK. It lets go inside its last batch's transaction, just before
    the COMMIT: the next holder's head read (FOR UPDATE) then waits for that COMMIT and its rows,
    a statement of their own, see every seal of it (READ COMMITTED: a snapshot per statement).
    A sealer killed mid-batch rolls the batch back and its session's lock frees; the next one
    redoes it. One round trip per batch once the head and rows are read: the writes, the NOTIFY
    (its payload names what was sealed and whether the sealer goes on, so that a waiting
    writer neither reads nor tries for nothing) and the COMMIT.

    seq follows the head gap-free, in insertion-id order (see the module's order rule);
    prev_hash and hash by the chain's formula; recorded_at is the writer's time unless the head's
    is later (never back along the chain). The projection and outbox columns the writer could
    only fill with the provisional -version (last_seq, updated_at; causation_seq) are set to the
    event's seq and final time here."""
    got, head, rows = started if started is not None else send_driver(conn, _SEAL_START)
    if not got or not got[0][0]:
        return False
    sealed: dict[tuple[str, int], Envelope] = {}
    held = True
    try:
        for turn in range(TURN_BATCHES):
            if not rows:
                break
            batch, held = _seal_one(conn, head[0], rows, may_go_on=turn < TURN_BATCHES - 1)
            sealed.update(batch)
            if not held:
                break
            head, rows = send_driver(conn, _SEAL_NEXT)
    except BaseException:
        _rollback(conn)
        raise
    finally:
        if held:  # nothing (more) to seal, or a failure: let go (a failure to do so ends the session)
            send_driver(conn, [("SELECT pg_advisory_unlock(%(lock)s)", _P)])
    return sealed


def _seal_one(conn, head: tuple, rows: list, may_go_on: bool) -> tuple[dict, bool]:
    """One batch in one transaction; (what it sealed, whether the lock is still held)."""
    seq, prev, last_at = head
    sealed: dict[tuple[str, int], Envelope] = {}
    ids, seqs, prevs, hashes, ats, cids, markers, cid_seqs, cid_ats = ([] for _ in range(9))
    for id_, stream, version, type_, schema, data, meta, occurred, recorded in rows:
        seq += 1
        at = recorded if recorded > last_at else last_at
        h = link(prev, envelope_text(seq=seq, stream=stream, version=version, type=type_, schema=schema,
                                     data_json=data, meta_json=meta, occurred_at=occurred,
                                     recorded_at=at, prev_hash=prev))
        sealed[(stream, version)] = Envelope.from_row((seq, stream, version, type_, schema, data, meta,
                                                       occurred, at, prev, h))
        ids.append(id_), seqs.append(seq), prevs.append(prev), hashes.append(h), ats.append(at)
        if stream.startswith("connection:"):
            cids.append(stream[len("connection:"):]), markers.append(-version)
            cid_seqs.append(seq), cid_ats.append(at)
        prev, last_at = h, at
    keys = "\n".join(f"{stream} {version}" for stream, version in sealed)
    end = dict(_P, may_go_on=may_go_on, after=rows[-1][0], channel=SEQUENCED, seq=str(seq),
               keys="\n" + (keys if len(keys) < NOTE_BYTES else "*"))
    answers = send_driver(conn, ["BEGIN"] + _seal_writes((ids, seqs, prevs, hashes, ats),
                                                         (cids, markers, cid_seqs, cid_ats), (seq, prev, last_at))
                          + [(_SEAL_END, end), "COMMIT"])
    return sealed, bool(answers[-2][0][0])


def _seal_writes(sealed, touched, head) -> list:
    ids, seqs, prevs, hashes, ats = sealed
    cids, markers, cid_seqs, cid_ats = touched
    seq, prev, last_at = head
    statements = [("UPDATE events e SET seq = v.seq, prev_hash = v.prev, hash = v.hash, recorded_at = v.at "
                   "FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[]) "
                   "AS v(id, seq, prev, hash, at) WHERE e.id = v.id", (ids, seqs, prevs, hashes, ats))]
    if cids:
        # Row locks in connection_id order, as writers take theirs: no deadlock between us.
        statements += [
            ("SELECT 1 FROM connections WHERE connection_id = ANY(%s) ORDER BY connection_id FOR UPDATE",
             (sorted(set(cids)),)),
            ("UPDATE connections c SET last_seq = v.seq, updated_at = v.at "
             "FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[]) AS v(cid, marker, seq, at) "
             "WHERE c.connection_id = v.cid AND c.last_seq = v.marker", (cids, markers, cid_seqs, cid_ats)),
            ("UPDATE outbox o SET causation_seq = v.seq "
             "FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) AS v(cid, marker, seq) "
             "WHERE o.connection_id = v.cid AND o.causation_seq = v.marker", (cids, markers, cid_seqs))]
    statements.append(("UPDATE ledger_head SET seq = %s, hash = %s, recorded_at = %s WHERE id = 1", (seq, prev, last_at)))
    return statements


def _rollback(conn) -> None:
    try:
        if not conn.closed and conn.info.transaction_status != PG_IDLE:
            conn.execute("ROLLBACK")
    except Exception:
        pass
