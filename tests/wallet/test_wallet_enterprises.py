"""wallet.service tenancy: enterprises, members and roles, licence keys, stored credentials, usage records."""

from __future__ import annotations

from datetime import timedelta

import pytest

from wallet import errors, store
from wallet.service import STAFF_AUTHORISATION_VCT, credential_hash


@pytest.fixture
def firm(wallet, wkit):
    """Enterprise 1 with its legal representative (user 1, PIN set), an administrator (2), a staff member (3)."""
    lr = wkit.user(wallet, 1, pin=True)
    admin = wkit.user(wallet, 2, pin=True)
    staff = wkit.user(wallet, 3, pin=True)
    enterprise = wkit.enterprise(wallet, lr, 1)
    wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(2), role="administrator")
    wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(3), role="staff")
    return lr, admin, staff, enterprise


def _licence_key(wallet, user, enterprise):
    return next(k.kid for k in wallet.holder_keys(user) if k.owner == f"enterprise:{enterprise.id}")


def _own_key(wallet, user):
    return next(k.kid for k in wallet.holder_keys(user) if k.owner == f"user:{user.id}")


def _store(wallet, user, kid, n, **extra):
    return wallet.store_credential(user, credential=f"eyJ.{n}.sig~d1~", vct=extra.pop("vct", "https://elicence.cn/vct/business-licence"),
                                   issuer="https://issuer.example.gov.cn/issuers/sh-amr", configuration_id="business-licence",
                                   holder_kid=kid, **extra)


# --- claiming -------------------------------------------------------------------------------------------


def test_claiming_makes_the_user_legal_representative_with_a_licence_key(wallet, wkit):
    user = wkit.user(wallet, 1)
    enterprise = wkit.enterprise(wallet, user, 1)
    profile = wallet.me(user)
    assert [(m.enterprise.id, m.role) for m in profile.memberships] == [(enterprise.id, store.Role.LEGAL_REPRESENTATIVE)]
    assert {k.owner for k in wallet.holder_keys(user)} == {f"user:{user.id}", f"enterprise:{enterprise.id}"}
    assert wkit.enterprise(wallet, user, 1) == enterprise  # claiming again answers the same enterprise


def test_a_second_claim_of_the_uscc_by_another_user_is_enterprise_claimed(wallet, wkit, sessions):
    wkit.enterprise(wallet, wkit.user(wallet, 1), 1)
    other = wkit.user(wallet, 2)
    before = wkit.snapshot(sessions)
    with pytest.raises(errors.EnterpriseClaimed) as caught:
        wkit.enterprise(wallet, other, 1)
    assert caught.value.code == "enterprise_claimed" and wkit.snapshot(sessions) == before


@pytest.mark.parametrize("uscc", ["91310000MA1FL1234", "913100006316927I9X", "", None, "91350100M000100Y40"])
def test_an_invalid_uscc_is_uscc_invalid(wallet, wkit, uscc):
    with pytest.raises(errors.InvalidUscc) as caught:
        wallet.claim_enterprise(wkit.user(wallet, 1), uscc=uscc, name="某公司")
    assert caught.value.code == "uscc_invalid"


def test_an_empty_enterprise_name_is_invalid_value(wallet, wkit):
    with pytest.raises(errors.InvalidValue):
        wallet.claim_enterprise(wkit.user(wallet, 1), uscc=wkit.uscc(1), name="  ")


# --- members --------------------------------------------------------------------------------------------


def test_members_are_listed_by_role(wallet, wkit, firm):
    lr, admin, staff, enterprise = firm
    listed = wallet.members(admin, enterprise_id=enterprise.id)
    assert [(m.user_id, m.role.value) for m in listed] == [
        (lr.id, "legal_representative"), (admin.id, "administrator"), (staff.id, "staff")]
    assert listed[1].phone == wkit.phone(2) and listed[1].added_by == lr.id


