"""Table rows (SQLModel, table=True). The hot paths use their `__table__` with Core statements.

Timestamps are stored as the envelope's fixed-width ISO text (`2026-11-22T21:05:03.123456Z`):
exactly the bytes that were hashed, identical on SQLite and PostgreSQL, and ordered correctly
by plain string comparison.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import BigInteger, Column, Index, Integer, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

TS = 32  # width of an envelope timestamp


class EventRow(SQLModel, table=True):
    __tablename__ = "events"
    # `id` is the insertion order; `seq` the chain position. SQLite seals (seq, prev_hash, hash)
    # in the writing transaction; PostgreSQL inserts them NULL and the sequencer fills them in
    # after commit (ledger/storage/postgres.py), finding its work by the partial index. Each
    # index is one more page written per append: id is SQLite's rowid, so its b-trees are the
    # table, seq and (stream, version), as before.
    __table_args__ = (UniqueConstraint("stream", "version", name="uq_events_stream_version"),
                      Index("uq_events_seq", "seq", unique=True),
                      Index("ix_events_unsequenced", "id", postgresql_where=text("seq IS NULL"),
                            sqlite_where=text("seq IS NULL")))
    id: Optional[int] = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True))
    seq: Optional[int] = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    stream: str = Field(sa_column=Column(String(200), nullable=False))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    type: str = Field(sa_column=Column(String(100), nullable=False))
    schema_: int = Field(sa_column=Column("schema", Integer, nullable=False))
    data: str = Field(sa_column=Column(Text, nullable=False))   # the exact canonical JSON hashed
    meta: str = Field(sa_column=Column(Text, nullable=False))
    occurred_at: str = Field(sa_column=Column(String(TS), nullable=False))
    # PostgreSQL: the writer's time until sequenced; the sequencer keeps it unless the head's is
    # later (recorded_at never goes back along the chain).
    recorded_at: str = Field(sa_column=Column(String(TS), nullable=False))
    prev_hash: Optional[str] = Field(default=None, sa_column=Column(String(64), nullable=True))
    hash: Optional[str] = Field(default=None, sa_column=Column(String(64), nullable=True))


class LedgerHeadRow(SQLModel, table=True):
    """One row: the chain's tip, moved by whoever sequences (SQLite's writer, PostgreSQL's sequencer)."""
    __tablename__ = "ledger_head"
    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False))
    # The head event's recorded_at: a new event is never recorded earlier (see EventStore.write).
    recorded_at: str = Field(sa_column=Column(String(TS), nullable=False, server_default=""))


class IdempotencyRow(SQLModel, table=True):
    """A used idempotency key and what it produced, so a repeat appends nothing."""
    __tablename__ = "idempotency_keys"
    key: str = Field(sa_column=Column(String(200), primary_key=True))
    scope: str = Field(sa_column=Column(String(200), nullable=False))
    # The versions of `scope` (the stream) it appended: known at commit, unlike their seq.
    first_version: Optional[int] = Field(default=None, sa_column=Column(Integer, nullable=True))
    last_version: Optional[int] = Field(default=None, sa_column=Column(Integer, nullable=True))
    response: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    recorded_at: str = Field(sa_column=Column(String(TS), nullable=False))


class ConnectionRow(SQLModel, table=True):
    """Projection: one connection's current state and owner (columns = ConnectionState)."""
    __tablename__ = "connections"
    __table_args__ = (
        Index("ix_connections_user_status", "user_id", "status"),
        Index("ix_connections_tenant", "tenant"),
        Index("ix_connections_status_purge", "status", "purge_at"),
    )
    connection_id: str = Field(sa_column=Column(String(100), primary_key=True))
    tenant: str = Field(sa_column=Column(String(200), nullable=False))
    user_id: Optional[str] = Field(default=None, sa_column=Column(String(200), nullable=True))
    toolkit: str = Field(sa_column=Column(String(100), nullable=False))
    status: str = Field(sa_column=Column(String(20), nullable=False))
    previous_status: Optional[str] = Field(default=None, sa_column=Column(String(20), nullable=True))
    status_reason: Optional[str] = Field(default=None, sa_column=Column(String(500), nullable=True))
    purge_at: Optional[str] = Field(default=None, sa_column=Column(String(TS), nullable=True))
    created_at: str = Field(sa_column=Column(String(TS), nullable=False))
    updated_at: str = Field(sa_column=Column(String(TS), nullable=False))
    status_changed_at: str = Field(sa_column=Column(String(TS), nullable=False))
    last_used_at: Optional[str] = Field(default=None, sa_column=Column(String(TS), nullable=True))
    # Safe facts of the credential (issue 15): never a token. Scopes space-delimited, as OAuth's.
    scopes: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    expires_at: Optional[str] = Field(default=None, sa_column=Column(String(TS), nullable=True))
    use_count: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default=text("0")))
    # The expiry a connection.expiring was announced for: once per expiry, again after a new one.
    expiry_warned_for: Optional[str] = Field(default=None, sa_column=Column(String(TS), nullable=True))
    # PostgreSQL: -version of the event that set it until the sequencer seals it to that event's seq.
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))


class BindingRow(SQLModel, table=True):
    """Projection: an agent bound to a connection (columns = Binding)."""
    __tablename__ = "bindings"
    __table_args__ = (Index("ix_bindings_connection", "connection_id"),)
    agent_id: str = Field(sa_column=Column(String(200), primary_key=True))
    connection_id: str = Field(sa_column=Column(String(100), primary_key=True))
    tenant: str = Field(sa_column=Column(String(200), nullable=False))
    bound_at: str = Field(sa_column=Column(String(TS), nullable=False))
    bound_by: str = Field(sa_column=Column(String(200), nullable=False))


