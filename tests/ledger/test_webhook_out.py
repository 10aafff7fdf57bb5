"""The pure parts of outgoing webhooks: the Standard Webhooks signature, names, bodies."""
from __future__ import annotations

import base64
import ipaddress
import json

import pytest

from ledger import envelope as ev
from ledger import webhook_guard, webhook_out


def test_the_signature_is_the_specifications_own_example():
    # The example of the Standard Webhooks specification (and its libraries' tests).
    sig = webhook_out.signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_new_secret_is_32_random_bytes_behind_whsec():
    a, b = webhook_out.new_secret(), webhook_out.new_secret()
    assert a != b and a.startswith("whsec_") and len(base64.b64decode(a[6:])) == 32


def test_every_ledger_connection_type_has_a_public_name():
    connection_types = {t for t in ev.EVENT_TYPES if t.startswith("connection.") or t.startswith("agent.")}
    assert connection_types <= set(webhook_out.PUBLIC_TYPES)
    assert webhook_out.public_type(ev.DISCONNECT_CANCELLED) == "connection.restored"
    assert webhook_out.public_type(ev.PROVIDER_ACTION_FAILED) == "connection.upstream_failed"


def test_the_body_is_the_same_bytes_on_every_retry_and_carries_the_chain_position():
    env = ev.Envelope(7, "connection:ca_1", 3, ev.EXPIRED, 1, {"connection_id": "ca_1", "reason": "revoked"},
                      {}, "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:00.000000Z", "", "")

    class State:
        user_id, toolkit, status = "alice", "gmail", "EXPIRED"
    stored = json.dumps(webhook_out.payload(env, State()))
    one = webhook_out.body(stored, msg_id="msg_1", seq=7, prev_hash="a" * 64, hash_="b" * 64, tenant="t")
    assert one == webhook_out.body(stored, msg_id="msg_1", seq=7, prev_hash="a" * 64, hash_="b" * 64, tenant="t")
    got = json.loads(one)
    assert (got["type"], got["seq"], got["version"], got["hash"]) == ("connection.expired", 7, 3, "b" * 64)
    assert got["reconnect"]["path"] == "/api/connections/ca_1/reconnect"
    assert webhook_out.message_id("we_1", "connection:ca_1", 3) == webhook_out.message_id("we_1", "connection:ca_1", 3)
    assert webhook_out.message_id("we_1", "connection:ca_1", 3) != webhook_out.message_id("we_2", "connection:ca_1", 3)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1",
                                     "224.0.0.1"])
def test_internal_addresses_are_forbidden(address):
    assert webhook_guard.forbidden(ipaddress.ip_address(address)) is not None


def test_a_public_address_is_allowed_and_every_resolved_address_must_be():
    assert webhook_guard.forbidden(ipaddress.ip_address("93.184.216.34")) is None
    with pytest.raises(webhook_guard.Refused):
        webhook_guard.check("https://x.example/", allow_private=False,
                            resolver=lambda h, p: ["93.184.216.34", "10.0.0.7"])
    target = webhook_guard.check("https://x.example:8443/in?a=1", allow_private=False,
                                 resolver=lambda h, p: ["93.184.216.34"])
    assert (target.address, target.port, target.path, target.host) == ("93.184.216.34", 8443, "/in?a=1", "x.example")
