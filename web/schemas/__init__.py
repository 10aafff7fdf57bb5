"""Request and response models (not tables): they validate requests, shape answers from the use
cases' domain values, and make /openapi.json.

  request_models.py   the bodies a client sends and the constrained id types
  response_models.py  every 2xx answer (and the error envelope), `answer` / `to_public`
  parsing.py          a request's body, Idempotency-Key and path ids checked against them

Import from `web.schemas`: every name is here."""
from __future__ import annotations

from .parsing import _details, idempotency_key, parse_body, valid_agent_id, valid_id, valid_user_id
from .request_models import (_BIGINT, AgentId, ConnectionId, DisconnectRequest, EventType, IdempotencyKey,
                             OffboardRequest, PreflightRequest, ReconnectRequest, StartConnectionRequest, Strict,
                             Toolkit, UserId)
from .response_models import (CitedEvent, ConnectionsPage, OffboardingAccepted, OffboardingConnection,
                              OffboardingPublic, ReceiptBody, ReceiptConnection, ReconnectResponse, SignedReceipt,
                              AgentConnectionsPublic, CamelPublic, ChainHead, ConnectionChange, ConnectionPublic,
                              ConnectionsPublic, ConnectionState, DisconnectPreview, DisconnectResponse, ErrorBody,
                              ErrorDetail, ErrorEnvelope, EventPublic, EventsPage, Health, HeadsPublic,
                              HistoryPublic, MetricsPublic, OutboxBacklog, PreflightResponse, ProcessMetrics, Public,
                              PublicKeyPublic, RateLimitState, Readiness, ReconcileMetrics, ReconcileRun,
                              RedeliveryAccepted, SignedHead, StartConnectionResponse, StatePublic, VerifyResult,
                              WebhookAnswer, WebhookDeliveriesPublic, WebhookDeliveryPublic, WebhookEndpointCreated,
                              WebhookEndpointPublic, WebhookEndpointsPublic, answer, to_public)

__all__ = [name for name in dir() if not name.startswith("__") and name not in ("annotations",)]
