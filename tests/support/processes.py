"""Real processes for tests: the service under gunicorn, the sandbox Composio, CLI commands."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def clean_env(**settings) -> dict:
    """The environment of a fresh shell plus `settings`: none of the test session's own."""
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    return {**keep, **{k: str(v) for k, v in settings.items()}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def start(argv: list[str], env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
    except Exception:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sandbox_composio(port: int) -> subprocess.Popen:
    return start([sys.executable, "-m", "web.dev.composio_server", "--port", str(port)], clean_env(), port)


def gunicorn(port: int, env: dict, workers: int = 2) -> subprocess.Popen:
    # A long worker timeout: on a loaded test machine the first `import composio` can take a while.
    return start([str(BIN / "gunicorn"), "-w", str(workers), "--timeout", "300", "-b", f"127.0.0.1:{port}",
                  "wsgi:app"], env, port)


def http(method: str, url: str, headers: dict | None = None, body=None) -> tuple[int, dict, str]:
    """(status, headers, text) on a new TCP connection each time, so requests spread over workers."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if data else {}), "Connection": "close", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()
