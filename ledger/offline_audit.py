"""The offline auditor: verify an export and replay it, with no database and no Flask.

    python -m ledger.audit verify-export FILE [--range FROM:TO | --from-seq N] [--expect-head SEQ:HASH]
                                              [--public-key K] [--heads FILE]
    python -m ledger.audit state FILE --as-of SEQ_OR_ISO_TIME
    python -m ledger.audit verify-receipt RECEIPT [--export FILE] --public-key K

An export is NDJSON, one envelope per line; each line's hash must equal
sha256(prev_hash + "\\n" + canonical_json(line without "hash")), from 64 zeros at seq 1. The
file is streamed line by line, so a million-event export needs no more memory than one.

An export must start at seq 1 unless a part was asked for (--range, --from-seq) or it is anchored
to a published head (--expect-head): otherwise cutting off its first events would go unnoticed.
An empty export proves nothing and is not ok. An offboarding receipt (ledger/receipts.py) verifies
when its Ed25519 signature does, and, given the export, when the export's chain verifies and holds
every event the receipt cites at its seq, with its hash, type and stream. Exit codes: 0 ok, 1 verification failed, 2 usage
(a missing file, a bad argument).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Iterator

from .chain import GENESIS_HASH, ChainWalker, canonical_json
from .clock import seq_or_time
from .envelope import EVENT_COLUMNS, HEAD_SIGNED, Envelope
from .projections import replay

_FIELDS = EVENT_COLUMNS


class BadLine(Exception):
    def __init__(self, line: int, seq: int | None, reason: str):
        super().__init__(reason)
        self.line, self.seq, self.reason = line, seq, reason


def _open(path: str):
    return sys.stdin if path == "-" else open(path, encoding="utf-8")


def checked_envelopes(path: str, until_seq: int | None = None, until_time: str | None = None,
                      on_hash=None) -> Iterator[dict]:
    """Parsed lines whose chain checks out, in order; BadLine at the first one that does not."""
    walker: ChainWalker | None = None
    with _open(path) as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            expected = walker.prev_seq + 1 if walker else None
            try:
                env = json.loads(text)
                if not isinstance(env, dict) or any(k not in env for k in _FIELDS):
                    raise ValueError("missing fields")
                seq = int(env["seq"])
            except (ValueError, TypeError):
                raise BadLine(number, expected, "not a complete JSON envelope") from None
            if (until_seq is not None and seq > until_seq) or (until_time and env["recorded_at"] > until_time):
                return
            if walker is None:  # a range export starts mid-chain: its first prev_hash is taken as given
                walker = ChainWalker() if seq == 1 else ChainWalker(None, None)
            body = {k: v for k, v in env.items() if k != "hash"}
            try:
                text_ = canonical_json(body)
            except (ValueError, TypeError):  # e.g. 1e400: no canonical form, so never what was hashed
                raise BadLine(number, seq, "a value has no canonical JSON form") from None
            if not walker.feed(seq, str(env["prev_hash"]), text_, str(env["hash"])):
                raise BadLine(number, walker.bad_seq, walker.reason)
            if on_hash:
                on_hash(seq, env["hash"])
            yield env


class HeadChecks:
    """Published heads and signed heads the export must agree with."""

    def __init__(self, expect: tuple[int, str] | None, public_key, beside: list[dict]):
        self.expect, self.key = expect, public_key
        self.pending = {int(h["seq"]): h for h in beside}   # signed heads given beside the export
        self.seen_expect = expect is None
        self.signed_checked = 0
        self.last_hash: tuple[int, str] = (0, GENESIS_HASH)

    def on_hash(self, seq: int, hash_: str) -> None:
        if self.expect and seq == self.expect[0]:
            if hash_ != self.expect[1]:
                raise BadLine(0, seq, "the export does not extend the published head")
            self.seen_expect = True
        head = self.pending.pop(seq, None)
        if head is not None:
            self._check(head, seq, hash_)
        self.last_hash = (seq, hash_)

    def on_envelope(self, env: dict) -> None:
        if env["type"] != HEAD_SIGNED or self.key is None:
            return  # without the public key a head proves nothing: anyone can write one
        head = env["data"]
        seq = int(head.get("seq", -1))
        # A signed head names the head just before its own event: that line's hash.
        self._check(head, seq, env["prev_hash"] if seq == env["seq"] - 1 else None)

    def _check(self, head: dict, seq: int, chain_hash: str | None) -> None:
        from .signing import verify_head
        if self.key is not None and not verify_head(self.key, head):
            raise BadLine(0, seq, f"the signed head at seq {seq} has a bad signature")
        if chain_hash is None or head.get("hash") != chain_hash:
            raise BadLine(0, seq, f"the chain does not have the signed hash at seq {seq}")
        self.signed_checked += 1

    def finish(self) -> None:
        if not self.seen_expect:
            raise BadLine(0, self.expect[0], "the export does not reach the published head")
        if self.pending:
            seq = min(self.pending)
            raise BadLine(0, seq, f"the export does not reach the signed head at seq {seq}")


def _beside(path: str | None) -> list[dict]:
    """Signed heads from a file: GET /audit/heads' document, a JSON list, or one per line."""
    if not path:
        return []
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(doc, dict):
        return doc["heads"] if "heads" in doc else [doc]
    return list(doc)


