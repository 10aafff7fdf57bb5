"""Signals sent after commit. Receivers are best-effort and live outside the write path."""
from blinker import Namespace

_signals = Namespace()

#: sent once per recorded envelope, after its transaction committed; sender is the Ledger.
event_recorded = _signals.signal("event-recorded")
