"""`ledger api-key create | list | revoke`: service API keys (only their hashes are stored)."""
from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from .groups import EXIT_FAILED, ledger_cli


api_key_cli = AppGroup("api-key", help="Service API keys (only their hashes are stored).")
ledger_cli.add_command(api_key_cli)


@api_key_cli.command("create")
@click.option("--tenant", required=True)
@click.option("--scope", "scopes", multiple=True, required=True, help="connections:admin or audit:read")
@click.option("--name", default=None)
def api_key_create(tenant, scopes, name):
    """Create a key; it is printed once, as the last line."""
    from ledger.services import apikeys
    try:
        record, key = apikeys.create(current_app.extensions["engine"], tenant, list(scopes), name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(f"created {record.id} ({record.name}) for tenant {record.tenant} with {' '.join(sorted(record.scopes))}")
    click.echo("store this key now; it cannot be shown again:")
    click.echo(key)


@api_key_cli.command("list")
def api_key_list():
    """List keys (never the keys themselves)."""
    from ledger.services import apikeys
    keys = apikeys.list_keys(current_app.extensions["engine"])
    if not keys:
        click.echo("no API keys")
    for k in keys:
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        click.echo(f"{k.id}\t{k.name}\t{k.tenant}\t{' '.join(sorted(k.scopes))}\t{k.created_at}\t{state}")


@api_key_cli.command("revoke")
@click.argument("key_id")
def api_key_revoke(key_id):
    """Revoke a key by its id."""
    from ledger.services import apikeys
    if not apikeys.revoke(current_app.extensions["engine"], key_id):
        click.echo(f"no active key {key_id}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"revoked {key_id}")
