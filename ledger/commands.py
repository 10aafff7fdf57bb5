"""Commands: what a caller asks the ledger to do (imperative names)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .envelope import Actor


@dataclass(frozen=True)
class Caller:
    """Who asks. A person acts on their own connections; an admin service key on its tenant's."""
    kind: str          # user | service | composio | system
    id: str
    tenant: str
    admin: bool = False

    @property
    def actor(self) -> Actor:
        return Actor(self.kind, self.id)


@dataclass(frozen=True)
class StartConnection:
    toolkit: str
    callback_url: str | None = None
    credentials: dict | None = field(default=None, repr=False)  # goes to Composio, nowhere else


@dataclass(frozen=True)
class RequestDisconnect:
    connection_id: str
    force: bool = False
    immediate: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class RestoreConnection:
    connection_id: str


@dataclass(frozen=True)
class ReconnectConnection:
    connection_id: str
    callback_url: str | None = None


@dataclass(frozen=True)
class BindAgent:
    agent_id: str
    connection_id: str


@dataclass(frozen=True)
class UnbindAgent:
    agent_id: str
    connection_id: str
