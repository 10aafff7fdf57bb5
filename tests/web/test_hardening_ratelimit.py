"""Rate limit answers and the limiter's storage failing, as an operator would see them."""


def test_a_429_carries_each_rate_limit_header_once(make_app, auth):
    client = make_app(RATELIMIT_DEFAULT="2 per minute").test_client()
    alice = auth.user("alice")
    for _ in range(2):
        assert client.get("/api/connections", headers=alice).status_code == 200
    resp = client.get("/api/connections", headers=alice)
    assert resp.status_code == 429 and resp.json["error"]["code"] == "RATE_LIMITED"
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After",
                 "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
        assert len(resp.headers.getlist(name)) == 1, (name, resp.headers.getlist(name))
    assert resp.headers["X-RateLimit-Limit"] == "2" and resp.headers["X-RateLimit-Remaining"] == "0"
