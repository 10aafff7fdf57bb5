"""Offboarding: every connection of a person disconnected in one request (the person, or an
admin key of the tenant), its progress, and the signed receipt once it is done."""
from __future__ import annotations

import re

from flask import Blueprint, current_app, g

from ledger.errors import NotFound

from .. import auth
from ..errors import ApiError
from ..heads import SigningNotConfigured, private_key
from ..query_params import OffboardQuery, parse_query
from ..schemas import (OffboardingAccepted, OffboardingPublic, OffboardRequest, answer, idempotency_key, parse_body,
                       valid_user_id)

bp = Blueprint("offboarding", __name__, url_prefix="/api")

_OFFBOARDING_ID = r"off_[0-9a-f]{1,64}"


def _svc():
    return current_app.extensions["offboardings"]


def _immediate() -> bool:
    """?immediate=true or {"immediate": true} (an empty body is no body)."""
    return parse_query(OffboardQuery).immediate or parse_body(OffboardRequest, allow_empty=True).immediate


def _started(started):
    return answer(OffboardingAccepted, {
        "offboarding_id": started.offboarding_id, "user_id": started.user_id,
        "status": "completed" if started.completed else "in_progress",
        "connections": list(started.connection_ids)}, 202)


@bp.delete("/me/connections")
def offboard_me():
    """Disconnect every connection of the signed-in person -> 202 with the offboarding id."""
    principal = auth.current()
    if principal.kind != "user":
        raise ApiError(403, "FORBIDDEN", "Only a signed-in person can offboard themselves; "
                                         "an admin key uses DELETE /api/users/<user_id>/connections.")
    key = idempotency_key()
    started = _svc().request(principal.caller(), None, _immediate(), trace_id=g.trace_id, idempotency_key=key)
    return _started(started)


@bp.delete("/users/<path:user_id>/connections")
@auth.require_scope("connections:admin")
def offboard_user(user_id):
    """Disconnect every connection of a person of the key's tenant -> 202 with the offboarding id."""
    key = idempotency_key()
    if not valid_user_id(user_id):
        raise NotFound("No such person.")
    started = _svc().request(auth.current().caller(), user_id, _immediate(), trace_id=g.trace_id,
                             idempotency_key=key)
    return _started(started)


@bp.get("/offboardings/<offboarding_id>")
@auth.require_person_or_admin
def offboarding(offboarding_id):
    """Each connection's progress; the signed receipt once every outcome is final."""
    if not re.fullmatch(_OFFBOARDING_ID, offboarding_id):
        raise NotFound("No such offboarding.")
    try:
        key = private_key(current_app)
    except SigningNotConfigured:
        key = None  # progress still shows; a receipt needs the key
    view = _svc().progress(auth.current().caller(), offboarding_id, key, trace_id=g.trace_id)
    return answer(OffboardingPublic, {
        "offboarding_id": view.offboarding_id, "user_id": view.user_id,
        "status": "completed" if view.completed else "in_progress", "requested_at": view.requested_at,
        "immediate": view.immediate, "receipt": view.receipt, "connections": view.connections})