def test_staff_may_not_list_members(wallet, firm):
    _lr, _admin, staff, enterprise = firm
    with pytest.raises(errors.AdministratorRequired) as caught:
        wallet.members(staff, enterprise_id=enterprise.id)
    assert caught.value.code == "administrator_required"


def test_only_the_legal_representative_names_administrators(wallet, wkit, firm):
    _lr, admin, staff, enterprise = firm
    wkit.user(wallet, 4)
    for actor, error in ((admin, errors.LegalRepresentativeRequired), (staff, errors.LegalRepresentativeRequired)):
        with pytest.raises(error) as caught:
            wallet.add_member(actor, enterprise_id=enterprise.id, phone=wkit.phone(4), role="administrator")
        assert caught.value.code == "legal_representative_required"


def test_administrators_add_staff_and_staff_cannot(wallet, wkit, firm):
    _lr, admin, staff, enterprise = firm
    wkit.user(wallet, 4)
    wkit.user(wallet, 5)
    assert wallet.add_member(admin, enterprise_id=enterprise.id, phone=wkit.phone(4), role="staff").role is store.Role.STAFF
    with pytest.raises(errors.AdministratorRequired):
        wallet.add_member(staff, enterprise_id=enterprise.id, phone=wkit.phone(5), role="staff")


def test_at_most_five_administrators(wallet, wkit, firm):
    lr, _admin, _staff, enterprise = firm
    for n in range(4, 8):
        wkit.user(wallet, n)
        wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(n), role="administrator")
    wkit.user(wallet, 8)
    with pytest.raises(errors.AdministratorLimit) as caught:
        wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(8), role="administrator")
    assert caught.value.code == "administrator_limit"
    with pytest.raises(errors.AdministratorLimit):  # promoting a staff member counts too
        wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(3), role="administrator")


def test_a_staff_member_is_promoted_and_demoted_by_the_legal_representative(wallet, wkit, firm):
    lr, admin, staff, enterprise = firm
    assert wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(3), role="administrator").role \
        is store.Role.ADMINISTRATOR
    with pytest.raises(errors.LegalRepresentativeRequired):  # an administrator cannot demote another
        wallet.add_member(admin, enterprise_id=enterprise.id, phone=wkit.phone(3), role="staff")
    assert wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(3), role="staff").role is store.Role.STAFF


def test_adding_a_member_in_the_role_they_have_is_member_exists(wallet, wkit, firm):
    lr, _admin, _staff, enterprise = firm
    with pytest.raises(errors.AlreadyMember) as caught:
        wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(3), role="staff")
    assert caught.value.code == "member_exists"


def test_the_legal_representative_cannot_be_added_demoted_or_removed(wallet, wkit, firm):
    lr, _admin, _staff, enterprise = firm
    with pytest.raises(errors.LegalRepresentativeFixed) as caught:
        wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(1), role="staff")
    assert caught.value.code == "legal_representative_fixed"
    with pytest.raises(errors.LegalRepresentativeFixed):
        wallet.remove_member(lr, enterprise_id=enterprise.id, member_id=lr.id)
    with pytest.raises(errors.InvalidValue):
        wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(2), role="legal_representative")


def test_adding_an_unknown_number_is_account_not_found(wallet, wkit, firm):
    lr, _admin, _staff, enterprise = firm
    with pytest.raises(errors.AccountNotFound) as caught:
        wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(99), role="staff")
    assert caught.value.code == "account_not_found"
    with pytest.raises(errors.InvalidPhone):
        wallet.add_member(lr, enterprise_id=enterprise.id, phone="12345", role="staff")


