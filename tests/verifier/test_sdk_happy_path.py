"""Verifier SDK happy paths: one presentation in each input form verifies, and the result says what it must."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from credentials import qr
from verifier.checks import CHECKS
from verifier.sdk import Policy, VerificationResult, Verifier, decode_input

NOW = 1_790_000_000


def _assert_valid_result(result: VerificationResult, kit, *, disclose=None, presented_at=NOW) -> None:
    assert result.valid
    assert result.issuer == kit.world.issuer_id
    assert dict(result.issuer_name) == {
        "zh-CN": "上海市市场监督管理局",
        "en": "Shanghai Administration for Market Regulation",
    }
    assert result.region == "310000"
    assert result.vct == kit.vct
    assert dict(result.claims) == kit.expected_claims(disclose)
    assert result.status == "valid"
    assert result.holder_bound is True
    assert result.presented_at == presented_at
    assert result.issued_at == NOW
    assert result.expires_at == NOW + 365 * 86400
    assert [c.name for c in result.checks] == [c.name for c in CHECKS]
    assert all(c.passed and c.code is None for c in result.checks)
    assert result.trust_list_stale is False


def test_png_qr_image_of_an_offline_presentation_verifies(kit, clock):
    clock.set(NOW + 100)
    png = qr.render_png(kit.el1(now=NOW + 90))
    assert png.startswith(b"\x89PNG")
    result = kit.verifier(clock=clock).verify(png)
    _assert_valid_result(result, kit, presented_at=NOW + 90)
    # The world's trust list was issued at NOW; the status list was fetched just now.
    assert result.trust_list_age == 100
    assert result.status_list_age == 0


def test_pil_image_verifies(kit):
    image = Image.open(io.BytesIO(qr.render_png(kit.el1())))
    _assert_valid_result(kit.verifier().verify(image), kit)


def test_el1_text_verifies(kit):
    text = kit.el1()
    assert text.startswith("EL1:")
    _assert_valid_result(kit.verifier().verify(text), kit)


def test_raw_sd_jwt_with_key_binding_verifies(kit):
    _assert_valid_result(kit.verifier().verify(kit.present()), kit)


@pytest.mark.parametrize("form", ["el1", "raw"])
def test_bytes_of_text_verify(kit, form):
    text = kit.el1() if form == "el1" else kit.present()
    _assert_valid_result(kit.verifier().verify(bytearray(text.encode("ascii"))), kit)


def test_surrounding_whitespace_of_scanned_text_is_ignored(kit):
    _assert_valid_result(kit.verifier().verify("  " + kit.el1() + "\r\n"), kit)


def test_claims_hold_exactly_the_disclosed_subject_claims(kit):
    verifier = kit.verifier()
    for disclose in ([], kit.leaf_paths[:1], kit.leaf_paths):
        result = verifier.verify(kit.present(disclose=disclose))
        assert dict(result.claims) == kit.expected_claims(disclose)
        # Registered claims have their own fields and never appear among the subject claims.
        assert not {"iss", "iat", "exp", "nbf", "vct", "cnf", "status", "_sd", "_sd_alg"} & set(result.claims)
    # Withheld claims stay withheld: nothing beyond the always-visible claims without a disclosure.
    assert set(verifier.verify(kit.present(disclose=[])).claims) == set(kit.claims) - set(kit.top_sd_names)


def test_status_list_age_is_time_since_the_list_was_fetched(kit, clock):
    verifier = kit.verifier(clock=clock)
    clock.set(NOW + 10)
    assert verifier.verify(kit.present(now=NOW + 10)).status_list_age == 0
    clock.set(NOW + 250)
    result = verifier.verify(kit.present(now=NOW + 250))
    assert result.status_list_age == 240
    assert result.trust_list_age == 250


def test_to_dict_is_json_serialisable_and_complete(kit):
    result = kit.verifier().verify(kit.el1())
    view = json.loads(json.dumps(result.to_dict(), ensure_ascii=False))
    assert view["verdict"] == "valid"
    assert view["issuer"] == kit.world.issuer_id
    assert view["issuer_name"]["zh-CN"] == "上海市市场监督管理局"
    assert view["vct"] == kit.vct
    assert view["claims"] == kit.expected_claims()
    assert view["status"] == "valid"
    assert view["holder_bound"] is True
    assert view["trust_list_stale"] is False
    assert view["trust_list_age_s"] == 0
    assert view["status_list_age_s"] == 0
    assert [c["name"] for c in view["checks"]] == [c.name for c in CHECKS]
    assert all(c["passed"] for c in view["checks"])


def test_check_names_are_the_checks_in_their_order():
    assert Verifier.check_names() == tuple(c.name for c in CHECKS)
    assert Verifier.check_names()[0] == "decode" and Verifier.check_names()[-1] == "replay"


def test_online_presentation_with_the_verifiers_nonce_and_audience_verifies(kit):
    text = kit.present(aud="https://window.sh.example.gov.cn", nonce="n-0S5c2f")
    result = kit.verifier().verify(text, nonce="n-0S5c2f", audience="https://window.sh.example.gov.cn")
    assert result.holder_bound
    assert result.credential.kb_payload["nonce"] == "n-0S5c2f"


def test_verifier_accepting_several_audiences_takes_each(kit):
    window = "https://window.sh.example.gov.cn"
    verifier = kit.verifier(policy=Policy(audience=frozenset({qr.OFFLINE_AUDIENCE, window})))
    assert verifier.verify(kit.present()).holder_bound
    assert verifier.verify(kit.present(aud=window)).holder_bound


def test_policy_with_accepted_type_and_required_claims_disclosed_verifies(kit):
    top = kit.top_sd_names[0]
    disclose = [p for p in kit.leaf_paths if p[0] == top][:1]
    policy = Policy(accepted_vcts=frozenset({kit.vct}), required_claims={kit.vct: (top, "uscc")})
    result = kit.verifier(policy=policy).verify(kit.present(disclose=disclose))
    assert top in result.claims


def test_credential_without_status_verifies_as_not_checked_when_status_is_optional(kit):
    credential = kit.issue(status=None)
    verifier = kit.verifier(policy=Policy(require_status=False))
    result = verifier.verify(kit.present(credential))
    assert result.status == "not_checked"
    assert result.status_list_age is None
    assert result.to_dict()["status_list_age_s"] is None


def test_bearer_presentation_verifies_when_key_binding_is_not_required(kit):
    bearer = kit.present(disclose=[]).rsplit("~", 1)[0] + "~"
    verifier = kit.verifier(policy=Policy(require_key_binding=False))
    result = verifier.verify(bearer)
    assert result.holder_bound is False
    assert result.presented_at is None
    # Without a KB-JWT there is no presentation identity: the replay check has nothing to remember,
    # so a bearer credential verifies again (the policy chose to accept bearer credentials).
    assert verifier.verify(bearer).status == "valid"


def test_decode_input_returns_the_same_presentation_from_every_form(kit):
    raw = kit.present()
    el1 = qr.encode_payload(raw)
    png = qr.render_png(el1)
    assert decode_input(raw) == decode_input(el1) == decode_input(png) == decode_input(el1.encode()) == raw
