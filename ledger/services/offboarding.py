"""Offboarding: every connection of a person disconnected in one request, and its progress and
signed receipt, derived from the ledger alone.

`request` opens one write transaction: the person's offboarding stream (its version makes two
concurrent requests collide), every live connection's projection row and bindings; each
connection is disconnected exactly as a single forced disconnect is (decisions.decide_disconnect:
events, outbox actions, the inline relay's claims) and `offboarding.requested` names them all.
While an offboarding is open, asking again returns it and disconnects nothing twice.

`progress` reads the request event back (its id is an idempotency key naming the stream and
version, so no table of its own is needed), then each connection's state and the events that
settle its outcome, in one statement; once every outcome is final it signs a receipt."""
from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass

from .. import envelope as ev
from .. import errors
from .. import results
from ..commands import Caller
from ..decisions.offboarding import (OUTCOME_EVENTS, Cited, OffboardingView, decide_offboarding, decide_outcome,
                                     person_stream, still_open)
from ..envelope import NewEvent, connection_stream
from ..projections import DISCONNECTED
from ..receipts import build_receipt, sign_receipt
from ..results import OffboardingRef
from ..service import make_meta
from ..storage.unit_of_work import Prefetch, fitted_key
from .connection_reads import SECURITY_STREAM
from .idempotency import earlier_answer, scoped_key
from .idempotency import fingerprint as fingerprint_of

log = logging.getLogger("ledger.offboarding")


def _index_key(offboarding_id: str) -> str:
    """The idempotency key recorded with an offboarding.requested event: the id -> (stream, version)."""
    return fitted_key("offboarding", offboarding_id)


@dataclass(frozen=True)
class OffboardingStarted:
    offboarding_id: str
    user_id: str
    connection_ids: tuple
    completed: bool


@dataclass(frozen=True)
class _Request:  # what the idempotency fingerprint covers
    user_id: str
    immediate: bool


