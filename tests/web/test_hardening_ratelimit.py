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


class _Gate:
    """A TCP proxy on 127.0.0.1 in front of the real Redis, that can be closed and reopened on
    the same port: Redis "going away" and "coming back" for the app, as a network would."""

    def __init__(self, upstream=("127.0.0.1", 6379)):
        import socket
        self.upstream, self.port, self.conns, self.listener = upstream, _closed_port(), [], None
        self._socket = socket

    def open(self):
        import threading
        s = self._socket.socket()
        s.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener):
        import threading
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = self._socket.create_connection(self.upstream)
            self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        try:
            self.listener.shutdown(self._socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        except OSError:
            pass
        self.listener.close()
        for s in self.conns:
            try:
                s.shutdown(self._socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.conns = []


def test_redis_going_away_and_coming_back_is_one_line_each_way(make_app, auth, caplog):
    import uuid
    import pytest
    from tests.web.test_ratelimit import _redis_up
    if not _redis_up():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    gate = _Gate()
    gate.open()
    app = make_app(RATELIMIT_DEFAULT="1000 per minute", RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{gate.port}",
                   RATELIMIT_KEY_PREFIX="cltest-" + uuid.uuid4().hex[:8])
    client, alice = app.test_client(), auth.user("alice")
    caplog.set_level(logging.INFO, logger="web.ratelimit")
    assert client.get("/api/connections", headers=alice).headers["X-RateLimit-Remaining"] == "999"
    gate.close()
    for _ in range(10):
        resp = client.get("/api/connections", headers=alice)
        assert resp.status_code == 200 and "X-RateLimit-Remaining" not in resp.headers  # served, not counted
    gate.open()
    resp = client.get("/api/connections", headers=alice)
    if "X-RateLimit-Remaining" not in resp.headers:  # the pool's first try on a dead connection
        resp = client.get("/api/connections", headers=alice)
    assert "X-RateLimit-Remaining" in resp.headers
    lines = [r.getMessage() for r in caplog.records if r.name == "web.ratelimit"]
    assert len(lines) == 2 and "unreachable" in lines[0] and "recovered" in lines[1], lines
    assert client.get("/readyz").json["ratelimit"]["storage"] == "ok"
    gate.close()
