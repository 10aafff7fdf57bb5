"""Ledger: the one transaction boundary. load -> decide -> append + project -> commit -> signal."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from . import clock as _clock
from .envelope import SYSTEM, Actor, Envelope, NewEvent
from .projections import Projection
from .signals import event_recorded
from .storage.store import EventStore
from .storage.unit_of_work import Prefetch, UnitOfWork

log = logging.getLogger("ledger")


def make_meta(actor: Actor, tenant: str | None = None, trace_id: str | None = None,
              causation: int | None = None, idempotency_key: str | None = None) -> dict:
    """The envelope's meta; keys left out when unknown so the hashed text stays small."""
    meta = {"actor": actor.as_dict()}
    if tenant:
        meta["tenant"] = tenant
    if trace_id:
        meta["trace_id"] = trace_id
    if causation:
        meta["causation"] = causation
    if idempotency_key:
        meta["idempotency_key"] = idempotency_key
    return meta


class Ledger:
    """The connection ledger over one EventStore."""

    def __init__(self, store: EventStore, *, clock: Callable = _clock.now):
        self.store = store
        self.clock = clock

    def now(self) -> str:
        return _clock.iso(self.clock())

    @contextmanager
    def transaction(self, lock_head: bool = True, prefetch: Prefetch | None = None) -> Iterator[UnitOfWork]:
        """The one write boundary: events, projection rows, outbox rows and idempotency records
        commit together or not at all; event_recorded is sent for each event after the commit.
        `prefetch` names what the transaction will read, which PostgreSQL then fetches in the
        same round trip as BEGIN. Envelopes handed out inside are provisional where sequencing
        happens after commit (seq = -version, no hash): `txn.final(envs)` gives them sealed."""
        with self.store.write(self.now, lock_head, prefetch) as txn:
            yield txn
        # Where the chain is sequenced after commit (PostgreSQL), this waits for the sequencer:
        # what the API then says has happened is in the chain, with its seq and hash.
        txn.sealed = self.store.sealed(txn)
        self.announce(txn.final(txn.recorded))

    def append(self, stream: str, new: Iterable[NewEvent], expected_version: int | None = None,
               idempotency_key: str | None = None, actor: Actor = SYSTEM,
               meta: dict | None = None) -> list[Envelope]:
        """Append events to one stream (optimistic concurrency, idempotent by key)."""
        cid = stream.partition(":")[2] if stream.startswith("connection:") else None
        wanted = Prefetch(streams=(stream,), connections=(cid,), keys=(idempotency_key,))
        with self.transaction(prefetch=wanted) as txn:
            envs = txn.append(stream, list(new), expected_version,
                              meta if meta is not None else make_meta(actor), idempotency_key)
        return txn.final(envs)

    def announce(self, envelopes: list[Envelope]) -> None:
        """Send event_recorded for each committed envelope; a failing receiver is logged only."""
        for env in envelopes:
            try:
                event_recorded.send(self, envelope=env)
            except Exception:  # receivers are best-effort by design
                log.exception("event_recorded receiver failed for seq %s", env.seq)

    # -- reads ------------------------------------------------------------------------------
    def read_stream(self, stream: str) -> list[Envelope]:
        return self.store.read_stream(stream)

    def read_after(self, after: int = 0, limit: int = 1000) -> list[Envelope]:
        return self.store.read_after(after, limit)

    def verify(self, from_seq: int | None = None, to_seq: int | None = None, workers: int | None = None):
        """Walk the chain (one process per core for a long one); see chain.VerifyResult."""
        return self.store.verify(from_seq, to_seq, workers)

    def rebuild(self) -> tuple[Projection, bool]:
        """Drop the projection rows and replay from seq 1; True if they were already equal."""
        return self.store.rebuild(self.now())

    def state_as_of(self, seq: int | None = None, time: str | None = None) -> Projection:
        """Every projection as of a seq or a recorded time, replayed in memory."""
        return self.store.replay(until_seq=seq, until_time=time)
