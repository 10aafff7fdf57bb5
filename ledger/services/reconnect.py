"""Reconnect in place: re-authorise a broken connection under the same id (Composio's refresh).

Like starting a connection, the Composio call cannot be undone, so an Idempotency-Key is
reserved before it; the refresh is recorded as connection.reconnect_requested (INITIATED again)
and the activation is then recorded as for a new connection, by polling, ?wait= or the stream.
Bindings are not touched: the agents keep their connection.
"""
from __future__ import annotations

import logging

from .. import decisions
from .. import errors
from .. import results
from ..commands import Caller, ReconnectConnection
from ..decisions import decide_missing
from ..decisions.reconnect import check_reconnect, reconnect_requested
from ..envelope import connection_stream
from ..results import ReconnectLink
from ..service import make_meta
from ..storage.unit_of_work import Prefetch
from .idempotency import reserve, scoped_key
from .idempotency import fingerprint as fingerprint_of

log = logging.getLogger("ledger.connections")


class Reconnects:
    """The reconnect use case over the connection use cases (for ownership and observation)."""

    def __init__(self, connections):
        self.connections = connections
        self.ledger, self.gateway = connections.ledger, connections.gateway

    def reconnect(self, caller: Caller, cmd: ReconnectConnection, *, trace_id=None,
                  idempotency_key=None) -> ReconnectLink:
        cid = cmd.connection_id
        self.connections.observe_unseen(caller, cid, "reconnect", trace_id)
        idem, fingerprint = scoped_key(caller, idempotency_key), fingerprint_of(cmd)
        prior = self._check_and_reserve(caller, cid, idem, fingerprint, trace_id)
        if prior is not None:
            return prior
        try:
            link = self.gateway.refresh(cid, cmd.callback_url, idempotency_key=idem)
        except errors.UpstreamNotFound:
            self._release(idem)
            self._record_if_gone(caller, cid, trace_id)
            raise
        except BaseException:
            self._release(idem)
            raise
        answer = ReconnectLink(cid, link.status, link.redirect_url)
        try:
            with self.ledger.transaction(prefetch=Prefetch(streams=(connection_stream(cid),),
                                                           connections=(cid,))) as txn:
                # Checked again: a disconnect may have landed while Composio was asked.
                event = reconnect_requested(txn.connection(cid), link.status)
                envs = txn.append(connection_stream(cid), [event], meta=make_meta(
                    caller.actor, caller.tenant, trace_id, idempotency_key=idempotency_key))
                if idem:
                    txn.complete_key(idem, envs, results.dumps(answer))
        except BaseException:
            self._release(idem)
            raise
        return answer

    def _check_and_reserve(self, caller, cid, idem, fingerprint, trace_id) -> ReconnectLink | None:
        """Ownership, then the key (an earlier answer wins over the status it left), then whether
        the status allows a reconnect; a refusal rolls the reservation back with the rest."""
        with self.ledger.transaction(prefetch=Prefetch(connections=(cid,), keys=(idem,))) as txn:
            state = txn.connection(cid)
            if state is None:
                raise errors.NotFound("No such connection.")
            if decisions.may_act(state, caller):
                prior = reserve(txn, idem, fingerprint) if idem else None
                if prior is None:
                    check_reconnect(state)
                return prior
        raise self.connections.deny(caller, cid, "reconnect", trace_id)

    def _record_if_gone(self, caller: Caller, cid: str, trace_id) -> None:
        """Composio answered the refresh with 404. Only its own read of the account decides
        whether that is a fact (the account is gone: recorded as connection.upstream_missing,
        as reconcile would, and the person is told to start anew); if the account is still
        there, the 404 was something else and nothing is recorded."""
        try:
            self.gateway.get(cid)
            return
        except errors.UpstreamNotFound:
            pass
        with self.ledger.transaction(prefetch=Prefetch(streams=(connection_stream(cid),),
                                                       connections=(cid,), bindings=(cid,))) as txn:
            gone = decide_missing(txn.connection(cid))
            if gone is not None:
                txn.append(connection_stream(cid), [gone], meta=make_meta(caller.actor, caller.tenant, trace_id))
        raise errors.NotReconnectable("Composio no longer has this account (recorded as "
                                      "connection.upstream_missing): start a new connection.")

    def _release(self, idem: str | None) -> None:
        if not idem:
            return
        try:
            with self.ledger.transaction() as txn:
                txn.release_key(idem)
        except errors.LedgerError:  # the database is failing too: the reservation lapses
            log.warning("could not release idempotency key after a failed reconnect", exc_info=True)
