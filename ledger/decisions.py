"""Pure decisions: (state, command or answer, now) -> events and Composio actions, or a domain error.

Every decide of the ledger lives here: disconnect, restore, bind, unbind; a webhook; a drift
that reconciliation finds; and what Composio's answer to a relayed action means. No I/O and no
clock: `now` is passed in, so these are tested in milliseconds (tests/ledger/test_decisions.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import envelope as ev
from . import errors
from .clock import plus_seconds
from .commands import BindAgent, Caller, RequestDisconnect, UnbindAgent
from .envelope import NewEvent, connection_stream
from .projections import DISCONNECTED, DISCONNECTING, ConnectionState, upstream_confirmed
from .users import our_user_id
from .webhook_parsing import EXPIRED, TRIGGER_DISABLED, TRIGGER_MESSAGE, UNRECOGNISED, WebhookEvent


@dataclass(frozen=True)
class Action:
    """A Composio call the relay owes, not before `not_before`."""
    kind: str          # disable | enable | revoke | delete
    not_before: str


@dataclass(frozen=True)
class Decision:
    events: tuple = ()
    actions: tuple = ()
    answer: dict | None = None


def may_act(state: ConnectionState | None, caller: Caller) -> bool:
    """The owner, or an admin key of the same tenant. Everyone else sees nothing."""
    if state is None:
        return False
    if caller.admin:
        return state.tenant == caller.tenant
    return caller.kind == "user" and state.user_id == caller.id


def disconnect_answer(state: ConnectionState, warnings=()) -> dict:
    warnings = list(warnings)
    if not upstream_confirmed(state):
        warnings.append("Composio has not confirmed the disconnect: agents may still have access ("
                        + state.status_reason.partition(": ")[2] + ")")
    return {"connectionId": state.connection_id, "status": state.status, "upstreamConfirmed": upstream_confirmed(state),
            "purgeAt": state.purge_at, "warnings": warnings}


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
    warnings = [f"agent {a} was unbound" for a in agents]
    # Even with `immediate` the answer is DISCONNECTING: the purge is the relay's to finish.
    answer = {"connectionId": state.connection_id, "status": DISCONNECTING,
              "purgeAt": purge_at, "warnings": warnings}
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
                       grace_seconds: int, can_revoke: bool | None) -> dict:
    """What a disconnect would do, in the conditional: a dry run changes nothing, so its answer
    keeps the current status and never says anything was done."""
    base = {"connectionId": state.connection_id, "status": state.status, "currentStatus": state.status,
            "dryRun": True, "agents": agents, "canRevoke": can_revoke,
            "requiresForce": bool(agents) and not cmd.force and state.status not in (DISCONNECTING, DISCONNECTED)}
    if state.status in (DISCONNECTING, DISCONNECTED):
        return {**base, "wouldSucceed": True, "wouldStatus": state.status, "wouldError": None,
                "purgeAt": state.purge_at,
                "warnings": [f"the connection is already {state.status}: a disconnect would change nothing"]}
    if base["requiresForce"]:
        return {**base, "wouldSucceed": False, "wouldStatus": None, "wouldError": errors.AgentsBound.code,
                "purgeAt": None,
                "warnings": [f"a disconnect without force would be refused (409 {errors.AgentsBound.code}): "
                             f"agents {', '.join(agents)} still use this connection; with force they would be unbound"]}
    purge_at = now if cmd.immediate else plus_seconds(now, grace_seconds)
    return {**base, "wouldSucceed": True, "wouldStatus": DISCONNECTING, "wouldError": None, "purgeAt": purge_at,
            "warnings": [f"agent {a} would be unbound" for a in agents]}


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


# -- the one OBSERVED payload ----------------------------------------------------------------

def observed(connection_id: str, user_id: str, tenant: str, toolkit: str | None, status: str | None,
             occurred_at: str | None = None) -> NewEvent:
    """A connection the ledger meets for the first time (a lookup, a webhook, reconciliation)."""
    data = {"connection_id": connection_id, "user_id": user_id, "tenant": tenant,
            "toolkit": toolkit or "unknown", "status": status or "ACTIVE"}
    return NewEvent(ev.OBSERVED, data, occurred_at=occurred_at)


def _compact(d: dict) -> dict:
    """Leave out unknown fields, so the hashed payload holds only facts."""
    return {k: v for k, v in d.items() if v is not None}


# -- a Composio webhook ------------------------------------------------------------------------
WEBHOOK_STREAM = "webhooks"
ACCEPTED, DUPLICATE = "accepted", "duplicate"


@dataclass(frozen=True)
class WebhookDecision:
    outcome: str           # accepted | unrecognised
    stream: str
    events: tuple
    tenant: str | None


def decide_webhook(state: ConnectionState | None, hook: WebhookEvent, user_id_prefix: str = "") -> WebhookDecision:
    """What one verified delivery records. Late or out-of-order events are recorded as they come:
    the projection decides whether they move a connection, so the ledger keeps the whole story."""
    if hook.kind == UNRECOGNISED:
        return _unrecognised(hook)
    stream = connection_stream(hook.connection_id)
    if hook.kind == EXPIRED:
        expired = NewEvent(ev.EXPIRED, _compact({"connection_id": hook.connection_id, "reason": hook.reason}),
                           occurred_at=hook.occurred_at)
        if state is not None:
            return WebhookDecision(ACCEPTED, stream, (expired,), state.tenant)
        owner = our_user_id(hook.user_id, user_id_prefix)
        if owner is None:
            # Not one of our users (another app sharing the Composio project): keep the fact,
            # but do not adopt someone else's connection into our projection.
            return _unrecognised(hook, "foreign_user")
        # occurred_at = the webhook's time, not "now": the projection ignores a status report
        # older than the connection's last change, so the expiry must not predate its birth.
        return WebhookDecision(ACCEPTED, stream, (observed(hook.connection_id, owner, owner, hook.toolkit, "ACTIVE",
                                                           hook.occurred_at), expired), owner)
    tenant = state.tenant if state else our_user_id(hook.user_id, user_id_prefix)
    if hook.kind == TRIGGER_MESSAGE:
        data = {"connection_id": hook.connection_id, "trigger_slug": hook.trigger_slug, "at": hook.occurred_at}
        return WebhookDecision(ACCEPTED, stream, (NewEvent(ev.USED, data, occurred_at=hook.occurred_at),), tenant)
    if hook.kind == TRIGGER_DISABLED:
        data = _compact({"connection_id": hook.connection_id, "trigger_id": hook.trigger_id,
                         "trigger_slug": hook.trigger_slug, "reason": hook.reason})
        return WebhookDecision(ACCEPTED, stream, (NewEvent(ev.TRIGGER_DISABLED, data, occurred_at=hook.occurred_at),),
                               tenant)
    return _unrecognised(hook)


def _unrecognised(hook: WebhookEvent, why: str | None = None) -> WebhookDecision:
    data = _compact({"type": hook.type, "webhook_id": hook.webhook_id, "connection_id": hook.connection_id,
                     "reason": why})
    return WebhookDecision(UNRECOGNISED, WEBHOOK_STREAM,
                           (NewEvent(ev.WEBHOOK_UNRECOGNISED, data, occurred_at=hook.occurred_at),), None)


# -- drift found by reconciliation ------------------------------------------------------------
OURS = frozenset({DISCONNECTING, DISCONNECTED})   # ours to drive: never judged against Composio


def decide_drift(state: ConnectionState | None, account) -> tuple[str, NewEvent | None] | None:
    """What one Composio account (a gateway Account) tells us, given the projection: None when
    nothing drifted; ("foreign", None) for an account that is not one of our users'."""
    if state is None:
        if account.user_id is None:
            return "foreign", None
        return "observed", observed(account.id, account.user_id, account.user_id,
                                    (account.toolkit or "unknown").lower(), account.status)
    if state.status in OURS or not account.status or account.status == state.status:
        return None
    data = {"connection_id": account.id, "status": account.status}
    if account.status_reason:
        data["reason"] = str(account.status_reason)[:200]
    return "status_drift", NewEvent(ev.STATUS_OBSERVED, data)


