"""Per-caller rate limits: 429 in the envelope with the numbers a client needs, shared via Redis."""
import os
import uuid

import pytest
from tests.support.app import redis_up


def test_the_429_envelope_carries_retry_after_limit_remaining_and_reset(make_app, auth):
    app = make_app(RATELIMIT_DEFAULT="3 per minute")
    client = app.test_client()
    alice = auth.user("alice")
    allowed = [client.get("/api/connections", headers=alice) for _ in range(3)]
    assert [r.status_code for r in allowed] == [200] * 3
    assert [r.headers["X-RateLimit-Remaining"] for r in allowed] == ["2", "1", "0"]
    assert all("Retry-After" not in r.headers for r in allowed), "an answer that was served says nothing of retrying"
    resp = client.get("/api/connections", headers=alice)
    assert resp.status_code == 429
    err = resp.json["error"]
    assert err["code"] == "RATE_LIMITED" and err["status"] == 429
    details = err["details"]
    assert details["remaining"] == 0 and "3" in details["limit"] and details["reset_at"].endswith("Z")
    assert 1 <= details["retry_after"] <= 61 and resp.headers["Retry-After"] == str(details["retry_after"])
    assert resp.headers["X-RateLimit-Limit"] == "3"
    # another person has a budget of their own
    assert client.get("/api/connections", headers=auth.user("bob")).status_code == 200


@pytest.mark.skipif(not redis_up() and os.environ.get("CI") != "true",
                    reason="Redis is not running on 127.0.0.1:6379 (in CI this fails instead)")
def test_two_app_instances_sharing_redis_share_one_budget(make_app, auth):
    prefix = "cltest-" + uuid.uuid4().hex[:8]
    shared = dict(RATELIMIT_DEFAULT="4 per minute", RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379",
                  RATELIMIT_KEY_PREFIX=prefix)
    one, two = make_app(**shared).test_client(), make_app(**shared).test_client()
    alice = auth.user("alice")
    codes = [c.get("/api/connections", headers=alice).status_code for c in (one, two, one, two, one, two)]
    assert codes == [200, 200, 200, 200, 429, 429]
