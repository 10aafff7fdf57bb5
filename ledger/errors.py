"""Domain and storage errors. No HTTP codes here: web/errors.py maps them."""
from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""
    code = "LEDGER_ERROR"

    def __init__(self, message: str = "", **details):
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        self.details = details


class NotFound(LedgerError):
    """No such connection (or not yours: the two answer alike)."""
    code = "NOT_FOUND"


class ConcurrencyError(LedgerError):
    """The stream moved on since it was read (stale expected_version)."""
    code = "CONCURRENCY_CONFLICT"


class AgentsBound(LedgerError):
    """Agents still use this connection; confirm with force to disconnect anyway."""
    code = "AGENTS_USING_CONNECTION"


class GracePeriodExpired(LedgerError):
    """The undo window has closed."""
    code = "GRACE_PERIOD_EXPIRED"


class InvalidState(LedgerError):
    """The connection's status does not allow this."""
    code = "INVALID_STATE"


class AlreadyTerminal(InvalidState):
    """The connection is disconnected for good."""
    code = "ALREADY_DISCONNECTED"


class NotReconnectable(InvalidState):
    """Only a broken connection (EXPIRED, FAILED, INACTIVE) can be re-authorised in place."""
    code = "NOT_RECONNECTABLE"


class NotBound(LedgerError):
    """That agent is not bound to that connection."""
    code = "NOT_FOUND"


class InvalidInput(LedgerError):
    """A value the ledger cannot store (too long, or bytes the database refuses)."""
    code = "INVALID_INPUT"


class NotConfigured(LedgerError):
    """A setting this needs is missing (e.g. COMPOSIO_API_KEY outside the sandbox server)."""
    code = "NOT_CONFIGURED"


class StorageError(LedgerError):
    """The database could not be reached or refused the write."""
    code = "STORAGE_ERROR"


# --- Composio, as seen through the gateway ---------------------------------------------

class UpstreamError(LedgerError):
    """Composio could not do what was asked."""
    code = "UPSTREAM_ERROR"


class UpstreamNotFound(UpstreamError):
    """Composio has no such account."""
    code = "UPSTREAM_NOT_FOUND"


class UpstreamRateLimited(UpstreamError):
    """Composio asked us to slow down."""
    code = "UPSTREAM_RATE_LIMITED"


class UpstreamUnavailable(UpstreamError):
    """Composio did not answer in time or failed (5xx, timeout, connection refused)."""
    code = "UPSTREAM_UNAVAILABLE"


class UpstreamRejected(UpstreamError):
    """Composio refused the request as invalid (4xx other than 404/429)."""
    code = "UPSTREAM_REJECTED"


class RevokeUnsupported(UpstreamRejected):
    """The toolkit does not support revoking the provider's grant."""
    code = "REVOKE_UNSUPPORTED"


class IdempotencyKeyReused(LedgerError):
    """This Idempotency-Key was already used for a different request."""
    code = "IDEMPOTENCY_KEY_REUSED"


class IdempotencyKeyInUse(LedgerError):
    """A request with this Idempotency-Key is still being processed; retry shortly."""
    code = "IDEMPOTENCY_KEY_IN_USE"
