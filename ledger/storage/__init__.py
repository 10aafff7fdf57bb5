"""The storage room: the only package that speaks SQL or imports a database driver.

engine      engines with the settings the ledger relies on; open_store picks the backend
store       EventStore: the interface, and the chain's reads, verify and rebuild written once
sqlite      SQLite: one writer at a time, events sequenced inline in the writing transaction
postgres    PostgreSQL: events sequenced after commit by one sequencer at a time
unit_of_work  what one write transaction reads and writes (typed methods for the use cases)
reads       projection, outbox and reconcile-run reads for the use cases (mixed into EventStore)
api_keys    the api_keys table's rows
statements  the hot path's fixed SQL text; tables: the schema; migrate: Alembic upgrades
verifying   verify() of a long chain across processes
"""
from importlib import import_module

_EXPORTS = {"make_engine": "engine", "normalize_url": "engine", "open_store": "engine",
            "EventStore": "store", "UnitOfWork": "unit_of_work", "Prefetch": "unit_of_work",
            "fitted_key": "unit_of_work", "KEY_WIDTH": "unit_of_work"}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_EXPORTS)
