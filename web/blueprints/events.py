"""Live streams (Server-Sent Events) and waiting reads, all woken by the ledger's feed.

GET /api/connections/events   the caller's own connection changes (Clerk token, or an admin key:
                              its tenant's), `id:` = the ledger seq, resumable with Last-Event-ID
GET /audit/stream             every event of the chain as its export line (audit:read)
?wait=N on GET /api/connections/<id>   see wait_for_change

A stream holds no database connection while idle: it waits on the process's one Feed
(ledger/feed.py, built and subscribed by web/bootstrap.py, kept in web/live.py's Live) and reads
the table only to catch up on what fell out of the feed's window.
"""
from __future__ import annotations

import logging
import re
import time
from typing import Callable, Iterator

import orjson
from flask import Blueprint, Response, current_app, g, request

from ledger import envelope as ev
from ledger.decisions import may_act
from ledger.feed import EVERYONE, PAGE, Feed, Subscription
from ledger.results import ConnectionView

from .. import auth
from ..errors import ApiError
from ..live import live
from ..query_params import AuditStreamQuery, LastEventId, parse_query
from ..schemas import ConnectionChange, to_public

bp = Blueprint("events", __name__)
log = logging.getLogger("web.events")

RETRY_MS = 2000           # what a browser waits before reconnecting
PENDING = ("INITIATED", "INITIALIZING")


# -- authentication by query string (EventSource cannot send headers) -----------------------------
_TOKEN_IN_TEXT = re.compile(r"(access_token=)[^&\s\"']*")


