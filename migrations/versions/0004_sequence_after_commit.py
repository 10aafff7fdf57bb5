"""events get an insertion id and are sequenced after commit on PostgreSQL

events.id (insertion order) becomes the primary key; seq, prev_hash and hash may be NULL until
the sequencer fills them in (unique index on seq, partial index on the unsequenced rows).
idempotency_keys remembers the stream versions a key produced instead of their seqs (a write
no longer knows its seq at commit). Existing rows keep id = seq.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 11:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_COLUMNS = "stream, version, type, schema, data, meta, occurred_at, recorded_at, prev_hash, hash"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events ADD COLUMN id BIGINT")
        op.execute("UPDATE events SET id = seq")
        op.execute("CREATE SEQUENCE events_id_seq OWNED BY events.id")
        op.execute("SELECT setval('events_id_seq', COALESCE((SELECT max(id) FROM events), 0) + 1, false)")
        op.execute("ALTER TABLE events ALTER COLUMN id SET DEFAULT nextval('events_id_seq'), "
                   "ALTER COLUMN id SET NOT NULL, DROP CONSTRAINT events_pkey, ADD PRIMARY KEY (id), "
                   "ALTER COLUMN seq DROP NOT NULL, ALTER COLUMN prev_hash DROP NOT NULL, "
                   "ALTER COLUMN hash DROP NOT NULL")
    else:
        # SQLite cannot change a primary key in place: copy into the new shape.
        op.create_table(
            'events_new',
            sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column('seq', sa.BigInteger(), nullable=True),
            sa.Column('stream', sa.String(length=200), nullable=False),
            sa.Column('version', sa.Integer(), nullable=False),
            sa.Column('type', sa.String(length=100), nullable=False),
            sa.Column('schema', sa.Integer(), nullable=False),
            sa.Column('data', sa.Text(), nullable=False),
            sa.Column('meta', sa.Text(), nullable=False),
            sa.Column('occurred_at', sa.String(length=32), nullable=False),
            sa.Column('recorded_at', sa.String(length=32), nullable=False),
            sa.Column('prev_hash', sa.String(length=64), nullable=True),
            sa.Column('hash', sa.String(length=64), nullable=True),
            sa.UniqueConstraint('stream', 'version', name='uq_events_stream_version_new'))
        op.execute(f"INSERT INTO events_new (id, seq, {_COLUMNS}) SELECT seq, seq, {_COLUMNS} FROM events ORDER BY seq")
        op.drop_table('events')
        op.rename_table('events_new', 'events')
        # SQLite keeps a table's constraint names; recreate the unique one under its own name.
        with op.batch_alter_table('events', recreate='always') as batch_op:
            batch_op.drop_constraint('uq_events_stream_version_new', type_='unique')
            batch_op.create_unique_constraint('uq_events_stream_version', ['stream', 'version'])
    op.create_index('uq_events_seq', 'events', ['seq'], unique=True)
    op.create_index('ix_events_unsequenced', 'events', ['id'], unique=False,
                    postgresql_where=sa.text('seq IS NULL'), sqlite_where=sa.text('seq IS NULL'))
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_version', sa.Integer(), nullable=True))
    op.execute("UPDATE idempotency_keys SET "
               "first_version = (SELECT version FROM events WHERE events.seq = idempotency_keys.first_seq), "
               "last_version = (SELECT version FROM events WHERE events.seq = idempotency_keys.last_seq)")
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_column('first_seq')
        batch_op.drop_column('last_seq')


def downgrade() -> None:
    raise NotImplementedError("sequence-after-commit cannot be undone once events were written unsequenced")
