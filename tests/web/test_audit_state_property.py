"""Any moment of any history reads the same every way — the live projection right after the event,
GET /audit/state?as_of=, `python -m ledger.audit state` on an export file alone — and each agrees
with a small model of the lifecycle written here from what the events mean, not from the code."""
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import envelope as ev
from ledger import offline_audit as audit
from tests.support import history

# What an upstream report says the status is now.
REPORTED = {ev.ACTIVATED: "ACTIVE", ev.FAILED: "FAILED", ev.EXPIRED: "EXPIRED"}  # STATUS_OBSERVED: its data
TAKES_ACCESS_AWAY = {"FAILED", "EXPIRED", "REVOKED", "INACTIVE"}
REMEMBERED_WHILE_DISCONNECTING = {"FAILED", "EXPIRED", "REVOKED"}  # what a restore goes back to
SKEW = timedelta(seconds=3)  # DESIGN: reports less than 3 s apart from our change cannot be ordered


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Connection:
    status: str
    changed: datetime                # when its status last changed
    reason: str | None = None
    back_to: str | None = None      # the status a cancelled disconnect returns to
    agents: set = field(default_factory=set)


class Lifecycle:
    """The oracle: each connection's status and agents after each event.

    Born INITIATED or ACTIVE; agents come and go, and a completed disconnect takes them all. A
    disconnect request makes it DISCONNECTING and remembers what to go back to; a cancel goes back;
    completion is the end, after which no status changes. A reconnect makes it INITIATED again
    (not while DISCONNECTING). An upstream report moves the status unless
    it is stamped before our last change — except one that takes access away within the clock skew.
    While DISCONNECTING, a report that takes access away only changes what a cancel goes back to."""

    def __init__(self):
        self.connections: dict[str, Connection] = {}

    def see(self, env) -> None:
        c, d, at = self.connections.get(env.connection_id), env.data, _at(env.occurred_at)
        if c is None:
            if env.type in (ev.INITIATED, ev.OBSERVED):
                self.connections[env.connection_id] = Connection(d["status"], at)
            return
        if env.type == ev.AGENT_BOUND:
            c.agents.add(d["agent_id"])
        elif env.type == ev.AGENT_UNBOUND:
            c.agents.discard(d["agent_id"])
        elif env.type == ev.DISCONNECT_COMPLETED:
            c.agents.clear()
        if c.status == "DISCONNECTED":
            return
        if env.type == ev.DISCONNECT_REQUESTED:
            c.status, c.back_to, c.changed, c.reason = "DISCONNECTING", d["previous_status"], at, "unconfirmed"
        elif env.type == ev.DISCONNECT_CANCELLED and c.status == "DISCONNECTING":
            c.status, c.back_to, c.changed, c.reason = c.back_to, None, at, None
        elif env.type == ev.DISCONNECT_COMPLETED:
            c.status = "DISCONNECTED"
        elif env.type == ev.RECONNECT_REQUESTED and c.status != "DISCONNECTING":
            # a person re-authorises in place: INITIATED again whatever Composio said before
            c.status, c.reason, c.changed = d.get("status") or "INITIATED", None, max(at, c.changed)
        elif env.type in REPORTED or env.type == ev.STATUS_OBSERVED:
            self.report(c, REPORTED.get(env.type) or d["status"], d.get("reason"), at)

    @staticmethod
    def report(c: Connection, status: str, reason, at: datetime) -> None:
        if at < c.changed:
            if not (status in TAKES_ACCESS_AWAY and c.status not in TAKES_ACCESS_AWAY and at + SKEW > c.changed):
                return  # stale: recorded, but it does not move us back
            at = c.changed
        if c.status == "DISCONNECTING":
            if status in REMEMBERED_WHILE_DISCONNECTING:
                c.back_to = status
            return
        if (status, reason) != (c.status, c.reason):
            c.status, c.reason, c.changed = status, reason, at

    def summary(self) -> dict:
        return {cid: (c.status, sorted(c.agents)) for cid, c in sorted(self.connections.items())}


def _summary(state: dict) -> dict:
    """{connection: (status, agents)} of a state as /audit/state and the auditor's tool answer it."""
    return {cid: (row["status"], sorted(row["agents"])) for cid, row in sorted(state.items())}


def _live_summary(ledger) -> dict:
    connection_rows, binding_rows = ledger.store.projection_rows()
    out = {c["connection_id"]: (c["status"], []) for c in connection_rows}
    for b in binding_rows:
        out[b["connection_id"]][1].append(b["agent_id"])
    return {cid: (status, sorted(agents)) for cid, (status, agents) in sorted(out.items())}


def _offline_state(path, as_of) -> dict:
    import io
    from contextlib import redirect_stdout
    out = io.StringIO()
    with redirect_stdout(out):
        assert audit.main(["state", str(path), "--as-of", str(as_of)]) == 0
    return json.loads(out.getvalue())


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2 ** 31), n_events=st.integers(min_value=20, max_value=120),
       n_connections=st.integers(min_value=1, max_value=15), sample=st.randoms(use_true_random=False))
def test_state_as_of_any_seq_is_the_lifecycle_live_over_http_and_from_the_export(
        app, client, auth, tmp_path, seed, n_events, n_connections, sample):
    ledger = app.extensions["ledger"]
    key = auth.service("ops", "audit:read")
    live, sampled = {}, []

    def capture(seq):  # the live projection after every event; the replays at a sample of them
        live[seq] = _live_summary(ledger)
        if sample.random() < 0.1:
            sampled.append(seq)
    history.build(ledger, n_events=n_events, n_connections=n_connections, seed=seed, on_event=capture)
    sampled.append(ledger.store.head()[0])

    model, expected = Lifecycle(), {}
    for env in ledger.store.iter_envelopes():
        model.see(env)
        expected[env.seq] = model.summary()
        assert live.get(env.seq, expected[env.seq]) == expected[env.seq], \
            f"the live projection after seq {env.seq} is not the lifecycle's"
    export = tmp_path / f"export-{seed}.ndjson"
    export.write_bytes(client.get("/audit/export", headers=key).data)
    for seq in sampled:
        over_http = client.get(f"/audit/state?as_of={seq}", headers=key).get_json()["connections"]
        from_file = _offline_state(export, seq)
        assert _summary(over_http) == expected[seq], f"/audit/state?as_of={seq} is not the lifecycle's"
        assert from_file == over_http, f"state --as-of {seq} from the export differs from /audit/state"
