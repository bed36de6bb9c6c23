"""IssuerService staff authorisations (授权): requested with the licence, redeemed by the staff key, tied to the licence.

The legal representative presents the business licence (SD-JWT VC with a KB-JWT: audience this
issuer, nonce from its nonce endpoint) and names the staff member, the scope, the end date and the
staff member's public key. The offer that comes back issues only to that key; the authorisation
carries the licence's status reference, and every status change of the licence reaches it.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from credentials import errors as ce
from credentials import openid4vci as o4
from credentials import sd_jwt
from credentials import status_list as sl
from issuer.service import AuthorisationRefused, RecordInvalid, UnknownType
from issuer.store import CredentialStatus, InvalidTransition, InvalidValue
from keys.jwk import thumbprint
from keys.signer import SoftwareSigner



def request(desk, body):
    return desk.service.request_authorisation(desk.SLUG, body)


def set_status(desk, credential, action, reason=None):
    return desk.service.change_status(desk.operator, credential_id=credential.row.id, action=action, reason=reason)


@pytest.fixture
def licence(desk):
    """A business licence issued to the legal representative's key (``licence.holder``)."""
    return desk.issue(1)


# --- the flow -------------------------------------------------------------------------------------------------


def test_authorisation_request_answers_an_offer_for_a_staff_authorisation(desk, licence, staff):
    offer = request(desk, desk.authorisation_body(licence, staff))
    assert offer.configuration_id == "staff-authorisation" and offer.uscc == licence.row.uscc
    row = desk.offer_row(offer.offer_id)
    assert row.granted_under == licence.row.id and row.record_id is None
    assert desk.actions()[-1] == "authorisation.requested"


def test_staff_member_redeems_the_authorisation_with_their_own_key(desk, licence, staff):
    grant = desk.authorise(licence, staff)
    verified = desk.verify(grant.text)
    assert verified.vct == desk.STAFF_VCT
    assert thumbprint(verified.holder_jwk) == staff.kid
    assert grant.row.granted_under == licence.row.id and grant.row.holder_thumbprint == staff.kid
    assert desk.status(grant.text) == sl.VALID
    assert desk.actions()[-1] == "authorisation.granted"


def test_authorisation_carries_enterprise_staff_scope_term_grantor_and_licence_status(desk, licence, staff):
    grant = desk.authorise(licence, staff, scope={"matters": ["310000-tax-01"]}, days=30)
    claims = desk.verify(grant.text).claims
    licence_ref = desk.verify(licence.text).status
    assert claims["enterprise_uscc"] == licence.row.uscc
    assert claims["enterprise_name"] == desk.licence_claims(1)["name"]
    assert (claims["staff_name"], claims["staff_account"]) == ("李四", "lisi@example.cn")
    assert claims["scope"] == {"matters": ["310000-tax-01"]}
    assert claims["valid_from"] == desk.NOW.date().isoformat()
    assert claims["valid_until"] == (desk.NOW.date() + timedelta(days=30)).isoformat()
    assert claims["granted_by"] == {"name": desk.licence_claims(1)["legal_representative"],
                                    "role": "legal_representative"}
    assert claims["licence_status"] == {"idx": licence_ref.idx, "uri": licence_ref.uri}


def test_authorisation_for_all_matters_says_so(desk, licence, staff):
    grant = desk.authorise(licence, staff, scope={"all": True})
    assert desk.verify(grant.text).claims["scope"] == {"all": True}


def test_authorisation_expires_at_the_end_of_its_last_day_in_beijing(desk, licence, staff):
    grant = desk.authorise(licence, staff, days=30)
    last_day = desk.NOW.date() + timedelta(days=30)
    end = datetime.combine(last_day + timedelta(days=1), time(), timezone(timedelta(hours=8)))
    assert desk.verify(grant.text).exp == int(end.timestamp())
    assert grant.row.expires_at == end


def test_authorisation_proof_by_another_key_than_the_staff_key_is_invalid_proof(desk, licence, staff):
    offer = request(desk, desk.authorisation_body(licence, staff))
    access_token, nonce = desk.token(offer), desk.nonce()
    proof = desk.proof(licence.holder, nonce)  # the legal representative's own key
    error = desk.refused(o4.InvalidProof, desk.credential, access_token, proof, configuration="staff-authorisation")
    assert error.code == "invalid_proof"
    # The refusal burnt nothing: the staff member still gets the authorisation with that token and nonce.
    assert desk.credential(access_token, desk.proof(staff, nonce), configuration="staff-authorisation")


