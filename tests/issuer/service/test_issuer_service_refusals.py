"""IssuerService: bad input is refused with its error code and changes nothing.

Each test takes a snapshot of every issuer table (rows, statuses, list bits and counters, the audit
chain) before the refused call and compares after it. The PIN attempt counter is the one thing a
refused token request is meant to change; those tests say so and check it.
"""

from __future__ import annotations

import pytest

from credentials import jws
from credentials import openid4vci as o4
from issuer import store
from issuer.service import RecordInvalid, UnknownType
from issuer.store import InvalidValue, NotFound, OfferState
from keys.keystore import Keystore
from keys.signer import SoftwareSigner



# --- token endpoint -----------------------------------------------------------------------------------------


def test_wrong_pin_is_invalid_grant_and_counts_one_attempt(desk):
    offer = desk.offer(1)
    wrong = "000000" if offer.tx_code != "000000" else "111111"
    before = desk.snapshot()
    with pytest.raises(o4.InvalidGrant) as info:
        desk.service.token(desk.SLUG, desk.token_form(offer, tx_code=wrong))
    assert info.value.code == "invalid_grant"
    after = desk.snapshot()
    assert desk.offer_row(offer.offer_id).pin_attempts == 1
    assert {k: v for k, v in after.items() if k != "offers"} == {k: v for k, v in before.items() if k != "offers"}
    assert desk.offer_row(offer.offer_id).state is OfferState.OFFERED


def test_right_pin_on_the_last_allowed_attempt_is_accepted(desk):
    offer = desk.offer(1)
    wrong = "000000" if offer.tx_code != "000000" else "111111"
    for _ in range(desk.service.policy.max_pin_attempts - 1):
        with pytest.raises(o4.InvalidGrant):
            desk.service.token(desk.SLUG, desk.token_form(offer, tx_code=wrong))
    assert desk.service.token(desk.SLUG, desk.token_form(offer))["token_type"] == "Bearer"


def test_after_the_maximum_wrong_pins_even_the_right_pin_is_refused(desk):
    offer = desk.offer(1)
    wrong = "000000" if offer.tx_code != "000000" else "111111"
    for _ in range(desk.service.policy.max_pin_attempts):
        with pytest.raises(o4.InvalidGrant):
            desk.service.token(desk.SLUG, desk.token_form(offer, tx_code=wrong))
    error = desk.refused(o4.InvalidGrant, desk.service.token, desk.SLUG, desk.token_form(offer))
    assert error.code == "invalid_grant" and "too many" in error.description
    assert desk.offer_row(offer.offer_id).pin_attempts == desk.service.policy.max_pin_attempts
    assert desk.count("access_token") == 0


def test_replayed_pre_authorised_code_is_invalid_grant(desk):
    offer = desk.offer(1)
    desk.token(offer)
    error = desk.refused(o4.InvalidGrant, desk.service.token, desk.SLUG, desk.token_form(offer))
    assert error.code == "invalid_grant"
    assert desk.count("access_token") == 1


def test_expired_offer_is_invalid_grant(desk):
    offer = desk.offer(1)
    desk.clock.advance(desk.service.policy.offer_ttl)
    error = desk.refused(o4.InvalidGrant, desk.service.token, desk.SLUG, desk.token_form(offer))
    assert error.code == "invalid_grant" and "expired" in error.description


def test_offer_with_a_shorter_lifetime_expires_sooner(desk):
    offer = desk.offer(1, expires_in=60)
    desk.clock.advance(61)
    assert desk.refused(o4.InvalidGrant, desk.service.token, desk.SLUG, desk.token_form(offer)).code == "invalid_grant"


@pytest.mark.parametrize("expires_in", [59, 30 * 86400 + 1, "600", True])
def test_offer_lifetime_outside_the_policy_is_invalid_value(desk, expires_in):
    desk.import_licence(1)
    error = desk.refused(InvalidValue, desk.service.create_offer, desk.operator, type_name="business-licence",
                    uscc=desk.licence_claims(1)["uscc"], expires_in=expires_in)
    assert error.code == "invalid_value"


