"""GB 32100-2015 unified social credit codes: vectors as data, check characters, make_uscc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import InvalidUscc, SchemaError
from schemas.uscc import (
    ALPHABET,
    DEPARTMENTS,
    WEIGHTS,
    is_valid_uscc,
    make_uscc,
    org_code_check_char,
    parse_uscc,
    uscc_check_char,
    validate_uscc,
)

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "gb32100" / "uscc.json").read_text(encoding="utf-8")
)


def _rejects(code: object) -> InvalidUscc:
    with pytest.raises(InvalidUscc) as info:
        validate_uscc(code)
    assert info.value.code == "schema_invalid"
    assert isinstance(info.value, SchemaError)
    return info.value


def test_weights_are_powers_of_three_mod_31_as_tabulated_in_the_standard():
    assert WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    assert len(ALPHABET) == 31 and not set("IOSVZ") & set(ALPHABET)


def test_worked_example_of_the_standard_reproduces_every_step():
    ex = VECTORS["worked_example"]
    code = ex["code"]
    total = sum(ALPHABET.index(c) * w for c, w in zip(code[:17], WEIGHTS))
    assert total == ex["weighted_sum"]
    assert total % 31 == ex["sum_mod_31"]
    assert uscc_check_char(code[:17]) == ex["check_character"]
    assert _rejects(ex["counter_example"]).reason == "forbidden_letter"


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["code"])
def test_published_code_is_accepted_and_parsed(vector):
    validate_uscc(vector["code"])
    assert is_valid_uscc(vector["code"])
    parts = parse_uscc(vector["code"])
    assert (parts.department.code, parts.category, parts.region) == (
        vector["department"], vector["category"], vector["region"]
    )
    assert parts.org_code == vector["code"][8:17] and parts.check == vector["code"][17]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: f"{v['reason']}:{v['note']}")
def test_invalid_code_is_rejected_with_its_reason(vector):
    err = _rejects(vector["code"])
    assert err.reason == vector["reason"]
    assert err.expected == vector.get("expected")
    assert err.message_zh and err.message_en
    assert not is_valid_uscc(vector["code"])


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["code"])
def test_every_wrong_check_character_is_rejected_and_the_right_one_named(vector):
    code = vector["code"]
    for c in ALPHABET:
        if c == code[17]:
            continue
        err = _rejects(code[:17] + c)
        assert err.reason == "check"
        assert err.expected == code[17]
        assert f"'{code[17]}'" in err.message_zh and f"'{code[17]}'" in err.message_en


def test_check_message_speaks_to_a_clerk_in_both_languages():
    err = _rejects("91350100M000100Y44")
    assert "第 18 位应为 '3'" in err.message_zh
    assert "character 18 should be '3'" in err.message_en
    assert str(err) == f"{err.message_zh} / {err.message_en}"
    assert err.to_dict() == {"error": "schema_invalid", "error_description": str(err)}


@pytest.mark.parametrize("value", [None, 91350100, b"91350100M000100Y43", ["91350100M000100Y43"]])
def test_non_string_is_rejected(value):
    assert _rejects(value).reason == "type"
    assert not is_valid_uscc(value)


def test_forbidden_letter_hint_suggests_the_digit_it_was_mistaken_for():
    err = _rejects("91350100O000100Y43")
    assert "'0'" in err.message_zh and "did you mean '0'" in err.message_en


def test_org_code_check_uses_gb11714_values_for_letters():
    # M = 22, Y = 34 in GB 11714 (full Latin alphabet), not their GB 32100 values 21 and 30.
    assert org_code_check_char("M000100Y") == "4"
    assert org_code_check_char("42500615") == "X"  # remainder 1 -> 10 -> X
    assert org_code_check_char("00000000") == "0"  # remainder 0 -> 11 -> 0


@pytest.mark.parametrize("bad", ["1234567", "123456789", "1234567O", "1234567a"])
def test_org_code_check_refuses_a_bad_body(bad):
    with pytest.raises(InvalidUscc) as info:
        org_code_check_char(bad)
    assert info.value.code == "schema_invalid"


@pytest.mark.parametrize("bad", ["9135010", "91350100M000100Y4O", "91350100M000100y4"])
def test_uscc_check_char_refuses_bad_input(bad):
    with pytest.raises(InvalidUscc) as info:
        uscc_check_char(bad)
    assert info.value.code == "schema_invalid"


def test_make_uscc_computes_position_17_before_position_18():
    code = make_uscc(department="9", category="1", region="350100", org_body="M000100Y")
    assert code == "91350100M000100Y43"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"department": "B", "category": "1", "region": "310115", "org_body": "MA1FL0X1"}, "department"),
        ({"department": "9", "category": "9", "region": "310115", "org_body": "MA1FL0X1"}, "category"),
        ({"department": "9", "category": "1", "region": "31011A", "org_body": "MA1FL0X1"}, "region"),
        ({"department": "9", "category": "1", "region": "310115", "org_body": "MA1FL0"}, "length"),
        ({"department": "9", "category": "1", "region": "310115", "org_body": "MA1FLOX1"}, "forbidden_letter"),
    ],
)
def test_make_uscc_refuses_invalid_parts(kwargs, reason):
    with pytest.raises(InvalidUscc) as info:
        make_uscc(**kwargs)
    assert info.value.reason == reason


_dept_and_category = st.sampled_from(
    [(d, c) for d, dept in DEPARTMENTS.items() for c in dept.categories]
)
_region = st.text(alphabet="0123456789", min_size=6, max_size=6)
_body = st.text(alphabet=ALPHABET, min_size=8, max_size=8)


@given(_dept_and_category, _region, _body)
def test_make_uscc_always_validates(dc, region, body):
    code = make_uscc(department=dc[0], category=dc[1], region=region, org_body=body)
    validate_uscc(code)
    assert code[8:16] == body and len(code) == 18


@given(
    _dept_and_category,
    _region,
    _body,
    st.integers(min_value=0, max_value=17),
    st.sampled_from(ALPHABET + "IOSVZabc-"),
)
def test_any_single_character_substitution_is_detected(dc, region, body, position, char):
    code = make_uscc(department=dc[0], category=dc[1], region=region, org_body=body)
    if code[position] == char:
        return
    mutated = code[:position] + char + code[position + 1 :]
    assert not is_valid_uscc(mutated)
    with pytest.raises(InvalidUscc):
        validate_uscc(mutated)
