"""`db upgrade`: migrations."""
from __future__ import annotations

import click
from flask import current_app

from .groups import db_cli


@db_cli.command("upgrade")
def db_upgrade():
    """Apply every migration up to head."""
    from ledger.storage.migrate import upgrade_locked
    upgrade_locked(current_app.extensions["engine"])
    click.echo("database at head")
