"""Rate limit answers and the limiter's storage failing, as an operator would see them."""
import logging


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


def _closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_redis_down_fails_open_with_one_log_line_a_counter_and_readyz_saying_so(make_app, auth, caplog):
    app = make_app(RATELIMIT_DEFAULT="2 per minute", RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{_closed_port()}")
    client = app.test_client()
    alice = auth.user("alice")
    caplog.set_level(logging.INFO)
    codes = [client.get("/api/connections", headers=alice).status_code for _ in range(30)]
    assert codes == [200] * 30, "fail open: the limit of 2 is not enforced while its storage is down"
    lines = [r for r in caplog.records if "rate limit" in r.getMessage().lower() or r.name == "flask-limiter"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].levelno == logging.WARNING and lines[0].exc_info is None and "unreachable" in lines[0].getMessage()
    assert client.get("/metrics").json["process"]["counters"]["ratelimit.storage_errors"] >= 30
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["ratelimit"]["storage"] == "unreachable" and ready.json["ratelimit"]["failing"] is True


def test_a_flood_of_unsigned_webhooks_is_one_warning_and_a_count(client, caplog):
    caplog.set_level(logging.DEBUG, logger="web.webhooks")
    before = client.get("/metrics").json["process"]["counters"].get("webhook.rejected_signature", 0)
    for i in range(200):
        resp = client.post("/webhooks/composio", data=b"{}", headers={"webhook-id": f"msg_{i}"})
        assert resp.status_code == 401 and resp.json["error"]["code"] == "INVALID_SIGNATURE"
    warnings = [r for r in caplog.records if r.name == "web.webhooks" and r.levelno >= logging.WARNING]
    assert len(warnings) <= 1, [r.getMessage() for r in warnings][:5]
    after = client.get("/metrics").json["process"]["counters"]["webhook.rejected_signature"]
    assert after - before == 200
