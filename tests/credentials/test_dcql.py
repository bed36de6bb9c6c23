"""DCQL (OpenID4VP 1.0 s6, s7): parsing, claims path pointers, Wallet matching and the Verifier's check."""

from __future__ import annotations

import copy

import pytest

from credentials import dcql, jws
from credentials.dcql import (
    Candidate,
    DcqlNotSatisfied,
    InvalidDcqlQuery,
    check_answers,
    match,
    parse_query,
    select_claims,
)
from credentials.sd_jwt import SdJwt, present, process_disclosures
from credentials.sd_jwt_vc import issue_vc, verify_vc
from keys.signer import SoftwareSigner

VCT = "https://elicence.example.gov.cn/vct/business-licence/v1"
ID_VCT = "https://elicence.example.gov.cn/vct/person/v1"


def cq(qid="licence", **extra):
    query = {"id": qid, "format": "dc+sd-jwt", "meta": {"vct_values": [VCT]}}
    query.update(extra)
    return query


def q(*credentials, **top):
    return {"credentials": list(credentials) or [cq()], **top}


LICENCE = {
    "uscc": "91310000MA1FL0EXAM",
    "name": "上海示例科技有限公司",
    "registered_capital": 1000000,
    "long_term": True,
    "domicile": {"city": "上海市", "street": "浦东新区示例路1号"},
    "business_scope": ["软件开发", "技术咨询"],
    "branches": [{"city": "北京市", "no": 1}, {"city": "深圳市", "no": 2}],
}


# --------------------------------------------------------------------------------------------------
# Parsing


def test_parse_keeps_every_member_and_writes_it_back():
    data = q(
        cq(claims=[{"id": "u", "path": ["uscc"]}, {"id": "n", "path": ["name"], "values": ["A", 1, True]}],
           claim_sets=[["u", "n"], ["u"]], multiple=True, require_cryptographic_holder_binding=False,
           trusted_authorities=[{"type": "aki", "values": ["s9tIpPmhxdiuNkHMEWNpYim8S8Y"]}]),
        cq("other"),
        credential_sets=[{"options": [["licence"], ["other"]]}, {"options": [["other"]], "required": False}],
    )
    query = parse_query(data)
    assert query.to_json() == data
    assert parse_query(jws.dumps(data)) == query
    licence = query.credential("licence")
    assert licence.multiple and not licence.require_cryptographic_holder_binding
    assert licence.vct_values == (VCT,)
    assert licence.trusted_authorities[0].type == "aki"
    assert query.ids == ("licence", "other")
    with pytest.raises(KeyError):
        query.credential("nope")


def test_defaults_follow_the_specification():
    licence = parse_query(q()).credentials[0]
    assert licence.multiple is False  # s6.1: "If omitted, the default value is false"
    assert licence.require_cryptographic_holder_binding is True  # s6.1: "The default value is true"
    assert licence.claims is None and licence.claim_sets is None


def test_unknown_properties_are_ignored():
    data = q(cq(purpose="legacy", claims=[{"path": ["uscc"], "intent_to_retain": False}]), future_extension={"x": 1})
    assert parse_query(data).credentials[0].claims[0].path == ("uscc",)


def test_the_parsed_query_cannot_be_changed_through_meta():
    query = parse_query(q())
    with pytest.raises(TypeError):
        query.credentials[0].meta["vct_values"] = ["x"]  # type: ignore[index]
    assert query == parse_query(q())


def test_input_is_not_modified():
    data = q(cq(claims=[{"path": ["uscc"]}]))
    before = copy.deepcopy(data)
    parse_query(data)
    assert data == before


