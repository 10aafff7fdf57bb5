"""PostgreSQL LISTEN for the ledger feed: one autocommit psycopg connection of its own.

Driver code: it belongs in the storage room (ledger/storage/) once that exists.
"""
from __future__ import annotations

import re

_CHANNEL = re.compile(r"^[a-z_][a-z0-9_]*$")


class PgListener:
    """LISTEN on one channel; wait() returns True when a notification came."""

    def __init__(self, engine, channel: str):
        import psycopg
        if not _CHANNEL.match(channel):
            raise ValueError(f"not a channel name: {channel!r}")
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self.conn.execute(f"LISTEN {channel}")  # checked identifier: LISTEN takes no parameter

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds for a notification; True if one (or more) came."""
        came = False
        for _ in self.conn.notifies(timeout=timeout, stop_after=1):
            came = True
        return came

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # already broken: nothing left to release
            pass
