"""IssuerService lifecycle: suspend, reinstate, revoke, change of registration (变更), status list tokens.

A status change is visible in the very next status list token the service serves (a new ETag), and
each change is one audit record. Refused changes leave every table as it was.
"""

from __future__ import annotations

import pytest

from credentials import jws
from credentials import openid4vci as o4
from credentials import status_list as sl
from issuer.service import REVOCATION_REASONS, RecordInvalid
from issuer.store import CredentialStatus, InvalidTransition, InvalidValue, NotFound, OfferState
from keys.signer import SoftwareSigner



def change(desk, issued, action, reason=None):
    return desk.service.change_status(desk.operator, credential_id=issued.row.id, action=action, reason=reason)


# --- suspend / reinstate / revoke ----------------------------------------------------------------------------


def test_suspension_is_in_the_next_status_token_served_with_a_new_etag(desk):
    issued = desk.issue(1)
    uri = desk.verify(issued.text).status.uri
    _, before = desk.status_list(uri)
    changed, cascaded = change(desk, issued, "suspend")
    assert changed.status is CredentialStatus.SUSPENDED and cascaded == []
    status_list, after = desk.status_list(uri)
    assert sl.status_of(status_list, issued.row.status_idx) == sl.SUSPENDED
    assert after.etag != before.etag and after.version == before.version + 1


def test_reinstatement_makes_the_credential_valid_again(desk):
    issued = desk.issue(1)
    change(desk, issued, "suspend")
    _, suspended = desk.status_list(desk.verify(issued.text).status.uri)
    changed, _ = change(desk, issued, "reinstate")
    assert changed.status is CredentialStatus.VALID and changed.reason is None
    status_list, reinstated = desk.status_list(desk.verify(issued.text).status.uri)
    assert sl.status_of(status_list, issued.row.status_idx) == sl.VALID
    assert reinstated.etag != suspended.etag


@pytest.mark.parametrize("reason", ["deregistered", "revoked_as_penalty"])
def test_revocation_with_a_reason_is_in_the_next_status_token(desk, reason):
    issued = desk.issue(1)
    changed, _ = change(desk, issued, "revoke", reason)
    assert changed.status is CredentialStatus.REVOKED and changed.reason == reason
    assert changed.status_changed_at == desk.NOW
    assert desk.status(issued.text) == sl.INVALID


def test_suspended_credential_can_be_revoked(desk):
    issued = desk.issue(1)
    change(desk, issued, "suspend")
    change(desk, issued, "revoke", "deregistered")
    assert desk.status(issued.text) == sl.INVALID


def test_status_change_touches_only_its_own_entry(desk):
    first, second = desk.issue(1), desk.issue(2)
    change(desk, first, "revoke", "deregistered")
    assert desk.status(first.text) == sl.INVALID
    assert desk.status(second.text) == sl.VALID


@pytest.mark.parametrize("reason", [None, "", "because", "DEREGISTERED"])
def test_revocation_without_a_known_reason_is_invalid_value(desk, reason):
    issued = desk.issue(1)
    error = desk.refused(InvalidValue, change, desk, issued, "revoke", reason)
    assert error.code == "invalid_value"


def test_revocation_reasons_include_both_kinds_of_revocation():
    assert {"deregistered", "revoked_as_penalty"} <= REVOCATION_REASONS


def test_unknown_action_is_invalid_value(desk):
    issued = desk.issue(1)
    assert desk.refused(InvalidValue, change, desk, issued, "delete").code == "invalid_value"


@pytest.mark.parametrize(
    ("steps", "action"),
    [
        ((), "reinstate"),
        ((("suspend", None),), "suspend"),
        ((("revoke", "deregistered"),), "reinstate"),
        ((("revoke", "deregistered"),), "suspend"),
        ((("revoke", "deregistered"),), "revoke"),
    ],
    ids=["reinstate-valid", "suspend-suspended", "reinstate-revoked", "suspend-revoked", "revoke-revoked"],
)
def test_status_change_not_allowed_from_the_current_status_is_invalid_transition(desk, steps, action):
    issued = desk.issue(1)
    for step, reason in steps:
        change(desk, issued, step, reason)
    error = desk.refused(InvalidTransition, change, desk, issued, action, "other")
    assert error.code == "invalid_transition"


def test_status_change_of_another_authoritys_credential_is_not_found(desk):
    issued = desk.issue(1, slug=desk.FOOD)
    error = desk.refused(NotFound, change, desk, issued, "revoke", "deregistered")
    assert error.code == "not_found"
    assert desk.status(issued.text, slug=desk.FOOD) == sl.VALID


