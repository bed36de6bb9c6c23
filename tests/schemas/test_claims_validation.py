"""validate_claims: every type rejects bad input, naming the field by its path, listing all problems."""

from __future__ import annotations

import copy

import pytest

from schemas.errors import SchemaError, UnknownCredentialType
from schemas.registry import get_type, validate_claims

LICENCE = {
    "uscc": "91350100M000100Y43",
    "name": "福州恒瑞信息科技有限公司",
    "legal_representative": "张伟",
    "registration": {
        "entity_type": "有限责任公司（自然人投资或控股）",
        "registered_capital": {"amount": "100", "currency": "CNY"},
        "establishment_date": "2016-03-01",
        "business_term": {"from": "2016-03-01", "to": None, "long_term": True},
        "business_scope": "一般项目：软件开发；信息系统集成服务。（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）",
        "domicile": "福建省福州市鼓楼区中山路88号3幢1205室",
        "registration_authority": "福州市鼓楼区市场监督管理局",
        "issue_date": "2023-05-06",
    },
}
PERMIT = {
    "permit_number": "JY23501020012345",
    "uscc": "91350100M000100Y43",
    "operator_name": "福州恒瑞信息科技有限公司",
    "legal_representative": "张伟",
    "business_premises": "福建省福州市鼓楼区中山路88号",
    "main_business_format": "餐饮服务经营者",
    "business_items": ["热食类食品制售", "冷食类食品制售"],
    "valid_from": "2023-01-01",
    "valid_to": "2027-12-31",
    "issuing_authority": "福州市鼓楼区市场监督管理局",
}
PERSON = {
    "name": "王芳",
    "id_number": "11010519491231002X",
    "birthdate": "1949-12-31",
    "gender": "female",
    "nationality": "CN",
    "age_over_18": True,
    "age_over_60": True,
}
AUTHORISATION = {
    "enterprise_uscc": "91350100M000100Y43",
    "enterprise_name": "福州恒瑞信息科技有限公司",
    "staff_name": "李强",
    "staff_account": "wa_0123456789abcdef",
    "scope": {"matters": ["000105003000", "000105004000"]},
    "valid_from": "2025-01-01",
    "valid_until": "2025-12-31",
    "granted_by": {"name": "张伟", "role": "legal_representative"},
    "licence_status": {"idx": 4711, "uri": "https://elicence.cn/status/3"},
}
VALID = {
    "business-licence": LICENCE,
    "food-business-permit": PERMIT,
    "natural-person": PERSON,
    "staff-authorisation": AUTHORISATION,
}


def _with(record: dict, path: tuple, value: object) -> dict:
    out = copy.deepcopy(record)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


_DELETE = object()


def _problems(slug: str, claims: object) -> dict[str, list[tuple[str, str]]]:
    """path -> [(message_zh, message_en), ...] of the SchemaError that validate_claims raises."""
    with pytest.raises(SchemaError) as info:
        validate_claims(slug, claims)
    err = info.value
    assert err.code == "schema_invalid"
    assert err.errors, "a schema error lists its problems"
    out: dict[str, list[tuple[str, str]]] = {}
    for path, zh, en in err.errors:
        if path:
            assert f"({path})" in zh and f"({path})" in en
        out.setdefault(path, []).append((zh, en))
    return out


@pytest.mark.parametrize("slug", sorted(VALID))
def test_valid_record_passes(slug):
    validate_claims(slug, VALID[slug])
    validate_claims(get_type(slug).vct, VALID[slug])


