"""`ledger verify | rebuild | replay | export`: the chain and its projections, without HTTP."""
from __future__ import annotations

import json
import sys

import click

from .groups import EXIT_FAILED, ledger_cli, the_ledger


@ledger_cli.command("verify")
@click.option("--from-seq", type=int, default=None, help="check only from this seq on")
@click.option("--to-seq", type=int, default=None, help="check only up to this seq")
def verify(from_seq, to_seq):
    """Walk the hash chain; exit 1 and name the first bad seq if it is broken."""
    result = the_ledger().verify(from_seq, to_seq)
    click.echo(json.dumps(result.as_dict()))
    if not result.ok:
        click.echo(f"chain broken at seq {result.first_bad_seq}: {result.reason}", err=True)
        sys.exit(EXIT_FAILED)


@ledger_cli.command("rebuild")
def rebuild():
    """Replay every projection from seq 1; report whether the live rows were already equal."""
    projection, same = the_ledger().rebuild()
    click.echo(json.dumps({"connections": len(projection.connections),
                           "bindings": sum(len(b) for b in projection.bindings.values()),
                           "live_equal_rebuilt": same}))
    if not same:
        click.echo("the live projections differed from the replay; they have been replaced", err=True)


@ledger_cli.command("replay")
@click.option("--until", "until", required=True, help="an ISO 8601 time or a seq number")
def replay_cmd(until):
    """Print every connection's state as of a time or seq, as JSON."""
    from ledger.clock import seq_or_time
    try:
        seq, time = seq_or_time(until)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from exc
    projection = the_ledger().state_as_of(seq=seq, time=time)
    click.echo(json.dumps(projection.as_json(), indent=2, sort_keys=True))


@ledger_cli.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="write to this file instead of stdout")
@click.option("--from-seq", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--to-seq", type=click.IntRange(min=1), default=None)
def export_cmd(output, from_seq, to_seq):
    """The auditor's export without HTTP: the lines of GET /audit/export (NDJSON)."""
    lines = the_ledger().store.iter_export_lines(from_seq, to_seq)
    if output is None:
        for line in lines:
            sys.stdout.write(line)
        sys.stdout.flush()
        return
    with open(output, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line)
