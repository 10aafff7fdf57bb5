"""A Composio-compatible server for tests and the development sandbox.

Serves the /api/v3.1 connected-account and auth-config paths the gateway uses, in the wire
shapes the composio SDK parses; keeps accounts in memory (each with fake live tokens in
`state.val`, as Composio's carry real ones); records every call; and can be told to fail
(status codes, delays, dropped connections) per method and path. Control it from Python
(FakeComposio) or over HTTP under /_fake/ from other processes.

    python -m web.dev.composio_server --port 8765
"""
from __future__ import annotations

import argparse
import re
import secrets
import threading
import time
from datetime import datetime, timezone

from flask import Flask, abort, jsonify, request
from werkzeug.serving import make_server

API = "/api/v3.1"
NO_REVOKE = {"no-revoke-toolkit"}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Rule:
    def __init__(self, method, pattern, *, status=None, delay=0.0, drop=False, times=None):
        self.method, self.pattern = method.upper(), re.compile(pattern)
        self.status, self.delay, self.drop, self.remaining = status, delay, drop, times

    def matches(self, method: str, path: str) -> bool:
        return self.method in (method, "*") and bool(self.pattern.search(path)) and self.remaining != 0


class FakeComposio:
    def __init__(self):
        self.lock = threading.RLock()
        self.accounts: dict[str, dict] = {}
        self.auth_configs: dict[str, dict] = {}
        self._calls: list[dict] = []
        self.rules: list[_Rule] = []
        self.no_revoke = set(NO_REVOKE)
        self.app = _build_app(self)
        self.url = None
        self._server = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> "FakeComposio":
        self._server = make_server(host, port, self.app, threaded=True)
        self.url = f"http://{host}:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()

    def reset(self) -> None:
        with self.lock:
            self.accounts.clear()
            self._calls.clear()
            self.rules.clear()
            self.no_revoke = set(NO_REVOKE)

    # -- control ----------------------------------------------------------------------------
    def calls(self, method: str | None = None, path_contains: str | None = None) -> list[dict]:
        with self.lock:
            return [c for c in self._calls if (method is None or c["method"] == method.upper())
                    and (path_contains is None or path_contains in c["path"])]

    def fail(self, method, path_pattern, status=500, times=None):
        self._rule(_Rule(method, re.escape(path_pattern) if "/" in path_pattern else path_pattern,
                         status=status, times=times))

    def delay(self, method, path_pattern, seconds, times=None):
        self._rule(_Rule(method, re.escape(path_pattern), delay=seconds, times=times))

    def drop(self, method, path_pattern, times=None):
        self._rule(_Rule(method, re.escape(path_pattern), drop=True, times=times))

    def clear_failures(self) -> None:
        with self.lock:
            self.rules.clear()

    def _rule(self, rule: _Rule) -> None:
        with self.lock:
            self.rules.append(rule)

    def add_account(self, user_id: str, toolkit: str, status: str = "ACTIVE", id: str | None = None) -> str:
        with self.lock:
            account = self._new_account(user_id, toolkit.lower(), self._auth_config(toolkit.lower())["id"], status)
            if id:
                del self.accounts[account["id"]]
                account["id"] = id
                self.accounts[id] = account
            return account["id"]

    def set_status(self, account_id: str, status: str) -> None:
        with self.lock:
            self.accounts[account_id]["status"] = status
            self.accounts[account_id]["updated_at"] = _now()

    def set_grant(self, account_id: str, **facts) -> None:
        """Put facts of the grant into the account's `state.val` beside its tokens, as Composio
        keeps them (`scope`, `expires_at`, or anything else, a planted token included)."""
        with self.lock:
            self.accounts[account_id]["state"]["val"].update(facts)

    def refreshes(self, account_id: str | None = None) -> int:
        """How many refreshes (reconnects) were asked of this Composio, for one account or all."""
        return len([c for c in self.calls("POST", "/refresh")
                    if account_id is None or f"/connected_accounts/{account_id}/" in c["path"]])

    def drop_auth_configs(self) -> None:
        """Delete every auth config, as when they are changed in Composio's dashboard."""
        with self.lock:
            self.auth_configs.clear()

    def forget(self, account_id: str) -> None:
        """Drop an account without a trace, as a Composio that never saw it would be."""
        with self.lock:
            self.accounts.pop(account_id, None)

    def account(self, account_id: str) -> dict | None:
        with self.lock:
            acc = self.accounts.get(account_id)
            return dict(acc) if acc else None

    # -- model ------------------------------------------------------------------------------
    def _auth_config(self, toolkit: str) -> dict:
        for cfg in self.auth_configs.values():
            if cfg["toolkit"] == toolkit:
                return cfg
        cfg = {"id": "ac_" + secrets.token_hex(6), "toolkit": toolkit}
        self.auth_configs[cfg["id"]] = cfg
        return cfg

    def _new_account(self, user_id, toolkit, auth_config_id, status, callback_url=None) -> dict:
        aid = "ca_" + secrets.token_hex(8)
        account = {"id": aid, "user_id": user_id, "toolkit": toolkit, "auth_config_id": auth_config_id,
                   "status": status, "status_reason": None, "created_at": _now(), "updated_at": _now(),
                   "callback_url": callback_url, "is_disabled": False,
                   # what Composio keeps: live tokens that must never leave the gateway
                   "state": {"authScheme": "OAUTH2", "val": {
                       "status": status, "access_token": "fake-access-" + secrets.token_hex(12),
                       "refresh_token": "fake-refresh-" + secrets.token_hex(12), "token_type": "bearer"}}}
        self.accounts[aid] = account
        return account

    def wire(self, acc: dict) -> dict:
        """An account as Composio's API returns it (tokens included, like the real one)."""
        return {"id": acc["id"], "user_id": acc["user_id"], "status": acc["status"],
                "status_reason": acc["status_reason"], "is_disabled": acc["is_disabled"],
                "created_at": acc["created_at"], "updated_at": acc["updated_at"],
                "toolkit": {"slug": acc["toolkit"]},
                "auth_config": {"id": acc["auth_config_id"], "auth_scheme": "OAUTH2",
                                "is_composio_managed": True, "is_disabled": False},
                "state": acc["state"], "data": dict(acc["state"]["val"]), "params": dict(acc["state"]["val"]),
                "test_request_endpoint": None}


