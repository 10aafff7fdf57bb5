"""Signed heads from the web: the key comes from config; the use case is ledger/services/heads.py."""
from __future__ import annotations

from flask import Flask

from ledger.services import heads
from ledger.services.heads import HEADS_STREAM

__all__ = ["HEADS_STREAM", "SigningNotConfigured", "private_key", "sign_head", "sign_head_if_moved"]


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
    return heads.sign_head(app.extensions["ledger"], private_key(app))


def sign_head_if_moved(app: Flask) -> dict | None:
    """Sign the head if anything but a signed head was recorded since the last one (the key is
    needed only then)."""
    ledger = app.extensions["ledger"]
    last = app.extensions.get("last_signed_seq")
    if last is None:
        last = heads.last_signed_seq(ledger)
    head = heads.sign_head(ledger, private_key(app)) if heads.moved_since(ledger, last) else None
    app.extensions["last_signed_seq"] = head["seq"] if head else last
    return head
