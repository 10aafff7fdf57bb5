"""Benchmarks of the connection ledger beside its peer (eventsourcing) and the raw driver: `python -m bench`."""
