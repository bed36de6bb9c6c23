"""The compiled first pass (schemas.compiled) decides exactly as the reference validator does.

Every built-in type is checked on valid synthetic records and on records with one to three
mutations of every kind (wrong types, bad USCC check characters, bad and out-of-order dates, pattern
violations, strings too long or empty, extra and missing members, broken cross-field rules), and the
full ``validate_claims`` (compiled pass, then the reference validator for what it does not accept)
must raise the very errors, in the same order and words, as the reference validator alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import compiled
from schemas.compiled import _plain, compile_acceptor
from schemas.errors import SchemaError
from schemas.registry import REGISTERED_CLAIMS, CredentialType, get_type
from schemas.synthetic import (
    generate_business_licence,
    generate_food_permit,
    generate_person,
    generate_staff_authorisation,
)
from schemas.uscc import ALPHABET

pytestmark = pytest.mark.skipif(get_type("business-licence")._accepts is None,
                                reason="jsonschema-rs is not installed: there is no compiled pass")

TYPES = ("business-licence", "food-business-permit", "natural-person", "staff-authorisation")
EQUIVALENCE = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid(slug: str, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    if slug == "business-licence":
        return generate_business_licence(rng)
    if slug == "food-business-permit":
        return generate_food_permit(rng, generate_business_licence(rng))
    if slug == "natural-person":
        return generate_person(rng)
    status = {"idx": rng.randrange(0, 1 << 20), "uri": "https://elicence.cn/issuers/x/status/1"}
    return generate_staff_authorisation(rng, generate_business_licence(rng), generate_person(rng),
                                        licence_status=status if rng.random() < 0.5 else None)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        out.append(prefix + (key,))
        out.extend(_paths(value, prefix + (key,)))
    return out


def _bad_check_character(uscc: str) -> str:
    return uscc[:17] + next(c for c in ALPHABET[::-1] if c != uscc[17])


# Strings that break one rule or another of the schemas (and some that break none).
_NASTY_STRINGS = st.sampled_from([
    "", " ", "\n", "2023-02-29", "2023-2-01", "2023-01-01\n", "２０２３-０１-０１", "0000-01-01", "2024-02-29",
    "01", "1.", "1.1234567", "100\n", "1e3", "-1", "cny", "CNY\n", "CN ", "cn", "JY1350102001234", "JY43501020012345",
    "JY13501020012345\n", "91350100M000100Y43", "91350100m000100y43", "91350100M000100Y4", "9135O100M000100Y43",
    "11010519491231002X", "110105194912310021", "male", "female", "other", "餐饮服务经营者", "食品销售经营者", "单位食堂",
    "legal_representative", "licence_administrator", "https://elicence.cn/s/1", "http://example.com/s",
    "https://a\x1cb", "http://127.0.0.1:8000/s", "0" * 64, "0" * 65, "\ud800", "x" * 100, "x" * 101, "x" * 200,
    "x" * 201, "x" * 5000, "x" * 5001,
])
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), _NASTY_STRINGS,
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)).map(dt.date.isoformat),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3),
    st.lists(inner, max_size=2).map(tuple)), max_leaves=5)


@st.composite
def _mutated(draw: Any, slug: str) -> dict[str, Any]:
    claims = _valid(slug, draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(claims)
        kind = draw(st.sampled_from(["replace", "delete", "extra", "uscc", "date", "same_date", "long_term", "grow"]))
        path = draw(st.sampled_from(paths)) if paths else ()
        parent: Any = claims
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1] if path else None
        if kind == "replace" and path:
            parent[last] = draw(_VALUES)
        elif kind == "delete" and path:
            if isinstance(parent, dict):
                del parent[last]
            else:
                parent.pop(last)
        elif kind == "extra":
            target = parent if isinstance(parent, dict) else claims
            target[draw(st.sampled_from(["extra", "to", "all", "matters", "id_number", "vct", "iss"]))] = draw(_VALUES)
        elif kind == "uscc":
            for key in ("uscc", "enterprise_uscc"):
                if isinstance(claims.get(key), str) and len(claims[key]) == 18:
                    claims[key] = _bad_check_character(claims[key])
        elif kind in ("date", "same_date") and path and isinstance(parent.get(last) if isinstance(parent, dict) else None, str):
            day = draw(st.dates(min_value=dt.date(1949, 1, 1), max_value=dt.date(2060, 12, 31)))
            parent[last] = day.isoformat() if kind == "date" else parent[last]
        elif kind == "grow" and path and isinstance(parent[last], list):  # around minItems / maxItems
            parent[last] = [f"{i:012d}" for i in range(draw(st.sampled_from([0, 1, 49, 50, 51, 199, 200, 201])))]
        elif kind == "long_term":
            term = claims.get("registration", {}).get("business_term") if isinstance(claims.get("registration"), dict) else None
            if isinstance(term, dict):
                term["long_term"] = not term.get("long_term")
    return claims


def _reference(ctype: CredentialType) -> CredentialType:
    return dataclasses.replace(ctype, _accepts=None)


def _outcome(ctype: CredentialType, claims: Any) -> list[tuple[str, str, str]] | None:
    try:
        ctype.validate_claims(claims)
    except SchemaError as exc:
        return [(e.path, e.message_zh, e.message_en) for e in exc.errors]
    return None


def _agree(slug: str, claims: dict[str, Any]) -> None:
    ctype = get_type(slug)
    subject = {k: v for k, v in claims.items() if k not in REGISTERED_CLAIMS}
    reference_accepts = not any(True for _ in ctype._validator.iter_errors(subject))
    accepts = ctype._accepts(subject)
    if _plain(subject):
        assert accepts == reference_accepts, (slug, claims)
    else:  # values the compiled pass does not take are left to the reference validator
        assert accepts is False
    assert _outcome(ctype, claims) == _outcome(_reference(ctype), claims)


@pytest.mark.parametrize("slug", TYPES)
@EQUIVALENCE
@given(seed=st.integers(0, 2**32))
def test_valid_synthetic_records_are_accepted_by_the_compiled_pass(slug: str, seed: int) -> None:
    claims = _valid(slug, seed)
    assert get_type(slug)._accepts(claims) is True
    _agree(slug, claims)


@pytest.mark.parametrize("slug", TYPES)
@EQUIVALENCE
@given(data=st.data())
def test_mutated_records_get_the_same_decision_and_errors_from_both_paths(slug: str, data: Any) -> None:
    _agree(slug, data.draw(_mutated(slug)))


# --- the cases the compiled pass leaves to the reference validator, each with its error ----------------


def _left_to_the_reference(slug: str, claims: dict[str, Any]) -> list[Any]:
    """The errors of claims the compiled pass does not accept (and the reference validator refuses)."""
    assert get_type(slug)._accepts(claims) is False
    with pytest.raises(SchemaError) as caught:
        get_type(slug).validate_claims(claims)
    assert caught.value.code == "schema_invalid"
    return list(caught.value.errors)


def test_a_tuple_where_the_schema_wants_an_array_is_refused_as_before() -> None:
    permit = _valid("food-business-permit", 1)
    permit["business_items"] = tuple(permit["business_items"])
    assert [e.path for e in _left_to_the_reference("food-business-permit", permit)] == ["business_items"]


def test_a_pattern_is_python_s_with_the_ecma_end_of_string_rule() -> None:
    licence = _valid("business-licence", 2)
    licence["registration"]["registered_capital"] = {"amount": "100\n", "currency": "CNY"}
    errors = _left_to_the_reference("business-licence", licence)
    assert [e.path for e in errors] == ["registration.registered_capital.amount"]


def test_a_bad_uscc_check_character_is_refused_with_the_expected_character() -> None:
    licence = _valid("business-licence", 3)
    licence["uscc"] = _bad_check_character(licence["uscc"])
    assert f"'{licence['uscc'][17]}'" in _left_to_the_reference("business-licence", licence)[0].message_en


@pytest.mark.parametrize("value", [1.0, 2**64, float("nan"), "\ud800"])
def test_values_outside_plain_json_are_not_accepted_by_the_compiled_pass(value: Any) -> None:
    person = _valid("natural-person", 4)
    person["extra"] = value
    assert [e.path for e in _left_to_the_reference("natural-person", person)] == ["extra"]


def test_claims_nested_deeper_than_the_compiled_pass_can_walk_are_left_to_the_reference() -> None:
    licence = _valid("business-licence", 5)
    node = licence["registration"]
    for _ in range(sys.getrecursionlimit()):
        node["nested"] = node = {}
    errors = _left_to_the_reference("business-licence", licence)
    assert [e.path for e in errors] == ["registration.nested"]


def test_a_schema_with_a_keyword_not_vetted_gets_no_compiled_pass() -> None:
    keywords = {"pattern": lambda *a: iter(())}
    assert compile_acceptor({"type": "number", "multipleOf": 0.1}, formats={}, keywords=keywords) is None
    assert compile_acceptor({"anyOf": [{"type": "string"}]}, formats={}, keywords=keywords) is None
    assert compile_acceptor({"properties": {"a": {"$ref": "#"}}}, formats={}, keywords=keywords) is None
    assert compile_acceptor({"properties": {"a": {"type": "string"}}}, formats={}, keywords=keywords) is not None


def test_without_jsonschema_rs_the_reference_validator_decides_alone(monkeypatch) -> None:
    monkeypatch.setattr(compiled, "jsonschema_rs", None)
    assert compile_acceptor({"type": "string"}, formats={}, keywords={"pattern": lambda *a: iter(())}) is None


def test_without_the_pattern_keyword_of_the_caller_there_is_no_compiled_pass() -> None:
    # jsonschema-rs's own regular expressions are not Python's: patterns must be the caller's.
    assert compile_acceptor({"type": "string", "pattern": "^a$"}, formats={}, keywords={}) is None
