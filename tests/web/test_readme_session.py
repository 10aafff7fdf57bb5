"""The README's shell sessions, pasted as a reader pastes them: the exact ```sh block of a
section, run top to bottom with `bash -euo pipefail` against the real processes it talks to.

The only change made to a block is textual and to its port numbers (5000, 5001, 8000 become free
ports), so that a run never collides with a sandbox someone has running. Each block runs in a copy
of the checkout (`repo_copy`): the blocks write `ledger.ndjson` and `clerk-*.pem` in the working
directory, and the sandbox keeps its SQLite and development key in `instance/`; none of that may
land in the repository. These tests take no `db_url`, so they run once per session, on SQLite,
like the launcher's test in test_processes.py."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import processes as ps

pytestmark = pytest.mark.slow   # real processes, a few seconds each

# Each ends a hang only (a dead server, a stuck `until` loop), well inside pytest's own 300 s;
# nothing is timed.
READY_SECONDS = 120
SESSION_SECONDS = 150


def readme_block(heading: str) -> str:
    """The first ```sh block of the README's section `## heading`, exactly as written."""
    readme = (ps.ROOT / "README.md").read_text()
    section = readme.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def with_ports(block: str, ports: dict[int, int]) -> str:
    """Every port number of the block (in a URL, `-b`, `--port`) replaced by a free one."""
    for written, free in ports.items():
        block, n = re.subn(rf"(?<![0-9]){written}(?![0-9])", str(free), block)
        assert n, f"the block no longer names port {written}"
    return block


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """The reader's checkout in a temporary directory. Its `.venv` is the test's own virtual
    environment seen through symlinks, with an install stamp of its own newer than the copied
    pyproject.toml, so `make -s token` uses it as it is and never reinstalls into it."""
    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix):
        pytest.skip("needs the project's virtual environment (`make test` makes .venv)")
    copy = tmp_path / "checkout"
    copy.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "instance", "*.db", "*.db-*")
    for name in ("ledger", "web", "migrations"):
        shutil.copytree(ps.ROOT / name, copy / name, ignore=skip)
    for name in ("wsgi.py", "Makefile", "pyproject.toml", "alembic.ini", "gunicorn.conf.py"):
        shutil.copy(ps.ROOT / name, copy / name)
    (copy / ".venv" / "bin").mkdir(parents=True)
    for entry in venv.iterdir():
        if entry.name != "bin":
            (copy / ".venv" / entry.name).symlink_to(entry)
    for entry in (venv / "bin").iterdir():
        if not entry.name.startswith("."):
            (copy / ".venv" / "bin" / entry.name).symlink_to(entry)
    (copy / ".venv" / "bin" / ".installed").touch()
    return copy


def _wait_for(predicate, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not predicate():
        assert proc.poll() is None, f"{what}: the process exited with {proc.returncode}\n{log.read_text()}"
        assert time.monotonic() < deadline, f"{what}: still waiting after {READY_SECONDS} s\n{log.read_text()}"
        time.sleep(0.2)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _stop_group(pgid: int, ports: tuple[int, ...]) -> None:
    """SIGTERM to every process of the group, wait until none of `ports` listens, then SIGKILL
    whatever is left (a process that ignored the SIGTERM)."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 60
    while any(_listening(p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _paste(block: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=ps.clean_env(),
                          capture_output=True, text=True, timeout=SESSION_SECONDS)


def test_the_sandbox_session_of_the_readme_gives_what_its_comments_say(repo_copy):
    port, composio_port = ps.free_port(), ps.free_port()
    block = with_ports(readme_block("Try it: the local sandbox"), {5000: port, 5001: composio_port})
    log = repo_copy / "sandbox.log"
    # `make run` is exactly this command (its `.venv/bin/python`), on the README's ports.
    with log.open("w") as out:
        launcher = subprocess.Popen([str(repo_copy / ".venv" / "bin" / "python"), "-m", "web.dev.sandbox",
                                     "--port", str(port), "--composio-port", str(composio_port)],
                                    cwd=repo_copy, env=ps.clean_env(), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    try:
        _wait_for(lambda: "get a token" in log.read_text(), "the sandbox's banner", launcher, log)
        session = _paste(block, repo_copy)
        assert session.returncode == 0, f"{session.stdout}\n{session.stderr}\n{log.read_text()}"
        _, _, calls = ps.http("GET", f"http://127.0.0.1:{composio_port}/_fake/calls?method=PATCH")
    finally:
        _stop_group(launcher.pid, (port, composio_port))

    lines = [line for line in session.stdout.splitlines() if line.strip()]
    assert len(lines) == 12, session.stdout
    (created, _oauth_page, after_oauth, bound, refused, forced, after_disconnect, restored, last_event,
     offline, over_http, title) = lines
    created = json.loads(created)
    assert created["status"] == "INITIATED" and created["connectionId"]
    assert created["redirectUrl"].startswith(f"http://127.0.0.1:{composio_port}/")
    assert after_oauth == "ACTIVE"
    assert json.loads(bound)["agents"] == ["agent-1"]
    refused = json.loads(refused)["error"]
    assert refused["status"] == 409 and refused["details"]["agents"] == ["agent-1"]
    assert forced == "204"
    assert after_disconnect == "DISCONNECTING"
    status_calls = [c["json"] for c in json.loads(calls) if c["path"].endswith(f"/{created['connectionId']}/status")]
    assert status_calls == [{"enabled": False}, {"enabled": True}]   # disabled at Composio, then enabled again
    assert restored == "ACTIVE"
    assert last_event.startswith("connection.")
    offline, over_http = json.loads(offline), json.loads(over_http)
    assert offline["ok"] is True and offline["first_seq"] == 1
    assert over_http["ok"] is True and over_http["head"] == offline["head"]
    assert title == "Connection Ledger"
    # It all happened in the copy: the export, and the sandbox's key in the copy's instance/.
    assert (repo_copy / "ledger.ndjson").is_file()
    assert (repo_copy / "instance" / "dev-signing-key.pem").is_file()


def test_the_production_recipe_of_the_readme_answers_the_first_request(repo_copy):
    port, composio_port = ps.free_port(), ps.free_port()
    block = with_ports(readme_block("Production, and trying it locally"), {8000: port, 5001: composio_port})
    out, err = repo_copy / "recipe.out", repo_copy / "recipe.err"
    # The recipe leaves the stand-in Composio and gunicorn running in the background: its output
    # goes to files (a pipe would stay open as long as they run), and its process group is
    # stopped at the end, both of them with it.
    with out.open("w") as stdout, err.open("w") as stderr:
        recipe = subprocess.Popen(["bash", "-euo", "pipefail", "-c", block], cwd=repo_copy, env=ps.clean_env(),
                                  stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        returncode = recipe.wait(SESSION_SECONDS)
    finally:
        _stop_group(recipe.pid, (port, composio_port))
    assert returncode == 0, f"{out.read_text()}\n{err.read_text()}"
    lines = [line for line in out.read_text().splitlines() if line.strip()]
    assert json.loads(lines[-1])["data"] == []
    assert (repo_copy / "instance" / "production-try.db").is_file()
