"""What Composio's answer to a relayed action means, and what a failed attempt leads to."""
from __future__ import annotations

from dataclasses import dataclass

from .. import envelope as ev
from ..clock import plus_seconds
from ..envelope import NewEvent
from ..projections import ConnectionState

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
