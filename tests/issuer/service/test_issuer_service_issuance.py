"""IssuerService: the OpenID4VCI 1.0 pre-authorised code flow from record to verified credential.

Record (synthetic claims) -> offer (deep link by value and by reference) -> token (pre-authorised code
and PIN) -> nonce -> credential (key proof by the holder) -> an SD-JWT VC that verifies with the key
the issuer publishes, is bound to the holder key, points into a status list whose served token says
VALID, and is in the authority's audit chain.
"""

from __future__ import annotations

import hashlib

from credentials import jws
from credentials import openid4vci as o4
from credentials import status_list as sl
from issuer.store import CredentialStatus, OfferState
from keys.jwk import thumbprint
from keys.signer import SoftwareSigner


def test_offer_deep_links_by_value_and_by_reference_carry_the_same_offer(desk):
    offer = desk.offer(1)
    by_value = o4.parse_offer_uri(offer.offer_uri)
    reference = o4.parse_offer_uri(offer.offer_reference_uri)
    assert reference == offer.credential_offer_uri == f"{desk.issuer_id}/offers/{offer.offer_id}"
    by_reference = o4.parse_offer(desk.service.offer_document(desk.SLUG, offer.offer_id))
    assert by_value == by_reference
    assert by_value.credential_issuer == desk.issuer_id
    assert by_value.credential_configuration_ids == ("business-licence",)
    assert by_value.tx_code.length == 6 and by_value.tx_code.input_mode == "numeric"
    assert len(offer.tx_code) == 6 and offer.tx_code.isdigit()


def test_offer_is_valid_for_the_policy_lifetime_and_stores_the_code_as_a_hash(desk):
    offer = desk.offer(1)
    row = desk.offer_row(offer.offer_id)
    assert row.state is OfferState.OFFERED and row.pin_attempts == 0
    assert offer.expires_at == row.expires_at
    assert (offer.expires_at - desk.NOW).total_seconds() == desk.service.policy.offer_ttl
    assert row.code_hash == hashlib.sha256(desk.code(offer).encode()).hexdigest()


def test_token_endpoint_answers_a_bearer_token_for_code_and_pin(desk):
    offer = desk.offer(1)
    response = desk.service.token(desk.SLUG, desk.token_form(offer))
    assert response["token_type"] == "Bearer"
    assert response["expires_in"] == desk.service.policy.token_ttl
    assert isinstance(response["access_token"], str) and len(response["access_token"]) >= 43
    assert desk.offer_row(offer.offer_id).state is OfferState.REDEEMED


def test_token_endpoint_accepts_the_form_as_name_value_pairs(desk):
    offer = desk.offer(1)
    response = desk.service.token(desk.SLUG, list(desk.token_form(offer).items()))
    assert response["token_type"] == "Bearer"


def test_nonce_endpoint_gives_a_fresh_nonce_each_time(desk):
    nonces = {desk.nonce() for _ in range(3)}
    assert len(nonces) == 3
    assert desk.count("nonce") == 3


def test_pre_authorised_flow_issues_a_licence_that_verifies_with_the_published_key(desk):
    claims = desk.import_licence(7)
    offer = desk.offer(7, imported=True)
    holder = SoftwareSigner.generate("ES256")
    access_token = desk.token(offer)
    response = desk.credential(access_token, desk.proof(holder, desk.nonce()))
    assert len(response["credentials"]) == 1
    verified = desk.verify(response["credentials"][0]["credential"])
    assert verified.issuer == desk.issuer_id
    assert verified.vct == desk.BL_VCT
    assert verified.kid in desk.jwks()
    subject = {k: v for k, v in verified.claims.items() if k not in ("iss", "iat", "exp", "vct", "cnf", "status")}
    assert subject == claims
    assert verified.exp - verified.iat == desk.service.policy.credential_days * 86400


def test_issued_licence_is_bound_to_the_key_that_signed_the_proof(desk):
    issued = desk.issue(1)
    verified = desk.verify(issued.text)
    assert thumbprint(verified.holder_jwk) == issued.holder.kid
    assert issued.row.holder_thumbprint == issued.holder.kid