# --- the licence's status reaches its authorisations --------------------------------------------------------


def test_revoking_the_licence_revokes_its_authorisation(desk, licence, staff):
    grant = desk.authorise(licence, staff)
    changed, cascaded = set_status(desk, licence, "revoke", "deregistered")
    assert [c.id for c in cascaded] == [grant.row.id]
    assert cascaded[0].status is CredentialStatus.REVOKED and cascaded[0].reason == "licence_revoked"
    assert desk.status(grant.text) == sl.INVALID and desk.status(licence.text) == sl.INVALID


def test_suspending_the_licence_suspends_its_authorisation_and_reinstating_reinstates_it(desk, licence, staff):
    grant = desk.authorise(licence, staff)
    set_status(desk, licence, "suspend")
    assert desk.status(grant.text) == sl.SUSPENDED
    _, cascaded = set_status(desk, licence, "reinstate")
    assert [c.status for c in cascaded] == [CredentialStatus.VALID]
    assert desk.status(grant.text) == sl.VALID


def test_authorisation_suspended_on_its_own_stays_suspended_when_the_licence_is_reinstated(desk, licence, staff):
    grant = desk.authorise(licence, staff)
    set_status(desk, grant, "suspend")
    set_status(desk, licence, "suspend")
    _, cascaded = set_status(desk, licence, "reinstate")
    assert cascaded == []
    assert desk.status(grant.text) == sl.SUSPENDED


def test_authorisation_cannot_be_reinstated_while_its_licence_is_suspended(desk, licence, staff):
    grant = desk.authorise(licence, staff)
    set_status(desk, licence, "suspend")
    error = desk.refused(InvalidTransition, set_status, desk, grant, "reinstate")
    assert error.code == "invalid_transition"


def test_revoked_authorisation_stays_revoked_whatever_the_licence_does(desk, licence, staff):
    grant = desk.authorise(licence, staff)
    set_status(desk, grant, "revoke", "other")
    set_status(desk, licence, "suspend")
    _, cascaded = set_status(desk, licence, "reinstate")
    assert cascaded == [] and desk.status(grant.text) == sl.INVALID


def test_change_of_registration_revokes_the_authorisations_of_the_old_licence(desk, licence, staff):
    grant = desk.authorise(licence, staff)
    claims = {**desk.licence_claims(1), "legal_representative": "王五"}
    desk.service.change_registration(desk.operator, type_name="business-licence", claims=claims)
    row = desk.service.credential_row(desk.operator, credential_id=grant.row.id)
    assert row.status is CredentialStatus.REVOKED and row.reason == "licence_revoked"
    assert desk.status(grant.text) == sl.INVALID


def test_status_cascade_is_audited_for_each_authorisation(desk, licence, staff):
    grants = [desk.authorise(licence), desk.authorise(licence)]
    set_status(desk, licence, "revoke", "revoked_as_penalty")
    revoked = [r for r in desk.service.audit(desk.operator) if r.action == "credential.revoked"]
    assert revoked[0].subject == licence.row.id
    assert {r.subject for r in revoked[1:]} == {g.row.id for g in grants} and len(revoked) == 3
    assert [r.details["reason"] for r in revoked] == ["revoked_as_penalty", "licence_revoked", "licence_revoked"]


def test_authorisation_offer_redeemed_after_the_licence_was_revoked_is_denied(desk, licence, staff):
    offer = request(desk, desk.authorisation_body(licence, staff))
    access_token = desk.token(offer)
    set_status(desk, licence, "revoke", "deregistered")
    proof = desk.proof(staff, desk.nonce())
    error = desk.refused(o4.CredentialRequestDenied, desk.credential, access_token, proof,
                    configuration="staff-authorisation")
    assert error.code == "credential_request_denied"


