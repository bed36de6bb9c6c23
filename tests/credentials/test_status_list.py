"""Status List encoding (draft-ietf-oauth-status-list-18 s4, s7, Appendix C) and index allocation."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credentials.errors import PayloadTooLarge, StatusError, StatusListInvalid
from credentials.status_list import (
    ALLOWED_BITS,
    INVALID,
    SUSPENDED,
    VALID,
    StatusList,
    StatusListBuilder,
    allocate_indexes,
    check_status,
    mark_used,
    status_of,
)
from keys.jwk import b64u_encode

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "status-list" / "examples.json").read_text("utf-8"))
LISTS = VECTORS["lists"]

# The draft's lst values come from zlib (madler) at level 9; zlib-ng may compress differently.
EXACT_ZLIB = "ng" not in zlib.ZLIB_RUNTIME_VERSION


def _case_id(case: dict) -> str:
    return f"s{case['section'].split(',')[0]}-{case['name']}"


# --- the draft's examples -------------------------------------------------------------------------


@pytest.mark.parametrize("case", LISTS, ids=_case_id)
def test_draft_vector_decodes_to_its_statuses(case):
    lst = StatusList.from_json({"bits": case["bits"], "lst": case["lst"]})
    assert lst.bits == case["bits"]
    assert lst.size == case["size"]
    expected = {int(i): v for i, v in case["statuses"].items()}
    for idx, value in expected.items():
        assert lst.get(idx) == value
    # Every other entry is VALID: compare whole byte arrays against one rebuilt from the statuses.
    builder = StatusListBuilder(case["size"], case["bits"])
    builder.update(expected)
    assert lst.data == builder.freeze().data
    if "byte_array" in case:
        assert lst.data.hex() == case["byte_array"]


@pytest.mark.parametrize("case", LISTS, ids=_case_id)
def test_draft_vector_encodes_to_its_lst(case):
    builder = StatusListBuilder(case["size"], case["bits"])
    builder.update({int(i): v for i, v in case["statuses"].items()})
    encoded = builder.freeze().to_json()
    assert encoded["bits"] == case["bits"]
    if "compressed" in case:
        assert zlib.decompress(bytes.fromhex(case["compressed"])) == builder.freeze().data
    if EXACT_ZLIB:
        assert encoded["lst"] == case["lst"]
    else:  # pragma: no cover - only on zlib-ng builds
        assert StatusList.from_json(encoded) == builder.freeze()


def test_bits_are_packed_from_the_least_significant_bit():
    # s4.1 example: status[0] = 1 is bit 0 of byte 0, status[7] = 1 is bit 7, giving 0xB9.
    lst = StatusList.new(16, 1).with_status(0, 1).with_status(7, 1)
    assert lst.data == bytes([0x81, 0x00])
    two = StatusList.new(4, 2).with_status(0, 1).with_status(3, 3)
    assert two.data == bytes([0b11_00_00_01])


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", ALLOWED_BITS)
def test_every_bit_width_round_trips_all_values(bits):
    size = 8 * (1 << bits)
    builder = StatusListBuilder(size, bits)
    values = [i % (1 << bits) for i in range(size)]
    builder.update(enumerate(values))
    lst = builder.freeze()
    again = StatusList.from_json(json.loads(json.dumps(lst.to_json())))
    assert again == lst
    assert [again.get(i) for i in range(size)] == values


def test_size_is_rounded_up_to_whole_bytes():
    assert StatusList.new(10, 1).size == 16
    assert StatusList.new(10, 2).size == 12
    assert StatusList.new(1, 8).size == 1


def test_aggregation_uri_is_optional_and_kept_out_of_the_list_value():
    lst = StatusList.new(8, 1)
    as_json = lst.to_json(aggregation_uri="https://issuer.example/statuslists")
    assert as_json["aggregation_uri"] == "https://issuer.example/statuslists"
    assert StatusList.from_json(as_json) == lst
    assert "aggregation_uri" not in lst.to_json()


entries = st.integers(min_value=0, max_value=3).flatmap(
    lambda e: st.tuples(
        st.just(ALLOWED_BITS[e]),
        st.integers(min_value=1, max_value=600),
    )
)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), spec=entries)
def test_property_builder_get_and_encode_round_trip(data, spec):
    bits, size = spec
    size = StatusList.new(size, bits).size
    assignments = data.draw(
        st.dictionaries(st.integers(0, size - 1), st.integers(0, (1 << bits) - 1), max_size=50)
    )
    builder = StatusListBuilder(size, bits)
    builder.update(assignments)
    lst = builder.freeze()
    for idx in range(size):
        assert lst.get(idx) == assignments.get(idx, VALID)
    assert StatusList.from_json(lst.to_json()) == lst


@settings(max_examples=200, deadline=None)
@given(data=st.data(), spec=entries)
def test_property_with_status_changes_exactly_one_entry(data, spec):
    bits, size = spec
    base = StatusList.new(size, bits)
    seed = data.draw(st.dictionaries(st.integers(0, base.size - 1), st.integers(0, (1 << bits) - 1), max_size=20))
    builder = base.builder()
    builder.update(seed)
    before = builder.freeze()
    idx = data.draw(st.integers(0, before.size - 1))
    value = data.draw(st.integers(0, (1 << bits) - 1))
    after = before.with_status(idx, value)
    assert after.get(idx) == value
    assert all(after.get(i) == before.get(i) for i in range(before.size) if i != idx)
    assert before.get(idx) == seed.get(idx, VALID)  # the original value is untouched


# --- every check fails with its code --------------------------------------------------------------


def _lst(raw: bytes, **kw) -> str:
    return b64u_encode(zlib.compress(raw, **kw))


@pytest.mark.parametrize("bits", [0, 3, 5, 16, -1, True, "2", 2.0, None])
def test_bits_outside_1_2_4_8_is_status_list_invalid(bits):
    with pytest.raises(StatusListInvalid) as exc:
        StatusList.from_json({"bits": bits, "lst": _lst(b"\x00")})
    assert exc.value.code == "status_list_invalid"


@pytest.mark.parametrize("bits", [0, 3, 16])
def test_new_list_with_bad_bits_is_status_list_invalid(bits):
    with pytest.raises(StatusListInvalid) as exc:
        StatusList.new(8, bits)
    assert exc.value.code == "status_list_invalid"


@pytest.mark.parametrize(
    "obj",
    [
        "not an object",
        {"bits": 1},
        {"bits": 1, "lst": 5},
        {"bits": 1, "lst": "eNrbuRgAAhcBXQ=="},  # padding is not base64url
        {"bits": 1, "lst": "eNrbuRgAAhcBXQ+/"},  # base64 alphabet, not base64url
        {"bits": 1, "lst": "eNrbuRgAAhcBXR"},  # non-zero pad bits: a second spelling
        {"bits": 1, "lst": "AAAA"},  # not a ZLIB stream
        {"bits": 1, "lst": b64u_encode(zlib.compress(b"\xb9\xa3")[:-3])},  # truncated
        {"bits": 1, "lst": b64u_encode(zlib.compress(b"\xb9\xa3") + b"junk")},  # trailing data
        {"bits": 1, "lst": b64u_encode(zlib.compress(b""))},  # no entries at all
        {"bits": 1, "lst": "eNrbuRgAAhcBXQ", "aggregation_uri": 7},
    ],
    ids=[
        "not-object",
        "no-lst",
        "lst-not-string",
        "padded",
        "std-alphabet",
        "non-canonical",
        "not-zlib",
        "truncated",
        "trailing",
        "empty",
        "aggregation-uri-not-string",
    ],
)
def test_malformed_status_list_is_status_list_invalid(obj):
    with pytest.raises(StatusListInvalid) as exc:
        StatusList.from_json(obj)
    assert exc.value.code == "status_list_invalid"


@pytest.mark.parametrize("wbits", [-15, 31], ids=["raw-deflate", "gzip"])
def test_deflate_without_the_zlib_wrapper_is_refused(wbits):
    # s4.1: "DEFLATE [RFC1951] with the ZLIB [RFC1950] data format" - not raw DEFLATE, not gzip.
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    lst = b64u_encode(c.compress(b"\xb9\xa3") + c.flush())
    with pytest.raises(StatusListInvalid) as exc:
        StatusList.from_json({"bits": 1, "lst": lst})
    assert exc.value.code == "status_list_invalid"


def test_zip_bomb_is_payload_too_large_and_inflation_stops_at_the_bound():
    # 64 MiB of zeros compress to ~64 KiB; the bound here is 1024 entries (128 bytes at 1 bit).
    c = zlib.compressobj(9)
    bomb = c.compress(bytes(64 << 20)) + c.flush()
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge) as exc:
        StatusList.from_json({"bits": 1, "lst": b64u_encode(bomb)}, max_size=1024)
    assert exc.value.code == "payload_too_large"


def test_default_bound_refuses_more_than_default_max_size_entries():
    too_big = zlib.compress(bytes((1 << 22) // 4 + 1), 9)  # one byte more than 2^22 two-bit entries
    with pytest.raises(PayloadTooLarge) as exc:
        StatusList.from_json({"bits": 2, "lst": b64u_encode(too_big)})
    assert exc.value.code == "payload_too_large"
    exactly = zlib.compress(bytes((1 << 22) // 4), 9)
    assert StatusList.from_json({"bits": 2, "lst": b64u_encode(exactly)}).size == 1 << 22


@pytest.mark.parametrize("idx", [16, 17, 10**9, -1, True, 1.0, "3", None])
def test_index_out_of_range_or_not_an_index_is_status_list_invalid(idx):
    lst = StatusList.new(16, 1)
    with pytest.raises(StatusListInvalid) as exc:
        status_of(lst, idx)
    assert exc.value.code == "status_list_invalid"


@pytest.mark.parametrize("value", [4, -1, True, 1.0])
def test_value_that_does_not_fit_is_status_list_invalid(value):
    with pytest.raises(StatusListInvalid):
        StatusList.new(8, 2).with_status(0, value)
    builder = StatusListBuilder(8, 2)
    with pytest.raises(StatusListInvalid):
        builder.set(0, value)
    with pytest.raises(StatusListInvalid):
        builder.update([(0, value)])


def test_builder_update_refuses_out_of_range_index():
    with pytest.raises(StatusListInvalid) as exc:
        StatusListBuilder(8, 2).update({8: 1})
    assert exc.value.code == "status_list_invalid"


# --- status values (s7) ---------------------------------------------------------------------------


def test_valid_passes_check_status():
    assert check_status(VALID) is None


@pytest.mark.parametrize("value,code", [(INVALID, "revoked"), (SUSPENDED, "suspended")])
def test_invalid_and_suspended_raise_their_codes(value, code):
    with pytest.raises(StatusError) as exc:
        check_status(value)
    assert exc.value.code == code


@pytest.mark.parametrize("value", [0x03, 0x0C, 0x0F, 0x10, 0xFF])
def test_application_specific_and_reserved_values_fail_closed(value):
    with pytest.raises(StatusError) as exc:
        check_status(value)
    assert exc.value.code == "status_error"
    assert f"{value:#04x}" in exc.value.detail


# --- index allocation (s12.5, s13.3) --------------------------------------------------------------


def test_allocation_is_random_distinct_and_avoids_used_indexes_in_a_set():
    used = {0, 1, 2, 3, 500}
    got = allocate_indexes(used, 100, 1000, rng=random.Random(7))
    assert len(set(got)) == 100
    assert not used.intersection(got)
    assert all(0 <= i < 1000 for i in got)
    assert got != sorted(got)  # not sequential
    assert allocate_indexes(used, 100, 1000, rng=random.Random(7)) == got  # rng is the only randomness


def test_allocation_over_a_bitmap_never_reuses_and_fills_the_list_exactly():
    size = 4096
    bitmap = mark_used(None, [], size)
    rng = random.Random(3)
    seen: list[int] = []
    while len(seen) < size:
        batch = allocate_indexes(bitmap, min(300, size - len(seen)), size, rng=rng)
        bitmap = mark_used(bitmap, batch, size)
        seen.extend(batch)
    assert sorted(seen) == list(range(size))  # dense path included: every index exactly once
    with pytest.raises(ValueError):
        allocate_indexes(bitmap, 1, size, rng=rng)


def test_allocation_does_not_mutate_its_input():
    bitmap = mark_used(None, [5], 64)
    used = {5}
    allocate_indexes(bytearray(bitmap), 10, 64, rng=random.Random(1))
    allocate_indexes(used, 10, 64, rng=random.Random(1))
    assert bitmap == mark_used(None, [5], 64) and used == {5}


def test_allocation_refuses_more_than_free_like_random_sample():
    with pytest.raises(ValueError):
        allocate_indexes({0, 1}, 3, 4, rng=random.Random(1))
    assert sorted(allocate_indexes({0, 1}, 2, 4, rng=random.Random(1))) == [2, 3]
    assert allocate_indexes(set(), 0, 4, rng=random.Random(1)) == []


def test_mark_used_refuses_double_allocation():
    bitmap = mark_used(None, [9], 16)
    with pytest.raises(ValueError):
        mark_used(bitmap, [9], 16)
    with pytest.raises(ValueError):
        mark_used(None, [3, 3], 16)
    with pytest.raises(ValueError):
        mark_used(None, [16], 16)


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 300),
    used=st.sets(st.integers(0, 299), max_size=300),
    seed=st.integers(0, 2**32),
    data=st.data(),
)
def test_property_allocation_returns_free_distinct_indexes(size, used, seed, data):
    used = {i for i in used if i < size}
    count = data.draw(st.integers(0, size - len(used)))
    bitmap = mark_used(None, sorted(used), size)
    for container in (used, bitmap):
        got = allocate_indexes(container, count, size, rng=random.Random(seed))
        assert len(got) == len(set(got)) == count
        assert all(0 <= i < size and i not in used for i in got)