def test_removal_rules(wallet, wkit, firm):
    lr, admin, staff, enterprise = firm
    with pytest.raises(errors.LegalRepresentativeRequired):  # only the LR removes an administrator
        wallet.remove_member(staff, enterprise_id=enterprise.id, member_id=admin.id)
    with pytest.raises(errors.NotFound):
        wallet.remove_member(lr, enterprise_id=enterprise.id, member_id="no-such-user")
    wallet.remove_member(staff, enterprise_id=enterprise.id, member_id=staff.id)  # leaving
    with pytest.raises(errors.NotFound):  # a former member is a stranger
        wallet.credentials(staff, enterprise_id=enterprise.id)
    wallet.remove_member(lr, enterprise_id=enterprise.id, member_id=admin.id)
    assert [m.user_id for m in wallet.members(lr, enterprise_id=enterprise.id)] == [lr.id]


def test_staff_cannot_remove_another_member(wallet, wkit, firm):
    lr, _admin, staff, enterprise = firm
    wkit.user(wallet, 4)
    other = wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(4), role="staff")
    with pytest.raises(errors.AdministratorRequired):
        wallet.remove_member(staff, enterprise_id=enterprise.id, member_id=other.user_id)


# --- the licence key ------------------------------------------------------------------------------------


def test_managers_sign_with_the_licence_key(wallet, wkit, firm):
    lr, admin, _staff, enterprise = firm
    licence_kid = _licence_key(wallet, lr, enterprise)
    for user in (lr, admin):
        assert wallet.signer_for(user, purpose="key_proof", enterprise_id=enterprise.id).kid == licence_kid
        confirmation = wallet.confirm_pin(user, wkit.PIN)
        assert wallet.signer_for(user, purpose="presentation", enterprise_id=enterprise.id,
                                 confirmation=confirmation).kid == licence_kid


def test_staff_sign_with_the_licence_key_only_under_a_valid_authorisation(wallet, wkit, firm, clock):
    _lr, _admin, staff, enterprise = firm
    with pytest.raises(errors.AdministratorRequired):
        wallet.signer_for(staff, purpose="key_proof", enterprise_id=enterprise.id)
    with pytest.raises(errors.AuthorisationRequired) as caught:
        wallet.signer_for(staff, purpose="presentation", enterprise_id=enterprise.id,
                          confirmation=wallet.confirm_pin(staff, wkit.PIN))
    assert caught.value.code == "authorisation_required"
    grant = _store(wallet, staff, _own_key(wallet, staff), 7, vct=STAFF_AUTHORISATION_VCT, enterprise_id=enterprise.id,
                   expires_at=clock.now + timedelta(days=30))
    assert grant.user_id == staff.id and grant.enterprise_id == enterprise.id
    signer = wallet.signer_for(staff, purpose="presentation", enterprise_id=enterprise.id,
                               confirmation=wallet.confirm_pin(staff, wkit.PIN))
    assert signer.kid == _licence_key(wallet, staff, enterprise)
    wallet.record_status(grant.id, status="invalid")  # revoked at the issuer
    with pytest.raises(errors.AuthorisationRequired):
        wallet.signer_for(staff, purpose="presentation", enterprise_id=enterprise.id,
                          confirmation=wallet.confirm_pin(staff, wkit.PIN))


def test_an_expired_authorisation_does_not_count(wallet, wkit, firm, clock):
    _lr, _admin, staff, enterprise = firm
    kept = _store(wallet, staff, _own_key(wallet, staff), 7, vct=STAFF_AUTHORISATION_VCT, enterprise_id=enterprise.id,
                  expires_at=int(clock.now.timestamp()) + 60)  # the credential's exp, as received
    assert kept.expires_at == clock.now + timedelta(seconds=60)
    clock.advance(60)
    with pytest.raises(errors.AuthorisationRequired):
        wallet.signer_for(staff, purpose="presentation", enterprise_id=enterprise.id,
                          confirmation=wallet.confirm_pin(staff, wkit.PIN))


# --- credentials ----------------------------------------------------------------------------------------


