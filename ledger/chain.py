"""The hash chain: canonical JSON and SHA-256 links. Pure and offline.

hash = sha256(prev_hash + "\\n" + canonical_json(envelope without hash)), genesis prev_hash
is 64 zeros. Nothing here touches a database, so an auditor can run it on an export alone.
"""
from __future__ import annotations

import hashlib
import json
import json.encoder
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

GENESIS_HASH = "0" * 64

# The hashed envelope's keys in sorted order; `hash` itself is never hashed.
ENVELOPE_FIELDS = (
    "data", "meta", "occurred_at", "prev_hash", "recorded_at",
    "schema", "seq", "stream", "type", "version",
)

_dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode
# The C string encoder json.dumps(ensure_ascii=False) itself uses, minus its per-call set-up.
_str = json.encoder.encode_basestring


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 characters kept as they are, no NaN."""
    return _dumps(value)


def link(prev_hash: str, canonical_text: str) -> str:
    """The next hash in the chain."""
    return hashlib.sha256((prev_hash + "\n" + canonical_text).encode("utf-8")).hexdigest()


def envelope_text(*, seq: int, stream: str, version: int, type: str, schema: int,
                  data_json: str, meta_json: str, occurred_at: str, recorded_at: str,
                  prev_hash: str) -> str:
    """canonical_json of the envelope, assembled from already-canonical data/meta text.

    Equal to canonical_json(envelope) whenever data_json and meta_json are canonical; it
    skips re-parsing the stored payloads, which is what keeps verify() and append() fast.
    """
    return _ENVELOPE % (data_json, meta_json, _str(occurred_at), _str(prev_hash), _str(recorded_at),
                        int(schema), int(seq), _str(stream), _str(type), int(version))


_ENVELOPE = ('{"data":%s,"meta":%s,"occurred_at":%s,"prev_hash":%s,"recorded_at":%s,'
             '"schema":%d,"seq":%d,"stream":%s,"type":%s,"version":%d}')


def export_line(hashed_text: str, hash_: str) -> str:
    """One export line (without its newline): the hashed envelope's canonical text plus its hash,
    so anyone can recompute the chain from the export alone. The one builder of it."""
    return hashed_text[:-1] + ',"hash":"' + hash_ + '"}'



@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    head_seq: int
    head_hash: str
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict:
        return {"ok": self.ok, "head": {"seq": self.head_seq, "hash": self.head_hash},
                "checked": self.checked, "first_bad_seq": self.first_bad_seq,
                **({"reason": self.reason} if self.reason else {})}


class ChainWalker:
    """Feeds envelopes one by one; stops at the first break.

    Catches an edited row (hash mismatch), a deleted row (seq gap or prev_hash mismatch) and a
    reordered pair (seq out of order). With prev_seq=None a contiguous range is checked on its
    own: its first event's seq and prev_hash are taken as given.
    """

    def __init__(self, prev_seq: int | None = 0, prev_hash: str | None = GENESIS_HASH):
        self.prev_seq, self.prev_hash = prev_seq, prev_hash
        self.checked = 0
        self.bad_seq: int | None = None
        self.reason: str | None = None

    def feed(self, seq: int, prev_hash: str, text: str, stored_hash: str) -> bool:
        if self.bad_seq is not None:
            return False
        if self.prev_seq is None:
            self.prev_seq, self.prev_hash = seq - 1, prev_hash
        expected = self.prev_seq + 1
        if seq != expected:
            return self.fail(min(seq, expected), "seq out of order or missing")
        if prev_hash != self.prev_hash:
            return self.fail(seq, "prev_hash does not match the previous event")
        if link(prev_hash, text) != stored_hash:
            return self.fail(seq, "hash does not match the content")
        self.prev_seq, self.prev_hash = seq, stored_hash
        self.checked += 1
        return True

    def fail(self, seq: int, reason: str) -> bool:
        self.bad_seq, self.reason = seq, reason
        return False

    def result(self) -> VerifyResult:
        return VerifyResult(self.bad_seq is None, self.prev_seq or 0,
                            self.prev_hash or GENESIS_HASH, self.checked, self.bad_seq, self.reason)


def walk_rows(walker: ChainWalker, rows: Iterable[tuple]) -> None:
    """Feed stored rows (the events columns in order) to `walker` until the first break.

    ChainWalker.feed and envelope_text, inlined for the rows that check out (verify() runs this a
    million times; keyword calls and attribute lookups were a third of its time). The first row
    that does not is handed to feed() itself, so the seq and reason reported stay its own."""
    fmt, enc, sha256 = _ENVELOPE, _str, hashlib.sha256
    prev_seq, prev_hash, checked, text = walker.prev_seq, walker.prev_hash, 0, ""
    for seq, stream, version, type_, schema, data, meta, occurred, recorded, prev, stored in rows:
        if prev_seq is None:  # a range checked on its own: its first prev_hash is taken as given
            prev_seq, prev_hash = seq - 1, prev
        if seq != prev_seq + 1 or prev != prev_hash:
            break
        try:
            text = fmt % (data, meta, enc(occurred), enc(prev), enc(recorded), int(schema), int(seq),
                          enc(stream), enc(type_), int(version))
        except (TypeError, ValueError):  # a column edited into something not even well-typed
            walker.prev_seq, walker.prev_hash, walker.checked = prev_seq, prev_hash, walker.checked + checked
            walker.fail(seq, "a stored field has the wrong type")
            return
        if sha256((prev + "\n" + text).encode("utf-8")).hexdigest() != stored:
            break
        prev_seq, prev_hash, checked, text = seq, stored, checked + 1, ""
    else:
        walker.prev_seq, walker.prev_hash, walker.checked = prev_seq, prev_hash, walker.checked + checked
        return
    walker.prev_seq, walker.prev_hash, walker.checked = prev_seq, prev_hash, walker.checked + checked
    walker.feed(seq, prev, text, stored)


def verify_envelopes(envelopes: Iterable[Mapping[str, Any]], prev_seq: int = 0,
                     prev_hash: str | None = GENESIS_HASH) -> VerifyResult:
    """Verify parsed envelopes (dicts with `hash`) with the documented formula alone."""
    walker = ChainWalker(prev_seq, prev_hash)
    for env in envelopes:
        body = {k: v for k, v in env.items() if k != "hash"}
        if not walker.feed(int(env.get("seq", -1)), str(env.get("prev_hash")),
                           canonical_json(body), str(env.get("hash"))):
            break
    return walker.result()