# (type, path to change, new value or _DELETE, reported path, words in the English message)
CASES = [
    # business licence
    ("business-licence", ("name",), _DELETE, "name", "required"),
    ("business-licence", ("uscc",), 91350100, "uscc", "wrong type"),
    ("business-licence", ("uscc",), "91350100M000100Y44", "uscc", "should be '3'"),
    ("business-licence", ("uscc",), "91350100m000100Y43", "uscc", "lower case"),
    ("business-licence", ("registration",), _DELETE, "registration", "required"),
    ("business-licence", ("registration",), "登记事项", "registration", "wrong type"),
    ("business-licence", ("registration", "entity_type"), _DELETE, "registration.entity_type", "required"),
    ("business-licence", ("registration", "establishment_date"), "2023-02-30", "registration.establishment_date",
     "not a real calendar date"),
    ("business-licence", ("registration", "issue_date"), "2023/05/06", "registration.issue_date", "YYYY-MM-DD"),
    ("business-licence", ("registration", "issue_date"), "20230506", "registration.issue_date", "YYYY-MM-DD"),
    ("business-licence", ("registration", "issue_date"), "2023-05-06\n", "registration.issue_date", "YYYY-MM-DD"),
    ("business-licence", ("registration", "issue_date"), "２023-05-06", "registration.issue_date", "YYYY-MM-DD"),
    ("business-licence", ("registration", "issue_date"), "2016-02-29", "registration.issue_date",
     "earlier than date of establishment (2016-03-01)"),
    ("business-licence", ("registration", "business_term", "to"), "2046-02-28", "registration.business_term.to",
     "must be null"),
    ("business-licence", ("registration", "business_term"), {"from": "2016-03-01", "to": None, "long_term": False},
     "registration.business_term.to", "must be a date when the business term is not long-term"),
    ("business-licence", ("registration", "business_term"), {"from": "2016-03-01", "to": "2016-02-01", "long_term": False},
     "registration.business_term.to", "earlier than term from (2016-03-01)"),
    ("business-licence", ("registration", "business_term", "long_term"), _DELETE,
     "registration.business_term.long_term", "required"),
    ("business-licence", ("registration", "business_term", "long_term"), "yes",
     "registration.business_term.long_term", "true or false"),
    ("business-licence", ("registration", "registered_capital", "amount"), 100,
     "registration.registered_capital.amount", "wrong type"),
    ("business-licence", ("registration", "registered_capital", "amount"), "1,000",
     "registration.registered_capital.amount", "decimal"),
    ("business-licence", ("registration", "registered_capital", "currency"), "rmb",
     "registration.registered_capital.currency", "ISO 4217"),
    ("business-licence", ("registration", "business_scope"), "", "registration.business_scope", "must not be empty"),
    ("business-licence", ("registration", "nickname"), "x", "registration.nickname", "not a field of this credential type"),
    ("business-licence", ("registration", "_sd"), ["abc"], "registration._sd", "not a field of this credential type"),
    # the register fields are no longer top-level claims
    ("business-licence", ("business_scope",), "一般项目：软件开发。", "business_scope", "not a field of this credential type"),
    ("business-licence", ("nickname",), "x", "nickname", "not a field of this credential type"),
    ("business-licence", ("_sd",), ["abc"], "_sd", "not a field of this credential type"),
    # food business permit
    ("food-business-permit", ("permit_number",), "JY123", "permit_number", "JY followed by 14 digits"),
    ("food-business-permit", ("permit_number",), "JY23501020012345\n", "permit_number", "JY followed by 14"),
    ("natural-person", ("nationality",), "CN\n", "nationality", "ISO 3166-1"),
    ("food-business-permit", ("permit_number",), "JY43501020012345", "permit_number", "JY followed by 14 digits"),
    ("food-business-permit", ("permit_number",), "jy23501020012345", "permit_number", "JY followed by 14 digits"),
    ("food-business-permit", ("permit_number",), "JY13501020012345", "permit_number", "2 as the first digit"),
    ("food-business-permit", ("main_business_format",), "饭店", "main_business_format", "must be one of"),
    ("food-business-permit", ("business_items",), [], "business_items", "at least 1"),
    ("food-business-permit", ("business_items",), ["热食类食品制售", "热食类食品制售"], "business_items", "duplicates"),
    ("food-business-permit", ("business_items",), ["热食类食品制售", 7], "business_items[1]", "wrong type"),
    ("food-business-permit", ("valid_to",), "2022-12-31", "valid_to", "earlier than valid from"),
    ("food-business-permit", ("uscc",), "91350100M000100Y4", "uscc", "18 characters"),
    # natural person
    ("natural-person", ("id_number",), "110105194912310021", "id_number", "should be 'X'"),
    ("natural-person", ("id_number",), "110105194902300028", "id_number", "date of birth"),
    ("natural-person", ("birthdate",), "1949-12-30", "birthdate", "does not match the date of birth"),
    ("natural-person", ("gender",), "male", "gender", "does not match the gender"),
    ("natural-person", ("gender",), "f", "gender", "must be one of"),
    ("natural-person", ("age_over_18",), False, "age_over_18", "must be true for a person aged 60"),
    ("natural-person", ("nationality",), "CHN", "nationality", "ISO 3166-1"),
    ("natural-person", ("age_over_18",), "yes", "age_over_18", "true or false"),
    # staff authorisation
    ("staff-authorisation", ("scope",), {"all": True, "matters": ["000105003000"]}, "scope", "not both"),
    ("staff-authorisation", ("scope",), {}, "scope", "either"),
    ("staff-authorisation", ("scope",), {"all": False}, "scope.all", "must be true"),
    ("staff-authorisation", ("scope",), {"matters": []}, "scope.matters", "at least 1"),
    ("staff-authorisation", ("scope",), {"matters": ["a b"]}, "scope.matters[0]", "service item code"),
    ("staff-authorisation", ("scope",), {"some": True}, "scope.some", "not a field"),
    ("staff-authorisation", ("granted_by", "role"), "ceo", "granted_by.role", "legal_representative"),
    ("staff-authorisation", ("valid_until",), "2024-12-31", "valid_until", "earlier than valid from"),
    ("staff-authorisation", ("licence_status", "uri"), "http://elicence.cn/status/3", "licence_status.uri", "https://"),
    ("staff-authorisation", ("licence_status", "uri"), "http://127.0.0.1.evil.example/status/3", "licence_status.uri",
     "https://"),
    ("staff-authorisation", ("licence_status", "idx"), -1, "licence_status.idx", "less than 0"),
    ("staff-authorisation", ("licence_status", "idx"), 1.5, "licence_status.idx", "integer"),
    ("staff-authorisation", ("enterprise_uscc",), "94350100M000100Y43", "enterprise_uscc", "category"),
    ("staff-authorisation", ("staff_account",), _DELETE, "staff_account", "required"),
]


