"""Signed heads: the chain's tip signed with Ed25519 and recorded in the chain itself."""
from __future__ import annotations

from flask import Flask

from ledger import envelope as ev
from ledger.envelope import Actor, NewEvent

HEADS_STREAM = "ledger:heads"


class SigningNotConfigured(RuntimeError):
    """LEDGER_SIGNING_KEY is not set."""


def private_key(app: Flask):
    from ledger.signing import load_private_key
    value = app.config.get("LEDGER_SIGNING_KEY")
    if not value:
        raise SigningNotConfigured("set LEDGER_SIGNING_KEY to sign heads")
    if "signing_key" not in app.extensions:
        app.extensions["signing_key"] = load_private_key(value)
    return app.extensions["signing_key"]


def sign_head(app: Flask) -> dict:
    """Sign the current head {seq, hash, time} and record it as a ledger.head_signed event."""
    from ledger.signing import sign_head as sign
    key = private_key(app)
    ledger = app.extensions["ledger"]
    with ledger.transaction() as txn:
        head = sign(key, txn.head_seq, txn.head_hash, txn.now)
        txn.append(HEADS_STREAM, [NewEvent(ev.HEAD_SIGNED, head)], meta={"actor": Actor("system", "signer").as_dict()})
    return head


def sign_head_if_moved(app: Flask) -> dict | None:
    """sign_head, but only if some event other than a signed head was recorded since the last
    signed head: a quiet ledger gets no new heads (each would only sign the one before)."""
    ledger = app.extensions["ledger"]
    last = app.extensions.get("last_signed_seq")
    if last is None:
        heads = ledger.read_stream(HEADS_STREAM)
        last = int(heads[-1].data["seq"]) if heads else 0
    moved = any(e.type != ev.HEAD_SIGNED for e in ledger.store.iter_envelopes(after=last))
    head = sign_head(app) if moved else None
    app.extensions["last_signed_seq"] = head["seq"] if head else last
    return head
