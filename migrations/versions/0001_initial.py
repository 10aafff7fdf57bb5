"""initial: events, chain head, idempotency keys, projections, outbox, api keys, polls

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 00:11:10.475624
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('tenant', sa.String(length=200), nullable=False),
    sa.Column('scopes', sa.String(length=500), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('revoked_at', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    op.create_table('bindings',
    sa.Column('agent_id', sa.String(length=200), nullable=False),
    sa.Column('connection_id', sa.String(length=100), nullable=False),
    sa.Column('tenant', sa.String(length=200), nullable=False),
    sa.Column('bound_at', sa.String(length=32), nullable=False),
    sa.Column('bound_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('agent_id', 'connection_id')
    )
    with op.batch_alter_table('bindings', schema=None) as batch_op:
        batch_op.create_index('ix_bindings_connection', ['connection_id'], unique=False)

    op.create_table('connections',
    sa.Column('connection_id', sa.String(length=100), nullable=False),
    sa.Column('tenant', sa.String(length=200), nullable=False),
    sa.Column('user_id', sa.String(length=200), nullable=True),
    sa.Column('toolkit', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('previous_status', sa.String(length=20), nullable=True),
    sa.Column('status_reason', sa.String(length=500), nullable=True),
    sa.Column('purge_at', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('updated_at', sa.String(length=32), nullable=False),
    sa.Column('status_changed_at', sa.String(length=32), nullable=False),
    sa.Column('last_used_at', sa.String(length=32), nullable=True),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('connection_id')
    )
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.create_index('ix_connections_status_purge', ['status', 'purge_at'], unique=False)
        batch_op.create_index('ix_connections_tenant', ['tenant'], unique=False)
        batch_op.create_index('ix_connections_user_status', ['user_id', 'status'], unique=False)

    op.create_table('events',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('stream', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('schema', sa.Integer(), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('meta', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.String(length=32), nullable=False),
    sa.Column('recorded_at', sa.String(length=32), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('stream', 'version', name='uq_events_stream_version')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_recorded_at', ['recorded_at'], unique=False)
        batch_op.create_index('ix_events_type_seq', ['type', 'seq'], unique=False)

    op.create_table('idempotency_keys',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('scope', sa.String(length=200), nullable=False),
    sa.Column('first_seq', sa.BigInteger(), nullable=True),
    sa.Column('last_seq', sa.BigInteger(), nullable=True),
    sa.Column('response', sa.Text(), nullable=True),
    sa.Column('recorded_at', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('ledger_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('outbox',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('connection_id', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('not_before', sa.String(length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('claimed_until', sa.String(length=32), nullable=True),
    sa.Column('causation_seq', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('updated_at', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_connection', ['connection_id'], unique=False)
        batch_op.create_index('ix_outbox_due', ['status', 'not_before'], unique=False)

    op.create_table('polls',
    sa.Column('connection_id', sa.String(length=100), nullable=False),
    sa.Column('polled_at', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('connection_id')
    )
    # The chain starts empty: seq 0 and the genesis hash (64 zeros).
    head = sa.table("ledger_head", sa.column("id", sa.Integer), sa.column("seq", sa.BigInteger),
                    sa.column("hash", sa.String))
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])


def downgrade() -> None:
    op.drop_table('polls')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_due')
        batch_op.drop_index('ix_outbox_connection')

    op.drop_table('outbox')
    op.drop_table('ledger_head')
    op.drop_table('idempotency_keys')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_type_seq')
        batch_op.drop_index('ix_events_recorded_at')

    op.drop_table('events')
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_index('ix_connections_user_status')
        batch_op.drop_index('ix_connections_tenant')
        batch_op.drop_index('ix_connections_status_purge')

    op.drop_table('connections')
    with op.batch_alter_table('bindings', schema=None) as batch_op:
        batch_op.drop_index('ix_bindings_connection')

    op.drop_table('bindings')
    op.drop_table('api_keys')
