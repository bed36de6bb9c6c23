"""The audit hash chain (credentials.audit): canonical JSON, record hashes, and every way to break a chain."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credentials import audit
from credentials.audit import GENESIS, AuditChainBroken, AuditRecord, ChainHead
from credentials.errors import CredentialError, Malformed, PayloadTooLarge

T0 = datetime(2026, 9, 21, 13, 46, 40, tzinfo=timezone.utc)


def make_chain(n: int, chain: str = "shanghai-amr") -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for i in range(n):
        records.append(
            audit.next_record(
                records[-1] if records else None,
                chain=chain,
                at=T0 + timedelta(seconds=i),
                actor="operator-1",
                action="credential.issued" if i % 2 else "credential.revoked",
                subject=f"cred-{i}",
                details={"idx": i, "reason": "吊销" if i % 3 == 0 else None, "vct": "https://elicence.cn/vct/bl"},
            )
        )
    return records


# --- canonical JSON ------------------------------------------------------------------------------------


def test_canonical_json_sorts_keys_and_drops_whitespace():
    assert audit.canonical_json({"b": [1, True, None], "a": "x"}) == b'{"a":"x","b":[1,true,null]}'


def test_canonical_json_writes_utf8_and_escapes_minimally():
    # RFC 8785 s3.2.2.2: only the quote, the backslash and control characters are escaped.
    assert audit.canonical_json("营业执照\n\"\\\x01\u2028") == '"营业执照\\n\\"\\\\\\u0001\u2028"'.encode("utf-8")


def test_canonical_json_sorts_keys_by_utf16_code_units():
    # RFC 8785 s3.2.3 example idea: U+1F600 (surrogates D83D DE00) sorts before U+FB33 in UTF-16,
    # though after it by code point.
    assert audit.canonical_json({"\ufb33": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\ufb33":1}'.encode("utf-8")


def test_canonical_json_matches_rfc8785_for_the_integer_subset():
    # RFC 8785 s3.2.2 sample structure, numbers kept to integers (floats are refused here).
    value = {"numbers": [333333333, 4, 2, 0, -1], "string": "€$\u000f\nA'B\"\\\\\"/", "literals": [None, True, False]}
    expected = '{"literals":[null,true,false],"numbers":[333333333,4,2,0,-1],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    assert audit.canonical_json(value) == expected.encode("utf-8")


_KEYS = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("\ufb33\uffff\U0001f600\U00010000a"), max_size=4)
_LEAVES = (st.none() | st.booleans() | st.integers(-(2**54), 2**54) | st.text(max_size=6)
           | st.sampled_from(["\ud800", "\u2028", "\x7f", "\U0001f600"]))
_JSON = st.recursive(_LEAVES, lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple)
                     | st.dictionaries(_KEYS, inner, max_size=4), max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(_JSON)
def test_canonical_json_fast_path_writes_what_the_rfc8785_encoder_writes(value):
    """The C encoder path (plain values) and the RFC 8785 encoder agree byte for byte, or refuse alike."""
    try:
        slow = audit._encode(value, 0).encode("utf-8")
    except (CredentialError, UnicodeEncodeError) as exc:
        with pytest.raises(type(exc) if isinstance(exc, CredentialError) else Malformed):
            audit.canonical_json(value)
        return
    assert audit.canonical_json(value) == slow


@pytest.mark.parametrize("depth", [31, 32, 33])
def test_canonical_json_fast_path_keeps_the_depth_limit(depth):
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    if depth <= 32:
        assert audit.canonical_json(value) == audit._encode(value, 0).encode("utf-8")
    else:
        with pytest.raises(PayloadTooLarge):
            audit.canonical_json(value)


def _nested(depth: int) -> list:
    value: list = [1]
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (1.5, Malformed),
        ({"a": float("nan")}, Malformed),
        (2**53, Malformed),
        ({1: "x"}, Malformed),
        (b"bytes", Malformed),
        ("\ud800", Malformed),
        (_nested(40), PayloadTooLarge),
    ],
)
def test_canonical_json_refuses_values_outside_the_subset(value, error):
    with pytest.raises(error) as exc:
        audit.canonical_json(value)
    assert exc.value.code == error.code


@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                    max_leaves=20))
def test_canonical_json_is_valid_json_that_round_trips(value):
    import json

    encoded = audit.canonical_json(value)
    assert json.loads(encoded) == value
    assert audit.canonical_json(json.loads(encoded)) == encoded


# --- record hashes ---------------------------------------------------------------------------------------


def test_record_hash_is_sha256_of_label_prev_hash_and_fields():
    fields = {"chain": "c", "seq": 1, "at": "2026-09-21T13:46:40.000000Z", "actor": "a", "action": "x",
              "subject": "s", "details": {}}
    expected = hashlib.sha256(
        b'["elicence-audit-v1","' + GENESIS.encode() + b'",{"action":"x","actor":"a","at":"2026-09-21T13:46:40.000000Z",'
        b'"chain":"c","details":{},"seq":1,"subject":"s"}]'
    ).hexdigest()
    assert audit.record_hash(GENESIS, fields) == expected


def test_first_record_links_to_genesis_and_the_next_to_it():
    first, second = make_chain(2)
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert len(first.hash) == 64 and int(first.hash, 16) >= 0


def test_times_are_hashed_in_utc_whatever_the_offset():
    cst = timezone(timedelta(hours=8))
    a = audit.next_record(None, chain="c", at=T0, actor="a", action="x", subject="s")
    b = audit.next_record(None, chain="c", at=T0.astimezone(cst), actor="a", action="x", subject="s")
    assert a.hash == b.hash
    assert audit.format_time(T0.astimezone(cst)) == "2026-09-21T13:46:40.000000Z"


def test_naive_time_is_refused():
    with pytest.raises(Malformed) as exc:
        audit.next_record(None, chain="c", at=datetime(2026, 1, 1), actor="a", action="x", subject="s")
    assert exc.value.code == "malformed"


def test_appending_after_another_chain_is_refused():
    (record,) = make_chain(1, chain="one")
    with pytest.raises(Malformed):
        audit.next_record(record, chain="two", at=T0, actor="a", action="x", subject="s")


def test_next_record_continues_from_a_head():
    records = make_chain(3)
    head = ChainHead(records[-1].chain, records[-1].seq, records[-1].hash)
    following = audit.next_record(head, chain=head.chain, at=T0, actor="a", action="x", subject="s")
    assert following.seq == 4 and following.prev_hash == records[-1].hash
    empty_head = ChainHead("c", 0, GENESIS)
    assert audit.next_record(empty_head, chain="c", at=T0, actor="a", action="x", subject="s").seq == 1


def test_details_are_read_only():
    (record,) = make_chain(1)
    with pytest.raises(TypeError):
        record.details["idx"] = 7  # type: ignore[index]
    assert record.details_json() == {"idx": 0, "reason": "吊销", "vct": "https://elicence.cn/vct/bl"}


# --- verification ---------------------------------------------------------------------------------------


def test_an_intact_chain_verifies():
    records = make_chain(10)
    assert audit.verify_chain(records) is None
    assert audit.check_chain(records) == 10
    head = ChainHead("shanghai-amr", 10, records[-1].hash)
    assert audit.verify_chain(records, head=head) is None
    assert audit.verify_chain([]) is None
    assert audit.verify_chain([], head=ChainHead("x", 0, GENESIS)) is None


TAMPERS = {
    "at": lambda r: dataclasses.replace(r, at=r.at + timedelta(microseconds=1)),
    "actor": lambda r: dataclasses.replace(r, actor="intruder"),
    "action": lambda r: dataclasses.replace(r, action="credential.reinstated"),
    "subject": lambda r: dataclasses.replace(r, subject="cred-other"),
    "details_value": lambda r: dataclasses.replace(r, details={**r.details_json(), "idx": 999}),
    "details_added": lambda r: dataclasses.replace(r, details={**r.details_json(), "note": ""}),
    "details_removed": lambda r: dataclasses.replace(r, details={}),
    "hash": lambda r: dataclasses.replace(r, hash="f" * 64),
    "prev_hash": lambda r: dataclasses.replace(r, prev_hash="0" * 63 + "1"),
    "seq": lambda r: dataclasses.replace(r, seq=r.seq + 100),
    "chain": lambda r: dataclasses.replace(r, chain="other"),
}


@pytest.mark.parametrize("field", sorted(TAMPERS))
@pytest.mark.parametrize("position", [0, 4, 9])
def test_tampering_with_any_field_is_found_at_that_record(field, position):
    records = make_chain(10)
    records[position] = TAMPERS[field](records[position])
    assert audit.verify_chain(records) == records[position].seq
    with pytest.raises(AuditChainBroken) as exc:
        audit.check_chain(records)
    assert exc.value.code == "audit_chain_broken"
    assert exc.value.seq == records[position].seq
    # Without a head the chain is named by its first record, which is the tampered one here.
    assert exc.value.chain == ("other" if (field, position) == ("chain", 0) else "shanghai-amr")


def test_rehashing_a_tampered_record_breaks_the_next_link():
    records = make_chain(5)
    forged = dataclasses.replace(records[2], actor="intruder")
    fields = audit.record_fields(chain=forged.chain, seq=forged.seq, at=forged.at, actor=forged.actor,
                                 action=forged.action, subject=forged.subject, details=forged.details)
    records[2] = dataclasses.replace(forged, hash=audit.record_hash(forged.prev_hash, fields))
    broken = audit.find_break(records)
    assert broken is not None and (broken.seq, broken.reason) == (4, "prev_hash_mismatch")


@pytest.mark.parametrize("position", [0, 3, 8])
def test_a_deleted_record_is_found_at_the_record_after_it(position):
    records = make_chain(10)
    del records[position]
    broken = audit.find_break(records)
    assert broken is not None and (broken.seq, broken.reason) == (position + 2, "seq_gap")


def test_reordered_records_are_found():
    records = make_chain(6)
    records[2], records[3] = records[3], records[2]
    assert audit.verify_chain(records) == 4


def test_an_inserted_record_is_found():
    records = make_chain(6)
    intruder = audit.next_record(records[2], chain="shanghai-amr", at=T0, actor="x", action="y", subject="z")
    records.insert(3, intruder)  # same seq as the genuine 4th record: the genuine one no longer links
    assert audit.verify_chain(records) == 4
    assert audit.find_break(records).reason == "seq_gap"


def test_a_duplicated_record_is_found():
    records = make_chain(4)
    records.insert(2, records[1])
    assert audit.verify_chain(records) == 2


def test_a_chain_must_start_at_seq_1():
    records = make_chain(4)[1:]
    broken = audit.find_break(records)
    assert broken is not None and (broken.seq, broken.reason) == (2, "seq_gap")


def test_truncation_is_found_only_against_the_head():
    records = make_chain(8)
    head = ChainHead("shanghai-amr", 8, records[-1].hash)
    assert audit.verify_chain(records[:6]) is None  # no anchor: a shorter chain looks whole
    broken = audit.find_break(records[:6], head=head)
    assert broken is not None and (broken.seq, broken.reason) == (7, "truncated")
    broken = audit.find_break([], head=head)
    assert broken is not None and (broken.seq, broken.reason) == (1, "truncated")


def test_records_beyond_the_head_are_found():
    records = make_chain(5)
    head = ChainHead("shanghai-amr", 3, records[2].hash)
    broken = audit.find_break(records, head=head)
    assert broken is not None and (broken.seq, broken.reason) == (4, "beyond_head")


def test_a_head_naming_another_last_record_is_found():
    records = make_chain(5)
    head = ChainHead("shanghai-amr", 5, "a" * 64)
    broken = audit.find_break(records, head=head)
    assert broken is not None and (broken.seq, broken.reason) == (5, "head_mismatch")


def test_a_record_of_another_chain_is_found():
    records = make_chain(3) + make_chain(3, chain="beijing-amr")[2:]
    broken = audit.find_break(records)
    assert broken is not None and (broken.seq, broken.reason) == (3, "chain_mismatch")


def test_unhashable_stored_details_are_reported_not_raised():
    records = make_chain(3)
    records[1] = dataclasses.replace(records[1], details={"x": 1.5})
    broken = audit.find_break(records)
    assert broken is not None and (broken.seq, broken.reason) == (2, "unhashable")


def test_verification_streams():
    consumed = []

    def records():
        for r in make_chain(5):
            consumed.append(r.seq)
            yield r

    assert audit.check_chain(records()) == 5
    assert consumed == [1, 2, 3, 4, 5]
