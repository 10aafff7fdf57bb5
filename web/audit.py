"""/audit: read, export, verify and replay the whole ledger (API keys with audit:read)."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, jsonify, request

from ledger import envelope as ev

from . import auth
from .errors import ApiError
from .timeparse import seq_or_time

bp = Blueprint("audit", __name__, url_prefix="/audit")
log = logging.getLogger("web.audit")


def _ledger():
    return current_app.extensions["ledger"]


def _int_arg(name: str, default: int | None, lo: int = 0, hi: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < lo or (hi is not None and int(raw) > hi):
        bound = f" and at most {hi}" if hi is not None else ""
        raise ApiError(422, "VALIDATION_ERROR", f"{name} must be an integer of at least {lo}{bound}.",
                       [{"loc": ["query", name], "msg": f"Input should be an integer >= {lo}{bound}", "type": "int_parsing"}])
    return int(raw)


def _time_arg(name: str) -> str | None:
    raw = request.args.get(name)
    if not raw:
        return None
    seq, time = _as_of(raw, name)
    if seq is not None:
        raise ApiError(422, "VALIDATION_ERROR", f"{name} must be an ISO 8601 time.",
                       [{"loc": ["query", name], "msg": "Input should be an ISO 8601 time", "type": "datetime_parsing"}])
    return time


def _as_of(raw: str, name: str):
    try:
        return seq_or_time(raw)
    except ValueError:
        raise ApiError(422, "VALIDATION_ERROR", f"{name} must be a seq number or an ISO 8601 time.",
                       [{"loc": ["query", name], "msg": "Input should be a seq or an ISO 8601 time", "type": "value_error"}]) from None


@bp.after_request
def _log_access(response):
    p = g.get("principal")
    log.info("audit %s %s by %s (%s) -> %s", request.method, request.full_path.rstrip("?"),
             p.name if p else "anonymous", p.id if p else "-", response.status_code)
    return response


@bp.get("/events")
@auth.require_scope("audit:read")
def events():
    """Events after a seq, filtered; page with next_after."""
    after, limit = _int_arg("after", 0), _int_arg("limit", 100, lo=1, hi=1000)
    found = _ledger().store.query_events(
        after, limit, connection_id=request.args.get("connection_id") or None,
        user_id=request.args.get("user_id") or None, type=request.args.get("type") or None,
        since=_time_arg("since"), until=_time_arg("until"))
    next_after = found[-1].seq if len(found) == limit else None
    return jsonify({"events": [e.as_dict() for e in found], "next_after": next_after})


@bp.get("/export")
@auth.require_scope("audit:read")
def export():
    """The ledger (or a seq range) as NDJSON, streamed page by page in constant memory."""
    from_seq, to_seq = _int_arg("from_seq", 1, lo=1), _int_arg("to_seq", None, lo=1)
    lines = _ledger().store.iter_export_lines(from_seq, to_seq)
    return Response(lines, mimetype="application/x-ndjson",
                    headers={"Content-Disposition": "attachment; filename=ledger-export.ndjson"})


@bp.get("/verify")
@auth.require_scope("audit:read")
def verify():
    """Walk the chain: ok, head, how many checked, the first bad seq."""
    result = _ledger().verify(_int_arg("from_seq", None, lo=1), _int_arg("to_seq", None, lo=1))
    return jsonify(result.as_dict())


@bp.get("/state")
@auth.require_scope("audit:read")
def state():
    """Every connection's state as of a time or seq, by replay."""
    raw = request.args.get("as_of")
    seq, time = _as_of(raw, "as_of") if raw else (None, None)
    projection = _ledger().state_as_of(seq=seq, time=time)
    return jsonify({"as_of": raw, "connections": projection.as_json()})


@bp.get("/heads")
@auth.require_scope("audit:read")
def heads():
    """Signed heads recorded in the chain."""
    from .heads import HEADS_STREAM
    found = _ledger().read_stream(HEADS_STREAM)
    return jsonify({"heads": [{**e.data, "event_seq": e.seq} for e in found if e.type == ev.HEAD_SIGNED]})


@bp.get("/public-key")
def public_key():
    """The Ed25519 public key that signs heads (base64 of the raw 32 bytes, and PEM)."""
    from ledger.signing import key_id, public_key_pem, public_key_text
    from .heads import SigningNotConfigured, private_key
    try:
        key = private_key(current_app)
    except SigningNotConfigured:
        raise ApiError(404, "NOT_CONFIGURED", "Head signing is not configured.") from None
    return jsonify({"algorithm": "Ed25519", "public_key": public_key_text(key), "pem": public_key_pem(key),
                    "key_id": key_id(key.public_key())})
