"""Counter scans: the result card for a good code, and a coded failure for each bad one (none "valid")."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from credentials import qr, sd_jwt
from verifier import store
from verifier.service import NoQrCode, UnknownItem


def scan(desk, data, **kw):
    return desk.service.scan(desk.staff, data=data, **kw)


def test_a_fresh_offline_code_gives_a_green_card_with_issuer_type_claims_status_and_freshness(desk):
    card = scan(desk, desk.el1())["card"]
    assert card["verdict"] == "valid" and card["error"] is None
    assert card["issuer"] == {"id": desk.ISSUER_ID, "name": {"zh-CN": "上海市市场监督管理局",
                              "en": "Shanghai Administration for Market Regulation"}, "region": "310000", "verified": True}
    assert card["type"]["slug"] == "business-licence" and card["type"]["name"]["zh-CN"] == "营业执照"
    assert card["claims"]["name"] == desk.claims["name"]
    assert card["claims"]["legal_representative"] == desk.claims["legal_representative"]
    assert "registration" not in card["claims"]  # not disclosed
    assert card["status"] == "valid"
    assert card["freshness"] == {"trust_list_age_s": 0.0, "trust_list_stale": False, "status_list_age_s": 0.0}
    assert card["message"] == {"zh-CN": "核验通过。", "en": "Verified."}


def test_a_photo_of_the_code_verifies_like_its_text(desk):
    assert scan(desk, qr.render_png(desk.el1()))["card"]["verdict"] == "valid"


def test_the_same_code_scanned_twice_is_a_replay(desk):
    code = desk.el1()
    assert scan(desk, code)["card"]["verdict"] == "valid"
    card = scan(desk, code)["card"]
    assert (card["verdict"], card["error"], card["failed_check"]) == ("invalid", "replay", "replay")


def test_a_replay_is_caught_by_another_worker_on_the_same_database(desk):
    code = desk.el1()
    assert scan(desk, code)["card"]["verdict"] == "valid"
    other = desk.make_service()
    assert other.scan(desk.staff, data=code)["card"]["error"] == "replay"


@pytest.mark.parametrize(("value", "code"), [(1, "revoked"), (2, "suspended")])
def test_a_revoked_or_suspended_licence_is_invalid_with_its_code(desk, value, code):
    desk.set_status(7, value)
    card = scan(desk, desk.el1())["card"]
    assert (card["verdict"], card["error"]) == ("invalid", code)
    assert card["message"]["zh-CN"] and card["message"]["en"]


def test_an_unreachable_status_list_is_cannot_verify_never_valid(desk):
    desk.served.token = None
    card = scan(desk, desk.el1())["card"]
    assert (card["verdict"], card["error"]) == ("cannot_verify", "status_unavailable")
    assert card["freshness"]["trust_list_stale"] is False


def test_an_expired_trust_list_is_cannot_verify(desk):
    desk.clock.advance(31 * 86400)
    card = scan(desk, desk.el1())["card"]
    assert (card["verdict"], card["error"]) == ("cannot_verify", "cannot_verify")
    assert card["freshness"]["trust_list_error"] == "cannot_verify"


def test_an_issuer_not_on_the_trust_list_is_untrusted(desk):
    forged = desk.issue("business-licence", desk.claims, idx=7, issuer_id="https://amr.elsewhere.example.cn")
    card = scan(desk, desk.el1(forged))["card"]
    assert (card["verdict"], card["error"]) == ("invalid", "untrusted_issuer")
    assert card["issuer"] == {"id": "https://amr.elsewhere.example.cn", "verified": False}


def test_a_presentation_with_a_disclosure_removed_is_invalid(desk):
    presented = sd_jwt.present(desk.licence, disclose=[["registration", "domicile"]], holder_signer=desk.holder,
                               aud=qr.OFFLINE_AUDIENCE, nonce="n-1", now=desk.T)
    parts = sd_jwt.SdJwt.parse(presented)
    leaf = next(d for d in parts.disclosures if "_sd" not in str(sd_jwt.parse_disclosure(d).value))
    kept = tuple(d for d in parts.disclosures if d != leaf)
    cut = sd_jwt.SdJwt(parts.issuer_jwt, kept, parts.kb_jwt).serialize()
    card = scan(desk, cut)["card"]
    assert (card["verdict"], card["error"]) == ("invalid", "sd_hash_mismatch")


def test_a_stale_presentation_is_refused(desk):
    card = scan(desk, desk.el1(now=desk.T - 3600))["card"]
    assert (card["verdict"], card["error"]) == ("invalid", "kb_iat_out_of_window")


def test_a_type_the_department_does_not_accept_is_refused(desk):
    card = desk.service.scan(desk.tax_staff, data=desk.el1(desk.food_permit(), disclose=[["permit_number"]]))["card"]
    assert (card["verdict"], card["error"]) == ("invalid", "invalid_typ")


def test_a_code_presented_with_another_holder_key_fails_key_binding(desk):
    from keys.signer import SoftwareSigner

    card = scan(desk, desk.el1(holder=SoftwareSigner.generate("ES256")))["card"]
    assert (card["verdict"], card["error"]) == ("invalid", "kb_invalid")


@pytest.mark.parametrize("garbage", ["hello", "EL1:%%%%", "", b"hello", qr.render_png("https://example.com/not-ours")])
def test_garbage_is_malformed_not_a_crash(desk, garbage):
    card = scan(desk, garbage)["card"]
    assert card["verdict"] == "invalid"
    assert card["error"] in ("malformed", "payload_too_large")


def _blank_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (320, 240), 200).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("photo", [_blank_png(), b"\x89PNG\r\n\x1a\nnot an image", b"\xff\xfe\x00"],
                         ids=["no-code", "corrupt-png", "not-an-image"])
def test_a_photo_without_a_readable_code_is_no_qr_code_and_records_nothing(desk, photo):
    # A counter's camera sends frames until one holds the code: the empty ones must not fill the records.
    with pytest.raises(NoQrCode) as info:
        scan(desk, photo, item_id=desk.FOOD_ITEM)
    assert (info.value.code, info.value.http_status) == ("no_qr_code", 422)
    with store.unit_of_work(desk.sessions, read_only=True) as tx:
        assert store.list_verifications(tx, department="pudong-window") == ()
    assert not any(a["action"].startswith("verification.") for a in desk.service.audit(desk.staff))


def test_an_unknown_item_is_refused_before_verifying(desk):
    with pytest.raises(UnknownItem) as info:
        scan(desk, desk.el1(), item_id="no-such-item")
    assert info.value.code == "unknown_item"
    with store.unit_of_work(desk.sessions, read_only=True) as tx:
        assert store.list_verifications(tx, department="pudong-window") == ()


def test_each_scan_is_recorded_without_claims(desk):
    scan(desk, desk.el1(), item_id=desk.FOOD_ITEM)
    desk.set_status(7, 1)
    desk.clock.advance(301)  # the cached status list lives for its ttl (300 s)
    scan(desk, desk.el1())
    with store.unit_of_work(desk.sessions, read_only=True) as tx:
        rows = [tuple(r) for r in tx.execute(text(
            "SELECT department_slug, staff_id, channel, item_id, verdict, code FROM verifier_verification ORDER BY verdict"))]
        dump = json.dumps([[str(c) for c in r] for r in tx.execute(text("SELECT * FROM verifier_verification"))],
                          ensure_ascii=False)
    assert rows == [("pudong-window", desk.staff.id, "scan", None, "invalid", "revoked"),
                    ("pudong-window", desk.staff.id, "scan", desk.FOOD_ITEM, "valid", None)]
    assert desk.claims["name"] not in dump and desk.claims["legal_representative"] not in dump
    seen = desk.service.verifications(desk.staff)
    assert [v["verdict"] for v in seen] == ["invalid", "valid"] or [v["verdict"] for v in seen] == ["valid", "invalid"]
    assert desk.service.verifications(desk.tax_staff) == []


def test_an_expired_licence_is_invalid(desk):
    old = desk.issue("business-licence", desk.claims, idx=7, exp=desk.T - 3600)
    card = scan(desk, desk.el1(old))["card"]
    assert (card["verdict"], card["error"]) == ("invalid", "expired")


def test_a_licence_signed_with_a_key_not_on_the_trust_list_is_invalid(desk):
    from credentials import sd_jwt_vc
    from keys.signer import SoftwareSigner

    forged = sd_jwt_vc.issue_vc(
        desk.claims, vct=desk.types["business-licence"].vct, issuer=desk.ISSUER_ID, signer=SoftwareSigner.generate("ES256"),
        disclosable=desk.types["business-licence"].disclosable_paths(desk.claims), holder_jwk=desk.holder.public_jwk,
        status=(7, desk.ISSUER_ID + "/status/1"), iat=desk.T - 60, exp=desk.T + 86400,
    )
    card = scan(desk, desk.el1(forged))["card"]
    # The kid is the forger's key thumbprint: the trust list has no such key for this issuer.
    assert (card["verdict"], card["error"], card["failed_check"]) == ("invalid", "unknown_key", "trusted_issuer")


def test_concurrent_scans_are_each_recorded_and_the_audit_chain_holds(desk):
    import threading

    codes = [desk.el1() for _ in range(6)]
    barrier = threading.Barrier(len(codes))
    verdicts: list[str] = []

    def worker(code: str) -> None:
        barrier.wait()
        verdicts.append(scan(desk, code)["card"]["verdict"])

    threads = [threading.Thread(target=worker, args=(c,)) for c in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert verdicts == ["valid"] * 6
    assert desk.service.verify_audit(desk.staff) == {"valid": True, "records": 2 + 6}
