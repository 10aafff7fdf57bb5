"""The HTTP routes, one blueprint per resource. A new endpoint goes in the blueprint of its
resource (or a new module here, registered below), with its request and response models in
web/schemas/ and its operation in blueprints/openapi.py."""
from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Import the blueprints inside the factory (flaskr's way) and register them."""
    from . import agents, audit, connections, events, metrics, openapi, ops, pages, webhook_endpoints, webhooks
    for module in (events, connections, agents, audit, ops, metrics, openapi, webhooks, webhook_endpoints, pages):
        app.register_blueprint(module.bp)
