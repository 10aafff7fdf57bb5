"""head recorded_at; events keep only the (stream, version) index

The head row now carries the head event's recorded_at, so a new event is never recorded
earlier than the one before it (time cut-offs become seq prefixes, found by bisecting seq).
That makes ix_events_recorded_at unnecessary, and ix_events_type_seq served only the rare
`type` filter of the audit search (signed heads are read from their own stream): each index
cost one more page written per append.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('ledger_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recorded_at', sa.String(length=32), nullable=False, server_default=''))
    op.execute("UPDATE ledger_head SET recorded_at = COALESCE("
               "(SELECT events.recorded_at FROM events WHERE events.seq = ledger_head.seq), '')")
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_recorded_at')
        batch_op.drop_index('ix_events_type_seq')


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_type_seq', ['type', 'seq'], unique=False)
        batch_op.create_index('ix_events_recorded_at', ['recorded_at'], unique=False)
    with op.batch_alter_table('ledger_head', schema=None) as batch_op:
        batch_op.drop_column('recorded_at')
