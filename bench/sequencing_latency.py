"""What sequencing after commit adds to one append, on one writer: the time from the call to
the answer (p50/p99), and on PostgreSQL the share from the commit to its events in the chain (store.sequencing_lags).

python -m bench.sequencing_latency URL [COUNT]     (runs against an empty, migrated database)
"""
from __future__ import annotations

import statistics
import sys
import time


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 500
    import ledger
    if hasattr(ledger, "__path__") and __import__("os").path.isdir(ledger.__path__[0] + "/storage"):
        from ledger.storage.engine import make_engine, open_store
    else:  # the tree before the storage room, for a before/after figure
        from ledger.engine import make_engine
        from ledger.store import EventStore as open_store
    from ledger.envelope import NewEvent
    from ledger.service import Ledger
    store = open_store(make_engine(url))
    ledger = Ledger(store)
    for i in range(50):  # warm-up: pool, prepared statements, the sequencer's lock
        ledger.append(f"warm:{i}", [NewEvent("bench.appended", {"i": i})])
    lags = getattr(store, "sequencing_lags", lambda: None)
    lags()
    took = []
    for i in range(count):
        t = time.perf_counter()
        ledger.append(f"s:{i}", [NewEvent("bench.appended", {"i": i})])
        took.append(time.perf_counter() - t)
    q = statistics.quantiles(took, n=100)
    line = f"{store.engine.dialect.name}: append p50 {q[49] * 1e3:.2f} ms, p99 {q[98] * 1e3:.2f} ms, {count / sum(took):.0f}/s"
    waits = lags()
    if waits:
        w = statistics.quantiles(waits, n=100)
        line += f"; of which commit -> sealed p50 {w[49] * 1e3:.2f} ms, p99 {w[98] * 1e3:.2f} ms"
    print(line)
    getattr(store, "close", lambda: None)()


if __name__ == "__main__":
    main()
