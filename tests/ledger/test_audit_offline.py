"""An auditor with an export file (and a published head, and the public key) alone."""
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import offline_audit as audit, signing
from ledger import envelope as ev
from ledger.chain import GENESIS_HASH, canonical_json, link
from ledger.envelope import NewEvent
from tests.support import history

ROOT = Path(__file__).resolve().parents[2]


def _history(ledger, n=12):
    for i in range(n):
        cid = f"ca_{i % 3}"
        kind = ev.INITIATED if i < 3 else random.Random(i).choice([ev.ACTIVATED, ev.EXPIRED, ev.USED])
        ledger.append(ev.connection_stream(cid), [NewEvent(kind, {"connection_id": cid, "user_id": "u1",
                                                                  "tenant": "u1", "toolkit": "github"})])


def _export(ledger, path, **kw) -> Path:
    path.write_text("".join(ledger.store.iter_export_lines(**kw)))
    return path


def _run(*argv) -> tuple[int, dict]:
    import io
    from contextlib import redirect_stdout
    out = io.StringIO()
    with redirect_stdout(out):
        code = audit.main([str(a) for a in argv])
    return code, json.loads(out.getvalue())


def _rechain(lines: list[dict]) -> list[str]:
    """What an operator who rewrites history would do: recompute every hash after the edit."""
    prev, out = GENESIS_HASH, []
    for env in lines:
        body = {k: v for k, v in env.items() if k != "hash"}
        body["prev_hash"] = prev
        prev = link(prev, canonical_json(body))
        out.append(json.dumps({**body, "hash": prev}))
    return out


def test_an_export_verifies_offline_and_its_head_equals_the_ledgers(ledger, tmp_path):
    _history(ledger)
    code, report = _run("verify-export", _export(ledger, tmp_path / "e.ndjson"))
    result = ledger.verify()
    assert code == 0 and report["ok"] and report["checked"] == 12
    assert report["head"] == {"seq": result.head_seq, "hash": result.head_hash}


@pytest.mark.parametrize("damage, bad_seq", [("edit", 5), ("drop", 5), ("swap", 5)])
def test_an_edited_dropped_or_swapped_line_is_found_at_its_seq(ledger, tmp_path, damage, bad_seq):
    _history(ledger)
    lines = _export(ledger, tmp_path / "e.ndjson").read_text().splitlines()
    if damage == "edit":
        lines[4] = lines[4].replace("github", "githuc")
    elif damage == "drop":
        del lines[4]
    else:
        lines[4], lines[5] = lines[5], lines[4]
    (tmp_path / "bad.ndjson").write_text("\n".join(lines) + "\n")
    code, report = _run("verify-export", tmp_path / "bad.ndjson")
    assert code == 1 and report["first_bad_seq"] == bad_seq


@pytest.mark.parametrize("junk", ['{"seq": 5, "data": {"x": 1e400}}', "not json at all", "[1, 2]", '{"seq": "five"}'])
def test_a_line_that_cannot_be_read_is_reported_as_bad_not_a_crash(ledger, tmp_path, junk):
    _history(ledger)
    lines = _export(ledger, tmp_path / "e.ndjson").read_text().splitlines()
    if junk.startswith('{"seq": 5, "data"'):
        env = json.loads(lines[4])
        env["data"] = {"x": 1e400}  # parses as infinity: no canonical form exists for it
        lines[4] = json.dumps(env)
    else:
        lines[4] = junk
    (tmp_path / "bad.ndjson").write_text("\n".join(lines) + "\n")
    for command in (["verify-export"], ["state", "--as-of", "12"]):
        code, report = _run(*command[:1], tmp_path / "bad.ndjson", *command[1:])
        assert code == 1 and report["ok"] is False and report["first_bad_seq"] == 5 and report["line"] == 5


def test_a_range_export_verifies_when_the_range_is_asked_for(ledger, tmp_path):
    _history(ledger)
    part = _export(ledger, tmp_path / "r.ndjson", from_seq=5, to_seq=9)
    for asked in (["--range", "5:9"], ["--from-seq", "5"]):
        code, report = _run("verify-export", part, *asked)
        assert code == 0 and report["checked"] == 5, asked
        assert (report["first_seq"], report["last_seq"], report["head"]["seq"]) == (5, 9, 9)


