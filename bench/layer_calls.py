"""How a disconnect travels through the house: calls that cross from one room to another and the
write transactions it takes, with the inline relay on (the default).

    .venv/bin/python -m bench.layer_calls

A "crossing" is a Python call whose caller and callee live in different top-level rooms (`web`,
`ledger`, and `ledger.storage` counted apart from the rest of `ledger`). The path line compresses
consecutive calls in one room, so `web > ledger > web > ledger` shows a call back up. Write
transactions are the BEGIN statements the database saw. SQLite, in-process; nothing leaves 127.0.0.1.
"""
from __future__ import annotations

import sys
import tempfile
from collections import Counter
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://clerk.bench.local"


def _room(module: str | None) -> str | None:
    if not module:
        return None
    if module.startswith("ledger.storage"):
        return "storage"
    top = module.split(".")[0]
    return top if top in ("web", "ledger") else None


class Crossings:
    """A sys.setprofile hook that counts calls from one room into another."""

    def __init__(self):
        self.count, self.path, self.calls = 0, [], 0
        self.between: Counter = Counter()   # (caller room, callee room) -> calls

    def __call__(self, frame, event, _arg):
        if event != "call":
            return
        callee = _room(frame.f_globals.get("__name__"))
        caller_frame = frame.f_back
        while caller_frame is not None and _room(caller_frame.f_globals.get("__name__")) is None:
            caller_frame = caller_frame.f_back
        caller = _room(caller_frame.f_globals.get("__name__")) if caller_frame else None
        if callee is None:
            return
        self.calls += 1
        if caller is not None and caller != callee:
            self.count += 1
            self.between[caller, callee] += 1
        if not self.path or self.path[-1] != callee:
            self.path.append(callee)


def _token(key, user: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user, "iss": ISSUER, "iat": now, "nbf": now - 5, "exp": now + 600,
                       "sid": "sess_" + uuid.uuid4().hex[:8], "azp": "http://localhost:3000"},
                      key, algorithm="RS256", headers={"kid": "bench"})


def main() -> None:
    from sqlalchemy import event

    from web import create_app
    from web.dev.composio_server import FakeComposio

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    composio = FakeComposio().start()
    folder = Path(tempfile.mkdtemp())
    app = create_app({"DATABASE_URL": f"sqlite:///{folder / 'ledger.db'}", "LEDGER_ENV": "development",
                      "COMPOSIO_API_KEY": "bench", "COMPOSIO_BASE_URL": composio.url,
                      "COMPOSIO_WEBHOOK_SECRET": "bench-secret", "CLERK_JWT_KEY": pem, "CLERK_ISSUER": ISSUER,
                      "CLERK_AUTHORIZED_PARTIES": "http://localhost:3000", "RATELIMIT_DEFAULT": ""})
    begins = []
    engine = app.extensions["engine"]
    event.listen(engine, "connect", lambda dbapi, _rec: dbapi.set_trace_callback(
        lambda sql: begins.append(sql) if sql.upper().startswith("BEGIN") else None))
    engine.dispose()  # every connection from here on reports its statements
    client = app.test_client()
    headers = {"Authorization": "Bearer " + _token(key, "alice")}
    cid = client.post("/api/connections", json={"toolkit": "github", "credentials": {"api_key": "k"}},
                      headers=headers).json["connectionId"]
    client.delete("/api/connections/disconnect", json={"connectionId": cid, "dryRun": True}, headers=headers)

    begins.clear()
    crossings = Crossings()
    sys.setprofile(crossings)
    try:
        resp = client.delete("/api/connections/disconnect", json={"connectionId": cid}, headers=headers)
    finally:
        sys.setprofile(None)
    composio.stop()
    writes = [b for b in begins if "IMMEDIATE" in b.upper()]
    print(f"disconnect answered {resp.status_code} {resp.json.get('status') if resp.is_json else ''}")
    print(f"calls inside web/ledger: {crossings.calls}")
    print(f"calls crossing rooms:    {crossings.count} ("
          + ", ".join(f"{a}->{b} {n}" for (a, b), n in sorted(crossings.between.items())) + ")")
    print(f"room path:               {' > '.join(crossings.path)}")
    print(f"write transactions:      {len(writes)} (BEGIN statements seen: {len(begins)})")


if __name__ == "__main__":
    main()
