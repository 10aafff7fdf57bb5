"""The Flask app factory (flaskr's shape): the composition root builds the parts, then the HTTP
side is added: request hooks, auth, rate limits, blueprints, the CLI."""
from __future__ import annotations

import logging

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    """Build the app. `config` overrides the environment (tests pass a database URL here)."""
    app = Flask(__name__, instance_relative_config=True)
    from .bootstrap import bootstrap
    bootstrap(app, config)

    from .errors import register_error_handlers
    from .header_limits import register_header_limits
    from .request_context import register_request_hooks
    register_error_handlers(app)
    register_header_limits(app)   # first: nothing reads an oversize header
    register_request_hooks(app)

    from .auth import init_auth
    from .ratelimit import init_limiter
    init_auth(app)        # before the limiter, so limits are per caller
    limiter = init_limiter(app)

    from .blueprints import register_blueprints
    register_blueprints(app)
    for name in ("ops.healthz", "ops.readyz", "metrics.metrics", "openapi.openapi"):  # webhooks exempt themselves
        limiter.exempt(app.view_functions[name])

    from .cli import register_cli
    register_cli(app)
    logging.getLogger("web").debug("app ready on %s", app.extensions["engine"].dialect.name)
    return app
