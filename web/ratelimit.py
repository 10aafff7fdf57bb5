"""Rate limits (Flask-Limiter) and their 429 envelope."""
from __future__ import annotations

from .errors import envelope


def too_many(exc):
    return envelope(429, "RATE_LIMITED", "Too many requests; slow down.")