def test_an_export_whose_first_events_were_cut_off_fails(ledger, tmp_path):
    _history(ledger)
    whole = _export(ledger, tmp_path / "all.ndjson")
    cut = tmp_path / "cut.ndjson"
    cut.write_text("".join(whole.read_text().splitlines(keepends=True)[3:]))   # starts at seq 4
    code, report = _run("verify-export", cut)
    assert code == 1 and report["ok"] is False and report["first_bad_seq"] == 1
    assert "starts at seq 4" in report["reason"]
    code, report = _run("verify-export", cut, "--range", "1:12")            # not the range asked for
    assert code == 1 and "not at 1" in report["reason"]
    code, report = _run("verify-export", whole)
    assert code == 0 and (report["first_seq"], report["last_seq"]) == (1, 12)


def test_a_range_export_that_stops_short_of_its_range_fails(ledger, tmp_path):
    _history(ledger)
    part = _export(ledger, tmp_path / "r.ndjson", from_seq=5, to_seq=9)
    code, report = _run("verify-export", part, "--range", "5:12")
    assert code == 1 and "stops at seq 9" in report["reason"]


def test_an_empty_export_is_not_ok(tmp_path):
    empty = tmp_path / "empty.ndjson"
    empty.write_text("")
    code, report = _run("verify-export", empty)
    assert code == 1 and report["ok"] is False and "no events" in report["reason"]


def test_a_missing_file_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ledger.audit", "verify-export", str(tmp_path / "nope.ndjson")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_a_rewritten_history_fails_the_published_head_and_the_signed_head(ledger, tmp_path):
    _history(ledger, 6)
    key = signing.load_private_key(signing.generate_private_key_pem())
    seq, h = ledger.store.head()
    ledger.append("ledger:heads", [NewEvent(ev.HEAD_SIGNED, signing.sign_head(key, seq, h, "2026-11-22T00:00:00.000000Z"))])
    _history(ledger, 3)
    real = _export(ledger, tmp_path / "real.ndjson")
    public = signing.public_key_text(key)
    assert _run("verify-export", real, "--expect-head", f"{seq}:{h}", "--public-key", public)[0] == 0
    assert _run("verify-export", real, "--public-key", public)[1]["signed_heads_checked"] == 1
    envs = [json.loads(line) for line in real.read_text().splitlines()]
    envs[1]["data"]["user_id"] = "someone-else"
    forged = tmp_path / "forged.ndjson"
    forged.write_text("\n".join(_rechain(envs)) + "\n")
    assert _run("verify-export", forged)[0] == 0, "internally consistent"
    code, report = _run("verify-export", forged, "--expect-head", f"{seq}:{h}")
    assert code == 1 and report["first_bad_seq"] == seq
    code, report = _run("verify-export", forged, "--public-key", public)
    assert code == 1 and "signed" in report["reason"]
    other = signing.public_key_text(signing.load_private_key(signing.generate_private_key_pem()))
    assert _run("verify-export", real, "--public-key", other)[0] == 1


def test_state_from_the_file_equals_the_ledgers_replay_by_seq_and_by_time(ledger, tmp_path):
    _history(ledger)
    path = _export(ledger, tmp_path / "e.ndjson")
    code, state = _run("state", path, "--as-of", 7)
    assert code == 0 and state == json.loads(json.dumps(ledger.state_as_of(seq=7).as_json()))
    at = ledger.read_after(0, 4)[-1].recorded_at
    assert _run("state", path, "--as-of", at)[1] == json.loads(json.dumps(ledger.state_as_of(time=at).as_json()))


def test_state_as_of_from_the_file_equals_the_live_projection_captured_then(ledger, tmp_path):
    rng, captured = random.Random(3), {}

    def capture(seq):
        if rng.random() < 0.05:
            captured[seq] = ledger.store.projection_rows()[0]
    history.build(ledger, n_events=300, n_connections=25, seed=5, on_event=capture)
    path = _export(ledger, tmp_path / "e.ndjson")
    assert len(captured) >= 5
    for seq, rows in captured.items():
        state = _run("state", path, "--as-of", seq)[1]
        from_file = [{k: v for k, v in c.items() if k != "agents"} for _, c in sorted(state.items())]
        assert from_file == rows, f"state --as-of {seq} differs from the live projection then"


def test_the_offline_auditor_loads_no_database_layer_and_no_flask():
    code = "import ledger.audit, sys; assert 'sqlalchemy' not in sys.modules and 'flask' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
