"""The one way a use case meets an earlier use of an idempotency key (a client's Idempotency-Key,
a webhook-id): inside its write transaction, before it decides anything."""
from __future__ import annotations

import hashlib

from .. import errors
from .. import results
from ..clock import plus_seconds
from ..commands import Caller
from ..storage.unit_of_work import fitted_key

# A reservation older than this belongs to a request that died (Composio's timeout is far shorter).
ABANDONED_AFTER_SECONDS = 120


def scoped_key(caller: Caller, key: str | None) -> str | None:
    """A client's Idempotency-Key, scoped to the caller (two callers may pick the same key)."""
    return fitted_key("http", f"{caller.kind}:{caller.id}:{key}") if key else None


def fingerprint(request) -> str:
    """What a key was first used for: the same key with another request is refused (422)."""
    return hashlib.sha256(repr(request).encode()).hexdigest()[:32]


def earlier_use(txn, key: str | None, scope: str | None = None) -> dict | None:
    """The record of an earlier use of `key`, or None on its first use. `scope` (what the key was
    used for: a request's fingerprint) must match, else IdempotencyKeyReused."""
    if not key:
        return None
    prior = txn.idempotent_result(key)
    if prior is not None and scope is not None and prior["scope"] != scope:
        raise errors.IdempotencyKeyReused()
    return prior


def earlier_answer(txn, key: str | None, scope: str):
    """The result the first use of `key` gave (to be given again), or None on its first use."""
    prior = earlier_use(txn, key, scope)
    return results.loads(prior["response"]) if prior is not None and prior["response"] is not None else None


def reserve(txn, key: str, scope: str):
    """Reserve `key` before work that cannot be undone (a call to Composio): None if it is now
    ours, the first answer if it was used before, IdempotencyKeyInUse while that is in flight."""
    prior = earlier_use(txn, key, scope)
    if prior is None:
        txn.remember(key, scope, [], None)
        return None
    if prior["response"] is not None:
        return results.loads(prior["response"])
    if not txn.take_over_key(key, older_than=plus_seconds(txn.now, -ABANDONED_AFTER_SECONDS)):
        raise errors.IdempotencyKeyInUse()
    return None  # a reservation abandoned by a crashed request: ours now
