"""Offboarding receipts: what happened to each of a person's connections, with the ledger events
that record it, signed with the head-signing Ed25519 key so it verifies offline.

What is signed is the UTF-8 canonical JSON (ledger/chain.py: sorted keys, no spaces) of the
receipt body; the signature and the key id sit beside the body, never inside it. A receipt
cites events by seq and hash: with an export of the chain, anyone can check that the chain holds
exactly those events (`python -m ledger.audit verify-receipt`). Pure: no database, no Flask."""
from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature

from .chain import canonical_json
from .signing import key_id

KIND = "connection-ledger.offboarding-receipt"
ALGORITHM = "Ed25519"


def _cited(c) -> dict:
    return {"type": c.type, "seq": int(c.seq), "hash": c.hash}


def build_receipt(view) -> dict:
    """The body of a receipt for a completed OffboardingView (ledger/decisions/offboarding.py)."""
    times = [c.at for c in view.connections if c.at]
    return {
        "kind": KIND, "version": 1, "offboarding_id": view.offboarding_id, "tenant": view.tenant,
        "user_id": view.user_id, "requested": _cited(view.requested), "requested_at": view.requested_at,
        "completed_at": max(times + [view.requested_at]),
        "connections": [{"connection_id": c.connection_id, "toolkit": c.toolkit, "outcome": c.outcome,
                         "revoked": list(c.revoked), "reason": c.reason, "at": c.at,
                         "events": [_cited(e) for e in c.events]} for c in view.connections]}


def signed_bytes(body: dict) -> bytes:
    return canonical_json(body).encode("utf-8")


def sign_receipt(private_key, body: dict) -> dict:
    """{receipt, algorithm, key_id, signature}. Ed25519 is deterministic: the same body signed
    with the same key gives the same receipt, byte for byte, however often it is asked for."""
    return {"receipt": body, "algorithm": ALGORITHM, "key_id": key_id(private_key.public_key()),
            "signature": base64.b64encode(private_key.sign(signed_bytes(body))).decode("ascii")}


def verify_receipt(public_key, doc) -> str | None:
    """None if `doc` is a receipt signed by `public_key`; else what is wrong with it."""
    if not isinstance(doc, dict) or not isinstance(doc.get("receipt"), dict):
        return "not a receipt: no receipt object"
    if doc.get("algorithm") != ALGORITHM:
        return f"unknown signature algorithm {doc.get('algorithm')!r}"
    body = doc["receipt"]
    if body.get("kind") != KIND:
        return "not an offboarding receipt"
    try:
        public_key.verify(base64.b64decode(doc.get("signature", ""), validate=True), signed_bytes(body))
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        return "the signature does not match the receipt (changed, or signed by another key)"
    return None


def cited_events(body: dict) -> list[tuple[int, str, str, str | None]]:
    """Every event the receipt cites: (seq, hash, type, the connection it is about or None)."""
    out = [(int(body["requested"]["seq"]), body["requested"]["hash"], body["requested"]["type"], None)]
    for c in body.get("connections", ()):
        out += [(int(e["seq"]), e["hash"], e["type"], c["connection_id"]) for e in c.get("events", ())]
    return out
