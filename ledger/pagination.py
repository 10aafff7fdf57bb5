"""Opaque page cursors for connection listings: the (created_at, connection_id) of the last item
of a page, so the next page starts strictly after it (a keyset). Pure: no database, no Flask."""
from __future__ import annotations

import base64
import binascii
import json

from . import errors


def encode_cursor(created_at: str, connection_id: str) -> str:
    raw = json.dumps([created_at, connection_id], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The position a cursor names; InvalidInput for anything encode_cursor did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise errors.InvalidInput("The cursor is not one this service gave out.") from None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) and v for v in value)):
        raise errors.InvalidInput("The cursor is not one this service gave out.")
    return value[0], value[1]