def verify_export(path: str, expect: tuple[int, str] | None = None, public_key=None,
                  heads: list[dict] = (), start: int | None = None, end: int | None = None) -> dict:
    """`start`/`end`: the part of the chain asked for (the file must begin at `start` and reach
    `end`). Without `start` the file must begin at seq 1, unless `expect` anchors it."""
    checks = HeadChecks(expect, public_key, list(heads))
    count, first, last = 0, None, (0, GENESIS_HASH)
    try:
        for env in checked_envelopes(path, until_seq=end, on_hash=checks.on_hash):
            if first is None:
                first = int(env["seq"])
                _check_start(first, start, expect)
            checks.on_envelope(env)
            count, last = count + 1, (env["seq"], env["hash"])
        if first is None:
            raise BadLine(0, start or 1, "the export has no events" + (" in the range asked for" if end else ""))
        if end is not None and last[0] < end:
            raise BadLine(0, last[0] + 1, f"the export stops at seq {last[0]}, before the range's end {end}")
        checks.finish()
    except BadLine as bad:
        return {"ok": False, "first_bad_seq": bad.seq, "line": bad.line or None, "reason": bad.reason}
    return {"ok": True, "first_seq": first, "last_seq": last[0], "head": {"seq": last[0], "hash": last[1]},
            "checked": count, "signed_heads_checked": checks.signed_checked}


def _check_start(first: int, start: int | None, expect) -> None:
    if start is not None and first != start:
        raise BadLine(1, start, f"the export starts at seq {first}, not at {start} as asked")
    if start is None and expect is None and first != 1:
        raise BadLine(1, 1, f"the export starts at seq {first}, not 1: its first events are missing "
                            "(to check a part, give --range FROM:TO or --from-seq)")


def state_as_of(path: str, as_of: str) -> dict:
    seq, time = seq_or_time(as_of)
    envs = (Envelope.from_dict(e) for e in checked_envelopes(path, until_seq=seq, until_time=time))
    return replay(envs).as_json()


def verify_receipt_file(path: str, public_key, export: str | None = None) -> dict:
    """The signature of the receipt in `path`, and (with `export`) every event it cites."""
    from .receipts import cited_events, verify_receipt
    try:
        with _open(path) as f:
            doc = json.load(f)
    except (ValueError, UnicodeDecodeError):
        return {"ok": False, "reason": "the receipt is not valid JSON"}
    bad = verify_receipt(public_key, doc)
    if bad:
        return {"ok": False, "reason": bad}
    try:
        cited = cited_events(doc["receipt"])
    except (KeyError, TypeError, ValueError):
        return {"ok": False, "reason": "the receipt's cited events are malformed"}
    report = {"ok": True, "offboarding_id": doc["receipt"].get("offboarding_id"),
              "connections": len(doc["receipt"].get("connections", ())), "cited": len(cited), "export_checked": False}
    if export is None:
        return report
    chain = verify_export(export)
    if not chain["ok"]:
        return {"ok": False, "reason": f"the export does not verify: {chain['reason']}",
                "first_bad_seq": chain["first_bad_seq"]}
    wanted = {seq for seq, *_ in cited}
    found = {int(env["seq"]): env for env in checked_envelopes(export) if int(env["seq"]) in wanted}
    for seq, hash_, type_, cid in cited:
        env = found.get(seq)
        if env is None:
            return {"ok": False, "reason": f"the export has no event at seq {seq}", "seq": seq}
        if env["hash"] != hash_ or env["type"] != type_:
            return {"ok": False, "reason": f"the export's event at seq {seq} is not the one the receipt cites",
                    "seq": seq}
        if cid is not None and env["stream"] != f"connection:{cid}":
            return {"ok": False, "reason": f"the event at seq {seq} is not about connection {cid}", "seq": seq}
    return {**report, "export_checked": True, "head": chain["head"]}


