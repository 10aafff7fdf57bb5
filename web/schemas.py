"""Request and response models (not tables). They validate requests and generate /openapi.json."""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Annotated, Any, Literal, Optional

from flask import jsonify, request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, create_model
from pydantic.alias_generators import to_camel

from ledger import projections

from .errors import ApiError
from .request_context import body_bytes

_ID = r"^[A-Za-z0-9_\-]+$"
_AGENT_ID = r"^[A-Za-z0-9_\-.:]+$"
_VISIBLE_ASCII = r"^[\x21-\x7E]+$"
_BIGINT = 2**63 - 1  # the seq column; a larger number would reach the database and fail there

ConnectionId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_ID)]
Toolkit = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_ID)]
AgentId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_AGENT_ID)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_VISIBLE_ASCII)]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")]
# The ledger stores it prefixed with the caller ("http:user:<id>:") in a 200-character column.
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_VISIBLE_ASCII),
                           Field(description="1 to 128 visible ASCII characters (else 422); a repeat returns the first answer")]


class Strict(BaseModel):
    # strict: "true" is not a boolean; extra=forbid: a misspelt field is an error, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


class StartConnectionRequest(Strict):
    toolkit: Toolkit
    callbackUrl: Optional[Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://[\x21-\x7E]+$")]] = None
    credentials: Optional[dict[str, str]] = Field(default=None, description="API-key toolkits only; sent to Composio, never stored")


class DisconnectRequest(Strict):
    connectionId: ConnectionId
    force: bool = False
    immediate: bool = False
    dryRun: bool = False


class PreflightRequest(Strict):
    toolkits: Annotated[list[Toolkit], Field(min_length=1, max_length=50)]


# --- responses: every 2xx body is validated through one of these (`answer`), the same models
# that make /openapi.json, so the document cannot drift from what the service says. extra=forbid:
# a key the ledger adds without a schema is a failure in the tests, not an undocumented field.

class Public(BaseModel):
    """An answer whose wire names are its field names (the audit and ops answers: snake_case)."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True, from_attributes=True)


def _title(name: str, _field) -> str:
    return to_camel(name).title()  # the title the camelCase field names always had in /openapi.json


class CamelPublic(Public):
    """An answer of the connections API: snake_case fields (those of the ledger's domain value it
    is validated from, ledger/results.py) on the wire as camelCase. Build it with
    `answer(Model, domain_value)`: the value's attributes are read by name."""
    model_config = ConfigDict(alias_generator=to_camel, field_title_generator=_title)


class ConnectionPublic(CamelPublic):
    connection_id: str
    toolkit: str
    status: str
    user_id: Optional[str]
    created_at: str
    updated_at: str
    purge_at: Optional[str]
    last_used_at: Optional[str]
    status_reason: Optional[str]
    upstream_confirmed: bool = Field(description="false while Composio has not confirmed a disconnect "
                                                 "(agents may still have access; statusReason says why)")
    agents: list[str]


class ConnectionsPublic(CamelPublic):
    data: list[ConnectionPublic]
    count: int


class AgentConnectionsPublic(CamelPublic):
    agent_id: str
    data: list[ConnectionPublic]
    count: int


class StartConnectionResponse(CamelPublic):
    connection_id: str
    status: str
    redirect_url: Optional[str]


class DisconnectResponse(CamelPublic):
    success: bool
    connection_id: str
    status: str
    upstream_confirmed: Optional[bool] = None
    purge_at: Optional[str]
    warnings: list[str]


class DisconnectPreview(DisconnectResponse):
    """A dry run: what a disconnect would do, without doing it."""
    dry_run: Literal[True]
    agents: list[str] = Field(description="agents bound now; a real disconnect unbinds them")
    can_revoke: Optional[bool] = Field(description="whether the provider's grant can be revoked (null: unknown)")
    current_status: str
    requires_force: bool = Field(description="a real disconnect without force would answer 409")
    would_succeed: bool
    would_status: Optional[str] = Field(description="the status a real disconnect would leave (null if refused)")
    would_error: Optional[str] = Field(description="the error code a real disconnect would get, if any")


class PreflightResponse(CamelPublic):
    connected: list[str]
    pending: list[str] = Field(description="every required toolkit not ACTIVE: initiated + missing")
    initiated: list[str] = Field(description="OAuth under way")
    missing: list[str] = Field(description="no connection under way")
    all_ready: bool


class EventPublic(Public):
    """A recorded event as hashed, plus its hash: also one line of the NDJSON export."""
    seq: int
    stream: str
    version: int
    type: str
    schema_: int = Field(alias="schema")
    data: dict[str, Any]
    meta: dict[str, Any]
    occurred_at: str
    recorded_at: str
    prev_hash: str
    hash: str


class HistoryPublic(Public):
    events: list[EventPublic]
    count: int


class EventsPage(Public):
    events: list[EventPublic]
    next_after: Optional[int] = Field(description="pass as ?after= for the next page; null on the last one")


class ChainHead(Public):
    seq: int
    hash: str


class VerifyResult(Public):
    ok: bool
    head: ChainHead
    checked: int
    first_bad_seq: Optional[int]
    reason: Optional[str] = Field(default=None, description="present when the chain is broken")


def _projection_row_model(name: str, doc: str, state_class, **more) -> type[Public]:
    """A model whose fields are the projection's own columns (every one required, as a row
    always holds them), plus `more`: the audit answers are that row, so they are declared once."""
    hints = typing.get_type_hints(state_class)
    columns = {f.name: (hints[f.name], ...) for f in dataclasses.fields(state_class)}
    return create_model(name, __base__=Public, __doc__=doc, __module__=__name__, **columns, **more)


ConnectionState = _projection_row_model(
    "ConnectionState", "One connection as an auditor reads it: the projection's row and its bound agents.",
    projections.ConnectionState, agents=(list[str], ...))


class StatePublic(Public):
    as_of: Optional[str]
    connections: dict[str, ConnectionState]


class SignedHead(Public):
    seq: int
    hash: str
    time: str
    signature: str = Field(description="Ed25519, base64, over canonical_json({hash, seq, time})")
    key_id: str
    event_seq: int = Field(description="the seq of the ledger.head_signed event that records it")


class HeadsPublic(Public):
    heads: list[SignedHead]


class PublicKeyPublic(Public):
    algorithm: Literal["Ed25519"]
    public_key: str = Field(description="base64 of the raw 32 bytes")
    pem: str
    key_id: str


class WebhookAnswer(Public):
    success: Literal[True]
    outcome: Literal["accepted", "duplicate", "unrecognised"]


class Health(Public):
    status: Literal["ok"]


class RateLimitState(CamelPublic):
    enabled: bool
    storage: Optional[Literal["ok", "unreachable"]] = None
    fail_open: Optional[bool] = None
    failing: Optional[bool] = None
    failures: Optional[int] = None


class Readiness(Public):
    status: Literal["ready"]
    database: str
    revision: Optional[str]
    ratelimit: RateLimitState


class ProcessMetrics(Public):
    pid: int
    counters: dict[str, int] = Field(description="this worker process, since it started")


class ReconcileRun(Public):
    started_at: str
    finished_at: str
    user_id: Optional[str]
    counts: dict[str, int]


class ReconcileMetrics(Public):
    last_runs: list[ReconcileRun] = Field(description="newest first")


class OutboxBacklog(Public):
    pending: int = Field(description="actions due now, not yet carried out")
    oldest_due_age_seconds: float = Field(description="how long the oldest due action has waited")
    scheduled: int = Field(description="actions due later (grace periods, backoff)")
    dead: int = Field(description="dead-lettered actions: `ledger outbox retry` re-queues one")


class MetricsPublic(Public):
    process: ProcessMetrics
    reconcile: ReconcileMetrics
    outbox: OutboxBacklog


class WebhookEndpointPublic(CamelPublic):
    """An outgoing webhook endpoint as listed: never its secret."""
    id: str
    url: str
    description: str
    event_types: list[str] = Field(description="the event types it receives; empty: every type")
    created_at: str
    deliveries: dict[str, int] = Field(default_factory=dict, description="deliveries by status")


class WebhookEndpointCreated(CamelPublic):
    """The answer to a registration: the only place the whsec_ signing secret ever appears."""
    id: str
    url: str
    description: str
    event_types: list[str]
    created_at: str
    secret: str = Field(description="whsec_ + base64: the Standard Webhooks signing secret, shown once")


class WebhookEndpointsPublic(CamelPublic):
    data: list[WebhookEndpointPublic]
    count: int


class WebhookDeliveryPublic(CamelPublic):
    id: str
    webhook_id: str = Field(description="the webhook-id header the receiver sees; the same on every retry")
    connection_id: Optional[str]
    type: str
    status: str
    attempts: int
    next_attempt_at: Optional[str]
    last_error: Optional[str]
    delivered_at: Optional[str]


class WebhookDeliveriesPublic(CamelPublic):
    data: list[WebhookDeliveryPublic]
    count: int


class RedeliveryAccepted(CamelPublic):
    endpoint_id: str
    requeued: int = Field(description="deliveries queued again, with their original webhook-ids")


class ConnectionChange(CamelPublic):
    """One event of GET /api/connections/events: the connection as it stood after it."""
    seq: int
    type: str
    occurred_at: str
    recorded_at: str
    connection: ConnectionPublic
    warnings: list[str]


class ErrorDetail(BaseModel):
    loc: list[Any]
    msg: str
    type: str


class ErrorBody(BaseModel):
    code: str
    message: str
    type: str
    status: int
    trace_id: Optional[str]
    timestamp: str
    details: Optional[Any] = None


class ErrorEnvelope(BaseModel):
    success: bool = False
    error: ErrorBody


def to_public(model: type[Public], value, **extra) -> dict:
    """`value` validated through `model`, as the JSON-ready dict of the keys it holds. `value` is
    a domain value (its attributes are read by field name), a dict (by wire name or field name)
    or a model; `extra` adds fields the web knows and the domain value does not (`success`)."""
    if isinstance(value, model) and not extra:
        validated = value
    else:
        if extra:
            value = {**(value if isinstance(value, dict) else _attributes(value)), **extra}
        validated = model.model_validate(value)
    return validated.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _attributes(value) -> dict:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def answer(model: type[Public], value, status: int = 200, **extra):
    """`value` validated through `model` and rendered as JSON: the one way a view answers 2xx
    with a body. Only the fields `value` holds are rendered (exclude_unset: a dict's keys, a
    domain value's attributes), so the bytes are what the value says; a value the model refuses
    is a 500, caught by the tests."""
    return jsonify(to_public(model, value, **extra)), status


# --- parsing -----------------------------------------------------------------------------

def _details(exc: ValidationError, *where) -> list[dict]:
    return [{"loc": [*where, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)]


def parse_body(model: type[BaseModel], allow_empty: bool = False):
    """The JSON body validated against `model`: 400 INVALID_JSON or 422 VALIDATION_ERROR."""
    raw = body_bytes()
    if not raw.strip():
        if allow_empty:
            return model()
        raise ApiError(422, "VALIDATION_ERROR", "A JSON object body is required.",
                       [{"loc": ["body"], "msg": "Field required", "type": "missing"}])
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_JSON", "The request body is not valid JSON.") from None
    except RecursionError:  # "[[[[…" thousands deep: the decoder gives up, and so do we
        raise ApiError(400, "INVALID_JSON", "The request body is nested too deeply.") from None
    if not isinstance(data, dict):
        raise ApiError(422, "VALIDATION_ERROR", "The request body must be a JSON object.",
                       [{"loc": ["body"], "msg": "Input should be an object", "type": "model_type"}])
    bad = _unencodable(data, ["body"])
    if bad is not None:
        raise ApiError(422, "VALIDATION_ERROR", "The request body is not valid.",
                       [{"loc": bad, "msg": "Input should be valid Unicode (a lone surrogate is not)",
                         "type": "string_unicode"}])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "VALIDATION_ERROR", "The request body is not valid.", _details(exc, "body")) from None


def _unencodable(value, loc: list) -> list | None:
    """Where a string holds a lone surrogate ("\\ud800" is valid JSON, but no UTF-8 can carry
    it: Composio, the database and the chain's hash would each fail on it later), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return loc
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and _unencodable(key, loc) is not None:
            return [*loc, key]
        found = _unencodable(item, [*loc, key])
        if found is not None:
            return found
    return None


_IDEMPOTENCY_KEY = TypeAdapter(IdempotencyKey)


def idempotency_key() -> str | None:
    """The Idempotency-Key header, or None; anything but 1..128 visible ASCII characters is a 422.

    Read it before anything else happens: a key the ledger cannot store must not fail after
    Composio was already called."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    try:
        return _IDEMPOTENCY_KEY.validate_python(raw)
    except ValidationError as exc:
        raise ApiError(422, "VALIDATION_ERROR", "The Idempotency-Key header is not valid.",
                       _details(exc, "header", "Idempotency-Key")) from None


_CONNECTION_ID, _AGENT = TypeAdapter(ConnectionId), TypeAdapter(AgentId)


def _fits(adapter: TypeAdapter, value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def valid_id(value: str) -> bool:
    """Could this be a connection id? (A path id that cannot is answered like a missing one.)"""
    return _fits(_CONNECTION_ID, value)


def valid_agent_id(value: str) -> bool:
    return _fits(_AGENT, value)
