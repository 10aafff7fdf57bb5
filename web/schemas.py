"""Request and response models (not tables). They validate requests and generate /openapi.json."""
from __future__ import annotations

import json
from typing import Annotated, Any, Optional

from flask import request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .errors import ApiError

ConnectionId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-]+$")]
Toolkit = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-]+$")]
AgentId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_\-.:]+$")]


class Strict(BaseModel):
    # strict: "true" is not a boolean; extra=forbid: a misspelt field is an error, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


class StartConnectionRequest(Strict):
    toolkit: Toolkit
    callbackUrl: Optional[Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://")]] = None
    credentials: Optional[dict[str, str]] = Field(default=None, description="API-key toolkits only; sent to Composio, never stored")


class DisconnectRequest(Strict):
    connectionId: ConnectionId
    force: bool = False
    immediate: bool = False
    dryRun: bool = False


class PreflightRequest(Strict):
    toolkits: Annotated[list[Toolkit], Field(min_length=1, max_length=50)]


class ConnectionPublic(BaseModel):
    connectionId: str
    toolkit: str
    status: str
    userId: Optional[str]
    createdAt: str
    updatedAt: str
    purgeAt: Optional[str]
    lastUsedAt: Optional[str]
    statusReason: Optional[str]
    agents: list[str]


class ConnectionsPublic(BaseModel):
    data: list[ConnectionPublic]
    count: int


class StartConnectionResponse(BaseModel):
    connectionId: str
    status: str
    redirectUrl: Optional[str]


class DisconnectResponse(BaseModel):
    success: bool
    connectionId: str
    status: str
    purgeAt: Optional[str]
    warnings: list[str]


class PreflightResponse(BaseModel):
    connected: list[str]
    pending: list[str]
    missing: list[str]
    allReady: bool


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


def _details(exc: ValidationError, where: str) -> list[dict]:
    return [{"loc": [where, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)]


def parse_body(model: type[BaseModel], allow_empty: bool = False):
    """The JSON body validated against `model`: 400 INVALID_JSON or 422 VALIDATION_ERROR."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if allow_empty:
            return model()
        raise ApiError(422, "VALIDATION_ERROR", "A JSON object body is required.",
                       [{"loc": ["body"], "msg": "Field required", "type": "missing"}])
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_JSON", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(422, "VALIDATION_ERROR", "The request body must be a JSON object.",
                       [{"loc": ["body"], "msg": "Input should be an object", "type": "model_type"}])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "VALIDATION_ERROR", "The request body is not valid.", _details(exc, "body")) from None


def query_bool(name: str, default: bool = False) -> bool:
    value = request.args.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise ApiError(422, "VALIDATION_ERROR", f"Query parameter {name} must be true or false.",
                   [{"loc": ["query", name], "msg": "Input should be a valid boolean", "type": "bool_parsing"}])


def valid_id(value: str) -> bool:
    import re
    return bool(re.fullmatch(r"[A-Za-z0-9_\-]{1,100}", value or ""))