def _build_app(fake: FakeComposio) -> Flask:
    app = Flask("fake_composio")

    @app.before_request
    def _record_and_maybe_fail():
        path = request.path
        if path.startswith("/_fake/"):
            return None
        with fake.lock:
            fake._calls.append({"method": request.method, "path": path, "query": request.args.to_dict(flat=True),
                                "json": request.get_json(silent=True), "at": time.time(),
                                "idempotency_key": request.headers.get("Idempotency-Key"),
                                "headers": {"Idempotency-Key": request.headers.get("Idempotency-Key")}})
            rule = next((r for r in fake.rules if r.matches(request.method, path)), None)
            if rule and rule.remaining is not None:
                rule.remaining -= 1
        if rule is None:
            return None
        if rule.delay:
            time.sleep(rule.delay)
        if rule.drop:
            sock = request.environ.get("werkzeug.socket")
            if sock is not None:
                sock.close()
            abort(500)
        if rule.status:
            return jsonify({"error": {"message": "injected failure", "status": rule.status}}), rule.status
        return None

    _api_routes(app, fake)
    _control_routes(app, fake)
    return app


def _api_routes(app: Flask, fake: FakeComposio) -> None:
    def get_or_404(aid):
        acc = fake.accounts.get(aid)
        if acc is None:
            abort(404)
        return acc

    @app.errorhandler(404)
    def _nf(_):
        return jsonify({"error": {"message": "Not found", "status": 404}}), 404

    @app.get(f"{API}/auth_configs")
    def list_auth_configs():
        slug = request.args.get("toolkit_slug")
        items = [{"id": c["id"], "name": c["toolkit"], "no_of_connections": 0, "status": "ENABLED",
                  "toolkit": {"slug": c["toolkit"], "logo": ""}, "is_composio_managed": True}
                 for c in fake.auth_configs.values() if slug is None or c["toolkit"] == slug]
        return jsonify({"items": items, "current_page": 1, "total_items": len(items), "total_pages": 1, "next_cursor": None})

    @app.post(f"{API}/auth_configs")
    def create_auth_config():
        body = request.get_json(force=True)
        with fake.lock:
            cfg = fake._auth_config(body["toolkit"]["slug"].lower())
        return jsonify({"auth_config": {"id": cfg["id"], "auth_scheme": "OAUTH2", "is_composio_managed": True},
                        "toolkit": {"slug": cfg["toolkit"]}}), 201

    @app.post(f"{API}/connected_accounts")
    def create_account():
        body = request.get_json(force=True)
        cfg = fake.auth_configs.get(body.get("auth_config", {}).get("id"))
        if cfg is None:
            return jsonify({"error": {"message": "unknown auth config", "status": 400}}), 400
        conn = body.get("connection", {})
        given = (conn.get("state") or {}).get("val")
        with fake.lock:
            acc = fake._new_account(conn["user_id"], cfg["toolkit"], cfg["id"], "ACTIVE" if given else "INITIATED",
                                    conn.get("callback_url"))
            if given:
                acc["state"] = {"authScheme": "API_KEY", "val": dict(given)}
        redirect = None if given else f"{request.host_url.rstrip('/')}/_fake/oauth/{acc['id']}"
        data = {"authScheme": acc["state"]["authScheme"], "val": {**acc["state"]["val"], "status": acc["status"]}}
        if redirect:
            data["val"].update({"redirectUrl": redirect, "authUri": redirect, "oauth_token": "x", "oauth_token_secret": "y"})
        return jsonify({"id": acc["id"], "status": acc["status"], "redirect_url": redirect, "redirect_uri": redirect,
                        "connectionData": data}), 201

    @app.get(f"{API}/connected_accounts")
    def list_accounts():
        with fake.lock:
            items = sorted(fake.accounts.values(), key=lambda a: (a["created_at"], a["id"]))
            users, kits = request.args.getlist("user_ids"), request.args.getlist("toolkit_slugs")
            statuses = request.args.getlist("statuses")
            items = [a for a in items if (not users or a["user_id"] in users) and (not kits or a["toolkit"] in kits)
                     and (not statuses or a["status"] in statuses)]
            limit = int(float(request.args.get("limit", 20)))
            start = int(request.args.get("cursor") or 0)
            page = items[start:start + limit]
            nxt = str(start + limit) if start + limit < len(items) else None
            return jsonify({"items": [fake.wire(a) for a in page], "next_cursor": nxt,
                            "current_page": start // max(limit, 1) + 1, "total_items": len(items),
                            "total_pages": max(1, -(-len(items) // max(limit, 1)))})

    @app.get(f"{API}/connected_accounts/<aid>")
    def get_account(aid):
        with fake.lock:
            return jsonify(fake.wire(get_or_404(aid)))

    @app.patch(f"{API}/connected_accounts/<aid>/status")
    def set_enabled(aid):
        enabled = bool(request.get_json(force=True).get("enabled"))
        with fake.lock:
            acc = get_or_404(aid)
            acc["is_disabled"] = not enabled
            acc["status"] = "ACTIVE" if enabled else "INACTIVE"
            acc["updated_at"] = _now()
        return jsonify({"success": True})

    @app.post(f"{API}/connected_accounts/<aid>/refresh")
    def refresh(aid):
        # Composio's re-authorisation of the same account: back to INITIATED, with a fresh
        # redirect; the fake OAuth page completing it makes the account ACTIVE again.
        with fake.lock:
            acc = get_or_404(aid)
            acc["status"], acc["status_reason"], acc["is_disabled"] = "INITIATED", None, False
            acc["state"]["val"]["status"] = "INITIATED"
            acc["updated_at"] = _now()
        redirect = f"{request.host_url.rstrip('/')}/_fake/oauth/{aid}"
        return jsonify({"id": aid, "status": "INITIATED", "redirect_url": redirect})

    @app.post(f"{API}/connected_accounts/<aid>/revoke")
    def revoke(aid):
        with fake.lock:
            acc = get_or_404(aid)
            if acc["toolkit"] in fake.no_revoke:
                return jsonify({"error": {"message": "Revoke is not supported for this toolkit", "status": 400}}), 400
            already = acc["status"] == "REVOKED"
            acc["status"], acc["updated_at"] = "REVOKED", _now()
        kinds = [] if already else ["access_token", "refresh_token"]
        return jsonify({"revoked_tokens": kinds, "connected_account": {"id": aid, "status": "REVOKED"}})

    @app.delete(f"{API}/connected_accounts/<aid>")
    def delete_account(aid):
        with fake.lock:
            get_or_404(aid)
            del fake.accounts[aid]
        revoke_job = "job_" + secrets.token_hex(4) if request.args.get("revoke_on_delete") == "true" else None
        return jsonify({"success": True, "revoke_job_id": revoke_job})


def _control_routes(app: Flask, fake: FakeComposio) -> None:
    @app.get("/_fake/oauth/<aid>")
    def complete_oauth(aid):
        with fake.lock:
            if aid not in fake.accounts:
                abort(404)
            fake.set_status(aid, "ACTIVE")
            fake.accounts[aid]["state"]["val"]["status"] = "ACTIVE"
        return "Connected. You can close this window.\n"

    @app.post("/_fake/accounts")
    def control_add():
        b = request.get_json(force=True)
        return jsonify({"id": fake.add_account(b["user_id"], b["toolkit"], b.get("status", "ACTIVE"), b.get("id"))})

    @app.post("/_fake/accounts/<aid>/grant")
    def control_grant(aid):
        fake.set_grant(aid, **request.get_json(force=True))
        return jsonify({"ok": True})

    @app.post("/_fake/accounts/<aid>/status")
    def control_status(aid):
        fake.set_status(aid, request.get_json(force=True)["status"])
        return jsonify({"ok": True})

    @app.get("/_fake/calls")
    def control_calls():
        return jsonify(fake.calls(request.args.get("method"), request.args.get("path_contains")))

    @app.post("/_fake/reset")
    def control_reset():
        fake.reset()
        return jsonify({"ok": True})

    @app.post("/_fake/failures")
    def control_fail():
        b = request.get_json(force=True)
        kind = b.get("kind", "status")
        if kind == "delay":
            fake.delay(b["method"], b["path"], float(b["seconds"]), b.get("times"))
        elif kind == "drop":
            fake.drop(b["method"], b["path"], b.get("times"))
        else:
            fake.fail(b["method"], b["path"], int(b.get("status", 500)), b.get("times"))
        return jsonify({"ok": True})

    @app.delete("/_fake/failures")
    def control_clear():
        fake.clear_failures()
        return jsonify({"ok": True})

    @app.post("/_fake/no-revoke")
    def control_no_revoke():
        fake.no_revoke = set(request.get_json(force=True)["toolkits"])
        return jsonify({"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    fake = FakeComposio()
    server = make_server(args.host, args.port, fake.app, threaded=True)
    print(f"Composio-compatible server on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
