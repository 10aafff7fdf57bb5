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


def test_a_sandbox_relay_acts_on_the_sandbox_composio_its_settings_name(make_app, composio, signing_key):
    # Development mode without a COMPOSIO_API_KEY: the relay talks to the one sandbox Composio
    # named by COMPOSIO_BASE_URL (the one the service used), never to a Composio of its own.
    from tests.support.clerk import mint
    app = make_app(COMPOSIO_API_KEY=None, RELAY_INLINE=False, LEDGER_ENV="development")
    client, h = app.test_client(), {"Authorization": f"Bearer {mint(signing_key, sub='alice')}"}
    cid = client.post("/api/connections", json={"toolkit": "slack", "credentials": {"api_key": "k"}},
                      headers=h).json["connectionId"]
    assert client.delete(f"/api/connections/{cid}", headers=h).status_code == 204
    assert composio.account(cid)["is_disabled"] is False          # nothing sent yet: the relay owes it
    result = app.test_cli_runner().invoke(args=["ledger", "relay", "--once"])
    assert result.exit_code == 0, result.output
    assert composio.account(cid)["is_disabled"] is True


def test_outbox_and_api_key_list_say_so_when_empty(db_url):
    runner = _app(db_url).test_cli_runner()
    outbox = runner.invoke(args=["ledger", "outbox"])
    assert outbox.exit_code == 0 and outbox.output.strip() == "no pending or dead actions"
    keys = runner.invoke(args=["ledger", "api-key", "list"])
    assert keys.exit_code == 0 and keys.output.strip() == "no API keys"
    runner.invoke(args=["ledger", "api-key", "create", "--tenant", "acme", "--scope", "audit:read", "--name", "aud"])
    listed = runner.invoke(args=["ledger", "api-key", "list"]).output
    assert "no API keys" not in listed and "aud" in listed


def test_export_prints_the_lines_of_the_http_export_to_stdout_or_a_file(db_url, tmp_path):
    from ledger import offline_audit as audit
    app = _app(db_url)
    _seed(app)
    runner = app.test_cli_runner()
    whole = runner.invoke(args=["ledger", "export"])
    assert whole.exit_code == 0
    assert whole.stdout == "".join(app.extensions["ledger"].store.iter_export_lines())
    assert [json.loads(line)["seq"] for line in whole.stdout.splitlines()] == [1, 2, 3]
    out = tmp_path / "part.ndjson"
    assert runner.invoke(args=["ledger", "export", "--from-seq", "2", "--to-seq", "3", "--output", str(out)]).exit_code == 0
    assert [json.loads(line)["seq"] for line in out.read_text().splitlines()] == [2, 3]
    assert audit.verify_export(str(out), start=2, end=3)["ok"] is True


def test_sign_head_if_moved_signs_only_when_something_was_recorded(db_url):
    from ledger.signing import generate_private_key_pem
    app = create_app({"DATABASE_URL": db_url, "AUTO_MIGRATE": False, "LEDGER_SIGNING_KEY": generate_private_key_pem()})
    _seed(app)
    runner = app.test_cli_runner()

    def signed() -> list:
        return [e for e in app.extensions["ledger"].store.iter_envelopes() if e.type == ev.HEAD_SIGNED]
    first = runner.invoke(args=["ledger", "sign-head", "--if-moved"])
    assert first.exit_code == 0 and json.loads(first.output)["seq"] == 3
    for _ in range(3):   # nothing new: its own signed head is not a move
        again = runner.invoke(args=["ledger", "sign-head", "--if-moved"])
        assert again.exit_code == 0 and again.output.startswith("not signed")
    assert len(signed()) == 1
    app.extensions["ledger"].append("connection:ca_2", [NewEvent(ev.ACTIVATED, {})])
    assert json.loads(runner.invoke(args=["ledger", "sign-head", "--if-moved"]).output)["seq"] == 5
    assert len(signed()) == 2


def test_a_relay_that_signs_every_interval_signs_a_quiet_ledger_once(db_url):
    # A real `ledger relay --sign-every` process; many intervals pass with nothing recorded.
    import subprocess
    import time
    from ledger.signing import generate_private_key_pem
    from tests.support import processes as ps
    app = _app(db_url)
    _seed(app)
    env = ps.clean_env(DATABASE_URL=db_url, LEDGER_ENV="development", COMPOSIO_BASE_URL="http://127.0.0.1:9",
                       AUTO_MIGRATE="false", LEDGER_SIGNING_KEY=generate_private_key_pem())
    relay = subprocess.Popen([str(ps.BIN / "flask"), "--app", "wsgi", "ledger", "relay", "--sign-every", "0.05",
                              "--interval", "0.05"], cwd=ps.ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        store = app.extensions["ledger"].store
        while store.head()[0] < 4:           # the first head is signed at once
            assert relay.poll() is None, relay.stderr.read()
            time.sleep(0.05)
        time.sleep(1.5)                      # some thirty intervals with nothing recorded
        assert [e.type for e in store.iter_envelopes()].count(ev.HEAD_SIGNED) == 1
    finally:
        ps.stop(relay)


def test_dev_tokens_are_refused_in_production_as_a_configuration_error(tmp_path):
    from tests.support.clerk import new_rsa_key
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/a.db", "LEDGER_ENV": "production",
                      "COMPOSIO_API_KEY": "k", "COMPOSIO_WEBHOOK_SECRET": "s", "CLERK_ISSUER": "https://clerk.example",
                      "CLERK_JWT_KEY": new_rsa_key().public_pem})
    result = app.test_cli_runner().invoke(args=["ledger", "dev-token", "--user", "alice"])
    assert result.exit_code == 2 and "production" in result.output
