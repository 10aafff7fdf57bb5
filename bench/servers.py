"""Processes the HTTP figures load: gunicorn (ours and hello-world) and the fake Composio.

Every gunicorn runs as `.venv/bin/gunicorn -c CONFIG -w 2 -b 127.0.0.1:PORT <app>` with the
defaults otherwise (sync workers, 30 s timeout): the same settings for the ceiling and for us.
CONFIG is an empty file unless a figure asks for the repository's gunicorn.conf.py: gunicorn reads
./gunicorn.conf.py by default, which would otherwise change these figures' settings unannounced.

A server on a large database can take long to come up: readiness is polled (READY_TIMEOUT, with
a line in the log every 30 s), and a server that dies or never answers is reported with the tail
of its own log, so a figure that cannot be measured says why.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from .harness import ROOT, log

WORKERS = 2
READY_TIMEOUT = float(os.environ.get("BENCH_READY_TIMEOUT", "900"))
REPO_CONFIG = os.path.join(ROOT, "gunicorn.conf.py")


def call(method: str, url: str, headers: dict | None = None, body: bytes | None = None,
         timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def missing(status: int, body: bytes, what: str) -> str:
    if status in (404, 405):
        return f"n/a (endpoint missing: {what} answered {status})"
    return f"n/a ({what} answered {status}: {body[:200].decode('utf-8', 'replace')})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process on 127.0.0.1:port with its output in a log file; stopped by its own pid."""

    def __init__(self, name: str, cmd: list[str], env: dict, workdir: str, port: int):
        self.name, self.port = name, port
        self.log_path = os.path.join(workdir, f"{name}.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, timeout: float = READY_TIMEOUT) -> None:
        """Until `path` answers (any status below 500); RuntimeError with the log's tail if it
        dies or is not ready in `timeout` seconds."""
        started = time.monotonic()
        deadline, said = started + timeout, started
        while time.monotonic() < deadline:
            if time.monotonic() - said >= 30:
                said = time.monotonic()
                log(f"{self.name}: waiting for {path} ({said - started:.0f} s so far)")
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=5):
                    return
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s: {self.tail()}")

    def why(self) -> str:
        """Whether it still runs, and the tail of its log: the reason a figure could not be measured."""
        code = self.proc.poll()
        state = "running" if code is None else f"exited with code {code}"
        return f"{self.name} server {state}; its log ends: {self.tail(8)}"

    def tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path) as f:
                return " | ".join(ln.rstrip() for ln in f.readlines()[-lines:])
        except OSError:
            return ""

    def worker_pids(self) -> list[int]:
        import psutil
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def gunicorn(name: str, app: str, env: dict, workdir: str, args: list[str] | None = None,
             config: str | None = None) -> Process:
    """gunicorn with `args` (default: -w 2, sync) and `config` (default: an empty file)."""
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    if config is None:
        config = os.path.join(workdir, "gunicorn.empty.conf.py")
        open(config, "a").close()
    cmd = [exe, "-c", config, *(args if args is not None else ["-w", str(WORKERS)]), "-b", f"127.0.0.1:{port}", app]
    if _has_control_socket():
        # gunicorn >= 27 opens a control socket at one fixed path per user by default: keep off
        # it, so the bench never disturbs (or is disturbed by) someone else's gunicorn.
        cmd.insert(1, "--no-control-socket")
    return Process(name, cmd, {**os.environ, **env}, workdir, port)


def _has_control_socket() -> bool:
    import gunicorn
    return tuple(int(x) for x in gunicorn.__version__.split(".")[:1]) >= (27,)


def fake_composio(workdir: str) -> Process | None:
    """`python -m web.dev.composio_server --port P`, if that module exists yet."""
    if importlib.util.find_spec("web.dev") is None or importlib.util.find_spec("web.dev.composio_server") is None:
        return None
    port = free_port()
    proc = Process("composio", [sys.executable, "-m", "web.dev.composio_server", "--port", str(port)],
                   dict(os.environ), workdir, port)
    try:
        proc.wait_ready("/")
    except RuntimeError as exc:
        log(f"the fake Composio server did not start: {exc}")
        proc.stop()
        return None
    return proc
