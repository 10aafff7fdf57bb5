"""The one place the ledger reads the time, so tests (freezegun) and callers can steer it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

UTC = timezone.utc


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """The envelope's timestamp form: ISO 8601 UTC, always microseconds, with `Z`."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # isoformat is twice strftime's speed (this runs per event) and zero-pads years < 1000.
    return dt.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 time; a naive one is taken as UTC. Raises ValueError."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def normalize_iso(text: str) -> str:
    """Any ISO time -> the envelope's form (so string comparison orders correctly)."""
    return iso(parse_iso(text))


def plus_seconds(text: str, seconds: float) -> str:
    return iso(parse_iso(text) + timedelta(seconds=seconds))


def seq_or_time(value: str) -> tuple[int | None, str | None]:
    """An `as_of` / `--until` value: (seq, None) for digits, (None, normalised ISO time)
    otherwise; ValueError if it is neither. The one parser: HTTP, CLI and the offline auditor."""
    value = (value or "").strip()
    if value.isdigit():
        return int(value), None
    try:
        return None, normalize_iso(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is neither a seq number nor an ISO 8601 time") from exc
