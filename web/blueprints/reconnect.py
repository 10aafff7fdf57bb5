"""POST /api/connections/<id>/reconnect: re-authorise a broken connection under the same id."""
from __future__ import annotations

from flask import Blueprint, current_app, g

from ledger.commands import ReconnectConnection
from ledger.errors import NotFound

from .. import auth
from ..schemas import ReconnectRequest, ReconnectResponse, answer, idempotency_key, parse_body, valid_id

bp = Blueprint("reconnect", __name__, url_prefix="/api/connections")


@bp.post("/<connection_id:cid>/reconnect")
@auth.require_person_or_admin
def reconnect(cid):
    """Reconnect an EXPIRED, FAILED or INACTIVE connection in place (Composio's refresh)."""
    ctx = {"trace_id": g.trace_id, "idempotency_key": idempotency_key()}
    body = parse_body(ReconnectRequest, allow_empty=True)
    if not valid_id(cid):
        raise NotFound("No such connection.")
    link = current_app.extensions["reconnects"].reconnect(
        auth.current().caller(), ReconnectConnection(cid, body.callbackUrl), **ctx)
    return answer(ReconnectResponse, link)


def openapi_paths(op, path, param) -> dict:
    """The reconnect operation for /openapi.json (the body is optional); openapi.py hands in
    its helpers, so the two modules do not import each other."""
    from pydantic import TypeAdapter

    from ..schemas import ConnectionId, IdempotencyKey
    idem = param("Idempotency-Key", "header", TypeAdapter(IdempotencyKey).json_schema(), False)
    one = op("Reconnect an EXPIRED, FAILED or INACTIVE connection in place (same id); 409 NOT_RECONNECTABLE "
             "once it is being or has been disconnected", ok=["ReconnectResponse"],
             params=[path("connectionId", ConnectionId), idem])
    one["requestBody"] = {"required": False, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ReconnectRequest"}}}}
    return {"/api/connections/{connectionId}/reconnect": {"post": one}}
