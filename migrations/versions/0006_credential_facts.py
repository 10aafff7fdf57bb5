"""connections: scopes, expires_at, use_count, expiry_warned_for (issue 15, items 4 and 5)

The safe facts of a connection's credential, its use count and the expiry last announced as
connection.expiring. Existing rows start with no facts and a use count of 0; `ledger rebuild`
(or replaying the history) counts the uses recorded before this revision.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 20:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('connections') as batch:
        batch.add_column(sa.Column('scopes', sa.Text(), nullable=True))
        batch.add_column(sa.Column('expires_at', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('use_count', sa.Integer(), nullable=False, server_default=sa.text('0')))
        batch.add_column(sa.Column('expiry_warned_for', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('connections') as batch:
        batch.drop_column('expiry_warned_for')
        batch.drop_column('use_count')
        batch.drop_column('expires_at')
        batch.drop_column('scopes')
