"""The safe facts of a credential: which scopes were granted and when it expires (pure).

Composio's account object carries the live credential in `state.val` (and copies in `data` and
`params`): access, refresh and id tokens beside the facts we want. Only the two facts below are
read out of it, by name; everything else is left where it is, so no token can reach an event,
a projection row, a log line or an answer through this path.
"""
from __future__ import annotations

import re
from datetime import datetime

from .clock import UTC, iso, normalize_iso

_SCOPE_SPLIT = re.compile(r"[\s,]+")
_SCOPE = re.compile(r"^[\x21-\x7E]{1,200}$")
MAX_SCOPES = 100


def scopes_of(*sources: dict) -> tuple[str, ...] | None:
    """The granted scopes (OAuth's `scope`: space-delimited, some providers use commas or a
    list; or `scopes`), sorted and deduplicated; None when no source reports any."""
    for src in sources:
        for name in ("scope", "scopes"):
            value = src.get(name) if isinstance(src, dict) else None
            if isinstance(value, str):
                items = _SCOPE_SPLIT.split(value)
            elif isinstance(value, (list, tuple)):
                items = [v for v in value if isinstance(v, str)]
            else:
                continue
            found = sorted({s for s in (i.strip() for i in items) if _SCOPE.match(s)})
            if found:
                return tuple(found[:MAX_SCOPES])
    return None


def expires_at_of(*sources: dict) -> str | None:
    """When the credential expires (envelope form), from `expires_at` (ISO text or epoch
    seconds/milliseconds); None when no source says."""
    for src in sources:
        value = src.get("expires_at") if isinstance(src, dict) else None
        when = _when(value)
        if when is not None:
            return when
    return None


def _when(value) -> str | None:
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return iso(datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC))
        if isinstance(value, str) and value.strip():
            text = value.strip()
            return _when(float(text)) if re.fullmatch(r"\d+(\.\d+)?", text) else normalize_iso(text)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def credential_data(account) -> dict:
    """The facts an event records about an account's credential: only those Composio reported."""
    out = {}
    if getattr(account, "scopes", None):
        out["scopes"] = list(account.scopes)
    if getattr(account, "expires_at", None):
        out["expires_at"] = account.expires_at
    return out


def join_scopes(scopes) -> str | None:
    """The projection's form: one space-delimited string (OAuth's own), None when unknown."""
    return " ".join(scopes) if scopes else None


def split_scopes(text: str | None) -> list[str] | None:
    return text.split(" ") if text else None
