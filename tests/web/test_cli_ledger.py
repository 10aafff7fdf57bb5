"""`flask ledger verify | rebuild | replay` as an operator runs them."""
import json

from sqlalchemy import text

from ledger import envelope as ev
from ledger.envelope import NewEvent
from web import create_app


def _app(db_url):
    return create_app({"DATABASE_URL": db_url, "AUTO_MIGRATE": False})


def _seed(app):
    ledger = app.extensions["ledger"]
    ledger.append("connection:ca_1", [NewEvent(ev.INITIATED, {"user_id": "u1", "toolkit": "github"})])
    ledger.append("connection:ca_1", [NewEvent(ev.ACTIVATED, {})])
    ledger.append("connection:ca_2", [NewEvent(ev.INITIATED, {"user_id": "u2", "toolkit": "gmail"})])


def test_verify_exits_zero_on_a_good_chain_and_one_naming_the_bad_seq(db_url):
    app = _app(db_url)
    _seed(app)
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["ledger", "verify"])
    assert ok.exit_code == 0 and json.loads(ok.stdout.splitlines()[0])["head"]["seq"] == 3
    with app.extensions["engine"].begin() as conn:
        conn.execute(text("UPDATE events SET data = '{\"user_id\":\"u9\",\"toolkit\":\"github\"}' WHERE seq = 1"))
    bad = runner.invoke(args=["ledger", "verify"])
    assert bad.exit_code == 1 and json.loads(bad.stdout.splitlines()[0])["first_bad_seq"] == 1


def test_rebuild_reports_whether_the_live_projection_was_equal(db_url):
    app = _app(db_url)
    _seed(app)
    out = app.test_cli_runner().invoke(args=["ledger", "rebuild"])
    assert out.exit_code == 0
    assert json.loads(out.stdout.splitlines()[0]) == {"connections": 2, "bindings": 0, "live_equal_rebuilt": True}


def test_replay_until_a_seq_prints_the_state_then(db_url):
    app = _app(db_url)
    _seed(app)
    runner = app.test_cli_runner()
    at_1 = json.loads(runner.invoke(args=["ledger", "replay", "--until", "1"]).stdout)
    assert at_1["ca_1"]["status"] == "INITIATED" and "ca_2" not in at_1
    now = json.loads(runner.invoke(args=["ledger", "replay", "--until", "2999-01-01T00:00:00Z"]).stdout)
    assert now["ca_1"]["status"] == "ACTIVE" and now["ca_2"]["user_id"] == "u2"
    bad = runner.invoke(args=["ledger", "replay", "--until", "yesterday"])
    assert bad.exit_code != 0


def test_relay_and_reconcile_refuse_to_run_without_the_real_composio(db_url):
    # Without COMPOSIO_API_KEY only the development server has a Composio (inside its process);
    # a command beside it must not act on an empty one and record every connection as gone.
    app = _app(db_url)
    _seed(app)
    app.extensions["ledger"].append("connection:ca_1", [NewEvent(ev.DISCONNECT_REQUESTED, {
        "purge_at": "2000-01-01T00:00:00.000000Z", "previous_status": "ACTIVE"})])
    before = app.extensions["ledger"].store.head()
    runner = app.test_cli_runner()
    for args in (["ledger", "reconcile"], ["ledger", "relay", "--once"], ["ledger", "relay"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 2 and "COMPOSIO_API_KEY" in result.output
    assert app.extensions["ledger"].store.head() == before
    assert "dev_composio" not in app.extensions
