"""Run as a separate OS process: a PostgreSQL store's sequencer and nothing else, until killed.

python -m tests.support.sequencer URL
"""
from __future__ import annotations

import sys
import time

from ledger.storage.engine import make_engine, open_store


def main() -> None:
    store = open_store(make_engine(sys.argv[1]))
    store.start_sequencer()
    print("started", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
