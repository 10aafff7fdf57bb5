"""Signed heads: the chain's tip {seq, hash, time} signed with Ed25519 and recorded in the chain."""
from __future__ import annotations

import logging
import time

from .. import envelope as ev
from ..envelope import Actor, NewEvent
from ..service import make_meta
from ..signing import sign_head as _sign

HEADS_STREAM = "ledger:heads"
SIGNER = Actor("system", "signer")
log = logging.getLogger("ledger.heads")


def sign_head(ledger, private_key) -> dict:
    """Sign the current head and record it as a ledger.head_signed event (one transaction)."""
    with ledger.transaction() as txn:
        head = _sign(private_key, txn.head_seq, txn.head_hash, txn.now)
        txn.append(HEADS_STREAM, [NewEvent(ev.HEAD_SIGNED, head)], meta=make_meta(SIGNER))
    return head


def last_signed_seq(ledger) -> int:
    """The seq the latest signed head signed (0: none yet)."""
    heads = ledger.read_stream(HEADS_STREAM)
    return int(heads[-1].data["seq"]) if heads else 0


def moved_since(ledger, last: int) -> bool:
    """Whether an event other than a signed head was recorded after seq `last`: a quiet ledger
    gets no new heads (each would only sign the one before)."""
    return any(e.type != ev.HEAD_SIGNED for e in ledger.store.iter_envelopes(after=last))


class HeadSigner:
    """The relay worker's periodic signing (`ledger relay --sign-every N`): every `every` seconds,
    sign the head if it moved. `private_key` None: signing is not configured, which is logged
    (and nothing signed) when there is something to sign."""

    def __init__(self, ledger, private_key, every: float):
        self.ledger, self.private_key, self.every = ledger, private_key, every
        self._tried_at: float | None = None
        self._last: int | None = None

    def maybe_sign(self) -> dict | None:
        now = time.monotonic()
        if self.every <= 0 or (self._tried_at is not None and now - self._tried_at < self.every):
            return None
        self._tried_at = now
        if self._last is None:
            self._last = last_signed_seq(self.ledger)
        if not moved_since(self.ledger, self._last):
            return None
        if self.private_key is None:
            log.error("cannot sign the head: set LEDGER_SIGNING_KEY to sign heads")
            return None
        head = sign_head(self.ledger, self.private_key)
        self._last = head["seq"]
        return head