def test_authorisation_offer_redeemed_while_the_licence_is_suspended_is_denied(desk, licence, staff):
    offer = request(desk, desk.authorisation_body(licence, staff))
    access_token = desk.token(offer)
    set_status(desk, licence, "suspend")
    proof = desk.proof(staff, desk.nonce())
    error = desk.refused(o4.CredentialRequestDenied, desk.credential, access_token, proof,
                    configuration="staff-authorisation")
    assert error.code == "credential_request_denied"


# --- refusals -------------------------------------------------------------------------------------------------


def test_authorisation_under_a_revoked_licence_is_refused(desk, licence, staff):
    set_status(desk, licence, "revoke", "deregistered")
    error = desk.refused(AuthorisationRefused, request, desk, desk.authorisation_body(licence, staff))
    assert error.code == "authorisation_refused"


def test_authorisation_under_a_suspended_licence_is_refused(desk, licence, staff):
    set_status(desk, licence, "suspend")
    error = desk.refused(AuthorisationRefused, request, desk, desk.authorisation_body(licence, staff))
    assert error.code == "authorisation_refused"


def test_authorisation_with_a_replaced_licence_is_refused(desk, licence, staff):
    claims = {**desk.licence_claims(1), "name": "上海新名称有限公司"}
    offer, _ = desk.service.change_registration(desk.operator, type_name="business-licence", claims=claims)
    desk.redeem(offer, licence.holder)
    error = desk.refused(AuthorisationRefused, request, desk, desk.authorisation_body(licence, staff))
    assert error.code == "authorisation_refused"


def test_authorisation_with_a_reused_nonce_is_refused(desk, licence, staff):
    nonce = desk.nonce()
    request(desk, desk.authorisation_body(licence, staff, licence=desk.presentation(licence, nonce=nonce)))
    body = desk.authorisation_body(licence, staff, licence=desk.presentation(licence, nonce=nonce))
    assert desk.refused(AuthorisationRefused, request, desk, body).code == "authorisation_refused"


def test_authorisation_with_a_nonce_the_issuer_never_gave_is_refused(desk, licence, staff):
    body = desk.authorisation_body(licence, staff, licence=desk.presentation(licence, nonce="made-up"))
    assert desk.refused(AuthorisationRefused, request, desk, body).code == "authorisation_refused"


def test_authorisation_with_a_stale_nonce_is_refused(desk, licence, staff):
    nonce = desk.nonce()
    desk.clock.advance(desk.service.policy.nonce_ttl)
    body = desk.authorisation_body(licence, staff, licence=desk.presentation(licence, nonce=nonce))
    assert desk.refused(AuthorisationRefused, request, desk, body).code == "authorisation_refused"


def test_authorisation_with_a_presentation_without_key_binding_is_kb_missing(desk, licence, staff):
    body = desk.authorisation_body(licence, staff, licence=desk.presentation(licence, key_bound=False))
    assert desk.refused(ce.KbMissing, request, desk, body).code == "kb_missing"


def test_authorisation_with_a_presentation_for_another_audience_is_kb_aud_mismatch(desk, licence, staff):
    presentation = desk.presentation(licence, aud=desk.service.issuer_id(desk.FOOD))
    body = desk.authorisation_body(licence, staff, licence=presentation)
    assert desk.refused(ce.KbAudMismatch, request, desk, body).code == "kb_aud_mismatch"


def test_authorisation_with_a_licence_presented_by_another_key_is_refused(desk, licence, staff):
    thief = SoftwareSigner.generate("ES256")
    body = desk.authorisation_body(licence, staff, licence=desk.presentation(licence.text, thief))
    error = desk.refused(ce.KeyBindingError, request, desk, body)
    assert error.code == "kb_invalid"


def test_authorisation_with_a_licence_of_another_authority_is_refused(desk, staff):
    foreign = desk.issue(1, slug=desk.FOOD)
    body = desk.authorisation_body(foreign, staff)
    assert desk.refused(AuthorisationRefused, request, desk, body).code == "authorisation_refused"


