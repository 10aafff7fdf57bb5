"""Settings: defaults, then the environment (DESIGN.md's names), then the caller's overrides.
Unsafe values are refused here, before the app serves anything."""
from __future__ import annotations

import os
from pathlib import Path


class ConfigError(RuntimeError):
    """The configuration would make the service unsafe or unusable."""


DEV_COMPOSIO_API_KEY = "dev-sandbox-key"
SANDBOX_HINT = "the sandbox: `make run`, or LEDGER_ENV=development with COMPOSIO_BASE_URL naming a sandbox Composio"


DEFAULTS = {
    "DATABASE_URL": None,                 # None -> SQLite under the instance folder
    "LEDGER_ENV": "production",           # production unless the sandbox is asked for (`make run`)
    "COMPOSIO_API_KEY": None,
    "COMPOSIO_BASE_URL": None,
    "COMPOSIO_USER_ID_PREFIX": "",
    "COMPOSIO_TIMEOUT_SECONDS": 10.0,
    "COMPOSIO_WEBHOOK_SECRET": "",
    "WEBHOOK_TOLERANCE_SECONDS": 300,
    "CLERK_JWKS_URL": None,
    "CLERK_JWT_KEY": None,
    "CLERK_ISSUER": None,
    "CLERK_AUTHORIZED_PARTIES": "",
    "CLERK_LEEWAY_SECONDS": 5,
    "DISCONNECT_GRACE_SECONDS": 604800,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_DEFAULT": "300 per minute",
    "LEDGER_SIGNING_KEY": None,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "API_KEY_CACHE_SECONDS": 5.0,         # a revoked key stops working within this many seconds
    "AUTO_MIGRATE": True,
    "RELAY_INLINE": True,                 # run due outbox actions right after the request commits
    "RELAY_IN_PROCESS": False,            # a relay thread inside the web process (the sandbox: `make run`)
    "RELAY_MAX_ATTEMPTS": 0,              # 0: no cap on attempts; RELAY_RETRY_FOR_SECONDS decides
    "RELAY_BASE_DELAY_SECONDS": 2.0,      # backoff doubles from this, with jitter...
    "RELAY_MAX_DELAY_SECONDS": 300.0,     # ...up to this between attempts
    "RELAY_RETRY_FOR_SECONDS": 21600.0,   # a failing action is dead-lettered this long after it fell due
    "RELAY_LEASE_SECONDS": 120.0,         # a claimed action is retried by another relay after this
    "POLL_INTERVAL_SECONDS": 3.0,         # at most one Composio status call per connection per interval
    "SSE_HEARTBEAT_SECONDS": 15.0,        # a comment line on every live stream this often (issue 14)
    "FEED_CHECK_SECONDS": 1.0,            # SQLite: how often a process checks for other processes' writes
    "EXPIRY_WARNING_SECONDS": 86400.0,    # announce connection.expiring this long before a credential expires
    # Outgoing lifecycle webhooks (docs/webhooks-out.md)
    "OUTGOING_WEBHOOKS_ALLOW_PRIVATE": False,       # true only for development/tests: loopback/private URLs allowed
    "OUTGOING_WEBHOOKS_TIMEOUT_SECONDS": 5.0,       # one delivery attempt, connect to last byte
    "OUTGOING_WEBHOOKS_BASE_DELAY_SECONDS": 5.0,    # backoff doubles from this, with jitter...
    "OUTGOING_WEBHOOKS_MAX_DELAY_SECONDS": 600.0,   # ...up to this between attempts
    "OUTGOING_WEBHOOKS_RETRY_FOR_SECONDS": 259200.0,  # then dead-lettered (redeliver to try again)
    "OUTGOING_WEBHOOKS_MAX_ATTEMPTS": 0,            # 0: no cap on attempts; the retry window decides
    "OUTGOING_WEBHOOKS_LEASE_SECONDS": 60.0,        # a delivery claimed by a relay that died is retried after this
}

_INTS = {"WEBHOOK_TOLERANCE_SECONDS", "DISCONNECT_GRACE_SECONDS", "MAX_CONTENT_LENGTH",
         "CLERK_LEEWAY_SECONDS", "RELAY_MAX_ATTEMPTS", "OUTGOING_WEBHOOKS_MAX_ATTEMPTS"}
