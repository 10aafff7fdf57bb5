"""Webhook bodies become small, secret-free facts; Ingest records each delivery once, and late
events never move a connection back."""
import pytest

from ledger import envelope as ev
from ledger.envelope import NewEvent
from ledger.services.webhooks import Ingest, idempotency_key
from ledger.webhook_parsing import EXPIRED, TRIGGER_DISABLED, TRIGGER_MESSAGE, UNRECOGNISED, parse_webhook
from tests.support import webhooks as wh

NOW = "2026-01-02T00:00:00.000000Z"


def parse(body, webhook_id="msg_1"):
    return parse_webhook(body, webhook_id, NOW)


def test_v3_expired_keeps_the_owner_toolkit_reason_and_time_but_no_state():
    hook = parse(wh.expired("ca_1", "app-u1", toolkit="GitHub", when="2026-01-01T10:00:00Z"))
    assert (hook.kind, hook.connection_id, hook.user_id, hook.toolkit) == (EXPIRED, "ca_1", "app-u1", "github")
    assert hook.reason == "refresh token revoked" and hook.occurred_at == "2026-01-01T10:00:00.000000Z"
    assert hook.version == "V3" and hook.type == "composio.connected_account.expired"
    assert "ya29" not in repr(hook) and "refresh-secret" not in repr(hook)


def test_v3_trigger_message_keeps_slug_and_ids_never_the_trigger_payload():
    body = wh.trigger_message("ca_2", "u2", data={"access_token": "tok_in_payload", "text": "hello"})
    hook = parse(body)
    assert (hook.kind, hook.connection_id, hook.trigger_slug, hook.trigger_id) == \
        (TRIGGER_MESSAGE, "ca_2", "GITHUB_COMMIT_EVENT", "ti_1")
    assert hook.toolkit == "github" and "tok_in_payload" not in repr(hook) and "hello" not in repr(hook)


def test_v3_trigger_disabled_reads_the_trigger_and_the_reason_from_data():
    hook = parse(wh.trigger_disabled("ca_3", "u3"))
    assert (hook.kind, hook.connection_id, hook.trigger_id, hook.trigger_slug, hook.reason) == \
        (TRIGGER_DISABLED, "ca_3", "ti_9", "GMAIL_NEW_GMAIL_MESSAGE", "connection_expired")


def test_v2_and_v1_trigger_payloads_are_trigger_messages_as_the_sdk_reads_them():
    v2 = {"type": "github_commit_event", "timestamp": "2026-01-01T00:00:01Z", "log_id": "l",
          "data": {"connection_id": "uuid-1", "connection_nano_id": "ca_v2", "trigger_nano_id": "ti_v2",
                   "trigger_id": "uuid-t", "user_id": "u9", "password": "p"}}
    hook = parse(v2)
    assert (hook.version, hook.kind, hook.connection_id, hook.trigger_slug, hook.trigger_id, hook.user_id) == \
        ("V2", TRIGGER_MESSAGE, "ca_v2", "GITHUB_COMMIT_EVENT", "ti_v2", "u9")
    v1 = {"trigger_name": "SLACK_RECEIVE_MESSAGE", "connection_id": "ca_v1", "trigger_id": "ti_v1",
          "payload": {"token": "xoxb"}, "log_id": "l"}
    hook = parse(v1)
    assert (hook.version, hook.kind, hook.connection_id, hook.toolkit) == ("V1", TRIGGER_MESSAGE, "ca_v1", "slack")
    assert hook.occurred_at == NOW  # V1 carries no time: the delivery's stands in


@pytest.mark.parametrize("body", [
    {"id": "x", "type": "composio.connected_account.activated", "metadata": {"connected_account_id": "ca_5"}, "data": {}},
    {"hello": "world"},
    {"id": "x", "type": "composio.trigger.message", "metadata": {}, "data": {}},  # no connection to attach to
])
def test_other_shapes_are_unrecognised_not_errors(body):
    assert parse(body).kind == UNRECOGNISED


def test_a_future_or_unreadable_time_is_capped_at_receipt():
    assert parse(wh.expired("ca_1", "u", when="2999-01-01T00:00:00Z")).occurred_at == NOW
    assert parse(wh.expired("ca_1", "u", when="yesterday")).occurred_at == NOW


def test_an_id_that_cannot_be_a_stream_name_is_not_trusted():
    assert parse(wh.expired("ca 1\nx", "u")).kind == UNRECOGNISED