def _too_many(n):
    return q(*[cq(f"c{i}") for i in range(n)])


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "not json",
        '{"credentials": [], "credentials": []}',
        "x" * (dcql.MAX_QUERY_CHARS + 1),
        {},
        {"credentials": []},
        {"credentials": {"licence": {}}},
        {"credentials": ["licence"]},
        q({"format": "dc+sd-jwt", "meta": {"vct_values": [VCT]}}),
        q(cq(id="a b")),
        q(cq(id="")),
        q(cq(id="x" * 65)),
        q(cq(id=7)),
        q(cq(), cq()),
        q(cq(format="")),
        q({"id": "l", "meta": {"vct_values": [VCT]}}),
        q({"id": "l", "format": "dc+sd-jwt"}),
        q(cq(meta=[])),
        q(cq(meta={})),
        q(cq(meta={"vct_values": []})),
        q(cq(meta={"vct_values": [""]})),
        q(cq(meta={"vct_values": VCT})),
        q(cq(claims=[])),
        q(cq(claims=[["uscc"]])),
        q(cq(claims=[{"id": "u"}])),
        q(cq(claims=[{"path": []}])),
        q(cq(claims=[{"path": "uscc"}])),
        q(cq(claims=[{"path": ["a", True]}])),
        q(cq(claims=[{"path": ["a", -1]}])),
        q(cq(claims=[{"path": ["a", 1.0]}])),
        q(cq(claims=[{"path": [{"a": 1}]}])),
        q(cq(claims=[{"path": ["a"] * 17}])),
        q(cq(claims=[{"path": ["uscc"], "values": []}])),
        q(cq(claims=[{"path": ["uscc"], "values": [1.5]}])),
        q(cq(claims=[{"path": ["uscc"], "values": [None]}])),
        q(cq(claims=[{"path": ["uscc"], "values": [{"a": 1}]}])),
        q(cq(claims=[{"path": ["uscc"], "values": "A"}])),
        q(cq(claims=[{"id": "u", "path": ["uscc"]}, {"id": "u", "path": ["name"]}])),
        q(cq(claims=[{"path": ["uscc"]}, {"path": ["uscc"]}])),
        q(cq(claims=[{"id": "bad id", "path": ["uscc"]}])),
        q(cq(claim_sets=[["u"]])),
        q(cq(claims=[{"id": "u", "path": ["uscc"]}, {"path": ["name"]}], claim_sets=[["u"]])),
        q(cq(claims=[{"id": "u", "path": ["uscc"]}], claim_sets=[["v"]])),
        q(cq(claims=[{"id": "u", "path": ["uscc"]}], claim_sets=[])),
        q(cq(claims=[{"id": "u", "path": ["uscc"]}], claim_sets=[[]])),
        q(cq(claims=[{"id": "u", "path": ["uscc"]}], claim_sets=["u"])),
        q(cq(multiple="yes")),
        q(cq(require_cryptographic_holder_binding=0)),
        q(cq(trusted_authorities=[])),
        q(cq(trusted_authorities=[{"type": "aki"}])),
        q(cq(trusted_authorities=[{"type": "", "values": ["x"]}])),
        q(cq(trusted_authorities=[{"type": "aki", "values": [1]}])),
        q(credential_sets=[]),
        q(credential_sets=[{"options": []}]),
        q(credential_sets=[{"options": [[]]}]),
        q(credential_sets=[{"options": [["nope"]]}]),
        q(credential_sets=[{"options": [["licence"]], "required": "no"}]),
        q(credential_sets=[["licence"]]),
        _too_many(dcql.MAX_CREDENTIAL_QUERIES + 1),
    ],
)
def test_malformed_query_is_refused_with_its_code(data):
    with pytest.raises(InvalidDcqlQuery) as info:
        parse_query(data)
    assert info.value.code == "invalid_dcql_query"
    assert info.value.to_dict()["error"] == "invalid_dcql_query"


def test_another_format_is_valid_dcql_without_vct_values():
    query = parse_query(q({"id": "mdl", "format": "mso_mdoc", "meta": {"doctype_value": "org.iso.18013.5.1.mDL"}}))
    assert query.credentials[0].vct_values == ()


# --------------------------------------------------------------------------------------------------
# Claims path pointers (s7.1.1)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (["uscc"], [(("uscc",), "91310000MA1FL0EXAM")]),
        (["domicile", "city"], [(("domicile", "city"), "上海市")]),
        (["business_scope", None], [(("business_scope", 0), "软件开发"), (("business_scope", 1), "技术咨询")]),
        (["branches", None, "city"], [(("branches", 0, "city"), "北京市"), (("branches", 1, "city"), "深圳市")]),
        (["branches", 1, "no"], [(("branches", 1, "no"), 2)]),
        (["missing"], []),
        (["business_scope", 5], []),
        (["uscc", "x"], []),  # a name applied to a string: processing error
        (["domicile", None], []),  # null applied to an object: processing error
        (["domicile", 0], []),  # an index applied to an object: processing error
        ([], []),
        ([True], []),
    ],
)
def test_claims_path_pointer_processing(path, expected):
    assert list(select_claims(LICENCE, path)) == expected


# --------------------------------------------------------------------------------------------------
# Wallet side matching (s6.4)


