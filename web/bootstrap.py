"""The one composition root: settings on app.config, then the engine, the ledger, the Composio
gateway, the relay, the use cases and the signal subscriptions, each built once per app and kept
in `app.extensions`. `create_app` (web/__init__.py) calls `bootstrap(app, overrides)` and then
adds the HTTP side (hooks, blueprints, CLI); nothing here is built at import time."""
from __future__ import annotations

import logging
import threading

from flask import Flask

from . import config as cfg
from .json_provider import OrjsonProvider
from .logs import configure_logging
from .request_context import on_first_request

log = logging.getLogger("web")


def bootstrap(app: Flask, overrides: dict | None = None) -> None:
    """Settings, storage, ledger, gateway, relay and use cases for `app`."""
    apply_settings(app, overrides)
    configure_logging(app)
    engine, ledger = build_ledger(app)
    app.extensions.update(engine=engine, ledger=ledger)
    if app.config["AUTO_MIGRATE"]:
        from ledger.storage.migrate import upgrade_locked
        upgrade_locked(engine)
    build_services(app, ledger)


def apply_settings(app: Flask, overrides: dict | None) -> None:
    """The checked settings (web/config.py) on app.config, and Flask's JSON through orjson."""
    settings = cfg.load(app.instance_path, overrides)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = int(settings["MAX_CONTENT_LENGTH"])
    app.json = OrjsonProvider(app)


def build_ledger(app: Flask):
    from ledger.service import Ledger
    from ledger.storage.engine import make_engine, open_store
    engine = make_engine(app.config["DATABASE_URL"])
    return engine, Ledger(open_store(engine))


def build_gateway(app: Flask):
    """The Composio gateway (the SDK is imported on its first use, so start-up never pays for it).
    Development mode talks to the one sandbox Composio named by COMPOSIO_BASE_URL (config
    refuses development without it): never a Composio of its own per process."""
    from ledger.gateway import SdkGateway
    config = app.config
    return SdkGateway(api_key=config.get("COMPOSIO_API_KEY"), base_url=config.get("COMPOSIO_BASE_URL"),
                      user_id_prefix=config["COMPOSIO_USER_ID_PREFIX"],
                      timeout=float(config["COMPOSIO_TIMEOUT_SECONDS"]), max_retries=0)


def build_relay(app: Flask, ledger, gateway):
    from ledger.services.relay import Relay
    config = app.config
    return Relay(ledger, gateway, max_attempts=int(config["RELAY_MAX_ATTEMPTS"]),
                 base_delay=float(config["RELAY_BASE_DELAY_SECONDS"]),
                 max_delay=float(config["RELAY_MAX_DELAY_SECONDS"]),
                 retry_for=float(config["RELAY_RETRY_FOR_SECONDS"]),
                 lease_seconds=float(config["RELAY_LEASE_SECONDS"]))


def build_services(app: Flask, ledger) -> None:
    """The gateway, the relay and the connection use cases, wired to each other once."""
    from ledger.services.connections import Connections
    config = app.config
    gateway = build_gateway(app)
    relay = build_relay(app, ledger, gateway)

    # What follows a commit subscribes to the ledger's event_recorded here, never as a callback
    # handed into the ledger. (The live-stream feed subscribes when web/blueprints/events.py builds it.)
    from ledger.metrics import count_recorded
    from ledger.signals import event_recorded
    event_recorded.connect(count_recorded, sender=ledger)

    if config["RELAY_IN_PROCESS"] and config["LEDGER_ENV"] == "development":
        _relay_in_process_when_serving(app, relay)
    app.extensions.update(gateway=gateway, relay=relay, connections=Connections(
        ledger, gateway, grace_seconds=int(config["DISCONNECT_GRACE_SECONDS"]),
        poll_interval=float(config["POLL_INTERVAL_SECONDS"]),
        relay=relay if config["RELAY_INLINE"] else None))  # None: the relay worker does it all
    from ledger.services.inventory import Inventory
    from ledger.services.offboarding import Offboardings
    app.extensions.update(inventory=Inventory(ledger), offboardings=Offboardings(
        ledger, grace_seconds=int(config["DISCONNECT_GRACE_SECONDS"]),
        relay=relay if config["RELAY_INLINE"] else None))
    build_lifecycle(app, ledger)


def build_lifecycle(app: Flask, ledger) -> None:
    """Reconnect in place, and the expiry warner the relay's loop runs (issue 15)."""
    from ledger.services.lifecycle import ExpiryWarner
    from ledger.services.reconnect import Reconnects
    app.extensions.update(reconnects=Reconnects(app.extensions["connections"]),
                          expiry_warner=ExpiryWarner(ledger, float(app.config["EXPIRY_WARNING_SECONDS"])))


def _relay_in_process_when_serving(app: Flask, relay) -> None:
    """Sandbox mode (`make run`): a relay thread starts with the first request, so purges
    happen without a separate worker. CLI commands never serve a request, so never start it."""
    def start() -> None:
        stop = threading.Event()
        app.extensions["dev_relay_stop"] = stop
        threading.Thread(target=relay.run_forever, args=(stop, 1.0),
                         kwargs={"expiry": app.extensions.get("expiry_warner")}, name="dev-relay", daemon=True).start()
        log.warning("development mode: outbox relay running in-process")
    on_first_request(app, start)
