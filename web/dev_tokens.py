"""The development sandbox's own signing key, so `ledger dev-token` mints tokens the local
service accepts. Production never loads it (web/auth.py)."""
from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEV_ISSUER = "connection-ledger-dev"
KEY_FILE = "dev-signing-key.pem"


@dataclass(frozen=True)
class DevKey:
    private_pem: str
    public_pem: str


def load_or_create_dev_key(instance_path: str) -> DevKey:
    """The key at <instance>/dev-signing-key.pem, created (0600) on first use. Several processes
    may start at once (gunicorn workers): each writes a complete temporary file and links it
    into place; os.link never replaces a file, so exactly one wins and every process reads it."""
    path = Path(instance_path) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_once(path)
    private_pem = path.read_text()
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return DevKey(private_pem, public_pem)


def _create_once(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{KEY_FILE}.")  # 0600 already
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won: its key is the key
    finally:
        os.unlink(tmp)


def mint_dev_token(key: DevKey, user_id: str, *, issuer: str = DEV_ISSUER, org_id: str | None = None,
                   ttl_seconds: int = 3600, kid: str = "dev") -> str:
    now = int(time.time())
    claims = {"sub": user_id, "iss": issuer, "iat": now, "nbf": now, "exp": now + ttl_seconds,
              "azp": "http://localhost", "sid": "sess_" + uuid.uuid4().hex[:12]}
    if org_id:
        claims["org_id"] = org_id
    return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": kid})
