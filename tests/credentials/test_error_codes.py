"""The error codes are the contract the SDK, the services and their users rely on: pinned here."""

from __future__ import annotations

from credentials.errors import ERROR_CLASSES, CredentialError, error_for_code

# The codes issue #2 names as the contract, in its order.
CONTRACT = (
    "malformed payload_too_large unsupported_alg invalid_signature invalid_typ invalid_key unknown_key "
    "crit_unsupported untrusted_issuer issuer_not_authorized_for_type cannot_verify expired not_yet_valid "
    "iat_in_future missing_claim sd_alg_unsupported malformed_disclosure disclosure_unreferenced "
    "digest_duplicate duplicate_disclosure reserved_claim_name claim_name_collision kb_missing kb_invalid "
    "kb_nonce_mismatch kb_aud_mismatch kb_iat_out_of_window sd_hash_mismatch replay revoked suspended "
    "status_list_invalid status_unavailable schema_invalid"
).split()


def test_every_contract_code_has_exactly_one_class() -> None:
    codes = [cls.code for cls in ERROR_CLASSES.values()]
    assert len(codes) == len(set(codes)), "two classes share a code"
    assert set(CONTRACT) <= set(ERROR_CLASSES)


def test_every_class_has_messages_in_english_and_chinese() -> None:
    for code in CONTRACT:
        cls = error_for_code(code)
        assert issubclass(cls, CredentialError)
        assert cls.description and cls.description_zh and cls.description != cls.description_zh
        error = cls("detail")
        assert error.to_dict() == {"error": code, "error_description": "detail"}
        assert error.check is None and error.passed == ()


def test_stale_material_is_not_the_same_as_invalid() -> None:
    # cannot_verify (and status_unavailable beneath it) must never be confused with a verdict of invalid.
    from credentials.errors import CannotVerify, StatusError, StatusUnavailable

    assert issubclass(StatusUnavailable, CannotVerify)
    assert not issubclass(StatusUnavailable, StatusError)
