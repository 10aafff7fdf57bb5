"""Composio's user ids and ours: the one prefix rule (COMPOSIO_USER_ID_PREFIX)."""
from __future__ import annotations


def our_user_id(composio_user_id: str | None, prefix: str = "") -> str | None:
    """Our person's id: Composio's with the prefix removed; None if it is not one of ours (no
    prefix, or nothing after it: another app sharing the Composio project)."""
    prefix = prefix or ""
    if not composio_user_id or not composio_user_id.startswith(prefix):
        return None
    return composio_user_id[len(prefix):] or None


def composio_user_id(user_id: str, prefix: str = "") -> str:
    """The id Composio knows our person by."""
    return (prefix or "") + user_id
