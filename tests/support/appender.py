"""Run as a separate OS process: append to the ledger and report what happened (JSON line).

python -m tests.support.appender URL STREAM COUNT [--expected-version N] [--wait-file F]
"""
from __future__ import annotations

import argparse
import json
import os
import time

from ledger.envelope import NewEvent
from ledger.errors import ConcurrencyError
from ledger.service import Ledger
from ledger.storage.engine import make_engine
from ledger.storage.engine import open_store


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("stream")
    p.add_argument("count", type=int)
    p.add_argument("--expected-version", type=int, default=None)
    p.add_argument("--start-at", type=float, default=0.0, help="wall-clock time to start, to line processes up")
    a = p.parse_args()
    ledger = Ledger(open_store(make_engine(a.url)))
    while time.time() < a.start_at:
        time.sleep(0.001)
    won, lost = 0, 0
    for i in range(a.count):
        try:
            ledger.append(a.stream, [NewEvent("test.appended", {"i": i, "pid": os.getpid()})],
                          expected_version=a.expected_version)
            won += 1
        except ConcurrencyError:
            lost += 1
    print(json.dumps({"won": won, "lost": lost}))


if __name__ == "__main__":
    main()
