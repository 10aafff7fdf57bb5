"""Builds the Composio gateway, the connection service and the relay for one app."""
from __future__ import annotations

import logging
import threading

from flask import Flask

from .requests import on_first_request

log = logging.getLogger("web")


def _gateway(app: Flask):
    """The Composio gateway (the SDK is imported on first use, so start-up never pays for it).
    Development mode talks to the one sandbox Composio named by COMPOSIO_BASE_URL (config
    refuses development without it): never a Composio of its own per process."""
    from ledger.gateway import SdkGateway
    cfg = app.config
    return SdkGateway(api_key=cfg.get("COMPOSIO_API_KEY"), base_url=cfg.get("COMPOSIO_BASE_URL"),
                      user_id_prefix=cfg["COMPOSIO_USER_ID_PREFIX"],
                      timeout=float(cfg["COMPOSIO_TIMEOUT_SECONDS"]), max_retries=0)


def wire_services(app: Flask) -> None:
    from ledger.services.connections import Connections
    from ledger.services.relay import Relay
    ledger = app.extensions["ledger"]
    gateway = _gateway(app)
    relay = Relay(ledger, gateway, max_attempts=int(app.config["RELAY_MAX_ATTEMPTS"]),
                  base_delay=float(app.config["RELAY_BASE_DELAY_SECONDS"]),
                  max_delay=float(app.config["RELAY_MAX_DELAY_SECONDS"]),
                  retry_for=float(app.config["RELAY_RETRY_FOR_SECONDS"]),
                  lease_seconds=float(app.config["RELAY_LEASE_SECONDS"]))

    # What follows a commit subscribes to the ledger's event_recorded here, never as a callback
    # handed into the ledger. (The live-stream feed subscribes when web/events.py builds it.)
    from ledger.metrics import count_recorded
    from ledger.signals import event_recorded
    event_recorded.connect(count_recorded, sender=ledger)

    if app.config["RELAY_IN_PROCESS"] and app.config["LEDGER_ENV"] == "development":
        _relay_in_process_when_serving(app, relay)
    app.extensions.update(gateway=gateway, relay=relay, connections=Connections(
        ledger, gateway, grace_seconds=int(app.config["DISCONNECT_GRACE_SECONDS"]),
        poll_interval=float(app.config["POLL_INTERVAL_SECONDS"]),
        relay=relay if app.config["RELAY_INLINE"] else None))  # None: the relay worker does it all


def _relay_in_process_when_serving(app: Flask, relay) -> None:
    """Sandbox mode (`make run`): a relay thread starts with the first request, so purges
    happen without a separate worker. CLI commands never serve a request, so never start it."""
    def start() -> None:
        stop = threading.Event()
        app.extensions["dev_relay_stop"] = stop
        threading.Thread(target=relay.run_forever, args=(stop, 1.0), name="dev-relay", daemon=True).start()
        log.warning("development mode: outbox relay running in-process")
    on_first_request(app, start)
