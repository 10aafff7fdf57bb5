"""Signed heads: Ed25519 over {seq, hash, time}, as Certificate Transparency signs tree heads.

An operator who rewrites history can recompute every hash, but cannot sign an old head
again without the private key; an auditor holding the public key notices. No Flask, no DB.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .chain import canonical_json

_RAW = dict(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)


def message(seq: int, hash: str, time: str) -> bytes:
    """What is signed: canonical JSON of {seq, hash, time}, UTF-8."""
    return canonical_json({"seq": int(seq), "hash": hash, "time": time}).encode("utf-8")


def _text_or_file(value: str) -> str:
    value = value.strip()
    if not value.startswith("-----") and len(value) < 4096 and os.path.isfile(value):
        with open(value) as f:
            return f.read().strip()
    return value.replace("\\n", "\n")


def _raw_bytes(value: str) -> bytes | None:
    for decode in (base64.b64decode, bytes.fromhex, base64.urlsafe_b64decode):
        try:
            raw = decode(value)
        except (binascii.Error, ValueError):
            continue
        if len(raw) == 32:
            return raw
    return None


def load_private_key(value: str) -> Ed25519PrivateKey:
    """A PEM (PKCS8) private key, a path to one, or base64/hex of the 32-byte seed."""
    return _load(value, lambda pem: serialization.load_pem_private_key(pem, password=None), Ed25519PrivateKey,
                 Ed25519PrivateKey.from_private_bytes, "LEDGER_SIGNING_KEY must be an Ed25519 key",
                 "LEDGER_SIGNING_KEY is neither a PEM Ed25519 key nor a 32-byte seed")


def load_public_key(value: str) -> Ed25519PublicKey:
    """A PEM public key, a path to one, or base64/hex of the 32 raw bytes."""
    return _load(value, serialization.load_pem_public_key, Ed25519PublicKey, Ed25519PublicKey.from_public_bytes,
                 "not an Ed25519 public key", "not a PEM Ed25519 public key nor 32 raw bytes")


def _load(value: str, from_pem, kind: type, from_raw, not_ed25519: str, unreadable: str):
    text = _text_or_file(value)
    if text.startswith("-----"):
        key = from_pem(text.encode())
        if not isinstance(key, kind):
            raise ValueError(not_ed25519)
        return key
    raw = _raw_bytes(text)
    if raw is None:
        raise ValueError(unreadable)
    return from_raw(raw)


def generate_private_key_pem() -> str:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def public_key_text(private_key: Ed25519PrivateKey) -> str:
    return base64.b64encode(private_key.public_key().public_bytes(**_RAW)).decode()


def public_key_pem(private_key: Ed25519PrivateKey) -> str:
    return private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_id(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key.public_bytes(**_RAW)).hexdigest()[:16]


def sign_head(private_key: Ed25519PrivateKey, seq: int, hash: str, time: str) -> dict:
    signature = private_key.sign(message(seq, hash, time))
    return {"seq": int(seq), "hash": hash, "time": time, "signature": base64.b64encode(signature).decode(),
            "key_id": key_id(private_key.public_key())}


def verify_head(public_key: Ed25519PublicKey, head: dict) -> bool:
    try:
        public_key.verify(base64.b64decode(head["signature"]), message(head["seq"], head["hash"], head["time"]))
        return True
    except (InvalidSignature, KeyError, TypeError, ValueError, binascii.Error):
        return False
