"""Response models: every 2xx body is validated through one of these (`answer`), and the same
models make /openapi.json. A use case's domain value goes in; the wire names come out."""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal, Optional

from flask import jsonify
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

from ledger import projections

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
    scopes: Optional[list[str]] = Field(default=None, description="granted scopes, where Composio reports them")
    expires_at: Optional[str] = Field(default=None, description="when the credential expires, where Composio reports it")
    use_count: int = Field(default=0, description="uses recorded (trigger events)")


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
    connection: ConnectionPublic = Field(json_schema_extra=lambda schema: schema.pop("title", None))  # as before: no title beside the $ref
    warnings: list[str]


class ReconnectResponse(CamelPublic):
    """A reconnect in place: the same connection, INITIATED again, and where to re-authorise."""
    connection_id: str
    status: str
    redirect_url: Optional[str]


# --- issue 15: pages of connections, offboarding and its receipt ---------------------------

class ConnectionsPage(ConnectionsPublic):
    """A page of connections in a stable order (createdAt, then connectionId)."""
    total: int = Field(description="every connection matching the filters, across all pages")
    next_cursor: Optional[str] = Field(description="pass as ?cursor= for the next page; null on the last one")


class OffboardingAccepted(CamelPublic):
    offboarding_id: str
    user_id: str
    status: Literal["in_progress", "completed"]
    connections: list[str] = Field(description="the connections this offboarding disconnects")


class CitedEvent(Public):
    type: str
    seq: int
    hash: str


class OffboardingConnection(CamelPublic):
    connection_id: str
    toolkit: str
    status: str
    outcome: Literal["pending", "revoked", "not_revocable", "not_found_upstream", "failed", "restored",
                     "already_disconnected"]
    revoked: list[str] = Field(description="the kinds of tokens revoked at the provider")
    reason: Optional[str] = Field(description="why nothing was revoked, or what is still awaited")
    at: Optional[str] = Field(description="when the outcome was recorded")
    events: list[CitedEvent] = Field(description="the ledger events that record the outcome")


class ReceiptConnection(Public):
    connection_id: str
    toolkit: str
    outcome: str
    revoked: list[str]
    reason: Optional[str]
    at: Optional[str]
    events: list[CitedEvent]


class ReceiptBody(Public):
    """What is signed: snake_case, as the offline verifier reads it."""
    kind: Literal["connection-ledger.offboarding-receipt"]
    version: Literal[1]
    offboarding_id: str
    tenant: str
    user_id: str
    requested: CitedEvent
    requested_at: str
    completed_at: str
    connections: list[ReceiptConnection]


class SignedReceipt(Public):
    receipt: ReceiptBody
    algorithm: Literal["Ed25519"]
    key_id: str
    signature: str = Field(description="Ed25519, base64, over the UTF-8 canonical JSON of `receipt`")


class OffboardingPublic(CamelPublic):
    offboarding_id: str
    user_id: str
    status: Literal["in_progress", "completed"]
    requested_at: str
    immediate: bool
    connections: list[OffboardingConnection]
    receipt: Optional[SignedReceipt] = Field(description="present once every connection's outcome is final "
                                                         "(and a signing key is configured)")


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
