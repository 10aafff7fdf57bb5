"""Flask app factory: settings, ledger, blueprints, error envelope, CLI."""
from __future__ import annotations

import logging

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    """Build the app. `config` overrides the environment (tests pass a database URL here)."""
    app = Flask(__name__, instance_relative_config=True)
    from . import settings_loader
    settings_loader.apply(app, config)

    from .logs import configure_logging
    configure_logging(app)

    from ledger.service import Ledger
    from ledger.storage.engine import make_engine
    from ledger.storage.engine import open_store
    engine = make_engine(app.config["DATABASE_URL"])
    ledger = Ledger(open_store(engine))
    app.extensions["engine"] = engine
    app.extensions["ledger"] = ledger
    if app.config["AUTO_MIGRATE"]:
        from .db import upgrade_locked
        upgrade_locked(engine)

    from .errors import register_error_handlers
    from .limits import register_header_limits
    from .requests import register_request_hooks
    register_error_handlers(app)
    register_header_limits(app)   # first: nothing reads an oversize header
    register_request_hooks(app)

    from .auth import init_auth
    from .ratelimit import init_limiter
    from .wiring import wire_services
    init_auth(app)        # before the limiter, so limits are per caller
    limiter = init_limiter(app)
    wire_services(app)

    from . import agents, audit, connections, events, openapi, ops, webhooks
    from .metrics import register_metrics
    for blueprint in (events.bp, connections.bp, agents.bp, audit.bp, ops.bp, openapi.bp, webhooks.bp):
        app.register_blueprint(blueprint)
    register_metrics(app)
    for name in ("ops.healthz", "ops.readyz", "openapi.openapi"):  # webhooks exempt themselves
        limiter.exempt(app.view_functions[name])

    from .pages import bp as pages_bp  # the pages: /, /audit, /docs (web/pages.py)
    app.register_blueprint(pages_bp)

    from .cli import register_cli
    register_cli(app)
    logging.getLogger("web").debug("app ready on %s", engine.dialect.name)
    return app
