"""Connection commands: start, disconnect, restore, bind, unbind.

Each one opens the one write transaction: read the state, authorize, call the pure decision
(ledger/decisions.py), append its events with their outbox rows and the idempotency record,
commit. Someone else's connection is answered exactly like a missing one, and the attempt is
recorded as a security event in the same transaction. With the inline relay, the actions a
command makes due are claimed in its own transaction and carried out right after its commit.
"""
from __future__ import annotations

import dataclasses
import logging

from .. import decisions
from .. import errors
from .. import results
from ..commands import BindAgent, Caller, RequestDisconnect, RestoreConnection, StartConnection, UnbindAgent
from .. import envelope as ev
from ..envelope import NewEvent, connection_stream
from ..projections import DISCONNECTING
from ..results import ConnectionView, Disconnected, Started
from ..service import make_meta
from ..storage.unit_of_work import Prefetch
from .connection_reads import ConnectionReads, UnknownIdLookups
from .idempotency import earlier_answer, reserve, scoped_key
from .idempotency import fingerprint as fingerprint_of

log = logging.getLogger("ledger.connections")


class Connections(ConnectionReads):
    """The connection use cases over a Ledger and a ComposioGateway."""

    def __init__(self, ledger, gateway, *, grace_seconds: int = 604800, poll_interval: float = 3.0,
                 unknown_lookups_per_minute: int = 20, not_found_seconds: float = 30.0, relay=None):
        self.ledger, self.gateway = ledger, gateway
        self.grace_seconds, self.poll_interval = grace_seconds, poll_interval
        self.lookups = UnknownIdLookups(unknown_lookups_per_minute, not_found_seconds)
        # The inline relay (None: a relay worker does it all): a write claims the actions it makes
        # due in its own transaction, and carries them out once it has committed.
        self.relay = relay

    # -- the write path ----------------------------------------------------------------------
    def _write(self, caller: Caller, cid: str | None, decide, *, trace_id=None, idempotency_key=None,
               fingerprint: str = "", action: str = ""):
        """load -> authorize -> decide -> append + outbox + idempotency -> commit -> signal."""
        denied, handed = False, []
        idem = scoped_key(caller, idempotency_key)
        wanted = Prefetch(streams=(connection_stream(cid),) if cid else (), connections=(cid,),
                          bindings=(cid,), keys=(idem,))
        with self.ledger.transaction(prefetch=wanted) as txn:
            prior = earlier_answer(txn, idem, fingerprint)
            if prior is not None:
                return prior
            state = txn.connection(cid) if cid else None
            if cid and state is None:
                raise errors.NotFound("No such connection.")
            if cid and not decisions.may_act(state, caller):
                self._record_denied(txn, caller, cid, action, trace_id)
                denied = True
                answer = None
            else:
                decision = decide(txn, state)
                answer = self._apply(txn, caller, cid, decision, make_meta(
                    caller.actor, caller.tenant, trace_id, idempotency_key=idempotency_key))
                if decision.actions and self.relay is not None:
                    handed = self.relay.claim_in_request(txn, cid)
                if idem:
                    txn.remember(idem, fingerprint, [], results.dumps(answer))
        if denied:
            raise errors.NotFound("No such connection.")
        if txn.recorded and cid and self.relay is not None:
            self._relay_inline(cid, handed)
        return answer

    def _relay_inline(self, cid: str, handed: list) -> None:
        """Carry out, now, what this command's transaction claimed (and what else is due for the
        connection). Best-effort: on failure the relay worker picks it up; the command stands."""
        try:
            self.relay.hand_over(handed)
            self.relay.run_once(connection_id=cid)
        except Exception:
            log.exception("inline relay for %s failed", cid)

    def _apply(self, txn, caller, cid, decision, meta: dict):
        if decision.events:
            envs = txn.append(connection_stream(cid), list(decision.events), meta=meta)
            for act in decision.actions:
                txn.enqueue(cid, act.kind, act.not_before, envs[-1].seq)
        return decision.answer if decision.answer is not None else ConnectionView.of(txn.connection(cid),
                                                                                     txn.bindings_of(cid))

    # -- commands ----------------------------------------------------------------------------
    def disconnect(self, caller: Caller, cmd: RequestDisconnect, **kw):
        """Disconnect (or, dry_run, say what a disconnect would do)."""
        self.observe_unseen(caller, cmd.connection_id, "disconnect", kw.get("trace_id"))

        def decide(txn, state):
            can_revoke = txn.revoke_supported(state.toolkit) if cmd.dry_run else None
            return decisions.decide_disconnect(state, txn.bindings_of(state.connection_id), cmd,
                                               txn.now, self.grace_seconds, can_revoke)
        if cmd.dry_run:
            kw.pop("idempotency_key", None)
        answer = self._write(caller, cmd.connection_id, decide, fingerprint=fingerprint_of(cmd),
                             action="disconnect", **kw)
        if isinstance(answer, Disconnected) and answer.status == DISCONNECTING:
            # The inline relay ran right after the commit (the disable, or an immediate purge):
            # answer where it got to, and whether Composio has confirmed it.
            state, _ = self._read_one(cmd.connection_id)
            if state is not None:
                now = decisions.disconnect_answer(state)
                answer = dataclasses.replace(answer, status=state.status, upstream_confirmed=now.upstream_confirmed,
                                             warnings=answer.warnings + now.warnings)
        return answer

    def restore(self, caller: Caller, cmd: RestoreConnection, **kw) -> ConnectionView:
        def decide(txn, state):
            # Locked (PostgreSQL): a relay claiming the purge right now either committed its claim
            # before this read (seen below: refused) or skips these rows (SKIP LOCKED) until the
            # cancellation has committed. Restore and purge never both happen.
            open_actions = txn.open_actions(state.connection_id, lock=True)
            if any(a.action in ("revoke", "delete") and a.claimed_until and a.claimed_until > txn.now
                   for a in open_actions):
                raise errors.GracePeriodExpired("The purge is already under way.")
            # A disable never tried has not reached Composio: cancel it, nothing to re-enable. One
            # that was tried (even if it failed: a timeout may have landed) is answered by an enable.
            unsent = [a for a in open_actions if a.action == "disable" and not a.claimed_by and not a.attempts]
            decision = decisions.decide_restore(state, txn.now, disable_unsent=bool(unsent))
            for a in open_actions:
                if a.action in ("revoke", "delete") or a in unsent:
                    txn.set_action(a.id, status="cancelled", last_error="cancelled by restore")
            return decision
        return self._write(caller, cmd.connection_id, decide, fingerprint=fingerprint_of(cmd),
                           action="restore", **kw)

    def bind(self, caller: Caller, cmd: BindAgent, **kw) -> ConnectionView:
        """Bind an agent to a connection (a repeat changes nothing)."""
        self.observe_unseen(caller, cmd.connection_id, "bind", kw.get("trace_id"))
        return self._write(caller, cmd.connection_id,
                           lambda txn, s: decisions.decide_bind(s, txn.bindings_of(s.connection_id), cmd),
                           fingerprint=fingerprint_of(cmd), action="bind", **kw)

    def unbind(self, caller: Caller, cmd: UnbindAgent, **kw) -> ConnectionView:
        return self._write(caller, cmd.connection_id,
                           lambda txn, s: decisions.decide_unbind(s, txn.bindings_of(s.connection_id), cmd),
                           fingerprint=fingerprint_of(cmd), action="unbind", **kw)

    def start(self, caller: Caller, cmd: StartConnection, *, trace_id=None, idempotency_key=None) -> Started:
        """Create the account at Composio, then record it; a Composio failure records nothing.

        With an Idempotency-Key the key is reserved before Composio is called, so a retry (or a
        concurrent duplicate) never creates a second account: it gets the first answer, or 409
        while the first is still in flight."""
        if caller.kind != "user":
            raise errors.InvalidState("Only a person can start a connection of their own.")
        idem = scoped_key(caller, idempotency_key)
        fingerprint = fingerprint_of(cmd)
        if idem:
            with self.ledger.transaction(prefetch=Prefetch(keys=(idem,))) as txn:
                prior = reserve(txn, idem, fingerprint)
            if prior is not None:
                return prior
        try:
            link = self.gateway.initiate(caller.id, cmd.toolkit, cmd.callback_url, cmd.credentials)
        except BaseException:
            if idem:
                try:
                    with self.ledger.transaction() as txn:
                        txn.release_key(idem)
                except errors.LedgerError:  # the database is failing too: the reservation lapses
                    log.warning("could not release idempotency key after a failed start", exc_info=True)
            raise
        data = {"connection_id": link.id, "user_id": caller.id, "tenant": caller.tenant,
                "toolkit": cmd.toolkit.lower(), "status": link.status}
        answer = Started(link.id, link.status, link.redirect_url)
        with self.ledger.transaction() as txn:
            envs = txn.append(connection_stream(link.id), [NewEvent(ev.INITIATED, data)],
                              meta=make_meta(caller.actor, caller.tenant, trace_id, idempotency_key=idempotency_key))
            if idem:
                txn.complete_key(idem, envs, results.dumps(answer))
        return answer
