"""`as_of` / `--until` values: a seq number or an ISO 8601 time."""
from __future__ import annotations

from ledger.clock import normalize_iso


def seq_or_time(value: str) -> tuple[int | None, str | None]:
    """(seq, None) for digits, (None, normalised ISO time) otherwise; ValueError if neither."""
    value = (value or "").strip()
    if value.isdigit():
        return int(value), None
    try:
        return None, normalize_iso(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is neither a seq number nor an ISO 8601 time") from exc
