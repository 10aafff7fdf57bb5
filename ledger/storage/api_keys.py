"""The api_keys table: rows in, rows out (ledger/services/apikeys.py makes keys and digests)."""
from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update

from .tables import api_keys

_BY_HASH = select(api_keys).where(api_keys.c.key_hash == bindparam("h"))


def insert_key(engine, row: dict) -> None:
    with engine.begin() as conn:
        conn.execute(insert(api_keys).values(**row))


def key_by_digest(engine, key_hash: str):
    """The row (id, name, tenant, scopes, created_at, revoked_at, ...) with this digest, or None."""
    with engine.connect() as conn:
        return conn.execute(_BY_HASH, {"h": key_hash}).first()


def all_keys(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(api_keys).order_by(api_keys.c.created_at)))


def revoke_key(engine, key_id: str, at: str) -> bool:
    """Mark a live key revoked at `at`; False if there is none such."""
    with engine.begin() as conn:
        done = conn.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                            .values(revoked_at=at))
    return done.rowcount == 1
