"""`make run`: the development sandbox. One sandbox Composio process and the service beside it;
every process of the sandbox (the service, `ledger relay`, `ledger reconcile`) talks to that one
Composio through COMPOSIO_BASE_URL, so none of them can act on an empty Composio of its own.

    python -m web.dev.sandbox --port 5000 --composio-port 5001
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time


def _wait_listening(host: str, port: int, proc: subprocess.Popen, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--composio-port", type=int, default=5001)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))   # stop the children too (the finally below)
    composio_url = f"http://{args.host}:{args.composio_port}"
    env = dict(os.environ, LEDGER_ENV="development", COMPOSIO_BASE_URL=composio_url)
    env.setdefault("RELAY_IN_PROCESS", "true")
    children = [subprocess.Popen([sys.executable, "-m", "web.dev.composio_server", "--host", args.host,
                                  "--port", str(args.composio_port)], env=env, stdout=subprocess.DEVNULL)]
    try:
        if not _wait_listening(args.host, args.composio_port, children[0]):
            print(f"sandbox: the sandbox Composio could not listen on {composio_url} (port in use? "
                  "set COMPOSIO_PORT)", file=sys.stderr)
            return 2
        service = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "run", "--host", args.host,
                                    "--port", str(args.port)], env=env)
        children.append(service)
        if _wait_listening(args.host, args.port, service):
            print(f"\n  SANDBOX (development mode: sandbox Composio, development tokens; never production)\n"
                  f"  service          http://{args.host}:{args.port}\n"
                  f"  sandbox Composio {composio_url}\n"
                  f"  get a token      TOKEN=$(make -s token USER_ID=alice)\n", flush=True)
        return service.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()


if __name__ == "__main__":
    sys.exit(main())
