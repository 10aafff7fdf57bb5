"""Logging with the request's trace_id on every line."""
from __future__ import annotations

import logging

from flask import Flask, g, has_request_context


class TraceIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = getattr(g, "trace_id", "-") if has_request_context() else "-"
        return True


def configure_logging(app: Flask) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(trace_id)s] %(message)s"))
    handler.addFilter(TraceIdFilter())
    for name in ("web", "ledger"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, TraceIdFilter) for h in logger.handlers for f in h.filters):
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = True
