"""GET /openapi.json: OpenAPI 3.1 generated from the same pydantic models that validate requests."""
from __future__ import annotations

from flask import Blueprint, jsonify

from . import schemas as s

bp = Blueprint("openapi", __name__)

_MODELS = [s.StartConnectionRequest, s.DisconnectRequest, s.PreflightRequest, s.ConnectionPublic,
           s.ConnectionsPublic, s.StartConnectionResponse, s.DisconnectResponse, s.PreflightResponse,
           s.ErrorEnvelope]
_ERRORS = {str(code): {"$ref": "#/components/responses/Error"} for code in (400, 401, 403, 404, 409, 413, 422, 429, 500, 502)}
_PERSON = [{"clerkSession": []}, {"apiKey": []}]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(summary, *, body=None, ok=None, status="200", params=(), security=_PERSON) -> dict:
    op = {"summary": summary, "responses": {**_ERRORS}, "security": list(security)}
    op["responses"][status] = ({"description": summary, "content": {"application/json": {"schema": _ref(ok)}}}
                               if ok else {"description": summary})
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if params:
        op["parameters"] = [{"name": n, "in": where, "required": where == "path", "schema": {"type": t}}
                            for n, where, t in params]
    return op


def _paths() -> dict:
    cid = ("connectionId", "path", "string")
    agent = ("agentId", "path", "string")
    idem = ("Idempotency-Key", "header", "string")
    return {
        "/api/connections": {
            "get": _op("My connections", ok="ConnectionsPublic", params=[("status", "query", "string"), ("toolkit", "query", "string")]),
            "post": _op("Start a connection", body="StartConnectionRequest", ok="StartConnectionResponse", status="201", params=[idem])},
        "/api/connections/preflight": {"post": _op("Which toolkits are ready", body="PreflightRequest", ok="PreflightResponse")},
        "/api/connections/disconnect": {"delete": _op("Disconnect (body form)", body="DisconnectRequest", ok="DisconnectResponse", params=[idem, ("dry_run", "query", "boolean")])},
        "/api/connections/{connectionId}": {
            "get": _op("One connection (polls Composio while INITIATED)", ok="ConnectionPublic", params=[cid]),
            "delete": _op("Disconnect (REST form)", status="204", params=[cid, idem, ("force", "query", "boolean"), ("immediate", "query", "boolean"), ("dry_run", "query", "boolean")])},
        "/api/connections/{connectionId}/restore": {"post": _op("Undo a disconnect within the grace period", ok="ConnectionPublic", params=[cid, idem])},
        "/api/connections/{connectionId}/history": {"get": _op("The connection's events", params=[cid])},
        "/api/agents/{agentId}/connections": {"get": _op("Connections bound to an agent", params=[agent])},
        "/api/agents/{agentId}/connections/{connectionId}": {
            "put": _op("Bind an agent", ok="ConnectionPublic", params=[agent, cid, idem]),
            "delete": _op("Unbind an agent", status="204", params=[agent, cid, idem])},
        "/webhooks/composio": {"post": _op("Signed Composio events", security=[])},
        "/audit/events": {"get": _op("Events, paged by seq", security=[{"apiKey": []}], params=[("after", "query", "integer"), ("limit", "query", "integer")])},
        "/audit/export": {"get": _op("NDJSON export of the ledger", security=[{"apiKey": []}], params=[("from_seq", "query", "integer"), ("to_seq", "query", "integer")])},
        "/audit/verify": {"get": _op("Verify the hash chain", security=[{"apiKey": []}])},
        "/audit/state": {"get": _op("State as of a time or seq", security=[{"apiKey": []}], params=[("as_of", "query", "string")])},
        "/audit/heads": {"get": _op("Signed heads", security=[{"apiKey": []}])},
        "/audit/public-key": {"get": _op("The head-signing public key", security=[])},
        "/healthz": {"get": _op("The process is up", security=[])},
        "/readyz": {"get": _op("The database is reachable and migrated", security=[])},
    }


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
        "paths": _paths(),
        "components": {
            "schemas": schemas,
            "responses": {"Error": {"description": "The error envelope",
                                    "content": {"application/json": {"schema": _ref("ErrorEnvelope")}}}},
            "securitySchemes": {"clerkSession": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}}},
    }


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document."""
    return jsonify(document())
