"""Connection listings page by page: a person's own (GET /api/connections) and a tenant's whole
inventory for its admins (GET /api/admin/connections), filtered, in a stable order, with a total.

A keyset over (created_at, connection_id): a connection added between two pages lands after the
cursor (it is newer), so nothing is skipped or repeated; the cursor is opaque to callers."""
from __future__ import annotations

from dataclasses import dataclass

from ..clock import plus_seconds
from ..commands import Caller
from ..pagination import decode_cursor, encode_cursor
from ..projections import ConnectionState

MAX_LIMIT = 500


@dataclass(frozen=True)
class InventoryFilter:
    user_id: str | None = None
    toolkit: str | None = None
    status: str | None = None
    unused_days: int | None = None   # no use for this many days (never used: created before then)


@dataclass(frozen=True)
class ConnectionPage:
    items: list          # [(ConnectionState, bindings)]
    total: int           # every connection matching the filters, on every page
    next_cursor: str | None


class Inventory:
    def __init__(self, ledger):
        self.ledger = ledger

    def mine(self, caller: Caller, filters: InventoryFilter, limit: int = 100,
             cursor: str | None = None) -> ConnectionPage:
        """The caller's connections: a person's own; an admin key's, its tenant's."""
        scope = {"tenant": caller.tenant} if caller.admin else {"user_id": caller.id}
        return self._page(scope, filters, limit, cursor)

    def tenant(self, caller: Caller, filters: InventoryFilter, limit: int = 100,
               cursor: str | None = None) -> ConnectionPage:
        """Every connection of the admin key's tenant (never another tenant's: the tenant is the
        key's, not a parameter)."""
        scope = {"tenant": caller.tenant}
        if filters.user_id:
            scope["user_id"] = filters.user_id
        return self._page(scope, filters, limit, cursor)

    def _page(self, scope: dict, f: InventoryFilter, limit: int, cursor: str | None) -> ConnectionPage:
        limit = max(1, min(int(limit), MAX_LIMIT))
        after = decode_cursor(cursor) if cursor else None
        unused_before = plus_seconds(self.ledger.now(), -86400 * f.unused_days) if f.unused_days is not None else None
        items, total = self.ledger.store.connections_page(
            **scope, status=f.status.upper() if f.status else None, toolkit=f.toolkit.lower() if f.toolkit else None,
            unused_before=unused_before, after=after, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        last: ConnectionState | None = items[-1][0] if items else None
        return ConnectionPage(items, total, encode_cursor(last.created_at, last.connection_id) if more else None)
