"""`ledger dev-token`: the development sandbox's session tokens."""
from __future__ import annotations

import sys

import click
from flask import current_app

from .groups import EXIT_USAGE, ledger_cli


@ledger_cli.command("dev-token")
@click.option("--user", required=True)
@click.option("--org", default=None)
@click.option("--ttl", type=int, default=3600)
def dev_token(user, org, ttl):
    """Print a session token the development server accepts (never in production)."""
    if current_app.config["LEDGER_ENV"] == "production":
        click.echo("dev tokens do not exist in production (LEDGER_ENV=development, or `make -s token`)", err=True)
        sys.exit(EXIT_USAGE)
    from ..dev_tokens import DEV_ISSUER, load_or_create_dev_key, mint_dev_token
    key = load_or_create_dev_key(current_app.instance_path)
    click.echo(mint_dev_token(key, user, issuer=DEV_ISSUER, org_id=org, ttl_seconds=ttl))