def _parse_head(text: str) -> tuple[int, str]:
    seq, _, hash_ = text.partition(":")
    if not seq.isdigit() or len(hash_) != 64:
        raise argparse.ArgumentTypeError("expected SEQ:HASH (a number and a 64-character hex hash)")
    return int(seq), hash_


def _parse_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    if not (sep and low.isdigit() and high.isdigit()) or not 1 <= int(low) <= int(high):
        raise argparse.ArgumentTypeError("expected FROM:TO, two seqs with 1 <= FROM <= TO")
    return int(low), int(high)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("expected a seq (a whole number >= 1)")
    return int(text)


def _usage_error(message: str) -> int:
    print(f"python -m ledger.audit: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.audit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify-export", help="recompute the chain of an export")
    v.add_argument("file")
    part = v.add_mutually_exclusive_group()
    part.add_argument("--range", type=_parse_range, help="FROM:TO, the part of the chain the file should hold")
    part.add_argument("--from-seq", type=_positive, help="the seq the file starts at (a range export)")
    v.add_argument("--expect-head", type=_parse_head, help="SEQ:HASH published earlier; the export must extend it")
    v.add_argument("--public-key", help="Ed25519 public key (PEM, file, or base64) to check signed heads")
    v.add_argument("--heads", help="signed heads served beside the export (GET /audit/heads)")
    s = sub.add_parser("state", help="every connection's state as of a seq or time, from the export alone")
    s.add_argument("file")
    s.add_argument("--as-of", required=True)
    r = sub.add_parser("verify-receipt", help="check an offboarding receipt's signature (and its events in an export)")
    r.add_argument("file", metavar="RECEIPT")
    r.add_argument("--export", help="an export of the chain that must hold every event the receipt cites")
    r.add_argument("--public-key", required=True, help="Ed25519 public key (PEM, file, or base64): GET /audit/public-key")
    args = parser.parse_args(argv)
    for path in (args.file, getattr(args, "export", None)):
        if path is not None and path != "-" and not os.path.isfile(path):
            return _usage_error(f"cannot read {path}: no such file")
    if args.command == "verify-receipt":
        from .signing import load_public_key
        try:
            key = load_public_key(args.public_key)
        except (OSError, ValueError) as exc:
            return _usage_error(f"--public-key: {exc}")
        report = verify_receipt_file(args.file, key, args.export)
        print(json.dumps(report))
        return 0 if report["ok"] else 1
    if args.command == "verify-export":
        key = None
        try:
            if args.public_key:
                from .signing import load_public_key
                key = load_public_key(args.public_key)
            beside = _beside(args.heads)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return _usage_error(f"--public-key/--heads: {exc}")
        start, end = args.range or (args.from_seq, None)
        report = verify_export(args.file, args.expect_head, key, beside, start=start, end=end)
        print(json.dumps(report))
        return 0 if report["ok"] else 1
    try:
        print(json.dumps(state_as_of(args.file, args.as_of), indent=2, sort_keys=True))
    except BadLine as bad:
        print(json.dumps({"ok": False, "first_bad_seq": bad.seq, "line": bad.line, "reason": bad.reason}))
        return 1
    except ValueError as exc:
        print(json.dumps({"ok": False, "reason": str(exc)}))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
