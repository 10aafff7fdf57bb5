"""/api/agents/<agent_id>/connections: which connections an agent uses."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from ledger.commands import BindAgent, UnbindAgent
from ledger.errors import NotFound

from . import auth
from .schemas import valid_id

bp = Blueprint("agents", __name__, url_prefix="/api/agents")


def _ids(agent_id: str, cid: str | None = None):
    import re
    if not re.fullmatch(r"[A-Za-z0-9_\-.:]{1,200}", agent_id) or (cid is not None and not valid_id(cid)):
        raise NotFound("No such connection.")


def _ctx() -> dict:
    return {"trace_id": g.trace_id, "idempotency_key": request.headers.get("Idempotency-Key") or None}


@bp.get("/<agent_id>/connections")
@auth.require_person_or_admin
def list_bound(agent_id):
    """The caller's connections this agent is bound to."""
    _ids(agent_id)
    data = current_app.extensions["connections"].agent_connections(auth.current().caller(), agent_id)
    return jsonify({"agentId": agent_id, "data": data, "count": len(data)})


@bp.put("/<agent_id>/connections/<cid>")
@auth.require_person_or_admin
def bind(agent_id, cid):
    """Bind the agent to a connection (owner or connections:admin only)."""
    _ids(agent_id, cid)
    svc, caller = current_app.extensions["connections"], auth.current().caller()
    svc.visible(caller, cid, "bind", trace_id=g.trace_id)
    return jsonify(svc.bind(caller, BindAgent(agent_id, cid), **_ctx()))


@bp.delete("/<agent_id>/connections/<cid>")
@auth.require_person_or_admin
def unbind(agent_id, cid):
    """Unbind -> 204; 404 if it was not bound."""
    _ids(agent_id, cid)
    current_app.extensions["connections"].unbind(auth.current().caller(), UnbindAgent(agent_id, cid), **_ctx())
    return "", 204
