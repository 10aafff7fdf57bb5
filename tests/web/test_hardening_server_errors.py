"""Requests gunicorn refuses before Flask sees them (a DEL in a header, an oversized header) are
answered in the JSON envelope, not gunicorn's HTML page: a real gunicorn on 127.0.0.1."""
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn(db_url, tmp_path, composio):
    if not db_url.startswith("sqlite"):
        pytest.skip("the server's own answers do not depend on the database")
    port = _free_port()
    config = tmp_path / "gunicorn.conf.py"
    config.write_text("")  # gunicorn's defaults: no project settings in the way
    env = {**os.environ, "DATABASE_URL": db_url, "LEDGER_ENV": "development", "AUTO_MIGRATE": "false",
           "COMPOSIO_API_KEY": "test-key", "COMPOSIO_BASE_URL": composio.url, "COMPOSIO_WEBHOOK_SECRET": "whsec-x",
           "CLERK_JWT_KEY": "", "INSTANCE_PATH": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(config), "-b", f"127.0.0.1:{port}",
                             "-w", "1", "--chdir", str(ROOT), "web:create_app()"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):  # wait until it listens (or died)
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read().decode()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _get(port, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/healthz", headers=headers)
    resp = conn.getresponse()
    answer = resp.status, resp.getheader("Content-Type"), resp.read()
    conn.close()
    return answer


def test_gunicorn_refusals_are_in_the_envelope(gunicorn):
    assert _get(gunicorn, {})[0] == 200
    for headers, status in (({"Idempotency-Key": "a\x7fb"}, 400), ({"X-Anything": "a\x01b"}, 400),
                            ({"Authorization": "Bearer " + "x" * 70000}, 431)):
        got, ctype, body = _get(gunicorn, headers)
        assert got == status and ctype == "application/json", (headers.keys(), got, ctype, body[:200])
        error = json.loads(body)["error"]
        assert error["status"] == status and error["code"] and "<html" not in body.decode()
