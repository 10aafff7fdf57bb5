"""A tenant's inventory for its admins, and cursor pages for connection listings: a stable order,
a total, nothing missing or repeated while connections are added between pages; and one
tenant's admin key never lists, offboards or reads another tenant's."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from freezegun import freeze_time

from ledger import envelope as ev
from ledger.clock import iso
from tests.support import webhooks as wh
from tests.support.app import WEBHOOK_SECRET, assert_envelope, events_of


def _connect(client, auth, user, org, toolkit="github") -> str:
    resp = client.post("/api/connections", json={"toolkit": toolkit, "credentials": {"api_key": "k"}},
                       headers=auth.user(user, org_id=org))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json["connectionId"]


def _all_pages(client, path, headers, added=None) -> tuple[list[str], list[dict]]:
    seen, pages, cursor = [], [], None
    while True:
        resp = client.get(path, headers=headers, query_string={"limit": 100, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        pages.append(resp.json)
        seen += [c["connectionId"] for c in resp.json["data"]]
        cursor = resp.json["nextCursor"]
        if cursor is None:
            return seen, pages
        if added is not None:
            added()


def test_250_connections_page_by_page_with_new_ones_added_between_pages(app, client, auth, composio):
    original = [_connect(client, auth, f"user{i % 7}", "acme") for i in range(250)]
    admin = auth.service("acme", "connections:admin", name="inventory")
    newcomers = []
    seen, pages = _all_pages(client, "/api/admin/connections", admin,
                             added=lambda: newcomers.extend(_connect(client, auth, "late", "acme") for _ in range(3)))
    assert len(seen) == len(set(seen)), "nothing repeated"
    assert set(original) <= set(seen), "nothing missing"
    assert set(seen) - set(original) <= set(newcomers) and len(newcomers) == 6
    assert [len(p["data"]) for p in pages[:2]] == [100, 100] and pages[0]["total"] == 250
    assert pages[0]["count"] == 100 and pages[-1]["nextCursor"] is None
    assert seen[:250] == original, "a stable order: oldest first"


def test_a_persons_own_list_pages_too_and_keeps_its_shape(client, auth, composio):
    mine = [_connect(client, auth, "alice", "acme") for _ in range(5)]
    _connect(client, auth, "bob", "acme")
    h = auth.user("alice", org_id="acme")
    first = client.get("/api/connections?limit=2", headers=h).json
    assert [c["connectionId"] for c in first["data"]] == mine[:2]
    assert first["count"] == 2 and first["total"] == 5 and first["nextCursor"]
    rest = []
    cursor = first["nextCursor"]
    while cursor:
        page = client.get("/api/connections", headers=h, query_string={"limit": 2, "cursor": cursor}).json
        rest += [c["connectionId"] for c in page["data"]]
        cursor = page["nextCursor"]
    assert mine[:2] + rest == mine
    unpaged = client.get("/api/connections", headers=h).json
    assert unpaged["count"] == 5 and unpaged["nextCursor"] is None and unpaged["data"][0]["agents"] == []


def test_filters_by_user_toolkit_status_and_days_unused(app, client, auth, composio):
    start = datetime.now(timezone.utc)
    with freeze_time(start - timedelta(days=40)):
        idle = _connect(client, auth, "alice", "acme")
        busy = _connect(client, auth, "alice", "acme", "slack")
    fresh = _connect(client, auth, "bob", "acme")
    body, headers = wh.delivery(WEBHOOK_SECRET, wh.trigger_message(busy, "alice", when=iso(start - timedelta(days=1))))
    assert client.post("/webhooks/composio", data=body, headers=headers).status_code == 200
    assert client.delete(f"/api/connections/{fresh}", headers=auth.user("bob", org_id="acme")).status_code == 204
    admin = auth.service("acme", "connections:admin", name="inventory")

    def ids(**query):
        resp = client.get("/api/admin/connections", headers=admin, query_string=query)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.json["total"] == resp.json["count"]
        return sorted(c["connectionId"] for c in resp.json["data"])
    assert ids(user="alice") == sorted([idle, busy])
    assert ids(toolkit="slack") == [busy]
    assert ids(status="disconnecting") == [fresh]
    assert ids(unused_days=30) == [idle], "used yesterday, or created today: not idle for 30 days"
    assert ids(unused_days=0) == sorted([idle, busy, fresh])
    assert ids(user="alice", status="ACTIVE", unused_days=2) == [idle]


def test_a_bad_cursor_or_limit_is_a_422_envelope(client, auth, composio):
    admin = auth.service("acme", "connections:admin", name="inventory")
    for query in ({"cursor": "not-a-cursor"}, {"cursor": "W10"}, {"limit": 0}, {"limit": 501}, {"limit": "ten"},
                  {"unused_days": -1}):
        for path, headers in (("/api/admin/connections", admin), ("/api/connections", auth.user("alice"))):
            if "unused_days" in query and path == "/api/connections":
                continue  # the inventory's filter; a person's list ignores unknown parameters
            err = assert_envelope(client.get(path, headers=headers, query_string=query), 422, "VALIDATION_ERROR")
            assert err["details"][0]["loc"] == ["query", next(iter(query))]


def test_one_tenants_admin_key_cannot_list_offboard_or_read_another_tenants(make_app, auth, composio):
    from ledger.signing import generate_private_key_pem
    app = make_app(LEDGER_SIGNING_KEY=generate_private_key_pem())
    client = app.test_client()
    theirs = _connect(client, auth, "alice", "tenant-a")
    mine = _connect(client, auth, "carol", "tenant-b")
    admin_a = auth.service("tenant-a", "connections:admin", name="a")
    admin_b = auth.service("tenant-b", "connections:admin", name="b")

    listed = client.get("/api/admin/connections", headers=admin_b).json
    assert [c["connectionId"] for c in listed["data"]] == [mine] and listed["total"] == 1
    assert client.get("/api/admin/connections?user=alice", headers=admin_b).json["data"] == []
    assert client.get("/api/connections", headers=admin_b).json["total"] == 1

    before = len(events_of(app, ev.DISCONNECT_REQUESTED))
    assert_envelope(client.delete("/api/users/alice/connections?immediate=true", headers=admin_b), 404, "NOT_FOUND")
    assert len(events_of(app, ev.DISCONNECT_REQUESTED)) == before
    assert composio.account(theirs) is not None
    denied = events_of(app, ev.ACCESS_DENIED)
    assert denied[-1].data["user_id"] == "alice" and denied[-1].data["caller"]["tenant"] == "tenant-b"

    off_id = client.delete("/api/users/alice/connections", headers=admin_a).json["offboardingId"]
    assert_envelope(client.get(f"/api/offboardings/{off_id}", headers=admin_b), 404, "NOT_FOUND")
    assert_envelope(client.get(f"/api/offboardings/{off_id}", headers=auth.user("carol", org_id="tenant-b")), 404)
    assert events_of(app, ev.ACCESS_DENIED)[-1].data["offboarding_id"] == off_id
    assert client.get(f"/api/offboardings/{off_id}", headers=auth.user("alice", org_id="tenant-a")).status_code == 200
    assert_envelope(client.get("/api/offboardings/off_0000", headers=admin_a), 404)
    assert_envelope(client.delete("/api/users/nobody/connections", headers=admin_a), 404)