@pytest.mark.parametrize("credential_id", ["nope", "00000000-0000-4000-8000-000000000000"])
def test_status_change_of_an_unknown_credential_is_not_found(desk, credential_id):
    error = desk.refused(NotFound, desk.service.change_status, desk.operator, credential_id=credential_id,
                    action="suspend")
    assert error.code == "not_found"


def test_each_status_change_appends_one_audit_record_with_its_reason(desk):
    issued = desk.issue(1)
    change(desk, issued, "suspend")
    change(desk, issued, "reinstate")
    change(desk, issued, "revoke", "revoked_as_penalty")
    records = [r for r in desk.service.audit(desk.operator) if r.subject == issued.row.id][1:]
    assert [r.action for r in records] == ["credential.suspended", "credential.reinstated", "credential.revoked"]
    assert records[-1].details["reason"] == "revoked_as_penalty"
    assert records[-1].actor == f"operator:{desk.operator.id}"
    assert desk.service.verify_audit(desk.operator).broken is None


# --- status list tokens ---------------------------------------------------------------------------------------


def test_status_token_is_reused_while_nothing_changed(desk):
    issued = desk.issue(1)
    first = desk.service.status_token(desk.SLUG, issued.row.status_list_id)
    desk.clock.advance(60)
    again = desk.service.status_token(desk.SLUG, issued.row.status_list_id)
    assert again.token == first.token and again.etag == first.etag


