"""Request models and the constrained types of ids: they validate what a request sends (body,
path, header) and appear in /openapi.json."""
from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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


class OffboardRequest(Strict):
    immediate: bool = Field(default=False, description="revoke and delete now, without the grace period")


class ReconnectRequest(Strict):
    callbackUrl: Optional[Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://[\x21-\x7E]+$")]] = None
