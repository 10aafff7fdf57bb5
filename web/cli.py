"""`flask --app wsgi ledger …` and `flask --app wsgi db upgrade`.

Exit codes (README): 0 ok, 1 verification failed (or the thing asked for does not exist),
2 usage or configuration, 3 storage unreachable; a failure is one line on stderr."""
from __future__ import annotations

import json
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

EXIT_FAILED, EXIT_USAGE, EXIT_STORAGE = 1, 2, 3


class StorageAwareGroup(AppGroup):
    """A database that cannot be reached is one line and exit 3 for every command below."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from .boot import storage_message
            message = storage_message(exc)
            if message is None:
                raise
            click.echo(f"connection-ledger: {message}", err=True)
            ctx.exit(EXIT_STORAGE)


ledger_cli = StorageAwareGroup("ledger", help="Verify, rebuild and replay the connection ledger.")
db_cli = StorageAwareGroup("db", help="Database migrations.")


def _ledger():
    return current_app.extensions["ledger"]


@db_cli.command("upgrade")
def db_upgrade():
    """Apply every migration up to head."""
    from .db import upgrade_locked
    upgrade_locked(current_app.extensions["engine"])
    click.echo("database at head")


@ledger_cli.command("verify")
@click.option("--from-seq", type=int, default=None, help="check only from this seq on")
@click.option("--to-seq", type=int, default=None, help="check only up to this seq")
def verify(from_seq, to_seq):
    """Walk the hash chain; exit 1 and name the first bad seq if it is broken."""
    result = _ledger().verify(from_seq, to_seq)
    click.echo(json.dumps(result.as_dict()))
    if not result.ok:
        click.echo(f"chain broken at seq {result.first_bad_seq}: {result.reason}", err=True)
        sys.exit(EXIT_FAILED)


@ledger_cli.command("rebuild")
def rebuild():
    """Replay every projection from seq 1; report whether the live rows were already equal."""
    projection, same = _ledger().rebuild()
    click.echo(json.dumps({"connections": len(projection.connections),
                           "bindings": sum(len(b) for b in projection.bindings.values()),
                           "live_equal_rebuilt": same}))
    if not same:
        click.echo("the live projections differed from the replay; they have been replaced", err=True)


@ledger_cli.command("replay")
@click.option("--until", "until", required=True, help="an ISO 8601 time or a seq number")
def replay_cmd(until):
    """Print every connection's state as of a time or seq, as JSON."""
    from .timeparse import seq_or_time
    try:
        seq, time = seq_or_time(until)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from exc
    projection = _ledger().state_as_of(seq=seq, time=time)
    click.echo(json.dumps(projection.as_json(), indent=2, sort_keys=True))


def register_cli(app: Flask) -> None:
    app.cli.add_command(ledger_cli)
    app.cli.add_command(db_cli)


# -- API keys -------------------------------------------------------------------------------
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


# -- the outbox relay ----------------------------------------------------------------------------
@ledger_cli.command("relay")
@click.option("--once", is_flag=True, help="carry out what is due now, then exit")
@click.option("--interval", type=float, default=1.0, help="seconds to wait when nothing is due")
@click.option("--sign-every", type=float, default=0.0, help="also sign the head every N seconds (0: never)")
def relay_cmd(once, interval, sign_every):
    """Carry out owed Composio actions until SIGTERM (or once)."""
    import signal
    import threading
    relay = current_app.extensions["relay"]
    if once:
        click.echo(json.dumps({"attempted": relay.run_once()}))
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"relay {relay.worker_id} running", err=True)
    relay.run_forever(stop, idle_sleep=interval, heads=_head_signer(sign_every))
    click.echo("relay stopped cleanly", err=True)


def _head_signer(every: float):
    """Every `every` seconds, sign the head if it moved since the last signed head (a signed head
    of its own is not a move: signing it would only sign the previous signature)."""
    if every <= 0:
        return None
    from ledger.services.heads import HeadSigner

    from .heads import SigningNotConfigured, private_key
    try:
        key = private_key(current_app)
    except SigningNotConfigured:
        key = None  # logged each time there is something to sign, as before
    return HeadSigner(current_app.extensions["ledger"], key, every)


@ledger_cli.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="write to this file instead of stdout")
@click.option("--from-seq", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--to-seq", type=click.IntRange(min=1), default=None)
def export_cmd(output, from_seq, to_seq):
    """The auditor's export without HTTP: the lines of GET /audit/export (NDJSON)."""
    lines = _ledger().store.iter_export_lines(from_seq, to_seq)
    if output is None:
        for line in lines:
            sys.stdout.write(line)
        sys.stdout.flush()
        return
    with open(output, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line)


@ledger_cli.group("outbox", invoke_without_command=True)
@click.pass_context
@with_appcontext
def outbox_cmd(ctx):
    """List pending and dead Composio actions."""
    if ctx.invoked_subcommand:
        return
    from ledger.services.relay import backlog, list_actions
    actions = list(list_actions(current_app.extensions["ledger"]))
    if not actions:
        click.echo("no pending or dead actions")
        return
    b = backlog(current_app.extensions["ledger"])
    click.echo(f"backlog: {b['pending']} due (oldest waiting {b['oldest_due_age_seconds']:.0f} s), "
               f"{b['scheduled']} scheduled, {b['dead']} dead")
    for a in actions:
        click.echo(f"{a['id']}\t{a['status']}\t{a['action']}\t{a['connection_id']}\tattempts={a['attempts']}"
                   f"\tnot_before={a['not_before']}\t{a['last_error'] or ''}")


@outbox_cmd.command("retry")
@click.argument("action_id")
def outbox_retry(action_id):
    """Re-queue a dead action to run now."""
    from ledger.services.relay import retry
    if not retry(current_app.extensions["ledger"], action_id):
        click.echo(f"no pending or dead action {action_id}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"re-queued {action_id}")


# -- development ---------------------------------------------------------------------------
@ledger_cli.command("dev-token")
@click.option("--user", required=True)
@click.option("--org", default=None)
@click.option("--ttl", type=int, default=3600)
def dev_token(user, org, ttl):
    """Print a session token the development server accepts (never in production)."""
    if current_app.config["LEDGER_ENV"] == "production":
        click.echo("dev tokens do not exist in production (LEDGER_ENV=development, or `make -s token`)", err=True)
        sys.exit(EXIT_USAGE)
    from .devkeys import DEV_ISSUER, load_or_create_dev_key, mint_dev_token
    key = load_or_create_dev_key(current_app.instance_path)
    click.echo(mint_dev_token(key, user, issuer=DEV_ISSUER, org_id=org, ttl_seconds=ttl))


@ledger_cli.command("sign-head")
@click.option("--if-moved", is_flag=True, help="only if an event other than a signed head was recorded since the last one")
def sign_head_cmd(if_moved):
    """Sign the current head with LEDGER_SIGNING_KEY and record it in the chain."""
    from .heads import SigningNotConfigured, sign_head, sign_head_if_moved
    try:
        head = sign_head_if_moved(current_app) if if_moved else sign_head(current_app)
    except SigningNotConfigured as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)
    if head is None:
        click.echo(f"not signed: nothing recorded since the signed head at seq {current_app.extensions['last_signed_seq']}")
        return
    click.echo(json.dumps(head))


from .cli_reconcile import reconcile_cmd  # noqa: E402  (its module imports this one's helpers)
ledger_cli.add_command(reconcile_cmd)
