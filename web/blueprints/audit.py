"""/audit: read, export, verify and replay the whole ledger (API keys with audit:read)."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, request

from ledger import envelope as ev

from .. import auth
from ..errors import ApiError
from ..query_params import EventsQuery, SeqRangeQuery, StateQuery, parse_query
from ..schemas import EventsPage, HeadsPublic, PublicKeyPublic, StatePublic, VerifyResult, answer
from ledger.clock import seq_or_time

bp = Blueprint("audit", __name__, url_prefix="/audit")
log = logging.getLogger("web.audit")


def _ledger():
    return current_app.extensions["ledger"]


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
    q = parse_query(EventsQuery)
    found = _ledger().store.query_events(q.after, q.limit, connection_id=q.connection_id, user_id=q.user_id,
                                         type=q.type, since=q.since, until=q.until)
    next_after = found[-1].seq if len(found) == q.limit else None
    return answer(EventsPage, {"events": [e.as_dict() for e in found], "next_after": next_after})


@bp.get("/export")
@auth.require_scope("audit:read")
def export():
    """The ledger (or a seq range) as NDJSON, streamed page by page in constant memory."""
    q = parse_query(SeqRangeQuery)
    lines = _ledger().store.iter_export_lines(q.from_seq or 1, q.to_seq)
    return Response(lines, mimetype="application/x-ndjson",
                    headers={"Content-Disposition": "attachment; filename=ledger-export.ndjson"})


@bp.get("/verify")
@auth.require_scope("audit:read")
def verify():
    """Walk the chain: ok, head, how many checked, the first bad seq."""
    q = parse_query(SeqRangeQuery)
    result = _ledger().verify(q.from_seq, q.to_seq)
    return answer(VerifyResult, result.as_dict())


@bp.get("/state")
@auth.require_scope("audit:read")
def state():
    """Every connection's state as of a time or seq, by replay."""
    as_of = parse_query(StateQuery).as_of
    seq, time = seq_or_time(as_of) if as_of else (None, None)
    projection = _ledger().state_as_of(seq=seq, time=time)
    return answer(StatePublic, {"as_of": as_of, "connections": projection.as_json()})


@bp.get("/heads")
@auth.require_scope("audit:read")
def heads():
    """Signed heads recorded in the chain."""
    from ..heads import HEADS_STREAM
    found = _ledger().read_stream(HEADS_STREAM)
    return answer(HeadsPublic, {"heads": [{**e.data, "event_seq": e.seq} for e in found if e.type == ev.HEAD_SIGNED]})


@bp.get("/public-key")
def public_key():
    """The Ed25519 public key that signs heads (base64 of the raw 32 bytes, and PEM)."""
    from ledger.signing import key_id, public_key_pem, public_key_text
    from ..heads import SigningNotConfigured, private_key
    try:
        key = private_key(current_app)
    except SigningNotConfigured:
        raise ApiError(404, "NOT_CONFIGURED", "Head signing is not configured.") from None
    return answer(PublicKeyPublic, {"algorithm": "Ed25519", "public_key": public_key_text(key),
                                    "pem": public_key_pem(key), "key_id": key_id(key.public_key())})
