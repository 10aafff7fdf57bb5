"""verify() across processes: contiguous seq ranges checked side by side, then stitched.

An event's hash covers only its own row and its prev_hash, so every range can be hashed on its
own (a process each: hashing is CPU-bound and the GIL would serialise threads); the chain is
whole when each range starts where the one before ended, which is checked here.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys

from ..chain import GENESIS_HASH, ChainWalker, VerifyResult, walk_rows
from ..envelope import EVENT_COLUMNS


def verify_in_parallel(target: dict, first: int, last: int, workers: int) -> VerifyResult:
    """The chain from `first` to `last` (seq), in `workers` processes."""
    size = -(-(last - first + 1) // workers)
    ranges = [(a, min(a + size - 1, last)) for a in range(first, last + 1, size)]
    # Plain child interpreters (`python -m ledger.storage.verifying`), not multiprocessing: no fork of a
    # threaded web worker (held locks), and no re-import of whatever script is __main__.
    procs = [subprocess.Popen([sys.executable, "-m", "ledger.storage.verifying", str(a), str(b)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a, b in ranges]
    for proc in procs:  # on stdin, not argv: a URL may hold a password
        proc.stdin.write(json.dumps(target))
        proc.stdin.close()
    parts = []
    for proc in procs:
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.wait()
        if proc.returncode != 0:
            from ..errors import StorageError  # a worker that cannot read the database
            logging.getLogger("ledger").warning("verify worker failed: %s", (err.strip().splitlines() or ["?"])[-1][:300])
            raise StorageError("the database could not be read to verify it")
        parts.append(json.loads(out))
    return stitch(parts, first)


def stitch(parts: list[dict], first: int) -> VerifyResult:
    """One result from the ranges' results, in seq order: the first break wins."""
    seq, hash_ = first - 1, GENESIS_HASH if first == 1 else None
    checked = 0
    for part in parts:
        if part["first_seq"] is None:
            continue  # every row of this range is gone: the next range's start shows the gap
        if hash_ is not None and part["first_seq"] != seq + 1:
            return VerifyResult(False, seq, hash_, checked, seq + 1, "seq out of order or missing")
        if hash_ is not None and part["first_prev"] != hash_:
            return VerifyResult(False, seq, hash_, checked, part["first_seq"], "prev_hash does not match the previous event")
        checked += part["checked"]
        if not part["ok"]:
            return VerifyResult(False, part["head_seq"], part["head_hash"], checked, part["bad_seq"], part["reason"])
        seq, hash_ = part["head_seq"], part["head_hash"]
    return VerifyResult(True, seq, hash_ or GENESIS_HASH, checked)


_SCAN = ("SELECT " + ", ".join(EVENT_COLUMNS) + " "
         "FROM events WHERE seq >= {p} AND seq <= {p} ORDER BY seq")


def driver_target(engine) -> dict:
    """What a worker needs to open the database with the bare driver (it imports neither
    SQLAlchemy nor the table models: their import took longer than hashing 100k events)."""
    url = engine.url
    if engine.dialect.name == "sqlite":
        return {"sqlite": url.database}
    return {"postgresql": url.set(drivername="postgresql").render_as_string(hide_password=False)}


def _rows(target: dict, first: int, last: int):
    if "sqlite" in target:
        import sqlite3
        conn = sqlite3.connect(target["sqlite"])
        try:
            cur = conn.execute(_SCAN.format(p="?"), (first, last))
            while rows := cur.fetchmany(5000):
                yield from rows
        finally:
            conn.close()
        return
    import psycopg
    with psycopg.connect(target["postgresql"]) as conn, conn.cursor(name="ledger_verify") as cur:
        cur.itersize = 5000
        cur.execute(_SCAN.format(p="%s"), (first, last))
        yield from cur


def _check_range(target: dict, first: int, last: int) -> dict:
    """In a worker process: walk rows first..last with the range's first prev_hash as given."""
    seen: dict = {}

    def rows():
        for row in _rows(target, first, last):
            seen.setdefault("first", row)
            yield row
    walker = ChainWalker(None, None)
    walk_rows(walker, rows())
    result = walker.result()
    head = seen.get("first")
    return {"first_seq": head[0] if head else None, "first_prev": head[9] if head else None,
            "ok": result.ok, "head_seq": result.head_seq, "head_hash": result.head_hash,
            "checked": result.checked, "bad_seq": result.first_bad_seq, "reason": result.reason}


if __name__ == "__main__":
    print(json.dumps(_check_range(json.loads(sys.stdin.read()), int(sys.argv[1]), int(sys.argv[2]))))
