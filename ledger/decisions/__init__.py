"""Pure decisions: (state, command or answer, now) -> events and Composio actions, or a domain error.

Every decide of the ledger lives in this package: a person's commands (connection.py), a webhook
(webhook.py), the drift reconciliation finds (drift.py), and what Composio's answer to a relayed
action means (relay.py). No I/O and no clock: `now` is passed in, so these are tested in
milliseconds (tests/ledger/test_decisions.py).
"""
from .connection import (Action, Decision, decide_bind, decide_disconnect, decide_restore, decide_unbind,
                       disconnect_answer, may_act, preview_disconnect)
from .common import observed
from .drift import OURS, decide_drift, decide_missing
from .relay import Answer, Outcome, RetryPolicy, decide_relay_failure, decide_relay_outcome
from .webhook import ACCEPTED, DUPLICATE, WEBHOOK_STREAM, WebhookDecision, decide_webhook

__all__ = ["ACCEPTED", "DUPLICATE", "OURS", "WEBHOOK_STREAM", "Action", "Answer", "Decision", "Outcome",
           "RetryPolicy", "WebhookDecision", "decide_bind", "decide_disconnect", "decide_drift",
           "decide_missing", "decide_relay_failure", "decide_relay_outcome", "decide_restore", "decide_unbind",
           "decide_webhook", "disconnect_answer", "may_act", "observed", "preview_disconnect"]
