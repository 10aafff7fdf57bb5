"""Service API keys: created once, shown once, stored only as a SHA-256 digest.

Keys are 32 random bytes, so a fast unsalted digest is enough: there is nothing to guess.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from ..clock import iso, now
from ..storage import api_keys as rows

KNOWN_SCOPES = frozenset({"connections:admin", "audit:read"})
PREFIX = "clk_"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    tenant: str
    scopes: frozenset
    created_at: str
    revoked_at: str | None = None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _from_row(r) -> ApiKey:
    return ApiKey(r.id, r.name, r.tenant, frozenset(r.scopes.split()), r.created_at, r.revoked_at)


def create(engine, tenant: str, scopes: list[str], name: str | None = None) -> tuple[ApiKey, str]:
    """A new key for a tenant; returns the record and the key itself (never stored)."""
    unknown = set(scopes) - KNOWN_SCOPES
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {sorted(KNOWN_SCOPES)}, got {sorted(scopes)}")
    if not tenant:
        raise ValueError("a key needs a tenant")
    key_id = "key_" + secrets.token_hex(6)
    key = PREFIX + secrets.token_urlsafe(32)
    row = {"id": key_id, "name": name or key_id, "tenant": tenant, "scopes": " ".join(sorted(set(scopes))),
           "key_hash": digest(key), "created_at": iso(now()), "revoked_at": None}
    rows.insert_key(engine, row)
    return _from_row(type("Row", (), row)), key


def find(engine, key: str) -> ApiKey | None:
    """The live (not revoked) key record for a presented key."""
    if not key or not key.startswith(PREFIX) or len(key) > 200:
        return None
    r = rows.key_by_digest(engine, digest(key))
    if r is None or r.revoked_at is not None:
        return None
    return _from_row(r)


class KeyCache:
    """Remembers lookups for `ttl` seconds: a service's every request need not hit the
    database. The price: a revoked key keeps working for at most `ttl` seconds in each process."""

    def __init__(self, engine, ttl: float = 5.0, size: int = 1024):
        self.engine, self.ttl, self.size = engine, ttl, size
        self._seen: dict[str, tuple[float, ApiKey | None]] = {}

    def find(self, key: str) -> ApiKey | None:
        import time
        now = time.monotonic()
        hit = self._seen.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        found = find(self.engine, key)
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen[key] = (now, found)
        return found


def list_keys(engine) -> list[ApiKey]:
    return [_from_row(r) for r in rows.all_keys(engine)]


def revoke(engine, key_id: str) -> bool:
    return rows.revoke_key(engine, key_id, iso(now()))