class RedactAccessToken(logging.Filter):
    """`?access_token=` never reaches a log line (the server's request line names the URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message:
            record.msg, record.args = _TOKEN_IN_TEXT.sub(r"\1[redacted]", message), None
        return True


@bp.record_once
def _redact_server_logs(_state) -> None:
    for name in ("werkzeug", "gunicorn.access", "gunicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactAccessToken) for f in logger.filters):
            logger.addFilter(RedactAccessToken())


@bp.before_request
def _token_from_query() -> None:
    token = request.args.get("access_token")
    if token is None or request.endpoint != "events.connection_events":
        return
    if g.get("principal") is None and g.get("auth_error") is None:
        auth._verify_token(token.strip())


# -- SSE --------------------------------------------------------------------------------------
def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID")
    if raw is None or raw == "":
        return None
    from pydantic import TypeAdapter, ValidationError
    try:
        return TypeAdapter(LastEventId).validate_python(raw.strip())
    except ValidationError:
        raise ApiError(422, "VALIDATION_ERROR", "Last-Event-ID must be a ledger seq.",
                       [{"loc": ["header", "Last-Event-ID"], "msg": "Input should be a valid integer",
                         "type": "int_parsing"}]) from None


def _sse(feed: Feed, keys, cursor: int | None, heartbeat: float, gap: Callable, render: Callable) -> Response:
    """The streaming response. The feed is joined here, before the first byte, so a database
    that cannot be read is a 503 in the envelope rather than a stream that breaks at once; the
    subscription ends when the server closes the response (client gone, or the stream ended)."""
    subscription = feed.subscription(keys)
    sub = subscription.__enter__()
    try:
        head = sub.head()
    except BaseException:
        subscription.__exit__(None, None, None)
        raise
    cursor = head if cursor is None or cursor > head else cursor
    response = Response(stream(sub, cursor, heartbeat, gap, render), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.call_on_close(lambda: subscription.__exit__(None, None, None))
    return response


def stream(sub: Subscription, cursor: int, heartbeat: float, gap: Callable, render: Callable) -> Iterator[str]:
    """SSE lines: events after `cursor`, then live, with heartbeats (inside a subscription).

    A heartbeat is a comment; when the chain moved past the last event sent, it also carries a
    bare `id:` (no data: a browser dispatches nothing but resumes from there), so a reconnect
    never rescans what was already looked at. `gap(cursor, upto)` reads (events, new cursor)
    from the table when the feed's window no longer has them; `render(env)` is the data line,
    or None for an event this stream does not show."""
    yield f"retry: {RETRY_MS}\nid: {cursor}\n\n"
    sent, next_beat = cursor, time.monotonic() + heartbeat
    while not sub.feed.closed:  # closed: the stream ends, and the browser reconnects elsewhere
        got = sub.events_after(cursor, max(0.0, next_beat - time.monotonic()))
        found, upto = gap(cursor, sub.head()) if got is None else got
        out = []
        for env in found:
            text = render(env)
            if text is not None:
                out.append(f"id: {env.seq}\ndata: {text}\n\n")
                sent = env.seq
        cursor = upto
        if out:
            yield "".join(out)
        if time.monotonic() >= next_beat:
            yield ": keepalive\n" + (f"id: {cursor}\n" if cursor > sent else "") + "\n"
            sent, next_beat = max(sent, cursor), time.monotonic() + heartbeat


def _page_end(found: list, cursor: int, upto: int) -> tuple[list, int]:
    """The events up to `upto` of one page read after `cursor`, and where the next read starts."""
    kept = [e for e in found if e.seq <= upto]
    if len(found) == PAGE and kept and kept[-1].seq < upto:
        return kept, kept[-1].seq
    return kept, max(cursor, upto)


def warnings_of(env) -> list[str]:
    if env.type == ev.DISCONNECT_REQUESTED:
        return [f"agent {a} was unbound" for a in env.data.get("agents") or ()]
    return []


@bp.get("/api/connections/events")
@auth.require_person_or_admin
def connection_events():
    """SSE of my connections' changes (an admin key: its tenant's); resumable with Last-Event-ID."""
    cursor = _last_event_id()
    caller, lv = auth.current().caller(), live()

    def render(env) -> str | None:
        if not env.stream.startswith("connection:"):
            return None
        state, bound = lv.states.at(env)
        if not may_act(state, caller):
            return None
        return orjson.dumps(to_public(ConnectionChange, {
            "seq": env.seq, "type": env.type, "occurred_at": env.occurred_at, "recorded_at": env.recorded_at,
            "connection": ConnectionView.of(state, bound), "warnings": warnings_of(env)})).decode()

    def gap(after: int, upto: int):
        if caller.admin:
            return _page_end(lv.store.read_after(after, PAGE), after, upto)
        return _page_end(lv.store.query_events(after, PAGE, user_id=caller.id), after, upto)

    keys = {f"tenant:{caller.tenant}"} if caller.admin else {f"user:{caller.id}"}
    return _sse(lv.feed, keys, cursor, lv.heartbeat, gap, render)


@bp.get("/audit/stream")
@auth.require_scope("audit:read")
def audit_stream():
    """SSE of every event of the chain, in order, each as its export line (with its hash)."""
    q = parse_query(AuditStreamQuery)
    cursor = _last_event_id()
    if cursor is None:
        cursor = (q.from_seq or 1) - 1
    p, lv = auth.current(), live()
    log.info("audit stream by %s (%s) after seq %s", p.name, p.id, cursor)

    def gap(after: int, upto: int):
        return _page_end(lv.store.read_after(after, PAGE), after, upto)

    return _sse(lv.feed, {EVERYONE}, cursor, lv.heartbeat, gap, lambda env: env.to_json_line())


# -- ?wait ------------------------------------------------------------------------------------
def wait_for_change(caller, cid: str, seconds: float, trace_id: str | None) -> ConnectionView:
    """GET /api/connections/<id>?wait=N: the connection once its status differs from what it
    was at the start, or as it is at the deadline. While OAuth is pending, one waiter per
    process per POLL_INTERVAL_SECONDS asks Composio (through Connections.get, whose polls row
    bounds every process); the others are woken by the event that poll records."""
    svc, lv = current_app.extensions["connections"], live()
    deadline, stream_name = time.monotonic() + seconds, ev.connection_stream(cid)
    with lv.feed.subscription({"stream:" + stream_name}) as sub:
        cursor = sub.head()
        answer = svc.get(caller, cid, trace_id=trace_id)
        status = answer.status
        while (left := deadline - time.monotonic()) > 0:
            pending = answer.status in PENDING
            got = sub.events_after(cursor, min(left, lv.poll_wait(cid)) if pending else left)
            touched = got is None or bool(got[0])
            cursor = sub.head() if got is None else got[1]
            if touched or (pending and lv.claim_poll(cid)):
                answer = svc.get(caller, cid, trace_id=trace_id)
                if answer.status != status:
                    return answer
    return answer
