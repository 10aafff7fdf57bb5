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
    from ..blueprints.webhook_endpoints import start_with_relay
    start_with_relay(current_app._get_current_object(), stop)
    _wake_webhooks_on_news(stop, news_check)
    click.echo(f"relay {relay.worker_id} running", err=True)
    relay.run_forever(stop, idle_sleep=interval, heads=_head_signer(sign_every),
                      expiry=current_app.extensions["expiry_warner"])
    click.echo("relay stopped cleanly", err=True)


def _wake_webhooks_on_news(stop, check_seconds: float) -> None:
    """Deliver a webhook as soon as its event is in the chain, not at the webhook relay's next
    idle pass: the events are written by the web processes, so this process hears of them
    through a feed of its own (PostgreSQL: LISTEN for the sequencer's NOTIFY; SQLite: a read
    for new seqs every `check_seconds`)."""
    import threading

    from ledger.feed import Feed
    from ledger.services.webhook_delivery import wake_on_news
    store, relay = current_app.extensions["ledger"].store, current_app.extensions["webhook_relay"]
    # on PostgreSQL check_seconds is only how often the LISTEN loop looks up from its wait
    feed = Feed(store, check_seconds=check_seconds if store.engine.dialect.name == "sqlite" else 1.0)

    def run() -> None:
        while not stop.is_set():
            try:
                wake_on_news(relay, feed, stop)
            except Exception as exc:  # the database is away: the idle passes go on meanwhile
                click.echo(f"webhook relay wake-up: {type(exc).__name__}; retrying", err=True)
                stop.wait(1.0)
        feed.close()
    threading.Thread(target=run, name="webhook-relay-wake", daemon=True).start()


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
    from ..blueprints.webhook_endpoints import echo_webhook_backlog
    echo_webhook_backlog(current_app.extensions["ledger"])
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
    if action_id.startswith("whd_"):  # an outgoing webhook delivery (ledger/webhook_delivery.py)
        from ledger.services.webhook_delivery import retry
    if not retry(current_app.extensions["ledger"], action_id):
        click.echo(f"no pending or dead action {action_id}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"re-queued {action_id}")
