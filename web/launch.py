"""Starting the service from a shell: a refused setting or an unreachable database is one line
on stderr and a documented exit code (2 configuration, 3 storage), never a traceback."""
from __future__ import annotations

import os

from .exit_codes import EXIT_CONFIG, EXIT_STORAGE, fail, storage_message


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
    from ledger.storage.engine import check_reachable
    try:
        check_reachable(settings["DATABASE_URL"])  # disposed after: workers fork from this process
    except Exception as exc:
        message = storage_message(exc)
        if message is None:
            raise
        fail(EXIT_STORAGE, message)