def test_match_returns_candidates_and_paths_per_query():
    held = [Candidate(VCT, LICENCE, ref="a"), Candidate(ID_VCT, {"name": "张三"}, ref="b"),
            Candidate(VCT, {"uscc": "X"}, ref="c")]
    result = match(parse_query(q(cq(claims=[{"path": ["uscc"]}, {"path": ["name"]}]))), held)
    assert result.satisfied and result.selection == ("licence",)
    (only,) = result.by_query["licence"]
    assert only.candidate.ref == "a" and only.disclose == (("uscc",), ("name",))


def test_every_matching_candidate_is_listed_for_the_user_to_choose():
    held = [Candidate(VCT, LICENCE, ref=1), Candidate(VCT, LICENCE | {"uscc": "other"}, ref=2)]
    result = match(parse_query(q(cq(claims=[{"path": ["uscc"]}]))), held)
    assert [m.candidate.ref for m in result.by_query["licence"]] == [1, 2]


def test_without_claims_only_mandatory_parts_are_disclosed():
    result = match(parse_query(q()), [Candidate(VCT, LICENCE)])
    assert result.by_query["licence"][0].disclose == ()


def test_a_container_is_disclosed_with_everything_it_holds():
    result = match(parse_query(q(cq(claims=[{"path": ["domicile"]}]))), [Candidate(VCT, LICENCE)])
    assert result.by_query["licence"][0].disclose == (("domicile",), ("domicile", "city"), ("domicile", "street"))


def test_wildcard_paths_expand_to_each_element():
    result = match(parse_query(q(cq(claims=[{"path": ["branches", None, "city"]}]))), [Candidate(VCT, LICENCE)])
    assert result.by_query["licence"][0].disclose == (("branches", 0, "city"), ("branches", 1, "city"))


def test_values_match_type_and_value_exactly():
    def matches(values, path=("long_term",)):
        query = parse_query(q(cq(claims=[{"path": list(path), "values": values}])))
        return bool(match(query, [Candidate(VCT, LICENCE)]).by_query["licence"])

    assert matches([True])
    assert not matches([1])  # s6.3: the type must match too; True is not 1
    assert matches([1000000], ("registered_capital",))
    assert not matches(["1000000"], ("registered_capital",))
    assert matches(["深圳市"], ("branches", None, "city"))


def test_values_restrict_which_elements_are_disclosed():
    query = parse_query(q(cq(claims=[{"path": ["branches", None, "city"], "values": ["深圳市"]}])))
    assert match(query, [Candidate(VCT, LICENCE)]).by_query["licence"][0].disclose == (("branches", 1, "city"),)


def test_claim_sets_prefer_the_first_option_that_can_be_satisfied():
    claims = [{"id": "over18", "path": ["age_over_18"]}, {"id": "birth", "path": ["birth_date"]}]
    person = cq("person", meta={"vct_values": [ID_VCT]}, claims=claims, claim_sets=[["over18"], ["birth"]])
    query = parse_query(q(person))
    both = Candidate(ID_VCT, {"age_over_18": True, "birth_date": "1990-01-01"})
    birth_only = Candidate(ID_VCT, {"birth_date": "1990-01-01"})
    neither = Candidate(ID_VCT, {"name": "张三"})
    result = match(query, [both, birth_only, neither])
    assert [m.disclose for m in result.by_query["person"]] == [(("age_over_18",),), (("birth_date",),)]


def test_credential_without_holder_binding_is_not_offered_when_binding_is_required():
    unbound = Candidate(VCT, LICENCE, holder_binding=False)
    assert not match(parse_query(q()), [unbound]).satisfied
    assert match(parse_query(q(cq(require_cryptographic_holder_binding=False))), [unbound]).satisfied


def test_other_types_and_formats_do_not_match():
    assert not match(parse_query(q()), [Candidate(ID_VCT, LICENCE)]).satisfied
    assert not match(parse_query(q()), [Candidate(VCT, LICENCE, format="mso_mdoc")]).satisfied


def test_without_credential_sets_every_query_must_be_answerable():
    query = parse_query(q(cq(), cq("person", meta={"vct_values": [ID_VCT]})))
    result = match(query, [Candidate(VCT, LICENCE)])
    # s6.4.2: "If the Wallet cannot deliver all non-optional Credentials ... MUST NOT return any".
    assert not result.satisfied and result.selection == ()
    assert len(result.by_query["licence"]) == 1 and result.by_query["person"] == ()


