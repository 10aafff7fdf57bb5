"""The HTTP load generator: wrk (Debian's package), the same settings for every endpoint.

wrk runs one thread with CONNECTIONS keep-alive connections for a fixed time; a Lua `done`
hook prints the figures as one JSON line (latencies are wrk's own histogram, in microseconds).
Requests that must differ (a unique webhook-id, a distinct connection to disconnect) come from
a file of pre-built requests that the Lua script cycles through; `used` tells how many were sent.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

from .harness import log

CONNECTIONS = 4   # two sync gunicorn workers, each with one request queued behind it
THREADS = 1

_DONE = r"""
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local used, wrapped = 0, 0
  for _, t in ipairs(threads) do
    used = used + (t:get("used") or 0)
    wrapped = wrapped + (t:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%f,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"used":%d,"wrapped":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, e.connect, e.read, e.write, e.status, e.timeout, used, wrapped))
end
"""

PLAIN = _DONE

# Each line of the file: method \t path \t headers as k=v joined by \x1f \t body
FROM_FILE = _DONE + r"""
local reqs, n = {}, 0
used, wrapped = 0, 0
init = function(args)
  for line in io.lines(args[1]) do
    local method, path, hdrs, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = {}
    for k, v in hdrs:gmatch("([^=\31]+)=([^\31]*)") do headers[k] = v end
    n = n + 1
    reqs[n] = wrk.format(method, path, headers, body ~= "" and body or nil)
  end
end
request = function()
  used = used + 1
  local i = (used - 1) % n + 1
  if used > n then wrapped = 1 end
  return reqs[i]
end
"""


def ensure_wrk() -> str | None:
    """wrk's path, installing Debian's package if it is missing; None (and a message) if that fails."""
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk is missing: apt-get install -y wrk")
    for cmd in (["apt-get", "install", "-y", "wrk"], ["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
        try:
            subprocess.run(cmd, check=False, capture_output=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired):
            break
        if shutil.which("wrk"):
            return shutil.which("wrk")
    log("could not install wrk (apt-get install -y wrk failed; are you root with Debian's package lists?). "
        "HTTP figures are skipped: install wrk and run again.")
    return None


def write_script(workdir: str, name: str, text: str) -> str:
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def write_requests(path: str, requests: list[tuple[str, str, dict, str]]) -> str:
    """(method, path, headers, body) per line, for FROM_FILE."""
    with open(path, "w") as f:
        for method, target, headers, body in requests:
            hdrs = "\x1f".join(f"{k}={v}" for k, v in headers.items())
            if any(c in body for c in "\t\n") or any(c in hdrs for c in "\t\n"):
                raise ValueError("request text must not contain tabs or newlines")
            f.write(f"{method}\t{target}\t{hdrs}\t{body}\n")
    return path


def run(wrk: str, url: str, seconds: float, script: str, headers: dict | None = None,
        args: tuple = (), connections: int = CONNECTIONS) -> dict:
    """Load `url` for `seconds`; req/s, p50/p90/p99 (ms), errors, and how many file requests were used."""
    cmd = [wrk, f"-t{THREADS}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
           "-s", script]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(url)
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no figures: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line[len("BENCHJSON "):])
    errors = sum(r[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout"))
    return {"value": r["requests"] / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1000,
            "p90_ms": r["p90_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "requests": r["requests"],
            "non2xx": r["errors_status"], "socket_errors": errors, "used": r["used"], "wrapped": r["wrapped"]}