def test_token_request_without_the_transaction_code_is_invalid_request(desk):
    offer = desk.offer(1)
    error = desk.refused(o4.InvalidRequest, desk.service.token, desk.SLUG, desk.token_form(offer, tx_code=None))
    assert error.code == "invalid_request"
    assert desk.offer_row(offer.offer_id).pin_attempts == 0


def test_unknown_grant_type_is_unsupported_grant_type(desk):
    offer = desk.offer(1)
    form = desk.token_form(offer, grant_type="authorization_code")
    assert desk.refused(o4.UnsupportedGrantType, desk.service.token, desk.SLUG, form).code == "unsupported_grant_type"


def test_unknown_pre_authorised_code_is_invalid_grant(desk):
    offer = desk.offer(1)
    form = desk.token_form(offer, **{"pre-authorized_code": "x" * 43})
    assert desk.refused(o4.InvalidGrant, desk.service.token, desk.SLUG, form).code == "invalid_grant"


def test_non_ascii_pre_authorised_code_is_invalid_grant(desk):
    offer = desk.offer(1)
    form = desk.token_form(offer, **{"pre-authorized_code": "取照码"})
    assert desk.refused(o4.InvalidGrant, desk.service.token, desk.SLUG, form).code == "invalid_grant"


def test_code_of_another_authority_is_invalid_grant_at_this_token_endpoint(desk):
    offer = desk.offer(1, slug=desk.FOOD)
    error = desk.refused(o4.InvalidGrant, desk.service.token, desk.SLUG, desk.token_form(offer))
    assert error.code == "invalid_grant"
    assert desk.offer_row(offer.offer_id).pin_attempts == 0


def test_token_request_to_an_unknown_authority_is_invalid_grant(desk):
    offer = desk.offer(1)
    assert desk.refused(o4.InvalidGrant, desk.service.token, "xx-amr", desk.token_form(offer)).code == "invalid_grant"


def test_withdrawn_offer_is_invalid_grant(desk):
    offer = desk.offer(1)
    desk.service.withdraw_offer(desk.operator, offer_id=offer.offer_id)
    assert desk.refused(o4.InvalidGrant, desk.service.token, desk.SLUG, desk.token_form(offer)).code == "invalid_grant"


# --- credential endpoint ------------------------------------------------------------------------------------


@pytest.fixture
def ready(desk):
    """An access token for a licence offer, a holder key and a fresh nonce."""
    offer = desk.offer(1)
    return desk.token(offer), SoftwareSigner.generate("ES256"), desk.nonce()


def test_replayed_access_token_is_invalid_token(desk, ready):
    access_token, holder, nonce = ready
    desk.credential(access_token, desk.proof(holder, nonce))
    error = desk.refused(o4.InvalidToken, desk.credential, access_token, desk.proof(holder, desk.nonce()))
    assert error.code == "invalid_token"


def test_expired_access_token_is_invalid_token(desk, ready):
    access_token, holder, _ = ready
    desk.clock.advance(desk.service.policy.token_ttl)
    error = desk.refused(o4.InvalidToken, desk.credential, access_token, desk.proof(holder, desk.nonce()))
    assert error.code == "invalid_token"


def test_unknown_access_token_is_invalid_token(desk, ready):
    _, holder, nonce = ready
    error = desk.refused(o4.InvalidToken, desk.credential, "A" * 43, desk.proof(holder, nonce))
    assert error.code == "invalid_token"


def test_access_token_of_another_authority_is_invalid_token(desk):
    access_token = desk.token(desk.offer(1, slug=desk.FOOD))
    holder = SoftwareSigner.generate("ES256")
    error = desk.refused(o4.InvalidToken, desk.credential, access_token, desk.proof(holder, desk.nonce()))
    assert error.code == "invalid_token"


def test_credential_request_to_an_unknown_authority_is_invalid_token(desk, ready):
    access_token, holder, nonce = ready
    error = desk.refused(o4.InvalidToken, desk.credential, access_token, desk.proof(holder, nonce), slug="xx-amr")
    assert error.code == "invalid_token"