def test_a_credential_bound_to_the_licence_key_is_the_enterprises(wallet, wkit, firm):
    lr, admin, staff, enterprise = firm
    stored = _store(wallet, admin, _licence_key(wallet, lr, enterprise), 1, enterprise_id=enterprise.id)
    assert (stored.enterprise_id, stored.user_id) == (enterprise.id, None)
    assert stored.credential_hash == credential_hash("eyJ.1.sig~d1~")
    for member in (lr, admin, staff):
        assert [c.id for c in wallet.credentials(member)] == [stored.id]
        assert wallet.credential(member, credential_id=stored.id).credential == "eyJ.1.sig~d1~"


def test_staff_cannot_store_into_the_licence_key(wallet, firm):
    lr, _admin, staff, enterprise = firm
    with pytest.raises(errors.AdministratorRequired):
        _store(wallet, staff, _licence_key(wallet, lr, enterprise), 1, enterprise_id=enterprise.id)


def test_a_key_of_another_owner_is_not_found_and_nothing_is_stored(wallet, wkit, firm, sessions):
    lr, _admin, staff, enterprise = firm
    stranger = wkit.user(wallet, 9)
    other = wkit.enterprise(wallet, stranger, 2)
    before = wkit.snapshot(sessions)
    for user, kid, ent in ((lr, _own_key(wallet, stranger), None), (lr, _licence_key(wallet, stranger, other), enterprise.id),
                           (staff, _own_key(wallet, lr), enterprise.id), (lr, "no-such-kid", None)):
        with pytest.raises(errors.NotFound):
            _store(wallet, user, kid, 1, enterprise_id=ent)
    with pytest.raises(errors.NotFound):  # another enterprise's id
        _store(wallet, lr, _licence_key(wallet, stranger, other), 1, enterprise_id=other.id)
    assert wkit.snapshot(sessions) == before


def test_the_same_credential_twice_is_credential_exists(wallet, wkit):
    user = wkit.user(wallet, 1)
    _store(wallet, user, _own_key(wallet, user), 1)
    with pytest.raises(errors.CredentialExists) as caught:
        wallet.store_credential(user, credential="eyJ.1.sig~other-disclosure~", vct="v", issuer="https://i",
                                configuration_id="c", holder_kid=_own_key(wallet, user))
    assert caught.value.code == "credential_exists"


def test_a_personal_credential_is_seen_by_its_owner_only(wallet, wkit, firm):
    lr, admin, _staff, _enterprise = firm
    personal = _store(wallet, admin, _own_key(wallet, admin), 5, vct="https://elicence.cn/vct/natural-person")
    assert [c.id for c in wallet.credentials(admin)] == [personal.id]
    assert wallet.credentials(lr) == ()
    with pytest.raises(errors.NotFound):
        wallet.credential(lr, credential_id=personal.id)
    with pytest.raises(errors.NotFound):
        wallet.delete_credential(lr, credential_id=personal.id)
    wallet.delete_credential(admin, credential_id=personal.id)
    assert wallet.credentials(admin) == ()


def test_only_managers_delete_the_enterprises_credentials(wallet, firm):
    lr, admin, staff, enterprise = firm
    stored = _store(wallet, lr, _licence_key(wallet, lr, enterprise), 1, enterprise_id=enterprise.id)
    with pytest.raises(errors.AdministratorRequired):
        wallet.delete_credential(staff, credential_id=stored.id)
    wallet.delete_credential(admin, credential_id=stored.id)
    with pytest.raises(errors.NotFound):
        wallet.credential(lr, credential_id=stored.id)


def test_listing_by_enterprise_and_the_status_kept(wallet, wkit, firm):
    lr, _admin, _staff, enterprise = firm
    other = wkit.enterprise(wallet, lr, 2)
    one = _store(wallet, lr, _licence_key(wallet, lr, enterprise), 1, enterprise_id=enterprise.id,
                 status_list_uri="https://issuer.example.gov.cn/issuers/sh-amr/status/1", status_list_idx=42)
    two = _store(wallet, lr, _licence_key(wallet, lr, other), 2, enterprise_id=other.id)
    assert [c.id for c in wallet.credentials(lr, enterprise_id=enterprise.id)] == [one.id]
    assert {c.id for c in wallet.credentials(lr)} == {one.id, two.id}
    kept = wallet.record_status(one.id, status="suspended")
    assert kept.status is store.CredentialStatus.SUSPENDED and kept.status_checked_at == wallet.now()
    assert kept.status_list_idx == 42
    with pytest.raises(errors.InvalidValue):
        wallet.record_status(one.id, status="maybe")


