"""`flask --app wsgi ledger …` and `flask --app wsgi db upgrade`."""
from __future__ import annotations

import json
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

ledger_cli = AppGroup("ledger", help="Verify, rebuild and replay the connection ledger.")
db_cli = AppGroup("db", help="Database migrations.")


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
        sys.exit(1)


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
