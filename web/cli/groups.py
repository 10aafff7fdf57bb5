"""The CLI's command groups: `flask --app wsgi ledger …` and `flask --app wsgi db …`.

Exit codes (README): 0 ok, 1 verification failed (or the thing asked for does not exist),
2 usage or configuration, 3 storage unreachable; a failure is one line on stderr."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from ..exit_codes import EXIT_FAILED, EXIT_STORAGE, EXIT_USAGE, storage_message

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "db_cli", "ledger_cli", "the_ledger"]


class StorageAwareGroup(AppGroup):
    """A database that cannot be reached is one line and exit 3 for every command below."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            message = storage_message(exc)
            if message is None:
                raise
            click.echo(f"connection-ledger: {message}", err=True)
            ctx.exit(EXIT_STORAGE)


ledger_cli = StorageAwareGroup("ledger", help="Verify, rebuild and replay the connection ledger.")
db_cli = StorageAwareGroup("db", help="Database migrations.")


def the_ledger():
    """This app's Ledger."""
    return current_app.extensions["ledger"]
