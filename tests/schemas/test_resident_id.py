"""GB 11643-1999 resident ID numbers: structure, birth date, ISO 7064 MOD 11-2 check character."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import InvalidResidentId
from schemas.resident_id import (
    PROVINCE_CODES,
    WEIGHTS,
    is_valid_resident_id,
    make_resident_id,
    parse_resident_id,
    resident_id_check_char,
    validate_resident_id,
)

# Examples given in GB 11643-1999 itself (a Beijing woman born 1949, a Guangdong man born 1880).
STANDARD_EXAMPLES = [
    ("11010519491231002X", dt.date(1949, 12, 31), "female"),
    ("440524188001010014", dt.date(1880, 1, 1), "male"),
]


def _rejects(number: object, **kw) -> InvalidResidentId:
    with pytest.raises(InvalidResidentId) as info:
        validate_resident_id(number, **kw)
    assert info.value.code == "schema_invalid"
    return info.value


def test_weights_are_powers_of_two_mod_11():
    assert WEIGHTS == (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@pytest.mark.parametrize(("number", "born", "gender"), STANDARD_EXAMPLES)
def test_examples_of_the_standard_are_valid(number, born, gender):
    validate_resident_id(number)
    parsed = parse_resident_id(number)
    assert (parsed.birthdate, parsed.gender, parsed.region) == (born, gender, number[:6])
    assert resident_id_check_char(number[:17]) == number[17]


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("", "length"),
        ("11010519491231002", "length"),
        ("11010519491231002XX", "length"),
        ("11010519491231002x", "lowercase"),
        ("1101051949123100AX", "character"),
        ("11010519491231002Y", "character"),
        ("１10105194912310021", "character"),
        ("00010519491231002X", "region"),
        ("10010519491231002X", "region"),
        ("110105194902300028", "birthdate"),
        ("110105179912310025", "birthdate"),
        ("110105194912310021", "check"),
        (None, "type"),
        (110105194912310020, "type"),
    ],
)
def test_invalid_number_is_rejected_with_its_reason(number, reason):
    assert _rejects(number).reason == reason
    assert not is_valid_resident_id(number)


def test_wrong_check_character_names_the_right_one():
    err = _rejects("110105194912310021")
    assert err.expected == "X"
    assert "'X'" in err.message_zh and "'X'" in err.message_en


def test_birth_date_in_the_future_is_rejected_when_today_is_given():
    number = make_resident_id(region="310115", birthdate=dt.date(2030, 1, 1), sequence=11)
    validate_resident_id(number)  # without a reference date only the calendar is checked
    assert _rejects(number, today=dt.date(2025, 6, 30)).reason == "birthdate"
    validate_resident_id(number, today=dt.date(2030, 1, 1))


def test_foreigners_permanent_residence_number_with_9_prefix_is_accepted():
    first17 = "93115619900101001"
    validate_resident_id(first17 + resident_id_check_char(first17))


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"region": "31011", "birthdate": dt.date(1990, 1, 1), "sequence": 1}, "region"),
        ({"region": "310115", "birthdate": dt.date(1990, 1, 1), "sequence": 1000}, "sequence"),
        ({"region": "000000", "birthdate": dt.date(1990, 1, 1), "sequence": 1}, "region"),
    ],
)
def test_make_resident_id_refuses_invalid_parts(kwargs, reason):
    with pytest.raises(InvalidResidentId) as info:
        make_resident_id(**kwargs)
    assert info.value.reason == reason


@given(
    st.sampled_from(sorted(PROVINCE_CODES)),
    st.text(alphabet="0123456789", min_size=4, max_size=4),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2025, 12, 31)),
    st.integers(min_value=0, max_value=999),
)
def test_make_resident_id_always_validates_and_encodes_gender(province, rest, born, sequence):
    number = make_resident_id(region=province + rest, birthdate=born, sequence=sequence)
    parsed = parse_resident_id(number)
    assert parsed.birthdate == born
    assert parsed.gender == ("male" if sequence % 2 else "female")


@given(
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2025, 12, 31)),
    st.integers(min_value=0, max_value=999),
    st.integers(min_value=0, max_value=17),
    st.sampled_from("0123456789Xx"),
)
def test_any_single_character_substitution_is_detected(born, sequence, position, char):
    number = make_resident_id(region="310115", birthdate=born, sequence=sequence)
    if number[position] == char:
        return
    assert not is_valid_resident_id(number[:position] + char + number[position + 1 :])
