"""Starting the service from a shell: a refused setting or an unreachable database is one line
on stderr and a documented exit code (2 configuration, 3 storage), never a traceback."""
from __future__ import annotations

import os
import sys

EXIT_CONFIG = 2
EXIT_STORAGE = 3


def fail(code: int, message: str) -> None:
    print(f"connection-ledger: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def storage_message(exc: BaseException) -> str | None:
    """One line naming why the database could not be reached, or None if `exc` is something else."""
    from sqlalchemy.exc import DBAPIError, OperationalError
    from ledger.errors import StorageError
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return "storage unreachable: " + (first[0] if first else type(exc).__name__)
    if isinstance(exc, StorageError):
        return f"storage unreachable: {exc.message}"
    return None


def create_app_or_exit(config: dict | None = None):
    """create_app for wsgi.py and the `flask` CLI."""
    from web import create_app
    from web.config import ConfigError
    try:
        return create_app(config)
    except ConfigError as exc:
        fail(EXIT_CONFIG, str(exc))
    except Exception as exc:
        message = storage_message(exc)
        if message is None:
            raise
        fail(EXIT_STORAGE, message)


def instance_path() -> str:
    """Where create_app's instance folder is (the dev key, the SQLite default)."""
    from flask import Flask
    return Flask("web", instance_relative_config=True).instance_path


def check_or_exit(environ=os.environ) -> None:
    """Load and check the settings, and reach the database, once: gunicorn's master runs this
    before forking, so a bad start is one line instead of one traceback per worker."""
    from web.config import ConfigError, load
    try:
        settings = load(instance_path(), environ=environ)
    except ConfigError as exc:
        fail(EXIT_CONFIG, str(exc))
    from ledger.engine import make_engine
    from sqlalchemy import text
    engine = make_engine(settings["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        message = storage_message(exc)
        if message is None:
            raise
        fail(EXIT_STORAGE, message)
    finally:
        engine.dispose()  # workers fork after this: they must not inherit its connections
