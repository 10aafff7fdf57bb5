"""/api/connections: start, list, read, poll, disconnect, restore, history."""
from __future__ import annotations

from flask import Blueprint, current_app, g
from werkzeug.routing import BaseConverter

from ledger.commands import RequestDisconnect, RestoreConnection, StartConnection
from ledger.errors import NotFound
from ledger.results import WouldDisconnect
from ledger.services.inventory import InventoryFilter

from .. import auth
from .events import wait_for_change
from ..query_params import DisconnectQuery, DryRunQuery, PageQuery, WaitQuery, parse_query
from ..schemas import (ConnectionPublic, DisconnectPreview, DisconnectRequest, DisconnectResponse,
                       HistoryPublic, PreflightRequest, PreflightResponse, StartConnectionRequest,
                       StartConnectionResponse, answer, idempotency_key, parse_body, valid_id)

bp = Blueprint("connections", __name__, url_prefix="/api/connections")


class _ConnectionId(BaseConverter):
    """A path segment other than the fixed words this blueprint routes (`disconnect`,
    `preflight`, `events`): without it `GET /api/connections/disconnect` matched `GET /<cid>` and
    looked up a connection called "disconnect", and OPTIONS listed GET for it."""
    regex = r"(?!(?:disconnect|preflight|events)(?:/|$))[^/]+"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("connection_id", _ConnectionId))


def _svc():
    return current_app.extensions["connections"]


def _ctx() -> dict:
    """Call first in a writing view: a bad Idempotency-Key is refused before anything happens."""
    return {"trace_id": g.trace_id, "idempotency_key": idempotency_key()}


def _checked_id(cid: str) -> str:
    if not valid_id(cid):
        raise NotFound("No such connection.")
    return cid


@bp.post("")
@auth.require_person_or_admin
def start():
    """Start connecting a toolkit: OAuth redirect, or ACTIVE at once with credentials."""
    ctx = _ctx()
    body = parse_body(StartConnectionRequest)
    cmd = StartConnection(body.toolkit, body.callbackUrl, body.credentials)
    return answer(StartConnectionResponse, _svc().start(auth.current().caller(), cmd, **ctx), 201)


@bp.get("")
@auth.require_person_or_admin
def list_connections():
    """My connections, from the projection (?status=, ?toolkit=), page by page (?limit=, ?cursor=)."""
    from .admin import connections_page
    q = parse_query(PageQuery)
    return connections_page("mine", q, InventoryFilter(toolkit=q.toolkit, status=q.status))


@bp.post("/preflight")
@auth.require_person_or_admin
def preflight():
    """Are these toolkits connected, pending, or missing?"""
    body = parse_body(PreflightRequest)
    return answer(PreflightResponse, _svc().preflight(auth.current().caller(), body.toolkits))


@bp.get("/<connection_id:cid>")
@auth.require_person_or_admin
def get_connection(cid):
    """One connection; while INITIATED, Composio is asked for news (rate-bound). ?wait=N (<= 60 s)
    answers once the status changes, or after N seconds with it unchanged."""
    wait = parse_query(WaitQuery).wait
    if wait:
        return answer(ConnectionPublic, wait_for_change(auth.current().caller(), _checked_id(cid), wait, g.trace_id))
    return answer(ConnectionPublic, _svc().get(auth.current().caller(), _checked_id(cid), trace_id=g.trace_id))


@bp.get("/<connection_id:cid>/history")
@auth.require_person_or_admin
def history(cid):
    """This connection's events, for its owner."""
    events = _svc().history(auth.current().caller(), _checked_id(cid), trace_id=g.trace_id)
    return answer(HistoryPublic, {"events": events, "count": len(events)})


def _disconnect(ctx: dict, cid: str, force: bool, immediate: bool, dry_run: bool):
    return _svc().disconnect(auth.current().caller(), RequestDisconnect(cid, force, immediate, dry_run), **ctx)


def _disconnected(done):
    return answer(DisconnectPreview if isinstance(done, WouldDisconnect) else DisconnectResponse, done, success=True)


@bp.delete("/disconnect")
@auth.require_person_or_admin
def disconnect_body():
    """Disconnect (body form) -> 200 with status, purgeAt and warnings."""
    ctx = _ctx()
    body = parse_body(DisconnectRequest)
    dry_run = body.dryRun or parse_query(DryRunQuery).dry_run
    done = _disconnect(ctx, body.connectionId, body.force, body.immediate, dry_run)
    return _disconnected(done)


@bp.delete("/<connection_id:cid>")
@auth.require_person_or_admin
def disconnect_rest(cid):
    """Disconnect (REST form, ?force=&immediate=&dry_run=) -> 204."""
    ctx, q = _ctx(), parse_query(DisconnectQuery)
    done = _disconnect(ctx, _checked_id(cid), q.force, q.immediate, q.dry_run)
    if q.dry_run:
        return _disconnected(done)
    return "", 204


@bp.post("/<connection_id:cid>/restore")
@auth.require_person_or_admin
def restore(cid):
    """Undo a disconnect inside the grace period."""
    ctx = _ctx()
    restored = _svc().restore(auth.current().caller(), RestoreConnection(_checked_id(cid)), **ctx)
    return answer(ConnectionPublic, restored)