def decide_missing(state: ConnectionState | None) -> NewEvent | None:
    """A connection Composio confirms it no longer has: DISCONNECTED, unless it is ours to drive."""
    if state is None or state.status in OURS:
        return None
    return NewEvent(ev.UPSTREAM_MISSING, {"connection_id": state.connection_id})


# -- Composio's answer to a relayed action -----------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """What Composio said to one action: done | not_found | unsupported (a revoke the toolkit
    cannot do) | failed (error: the code); `revoked`: the kinds of tokens a revoke revoked."""
    kind: str
    revoked: tuple = ()
    error: str | None = None


@dataclass(frozen=True)
class Outcome:
    ok: bool
    events: tuple = ()
    follow_up: str | None = None      # the next action this one makes due (revoke -> delete)
    error: str | None = None


_DONE_EVENT = {"disable": ev.UPSTREAM_DISABLED, "enable": ev.UPSTREAM_ENABLED, "delete": ev.UPSTREAM_DELETED}


def decide_relay_outcome(action: str, connection_id: str, action_id: str, repeated: bool, answer: Answer) -> Outcome:
    """The events (and follow-up action) one answer from Composio means. A 404 is recorded as
    not found at Composio, never as a revoke or delete that did not happen."""
    data = {"connection_id": connection_id, "action_id": action_id}
    if answer.kind == "failed":
        return Outcome(False, error=answer.error or "error")
    if answer.kind == "not_found":
        return _not_found(action, connection_id, repeated, data)
    if action == "revoke":
        payload = ({**data, "supported": True, "revoked": sorted(answer.revoked)} if answer.kind == "done" else
                   {**data, "supported": False, "revoked": [], "reason": "the toolkit does not support revoke"})
        return Outcome(True, (NewEvent(ev.UPSTREAM_REVOKED, payload),), follow_up="delete")
    if action not in _DONE_EVENT:
        return Outcome(False, error=f"unknown action {action}")
    events = (NewEvent(_DONE_EVENT[action], data),)
    if action == "delete":
        events += (NewEvent(ev.DISCONNECT_COMPLETED, {"connection_id": connection_id, "reason": "purged at Composio"}),)
    return Outcome(True, events)


def _not_found(action: str, connection_id: str, repeated: bool, data: dict) -> Outcome:
    """Retrying a 404 would not change it; a purge ends here (there is nothing left to purge at
    Composio, and nothing was revoked: the events say so, and so does the connection)."""
    found = NewEvent(ev.UPSTREAM_NOT_FOUND, {**data, "action": action, "outcome": ev.NOT_FOUND_UPSTREAM,
                                             "repeated": repeated})
    if action not in ("revoke", "delete"):
        return Outcome(True, (found,))
    if repeated:  # Composio does not deduplicate: our own lost attempt may have done it
        reason = (f"not found at Composio when the {action} was repeated: "
                  "an earlier attempt whose answer was lost may have done it")
    else:
        reason = "not found at Composio: nothing was revoked or deleted there"
    return Outcome(True, (found, NewEvent(ev.DISCONNECT_COMPLETED, {
        "connection_id": connection_id, "outcome": ev.NOT_FOUND_UPSTREAM, "reason": reason})))


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter (base_delay doubling up to max_delay) for retry_for
    seconds from when the action fell due, then dead-lettered; max_attempts (> 0) sooner."""
    max_attempts: int = 0
    base_delay: float = 2.0
    max_delay: float = 300.0
    retry_for: float = 6 * 3600.0