class Offboardings:
    def __init__(self, ledger, *, grace_seconds: int = 604800, relay=None):
        self.ledger, self.grace_seconds, self.relay = ledger, grace_seconds, relay

    # -- the request ---------------------------------------------------------------------------
    def request(self, caller: Caller, user_id: str | None = None, immediate: bool = False, *,
                trace_id=None, idempotency_key=None) -> OffboardingStarted:
        """Offboard the caller (a person: user_id None) or, for an admin key, a person of its
        tenant. A person the tenant does not know answers NotFound (an attempt on another
        tenant's person is recorded as a security event)."""
        if caller.kind == "user":
            if user_id not in (None, caller.id):
                raise errors.NotFound("No such person.")
            user_id, tenant, known = caller.id, caller.tenant, self.ledger.store.person_connections(caller.id)
        elif caller.admin and user_id:
            tenant, known = caller.tenant, self.ledger.store.person_connections(user_id, tenant=caller.tenant)
            if not known:
                if self.ledger.store.person_connections(user_id):
                    self._denied(caller, {"user_id": user_id}, "offboard", trace_id)
                raise errors.NotFound("No such person.")
        else:
            raise errors.NotFound("No such person.")
        for attempt in (1, 2):
            try:
                started, handed = self._request(caller, tenant, user_id, known, immediate, trace_id, idempotency_key)
                break
            except errors.ConcurrencyError:
                # A concurrent request for the same person committed first: the retry reads its
                # offboarding and answers it (nothing is disconnected twice).
                if attempt == 2:
                    raise
        if self.relay is not None and handed:
            self._relay_inline(started.connection_ids, handed)
            states = self.ledger.store.connection_states(list(started.connection_ids))
            started = OffboardingStarted(started.offboarding_id, started.user_id, started.connection_ids,
                                         all(s.status == DISCONNECTED for s in states.values()))
        return started

    def _request(self, caller, tenant, user_id, known, immediate, trace_id, idempotency_key):
        stream = person_stream(tenant, user_id)
        ids = tuple(s.connection_id for s in known)
        idem = scoped_key(caller, idempotency_key)
        fingerprint = fingerprint_of(_Request(user_id, immediate))
        handed = []
        wanted = Prefetch(streams=(stream, *(connection_stream(c) for c in ids)), connections=ids, bindings=ids,
                          keys=(idem,))
        with self.ledger.transaction(prefetch=wanted) as txn:
            prior = earlier_answer(txn, idem, fingerprint)
            if prior is not None:
                return self._started(txn, prior.offboarding_id), []
            version = txn.stream_version(stream)
            last = self._latest(txn, stream, version)
            targets = [(s, txn.bindings_of(s.connection_id)) for s in map(txn.connection, ids)
                       if s is not None and s.status != DISCONNECTED]
            if last is not None and (still_open([txn.connection(c) for c in last.data["connection_ids"]])
                                     or not targets):
                # Open (or nothing left to disconnect): the same offboarding again, nothing done twice.
                off_id, off_ids = last.data["offboarding_id"], tuple(last.data["connection_ids"])
            else:
                off_id = "off_" + uuid.uuid4().hex[:24]
                decision = decide_offboarding(off_id, tenant, user_id, targets, immediate, txn.now, self.grace_seconds,
                                              {"kind": caller.kind, "id": caller.id})
                meta = make_meta(caller.actor, tenant, trace_id, idempotency_key=idempotency_key)
                envs = txn.append(stream, [decision.requested], expected_version=version, meta=meta)
                txn.remember(_index_key(off_id), stream, envs, None)
                for cid, d in decision.disconnects:
                    self._apply(txn, cid, d, meta)
                    if d.actions and self.relay is not None:
                        handed += self.relay.claim_in_request(txn, cid)
                off_ids = tuple(cid for cid, _ in decision.disconnects)
            if idem:
                txn.remember(idem, fingerprint, [], results.dumps(OffboardingRef(off_id)))
            done = all(txn.connection(c) is not None and txn.connection(c).status == DISCONNECTED for c in off_ids)
        return OffboardingStarted(off_id, user_id, off_ids, done), handed

    @staticmethod
    def _apply(txn, cid, decision, meta) -> None:
        if decision.events:
            envs = txn.append(connection_stream(cid), list(decision.events), meta=meta)
            for act in decision.actions:
                txn.enqueue(cid, act.kind, act.not_before, envs[-1].seq)

    @staticmethod
    def _latest(txn, stream: str, version: int):
        if not version:
            return None
        return txn.read_range(stream, version, version)[-1]

    def _started(self, txn, off_id: str) -> OffboardingStarted:
        """An offboarding recorded by an earlier, committed request."""
        record = txn.idempotent_result(_index_key(off_id))
        if record is None:
            raise errors.NotFound("No such offboarding.")
        env = txn.read_range(record["scope"], record["first_version"], record["first_version"])[0]
        ids = tuple(env.data["connection_ids"])
        states = [txn.connection(c) for c in ids]
        return OffboardingStarted(off_id, env.data["user_id"], ids,
                                  all(s is not None and s.status == DISCONNECTED for s in states))

    def _relay_inline(self, ids, handed) -> None:
        """As a single disconnect does: what this request's transaction claimed, carried out now
        (best-effort: on failure the relay worker finishes it; the offboarding stands)."""
        try:
            self.relay.hand_over(handed)
            for cid in dict.fromkeys(c.connection_id for c in handed):
                try:
                    self.relay.run_once(connection_id=cid)
                except Exception:
                    log.exception("inline relay for %s failed", cid)
        except Exception:
            log.exception("inline relay of an offboarding failed")

    def _denied(self, caller: Caller, about: dict, action: str, trace_id) -> None:
        log.warning("access denied: %s %s tried %s on %s", caller.kind, caller.id, action, about)
        with self.ledger.transaction() as txn:
            txn.append(SECURITY_STREAM, [NewEvent(ev.ACCESS_DENIED, {
                **about, "action": action, "caller": {"kind": caller.kind, "id": caller.id, "tenant": caller.tenant}})],
                meta=make_meta(caller.actor, caller.tenant, trace_id))

    # -- progress and the receipt -----------------------------------------------------------
    def progress(self, caller: Caller, offboarding_id: str, private_key=None, trace_id=None) -> OffboardingView:
        """Each connection's outcome so far; once all are final, the signed receipt (if a
        signing key is given). The person who was offboarded, or an admin key of the tenant."""
        store = self.ledger.store
        record = store.idempotency_record(_index_key(offboarding_id))
        env = None
        if record is not None:
            env = next((e for e in store.read_stream(record["scope"]) if e.version == record["first_version"]), None)
        if env is None:
            raise errors.NotFound("No such offboarding.")
        d = env.data
        mine = (caller.kind == "user" and caller.id == d["user_id"]) or (caller.admin and caller.tenant == d["tenant"])
        if not mine:
            self._denied(caller, {"offboarding_id": offboarding_id}, "read offboarding", trace_id)
            raise errors.NotFound("No such offboarding.")
        ids = list(d["connection_ids"])
        states = store.connection_states(ids)
        by_stream: dict = {}
        for e in store.stream_events([connection_stream(c) for c in ids], OUTCOME_EVENTS, after_seq=env.seq):
            by_stream.setdefault(e.stream, []).append(e)
        view = OffboardingView(offboarding_id, d["tenant"], d["user_id"], bool(d.get("immediate")), env.recorded_at,
                               Cited.of(env), tuple(decide_outcome(states.get(c), c, by_stream.get(connection_stream(c), []))
                                                    for c in ids))
        if view.completed and private_key is not None:
            view = dataclasses.replace(view, receipt=sign_receipt(private_key, build_receipt(view)))
        return view
