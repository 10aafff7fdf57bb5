"""Use cases of a tenant's outgoing webhook endpoints: register (the secret shown once), list,
delete, redeliver. Registration and removal are recorded in the chain, without the secret (and
without the URL's query string, where receivers often put a token of their own)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from .. import errors, webhook_guard, webhook_out
from ..envelope import NewEvent
from ..service import make_meta
from ..storage import webhook_store
from .webhook_delivery import endpoint_stream

REGISTERED = "webhook.endpoint_registered"
REMOVED = "webhook.endpoint_removed"
REDELIVERY_REQUESTED = "webhook.redelivery_requested"
MAX_DESCRIPTION = 500


@dataclass(frozen=True)
class Endpoint:
    """A tenant's outgoing webhook endpoint; `event_types` empty: every type."""
    id: str
    url: str
    description: str
    event_types: tuple[str, ...]
    created_at: str


@dataclass(frozen=True)
class ListedEndpoint(Endpoint):
    """An endpoint as listed: never its secret; `deliveries` counts its deliveries by status."""
    deliveries: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredEndpoint(Endpoint):
    """A registration's result: the only place the signing secret ever appears."""
    secret: str


@dataclass(frozen=True)
class Delivery:
    """One delivery owed to an endpoint; `webhook_id` is the webhook-id header, the same on every retry."""
    id: str
    webhook_id: str
    connection_id: str | None
    type: str
    status: str
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    delivered_at: str | None


def _shown_url(url: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, p.path, "", ""))


def register(ledger, caller, *, url: str, description: str = "", event_types=None, allow_private: bool,
             resolver=webhook_guard.resolve, trace_id: str | None = None) -> RegisteredEndpoint:
    """A new endpoint for the caller's tenant; the answer carries the secret, the only time it is shown."""
    try:
        webhook_guard.check(url, allow_private=allow_private, resolver=resolver)
    except webhook_guard.Unresolved:
        pass  # a name not (yet) in DNS: every delivery resolves and checks it again before calling
    except webhook_guard.Refused as exc:
        raise errors.InvalidInput(str(exc)) from exc
    if len(description or "") > MAX_DESCRIPTION:
        raise errors.InvalidInput(f"description must be at most {MAX_DESCRIPTION} characters")
    known = set(webhook_out.event_types())
    types = sorted(set(event_types or ()))
    unknown = [t for t in types if t not in known]
    if unknown:
        raise errors.InvalidInput("unknown event types: " + ", ".join(unknown)
                                  + "; known: " + ", ".join(sorted(known)))
    endpoint_id = "we_" + secrets.token_hex(10)
    secret = webhook_out.new_secret()
    with ledger.transaction(lock_head=False) as txn:
        webhook_store.insert_endpoint(txn.conn, id=endpoint_id, tenant=caller.tenant, url=url,
                                      description=description or "",
                                      event_types=("," + ",".join(types) + ",") if types else "",
                                      secret=secret, created_at=txn.now, created_by=f"{caller.kind}:{caller.id}")
        txn.append(endpoint_stream(endpoint_id), [NewEvent(REGISTERED, {
            "endpoint_id": endpoint_id, "url": _shown_url(url), "event_types": types})],
            meta=make_meta(caller.actor, caller.tenant, trace_id))
        created = txn.now
    return RegisteredEndpoint(endpoint_id, url, description or "", tuple(types), created, secret)


def _listed(row: dict) -> ListedEndpoint:
    types = tuple(t for t in (row["event_types"] or "").split(",") if t)
    return ListedEndpoint(row["id"], row["url"], row["description"], types, row["created_at"],
                          deliveries=row.get("counts", {}))


def list_for(ledger, caller) -> list[ListedEndpoint]:
    with ledger.store.read() as conn:
        return [_listed(r) for r in webhook_store.list_endpoints(conn, caller.tenant)]


def remove(ledger, caller, endpoint_id: str, trace_id: str | None = None) -> None:
    """Delete a live endpoint of the caller's tenant; another tenant's answers as missing."""
    with ledger.transaction(lock_head=False) as txn:
        row = webhook_store.live_endpoint(txn.conn, caller.tenant, endpoint_id)
        if row is None:
            raise errors.NotFound("No such webhook endpoint.")
        cancelled = webhook_store.delete_endpoint(txn.conn, endpoint_id, txn.now)
        txn.append(endpoint_stream(endpoint_id), [NewEvent(REMOVED, {
            "endpoint_id": endpoint_id, "pending_cancelled": cancelled})],
            meta=make_meta(caller.actor, caller.tenant, trace_id))


def redeliver(ledger, caller, endpoint_id: str, *, delivery_ids=None, trace_id: str | None = None) -> int:
    """Queue the endpoint's dead deliveries (or the named ones, whatever their state) again, with
    their original webhook-ids; returns how many."""
    with ledger.transaction(lock_head=False) as txn:
        if webhook_store.live_endpoint(txn.conn, caller.tenant, endpoint_id) is None:
            raise errors.NotFound("No such webhook endpoint.")
        if delivery_ids is None:
            n = webhook_store.requeue(txn.conn, txn.now, endpoint_id=endpoint_id)
        else:
            ids = []
            for d in delivery_ids:
                try:
                    ids.append(int(str(d).removeprefix("whd_")))
                except ValueError:
                    raise errors.InvalidInput(f"not a delivery id: {d}") from None
            n = webhook_store.requeue(txn.conn, txn.now, endpoint_id=endpoint_id, delivery_ids=ids,
                                      statuses=("dead", "done", "pending"))
        txn.append(endpoint_stream(endpoint_id), [NewEvent(REDELIVERY_REQUESTED, {
            "endpoint_id": endpoint_id, "requeued": n})], meta=make_meta(caller.actor, caller.tenant, trace_id))
    return n


def deliveries(ledger, caller, endpoint_id: str, statuses) -> list[Delivery]:
    with ledger.store.read() as conn:
        if webhook_store.live_endpoint(conn, caller.tenant, endpoint_id) is None:
            raise errors.NotFound("No such webhook endpoint.")
        rows = webhook_store.list_deliveries(conn, statuses=statuses, endpoint_id=endpoint_id)
    return [Delivery(f"whd_{r['id']}", webhook_out.message_id(r["endpoint_id"], r["stream"], r["version"]),
                     r["connection_id"], r["event_type"], r["status"], r["attempts"],
                     r["not_before"] if r["status"] == "pending" else None, r["last_error"], r["delivered_at"])
            for r in rows]
