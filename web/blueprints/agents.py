"""/api/agents/<agent_id>/connections: which connections an agent uses."""
from __future__ import annotations

from flask import Blueprint, current_app, g

from ledger.commands import BindAgent, UnbindAgent
from ledger.errors import NotFound

from .. import auth
from ..schemas import AgentConnectionsPublic, ConnectionPublic, answer, idempotency_key, valid_agent_id, valid_id

bp = Blueprint("agents", __name__, url_prefix="/api/agents")


def _ids(agent_id: str, cid: str | None = None):
    if not valid_agent_id(agent_id) or (cid is not None and not valid_id(cid)):
        raise NotFound("No such connection.")


def _ctx() -> dict:
    """Call first in a writing view: a bad Idempotency-Key is refused before anything happens."""
    return {"trace_id": g.trace_id, "idempotency_key": idempotency_key()}


@bp.get("/<agent_id>/connections")
@auth.require_person_or_admin
def list_bound(agent_id):
    """The caller's connections this agent is bound to."""
    _ids(agent_id)
    data = current_app.extensions["connections"].agent_connections(auth.current().caller(), agent_id)
    return answer(AgentConnectionsPublic, {"agent_id": agent_id, "data": data, "count": len(data)})


@bp.put("/<agent_id>/connections/<cid>")
@auth.require_person_or_admin
def bind(agent_id, cid):
    """Bind the agent to a connection (owner or connections:admin only)."""
    ctx = _ctx()
    _ids(agent_id, cid)
    return answer(ConnectionPublic, current_app.extensions["connections"].bind(
        auth.current().caller(), BindAgent(agent_id, cid), **ctx))


@bp.delete("/<agent_id>/connections/<cid>")
@auth.require_person_or_admin
def unbind(agent_id, cid):
    """Unbind -> 204; 404 if it was not bound."""
    ctx = _ctx()
    _ids(agent_id, cid)
    current_app.extensions["connections"].unbind(auth.current().caller(), UnbindAgent(agent_id, cid), **ctx)
    return "", 204
