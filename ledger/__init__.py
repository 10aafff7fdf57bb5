"""Connection Ledger's domain and storage. No Flask here.

Re-exports are lazy so that `python -m ledger.audit` (the offline verifier) loads only the
chain and the projections, never the database layer.
"""
from importlib import import_module

_EXPORTS = {"Ledger": "ledger.service", "Envelope": "ledger.envelope", "NewEvent": "ledger.envelope",
            "Actor": "ledger.envelope", "commands": "ledger.commands", "errors": "ledger.errors"}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    mod = import_module(module)
    return mod if module.endswith(name) else getattr(mod, name)


__all__ = sorted(_EXPORTS)
