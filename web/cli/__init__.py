"""The command line, one module per family; `register_cli` adds them to the app."""
from __future__ import annotations

from flask import Flask


def register_cli(app: Flask) -> None:
    """Import every command module (each adds its commands to a group) and add the groups."""
    from . import db, dev, heads, keys, ledger, reconcile, relay  # noqa: F401  (each registers its commands)
    from .groups import db_cli, ledger_cli
    app.cli.add_command(ledger_cli)
    app.cli.add_command(db_cli)