def test_optional_credential_set_is_answered_when_possible():
    query = parse_query(q(cq(), cq("person", meta={"vct_values": [ID_VCT]}),
                          credential_sets=[{"options": [["licence"]]}, {"options": [["person"]], "required": False}]))
    assert match(query, [Candidate(VCT, LICENCE)]).selection == ("licence",)
    both = match(query, [Candidate(VCT, LICENCE), Candidate(ID_VCT, {"name": "张三"})])
    assert both.selection == ("licence", "person")


def test_match_paths_feed_sd_jwt_presentation():
    issuer, holder = SoftwareSigner.generate("ES256"), SoftwareSigner.generate("ES256")
    vc = issue_vc(LICENCE, vct=VCT, issuer="https://samr.example.gov.cn", signer=issuer,
                  disclosable=["uscc", "name", "domicile", ("domicile", "street"), ("domicile", "city"),
                               ("business_scope", 0), ("business_scope", 1)],
                  holder_jwk=holder.public_jwk, status=None, iat=1_700_000_000, exp=1_900_000_000)
    sd = SdJwt.parse(vc)
    claims = process_disclosures(jws.parse(sd.issuer_jwt).payload, sd.disclosures).claims
    # An index would not survive presentation (undisclosed array elements are removed from what the
    # Verifier sees), so the element is chosen by value through a wildcard.
    query = parse_query(q(cq(claims=[{"path": ["domicile"]}, {"path": ["business_scope", None], "values": ["技术咨询"]}])))
    chosen = match(query, [Candidate(VCT, claims)]).by_query["licence"][0]
    text = present(vc, disclose=chosen.disclose, holder_signer=holder, aud="x509_san_dns:a.example", nonce="n",
                   now=1_800_000_000)
    key = jws.public_key_from_jwk(issuer.public_jwk)
    shown = verify_vc(text, resolve_issuer_key=lambda *_: key, now=1_800_000_000).claims
    assert shown["domicile"] == LICENCE["domicile"]
    assert shown["business_scope"] == ["技术咨询"]
    assert "uscc" not in shown and "name" not in shown
    assert chosen.disclose[-1] == ("business_scope", 1)
    check_answers(query, {"licence": [Candidate(VCT, shown)]})


# --------------------------------------------------------------------------------------------------
# Verifier side (s8.6 step 3)


ANSWER_QUERY = parse_query(q(
    cq(claims=[{"id": "u", "path": ["uscc"]}, {"id": "c", "path": ["registered_capital"], "values": [1000000]}],
       claim_sets=[["u", "c"]]),
    cq("person", meta={"vct_values": [ID_VCT]}, claims=[{"path": ["name"]}]),
    cq("staff", meta={"vct_values": [ID_VCT]}, multiple=True),
    credential_sets=[{"options": [["licence"]]}, {"options": [["person"], ["staff"]], "required": False}],
))


def test_answers_satisfying_the_query_pass():
    check_answers(ANSWER_QUERY, {"licence": [Candidate(VCT, LICENCE)]})
    check_answers(ANSWER_QUERY, {"licence": [Candidate(VCT, LICENCE)],
                                 "staff": [Candidate(ID_VCT, {}), Candidate(ID_VCT, {})]})


@pytest.mark.parametrize(
    "answers",
    [
        {},
        {"person": [Candidate(ID_VCT, {"name": "张三"})]},
        {"licence": []},
        {"licence": [Candidate(VCT, LICENCE), Candidate(VCT, LICENCE)]},
        {"licence": [Candidate(ID_VCT, LICENCE)]},
        {"licence": [Candidate(VCT, LICENCE, format="mso_mdoc")]},
        {"licence": [Candidate(VCT, LICENCE, holder_binding=False)]},
        {"licence": [Candidate(VCT, {"uscc": "X"})]},
        {"licence": [Candidate(VCT, LICENCE | {"registered_capital": 5})]},
        {"licence": [Candidate(VCT, LICENCE)], "unknown": [Candidate(VCT, LICENCE)]},
        {"licence": [Candidate(VCT, LICENCE)], "person": [Candidate(ID_VCT, {})]},
    ],
    ids=["nothing", "only-optional", "empty", "two-without-multiple", "wrong-vct", "wrong-format", "not-key-bound",
         "claim-missing", "value-mismatch", "unknown-id", "optional-without-its-claims"],
)
def test_answers_not_satisfying_the_query_are_refused(answers):
    with pytest.raises(DcqlNotSatisfied) as info:
        check_answers(ANSWER_QUERY, answers)
    assert info.value.code == "dcql_not_satisfied"
