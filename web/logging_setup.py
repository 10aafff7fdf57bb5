"""Logging with the request's trace_id on every line."""
from __future__ import annotations

import logging

from flask import Flask, g, has_request_context

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(trace_id)s] %(message)s"


class TraceIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = getattr(g, "trace_id", "-") if has_request_context() else "-"
        return True


def configure_logging(app: Flask) -> None:
    """One handler, on the root logger, unless the host process configured logging already.

    On the root, not on our own loggers: the composio SDK calls logging.basicConfig() when it
    is imported, which adds a root handler only if there is none, and a handler of ours beside
    it would print every line twice."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT, defaults={"trace_id": "-"}))
        handler.addFilter(TraceIdFilter())
        root.addHandler(handler)
    for name in ("web", "ledger"):
        logging.getLogger(name).setLevel(logging.INFO)
