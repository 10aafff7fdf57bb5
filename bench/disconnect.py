"""Figure 5d: DELETE /api/connections/<id> on distinct ACTIVE connections, with the outbox.

The app runs with RELAY_INLINE=true and COMPOSIO_BASE_URL pointing at the Composio-compatible
fake (`python -m web.dev.composio_server`), so each request records the disconnect and its
outbox rows in one transaction, then the relay disables the account at "Composio" through the
real SDK before the answer goes out. Every request names a connection never disconnected before
(the fake is told about each one first); hello-world gets the same requests.
"""
from __future__ import annotations

import json
import os

from . import loadgen, workload
from .harness import log, side_by_side
from .servers import call, missing

DISC_BASE = 60_000_000


def register_accounts(site, start: int, stop: int) -> None:
    """Tell the fake Composio about connections start..stop-1, so the relay's disable succeeds."""
    from concurrent.futures import ThreadPoolExecutor
    stop = min(stop, site.disc_count)

    def add(j: int) -> None:
        c = DISC_BASE + j
        body = json.dumps({"user_id": workload.user_of(c), "toolkit": "github", "id": workload.cid(c)}).encode()
        status, answer = call("POST", site.composio.url + "/_fake/accounts", {"content-type": "application/json"}, body)
        if status != 200:
            raise RuntimeError(f"the fake Composio refused an account: {status} {answer[:200]!r}")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(add, range(max(start, site.disc_registered), stop)))
    site.disc_registered = max(site.disc_registered, stop)


def figure(site, fig) -> None:
    if site.composio is None:
        fig.na = "n/a (the fake Composio server web.dev.composio_server is missing)"
        return
    hdr = {"X-Api-Key": site.admin_key}

    def requests(start: int, count: int) -> list:
        return [("DELETE", f"/api/connections/{workload.cid(DISC_BASE + j)}", hdr, "")
                for j in range(start, min(start + count, site.disc_count))]
    register_accounts(site, 0, 1)
    status, body = call("DELETE", site.ours.url + requests(0, 1)[0][1], hdr)
    if status != 204:
        fig.na = missing(status, body, "DELETE /api/connections/<id>")
        return
    site.disc_next, expected = 1, [200.0]

    def ours(seconds=None) -> dict:
        need = int(expected[0] * (seconds or site.settings.http_seconds) * 1.5) + 100
        register_accounts(site, site.disc_next, site.disc_next + need)
        path = loadgen.write_requests(os.path.join(site.workdir, "disconnect.txt"),
                                      requests(site.disc_next, site.disc_count))
        r = site.load(site.ours, site.file_script(), args=(path,), seconds=seconds)
        site.disc_next += r["used"]
        expected[0] = max(expected[0], r["value"])
        if r["wrapped"] or site.disc_next > site.disc_registered:
            log("disconnect: ran past the prepared connections; later requests repeated or were unknown")
        return r

    def hello(seconds=None) -> dict:
        path = loadgen.write_requests(os.path.join(site.workdir, "disconnect_hello.txt"),
                                      requests(0, site.disc_count))
        return site.load(site.hello, site.file_script(), args=(path,), seconds=seconds)
    side_by_side(fig, {"ours": ours, "hello": hello}, site.settings.runs,
                 warmup={"ours": lambda: ours(1), "hello": lambda: hello(1)})
    fig.note = recorded(site)


def recorded(site) -> str:
    """What the disconnects left in the ledger: requested, and disabled at Composio by the relay."""
    import sqlite3
    from ledger import envelope as ev
    conn = sqlite3.connect(site.url[len("sqlite:///"):])
    try:
        n = dict(conn.execute("SELECT type, count(*) FROM events WHERE stream >= ? AND type IN (?, ?, ?) GROUP BY type",
                              (f"connection:{workload.cid(DISC_BASE)}", ev.DISCONNECT_REQUESTED,
                               ev.UPSTREAM_DISABLED, ev.PROVIDER_ACTION_FAILED)).fetchall())
    finally:
        conn.close()
    return (f"ledger after the runs: {n.get(ev.DISCONNECT_REQUESTED, 0):,} disconnects "
            f"requested over HTTP, {n.get(ev.UPSTREAM_DISABLED, 0):,} disabled at Composio by the inline relay, "
            f"{n.get(ev.PROVIDER_ACTION_FAILED, 0):,} provider actions failed")


