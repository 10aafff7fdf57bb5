"""Query-string models: what each route accepts in ?..., validated like bodies (422 with
loc ["query", name]) and documented in /openapi.json from the same models."""
from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from flask import request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from ledger.clock import seq_or_time
from ledger.projections import STATUSES

from .errors import ApiError
from .schemas import _BIGINT, ConnectionId, EventType, Toolkit, UserId, _details

# Strings on the wire, so lax types.

def _integer(value):
    # pydantic's lax int also takes "5.0", "1_000" and " 5": a seq is plain digits.
    if isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value):
        raise PydanticCustomError("int_parsing", "Input should be a valid integer")
    return value


def _iso_time(value: str) -> str:
    try:
        time = seq_or_time(value)[1]
    except ValueError:
        time = None
    if time is None:  # a bare seq number is not a time here
        raise PydanticCustomError("datetime_parsing", "Input should be an ISO 8601 time")
    return time


def _seq_or_iso_time(value: str) -> str:
    try:
        seq, _ = seq_or_time(value)
    except ValueError:
        raise PydanticCustomError("value_error", "Input should be a seq or an ISO 8601 time") from None
    if seq is not None and seq > _BIGINT:
        raise PydanticCustomError("less_than_equal", "Input should be less than or equal to {le}", {"le": _BIGINT})
    return value


def _upper(value):
    return value.upper() if isinstance(value, str) else value


After = Annotated[int, Field(ge=0, le=_BIGINT), BeforeValidator(_integer)]
Seq = Annotated[int, Field(ge=1, le=_BIGINT), BeforeValidator(_integer)]
IsoTime = Annotated[str, StringConstraints(max_length=64), AfterValidator(_iso_time), Field(json_schema_extra={"format": "date-time"})]
SeqOrTime = Annotated[str, StringConstraints(max_length=64), AfterValidator(_seq_or_iso_time),
                      Field(description="a seq number or an ISO 8601 time")]
Status = Annotated[Literal[tuple(sorted(STATUSES))], BeforeValidator(_upper)]


class Query(BaseModel):
    # Unknown parameters of a read are ignored (cache busters and the like)...
    model_config = ConfigDict(extra="ignore")


class ListQuery(Query):
    status: Optional[Status] = None
    toolkit: Optional[Toolkit] = None


class DryRunQuery(Query):
    # ...but not of a disconnect: a misspelt ?dryrun=true must not disconnect for real.
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = Field(default=False, description="answer what a disconnect would do, without doing it")


class DisconnectQuery(DryRunQuery):
    force: bool = False
    immediate: bool = False


class EventsQuery(Query):
    after: After = 0
    limit: Annotated[int, Field(ge=1, le=1000), BeforeValidator(_integer)] = 100
    connection_id: Optional[ConnectionId] = None
    user_id: Optional[UserId] = None
    type: Optional[EventType] = None
    since: Optional[IsoTime] = None
    until: Optional[IsoTime] = None


class SeqRangeQuery(Query):
    from_seq: Optional[Seq] = Field(default=None, description="first seq (default 1)")
    to_seq: Optional[Seq] = Field(default=None, description="last seq (default the head)")

    @field_validator("to_seq")
    @classmethod
    def _not_before_from_seq(cls, value, info):
        from_seq = info.data.get("from_seq")
        if value is not None and from_seq is not None and value < from_seq:
            raise PydanticCustomError("greater_than_equal", "Input should be greater than or equal to from_seq ({ge})",
                                      {"ge": from_seq})
        return value


class StateQuery(Query):
    as_of: Optional[SeqOrTime] = None


class WaitQuery(Query):
    wait: Optional[Annotated[float, Field(ge=0, le=60, allow_inf_nan=False,
                                          description="answer when the status changes, or after this many seconds (at most 60)")]] = None


class AuditStreamQuery(Query):
    from_seq: Optional[Seq] = Field(default=None, description="first seq (default 1); Last-Event-ID wins")


LastEventId = Annotated[int, Field(ge=0, le=_BIGINT), BeforeValidator(_integer)]


def parse_query(model: type[Query]):
    """The query string validated against `model`: 422 VALIDATION_ERROR. An empty value is a
    value, and none of ours may be empty (/openapi.json says minLength, enum or a format), so
    `?toolkit=` is refused rather than read as "no filter"."""
    given = dict(request.args.items())
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise ApiError(422, "VALIDATION_ERROR", "The query parameters are not valid.", _details(exc, "query")) from None


# --- issue 15: cursor pages of connections ----------------------------------------------

def _cursor(value: str) -> str:
    from ledger.errors import InvalidInput
    from ledger.pagination import decode_cursor
    try:
        decode_cursor(value)
    except InvalidInput:
        raise PydanticCustomError("value_error", "Input should be a cursor this service gave out") from None
    return value


Cursor = Annotated[str, StringConstraints(min_length=1, max_length=1000), AfterValidator(_cursor),
                   Field(description="the nextCursor of the previous page (opaque)")]
PageLimit = Annotated[int, Field(ge=1, le=500, description="items per page (1..500)"), BeforeValidator(_integer)]


class PageQuery(ListQuery):
    limit: PageLimit = 100
    cursor: Optional[Cursor] = None


class InventoryQuery(PageQuery):
    user: Optional[UserId] = Field(default=None, description="one person's connections")
    unused_days: Optional[Annotated[int, Field(ge=0, le=36500), BeforeValidator(_integer)]] = Field(
        default=None, description="no use for this many days (never used: created before then)")


class OffboardQuery(Query):
    # A misspelt ?imediate=true must not wait out the grace period unnoticed.
    model_config = ConfigDict(extra="forbid")
    immediate: bool = Field(default=False, description="revoke and delete now, without the grace period")
