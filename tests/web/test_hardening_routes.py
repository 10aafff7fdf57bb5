"""Routing tells the truth: only declared methods exist, every other one is a 405 in the envelope
with the real Allow header, and OPTIONS lists exactly what a path serves."""
import re

import pytest

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _declared(app) -> dict[str, set]:
    """Each path (placeholders filled) and the methods the url map declares for it."""
    paths: dict[str, set] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "x_" + m.group(1), rule.rule)
        paths.setdefault(path, set()).update(rule.methods)
    return paths


def _allow(resp) -> set:
    return {m.strip() for m in resp.headers.get("Allow", "").split(",") if m.strip()}


def test_get_on_the_disconnect_path_is_a_405_not_a_lookup_of_a_connection_called_disconnect(client, auth, composio):
    resp = client.get("/api/connections/disconnect", headers=auth.user("alice"))
    assert resp.status_code == 405 and resp.json["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert _allow(resp) == {"DELETE", "OPTIONS"}
    assert _allow(client.options("/api/connections/disconnect")) == {"DELETE", "OPTIONS"}
    for method in ("POST", "PUT", "PATCH"):
        assert client.open("/api/connections/preflight/history", method=method).status_code in (401, 404, 405)


def test_every_path_answers_undeclared_methods_with_405_and_options_with_the_truth(app, client, auth):
    alice = auth.user("alice")
    for path, declared in _declared(app).items():
        options = client.options(path)
        assert options.status_code == 204 and _allow(options) == declared, (path, options.headers.get("Allow"))
        for method in METHODS:
            resp = client.open(path, method=method, headers=alice)
            assert resp.status_code != 500, (method, path)
            if method not in declared:
                assert resp.status_code == 405, (method, path, resp.status_code)
                assert resp.is_json  # HEAD: the envelope's headers, without its body
                if method != "HEAD":
                    assert resp.json["error"]["code"] == "METHOD_NOT_ALLOWED"
                assert _allow(resp) == declared, (method, path)
            elif method not in ("HEAD", "OPTIONS") and resp.status_code != 204:
                assert resp.is_json or resp.mimetype in ("application/x-ndjson", "text/event-stream", "text/html"), \
                    (method, path, resp.mimetype)
                resp.close()  # a live stream ends when its reader goes
