"""/api/admin: a tenant's inventory of connections, for its connections:admin keys."""
from __future__ import annotations

from flask import Blueprint, current_app

from ledger.results import ConnectionView
from ledger.services.inventory import InventoryFilter

from .. import auth
from ..query_params import InventoryQuery, parse_query
from ..schemas import ConnectionsPage, answer

bp = Blueprint("admin", __name__, url_prefix="/api/admin")


def connections_page(which: str, q, filters: InventoryFilter):
    """One page of connections, answered as ConnectionsPage (`which`: "mine" or "tenant")."""
    inventory = current_app.extensions["inventory"]
    page = getattr(inventory, which)(auth.current().caller(), filters, q.limit, q.cursor)
    # The one shape of a connection in every answer (ConnectionPublic), made where the others are.
    data = [ConnectionView.of(state, bound) for state, bound in page.items]
    return answer(ConnectionsPage, {"data": data, "count": len(data), "total": page.total,
                                    "next_cursor": page.next_cursor})


@bp.get("/connections")
@auth.require_scope("connections:admin")
def inventory():
    """Every connection of the key's tenant (?user=, ?toolkit=, ?status=, ?unused_days=), page by page."""
    q = parse_query(InventoryQuery)
    return connections_page("tenant", q, InventoryFilter(user_id=q.user, toolkit=q.toolkit, status=q.status,
                                                         unused_days=q.unused_days))