_FLOATS = {"API_KEY_CACHE_SECONDS", "COMPOSIO_TIMEOUT_SECONDS", "RELAY_BASE_DELAY_SECONDS", "POLL_INTERVAL_SECONDS", "RELAY_LEASE_SECONDS",
           "RELAY_MAX_DELAY_SECONDS", "RELAY_RETRY_FOR_SECONDS", "SSE_HEARTBEAT_SECONDS", "FEED_CHECK_SECONDS",
           "EXPIRY_WARNING_SECONDS",
           "OUTGOING_WEBHOOKS_TIMEOUT_SECONDS", "OUTGOING_WEBHOOKS_BASE_DELAY_SECONDS", "OUTGOING_WEBHOOKS_MAX_DELAY_SECONDS",
           "OUTGOING_WEBHOOKS_RETRY_FOR_SECONDS", "OUTGOING_WEBHOOKS_LEASE_SECONDS"}
_BOOLS = {"AUTO_MIGRATE", "RELAY_INLINE", "RELAY_IN_PROCESS", "OUTGOING_WEBHOOKS_ALLOW_PRIVATE"}


def _parse(name: str, raw):
    if raw is None or not isinstance(raw, str):
        return raw
    try:
        if name in _INTS:
            return int(raw)
        if name in _FLOATS:
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if name in _BOOLS:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return raw


def load(instance_path: str, overrides: dict | None = None, environ=os.environ) -> dict:
    """The effective settings, checked."""
    settings = dict(DEFAULTS)
    for name in DEFAULTS:
        if name in environ:
            settings[name] = _parse(name, environ[name])
    for name, value in (overrides or {}).items():
        settings[name] = _parse(name, value) if name in DEFAULTS else value
    if settings["LEDGER_ENV"] == "development" and not settings["COMPOSIO_API_KEY"]:
        settings["COMPOSIO_API_KEY"] = DEV_COMPOSIO_API_KEY  # the sandbox Composio takes any key
    if not settings["DATABASE_URL"]:
        Path(instance_path).mkdir(parents=True, exist_ok=True)
        settings["DATABASE_URL"] = f"sqlite:///{Path(instance_path) / 'ledger.db'}"
    check(settings)
    return settings


def secrets_list(value: str | None) -> list[str]:
    return [s.strip() for s in (value or "").split(",") if s.strip()]


def check(s: dict) -> None:
    """Refuse values that would silently weaken the service."""
    if int(s["WEBHOOK_TOLERANCE_SECONDS"]) <= 0:
        raise ConfigError("WEBHOOK_TOLERANCE_SECONDS must be > 0 (0 would switch the timestamp check off)")
    if int(s["DISCONNECT_GRACE_SECONDS"]) < 0:
        raise ConfigError("DISCONNECT_GRACE_SECONDS must be >= 0")
    if float(s["EXPIRY_WARNING_SECONDS"]) < 0:
        raise ConfigError("EXPIRY_WARNING_SECONDS must be >= 0 (0: never warn ahead)")
    if int(s["MAX_CONTENT_LENGTH"]) <= 0:
        raise ConfigError("MAX_CONTENT_LENGTH must be > 0")
    if float(s["OUTGOING_WEBHOOKS_TIMEOUT_SECONDS"]) <= 0:
        raise ConfigError("OUTGOING_WEBHOOKS_TIMEOUT_SECONDS must be > 0")
    if float(s["OUTGOING_WEBHOOKS_LEASE_SECONDS"]) <= float(s["OUTGOING_WEBHOOKS_TIMEOUT_SECONDS"]):
        # a lease that ran out while its attempt was still waiting would let a second relay send it too
        raise ConfigError("OUTGOING_WEBHOOKS_LEASE_SECONDS must be longer than OUTGOING_WEBHOOKS_TIMEOUT_SECONDS")
    if s["LEDGER_ENV"] not in ("development", "production"):
        raise ConfigError("LEDGER_ENV must be development or production")
    if s["LEDGER_ENV"] == "development" and not s.get("COMPOSIO_BASE_URL"):
        # One sandbox Composio shared by every process, never one per process: a purge sent to
        # a Composio that never saw the account would be recorded as a false "already gone".
        raise ConfigError("development mode needs COMPOSIO_BASE_URL: the one sandbox Composio every process "
                          "shares (`make run` starts it; or python -m web.dev.composio_server --port 5001)")
    if s["LEDGER_ENV"] == "production":
        missing = [n for n in ("COMPOSIO_API_KEY", "CLERK_ISSUER", "COMPOSIO_WEBHOOK_SECRET") if not s.get(n)]
        if not (s.get("CLERK_JWKS_URL") or s.get("CLERK_JWT_KEY")):
            missing.append("CLERK_JWKS_URL or CLERK_JWT_KEY")
        if missing:
            raise ConfigError("production mode (the default) needs " + ", ".join(missing) + "; for " + SANDBOX_HINT)