def test_unknown_nonce_is_invalid_nonce_and_the_access_token_stays_usable(desk, ready):
    access_token, holder, nonce = ready
    error = desk.refused(o4.InvalidNonce, desk.credential, access_token, desk.proof(holder, "not-a-nonce-we-gave"))
    assert error.code == "invalid_nonce"
    assert desk.credential(access_token, desk.proof(holder, nonce))["credentials"]


def test_stale_nonce_is_invalid_nonce(desk):
    nonce = desk.nonce()
    desk.clock.advance(desk.service.policy.nonce_ttl)
    access_token, holder = desk.token(desk.offer(1)), SoftwareSigner.generate("ES256")
    error = desk.refused(o4.InvalidNonce, desk.credential, access_token, desk.proof(holder, nonce))
    assert error.code == "invalid_nonce"


def test_reused_nonce_is_invalid_nonce(desk, ready):
    access_token, holder, nonce = ready
    desk.credential(access_token, desk.proof(holder, nonce))
    second = desk.token(desk.offer(2))
    error = desk.refused(o4.InvalidNonce, desk.credential, second, desk.proof(holder, nonce))
    assert error.code == "invalid_nonce"


def test_proof_without_a_nonce_is_invalid_proof(desk, ready):
    access_token, holder, _ = ready
    error = desk.refused(o4.InvalidProof, desk.credential, access_token, desk.proof(holder, None))
    assert error.code == "invalid_proof"


def test_proof_signed_by_another_key_than_its_jwk_header_is_invalid_proof(desk, ready):
    access_token, holder, nonce = ready
    impostor = SoftwareSigner.generate("ES256")
    payload = {"aud": desk.issuer_id, "iat": desk.clock.timestamp(), "nonce": nonce}
    proof = jws.sign(payload, impostor, typ=o4.PROOF_TYP, header={"jwk": dict(holder.public_jwk)}, include_kid=False)
    assert desk.refused(o4.InvalidProof, desk.credential, access_token, proof).code == "invalid_proof"


def test_proof_for_another_audience_is_invalid_proof(desk, ready):
    access_token, holder, nonce = ready
    proof = desk.proof(holder, nonce, aud=desk.service.issuer_id(desk.FOOD))
    assert desk.refused(o4.InvalidProof, desk.credential, access_token, proof).code == "invalid_proof"


def test_proof_older_than_the_policy_allows_is_invalid_proof(desk, ready):
    access_token, holder, nonce = ready
    proof = desk.proof(holder, nonce, iat=desk.clock.timestamp() - desk.service.policy.proof_max_age - 1)
    assert desk.refused(o4.InvalidProof, desk.credential, access_token, proof).code == "invalid_proof"


def test_proof_from_the_future_beyond_the_skew_is_invalid_proof(desk, ready):
    access_token, holder, nonce = ready
    proof = desk.proof(holder, nonce, iat=desk.clock.timestamp() + desk.service.policy.proof_skew + 1)
    assert desk.refused(o4.InvalidProof, desk.credential, access_token, proof).code == "invalid_proof"


def test_proof_signed_with_the_issuers_own_key_is_invalid_proof(desk, ready):
    access_token, _, nonce = ready
    with store.unit_of_work(desk.sessions, read_only=True) as tx:
        keystore = Keystore(store.SqlKeyRecordStore(desk.sessions, desk.SLUG).using(tx), desk.service._kek)
        issuer_key = keystore.signer(keystore.list(owner=desk.SLUG)[0].kid)
    error = desk.refused(o4.InvalidProof, desk.credential, access_token, desk.proof(issuer_key, nonce))
    assert error.code == "invalid_proof"


def test_configuration_not_matching_the_offer_is_invalid_credential_request(desk, ready):
    access_token, holder, nonce = ready
    error = desk.refused(o4.InvalidCredentialRequest, desk.credential, access_token, desk.proof(holder, nonce),
                    configuration="staff-authorisation")
    assert error.code == "invalid_credential_request"


def test_configuration_the_authority_does_not_issue_is_unknown_credential_configuration(desk, ready):
    access_token, holder, nonce = ready
    error = desk.refused(o4.UnknownCredentialConfiguration, desk.credential, access_token, desk.proof(holder, nonce),
                    configuration="food-business-permit")
    assert error.code == "unknown_credential_configuration"