def test_authorisation_with_another_credential_type_is_invalid_typ(desk, staff):
    claims = desk.food_claims(3)
    desk.service.import_record(desk.food_operator, type_name="food-business-permit", claims=claims)
    permit = desk.redeem(desk.service.create_offer(desk.food_operator, type_name="food-business-permit",
                                                   uscc=claims["uscc"]))
    presentation = sd_jwt.present(permit.text, disclose=[], holder_signer=permit.holder, aud=desk.issuer_id,
                                  nonce=desk.nonce(), now=desk.clock.timestamp())
    body = desk.authorisation_body(permit, staff, licence=presentation)
    assert desk.refused(ce.InvalidTyp, request, desk, body).code == "invalid_typ"


def test_authorisation_ending_before_today_is_invalid_value(desk, licence, staff):
    body = desk.authorisation_body(licence, staff, valid_from="2020-01-01", valid_until="2020-02-01")
    assert desk.refused(InvalidValue, request, desk, body).code == "invalid_value"


def test_authorisation_longer_than_the_policy_allows_is_invalid_value(desk, licence, staff):
    body = desk.authorisation_body(licence, staff, days=desk.service.policy.max_authorisation_days + 1)
    assert desk.refused(InvalidValue, request, desk, body).code == "invalid_value"


def test_authorisation_outliving_the_licence_is_invalid_value(desk, licence, staff):
    body = desk.authorisation_body(licence, staff, days=desk.service.policy.credential_days + 1)
    assert desk.refused(InvalidValue, request, desk, body).code == "invalid_value"


def test_authorisation_ending_on_the_day_the_licence_expires_would_outlive_it_and_is_invalid_value(desk, licence,
                                                                                                    staff):
    # The licence expires 365 days after NOW (05:46 UTC); an authorisation valid until that day would run
    # to the day's end in Beijing (16:00 UTC), ten hours longer.
    body = desk.authorisation_body(licence, staff, days=desk.service.policy.credential_days)
    assert desk.refused(InvalidValue, request, desk, body).code == "invalid_value"


def test_authorisation_ending_the_day_before_the_licence_expires_is_accepted(desk, licence, staff):
    grant = desk.authorise(licence, staff, days=desk.service.policy.credential_days - 1)
    assert grant.row.expires_at <= licence.row.expires_at


def test_today_is_the_beijing_date_for_the_end_of_an_authorisation(desk, staff):
    desk.clock.now = desk.NOW.replace(hour=20)  # 04:00 the next day in Beijing
    licence = desk.issue(1)
    utc_today = desk.clock.now.date()
    body = desk.authorisation_body(licence, staff, valid_from=utc_today.isoformat(), valid_until=utc_today.isoformat())
    assert desk.refused(InvalidValue, request, desk, body).code == "invalid_value"


def test_authorisation_valid_from_defaults_to_the_beijing_date(desk, staff):
    desk.clock.now = desk.NOW.replace(hour=20)  # 04:00 the next day in Beijing
    licence = desk.issue(1)
    body = desk.authorisation_body(licence, staff)
    del body["valid_from"]
    grant = desk.redeem(request(desk, body), staff)
    assert desk.verify(grant.text).claims["valid_from"] == (desk.clock.now.date() + timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    "changes",
    [{"scope": {"all": True, "matters": ["x"]}}, {"scope": {"all": False}}, {"staff": {"name": "", "account": "x"}},
     {"valid_until": "2026-02-30"}],
    ids=["two-scopes", "all-false", "empty-name", "not-a-date"],
)
def test_authorisation_claims_that_do_not_fit_the_type_are_record_invalid(desk, licence, staff, changes):
    body = desk.authorisation_body(licence, staff, **changes)
    assert desk.refused(RecordInvalid, request, desk, body).code == "record_invalid"


def test_authorisation_without_an_acceptable_staff_key_is_invalid_value(desk, licence, staff):
    body = desk.authorisation_body(licence, staff, staff_jwk={"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"})
    assert desk.refused(InvalidValue, request, desk, body).code == "invalid_value"


def test_authorisation_at_an_authority_that_does_not_grant_them_is_unknown_credential_type(desk, staff):
    foreign = desk.issue(1, slug=desk.FOOD)
    body = desk.authorisation_body(foreign, staff)
    before = desk.snapshot()
    with pytest.raises(UnknownType) as info:
        desk.service.request_authorisation(desk.FOOD, body)
    assert info.value.code == "unknown_credential_type"
    assert desk.snapshot() == before
