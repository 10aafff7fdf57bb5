"""The chain formula, checked against an independent recomputation."""
import hashlib
import json

from ledger.chain import GENESIS_HASH, canonical_json, envelope_text, verify_envelopes


def _independent_hash(prev, env):
    body = {k: v for k, v in env.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev + "\n" + text).encode("utf-8")).hexdigest()


def test_assembled_text_equals_canonical_json_of_the_envelope():
    env = {"seq": 3, "stream": "connection:ca_é", "version": 2, "type": "t", "schema": 1,
           "data": {"b": [1, "ü"], "a": None}, "meta": {"actor": {"kind": "user", "id": "u"}},
           "occurred_at": "2026-11-22T21:05:03.123456Z", "recorded_at": "2026-11-22T21:05:03.123456Z",
           "prev_hash": GENESIS_HASH}
    assembled = envelope_text(seq=3, stream=env["stream"], version=2, type="t", schema=1,
                              data_json=canonical_json(env["data"]), meta_json=canonical_json(env["meta"]),
                              occurred_at=env["occurred_at"], recorded_at=env["recorded_at"],
                              prev_hash=GENESIS_HASH)
    assert assembled == canonical_json(env)
    assert "ü" in assembled  # UTF-8 kept, not \\u-escaped


def _chain(n):
    prev, out = GENESIS_HASH, []
    for i in range(1, n + 1):
        env = {"seq": i, "stream": "s", "version": i, "type": "t", "schema": 1, "data": {"i": i},
               "meta": {}, "occurred_at": "2026-01-01T00:00:00.000000Z",
               "recorded_at": "2026-01-01T00:00:00.000000Z", "prev_hash": prev}
        env["hash"] = prev = _independent_hash(prev, env)
        out.append(env)
    return out


def test_an_intact_chain_verifies_and_reports_its_head():
    envs = _chain(5)
    result = verify_envelopes(envs)
    assert result.ok and result.checked == 5
    assert (result.head_seq, result.head_hash) == (5, envs[-1]["hash"])


def test_an_edit_a_gap_and_a_swap_are_each_found_at_their_seq():
    edited = _chain(5)
    edited[2]["data"] = {"i": 99}
    assert verify_envelopes(edited).first_bad_seq == 3
    dropped = _chain(5)
    del dropped[3]
    assert verify_envelopes(dropped).first_bad_seq == 4
    swapped = _chain(5)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    assert verify_envelopes(swapped).first_bad_seq == 2
