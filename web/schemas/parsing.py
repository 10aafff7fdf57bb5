"""Parsing a request against the models: the JSON body, the Idempotency-Key header, path ids.
What does not fit is a 400/422 in the error envelope (a path id that cannot exist: a 404)."""
from __future__ import annotations

import json

from flask import request
from pydantic import BaseModel, TypeAdapter, ValidationError

from ..errors import ApiError
from ..request_context import body_bytes
from .request_models import AgentId, ConnectionId, IdempotencyKey, UserId

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


def valid_user_id(value: str) -> bool:
    return _fits(_USER, value)


_USER = TypeAdapter(UserId)
