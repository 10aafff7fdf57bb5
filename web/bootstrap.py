"""The one composition root: settings on app.config, then the engine, the ledger, the Composio
gateway, the relays (Composio actions, outgoing webhooks), the use cases, the live feed and every
subscription to `ledger.signals.event_recorded`, each built once per app and kept in
`app.extensions`; and which relays a process starts. `create_app` (web/__init__.py) calls
`bootstrap(app, overrides)` and then adds the HTTP side (hooks, blueprints, CLI), which only
reads what is built here. Nothing here is built at import time."""
from __future__ import annotations

import logging
import threading

from flask import Flask

from . import config as cfg
from .json_provider import OrjsonProvider
from .logging_setup import configure_logging
from .request_context import on_first_request

log = logging.getLogger("web")


def bootstrap(app: Flask, overrides: dict | None = None) -> None:
    """Settings, storage, ledger, gateway, relays, use cases, live feed and subscriptions for `app`."""
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


def build_webhook_relay(app: Flask, ledger):
    """The outgoing lifecycle webhooks' relay (ledger/services/webhook_delivery.py)."""
    from ledger.services.webhook_delivery import WebhookRelay
    config = app.config
    return WebhookRelay(ledger, allow_private=bool(config["OUTGOING_WEBHOOKS_ALLOW_PRIVATE"]),
                        timeout=float(config["OUTGOING_WEBHOOKS_TIMEOUT_SECONDS"]),
                        base_delay=float(config["OUTGOING_WEBHOOKS_BASE_DELAY_SECONDS"]),
                        max_delay=float(config["OUTGOING_WEBHOOKS_MAX_DELAY_SECONDS"]),
                        retry_for=float(config["OUTGOING_WEBHOOKS_RETRY_FOR_SECONDS"]),
                        max_attempts=int(config["OUTGOING_WEBHOOKS_MAX_ATTEMPTS"]),
                        lease_seconds=float(config["OUTGOING_WEBHOOKS_LEASE_SECONDS"]))


def build_services(app: Flask, ledger) -> None:
    """The gateway, the relays, the connection use cases and the live feed, wired once; then
    what follows a commit."""
    from ledger.services.connections import Connections

    from .live import Live
    config = app.config
    gateway = build_gateway(app)
    relay = build_relay(app, ledger, gateway)
    webhook_relay = build_webhook_relay(app, ledger)
    live = Live(app, ledger.store)
    app.extensions.update(gateway=gateway, relay=relay, webhook_relay=webhook_relay, live=live,
                          connections=Connections(
                              ledger, gateway, grace_seconds=int(config["DISCONNECT_GRACE_SECONDS"]),
                              poll_interval=float(config["POLL_INTERVAL_SECONDS"]),
                              relay=relay if config["RELAY_INLINE"] else None))  # None: the worker does it all
    from ledger.services.inventory import Inventory
    from ledger.services.lifecycle import ExpiryWarner
    from ledger.services.offboarding import Offboardings
    from ledger.services.reconnect import Reconnects
    app.extensions.update(
        inventory=Inventory(ledger),
        offboardings=Offboardings(ledger, grace_seconds=int(config["DISCONNECT_GRACE_SECONDS"]),
                                  relay=relay if config["RELAY_INLINE"] else None),
        reconnects=Reconnects(app.extensions["connections"]),
        expiry_warner=ExpiryWarner(ledger, float(config["EXPIRY_WARNING_SECONDS"])))  # run by the relay's loop
    subscribe(ledger, webhook_relay, live)
    if config["RELAY_IN_PROCESS"] and config["LEDGER_ENV"] == "development":
        _relays_in_process_when_serving(app)


def subscribe(ledger, webhook_relay, live) -> None:
    """Every receiver of `event_recorded` (sent once per sealed envelope, after commit): here,
    never a callback handed into the ledger. Each is best-effort; what must happen is in an outbox.
    Weak references (blinker's default): each receiver lives as long as the app that holds it."""
    from ledger.metrics import count_recorded
    from ledger.signals import event_recorded
    event_recorded.connect(count_recorded, sender=ledger)          # /metrics' ledger.events_recorded
    event_recorded.connect(webhook_relay.on_recorded)              # wake the webhook relay (any process' ledger)
    if live.feed.wakes_on_signal:                                  # SQLite: the streams' feed looks now
        event_recorded.connect(live.feed.on_recorded, sender=ledger)


def start_relays(app: Flask, stop: threading.Event, *, webhooks: bool = True, news_check: float = 0.05) -> None:
    """The relays a worker process runs on threads beside its own loop, until `stop`: today the
    outgoing webhooks' (`ledger relay` runs the Composio relay itself, in its main thread)."""
    if webhooks:
        threading.Thread(target=app.extensions["webhook_relay"].run_forever, args=(stop,),
                         name="webhook-relay", daemon=True).start()
        _wake_webhooks_on_news(app, stop, news_check)


def _wake_webhooks_on_news(app: Flask, stop: threading.Event, check_seconds: float) -> None:
    """Deliver a webhook as soon as its event is in the chain, not at the webhook relay's next
    idle pass: the events are written by the web processes, so a relay process hears of them
    through a feed of its own (PostgreSQL: LISTEN for the sequencer's NOTIFY; SQLite: a read
    for new seqs every `check_seconds`)."""
    from ledger.feed import Feed
    from ledger.services.webhook_delivery import wake_on_news
    store, relay = app.extensions["ledger"].store, app.extensions["webhook_relay"]
    # on PostgreSQL check_seconds is only how often the LISTEN loop looks up from its wait
    feed = Feed(store, check_seconds=check_seconds if store.engine.dialect.name == "sqlite" else 1.0)

    def run() -> None:
        while not stop.is_set():
            try:
                wake_on_news(relay, feed, stop)
            except Exception as exc:  # the database is away: the idle passes go on meanwhile
                log.warning("webhook relay wake-up: %s; retrying", type(exc).__name__)
                stop.wait(1.0)
        feed.close()
    threading.Thread(target=run, name="webhook-relay-wake", daemon=True).start()


def _relays_in_process_when_serving(app: Flask) -> None:
    """Sandbox mode (`make run`): both relays start on threads with the first request, so purges
    and webhook deliveries happen without a separate worker. CLI commands never serve a request,
    so never start them."""
    def start() -> None:
        stop = threading.Event()
        app.extensions["dev_relay_stop"] = stop
        threading.Thread(target=app.extensions["relay"].run_forever, args=(stop, 1.0), name="dev-relay",
                         kwargs={"expiry": app.extensions.get("expiry_warner")}, daemon=True).start()
        threading.Thread(target=app.extensions["webhook_relay"].run_forever, args=(stop,),
                         name="dev-webhook-relay", daemon=True).start()
        log.warning("development mode: outbox relay and webhook relay running in-process")
    on_first_request(app, start)