class OutboxRow(SQLModel, table=True):
    """A Composio action owed by a recorded event, carried out by the relay."""
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "not_before"),
        Index("ix_outbox_connection", "connection_id"),
    )
    id: str = Field(sa_column=Column(String(40), primary_key=True))  # also the Idempotency-Key
    connection_id: str = Field(sa_column=Column(String(100), nullable=False))
    action: str = Field(sa_column=Column(String(20), nullable=False))  # disable enable revoke delete
    status: str = Field(sa_column=Column(String(12), nullable=False))  # pending done dead cancelled
    not_before: str = Field(sa_column=Column(String(TS), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    last_error: Optional[str] = Field(default=None, sa_column=Column(String(500), nullable=True))
    claimed_by: Optional[str] = Field(default=None, sa_column=Column(String(100), nullable=True))
    claimed_until: Optional[str] = Field(default=None, sa_column=Column(String(TS), nullable=True))
    # PostgreSQL: -version of the causing event until sealed (the relay runs sealed actions only).
    causation_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: str = Field(sa_column=Column(String(TS), nullable=False))
    updated_at: str = Field(sa_column=Column(String(TS), nullable=False))


class ApiKeyRow(SQLModel, table=True):
    """A service's API key: only its SHA-256 is kept."""
    __tablename__ = "api_keys"
    id: str = Field(sa_column=Column(String(40), primary_key=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    tenant: str = Field(sa_column=Column(String(200), nullable=False))
    scopes: str = Field(sa_column=Column(String(500), nullable=False))  # space-separated
    key_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: str = Field(sa_column=Column(String(TS), nullable=False))
    revoked_at: Optional[str] = Field(default=None, sa_column=Column(String(TS), nullable=True))


class PollRow(SQLModel, table=True):
    """When Composio was last asked about a connection, so polling stays rate-bound per connection."""
    __tablename__ = "polls"
    connection_id: str = Field(sa_column=Column(String(100), primary_key=True))
    polled_at: str = Field(sa_column=Column(String(TS), nullable=False))


class ReconcileRunRow(SQLModel, table=True):
    """One `ledger reconcile` run and what it found: operators read the last ones on /metrics
    (a run is a separate process, so in-memory counters would never reach the web workers)."""
    __tablename__ = "reconcile_runs"
    id: Optional[int] = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    started_at: str = Field(sa_column=Column(String(TS), nullable=False))
    finished_at: str = Field(sa_column=Column(String(TS), nullable=False))
    user_id: Optional[str] = Field(default=None, sa_column=Column(String(200), nullable=True))
    counts: str = Field(sa_column=Column(Text, nullable=False))  # JSON: outcome -> number



class WebhookEndpointRow(SQLModel, table=True):
    """A tenant's outgoing lifecycle webhook endpoint (ledger/webhook_out.py). `secret` is the
    signing secret: it has to be kept to sign, and is never read back out through the API."""
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant", "tenant"),)
    id: str = Field(sa_column=Column(String(40), primary_key=True))
    tenant: str = Field(sa_column=Column(String(200), nullable=False))
    url: str = Field(sa_column=Column(String(2000), nullable=False))
    description: str = Field(default="", sa_column=Column(String(500), nullable=False, server_default=""))
    event_types: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # ",a,b," or ""
    secret: str = Field(sa_column=Column(String(200), nullable=False))
    created_at: str = Field(sa_column=Column(String(TS), nullable=False))
    created_by: str = Field(sa_column=Column(String(200), nullable=False))
    deleted_at: Optional[str] = Field(default=None, sa_column=Column(String(TS), nullable=True))


class WebhookDeliveryRow(SQLModel, table=True):
    """One event owed to one endpoint, written in the event's own transaction. The event is named
    by (stream, version), known at commit; its seq and hashes are read at delivery, once sealed."""
    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("endpoint_id", "stream", "version", name="uq_webhook_deliveries_event"),
                      Index("ix_webhook_deliveries_due", "status", "not_before"))
    id: Optional[int] = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True))
    endpoint_id: str = Field(sa_column=Column(String(40), nullable=False))
    tenant: str = Field(sa_column=Column(String(200), nullable=False))
    connection_id: str = Field(sa_column=Column(String(100), nullable=False))
    stream: str = Field(sa_column=Column(String(200), nullable=False))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    event_type: str = Field(sa_column=Column(String(100), nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the body less seq and hashes
    status: str = Field(sa_column=Column(String(12), nullable=False))  # pending done dead cancelled
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    not_before: str = Field(sa_column=Column(String(TS), nullable=False))
    last_error: Optional[str] = Field(default=None, sa_column=Column(String(500), nullable=True))
    claimed_by: Optional[str] = Field(default=None, sa_column=Column(String(100), nullable=True))
    claimed_until: Optional[str] = Field(default=None, sa_column=Column(String(TS), nullable=True))
    delivered_at: Optional[str] = Field(default=None, sa_column=Column(String(TS), nullable=True))
    created_at: str = Field(sa_column=Column(String(TS), nullable=False))
    updated_at: str = Field(sa_column=Column(String(TS), nullable=False))


events = EventRow.__table__
ledger_head = LedgerHeadRow.__table__
idempotency_keys = IdempotencyRow.__table__
connections = ConnectionRow.__table__
bindings = BindingRow.__table__
outbox = OutboxRow.__table__
api_keys = ApiKeyRow.__table__
polls = PollRow.__table__
reconcile_runs = ReconcileRunRow.__table__
webhook_endpoints = WebhookEndpointRow.__table__
webhook_deliveries = WebhookDeliveryRow.__table__
metadata = SQLModel.metadata