def hook_of(body, received=NOW):
    return parse_webhook(body, body["id"], received)


def types(ledger, stream):
    return [e.type for e in ledger.read_stream(stream)]


def test_an_unknown_connection_expiring_is_observed_first_with_its_owner_prefix_removed(ledger):
    outcome = Ingest(ledger, user_id_prefix="app-").record(hook_of(wh.expired("ca_new", "app-user_7")))
    assert outcome == "accepted"
    envs = ledger.read_stream("connection:ca_new")
    assert [e.type for e in envs] == [ev.OBSERVED, ev.EXPIRED]
    assert envs[0].data["user_id"] == "user_7" and envs[0].data["tenant"] == "user_7"
    assert envs[0].meta["actor"] == {"kind": "composio", "id": "webhook"}
    with ledger.transaction() as txn:
        state = txn.connection("ca_new")
    assert (state.status, state.user_id, state.status_reason) == ("EXPIRED", "user_7", "refresh token revoked")


def test_a_foreign_users_connection_is_kept_as_unrecognised_not_adopted(ledger):
    outcome = Ingest(ledger, user_id_prefix="app-").record(hook_of(wh.expired("ca_x", "other-app-u1")))
    assert outcome == "unrecognised" and types(ledger, "connection:ca_x") == []
    assert ledger.read_stream("webhooks")[0].data["reason"] == "foreign_user"


def test_the_same_webhook_id_is_recorded_once(ledger):
    hook = hook_of(wh.trigger_message("ca_1", "u1"))
    ingest = Ingest(ledger)
    assert [ingest.record(hook) for _ in range(3)] == ["accepted", "duplicate", "duplicate"]
    used = ledger.read_stream("connection:ca_1")
    assert len(used) == 1 and used[0].data == {"connection_id": "ca_1", "trigger_slug": "GITHUB_COMMIT_EVENT",
                                                "at": "2026-01-01T00:00:00.000000Z"}
    assert used[0].meta["idempotency_key"] == idempotency_key(hook.webhook_id)


def test_a_late_expiry_is_recorded_but_does_not_move_the_status_back(ledger):
    ledger.append("connection:ca_1", [NewEvent(ev.OBSERVED, {"user_id": "u1", "toolkit": "github"},
                                               occurred_at="2026-01-01T12:00:00.000000Z")])
    Ingest(ledger).record(hook_of(wh.expired("ca_1", "u1", when="2026-01-01T11:00:00Z")))
    assert types(ledger, "connection:ca_1") == [ev.OBSERVED, ev.EXPIRED]
    with ledger.transaction() as txn:
        assert txn.connection("ca_1").status == "ACTIVE"


def test_trigger_disabled_is_recorded_with_trigger_and_connection(ledger):
    assert Ingest(ledger).record(hook_of(wh.trigger_disabled("ca_3", "u3"))) == "accepted"
    [env] = ledger.read_stream("connection:ca_3")
    assert env.type == ev.TRIGGER_DISABLED
    assert env.data == {"connection_id": "ca_3", "trigger_id": "ti_9", "trigger_slug": "GMAIL_NEW_GMAIL_MESSAGE",
                        "reason": "connection_expired"}


def test_an_unknown_type_is_recorded_on_the_webhooks_stream(ledger):
    body = {"id": "msg_u", "timestamp": "2026-01-01T00:00:00Z", "type": "composio.something.new",
            "metadata": {"connected_account_id": "ca_9"}, "data": {"token": "t0k"}}
    assert Ingest(ledger).record(hook_of(body)) == "unrecognised"
    [env] = ledger.read_stream("webhooks")
    assert env.type == ev.WEBHOOK_UNRECOGNISED
    assert env.data == {"type": "composio.something.new", "webhook_id": "msg_u", "connection_id": "ca_9"}


def test_an_id_too_long_for_the_key_column_is_hashed_and_stays_distinct():
    from ledger.storage.unit_of_work import KEY_WIDTH
    long_a, long_b = "msg_" + "a" * 300, "msg_" + "a" * 299 + "b"
    assert idempotency_key("msg_1") == "webhook:msg_1"
    assert len(idempotency_key(long_a)) <= KEY_WIDTH and idempotency_key(long_a) == idempotency_key(long_a)
    assert idempotency_key(long_a) != idempotency_key(long_b)
