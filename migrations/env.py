"""Alembic environment: the SQLModel metadata of ledger.storage.tables, the database from DATABASE_URL
(or the URL the app passes in `config.attributes["url"]`)."""
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from ledger.storage import tables  # noqa: F401  (registers every table on SQLModel.metadata)
from ledger.storage.engine import normalize_url
from sqlmodel import SQLModel

config = context.config
if config.config_file_name and not config.attributes.get("quiet"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def _url() -> str:
    url = config.attributes.get("url") or os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set DATABASE_URL (or pass a URL) to run migrations")
    return normalize_url(url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      compare_type=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


def _run(connection) -> None:
    # render_as_batch lets later revisions ALTER tables on SQLite too.
    context.configure(connection=connection, target_metadata=target_metadata,
                      compare_type=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
