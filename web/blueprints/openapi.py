"""GET /openapi.json: OpenAPI 3.1 generated from the same pydantic models that validate requests."""
from __future__ import annotations

from flask import Blueprint, jsonify
from pydantic import TypeAdapter

from .. import query_params as q
from .. import schemas as s
from . import reconnect, webhook_endpoints

bp = Blueprint("openapi", __name__)

_MODELS = [s.StartConnectionRequest, s.DisconnectRequest, s.PreflightRequest, s.ConnectionPublic,
           s.ConnectionsPublic, s.AgentConnectionsPublic, s.StartConnectionResponse, s.DisconnectResponse,
           s.DisconnectPreview, s.PreflightResponse, s.HistoryPublic, s.EventPublic, s.EventsPage,
           s.VerifyResult, s.StatePublic, s.HeadsPublic, s.PublicKeyPublic, s.WebhookAnswer, s.Health,
           s.Readiness, s.MetricsPublic, s.ConnectionChange, s.WebhookEndpointCreated, s.WebhookEndpointsPublic,
           s.WebhookDeliveriesPublic, s.RedeliveryAccepted, s.ReconnectRequest, s.ReconnectResponse,
           s.ConnectionsPage, s.OffboardRequest, s.OffboardingAccepted, s.OffboardingPublic, s.ErrorEnvelope]
NDJSON = "application/x-ndjson"
_ERRORS = {str(code): {"$ref": "#/components/responses/Error"}
           for code in (400, 401, 403, 404, 409, 413, 422, 429, 500, 502, 503)}
