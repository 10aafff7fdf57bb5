"""`ledger relay` and `ledger outbox [retry]`: carrying out owed Composio actions."""
from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from .groups import EXIT_FAILED, ledger_cli


@ledger_cli.command("relay")
@click.option("--once", is_flag=True, help="carry out what is due now, then exit")
@click.option("--interval", type=float, default=1.0, help="seconds to wait when nothing is due")
@click.option("--sign-every", type=float, default=0.0, help="also sign the head every N seconds (0: never)")
@click.option("--news-check", type=float, default=0.05,
              help="SQLite: how often the webhook relay looks for events other processes wrote (seconds)")
def relay_cmd(once, interval, sign_every, news_check):
    """Carry out owed Composio actions until SIGTERM (or once)."""
    import signal
    import threading
    relay = current_app.extensions["relay"]
    if once:
        from ledger.clock import iso, now
        click.echo(json.dumps({"attempted": relay.run_once(),
                               "webhooks_attempted": current_app.extensions["webhook_relay"].run_once(),
                               "expiring_announced": current_app.extensions["expiry_warner"].warn_due(iso(now()))}))
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from ..bootstrap import start_relays
    start_relays(current_app._get_current_object(), stop, news_check=news_check)
    click.echo(f"relay {relay.worker_id} running", err=True)
    relay.run_forever(stop, idle_sleep=interval, heads=_head_signer(sign_every),
                      expiry=current_app.extensions["expiry_warner"])
    click.echo("relay stopped cleanly", err=True)



def _head_signer(every: float):
    """Every `every` seconds, sign the head if it moved since the last signed head (a signed head
    of its own is not a move: signing it would only sign the previous signature)."""
    if every <= 0:
        return None
    from ledger.services.heads import HeadSigner

    from ..heads import SigningNotConfigured, private_key
    try:
        key = private_key(current_app)
    except SigningNotConfigured:
        key = None  # logged each time there is something to sign
    return HeadSigner(current_app.extensions["ledger"], key, every)


@ledger_cli.group("outbox", invoke_without_command=True)
@click.pass_context
@with_appcontext
def outbox_cmd(ctx):
    """List pending and dead Composio actions."""
    if ctx.invoked_subcommand:
        return
    from ledger.services.relay import backlog, list_actions
    actions = list(list_actions(current_app.extensions["ledger"]))
    _echo_webhook_backlog(current_app.extensions["ledger"])
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
    if action_id.startswith("whd_"):  # an outgoing webhook delivery (ledger/services/webhook_delivery.py)
        from ledger.services.webhook_delivery import retry
    else:
        from ledger.services.relay import retry
    if not retry(current_app.extensions["ledger"], action_id):
        click.echo(f"no pending or dead action {action_id}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"re-queued {action_id}")


def _echo_webhook_backlog(ledger) -> None:
    """The webhook deliveries owed, and each dead one (retry: `ledger outbox retry whd_N`)."""
    from ledger.services.webhook_delivery import backlog, list_deliveries
    b = backlog(ledger)
    if not any(b.values()):
        return
    click.echo(f"webhooks: {b['pending']} due, {b['scheduled']} scheduled, {b['dead']} dead")
    for d in list_deliveries(ledger, statuses=("dead",)):
        click.echo(f"whd_{d['id']}\tdead\twebhook {d['event_type']}\t{d['connection_id']}\tendpoint={d['endpoint_id']}"
                   f"\tattempts={d['attempts']}\t{d['last_error'] or ''}")
