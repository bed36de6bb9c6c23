"""IssuerService keys: rotation keeps old credentials verifiable; compromise revokes the key and its credentials."""

from __future__ import annotations

from datetime import timedelta

import pytest

from credentials import errors as ce
from credentials import jws
from credentials import status_list as sl
from issuer.store import CredentialStatus, InvalidTransition, InvalidValue, NotFound



def states(desk, operator=None):
    return {k["kid"]: k["state"] for k in desk.service.keys(operator or desk.operator)}


def kid_of(credential: str) -> str:
    return jws.parse(credential.split("~", 1)[0]).header["kid"]


# --- rotation -------------------------------------------------------------------------------------------------


def test_rotation_makes_a_new_active_key_and_retires_the_old(desk):
    (old,) = states(desk)
    rotated = desk.service.rotate_key(desk.operator)
    assert rotated["retired"] == [old] and rotated["kid"] != old
    assert states(desk) == {old: "retired", rotated["kid"]: "active"}
    assert desk.actions()[-1] == "key.rotated"


def test_credentials_issued_after_rotation_carry_the_new_kid(desk):
    before = desk.issue(1)
    new_kid = desk.service.rotate_key(desk.operator)["kid"]
    after = desk.issue(2)
    assert kid_of(after.text) == after.row.kid == new_kid != kid_of(before.text)
    assert desk.verify(after.text).kid == new_kid


def test_retired_key_stays_published_while_its_credentials_are_unexpired(desk):
    before = desk.issue(1)
    new_kid = desk.service.rotate_key(desk.operator)["kid"]
    assert set(desk.jwks()) == {before.row.kid, new_kid}
    assert list(desk.jwks())[0] == new_kid  # the active key first
    assert desk.verify(before.text).kid == before.row.kid


def test_retired_key_leaves_the_jwks_once_its_credentials_expired(desk):
    before = desk.issue(1)
    new_kid = desk.service.rotate_key(desk.operator)["kid"]
    desk.clock.now = before.row.expires_at + timedelta(seconds=1)
    assert set(desk.jwks()) == {new_kid}


def test_retired_key_that_signed_nothing_leaves_the_jwks_at_once(desk):
    new_kid = desk.service.rotate_key(desk.operator)["kid"]
    assert set(desk.jwks()) == {new_kid}


def test_status_token_is_signed_by_the_new_key_after_rotation(desk):
    issued = desk.issue(1)
    first = desk.service.status_token(desk.SLUG, issued.row.status_list_id)
    new_kid = desk.service.rotate_key(desk.operator)["kid"]
    after = desk.service.status_token(desk.SLUG, issued.row.status_list_id)
    assert first.kid == issued.row.kid and after.kid == new_kid
    assert jws.parse(after.token).header["kid"] == new_kid and after.etag != first.etag
    assert desk.status(issued.text) == sl.VALID


def test_rotation_to_an_eddsa_key_signs_with_eddsa(desk):
    new_kid = desk.service.rotate_key(desk.operator, alg="EdDSA")["kid"]
    issued = desk.issue(1)
    header = jws.parse(issued.text.split("~", 1)[0]).header
    assert (header["alg"], header["kid"]) == ("EdDSA", new_kid)
    assert desk.verify(issued.text).kid == new_kid


def test_rotation_to_an_unknown_algorithm_is_invalid_value(desk):
    assert desk.refused(InvalidValue, desk.service.rotate_key, desk.operator, alg="HS256").code == "invalid_value"


def test_rotation_touches_only_the_operators_authority(desk):
    food_keys = states(desk, desk.food_operator)
    desk.service.rotate_key(desk.operator)
    assert states(desk, desk.food_operator) == food_keys


# --- compromise -----------------------------------------------------------------------------------------------


def test_compromised_key_is_revoked_and_no_longer_published(desk):
    (kid,) = states(desk)
    result = desk.service.compromise_key(desk.operator, kid=kid, reason="HSM stolen")
    assert states(desk)[kid] == "revoked"
    assert kid not in desk.jwks()
    assert result["kid"] == kid


def test_compromise_of_the_active_key_creates_a_replacement(desk):
    (kid,) = states(desk)
    replacement = desk.service.compromise_key(desk.operator, kid=kid)["new_kid"]
    assert states(desk) == {kid: "revoked", replacement: "active"}
    assert set(desk.jwks()) == {replacement}
    assert desk.issue(1).row.kid == replacement


def test_compromise_revokes_every_credential_the_key_signed_in_its_status_list(desk):
    first, second = desk.issue(1), desk.issue(2)
    result = desk.service.compromise_key(desk.operator, kid=first.row.kid)
    assert result["revoked_credentials"] == 2
    for issued in (first, second):
        row = desk.service.credential_row(desk.operator, credential_id=issued.row.id)
        assert row.status is CredentialStatus.REVOKED and row.reason == "key_compromised"
        assert desk.status(issued.text) == sl.INVALID  # the token is signed by the replacement key


def test_credentials_of_a_compromised_key_no_longer_verify(desk):
    issued = desk.issue(1)
    desk.service.compromise_key(desk.operator, kid=issued.row.kid)
    with pytest.raises(ce.UnknownKey):
        desk.verify(issued.text)


def test_compromise_of_a_retired_key_spares_the_active_key_and_its_credentials(desk):
    old = desk.issue(1)
    new_kid = desk.service.rotate_key(desk.operator)["kid"]
    new = desk.issue(2)
    result = desk.service.compromise_key(desk.operator, kid=old.row.kid)
    assert result["new_kid"] is None and result["revoked_credentials"] == 1
    assert states(desk) == {old.row.kid: "revoked", new_kid: "active"}
    assert desk.status(old.text) == sl.INVALID and desk.status(new.text) == sl.VALID


def test_compromise_is_audited_key_and_credentials(desk):
    issued = desk.issue(1)
    result = desk.service.compromise_key(desk.operator, kid=issued.row.kid, reason="leak")
    tail = desk.service.audit(desk.operator)[-3:]
    assert [(r.action, r.subject) for r in tail] == [("key.compromised", issued.row.kid),
                                                    ("key.generated", result["new_kid"]),
                                                    ("credential.revoked", issued.row.id)]
    assert tail[0].details["reason"] == "leak"
    assert desk.service.verify_audit(desk.operator).broken is None


def test_compromise_revokes_authorisations_under_the_revoked_licences(desk, staff):
    licence = desk.issue(1)
    desk.service.rotate_key(desk.operator)
    grant = desk.authorise(licence, staff)  # signed by the new key
    desk.service.compromise_key(desk.operator, kid=licence.row.kid)
    row = desk.service.credential_row(desk.operator, credential_id=grant.row.id)
    assert row.status is CredentialStatus.REVOKED and row.reason == "licence_revoked"
    assert desk.status(grant.text) == sl.INVALID


def test_compromise_of_a_revoked_key_is_invalid_transition(desk):
    (kid,) = states(desk)
    desk.service.compromise_key(desk.operator, kid=kid)
    assert desk.refused(InvalidTransition, desk.service.compromise_key, desk.operator, kid=kid).code == \
        "invalid_transition"


def test_compromise_of_another_authoritys_key_is_not_found(desk):
    (food_kid,) = states(desk, desk.food_operator)
    assert desk.refused(NotFound, desk.service.compromise_key, desk.operator, kid=food_kid).code == "not_found"


def test_compromise_of_an_unknown_key_is_not_found(desk):
    assert desk.refused(NotFound, desk.service.compromise_key, desk.operator, kid="no-such-kid").code == "not_found"