def test_issued_licence_registration_is_selectively_disclosable(desk):
    issued = desk.issue(1)
    payload = jws.parse(issued.text.split("~", 1)[0]).payload
    assert "registration" not in payload  # only as a Disclosure
    assert payload["uscc"] == desk.licence_claims(1)["uscc"]
    assert len(issued.text.split("~")) > 2


def test_issued_licence_points_into_a_status_list_whose_served_token_says_valid(desk):
    issued = desk.issue(1)
    verified = desk.verify(issued.text)
    assert verified.status.uri == f"{desk.issuer_id}/status/{issued.row.status_list_id}"
    assert verified.status.idx == issued.row.status_idx
    status_list, signed = desk.status_list(verified.status.uri)
    assert sl.status_of(status_list, verified.status.idx) == sl.VALID
    assert signed.kid == verified.kid
    assert desk.list_used(issued.row.status_list_id) == 1


def test_issuance_records_the_row_and_marks_the_offer_issued(desk):
    issued = desk.issue(1)
    row = issued.row
    assert row.status is CredentialStatus.VALID
    assert row.uscc == desk.licence_claims(1)["uscc"]
    assert row.vct == desk.BL_VCT and row.authority == desk.SLUG
    assert row.issued_at == desk.NOW and row.record_id is not None
    assert row.kid == desk.verify(issued.text).kid
    assert desk.offer_row(issued.offer.offer_id).state is OfferState.ISSUED


def test_issuance_appends_credential_issued_to_an_audit_chain_that_verifies(desk):
    issued = desk.issue(1)
    report = desk.service.verify_audit(desk.operator)
    assert report.broken is None
    records = desk.service.audit(desk.operator)
    assert report.count == len(records)
    issued_records = [r for r in records if r.action == "credential.issued"]
    assert [r.subject for r in issued_records] == [issued.row.id]
    details = issued_records[0].details
    assert details["status_idx"] == issued.row.status_idx and details["kid"] == issued.row.kid
    assert details["credential_hash"] == issued.row.credential_hash
    assert issued_records[0].actor == f"holder:{issued.holder.kid}"


def test_each_authority_step_is_in_its_own_audit_chain(desk):
    desk.issue(1)
    desk.issue(2, slug=desk.FOOD)
    assert desk.actions(desk.SLUG) == ["authority.created", "key.generated", "operator.created", "record.imported",
                                      "offer.created", "credential.issued"]
    assert desk.actions(desk.FOOD).count("credential.issued") == 1
    assert desk.service.verify_audit(desk.food_operator).broken is None


def test_two_licences_get_distinct_status_indexes_in_one_list(desk):
    first, second = desk.issue(1), desk.issue(2)
    assert first.row.status_list_id == second.row.status_list_id
    assert first.row.status_idx != second.row.status_idx
    assert desk.list_used(first.row.status_list_id) == 2


def test_eddsa_holder_key_is_accepted(desk):
    issued = desk.issue(1, holder=SoftwareSigner.generate("EdDSA"))
    assert thumbprint(desk.verify(issued.text).holder_jwk) == issued.holder.kid


def test_food_permit_is_issued_by_its_own_authority(desk):
    claims = desk.food_claims(3)
    desk.service.import_record(desk.food_operator, type_name="food-business-permit", claims=claims)
    offer = desk.service.create_offer(desk.food_operator, type_name="food-business-permit", uscc=claims["uscc"])
    issued = desk.redeem(offer)
    verified = desk.verify(issued.text, slug=desk.FOOD)
    assert verified.vct == desk.FOOD_VCT and verified.issuer == desk.service.issuer_id(desk.FOOD)
    assert verified.claims["permit_number"] == claims["permit_number"]
    assert desk.status(issued.text, slug=desk.FOOD) == sl.VALID


def test_issuer_metadata_lists_the_authority_configurations_and_endpoints(desk):
    meta = desk.service.issuer_metadata(desk.SLUG)
    assert meta["credential_issuer"] == desk.issuer_id
    assert meta["credential_endpoint"] == f"{desk.issuer_id}/credential"
    assert meta["nonce_endpoint"] == f"{desk.issuer_id}/nonce"
    assert set(meta["credential_configurations_supported"]) == {"business-licence", "staff-authorisation"}
    assert desk.service.authorization_server_metadata(desk.SLUG)["token_endpoint"] == f"{desk.issuer_id}/token"