def decide_relay_failure(action: str, connection_id: str, action_id: str, attempts_before: int, created_at: str,
                         state: ConnectionState | None, error: str, now: str, policy: RetryPolicy,
                         jitter: float) -> tuple[NewEvent, dict]:
    """A failed attempt: the event that says so, and the outbox row's new values (retry at a
    later time, or dead). `jitter` in [0, 1) is drawn by the caller: no randomness here."""
    attempts = attempts_before + 1
    due = created_at
    if action == "revoke" and state is not None:  # enqueued at the request, due at the end of the grace
        due = max(due, state.purge_at or due)
    give_up_at = plus_seconds(due, policy.retry_for)
    if now >= give_up_at or (policy.max_attempts and attempts >= policy.max_attempts):
        return NewEvent(ev.PROVIDER_ACTION_DEAD_LETTERED, {
            "connection_id": connection_id, "action_id": action_id, "action": action,
            "attempts": attempts, "error": error}), \
            {"status": "dead", "attempts": attempts, "last_error": error, "claimed_until": None}
    delay = min(policy.max_delay, policy.base_delay * 2 ** min(attempts - 1, 60)) * (0.5 + jitter / 2)
    retry_at = min(plus_seconds(now, delay), give_up_at)  # one last try at the deadline
    return NewEvent(ev.PROVIDER_ACTION_FAILED, {
        "connection_id": connection_id, "action_id": action_id, "action": action,
        "attempt": attempts, "error": error, "retry_at": retry_at}), \
        {"attempts": attempts, "last_error": error, "not_before": retry_at, "claimed_by": None, "claimed_until": None}