def test_status_token_is_resigned_with_a_new_etag_before_it_expires(desk):
    issued = desk.issue(1)
    first = desk.service.status_token(desk.SLUG, issued.row.status_list_id)
    desk.clock.advance(desk.service.policy.status_token_lifetime // 2)
    later = desk.service.status_token(desk.SLUG, issued.row.status_list_id)
    assert later.token != first.token
    assert later.etag != first.etag  # a 304 to the old ETag would keep a token that expires sooner
    exp = jws.parse(later.token).payload["exp"]
    assert exp == desk.clock.timestamp() + desk.service.policy.status_token_lifetime


def test_status_token_carries_the_policy_ttl_and_names_its_list(desk):
    issued = desk.issue(1)
    uri = desk.verify(issued.text).status.uri
    verified, signed = desk.status_list(uri)
    payload = jws.parse(signed.token).payload
    assert payload["sub"] == uri and payload["ttl"] == signed.ttl == desk.service.policy.status_ttl
    assert verified.iss == desk.issuer_id
    assert len(verified.status_list) == desk.service.authority(desk.SLUG).status_list_size >= 100_000


def test_status_token_of_an_unknown_list_is_not_found(desk):
    assert desk.refused(NotFound, desk.service.status_token, desk.SLUG, 424242).code == "not_found"


def test_status_token_of_another_authoritys_list_is_not_found(desk):
    issued = desk.issue(1, slug=desk.FOOD)
    error = desk.refused(NotFound, desk.service.status_token, desk.SLUG, issued.row.status_list_id)
    assert error.code == "not_found"


def test_status_token_of_an_unknown_authority_is_not_found(desk):
    issued = desk.issue(1)
    error = desk.refused(NotFound, desk.service.status_token, "xx-amr", issued.row.status_list_id)
    assert error.code == "not_found"


def test_a_cached_status_token_is_not_served_for_another_authority(desk):
    issued = desk.issue(1)
    desk.service.status_token(desk.SLUG, issued.row.status_list_id)  # now cached
    error = desk.refused(NotFound, desk.service.status_token, desk.FOOD, issued.row.status_list_id)
    assert error.code == "not_found"


# --- change of registration (变更) --------------------------------------------------------------------------


def changed_claims(desk, seed=1, **changes):
    return {**desk.licence_claims(seed), **changes}


def test_change_of_registration_revokes_the_old_licence_with_reason_changed(desk):
    old = desk.issue(1)
    offer, revoked = desk.service.change_registration(desk.operator, type_name="business-licence",
                                                      claims=changed_claims(desk, legal_representative="王五"))
    assert revoked == [old.row.id]
    row = desk.service.credential_row(desk.operator, credential_id=old.row.id)
    assert row.status is CredentialStatus.REVOKED and row.reason == "changed"
    assert desk.status(old.text) == sl.INVALID
    assert offer.uscc == old.row.uscc and offer.configuration_id == "business-licence"


def test_change_of_registration_replaces_the_record(desk):
    desk.issue(1)
    desk.clock.advance(10)
    desk.service.change_registration(desk.operator, type_name="business-licence",
                                     claims=changed_claims(desk, name="上海新名称有限公司"))
    record = desk.service.get_record(desk.operator, type_name="business-licence", uscc=desk.licence_claims(1)["uscc"])
    assert record.claims["name"] == "上海新名称有限公司"
    assert record.updated_at > record.created_at


def test_licence_issued_from_the_change_offer_carries_the_new_claims_and_replaces_the_old(desk):
    old = desk.issue(1)
    offer, _ = desk.service.change_registration(desk.operator, type_name="business-licence",
                                                claims=changed_claims(desk, legal_representative="王五"))
    new = desk.redeem(offer, old.holder)
    assert desk.verify(new.text).claims["legal_representative"] == "王五"
    assert desk.service.credential_row(desk.operator, credential_id=old.row.id).replaced_by == new.row.id
    assert new.row.replaced_by is None and new.row.record_id == old.row.record_id
    assert desk.status(new.text) == sl.VALID


def test_change_of_registration_is_audited_with_what_it_revoked_and_offered(desk):
    old = desk.issue(1)
    offer, _ = desk.service.change_registration(desk.operator, type_name="business-licence",
                                                claims=changed_claims(desk, legal_representative="王五"))
    records = desk.service.audit(desk.operator)
    changed = [r for r in records if r.action == "registration.changed"]
    assert len(changed) == 1
    assert list(changed[0].details["revoked"]) == [old.row.id] and changed[0].details["offer"] == offer.offer_id
    revoked = [r for r in records if r.action == "credential.revoked"]
    assert [(r.subject, r.details["reason"]) for r in revoked] == [(old.row.id, "changed")]


def test_change_of_registration_withdraws_offers_still_open_for_the_old_claims(desk):
    desk.issue(1)
    stale = desk.offer(1, imported=True)
    desk.service.change_registration(desk.operator, type_name="business-licence",
                                     claims=changed_claims(desk, legal_representative="王五"))
    assert desk.offer_row(stale.offer_id).state is OfferState.WITHDRAWN
    with pytest.raises(o4.InvalidGrant):
        desk.token(stale)


def test_change_of_registration_withdraws_an_offer_already_redeemed_for_a_token(desk):
    desk.issue(1)
    stale = desk.offer(1, imported=True)
    access_token = desk.token(stale)
    desk.service.change_registration(desk.operator, type_name="business-licence",
                                     claims=changed_claims(desk, legal_representative="王五"))
    holder = SoftwareSigner.generate("ES256")
    error = desk.refused(o4.InvalidToken, desk.credential, access_token, desk.proof(holder, desk.nonce()))
    assert error.code == "invalid_token"


def test_new_licence_replaces_the_old_even_after_two_changes_in_a_row(desk):
    old = desk.issue(1)
    desk.service.change_registration(desk.operator, type_name="business-licence",
                                     claims=changed_claims(desk, legal_representative="王五"))
    offer, revoked = desk.service.change_registration(desk.operator, type_name="business-licence",
                                                      claims=changed_claims(desk, legal_representative="赵六"))
    assert revoked == []
    new = desk.redeem(offer)
    assert desk.verify(new.text).claims["legal_representative"] == "赵六"
    assert desk.service.credential_row(desk.operator, credential_id=old.row.id).replaced_by == new.row.id


def test_change_of_a_registration_never_imported_is_not_found(desk):
    error = desk.refused(NotFound, desk.service.change_registration, desk.operator, type_name="business-licence",
                    claims=desk.licence_claims(1))
    assert error.code == "not_found"


def test_change_of_registration_with_invalid_claims_is_record_invalid(desk):
    desk.issue(1)
    error = desk.refused(RecordInvalid, desk.service.change_registration, desk.operator, type_name="business-licence",
                    claims=changed_claims(desk, legal_representative=""))
    assert error.code == "record_invalid"


def test_offer_of_another_authority_cannot_be_withdrawn(desk):
    offer = desk.offer(1, slug=desk.FOOD)
    error = desk.refused(NotFound, desk.service.withdraw_offer, desk.operator, offer_id=offer.offer_id)
    assert error.code == "not_found"


def test_withdrawn_offer_cannot_be_withdrawn_twice(desk):
    offer = desk.offer(1)
    desk.service.withdraw_offer(desk.operator, offer_id=offer.offer_id)
    error = desk.refused(InvalidTransition, desk.service.withdraw_offer, desk.operator, offer_id=offer.offer_id)
    assert error.code == "invalid_transition"
