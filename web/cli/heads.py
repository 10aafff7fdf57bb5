"""`ledger sign-head`: sign the chain's head and record it."""
from __future__ import annotations

import json
import sys

import click
from flask import current_app

from .groups import EXIT_USAGE, ledger_cli


@ledger_cli.command("sign-head")
@click.option("--if-moved", is_flag=True, help="only if an event other than a signed head was recorded since the last one")
def sign_head_cmd(if_moved):
    """Sign the current head with LEDGER_SIGNING_KEY and record it in the chain."""
    from ..heads import SigningNotConfigured, sign_head, sign_head_if_moved
    try:
        head = sign_head_if_moved(current_app) if if_moved else sign_head(current_app)
    except SigningNotConfigured as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)
    if head is None:
        click.echo(f"not signed: nothing recorded since the signed head at seq {current_app.extensions['last_signed_seq']}")
        return
    click.echo(json.dumps(head))
