"""A randomised but plausible connection history, for replay-equals-live property tests."""
from __future__ import annotations

import random
from datetime import timedelta

from ledger import envelope as ev
from ledger.clock import iso, now
from ledger.envelope import Actor, NewEvent

_WEBHOOKISH = [ev.EXPIRED, ev.FAILED, ev.ACTIVATED, ev.STATUS_OBSERVED, ev.USED, ev.RECONNECT_REQUESTED, ev.EXPIRING]


def random_events(rng: random.Random, cid: str, state: dict) -> list[NewEvent]:
    """Next events for one connection, given what the generator already did to it."""
    if cid not in state:
        state[cid] = {"agents": set()}
        user = f"user_{rng.randrange(40)}"
        kind = ev.INITIATED if rng.random() < 0.8 else ev.OBSERVED
        return [NewEvent(kind, {"connection_id": cid, "user_id": user, "tenant": user,
                                "toolkit": rng.choice(["github", "gmail", "slack"]),
                                "status": "INITIATED" if kind == ev.INITIATED else "ACTIVE"})]
    roll = rng.random()
    agents = state[cid]["agents"]
    # occurred_at sometimes in the past, so late webhooks are exercised too (1 s: inside the clock skew)
    occurred = iso(now() - timedelta(seconds=rng.choice([0, 0, 0, 1, 5, 3600])))
    if roll < 0.2:
        agent = f"agent_{rng.randrange(8)}"
        agents.add(agent)
        return [NewEvent(ev.AGENT_BOUND, {"agent_id": agent, "connection_id": cid, "tenant": "t"})]
    if roll < 0.3 and agents:
        agent = agents.pop()
        return [NewEvent(ev.AGENT_UNBOUND, {"agent_id": agent, "connection_id": cid})]
    if roll < 0.4:
        return [NewEvent(ev.DISCONNECT_REQUESTED, {"purge_at": iso(now() + timedelta(days=7)),
                                                   "previous_status": "ACTIVE"})]
    if roll < 0.5:
        return [NewEvent(ev.DISCONNECT_CANCELLED, {})]
    if roll < 0.55:
        agents.clear()
        return [NewEvent(ev.DISCONNECT_COMPLETED, {})]
    kind = rng.choice(_WEBHOOKISH)
    data = {"status": rng.choice(["ACTIVE", "EXPIRED", "FAILED", "INACTIVE"]), "reason": "r"}
    if kind == ev.USED:
        data = {"trigger_slug": "GITHUB_COMMIT_EVENT", "at": occurred}
    elif kind in (ev.ACTIVATED, ev.STATUS_OBSERVED) and rng.random() < 0.5:
        # a grant's safe facts, sometimes a new expiry (a reconnect brings one)
        data.update(scopes=sorted(rng.sample(["repo", "read:user", "mail.read", "chat:write"], 2)),
                    expires_at=iso(now() + timedelta(hours=rng.choice([1, 24, 720]))))
    elif kind == ev.RECONNECT_REQUESTED:
        data = {"previous_status": "EXPIRED", "status": "INITIATED"}
    elif kind == ev.EXPIRING:
        data = {"expires_at": iso(now() + timedelta(hours=1)), "seconds_left": 3600, "agents": sorted(agents)}
    return [NewEvent(kind, data, occurred_at=occurred)]


def build(ledger, n_events: int, n_connections: int, seed: int, on_event=None) -> None:
    """Append about n_events over n_connections; call on_event(seq) after each append."""
    rng = random.Random(seed)
    state: dict = {}
    actor = Actor("user", "gen")
    count = 0
    while count < n_events:
        cid = f"ca_{rng.randrange(n_connections):04d}"
        new = random_events(rng, cid, state)
        envs = ledger.append(ev.connection_stream(cid), new, actor=actor)
        count += len(envs)
        if on_event:
            on_event(envs[-1].seq)