@pytest.mark.parametrize(
    ("slug", "path", "value", "reported", "words"),
    CASES,
    ids=[f"{c[0]}:{c[3]}:{c[4]}" for c in CASES],
)
def test_bad_value_is_rejected_naming_the_field(slug, path, value, reported, words):
    problems = _problems(slug, _with(VALID[slug], path, value))
    assert reported in problems, problems
    assert any(words in en for _, en in problems[reported]), problems[reported]


def test_message_names_the_field_in_chinese_and_english():
    problems = _problems("business-licence", _with(LICENCE, ("uscc",), "91350100M000100Y44"))
    [(zh, en)] = problems["uscc"]
    assert zh.startswith("统一社会信用代码 (uscc): 校验码错误")
    assert en.startswith("Unified social credit code (uscc): check character is wrong")


def test_message_of_a_nested_register_field_names_it_by_its_full_path():
    problems = _problems("business-licence", _with(LICENCE, ("registration", "issue_date"), "2016-02-29"))
    [(zh, en)] = problems["registration.issue_date"]
    assert zh == "发照日期 (registration.issue_date): 不能早于成立日期（2016-03-01）"
    assert en == ("Date of issue (registration.issue_date): "
                  "must not be earlier than date of establishment (2016-03-01)")


def test_all_problems_are_listed_not_just_the_first():
    bad = copy.deepcopy(LICENCE)
    bad["uscc"] = "91350100M000100Y44"
    del bad["name"]
    reg = bad["registration"]
    reg["establishment_date"] = "2023-02-30"
    reg["business_term"]["to"] = "2040-01-01"
    reg["registered_capital"]["currency"] = "yuan"
    reg["issue_date"] = "2015-01-01"
    reg["colour"] = "blue"
    bad["colour"] = "red"
    with pytest.raises(SchemaError) as info:
        validate_claims("business-licence", bad)
    paths = [e.path for e in info.value.errors]
    # in the order of the type's claims, also inside registration; unknown fields last (per object)
    assert paths == [
        "uscc",
        "name",
        "registration.registered_capital.currency",
        "registration.establishment_date",
        "registration.business_term.to",
        "registration.colour",
        "colour",
    ]
    assert all(str(e) in str(info.value) for e in info.value.errors)


def test_issue_date_is_checked_against_the_establishment_date_on_the_nested_paths():
    early = _with(LICENCE, ("registration", "issue_date"), "2016-02-29")
    assert list(_problems("business-licence", early)) == ["registration.issue_date"]
    validate_claims("business-licence", _with(LICENCE, ("registration", "issue_date"), "2016-03-01"))


def test_registered_jwt_claims_are_not_part_of_the_type():
    claims = dict(LICENCE, iss="https://amr.example.cn", vct=get_type("business-licence").vct,
                  iat=1, nbf=1, exp=2, cnf={"jwk": {}}, status={"status_list": {"idx": 1, "uri": "x"}})
    validate_claims("business-licence", claims)


def test_a_vct_of_another_type_in_the_claims_is_reported():
    claims = dict(LICENCE, vct=get_type("natural-person").vct)
    assert "vct" in _problems("business-licence", claims)


@pytest.mark.parametrize("claims", [None, [], "uscc", 42])
def test_claims_that_are_not_an_object_are_rejected(claims):
    assert "" in _problems("business-licence", claims)


def test_long_term_business_with_null_end_and_fixed_term_with_date_both_pass():
    validate_claims("business-licence", LICENCE)
    fixed = _with(LICENCE, ("registration", "business_term"),
                  {"from": "2016-03-01", "to": "2036-02-29", "long_term": False})
    validate_claims("business-licence", fixed)


def test_branch_without_registered_capital_passes():
    validate_claims("business-licence", _with(LICENCE, ("registration", "registered_capital"), _DELETE))


def test_scope_all_passes_and_licence_status_is_optional():
    validate_claims("staff-authorisation", _with(AUTHORISATION, ("scope",), {"all": True}))
    validate_claims("staff-authorisation", _with(AUTHORISATION, ("licence_status",), _DELETE))


def test_person_without_id_number_passes_and_minimal_person_is_checked():
    validate_claims("natural-person", _with(PERSON, ("id_number",), _DELETE))


def test_unknown_type_is_a_coded_error():
    with pytest.raises(UnknownCredentialType) as info:
        validate_claims("https://elicence.cn/vct/fishing-licence", LICENCE)
    assert info.value.code == "unknown_credential_type"


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8000/issuers/sh-amr/status/1", "http://localhost/status/1",
                                 "https://elicence.cn/status/3"])
def test_a_licence_status_list_on_https_or_on_the_loopback_host_is_accepted(uri):
    # A local demo (ELICENCE_PUBLIC_URL=http://127.0.0.1:8000) has no TLS: http on loopback only.
    validate_claims("staff-authorisation", _with(VALID["staff-authorisation"], ("licence_status", "uri"), uri))
