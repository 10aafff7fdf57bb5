"""Real RSA keys, a real JWKS endpoint on 127.0.0.1 and a token minter, like Clerk's."""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ISSUER = "https://clerk.test.local"
AUTHORIZED_PARTY = "http://localhost:3000"


@dataclass(frozen=True)
class RsaKey:
    private: object
    kid: str
    jwk: dict
    public_pem: str


def new_rsa_key(kid: str | None = None) -> RsaKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = kid or "kid-" + uuid.uuid4().hex[:8]
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return RsaKey(private, kid, jwk, pem)


class JwksServer:
    """Serves {"keys": [...]} at /.well-known/jwks.json; can be taken down and counted."""

    def __init__(self, keys=()):
        self.keys, self.down, self.requests = list(keys), False, 0
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/.well-known/jwks.json"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @Request.application
    def _app(self, request):
        self.requests += 1
        if self.down:
            return Response("down", status=503)
        return Response(json.dumps({"keys": [k.jwk for k in self.keys]}), mimetype="application/json")

    def set_keys(self, keys) -> None:
        self.keys = list(keys)

    def stop(self) -> None:
        self._server.shutdown()


def mint(key: RsaKey, *, sub="user_a", iss=ISSUER, azp=AUTHORIZED_PARTY, org_id=None, exp_in=300,
         nbf_offset=0, kid=None, alg="RS256", headers=None, claims_overrides=None, drop=()) -> str:
    now = int(time.time())
    claims = {"sub": sub, "iss": iss, "azp": azp, "iat": now, "nbf": now + nbf_offset,
              "exp": now + exp_in, "sid": "sess_" + uuid.uuid4().hex[:8]}
    if org_id:
        claims["org_id"] = org_id
    claims.update(claims_overrides or {})
    for name in drop:
        claims.pop(name, None)
    claims = {k: v for k, v in claims.items() if v is not None}
    hdr = {"kid": kid or key.kid, **(headers or {})}
    return jwt.encode(claims, key.private, algorithm=alg, headers=hdr)