def test_credential_request_without_proofs_is_invalid_proof(desk, ready):
    access_token, _, _ = ready
    before = desk.snapshot()
    with pytest.raises(o4.InvalidProof) as info:
        desk.service.credential(desk.SLUG, authorization=f"Bearer {access_token}",
                                body={"credential_configuration_id": "business-licence"})
    assert info.value.code == "invalid_proof"
    assert desk.snapshot() == before


def test_credential_request_without_authorization_is_invalid_token(desk, ready):
    _, holder, nonce = ready
    before = desk.snapshot()
    with pytest.raises(o4.InvalidToken) as info:
        desk.service.credential(desk.SLUG, authorization=None, body={
            "credential_configuration_id": "business-licence", "proofs": {"jwt": [desk.proof(holder, nonce)]}})
    assert info.value.code == "invalid_token"
    assert desk.snapshot() == before


# --- registry records -----------------------------------------------------------------------------------------


def test_record_with_an_invalid_uscc_is_record_invalid_naming_the_field(desk):
    claims = desk.licence_claims(1)
    bad = claims["uscc"][:-1] + ("0" if claims["uscc"][-1] != "0" else "1")
    error = desk.refused(RecordInvalid, desk.service.import_record, desk.operator, type_name="business-licence",
                    claims={**claims, "uscc": bad})
    assert error.code == "record_invalid"
    assert [path for path, _, _ in error.errors] == ["uscc"]
    assert all(zh and en for _, zh, en in error.errors)


def test_record_with_schema_errors_is_record_invalid_listing_every_field(desk):
    claims = desk.licence_claims(1)
    del claims["name"]
    claims["registration"] = {**claims["registration"], "establishment_date": "2020-02-30"}
    claims["colour"] = "red"
    error = desk.refused(RecordInvalid, desk.service.import_record, desk.operator, type_name="business-licence",
                    claims=claims)
    assert error.code == "record_invalid"
    paths = {path for path, _, _ in error.errors}
    assert "registration.establishment_date" in paths
    assert len(error.errors) >= 3
    assert error.to_dict()["fields"] and error.to_dict()["error"] == "record_invalid"


def test_record_that_is_not_an_object_is_record_invalid(desk):
    error = desk.refused(RecordInvalid, desk.service.import_record, desk.operator, type_name="business-licence",
                    claims=["913101136317066918"])
    assert error.code == "record_invalid"


@pytest.mark.parametrize("type_name", ["driving-licence", "food-business-permit", "staff-authorisation"])
def test_record_of_a_type_the_authority_does_not_import_is_unknown_credential_type(desk, type_name):
    error = desk.refused(UnknownType, desk.service.import_record, desk.operator, type_name=type_name,
                    claims=desk.licence_claims(1))
    assert error.code == "unknown_credential_type"


def test_offer_for_a_record_never_imported_is_not_found(desk):
    error = desk.refused(NotFound, desk.service.create_offer, desk.operator, type_name="business-licence",
                    uscc=desk.licence_claims(1)["uscc"])
    assert error.code == "not_found"


def test_offer_for_a_record_of_another_authority_is_not_found(desk):
    desk.import_licence(1, slug=desk.FOOD)
    error = desk.refused(NotFound, desk.service.create_offer, desk.operator, type_name="business-licence",
                    uscc=desk.licence_claims(1)["uscc"])
    assert error.code == "not_found"


def test_offer_document_is_gone_once_the_offer_is_redeemed(desk):
    offer = desk.offer(1)
    desk.token(offer)
    assert desk.refused(NotFound, desk.service.offer_document, desk.SLUG, offer.offer_id).code == "not_found"


def test_offer_document_is_gone_once_the_offer_expired(desk):
    offer = desk.offer(1)
    desk.clock.advance(desk.service.policy.offer_ttl)
    assert desk.refused(NotFound, desk.service.offer_document, desk.SLUG, offer.offer_id).code == "not_found"


def test_offer_document_is_only_served_by_its_own_authority(desk):
    offer = desk.offer(1)
    assert desk.refused(NotFound, desk.service.offer_document, desk.FOOD, offer.offer_id).code == "not_found"
