"""The peer: the `eventsourcing` library doing the same work, configured as its docs say.

One aggregate per connection, with the same event payloads as ours. Settings come from its own
environment keys (PERSISTENCE_MODULE, SQLITE_DBNAME, POSTGRES_*), on the same file system and
the same PostgreSQL server as our ledger. Its SQLite recorder puts the file in WAL mode and keeps
SQLite's default synchronous setting, which `sqlite_synchronous()` reports beside the figures.
"""
from __future__ import annotations

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from . import workload
from .harness import pg_params

PAGE = 5000  # notifications per read: the same page size as our rebuild


class Connection(Aggregate):
    """A connection's history, as an eventsourcing aggregate."""

    @event("Initiated")
    def __init__(self, connection_id: str, user_id: str, tenant: str, toolkit: str, status: str):
        self.connection_id, self.user_id, self.tenant = connection_id, user_id, tenant
        self.toolkit, self.status = toolkit, status
        self.last_used_at = None
        self.purge_at = None

    @event("Activated")
    def activated(self, connection_id: str, status: str) -> None:
        self.status = status

    @event("Used")
    def used(self, connection_id: str, trigger_slug: str, at: str) -> None:
        self.last_used_at = at

    @event("DisconnectRequested")
    def disconnect_requested(self, connection_id: str, purge_at: str, previous_status: str,
                             immediate: bool, forced: bool, agents: list) -> None:
        self.status, self.purge_at = "DISCONNECTING", purge_at


class Ledger(Application):
    name = "BenchLedger"


def sqlite_env(path: str) -> dict:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path, "SQLITE_LOCK_TIMEOUT": "60"}


def postgres_env(url: str) -> dict:
    p = pg_params(url)
    return {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": p["dbname"],
            "POSTGRES_HOST": p["host"], "POSTGRES_PORT": p["port"], "POSTGRES_USER": p["user"],
            "POSTGRES_PASSWORD": p["password"]}


def app_for(backend: str, where: str, extra: dict | None = None) -> Ledger:
    """backend 'sqlite' (where = file path) or 'postgresql' (where = database URL); `extra`
    adds settings of its own (e.g. a pool of one connection for a one-thread writer process)."""
    env = sqlite_env(where) if backend == "sqlite" else postgres_env(where)
    return Ledger(env={**env, **(extra or {})})


def sqlite_synchronous(app: Ledger) -> int:
    """The synchronous level of the peer's own SQLite connections (2 = FULL)."""
    with app.recorder.datastore.get_connection(commit=False) as conn:
        return conn._sqlite_conn.execute("PRAGMA synchronous").fetchone()[0]


def create_connections(app: Ledger, first: int, count: int) -> list[Connection]:
    """Aggregates for connections first..first+count-1, initiated and activated, saved."""
    aggs = []
    for i in range(first, first + count):
        _, d = workload.step(i, 0, "")
        a = Connection(**d)
        a.activated(connection_id=d["connection_id"], status="ACTIVE")
        aggs.append(a)
    for j in range(0, len(aggs), 500):
        app.save(*aggs[j:j + 500])
    return aggs


def seed(app: Ledger, n_events: int) -> None:
    """The same interleaved histories as workload.history(), 1,000 events per save."""
    live: dict[int, Connection] = {}
    pending: dict[int, Connection] = {}
    for i, version, type_, data, _ in workload.history(n_events):
        if version == 1:
            live[i] = Connection(**data)
        elif version == 2:
            live[i].activated(**data)
        elif version < workload.LIFE:
            live[i].used(**data)
        else:
            live[i].disconnect_requested(**data)
        pending[i] = live[i]
        if version == workload.LIFE:
            del live[i]
        if len(pending) >= 1000:
            app.save(*pending.values())
            pending.clear()
    if pending:
        app.save(*pending.values())


def replay(app: Ledger) -> int:
    """Read every notification in order and reconstruct every aggregate from its events."""
    aggregates: dict = {}
    start, count = 1, 0
    to_domain_event = app.mapper.to_domain_event
    while True:
        page = app.recorder.select_notifications(start, PAGE)
        for n in page:
            e = to_domain_event(n)
            aggregates[e.originator_id] = e.mutate(aggregates.get(e.originator_id))
        count += len(page)
        if len(page) < PAGE:
            return count
        start = page[-1].id + 1
