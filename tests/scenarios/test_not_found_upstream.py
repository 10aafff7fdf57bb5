"""A Composio that has never seen an account answers 404: the ledger records "not found at
Composio", never a revoke or a delete that did not happen."""
import pytest

from ledger import envelope as ev
from tests.web.conftest import events_of


def _connected(client, auth, user="alice"):
    resp = client.post("/api/connections", json={"toolkit": "github", "credentials": {"api_key": "k"}},
                       headers=auth.user(user))
    assert resp.status_code == 201
    return resp.json["connectionId"]


def test_a_purge_of_an_account_composio_never_saw_is_recorded_as_not_found_not_revoked(client, auth, app, composio):
    cid = _connected(client, auth)
    composio.forget(cid)  # e.g. a purge sent to another Composio than the one that made it
    h = auth.user("alice")
    assert client.delete(f"/api/connections/{cid}?immediate=true", headers=h).status_code == 204
    app.extensions["relay"].run_once()
    types = [e.type for e in app.extensions["ledger"].read_stream(f"connection:{cid}")]
    assert ev.UPSTREAM_REVOKED not in types and ev.UPSTREAM_DELETED not in types
    assert types[-2:] == [ev.UPSTREAM_NOT_FOUND, ev.DISCONNECT_COMPLETED]
    found = events_of(app, ev.UPSTREAM_NOT_FOUND)[0].data
    assert found["action"] == "revoke" and found["outcome"] == "not_found_upstream" and "revoked" not in found
    assert events_of(app, ev.DISCONNECT_COMPLETED)[0].data["outcome"] == "not_found_upstream"
    shown = client.get(f"/api/connections/{cid}", headers=h).json
    assert shown["status"] == "DISCONNECTED"
    assert "not found at Composio" in shown["statusReason"] and "purged" not in shown["statusReason"]
    assert composio.calls("DELETE") == [], "a 404 is not retried as a delete that cannot happen either"


def test_a_disable_answered_404_is_recorded_once_as_not_found_and_not_retried(client, auth, app, composio):
    cid = _connected(client, auth)
    composio.forget(cid)
    client.delete(f"/api/connections/{cid}", headers=auth.user("alice"))
    for _ in range(3):
        app.extensions["relay"].run_once()
    assert len(composio.calls("PATCH", f"/connected_accounts/{cid}/status")) == 1
    assert [e.data["action"] for e in events_of(app, ev.UPSTREAM_NOT_FOUND)] == ["disable"]
    assert events_of(app, ev.UPSTREAM_DISABLED) == [] and events_of(app, ev.PROVIDER_ACTION_FAILED) == []
