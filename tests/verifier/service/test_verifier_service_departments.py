"""Departments, their keys and access certificates, the registrar CA, and staff accounts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from keys.errors import WrongKek
from keys.jwk import private_jwk
from keys.keystore import generate_kek
from keys.signer import SoftwareSigner
from keys.x509 import certificate_pem, load_pem_certificates, make_registrar_ca, verify_x5c_for_dns, x5c_encode
from verifier import store
from verifier.service import RegistrarMissing, Unauthorized, UnknownType, VerifierService

NOW = datetime(2026, 9, 21, 13, 46, 40, tzinfo=timezone.utc)
DEPARTMENT = dict(slug="minhang-window", name_zh="闵行区行政服务中心", name_en="Minhang Administrative Service Centre",
                  dns_name="minhang.example.gov.cn", types=["business-licence"])


def test_a_department_gets_an_access_certificate_for_its_dns_name_from_the_registrar(desk):
    (certificate,) = load_pem_certificates(desk.window.certificate)
    anchors = desk.service.registrar_certificates()
    chain = verify_x5c_for_dns(x5c_encode([certificate]), dns_name="verify.example.gov.cn", trust_anchors=anchors,
                               now=desk.clock.timestamp())
    assert chain.organization == "浦东新区企业服务中心"
    assert desk.window.vcts[0] == "https://elicence.cn/vct/business-licence"
    with pytest.raises(Exception) as info:
        verify_x5c_for_dns(x5c_encode([certificate]), dns_name="tax.example.gov.cn", trust_anchors=anchors,
                           now=desk.clock.timestamp())
    assert getattr(info.value, "code", None) == "certificate_name_mismatch"


def test_private_keys_are_stored_encrypted_and_need_the_kek(desk):
    with store.unit_of_work(desk.sessions, read_only=True) as tx:
        owners = sorted(r.owner for r in tx.execute(text("SELECT owner FROM verifier_key")))
    assert owners == ["_registrar", "pudong-window", "tax-office"]
    other = VerifierService(sessions=desk.sessions, kek=generate_kek(), public_url=desk.PUBLIC_URL,
                            trust=desk.service._trust, clock=desk.clock)
    with pytest.raises(WrongKek) as info:
        other.create_request(desk.staff, credentials=[{"type": "business-licence"}])
    assert info.value.code == "keystore_wrong_kek"


def test_without_demo_mode_the_registrar_must_be_imported(bare):
    service = bare(demo=False)
    with pytest.raises(RegistrarMissing) as info:
        service.create_department(**DEPARTMENT)
    assert info.value.code == "registrar_missing"
    with pytest.raises(RegistrarMissing):
        service.registrar_certificates()
    key = SoftwareSigner.generate("ES256").private_key
    ca = make_registrar_ca(key, common_name="Shanghai registrar", not_before=NOW, not_after=NOW + timedelta(days=3650))
    service.import_registrar(private_jwk=private_jwk(key), certificate=certificate_pem(ca))
    department = service.create_department(**DEPARTMENT)
    (leaf,) = load_pem_certificates(department.certificate)
    assert leaf.issuer == ca.subject
    assert service.registrar_certificates() == (ca,)


def test_a_registrar_certificate_for_another_key_is_refused(bare):
    service = bare(demo=False)
    key = SoftwareSigner.generate("ES256").private_key
    other = SoftwareSigner.generate("ES256").private_key
    ca = make_registrar_ca(other, common_name="x", not_before=NOW, not_after=NOW + timedelta(days=10))
    with pytest.raises(store.InvalidValue) as info:
        service.import_registrar(private_jwk=private_jwk(key), certificate=certificate_pem(ca))
    assert info.value.code == "invalid_value"


def test_the_demo_creates_one_registrar_and_reuses_it(bare):
    service = bare(demo=True)
    first = service.ensure_registrar()
    assert service.ensure_registrar() == first
    service.create_department(**DEPARTMENT)
    assert bare(demo=True).registrar_certificates() == service.registrar_certificates()


@pytest.mark.parametrize(("changes", "error", "code"), [
    ({"types": ["passport"]}, UnknownType, "unknown_credential_type"),
    ({"types": []}, store.InvalidValue, "invalid_value"),
    ({"dns_name": "not a host"}, store.InvalidValue, "invalid_value"),
    ({"slug": "Bad Slug"}, store.InvalidValue, "invalid_value"),
    ({"slug": "pudong-window"}, store.Conflict, "conflict"),
])
def test_bad_departments_are_refused_with_their_code(desk, changes, error, code):
    with pytest.raises(error) as info:
        desk.service.create_department(**{**DEPARTMENT, **changes})
    assert info.value.code == code


def test_staff_keys_are_scoped_to_one_department(desk):
    assert desk.service.authenticate(desk.api_key, department="pudong-window") == desk.staff
    with pytest.raises(store.NotFound) as other:
        desk.service.authenticate(desk.api_key, department="tax-office")
    assert other.value.code == "not_found"
    for key in (None, "", "elv_unknown", "Bearer x"):
        with pytest.raises(Unauthorized) as info:
            desk.service.authenticate(key, department="pudong-window")
        assert info.value.code == "unauthorized"


def test_a_revoked_staff_key_no_longer_works_and_other_departments_cannot_revoke(desk):
    second = desk.service.create_staff(department="pudong-window", name="窗口二号")
    with pytest.raises(store.NotFound):
        desk.service.revoke_staff(desk.tax_staff, staff_id=second.staff.id)
    desk.service.revoke_staff(desk.staff, staff_id=second.staff.id)
    with pytest.raises(Unauthorized):
        desk.service.authenticate(second.api_key, department="pudong-window")
    with store.unit_of_work(desk.sessions, read_only=True) as tx:
        stored = [r.key_hash for r in tx.execute(text("SELECT key_hash FROM verifier_staff"))]
    assert second.api_key not in stored and store.api_key_hash(second.api_key) in stored


def test_every_action_is_recorded_in_the_department_audit(desk):
    actions = [(a["action"], a["actor"]) for a in reversed(desk.service.audit(desk.staff))]
    assert actions == [("department.created", "cli"), ("staff.created", "cli")]
    assert [a["action"] for a in desk.service.audit(desk.tax_staff)] == ["staff.created", "department.created"]


def test_the_audit_chain_verifies_and_shows_tampering(desk):
    desk.service.scan(desk.staff, data=desk.el1(), item_id=desk.FOOD_ITEM)
    newest = desk.service.audit(desk.staff)[0]
    assert newest["action"] == "verification.scan" and newest["details"]["verdict"] == "valid"
    assert desk.claims["name"] not in str(newest)
    assert desk.service.verify_audit(desk.staff) == {"valid": True, "records": 3}
    with store.unit_of_work(desk.sessions) as tx:
        tx.execute(text("UPDATE verifier_audit SET actor = 'someone else' WHERE chain = 'pudong-window' AND seq = 2"))
    broken = desk.service.verify_audit(desk.staff)
    assert (broken["valid"], broken["seq"], broken["reason"]) == (False, 2, "hash_mismatch")
    assert desk.service.verify_audit(desk.tax_staff) == {"valid": True, "records": 2}


def test_removing_the_newest_audit_record_is_visible(desk):
    with store.unit_of_work(desk.sessions) as tx:
        tx.execute(text("DELETE FROM verifier_audit WHERE chain = 'tax-office' AND seq = 2"))
    broken = desk.service.verify_audit(desk.tax_staff)
    assert (broken["valid"], broken["reason"]) == (False, "truncated")
