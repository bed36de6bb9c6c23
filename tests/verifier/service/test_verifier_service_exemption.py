"""Materials exemption (免提交) and verification receipts: which materials a verified credential replaces,
and a receipt signed by the department that anyone can check later against the registrar."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from credentials import jws
from keys.jwk import b64u_decode, b64u_encode
from keys.signer import SoftwareSigner
from keys.x509 import make_registrar_ca
from verifier.service import RECEIPT_TYP, ReceiptInvalid, verify_receipt


def scan_for(desk, item, *codes, staff=None):
    """Scan each code for ``item``; return the last answer (each scan is a separate verification)."""
    out = None
    for code in codes:
        out = desk.service.scan(staff or desk.staff, data=code, item_id=item)
    return out


def materials(answer) -> dict[str, tuple[str, str | None]]:
    return {m["id"]: (m["status"], m["code"]) for m in answer["exemption"]["materials"]}


def test_a_verified_licence_exempts_the_licence_copy_and_nothing_else(desk):
    answer = scan_for(desk, desk.FOOD_ITEM, desk.el1())
    assert materials(answer) == {
        "business-licence-copy": ("exempt", None),
        "application-form": ("to_submit", "not_electronic"),
        "premises-layout": ("to_submit", "not_electronic"),
        "food-safety-rules": ("to_submit", "not_electronic"),
        "agent-authorisation": ("to_submit", "not_presented"),
    }
    exempt = answer["exemption"]["materials"][0]
    assert exempt["credential"]["issuer_name"]["zh-CN"] == "上海市市场监督管理局"
    assert exempt["verified_at"] == "2026-09-21T13:46:40Z"
    assert (answer["exemption"]["exempt"], answer["exemption"]["to_submit"]) == (1, 4)


def test_an_invalid_licence_exempts_nothing(desk):
    desk.set_status(7, 1)
    answer = scan_for(desk, desk.FOOD_ITEM, desk.el1())
    assert materials(answer)["business-licence-copy"] == ("to_submit", "not_presented")


def test_a_material_needing_claims_that_were_not_disclosed_is_to_be_submitted(desk):
    # The tender bid needs the domicile and business scope; only the always-visible claims are shown.
    answer = scan_for(desk, desk.TENDER_ITEM, desk.el1(disclose=[]))
    assert materials(answer)["business-licence-copy"] == ("to_submit", "missing_claim")
    full = scan_for(desk, desk.TENDER_ITEM, desk.el1(disclose=[["registration", "domicile"],
                                                               ["registration", "business_scope"]]))
    assert materials(full)["business-licence-copy"] == ("exempt", None)


def _online(desk, item, authorisation):
    created = desk.service.create_request(desk.staff, item_id=item)
    request = desk.wallet_request(created)
    form = desk.answer(request, {"business-licence-copy": [(desk.licence, [])],
                                 "agent-authorisation": [(authorisation, ["scope", "valid_until", "valid_from"])]})
    desk.service.direct_post(created.transaction_id, form)
    return desk.service.result(desk.staff, transaction_id=created.transaction_id, secret=created.result_secret)


def test_an_authorisation_covering_the_item_exempts_the_agent_material(desk):
    got = _online(desk, desk.FOOD_ITEM, desk.authorisation())
    assert materials(got)["agent-authorisation"] == ("exempt", None)
    got = _online(desk, desk.FOOD_ITEM, desk.authorisation(scope={"all": True}, idx=10))
    assert materials(got)["agent-authorisation"] == ("exempt", None)


def test_an_authorisation_outside_its_scope_is_not_accepted(desk):
    got = _online(desk, desk.FOOD_ITEM, desk.authorisation(scope={"matters": [desk.TAX_ITEM]}))
    assert materials(got)["agent-authorisation"] == ("to_submit", "authorisation_out_of_scope")
    assert got["exemption"]["materials"][-1]["message"]["en"] == "The authorisation does not cover this service item."


def test_an_authorisation_after_its_end_date_is_not_accepted(desk):
    got = _online(desk, desk.FOOD_ITEM, desk.authorisation(days_left=-1))
    assert materials(got)["agent-authorisation"] == ("to_submit", "authorisation_not_in_term")


def test_an_authorisation_for_another_enterprise_is_not_accepted(desk):
    got = _online(desk, desk.FOOD_ITEM, desk.authorisation(enterprise_uscc="91310000MA1FL0000X"))
    assert materials(got)["agent-authorisation"] == ("to_submit", "enterprise_mismatch")


# --- receipts -------------------------------------------------------------------------------------------


def receipt_of(desk):
    return scan_for(desk, desk.FOOD_ITEM, desk.el1())["receipt"]


def test_the_receipt_verifies_against_the_registrar_and_says_what_was_verified(desk):
    token = receipt_of(desk)
    assert jws.parse(token).header["typ"] == RECEIPT_TYP
    receipt = verify_receipt(token, trust_anchors=desk.service.registrar_certificates(), now=desk.clock())
    claims = receipt.claims
    assert receipt.dns_name == "verify.example.gov.cn" and receipt.organization == "浦东新区企业服务中心"
    assert claims["iss"] == "x509_san_dns:verify.example.gov.cn" and claims["iat"] == desk.T
    assert claims["item"]["id"] == desk.FOOD_ITEM and claims["department"]["id"] == "pudong-window"
    assert claims["enterprise"] == {"uscc": desk.claims["uscc"], "name": desk.claims["name"]}
    assert claims["verifications"] == [{"vct": "https://elicence.cn/vct/business-licence", "issuer": desk.ISSUER_ID,
                                        "verdict": "valid", "code": None, "status": "valid"}]
    assert {m["id"]: m["status"] for m in claims["materials"]}["business-licence-copy"] == "exempt"
    # Minimal personal data: the legal representative's name is not in the receipt.
    assert desk.claims["legal_representative"] not in json.dumps(claims, ensure_ascii=False)


def test_a_scan_without_an_item_issues_no_receipt(desk):
    assert "receipt" not in desk.service.scan(desk.staff, data=desk.el1())


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(b64u_decode(payload))
    claims["materials"][1]["status"] = "exempt"
    return ".".join([header, b64u_encode(json.dumps(claims).encode()), signature])


def test_a_tampered_receipt_fails_its_signature(desk):
    with pytest.raises(ReceiptInvalid) as info:
        verify_receipt(_tamper(receipt_of(desk)), trust_anchors=desk.service.registrar_certificates(), now=desk.clock())
    assert (info.value.code, info.value.reason) == ("receipt_invalid", "invalid_signature")


def test_a_receipt_checked_against_another_registrar_is_untrusted(desk):
    key = SoftwareSigner.generate("ES256").private_key
    other = make_registrar_ca(key, common_name="other", not_before=desk.clock(), not_after=desk.clock() + timedelta(days=9))
    with pytest.raises(ReceiptInvalid) as info:
        verify_receipt(receipt_of(desk), trust_anchors=[other], now=desk.clock())
    assert info.value.reason == "certificate_untrusted"


def test_a_receipt_checked_after_the_certificate_expired_says_so(desk):
    token = receipt_of(desk)
    with pytest.raises(ReceiptInvalid) as info:
        verify_receipt(token, trust_anchors=desk.service.registrar_certificates(), now=desk.clock() + timedelta(days=400))
    assert info.value.reason == "certificate_expired"


@pytest.mark.parametrize(("token", "reason"), [("garbage", "malformed"), (None, "malformed")])
def test_garbage_is_not_a_receipt(desk, token, reason):
    with pytest.raises(ReceiptInvalid) as info:
        verify_receipt(token, trust_anchors=desk.service.registrar_certificates(), now=desk.clock())
    assert info.value.reason == reason


def test_a_token_of_another_type_is_not_a_receipt(desk):
    token = receipt_of(desk)
    header, payload, signature = token.split(".")
    other = json.loads(b64u_decode(header))
    other["typ"] = "JWT"
    with pytest.raises(ReceiptInvalid) as info:
        verify_receipt(".".join([b64u_encode(json.dumps(other).encode()), payload, signature]),
                       trust_anchors=desk.service.registrar_certificates(), now=desk.clock())
    assert info.value.reason == "invalid_typ"
