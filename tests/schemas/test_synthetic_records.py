"""Synthetic records: deterministic per seed, realistic, and valid for their types."""

from __future__ import annotations

import datetime as dt
import json
import random

from schemas.registry import validate_claims
from schemas.resident_id import parse_resident_id
from schemas.synthetic import (
    AS_OF,
    generate_business_licence,
    generate_food_permit,
    generate_person,
    generate_staff_authorisation,
)
from schemas.uscc import parse_uscc


def _batch(seed: int, n: int):
    rng = random.Random(seed)
    for _ in range(n):
        licence = generate_business_licence(rng)
        permit = generate_food_permit(rng, licence)
        person = generate_person(rng)
        status = {"idx": rng.randrange(100_000), "uri": "https://elicence.cn/status/1"}
        auth = generate_staff_authorisation(rng, licence, person, licence_status=status)
        yield licence, permit, person, auth


def test_a_thousand_records_of_each_type_pass_validation():
    for licence, permit, person, auth in _batch(20250630, 1000):
        validate_claims("business-licence", licence)
        validate_claims("food-business-permit", permit)
        validate_claims("natural-person", person)
        validate_claims("staff-authorisation", auth)


def test_same_seed_same_records_and_other_seed_other_records():
    first = json.dumps(list(_batch(7, 20)), ensure_ascii=False)
    assert first == json.dumps(list(_batch(7, 20)), ensure_ascii=False)
    assert first != json.dumps(list(_batch(8, 20)), ensure_ascii=False)


def test_records_are_coherent_and_valid_on_the_reference_date():
    codes = set()
    premises_is_domicile = branches = 0
    for licence, permit, person, auth in _batch(3, 300):
        uscc = parse_uscc(licence["uscc"])
        assert (uscc.department.code, uscc.category) == ("9", "1")
        assert list(licence) == ["uscc", "name", "legal_representative", "registration"]
        reg = licence["registration"]
        assert reg["registration_authority"].endswith(("市场监督管理局", "监管局"))
        assert reg["establishment_date"] <= reg["issue_date"] <= AS_OF.isoformat()
        term = reg["business_term"]
        assert term["long_term"] == (term["to"] is None)
        assert term["to"] is None or term["to"] >= AS_OF.isoformat()
        codes.add(licence["uscc"])
        assert permit["uscc"] == licence["uscc"] and permit["operator_name"] == licence["name"]
        assert permit["permit_number"][3:9] == licence["uscc"][2:8]
        assert permit["legal_representative"] == licence["legal_representative"]
        assert permit["valid_from"] <= AS_OF.isoformat() <= permit["valid_to"]
        assert permit["valid_from"] >= reg["establishment_date"]
        premises_is_domicile += permit["business_premises"] == reg["domicile"]
        branches += "registered_capital" not in reg
        rid = parse_resident_id(person["id_number"])
        assert rid.birthdate.isoformat() == person["birthdate"] and rid.gender == person["gender"]
        b = rid.birthdate
        age = AS_OF.year - b.year - ((AS_OF.month, AS_OF.day) < (b.month, b.day))
        assert person["age_over_18"] is (age >= 18) and person["age_over_60"] is (age >= 60)
        assert auth["enterprise_uscc"] == licence["uscc"] and auth["staff_name"] == person["name"]
        assert auth["enterprise_name"] == licence["name"]
        assert auth["granted_by"]["name"] == licence["legal_representative"]
    assert len(codes) == 300
    assert 150 < premises_is_domicile < 300  # the permit reads the domicile from registration
    assert 0 < branches < 60


def test_reference_date_is_a_parameter_not_the_clock():
    rng = random.Random(1)
    person = generate_person(rng, as_of=dt.date(2000, 1, 1))
    assert person["birthdate"] <= "1982-01-01"
    licence = generate_business_licence(random.Random(1), as_of=dt.date(2010, 1, 1))
    assert licence["registration"]["issue_date"] <= "2010-01-01"
