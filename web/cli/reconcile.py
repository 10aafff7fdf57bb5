"""`flask --app wsgi ledger reconcile [--user ID]`: record the drift between Composio and the ledger."""
from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from .groups import EXIT_FAILED, ledger_cli


@ledger_cli.command("reconcile")
@with_appcontext
@click.option("--user", "user_id", default=None, help="only this user's connections (our user id)")
@click.option("--page-size", type=click.IntRange(1, 1000), default=100, show_default=True)
def reconcile_cmd(user_id, page_size):
    """Walk Composio's connected accounts and record status drift, unseen and deleted accounts."""
    from ledger import errors
    from ledger.services.reconcile import reconcile
    try:
        counts = reconcile(current_app.extensions["ledger"], current_app.extensions["gateway"],
                           user_id=user_id, page_size=page_size)
    except errors.UpstreamError as exc:
        # Safe to rerun: whatever was recorded before the failure is correct on its own.
        click.echo(f"reconcile stopped: Composio answered {exc.code}: {exc.message}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(json.dumps(counts, sort_keys=True))