_PERSON = [{"clerkSession": []}, {"apiKey": []}]
_AUDITOR = [{"apiKey": []}]
_OPEN = []


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str, where: str, schema: dict, required: bool) -> dict:
    schema = dict(schema)
    # Optional[X] renders as anyOf [X, null]; a parameter that is absent is already "null".
    branches = [b for b in schema.pop("anyOf", ()) if b != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    schema.pop("title", None)
    if schema.get("default", 0) is None:
        del schema["default"]
    param = {"name": name, "in": where, "required": required, "schema": schema}
    if "description" in schema:
        param["description"] = schema.pop("description")
    return param


def _path(name: str, annotated) -> dict:
    return _param(name, "path", TypeAdapter(annotated).json_schema(), True)


def _query(model) -> list[dict]:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    return [_param(name, "query", prop, name in required) for name, prop in schema["properties"].items()]


def _content(*names: str) -> dict:
    schema = _ref(names[0]) if len(names) == 1 else {"oneOf": [_ref(n) for n in names]}
    return {"application/json": {"schema": schema}}


def _op(summary, *, body=None, ok=(), status="200", params=(), security=_PERSON, more=None) -> dict:
    """One operation; `ok` names the response models of `status`, `more` adds other responses."""
    op = {"summary": summary, "responses": {**_ERRORS, **(more or {})}, "security": list(security)}
    op["responses"][status] = {"description": summary, **({"content": _content(*ok)} if ok else {})}
    if body:
        op["requestBody"] = {"required": True, "content": _content(body)}
    if params:
        op["parameters"] = list(params)
    return op


def _paths() -> dict:
    cid, agent = _path("connectionId", s.ConnectionId), _path("agentId", s.AgentId)
    idem = _param("Idempotency-Key", "header", TypeAdapter(s.IdempotencyKey).json_schema(), False)
    preview = {"200": {"description": "A dry run (dry_run=true): what would happen", "content": _content("DisconnectPreview")}}
    return {
        "/api/connections": {
            "get": _op("My connections, page by page", ok=["ConnectionsPage"], params=_query(q.PageQuery)),
            "post": _op("Start a connection", body="StartConnectionRequest", ok=["StartConnectionResponse"],
                        status="201", params=[idem])},
        "/api/connections/preflight": {"post": _op("Which toolkits are ready", body="PreflightRequest", ok=["PreflightResponse"])},
        "/api/connections/disconnect": {"delete": _op(
            "Disconnect (body form)", body="DisconnectRequest", ok=["DisconnectResponse", "DisconnectPreview"],
            params=[idem, *_query(q.DryRunQuery)])},
        **_stream_paths(),
        "/api/connections/{connectionId}": {
            "get": _op("One connection (polls Composio while INITIATED); ?wait=N answers on a status change",
                       ok=["ConnectionPublic"], params=[cid, *_query(q.WaitQuery)]),
            "delete": _op("Disconnect (REST form)", status="204", params=[cid, idem, *_query(q.DisconnectQuery)],
                          more=preview)},
        "/api/connections/{connectionId}/restore": {"post": _op("Undo a disconnect within the grace period", ok=["ConnectionPublic"], params=[cid, idem])},
        "/api/connections/{connectionId}/history": {"get": _op("The connection's events", ok=["HistoryPublic"], params=[cid])},
        "/api/agents/{agentId}/connections": {"get": _op("Connections bound to an agent", ok=["AgentConnectionsPublic"],
                                                         params=[agent])},
        "/api/agents/{agentId}/connections/{connectionId}": {
            "put": _op("Bind an agent", ok=["ConnectionPublic"], params=[agent, cid, idem]),
            "delete": _op("Unbind an agent", status="204", params=[agent, cid, idem])},
        **_offboarding_paths(idem),
        "/webhooks/composio": {"post": _op("Signed Composio events", ok=["WebhookAnswer"], security=_OPEN)},
        "/audit/events": {"get": _op("Events, paged by seq", ok=["EventsPage"], security=_AUDITOR,
                                     params=_query(q.EventsQuery))},
        "/audit/export": {"get": _export()},
        "/audit/verify": {"get": _op("Verify the hash chain", ok=["VerifyResult"], security=_AUDITOR,
                                     params=_query(q.SeqRangeQuery))},
        "/audit/state": {"get": _op("State as of a time or seq", ok=["StatePublic"], security=_AUDITOR,
                                    params=_query(q.StateQuery))},
        "/audit/heads": {"get": _op("Signed heads", ok=["HeadsPublic"], security=_AUDITOR)},
        "/audit/public-key": {"get": _op("The head-signing public key", ok=["PublicKeyPublic"], security=_OPEN)},
        "/healthz": {"get": _op("The process is up", ok=["Health"], security=_OPEN)},
        "/readyz": {"get": _op("The database is reachable and migrated", ok=["Readiness"], security=_OPEN)},
        "/metrics": {"get": _op("This process's operational counters", ok=["MetricsPublic"], security=_OPEN)},
    }


def _offboarding_paths(idem: dict) -> dict:
    """Offboarding (web/blueprints/offboarding.py) and the tenant's inventory (admin.py)."""
    user = _path("userId", s.UserId)
    off = _param("offboardingId", "path", {"type": "string", "pattern": "^off_[0-9a-f]{1,64}$"}, True)
    body = {"required": False, "content": _content("OffboardRequest")}
    me = _op("Offboard me: disconnect every connection of mine", ok=["OffboardingAccepted"], status="202",
             params=[idem, *_query(q.OffboardQuery)], security=[{"clerkSession": []}])
    them = _op("Offboard a person of the key's tenant (connections:admin)", ok=["OffboardingAccepted"],
               status="202", params=[user, idem, *_query(q.OffboardQuery)], security=_AUDITOR)
    me["requestBody"] = them["requestBody"] = body
    return {
        "/api/me/connections": {"delete": me},
        "/api/users/{userId}/connections": {"delete": them},
        "/api/offboardings/{offboardingId}": {"get": _op(
            "An offboarding's progress per connection; its signed receipt once done", ok=["OffboardingPublic"],
            params=[off])},
        "/api/admin/connections": {"get": _op("The tenant's connections, page by page (connections:admin)",
                                              ok=["ConnectionsPage"], params=_query(q.InventoryQuery),
                                              security=_AUDITOR)},
    }


def _export() -> dict:
    """NDJSON: one EventPublic per line (the hashed envelope and its hash), in seq order."""
    op = _op("NDJSON export of the ledger", security=_AUDITOR, params=_query(q.SeqRangeQuery))
    op["responses"]["200"]["content"] = {NDJSON: {
        "schema": {"type": "string", "description": "newline-delimited JSON: one event per line"},
        "x-itemSchema": _ref("EventPublic")}}  # 3.2 calls it itemSchema; 3.1 needs the x-
    op["responses"]["200"]["headers"] = {"Content-Disposition": {"schema": {"type": "string"},
                                         "description": "attachment; filename=ledger-export.ndjson"}}
    return op


def _sse_event(data: str) -> dict:
    """One server-sent event (OpenAPI 3.1: the media type's schema describes each event). The
    first event and heartbeats carry only `id:` (and `retry:`); the others a JSON `data:` line."""
    return {"type": "object", "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the ledger seq; resume with Last-Event-ID"},
        "event": {"type": "string"},
        "retry": {"type": ["integer", "string"], "description": "milliseconds a browser waits before reconnecting"},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": _ref(data)}}}


def _stream_paths() -> dict:
    """The SSE endpoints (web/events.py, docs/streams.md): text/event-stream, `id:` = seq."""
    resume = _param("Last-Event-ID", "header", {"type": "integer", "minimum": 0}, False)
    token = _param("access_token", "query", {"type": "string", "description": "the Clerk session token, "
                   "for EventSource (it cannot send headers); this endpoint only"}, False)
    person = _op("SSE of my connections' changes, resumable with Last-Event-ID", params=[resume, token])
    audit = _op("SSE of every event of the chain (export lines)", security=_AUDITOR,
                params=[resume, *_query(q.AuditStreamQuery)])
    for op, data in ((person, "ConnectionChange"), (audit, "EventPublic")):
        op["responses"]["200"]["content"] = {"text/event-stream": {"schema": _sse_event(data)}}
    return {"/api/connections/events": {"get": person}, "/audit/stream": {"get": audit}}


def document() -> dict:
    schemas = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "Connection Ledger", "version": "1.0.0",
                 "description": "Disconnect Composio-linked accounts safely; every change in a hash-chained ledger."},
        "paths": {**_paths(), **reconnect.openapi_paths(_op, _path, _param), **webhook_endpoints.openapi_paths(_op, _path)},
        "components": {
            "schemas": schemas,
            "responses": {"Error": {"description": "The error envelope", "content": _content("ErrorEnvelope")}},
            "securitySchemes": {"clerkSession": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}}},
    }


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document."""
    return jsonify(document())
