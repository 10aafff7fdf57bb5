"""/api/webhook-endpoints: a tenant's outgoing lifecycle webhooks (connections:admin keys only).

POST   /api/webhook-endpoints                   {url, description?, eventTypes?} -> 201 with the secret (once)
GET    /api/webhook-endpoints                   the tenant's endpoints, never a secret
DELETE /api/webhook-endpoints/<id>              -> 204
GET    /api/webhook-endpoints/<id>/deliveries   ?status=dead|pending|done (default pending,dead)
POST   /api/webhook-endpoints/<id>/redeliver    {deliveryIds?} -> 202: dead ones (or those named) again
"""
from __future__ import annotations

from typing import Annotated, Optional

from flask import Blueprint, current_app, g, request
from pydantic import Field, StringConstraints

from ledger.services import webhook_endpoints as uc
from ledger.errors import NotFound

from .. import auth
from ..errors import ApiError
from ..schemas import (EventType, RedeliveryAccepted, Strict, WebhookDeliveriesPublic, WebhookEndpointCreated,
                       WebhookEndpointsPublic, answer, parse_body)

bp = Blueprint("webhook_endpoints", __name__, url_prefix="/api/webhook-endpoints")
_ENDPOINT_ID = r"^we_[0-9a-f]{1,40}$"
_STATUSES = ("pending", "dead", "done", "cancelled")


class CreateEndpoint(Strict):
    url: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"^https?://[\x21-\x7E]+$")]
    description: Optional[Annotated[str, StringConstraints(max_length=500)]] = None
    eventTypes: Optional[Annotated[list[EventType], Field(max_length=50)]] = None


class Redeliver(Strict):
    deliveryIds: Optional[Annotated[list[Annotated[str, StringConstraints(pattern=r"^whd_[0-9]{1,18}$")]],
                                    Field(min_length=1, max_length=1000)]] = None


def _caller():
    p = auth.current()
    if p.kind != "service" or "connections:admin" not in p.scopes:
        raise ApiError(403, "FORBIDDEN", "Webhook endpoints need an API key with the connections:admin scope.")
    return p.caller()


def _known(endpoint_id: str) -> None:
    import re
    if not re.match(_ENDPOINT_ID, endpoint_id):
        raise NotFound("No such webhook endpoint.")


@bp.post("")
def create():
    """Register an endpoint; the answer is the only place its signing secret ever appears."""
    caller = _caller()
    body = parse_body(CreateEndpoint)
    out = uc.register(current_app.extensions["ledger"], caller, url=body.url, description=body.description or "",
                      event_types=body.eventTypes,
                      allow_private=bool(current_app.config["OUTGOING_WEBHOOKS_ALLOW_PRIVATE"]),
                      trace_id=g.trace_id)
    resp, _ = answer(WebhookEndpointCreated, out)
    resp.status_code = 201
    resp.headers["Cache-Control"] = "no-store"  # it carries the secret
    resp.headers["Location"] = f"/api/webhook-endpoints/{out.id}"
    return resp


@bp.get("")
def list_endpoints():
    data = uc.list_for(current_app.extensions["ledger"], _caller())
    return answer(WebhookEndpointsPublic, {"data": data, "count": len(data)})


@bp.delete("/<endpoint_id>")
def delete(endpoint_id):
    caller = _caller()
    _known(endpoint_id)
    uc.remove(current_app.extensions["ledger"], caller, endpoint_id, trace_id=g.trace_id)
    return "", 204


@bp.get("/<endpoint_id>/deliveries")
def deliveries(endpoint_id):
    caller = _caller()
    _known(endpoint_id)
    wanted = tuple(s for s in request.args.get("status", "pending,dead").split(",") if s)
    bad = [s for s in wanted if s not in _STATUSES]
    if bad or not wanted:
        raise ApiError(422, "VALIDATION_ERROR", "status must be a comma-separated list of " + ", ".join(_STATUSES),
                       [{"loc": ["query", "status"], "msg": "unknown status", "type": "enum"}])
    data = uc.deliveries(current_app.extensions["ledger"], caller, endpoint_id, wanted)
    return answer(WebhookDeliveriesPublic, {"data": data, "count": len(data)})


@bp.post("/<endpoint_id>/redeliver")
def redeliver(endpoint_id):
    caller = _caller()
    _known(endpoint_id)
    body = parse_body(Redeliver, allow_empty=True)
    n = uc.redeliver(current_app.extensions["ledger"], caller, endpoint_id, delivery_ids=body.deliveryIds,
                     trace_id=g.trace_id)
    # The redelivery is recorded as an event: event_recorded wakes this process's webhook relay.
    return answer(RedeliveryAccepted, {"endpoint_id": endpoint_id, "requeued": n}, 202)


def openapi_paths(op, path_param) -> dict:
    """This blueprint's part of /openapi.json (`op`, `path_param`: web/openapi.py's builders)."""
    admin = [{"apiKey": []}]
    eid = path_param("endpointId", Annotated[str, StringConstraints(pattern=_ENDPOINT_ID)])

    def with_body(o, model):
        o["requestBody"] = {"required": model is CreateEndpoint, "content": {"application/json": {
            "schema": model.model_json_schema()}}}
        return o
    status = {"name": "status", "in": "query", "required": False,
              "schema": {"type": "string", "pattern": r"^(pending|dead|done|cancelled)(,(pending|dead|done|cancelled))*$"}}
    deliveries_op = op("The endpoint's deliveries (default: pending and dead)", security=admin, params=[eid, status],
                       ok=["WebhookDeliveriesPublic"])
    return {
        "/api/webhook-endpoints": {
            "post": with_body(op("Register an outgoing webhook endpoint; the answer carries its whsec_ secret, once",
                                 status="201", security=admin, ok=["WebhookEndpointCreated"]), CreateEndpoint),
            "get": op("The tenant's webhook endpoints (never a secret)", security=admin,
                      ok=["WebhookEndpointsPublic"])},
        "/api/webhook-endpoints/{endpointId}": {
            "delete": op("Delete an endpoint (what it was owed is cancelled)", status="204", security=admin,
                         params=[eid])},
        "/api/webhook-endpoints/{endpointId}/deliveries": {"get": deliveries_op},
        "/api/webhook-endpoints/{endpointId}/redeliver": {
            "post": with_body(op("Send dead deliveries (or those named) again, same webhook-id", status="202",
                                 security=admin, params=[eid], ok=["RedeliveryAccepted"]), Redeliver)},
    }
