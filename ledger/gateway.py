"""The Composio port and its adapter over the real composio SDK.

`import composio` costs ~2 s, so the SDK is imported on first use. Composio's account objects
carry live tokens in `state.val` (and in `data`/`params`): only the safe fields listed on
Account ever leave this module.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from . import errors
from .credential_facts import expires_at_of, scopes_of
from .users import composio_user_id, our_user_id


@dataclass(frozen=True)
class Account:
    """A connected account as the ledger may see it: no token, no secret."""
    id: str
    user_id: str | None      # our person id (prefix removed); None if it lacks our prefix
    toolkit: str
    status: str
    status_reason: str | None = None
    auth_config_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    scopes: tuple | None = None      # granted scopes, where Composio reports them
    expires_at: str | None = None    # the credential's expiry, where Composio reports it


@dataclass(frozen=True)
class Link:
    id: str
    status: str
    redirect_url: str | None


class ComposioGateway(Protocol):
    def initiate(self, user_id: str, toolkit: str, callback_url: str | None = None,
                 credentials: dict | None = None) -> Link:
        """Create a connected account for our person: INITIATED with a redirect for OAuth,
        ACTIVE when credentials are given. Raises an UpstreamError subclass."""

    def get(self, connection_id: str) -> Account:
        """The account, or UpstreamNotFound."""

    def list(self, user_id: str | None = None, cursor: str | None = None,
             limit: int = 100) -> tuple[list[Account], str | None]:
        """One page of accounts (optionally one person's) and the next cursor."""

    def enable(self, connection_id: str, *, idempotency_key: str | None = None) -> None:
        """Re-enable the account (agents regain access)."""

    def disable(self, connection_id: str, *, idempotency_key: str | None = None) -> None:
        """Disable the account (agents lose access now)."""

    def revoke(self, connection_id: str, *, idempotency_key: str | None = None) -> list[str]:
        """Revoke the grant at the provider; the kinds of tokens revoked.
        RevokeUnsupported when the toolkit cannot be revoked."""

    def delete(self, connection_id: str, *, idempotency_key: str | None = None) -> None:
        """Delete at Composio with revoke_on_delete=true; UpstreamNotFound if already gone."""

    def refresh(self, connection_id: str, redirect_url: str | None = None, *,
                idempotency_key: str | None = None) -> Link:
        """Re-authorise the same account (Composio's refresh): INITIATED with a redirect for
        OAuth. Only the id, status and redirect leave the adapter."""


class SdkGateway:
    """ComposioGateway over `composio.Composio` (its HTTP client), with our own error types."""

    def __init__(self, api_key: str | None, base_url: str | None = None, user_id_prefix: str = "",
                 timeout: float = 10.0, max_retries: int = 0):
        self._api_key, self._base_url = api_key, base_url
        self._prefix, self._timeout, self._max_retries = user_id_prefix or "", timeout, max_retries
        self._client = None
        self._lock = threading.Lock()
        self._auth_configs: dict[str, str] = {}

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    if not self._api_key:  # refused on first use, so start-up need not know
                        raise errors.NotConfigured("COMPOSIO_API_KEY is not set")
                    from composio import Composio  # heavy: only when Composio is first needed
                    sdk = Composio(api_key=self._api_key, base_url=self._base_url, allow_tracking=False,
                                   timeout=self._timeout, max_retries=self._max_retries)
                    self._client = sdk.client
        return self._client

    def warm(self) -> None:
        """Import the SDK and build the client now (a relay does this before its first claim)."""
        self.client  # noqa: B018 - the property builds it
        import composio_client  # noqa: F401 - _call's error types

    def _call(self, what: str, fn, *args, **kwargs):
        import composio_client as cc
        try:
            return fn(*args, **kwargs)
        except cc.NotFoundError:
            raise errors.UpstreamNotFound(f"Composio: {what} not found") from None
        except cc.RateLimitError:
            raise errors.UpstreamRateLimited(f"Composio rate-limited {what}") from None
        except cc.APIStatusError as exc:
            status = exc.status_code
            if status >= 500 or status in (408, 409):
                raise errors.UpstreamUnavailable(f"Composio answered {status} to {what}") from None
            raise errors.UpstreamRejected(f"Composio answered {status} to {what}", status=status) from None
        except (cc.APITimeoutError, cc.APIConnectionError):
            raise errors.UpstreamUnavailable(f"Composio did not answer {what}") from None

    @staticmethod
    def _headers(key: str | None) -> dict | None:
        return {"Idempotency-Key": key} if key else None

    def _ours(self, composio_user: str | None) -> str | None:
        return our_user_id(composio_user, self._prefix)

    def _account(self, raw) -> Account:
        toolkit = getattr(raw, "toolkit", None)
        auth_config = getattr(raw, "auth_config", None)
        reason = getattr(raw, "status_reason", None)
        scopes, expires_at = _credential_facts(raw)
        return Account(id=raw.id, user_id=self._ours(getattr(raw, "user_id", None)),
                       toolkit=(getattr(toolkit, "slug", None) or "unknown").lower(), status=raw.status,
                       status_reason=reason[:200] if isinstance(reason, str) else None,
                       auth_config_id=getattr(auth_config, "id", None),
                       created_at=getattr(raw, "created_at", None), updated_at=getattr(raw, "updated_at", None),
                       scopes=scopes, expires_at=expires_at)

    # -- the port ---------------------------------------------------------------------------
    def _auth_config_for(self, toolkit: str) -> str:
        """A Composio-managed auth config for the toolkit, created the first time it is needed."""
        if toolkit in self._auth_configs:
            return self._auth_configs[toolkit]
        api = self.client.auth_configs
        found = self._call("auth config lookup", api.list, toolkit_slug=toolkit, is_composio_managed=True)
        if found.items:
            config_id = found.items[0].id
        else:
            made = self._call("auth config creation", api.create, toolkit={"slug": toolkit},
                              auth_config={"type": "use_composio_managed_auth"})
            config_id = made.auth_config.id
        self._auth_configs[toolkit] = config_id
        return config_id

    def initiate(self, user_id, toolkit, callback_url=None, credentials=None) -> Link:
        toolkit = toolkit.lower()
        connection: dict = {"user_id": composio_user_id(user_id, self._prefix)}
        if callback_url:
            connection["callback_url"] = callback_url
        if credentials:
            connection["state"] = {"authScheme": "API_KEY", "val": {"status": "ACTIVE", **credentials}}
        cached = toolkit in self._auth_configs
        try:
            created = self._call("initiate", self.client.connected_accounts.create,
                                 auth_config={"id": self._auth_config_for(toolkit)}, connection=connection)
        except (errors.UpstreamNotFound, errors.UpstreamRejected) as exc:
            if not cached or getattr(exc, "details", {}).get("status", 404) not in (400, 404):
                raise
            # The auth config we remembered is gone (changed at Composio): look it up afresh, once.
            self._auth_configs.pop(toolkit, None)
            created = self._call("initiate", self.client.connected_accounts.create,
                                 auth_config={"id": self._auth_config_for(toolkit)}, connection=connection)
        redirect = getattr(created, "redirect_url", None) or getattr(created, "redirect_uri", None)
        return Link(id=created.id, status=created.status, redirect_url=redirect)

    def get(self, connection_id) -> Account:
        return self._account(self._call("get", self.client.connected_accounts.retrieve, connection_id))

    def list(self, user_id=None, cursor=None, limit=100):
        kwargs = {"limit": limit}
        if user_id is not None:
            kwargs["user_ids"] = [composio_user_id(user_id, self._prefix)]
        if cursor:
            kwargs["cursor"] = cursor
        page = self._call("list", self.client.connected_accounts.list, **kwargs)
        return [self._account(item) for item in page.items], page.next_cursor or None

    def _set_enabled(self, connection_id, enabled: bool, key) -> None:
        self._call("enable" if enabled else "disable", self.client.connected_accounts.update_status,
                   connection_id, enabled=enabled, extra_headers=self._headers(key))

    def enable(self, connection_id, *, idempotency_key=None) -> None:
        self._set_enabled(connection_id, True, idempotency_key)

    def disable(self, connection_id, *, idempotency_key=None) -> None:
        self._set_enabled(connection_id, False, idempotency_key)

    def revoke(self, connection_id, *, idempotency_key=None) -> list[str]:
        try:
            result = self._call("revoke", self.client.connected_accounts.revoke, connection_id,
                                extra_headers=self._headers(idempotency_key))
        except errors.UpstreamRejected as exc:
            if exc.details.get("status") == 400:
                raise errors.RevokeUnsupported("the toolkit does not support revoke") from None
            raise
        kinds = getattr(result, "revoked_tokens", None) or []
        return sorted(getattr(k, "value", k) for k in kinds)

    def delete(self, connection_id, *, idempotency_key=None) -> None:
        self._call("delete", self.client.connected_accounts.delete, connection_id, revoke_on_delete=True,
                   extra_headers=self._headers(idempotency_key))

    def refresh(self, connection_id, redirect_url=None, *, idempotency_key=None) -> Link:
        kwargs = {"body_redirect_url": redirect_url} if redirect_url else {}
        result = self._call("refresh", self.client.connected_accounts.refresh, connection_id,
                            extra_headers=self._headers(idempotency_key), **kwargs)
        # The answer is built from three named fields: whatever else Composio sends (a token in
        # an extra field of the model) is never read.
        return Link(id=result.id, status=result.status, redirect_url=getattr(result, "redirect_url", None))


def _as_dict(value) -> dict:
    if isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    return dump(by_alias=False) if callable(dump) else {}


def _credential_facts(raw) -> tuple[tuple | None, str | None]:
    """Scopes and expiry from the account's `state.val` and `data` (where Composio reports them);
    the dicts are read for two names and dropped here, tokens and all."""
    val = _as_dict(getattr(getattr(raw, "state", None), "val", None))
    data = _as_dict(getattr(raw, "data", None))
    top = {"scopes": getattr(raw, "scopes", None), "expires_at": getattr(raw, "expires_at", None)}
    return scopes_of(val, data, top), expires_at_of(val, data, top)
