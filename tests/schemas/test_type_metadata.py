"""The built-in type folders: metadata consistent with schemas, labels in zh-CN and en, sd decisions.

These read the JSON files directly (not through the loader), so a loader bug cannot hide a bad file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import schemas

TYPES_DIR = Path(schemas.__file__).parent / "types"
SLUGS = sorted(p.name for p in TYPES_DIR.iterdir() if p.is_dir())
EXPECTED_VCT = {
    "business-licence": "https://elicence.cn/vct/business-licence",
    "food-business-permit": "https://elicence.cn/vct/food-business-permit",
    "natural-person": "https://elicence.cn/vct/natural-person",
    "staff-authorisation": "https://elicence.cn/vct/staff-authorisation",
}


def _load(slug: str) -> tuple[dict, dict]:
    folder = TYPES_DIR / slug
    meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    schema = json.loads((folder / meta["elicence"]["schema"]).read_text(encoding="utf-8"))
    return meta, schema


def _schema_claims(node: dict, prefix: tuple = ()) -> set[tuple]:
    out = set()
    for name, sub in node.get("properties", {}).items():
        out.add(prefix + (name,))
        out |= _schema_claims(sub, prefix + (name,))
    return out


def _sd(meta: dict) -> dict[tuple, str]:
    return {tuple(c["path"]): c.get("sd", "allowed") for c in meta["claims"]}


def test_the_four_types_exist_with_their_vct():
    assert SLUGS == sorted(EXPECTED_VCT)
    for slug, vct in EXPECTED_VCT.items():
        assert _load(slug)[0]["vct"] == vct


@pytest.mark.parametrize("slug", SLUGS)
def test_schema_is_valid_json_schema_2020_12_for_an_object(slug):
    _, schema = _load(slug)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object" and schema["additionalProperties"] is False


@pytest.mark.parametrize("slug", SLUGS)
def test_every_metadata_claim_is_in_the_schema_and_vice_versa(slug):
    meta, schema = _load(slug)
    described = [tuple(c["path"]) for c in meta["claims"]]
    assert len(described) == len(set(described)), "a claim is described twice"
    assert set(described) == _schema_claims(schema)


@pytest.mark.parametrize("slug", SLUGS)
def test_registered_jwt_claims_are_not_in_the_schema(slug):
    _, schema = _load(slug)
    assert not {"iss", "vct", "iat", "exp", "nbf", "cnf", "status"} & set(schema["properties"])


@pytest.mark.parametrize("slug", SLUGS)
def test_every_claim_has_a_label_in_zh_cn_and_en(slug):
    meta, _ = _load(slug)
    for claim in meta["claims"]:
        labels = {d["locale"]: d["label"] for d in claim["display"]}
        assert set(labels) == {"zh-CN", "en"}, claim["path"]
        assert all(v.strip() for v in labels.values())


@pytest.mark.parametrize("slug", SLUGS)
def test_type_display_has_names_and_rendering_in_zh_cn_and_en(slug):
    meta, _ = _load(slug)
    assert meta["name"] and meta["description"]
    display = {d["locale"]: d for d in meta["display"]}
    assert set(display) == {"zh-CN", "en"}
    for d in display.values():
        assert d["name"] and d["description"]
        simple = d["rendering"]["simple"]
        assert simple["background_color"].startswith("#") and simple["text_color"].startswith("#")


@pytest.mark.parametrize("slug", SLUGS)
def test_mandatory_matches_required_in_the_schema(slug):
    meta, schema = _load(slug)
    for claim in meta["claims"]:
        *parent_path, name = claim["path"]
        parent = schema
        for key in parent_path:
            parent = parent["properties"][key]
        assert claim.get("mandatory", False) == (name in parent.get("required", [])), claim["path"]


@pytest.mark.parametrize("slug", SLUGS)
def test_sd_is_always_or_never_as_the_draft_recommends(slug):
    meta, _ = _load(slug)
    assert set(_sd(meta).values()) <= {"always", "never"}


@pytest.mark.parametrize("slug", SLUGS)
def test_extension_member_is_consistent(slug):
    meta, _ = _load(slug)
    ext = meta["elicence"]
    described = {tuple(c["path"]) for c in meta["claims"]}
    assert ext["schema"] == "schema.json"
    assert ext["qr_claims"] and all(tuple(p) in described for p in ext["qr_claims"])
    assert isinstance(ext["validity_days"], int) and ext["validity_days"] > 0
    assert 0 <= ext["decoys"]["min"] <= ext["decoys"]["max"] and ext["decoys"]["reason"]


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


@pytest.mark.parametrize("slug", SLUGS)
def test_custom_messages_in_schemas_exist_in_both_languages(slug):
    _, schema = _load(slug)
    for node in _walk(schema):
        for keyword, words in node.get("x-messages", {}).items():
            assert keyword in node, f"x-messages for {keyword} beside no such keyword"
            assert set(words) == {"zh-CN", "en"}


# The decisions recorded in the brief and in schemas/README.md.


REGISTRATION_MEMBERS = {
    "entity_type", "registered_capital", "establishment_date", "business_term", "business_scope",
    "domicile", "registration_authority", "issue_date",
}


def test_business_licence_shows_code_name_and_representative_and_hides_the_rest_on_request():
    meta, schema = _load("business-licence")
    sd = _sd(meta)
    top = {p: v for p, v in sd.items() if len(p) == 1}
    assert top == {("uscc",): "never", ("name",): "never", ("legal_representative",): "never",
                   ("registration",): "always"}
    assert meta["elicence"]["qr_claims"] == [["uscc"], ["name"], ["legal_representative"]]
    assert meta["elicence"]["decoys"]["max"] == 0
    assert "公示信息" in meta["description"] and "decoy" in meta["description"]


def test_business_licence_register_fields_are_one_object_each_member_disclosable():
    """One top-level digest for registration, a recursive Disclosure per member (RFC 9901 s4.2.6);
    members' inner structure (registered capital, business term) is not separately disclosable."""
    meta, schema = _load("business-licence")
    sd = _sd(meta)
    members = {p[1]: v for p, v in sd.items() if len(p) == 2 and p[0] == "registration"}
    assert set(members) == REGISTRATION_MEMBERS
    assert set(members.values()) == {"always"}
    inner = {p: v for p, v in sd.items() if len(p) == 3}
    assert {p[1] for p in inner} == {"registered_capital", "business_term"}
    assert set(inner.values()) == {"never"}
    assert set(schema["properties"]["registration"]["properties"]) == REGISTRATION_MEMBERS
    # the decision and its measured figures are recorded with the type
    for words in ("registration", "version 24", "version 19", "869", "574"):
        assert words in meta["description"], words


def test_natural_person_discloses_nothing_by_default_and_recommends_decoys():
    meta, _ = _load("natural-person")
    assert set(_sd(meta).values()) == {"always"}
    assert meta["elicence"]["decoys"]["min"] > 0
    assert ["id_number"] not in meta["elicence"]["qr_claims"]
    assert ["age_over_18"] in meta["elicence"]["qr_claims"]


def test_staff_authorisation_never_lets_the_holder_hide_scope_term_or_licence_status():
    meta, _ = _load("staff-authorisation")
    sd = _sd(meta)
    for claim in ("scope", "valid_from", "valid_until", "licence_status", "enterprise_uscc"):
        assert sd[(claim,)] == "never"
    assert sd[("staff_account",)] == "always"


def test_types_with_an_end_date_bound_the_credential_lifetime():
    assert _load("food-business-permit")[0]["elicence"]["exp_not_after"] == ["valid_to"]
    assert _load("staff-authorisation")[0]["elicence"]["exp_not_after"] == ["valid_until"]
