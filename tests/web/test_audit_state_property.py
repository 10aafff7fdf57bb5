"""Any moment of any history reads the same three ways: the live projection captured right after
the event, GET /audit/state?as_of=, and `python -m ledger.audit state` on an export file alone."""
import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import offline_audit as audit
from tests.support import history


def _live_as_json(ledger) -> dict:
    """The live projection rows, in the shape the auditor reads (connections with their agents)."""
    connection_rows, binding_rows = ledger.store.projection_rows()
    agents: dict = {}
    for b in binding_rows:
        agents.setdefault(b["connection_id"], []).append(b["agent_id"])
    return {c["connection_id"]: {**c, "agents": sorted(agents.get(c["connection_id"], []))} for c in connection_rows}


def _offline_state(path, as_of) -> dict:
    import io
    from contextlib import redirect_stdout
    out = io.StringIO()
    with redirect_stdout(out):
        assert audit.main(["state", str(path), "--as-of", str(as_of)]) == 0
    return json.loads(out.getvalue())


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2 ** 31), n_events=st.integers(min_value=20, max_value=120),
       n_connections=st.integers(min_value=1, max_value=15))
def test_state_as_of_any_seq_is_the_same_live_over_http_and_from_the_export(
        app, client, auth, tmp_path, seed, n_events, n_connections):
    ledger = app.extensions["ledger"]
    key = auth.service("ops", "audit:read")
    rng, captured = random.Random(seed), {}

    def capture(seq):
        if rng.random() < 0.15:
            captured[seq] = _live_as_json(ledger)
    history.build(ledger, n_events=n_events, n_connections=n_connections, seed=seed, on_event=capture)
    captured[ledger.store.head()[0]] = _live_as_json(ledger)
    export = tmp_path / f"export-{seed}.ndjson"
    export.write_bytes(client.get("/audit/export", headers=key).data)
    for seq, live in captured.items():
        over_http = client.get(f"/audit/state?as_of={seq}", headers=key).get_json()["connections"]
        from_file = _offline_state(export, seq)
        assert over_http == live, f"/audit/state?as_of={seq} differs from the live projection then"
        assert from_file == live, f"state --as-of {seq} from the export differs from the live projection then"
