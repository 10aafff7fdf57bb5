"""The service as an operator starts it: real gunicorn masters and workers, the sandbox Composio
in its own process, the `flask` CLI in a fresh shell."""
import json
import subprocess
import sys

import pytest

from tests.support import processes as ps
from tests.support.clerk import AUTHORIZED_PARTY, ISSUER, mint, new_rsa_key


def _one_line_refusal(proc: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "connection-ledger:" in line]
    assert len(lines) == 1 and all(w in lines[0] for w in words), proc.stderr


def test_gunicorn_without_ledger_env_is_production_and_refuses_in_one_line(tmp_path):
    env = ps.clean_env(DATABASE_URL=f"sqlite:///{tmp_path}/ledger.db")
    proc = subprocess.run([str(ps.BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{ps.free_port()}", "wsgi:app"],
                          cwd=ps.ROOT, env=env, capture_output=True, text=True, timeout=120)
    _one_line_refusal(proc, 2, "production mode", "COMPOSIO_API_KEY", "COMPOSIO_WEBHOOK_SECRET", "CLERK_ISSUER")
    assert "Booting worker" not in proc.stderr        # the master refused before forking any


def test_the_sandbox_without_its_composio_refuses_in_one_line(tmp_path):
    env = ps.clean_env(DATABASE_URL=f"sqlite:///{tmp_path}/ledger.db", LEDGER_ENV="development")
    proc = subprocess.run([str(ps.BIN / "flask"), "--app", "wsgi", "ledger", "verify"],
                          cwd=ps.ROOT, env=env, capture_output=True, text=True, timeout=120)
    _one_line_refusal(proc, 2, "COMPOSIO_BASE_URL")


@pytest.mark.parametrize("auto_migrate", ["true", "false"])
def test_an_unreachable_database_is_one_line_and_exit_3(auto_migrate):
    env = ps.clean_env(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{ps.free_port()}/nowhere",
                       LEDGER_ENV="development", COMPOSIO_BASE_URL="http://127.0.0.1:9", AUTO_MIGRATE=auto_migrate)
    for argv in (["ledger", "verify"], ["ledger", "outbox"], ["ledger", "api-key", "list"]):
        proc = subprocess.run([str(ps.BIN / "flask"), "--app", "wsgi", *argv], cwd=ps.ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        _one_line_refusal(proc, 3, "storage unreachable")


def test_workers_starting_together_create_one_dev_key_and_all_use_it(tmp_path):
    # Real processes, each ready (imports done) before all are released together: each finds no key.
    import time
    go, n = tmp_path / "go", 8
    code = ("import os, sys, time\n"
            "from web.dev_tokens import load_or_create_dev_key\n"
            f"open(os.path.join({str(tmp_path)!r}, 'ready-' + str(os.getpid())), 'w').close()\n"
            f"while not os.path.exists({str(go)!r}): time.sleep(0.001)\n"
            f"print(load_or_create_dev_key({str(tmp_path / 'instance')!r}).public_pem.replace(chr(10), ''))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ps.ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    while len(list(tmp_path.glob("ready-*"))) < n and all(p.poll() is None for p in procs):
        time.sleep(0.01)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    assert len({out for out, _ in results}) == 1
    assert [f.name for f in (tmp_path / "instance").iterdir()] == ["dev-signing-key.pem"]  # no temp file left


@pytest.fixture
def sandbox(db_url):
    """The sandbox Composio in its own process and the service under gunicorn with two workers,
    in development mode (Clerk tokens from a real RSA key, so the repository's instance/ is untouched)."""
    composio_port, port = ps.free_port(), ps.free_port()
    composio = ps.sandbox_composio(composio_port)
    key = new_rsa_key()
    env = ps.clean_env(LEDGER_ENV="development", COMPOSIO_BASE_URL=f"http://127.0.0.1:{composio_port}",
                       DATABASE_URL=db_url, CLERK_JWT_KEY=key.public_pem,
                       CLERK_ISSUER=ISSUER, CLERK_AUTHORIZED_PARTIES=AUTHORIZED_PARTY, RELAY_IN_PROCESS="false")
    server = ps.gunicorn(port, env, workers=2)
    yield {"url": f"http://127.0.0.1:{port}", "composio": f"http://127.0.0.1:{composio_port}", "key": key}
    ps.stop(server)
    ps.stop(composio)


def test_two_workers_share_the_one_sandbox_composio_and_purges_reach_it(sandbox):
    h = {"Authorization": f"Bearer {mint(sandbox['key'], sub='alice')}"}
    made = []
    for i in range(6):   # each request on its own TCP connection: the two workers take turns at random
        status, _, text = ps.http("POST", sandbox["url"] + "/api/connections", h,
                                  {"toolkit": "slack", "credentials": {"api_key": f"k{i}"}})
        assert status == 201, text
        made.append(json.loads(text)["connectionId"])
    for cid in made:
        status, _, text = ps.http("DELETE", f"{sandbox['url']}/api/connections/{cid}?immediate=true", h)
        assert status == 204, text
    _, _, text = ps.http("GET", sandbox["composio"] + "/_fake/calls")
    calls = json.loads(text)
    for cid in made:   # created at, disabled at and deleted from the one sandbox Composio
        assert any(c["method"] == "DELETE" and c["path"].endswith(f"/connected_accounts/{cid}") for c in calls)
        status, _, _ = ps.http("GET", f"{sandbox['composio']}/api/v3.1/connected_accounts/{cid}")
        assert status == 404
        _, _, text = ps.http("GET", f"{sandbox['url']}/api/connections/{cid}/history", h)
        types = [e["type"] for e in json.loads(text)["events"]]
        assert "connection.upstream_deleted" in types and "connection.disconnect_completed" in types, types


def test_a_20kb_token_through_gunicorn_gets_a_431_in_the_json_envelope(sandbox):
    status, headers, text = ps.http("GET", sandbox["url"] + "/api/connections",
                                    {"Authorization": "Bearer " + "a" * 20_000})
    assert status == 431 and headers["Content-Type"].startswith("application/json")
    body = json.loads(text)
    assert body["success"] is False and body["error"]["status"] == 431


def test_the_sandbox_launcher_says_where_it_listens_and_stops_with_its_composio(tmp_path):
    import signal
    import socket
    port, composio_port = ps.free_port(), ps.free_port()
    key = new_rsa_key()   # a Clerk key, so the repository's instance/ gets no dev key from a test
    env = ps.clean_env(DATABASE_URL=f"sqlite:///{tmp_path}/ledger.db", CLERK_JWT_KEY=key.public_pem,
                       CLERK_ISSUER=ISSUER)
    launcher = subprocess.Popen([sys.executable, "-m", "web.dev.sandbox", "--port", str(port),
                                 "--composio-port", str(composio_port)], cwd=ps.ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        banner = []
        while not any("get a token" in line for line in banner):
            line = launcher.stdout.readline()
            assert line, "the launcher stopped before saying where it listens"
            banner.append(line)
        text = "".join(banner)
        assert f"http://127.0.0.1:{port}" in text and f"http://127.0.0.1:{composio_port}" in text
        assert "SANDBOX" in text and "make -s token" in text
        h = {"Authorization": f"Bearer {mint(key, sub='alice')}"}
        status, _, body = ps.http("POST", f"http://127.0.0.1:{port}/api/connections", h,
                                  {"toolkit": "slack", "credentials": {"api_key": "k"}})
        assert status == 201, body    # through the sandbox Composio the launcher started
        cid = json.loads(body)["connectionId"]
        assert ps.http("GET", f"http://127.0.0.1:{composio_port}/api/v3.1/connected_accounts/{cid}")[0] == 200
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(60)
    for p in (port, composio_port):   # its children stopped with it
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", p), timeout=2).close()
