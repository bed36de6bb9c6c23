"""RFC 9285 Base45: the RFC's examples as vectors, strict decoding, and round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credentials.base45 import ALPHABET, b45decode, b45encode
from credentials.errors import CredentialError, Malformed

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "rfc9285" / "examples.json").read_text("utf-8"))
CASES = VECTORS["cases"]


def _case_id(case: dict) -> str:
    return f"rfc9285_s{case['section']}_{case['name']}"


def test_vectors_record_their_provenance() -> None:
    assert VECTORS["document"].startswith("RFC 9285")
    assert {c["section"] for c in CASES} == {"4.3", "4.4"}


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_rfc9285_example(case: dict) -> None:
    data = case["utf8"].encode("utf-8")
    assert [list(data[i : i + 2]) for i in range(0, len(data), 2)] == case["bytes"]
    # The RFC's intermediate rows: characters looked up in Table 1, in groups of three (or two).
    values = [ALPHABET.index(ch) for ch in case["base45"]]
    assert [values[i : i + 3] for i in range(0, len(values), 3)] == case["base45_values"]
    assert b45encode(data) == case["base45"]
    assert b45decode(case["base45"]) == data


def test_alphabet_is_table_1_and_the_qr_alphanumeric_set() -> None:
    assert len(ALPHABET) == 45 == len(set(ALPHABET))
    assert ALPHABET[:10] == "0123456789" and ALPHABET[10:36] == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert ALPHABET[36:] == " $%*+-./:"


def test_empty_input_encodes_to_empty_text() -> None:
    assert b45encode(b"") == ""
    assert b45decode("") == b""


def test_largest_values_are_accepted() -> None:
    assert b45encode(b"\xff\xff") == "FGW"
    assert b45decode("FGW") == b"\xff\xff"
    assert b45encode(b"\xff") == "U5"
    assert b45decode("U5") == b"\xff"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("bb8", id="lower_case"),
        pytest.param("BB=", id="padding_char"),
        pytest.param("BB_", id="underscore"),
        pytest.param("BB\n", id="newline"),
        pytest.param("B\u00c98", id="non_ascii"),
        pytest.param("\x00B8", id="nul"),
    ],
)
def test_character_outside_table_1_is_rejected(text: str) -> None:
    with pytest.raises(Malformed) as err:
        b45decode(text)
    assert err.value.code == "malformed"
    assert "alphabet" in str(err.value)


@pytest.mark.parametrize("text", ["A", "BB8A", "%69 VD92EX0QED8"[:13]], ids=["one", "four", "thirteen"])
def test_dangling_single_character_is_rejected(text: str) -> None:
    assert len(text) % 3 == 1
    with pytest.raises(Malformed) as err:
        b45decode(text)
    assert err.value.code == "malformed"
    assert "dangling" in str(err.value)


@pytest.mark.parametrize("text", ["GGW", ":::", "BB8GGW"], ids=["65536", "91124", "second_group"])
def test_triplet_above_65535_is_rejected(text: str) -> None:
    with pytest.raises(Malformed) as err:
        b45decode(text)
    assert err.value.code == "malformed"
    assert "65535" in str(err.value)


@pytest.mark.parametrize("text", ["V5", "::", "BB8V5"], ids=["256", "2024", "after_group"])
def test_final_pair_above_255_is_rejected(text: str) -> None:
    with pytest.raises(Malformed) as err:
        b45decode(text)
    assert err.value.code == "malformed"
    assert "255" in str(err.value)


@pytest.mark.parametrize("value", [b"BB8", None, 42])
def test_decode_of_non_text_is_malformed(value: object) -> None:
    with pytest.raises(Malformed) as err:
        b45decode(value)  # type: ignore[arg-type]
    assert err.value.code == "malformed"


def test_encode_of_text_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        b45encode("AB")  # type: ignore[arg-type]


@given(st.binary(max_size=2048))
def test_round_trip_of_any_bytes(data: bytes) -> None:
    text = b45encode(data)
    assert set(text) <= set(ALPHABET)
    assert len(text) == 3 * (len(data) // 2) + 2 * (len(data) % 2)
    assert b45decode(text) == data


@given(st.text(alphabet=ALPHABET, max_size=64) | st.text(max_size=64))
def test_decode_of_any_text_is_canonical_or_malformed(text: str) -> None:
    """Every accepted text is the one encoding of its bytes; everything else is ``malformed``."""
    try:
        data = b45decode(text)
    except CredentialError as exc:
        assert exc.code == "malformed"
    else:
        assert b45encode(data) == text
