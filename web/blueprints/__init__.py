"""The HTTP routes, one blueprint per resource. A new endpoint goes in the blueprint of its
resource (or a new module here, registered below), with its request and response models in
web/schemas/ and its operation in blueprints/openapi.py."""
from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Import the blueprints inside the factory (flaskr's way) and register them."""
    from . import (admin, agents, audit, connections, events, metrics, offboarding, openapi, ops, pages, reconnect,
                   webhook_endpoints, webhooks)
    # reconnect after connections: it routes with the connection_id converter connections registers
    for module in (events, connections, reconnect, agents, audit, ops, metrics, openapi, webhooks, webhook_endpoints,
                   pages, admin, offboarding):
        app.register_blueprint(module.bp)
