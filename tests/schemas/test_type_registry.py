"""The type loader: lookup, derived paths, extra type folders, and refusal of broken folders."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from schemas.errors import SchemaError, TypeDefinitionError, UnknownCredentialType
from schemas.registry import (
    CredentialType,
    all_types,
    default_registry,
    get_type,
    load_registry,
    load_type,
    path_to_str,
)

PHARMACY_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["licence_number", "uscc", "valid_to"],
    "properties": {
        "licence_number": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{7}$"},
        "uscc": {"type": "string", "format": "gb32100-uscc"},
        "valid_to": {"type": "string", "format": "date"},
        "warehouse": {
            "type": "object",
            "required": ["address"],
            "properties": {"address": {"type": "string"}},
        },
    },
}
PHARMACY_METADATA = {
    "vct": "https://example.cn/vct/pharmacy-licence",
    "name": "Pharmacy licence",
    "display": [{"locale": "zh-CN", "name": "药品经营许可证"}, {"locale": "en", "name": "Pharmacy licence"}],
    "claims": [
        {"path": ["licence_number"], "display": [{"locale": "zh-CN", "label": "证号"}, {"locale": "en", "label": "Licence number"}], "sd": "never", "mandatory": True},
        {"path": ["uscc"], "display": [{"locale": "zh-CN", "label": "统一社会信用代码"}, {"locale": "en", "label": "USCC"}], "sd": "never", "mandatory": True},
        {"path": ["valid_to"], "display": [{"locale": "zh-CN", "label": "有效期至"}, {"locale": "en", "label": "Valid until"}], "sd": "never", "mandatory": True},
        {"path": ["warehouse"], "display": [{"locale": "zh-CN", "label": "仓库"}, {"locale": "en", "label": "Warehouse"}], "sd": "always"},
        {"path": ["warehouse", "address"], "display": [{"locale": "zh-CN", "label": "仓库地址"}, {"locale": "en", "label": "Warehouse address"}], "mandatory": True},
    ],
    "elicence": {"schema": "schema.json", "qr_claims": [["licence_number"]], "validity_days": 30, "exp_not_after": ["valid_to"]},
}


def _write_type(root: Path, slug: str = "pharmacy-licence", *, schema=None, metadata=None) -> Path:
    folder = root / slug
    folder.mkdir(parents=True)
    (folder / "schema.json").write_text(json.dumps(schema or PHARMACY_SCHEMA, ensure_ascii=False), encoding="utf-8")
    (folder / "metadata.json").write_text(json.dumps(metadata or PHARMACY_METADATA, ensure_ascii=False), encoding="utf-8")
    return folder


def test_types_are_found_by_vct_and_by_slug():
    t = get_type("https://elicence.cn/vct/business-licence")
    assert t is get_type("business-licence")
    assert (t.slug, t.name_zh, t.name_en) == ("business-licence", "营业执照", "Business licence")
    assert [t.slug for t in all_types()] == [
        "business-licence", "food-business-permit", "natural-person", "staff-authorisation"
    ]
    assert len(default_registry()) == 4


@pytest.mark.parametrize("key", ["nope", "https://elicence.cn/vct/Business-Licence", "", None, 7])
def test_unknown_type_is_a_coded_error(key):
    with pytest.raises(UnknownCredentialType) as info:
        get_type(key)
    assert info.value.code == "unknown_credential_type"


REGISTRATION_MEMBERS = (
    "entity_type", "registered_capital", "establishment_date", "business_term", "business_scope",
    "domicile", "registration_authority", "issue_date",
)


def test_derived_paths_of_the_business_licence():
    t = get_type("business-licence")
    assert t.always_visible_paths == (("uscc",), ("name",), ("legal_representative",))
    # one selectively disclosable object, each member selectively disclosable (RFC 9901 s4.2.6):
    # the parent first, then its members in metadata order
    assert t.sd_paths == (("registration",),) + tuple(("registration", m) for m in REGISTRATION_MEMBERS)
    # a "never" member inside an "always" object is visible only when its parent is disclosed
    assert ("registration", "business_term", "from") not in t.sd_paths
    assert ("registration", "business_term", "from") not in t.always_visible_paths
    assert ("registration", "registered_capital") not in t.mandatory_paths
    assert ("uscc",) in t.mandatory_paths and ("registration",) in t.mandatory_paths
    assert t.default_qr_claims == (("uscc",), ("name",), ("legal_representative",))
    assert t.validity_days == 365 and t.exp_not_after is None and t.decoys.max == 0
    assert t.sd_policy(["registration"]) == "always"
    assert t.sd_policy(["registration", "business_scope"]) == "always"
    assert t.sd_policy(["registration", "registered_capital", "amount"]) == "never"


def test_labels_of_the_nested_business_licence_claims():
    t = get_type("business-licence")
    assert (t.label(("registration",)), t.label(("registration",), "en")) == ("登记事项", "Registration details")
    assert t.label(("registration", "business_scope")) == "经营范围"
    assert t.label(("registration", "issue_date"), "en") == "Date of issue"
    assert t.label(("registration", "business_term", "to"), "en") == "Term until"


@pytest.mark.parametrize("type_", all_types(), ids=lambda t: t.slug)
def test_the_parent_of_every_nested_sd_claim_is_listed_when_its_metadata_says_so(type_):
    for path in type_.sd_paths:
        for i in range(1, len(path)):
            parent = path[:i]
            assert (parent in type_.sd_paths) == (type_.sd_policy(parent) != "never"), (path, parent)
            if parent in type_.sd_paths:  # issued bottom-up, listed top-down
                assert type_.sd_paths.index(parent) < type_.sd_paths.index(path)


def test_disclosable_paths_are_the_sd_paths_present_in_a_record():
    t = get_type("business-licence")
    licence = {"uscc": "91350100M000100Y43", "name": "x", "legal_representative": "y",
               "registration": {m: "v" for m in REGISTRATION_MEMBERS}}
    assert t.disclosable_paths(licence) == t.sd_paths
    branch = copy.deepcopy(licence)
    del branch["registration"]["registered_capital"]  # a branch has no registered capital
    assert t.disclosable_paths(branch) == tuple(p for p in t.sd_paths if p != ("registration", "registered_capital"))
    assert t.disclosable_paths({"uscc": "x"}) == ()
    assert t.disclosable_paths({"registration": "not an object"}) == (("registration",),)


def test_disclosable_paths_expand_array_wildcards(tmp_path):
    schema = copy.deepcopy(PHARMACY_SCHEMA)
    schema["properties"]["drugs"] = {"type": "array", "items": {"type": "string"}}
    claims = PHARMACY_METADATA["claims"] + [
        {"path": ["drugs"], "display": [{"locale": "zh-CN", "label": "药品"}, {"locale": "en", "label": "Drugs"}], "sd": "never"},
        {"path": ["drugs", None], "display": [{"locale": "zh-CN", "label": "药品"}, {"locale": "en", "label": "Drug"}], "sd": "always"},
    ]
    t = load_type(_write_type(tmp_path, schema=schema, metadata=_meta(claims=claims)))
    assert ("drugs", None) in t.sd_paths
    record = {"licence_number": "AB1234567", "warehouse": {"address": "a"}, "drugs": ["x", "y"]}
    assert t.disclosable_paths(record) == (("warehouse",), ("warehouse", "address"), ("drugs", 0), ("drugs", 1))


def test_labels_per_path_and_locale():
    t = get_type("food-business-permit")
    assert t.label(("permit_number",)) == "许可证编号"
    assert t.label(("permit_number",), "en") == "Permit number"
    assert t.label(("business_items", 3), "en") == "Business items"  # array element -> the array
    assert t.display_name("en") == "Food business permit" and t.display_name() == "食品经营许可证"
    assert get_type("staff-authorisation").label(("granted_by", "role")) == "授权人身份"


def test_credential_type_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_type("natural-person").vct = "x"  # type: ignore[misc]


def test_path_to_str():
    assert path_to_str(("a", "b")) == "a.b"
    assert path_to_str(("items", 2, "x")) == "items[2].x"
    assert path_to_str(("items", None)) == "items[*]"


def test_adding_a_type_is_adding_a_folder(tmp_path):
    _write_type(tmp_path)
    registry = load_registry(tmp_path)
    assert len(registry) == 5
    t = registry.get("pharmacy-licence")
    assert isinstance(t, CredentialType) and t.vct == "https://example.cn/vct/pharmacy-licence"
    # "sd" omitted means "allowed" (draft-ietf-oauth-sd-jwt-vc); treated as selectively disclosable
    assert t.sd_policy(("warehouse", "address")) == "allowed"
    assert ("warehouse", "address") in t.sd_paths
    registry.validate_claims(t.vct, {"licence_number": "AB1234567", "uscc": "91350100M000100Y43", "valid_to": "2027-01-01"})
    with pytest.raises(SchemaError) as info:
        registry.validate_claims("pharmacy-licence", {"licence_number": "x", "uscc": "91350100M000100Y44", "valid_to": "2027-02-30"})
    assert [e.path for e in info.value.errors] == ["licence_number", "uscc", "valid_to"]
    assert "证号 (licence_number)" in info.value.errors[0].message_zh
    # the default registry is untouched
    with pytest.raises(UnknownCredentialType):
        get_type("pharmacy-licence")


def test_a_single_type_folder_can_be_given_directly(tmp_path):
    folder = _write_type(tmp_path)
    assert load_registry(folder, include_builtin=False).get("pharmacy-licence").slug == "pharmacy-licence"
    assert load_type(folder).validity_days == 30


def test_a_vct_used_twice_is_refused(tmp_path):
    meta = dict(PHARMACY_METADATA, vct="https://elicence.cn/vct/business-licence")
    _write_type(tmp_path, metadata=meta)
    with pytest.raises(TypeDefinitionError) as info:
        load_registry(tmp_path)
    assert info.value.code == "type_definition_invalid"


def test_a_slug_used_twice_is_refused(tmp_path):
    _write_type(tmp_path, "business-licence")
    with pytest.raises(TypeDefinitionError):
        load_registry(tmp_path)


def test_a_missing_directory_is_refused(tmp_path):
    with pytest.raises(TypeDefinitionError):
        load_registry(tmp_path / "nowhere")


def _meta(**changes):
    meta = copy.deepcopy(PHARMACY_METADATA)
    for key, value in changes.items():
        meta[key] = value
    return meta


def _claims_without(path):
    return [c for c in PHARMACY_METADATA["claims"] if c["path"] != path]


def _claim_with(which, **changes):
    out = copy.deepcopy(PHARMACY_METADATA["claims"])
    for c in out:
        if c["path"] == which:
            c.update(changes)
    return out


BROKEN = {
    "claim in metadata but not in schema": dict(metadata=_meta(claims=PHARMACY_METADATA["claims"] + [
        {"path": ["colour"], "display": [{"locale": "zh-CN", "label": "颜色"}, {"locale": "en", "label": "Colour"}]}])),
    "claim in schema but not in metadata": dict(metadata=_meta(claims=_claims_without(["valid_to"]))),
    "nested claim in schema but not in metadata": dict(metadata=_meta(claims=_claims_without(["warehouse", "address"]))),
    "mandatory but not required": dict(metadata=_meta(claims=_claim_with(["warehouse"], mandatory=True))),
    "required but not mandatory": dict(metadata=_meta(claims=_claim_with(["uscc"], mandatory=False))),
    "no en label": dict(metadata=_meta(claims=_claim_with(["uscc"], display=[{"locale": "zh-CN", "label": "代码"}]))),
    "empty label": dict(metadata=_meta(claims=_claim_with(["uscc"], display=[{"locale": "zh-CN", "label": "代码"}, {"locale": "en", "label": " "}]))),
    "bad sd value": dict(metadata=_meta(claims=_claim_with(["uscc"], sd="sometimes"))),
    "bad path": dict(metadata=_meta(claims=_claim_with(["uscc"], path=[]))),
    "no zh-CN type name": dict(metadata=_meta(display=[{"locale": "en", "name": "Pharmacy"}])),
    "no vct": dict(metadata=_meta(vct="")),
    "no extension": dict(metadata={k: v for k, v in PHARMACY_METADATA.items() if k != "elicence"}),
    "schema outside the folder": dict(metadata=_meta(elicence={"schema": "../schema.json", "validity_days": 1})),
    "qr claim not a claim": dict(metadata=_meta(elicence={"schema": "schema.json", "qr_claims": [["x"]], "validity_days": 1})),
    "no validity": dict(metadata=_meta(elicence={"schema": "schema.json"})),
    "exp_not_after not a date": dict(metadata=_meta(elicence={"schema": "schema.json", "validity_days": 1, "exp_not_after": ["uscc"]})),
    "decoys min above max": dict(metadata=_meta(elicence={"schema": "schema.json", "validity_days": 1, "decoys": {"min": 3, "max": 1}})),
    "invalid json schema": dict(schema=dict(PHARMACY_SCHEMA, type=5)),
    "schema not an object": dict(schema=dict(PHARMACY_SCHEMA, type="array")),
    "reserved claim name": dict(schema=dict(PHARMACY_SCHEMA, properties=dict(PHARMACY_SCHEMA["properties"], iss={"type": "string"}))),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_type_folder_is_refused_at_load(tmp_path, case):
    _write_type(tmp_path, **BROKEN[case])
    with pytest.raises(TypeDefinitionError) as info:
        load_registry(tmp_path)
    assert info.value.code == "type_definition_invalid"


@pytest.mark.parametrize(
    "text",
    ['{"vct": "a", "vct": "b"}', "{not json", "[]", b"\xff\xfe".decode("latin-1")],
    ids=["duplicate member", "not json", "not an object", "not utf-8"],
)
def test_a_metadata_file_that_is_not_a_clean_json_object_is_refused(tmp_path, text):
    folder = _write_type(tmp_path)
    (folder / "metadata.json").write_text(text, encoding="latin-1")
    with pytest.raises(TypeDefinitionError):
        load_registry(tmp_path)


def test_a_folder_name_that_is_not_a_slug_is_refused(tmp_path):
    _write_type(tmp_path, "Pharmacy_Licence")
    with pytest.raises(TypeDefinitionError):
        load_registry(tmp_path)


def test_folders_without_metadata_are_ignored(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("x", encoding="utf-8")
    assert len(load_registry(tmp_path)) == 4