# --- usage records --------------------------------------------------------------------------------------


def test_the_legal_representative_sees_every_record_and_staff_their_own(wallet, wkit, firm, clock):
    lr, admin, staff, enterprise = firm
    licence = _store(wallet, lr, _licence_key(wallet, lr, enterprise), 1, enterprise_id=enterprise.id)
    mine = wallet.record_use(staff, enterprise_id=enterprise.id, credential_ids=[licence.id], channel="qr",
                             outcome="shown", disclosed=["name", "uscc"])
    clock.advance(1)
    theirs = wallet.record_use(lr, enterprise_id=enterprise.id, credential_ids=[licence.id], channel="openid4vp",
                               outcome="sent", verifier_client_id="x509_san_dns:gov.example.cn",
                               verifier_name="一网通办", purpose="登录", disclosed=["name"], request_id="r1", nonce="n1")
    assert [r.id for r in wallet.usage(lr, enterprise_id=enterprise.id).items] == [theirs.id, mine.id]
    assert [r.id for r in wallet.usage(admin, enterprise_id=enterprise.id).items] == [theirs.id, mine.id]
    assert [r.id for r in wallet.usage(staff, enterprise_id=enterprise.id).items] == [mine.id]
    assert [r.id for r in wallet.usage(staff).items] == [mine.id]
    assert theirs.disclosed == ("name",) and theirs.verifier_name == "一网通办"


def test_usage_pages_with_a_cursor(wallet, wkit, firm, clock):
    lr, _admin, _staff, enterprise = firm
    made = []
    for _ in range(5):
        made.append(wallet.record_use(lr, enterprise_id=enterprise.id, credential_ids=[], channel="qr", outcome="failed").id)
        clock.advance(1)
    first = wallet.usage(lr, enterprise_id=enterprise.id, limit=2)
    second = wallet.usage(lr, enterprise_id=enterprise.id, limit=2, cursor=first.next_cursor)
    third = wallet.usage(lr, enterprise_id=enterprise.id, limit=2, cursor=second.next_cursor)
    assert [r.id for r in first.items + second.items + third.items] == made[::-1] and third.next_cursor is None
    with pytest.raises(errors.InvalidValue):
        wallet.usage(lr, enterprise_id=enterprise.id, cursor="garbage")
    with pytest.raises(errors.InvalidValue):
        wallet.usage(lr, limit=0)


def test_a_record_names_only_credentials_and_enterprises_the_user_may_see(wallet, wkit, firm, sessions):
    lr, _admin, staff, enterprise = firm
    stranger = wkit.user(wallet, 9)
    other = wkit.enterprise(wallet, stranger, 2)
    theirs = _store(wallet, stranger, _licence_key(wallet, stranger, other), 2, enterprise_id=other.id)
    before = wkit.snapshot(sessions)
    with pytest.raises(errors.NotFound):
        wallet.record_use(lr, enterprise_id=enterprise.id, credential_ids=[theirs.id], channel="qr", outcome="shown")
    with pytest.raises(errors.NotFound):
        wallet.record_use(lr, enterprise_id=other.id, credential_ids=[], channel="qr", outcome="shown")
    with pytest.raises(errors.InvalidValue):
        wallet.record_use(lr, credential_ids=[], channel="bluetooth", outcome="shown")
    with pytest.raises(errors.InvalidValue):
        wallet.record_use(lr, credential_ids=[], channel="qr", outcome="maybe")
    assert wkit.snapshot(sessions) == before
