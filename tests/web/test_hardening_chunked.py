"""A chunked body (no Content-Length) over MAX_CONTENT_LENGTH is a 413 in the envelope, through a
real HTTP server: werkzeug's test client does not send chunked bodies."""
import http.client
import json
import threading

import pytest
from werkzeug.serving import make_server

LIMIT = 2048


@pytest.fixture
def served(make_app):
    app = make_app(MAX_CONTENT_LENGTH=LIMIT)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield app, server.server_port
    server.shutdown()


def _chunked(port, path, body: bytes, headers: dict):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    chunks = (body[i:i + 512] for i in range(0, len(body), 512))
    conn.request("POST", path, body=chunks, headers={**headers, "Content-Type": "application/json"},
                 encode_chunked=True)
    resp = conn.getresponse()
    answer = (resp.status, resp.getheader("Content-Type"), resp.read())
    conn.close()
    return answer


def _big_object() -> bytes:
    return json.dumps({"toolkit": "github", "callbackUrl": "https://example.com/" + "a" * (LIMIT * 2)}).encode()


def test_a_chunked_start_body_over_the_limit_is_a_413(served, auth):
    app, port = served
    status, ctype, body = _chunked(port, "/api/connections", _big_object(), auth.user("alice"))
    assert status == 413, body[:300]
    assert ctype.startswith("application/json") and json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_a_chunked_webhook_over_the_limit_is_a_413(served):
    app, port = served
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"}
    status, ctype, body = _chunked(port, "/webhooks/composio", _big_object(), headers)
    assert status == 413, body[:300]
    assert json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_a_chunked_body_under_the_limit_is_read_whole(served, auth):
    app, port = served
    status, _, body = _chunked(port, "/api/connections", json.dumps({"toolkit": "github"}).encode(), auth.user("alice"))
    assert status == 201, body[:300]
