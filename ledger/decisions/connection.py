"""A person's (or an admin key's) commands: disconnect (and its dry run), restore, bind, unbind."""
from __future__ import annotations

from dataclasses import dataclass

from .. import envelope as ev
from .. import errors
from ..clock import plus_seconds
from ..commands import BindAgent, Caller, RequestDisconnect, UnbindAgent
from ..envelope import NewEvent
from ..projections import DISCONNECTED, DISCONNECTING, ConnectionState, upstream_confirmed
from ..results import Disconnected, WouldDisconnect


@dataclass(frozen=True)
class Action:
    """A Composio call the relay owes, not before `not_before`."""
    kind: str          # disable | enable | revoke | delete
    not_before: str


@dataclass(frozen=True)
class Decision:
    events: tuple = ()
    actions: tuple = ()
    answer: Disconnected | WouldDisconnect | None = None  # None: the connection as it now stands


def may_act(state: ConnectionState | None, caller: Caller) -> bool:
    """The owner, or an admin key of the same tenant. Everyone else sees nothing."""
    if state is None:
        return False
    if caller.admin:
        return state.tenant == caller.tenant
    return caller.kind == "user" and state.user_id == caller.id


def disconnect_answer(state: ConnectionState, warnings=()) -> Disconnected:
    warnings = list(warnings)
    if not upstream_confirmed(state):
        warnings.append("Composio has not confirmed the disconnect: agents may still have access ("
                        + state.status_reason.partition(": ")[2] + ")")
    return Disconnected(state.connection_id, state.status, state.purge_at, tuple(warnings),
                        upstream_confirmed(state))


def decide_disconnect(state: ConnectionState, bound: tuple, cmd: RequestDisconnect, now: str,
                      grace_seconds: int, can_revoke: bool | None = None) -> Decision:
    """Disconnect: DISCONNECTING now, disabled at once, purged at purge_at (or now)."""
    agents = [b.agent_id for b in bound]
    if cmd.dry_run:
        return Decision(answer=preview_disconnect(state, agents, cmd, now, grace_seconds, can_revoke))
    if state.status in (DISCONNECTING, DISCONNECTED):
        return Decision(answer=disconnect_answer(state))  # a repeat changes nothing
    if agents and not cmd.force:
        raise errors.AgentsBound("Agents still use this connection; pass force to disconnect anyway.",
                                 agents=agents)
    purge_at = now if cmd.immediate else plus_seconds(now, grace_seconds)
    warnings = tuple(f"agent {a} was unbound" for a in agents)
    # Even with `immediate` the answer is DISCONNECTING: the purge is the relay's to finish.
    answer = Disconnected(state.connection_id, DISCONNECTING, purge_at, warnings)
    events = [NewEvent(ev.AGENT_UNBOUND, {"agent_id": a, "connection_id": state.connection_id,
                                          "reason": "connection disconnected"}) for a in agents]
    events.append(NewEvent(ev.DISCONNECT_REQUESTED, {
        "connection_id": state.connection_id, "purge_at": purge_at, "previous_status": state.status,
        "immediate": cmd.immediate, "forced": bool(agents), "agents": agents}))
    actions = [Action("revoke", purge_at)]
    if not cmd.immediate:
        actions.insert(0, Action("disable", now))
    return Decision(tuple(events), tuple(actions), answer)


def preview_disconnect(state: ConnectionState, agents: list, cmd: RequestDisconnect, now: str,
                       grace_seconds: int, can_revoke: bool | None) -> WouldDisconnect:
    """What a disconnect would do, in the conditional: a dry run changes nothing, so its answer
    keeps the current status and never says anything was done."""
    done = state.status in (DISCONNECTING, DISCONNECTED)
    requires_force = bool(agents) and not cmd.force and not done

    def preview(would_succeed, would_status, would_error, purge_at, warnings) -> WouldDisconnect:
        return WouldDisconnect(state.connection_id, state.status, state.status, tuple(agents), can_revoke,
                                 requires_force, would_succeed, would_status, would_error, purge_at, tuple(warnings))
    if done:
        return preview(True, state.status, None, state.purge_at,
                       [f"the connection is already {state.status}: a disconnect would change nothing"])
    if requires_force:
        return preview(False, None, errors.AgentsBound.code, None,
                       [f"a disconnect without force would be refused (409 {errors.AgentsBound.code}): "
                        f"agents {', '.join(agents)} still use this connection; with force they would be unbound"])
    purge_at = now if cmd.immediate else plus_seconds(now, grace_seconds)
    return preview(True, DISCONNECTING, None, purge_at, [f"agent {a} would be unbound" for a in agents])


def decide_restore(state: ConnectionState, now: str, disable_unsent: bool) -> Decision:
    """Undo inside the window: back to the previous status, re-enabled at Composio."""
    if state.status != DISCONNECTING:
        if state.status == DISCONNECTED:
            raise errors.GracePeriodExpired("The connection is already disconnected for good.")
        raise errors.InvalidState("Only a connection being disconnected can be restored.",
                                  status=state.status)
    if state.purge_at is not None and now >= state.purge_at:
        raise errors.GracePeriodExpired("The undo window closed at " + state.purge_at + ".",
                                        purge_at=state.purge_at)
    events = (NewEvent(ev.DISCONNECT_CANCELLED, {"connection_id": state.connection_id,
                                                 "restored_status": state.previous_status}),)
    # If the disable never reached Composio, there is nothing to re-enable.
    actions = () if disable_unsent else (Action("enable", now),)
    return Decision(events, actions)


def decide_bind(state: ConnectionState, bound: tuple, cmd: BindAgent) -> Decision:
    if state.status in (DISCONNECTING, DISCONNECTED):
        raise errors.InvalidState("A connection being disconnected cannot be bound to agents.",
                                  status=state.status)
    if any(b.agent_id == cmd.agent_id for b in bound):
        return Decision()
    return Decision((NewEvent(ev.AGENT_BOUND, {"agent_id": cmd.agent_id, "connection_id": state.connection_id,
                                               "tenant": state.tenant}),))


def decide_unbind(state: ConnectionState, bound: tuple, cmd: UnbindAgent) -> Decision:
    if not any(b.agent_id == cmd.agent_id for b in bound):
        raise errors.NotBound("That agent is not bound to this connection.")
    return Decision((NewEvent(ev.AGENT_UNBOUND, {"agent_id": cmd.agent_id, "connection_id": state.connection_id,
                                                 "reason": "unbound"}),))
