"""Pins the public surface: each package's ``__all__``, so that API growth is a visible diff here.

``keys`` and ``credentials.errors`` must be pinned. Another package is skipped, saying why, while its
``__init__.py`` has no ``__all__`` or while its names are not pinned below (pytest's ``-ra`` lists the
reasons); once pinned, any change to its ``__all__`` fails here until the pin is updated.
"""

from __future__ import annotations

import importlib

import pytest

PINNED: dict[str, frozenset[str]] = {
    "keys": frozenset(
        {
            # errors
            "KeyMaterialError",
            "InvalidKeyMaterial",
            "KeyNotFound",
            "KeystoreError",
            "WrongKek",
            "KeystoreTampered",
            "KeyStateError",
            "KekMissing",
            "KekInvalid",
            # jwk
            "ALGORITHMS",
            "PrivateKey",
            "PublicKey",
            "b64u_encode",
            "b64u_decode",
            "generate_private_key",
            "alg_for_key",
            "public_jwk",
            "private_jwk",
            "load_public_jwk",
            "load_private_jwk",
            "thumbprint",
            "jwks",
            # signer
            "Signer",
            "SoftwareSigner",
            # keystore
            "KEK_ENV",
            "KEK_FILE_ENV",
            "KEK_BYTES",
            "KeyState",
            "KeyRecord",
            "KeyRecordStore",
            "InMemoryKeyRecordStore",
            "FileKeyRecordStore",
            "Keystore",
            "load_kek",
            "generate_kek",
            "write_kek_file",
            "write_secret_file",
            # x509
            "MAX_CHAIN_LENGTH",
            "MAX_CERTIFICATE_BYTES",
            "CertificateError",
            "CertificateUntrusted",
            "CertificateNameMismatch",
            "CertificateExpired",
            "CertificateNotYetValid",
            "VerifiedChain",
            "make_registrar_ca",
            "issue_access_certificate",
            "x5c_encode",
            "x5c_decode",
            "certificate_pem",
            "load_pem_certificates",
            "dns_names",
            "subject_organization",
            "verify_x5c_for_dns",
        }
    ),
    "credentials.errors": frozenset(
        {
            "CredentialError",
            "Malformed",
            "PayloadTooLarge",
            "MalformedDisclosure",
            "MissingClaim",
            "SchemaInvalid",
            "JoseError",
            "UnsupportedAlg",
            "InvalidSignature",
            "InvalidTyp",
            "InvalidKey",
            "UnknownKey",
            "CritUnsupported",
            "TrustError",
            "UntrustedIssuer",
            "IssuerNotAuthorizedForType",
            "CannotVerify",
            "StatusUnavailable",
            "ValidityError",
            "Expired",
            "NotYetValid",
            "IatInFuture",
            "DisclosureError",
            "SdAlgUnsupported",
            "DisclosureUnreferenced",
            "DigestDuplicate",
            "DuplicateDisclosure",
            "ReservedClaimName",
            "ClaimNameCollision",
            "KeyBindingError",
            "KbMissing",
            "KbNonceMismatch",
            "KbAudMismatch",
            "KbIatOutOfWindow",
            "SdHashMismatch",
            "Replay",
            "StatusError",
            "Revoked",
            "Suspended",
            "StatusListInvalid",
            "ERROR_CLASSES",
            "error_for_code",
            "error_responses",
        }
    ),
    "schemas": frozenset(
        {
            "CredentialTypeError",
            "FieldError",
            "SchemaError",
            "InvalidValue",
            "InvalidUscc",
            "InvalidResidentId",
            "UnknownCredentialType",
            "TypeDefinitionError",
            "REGISTERED_CLAIMS",
            "ClaimLabel",
            "ClaimPath",
            "CredentialType",
            "DecoyPolicy",
            "TypeRegistry",
            "all_types",
            "default_registry",
            "get_type",
            "load_registry",
            "load_type",
            "path_to_str",
            "validate_claims",
            "validate_uscc",
            "is_valid_uscc",
            "parse_uscc",
            "uscc_check_char",
            "org_code_check_char",
            "make_uscc",
            "validate_resident_id",
            "is_valid_resident_id",
            "parse_resident_id",
            "resident_id_check_char",
            "make_resident_id",
        }
    ),
    "issuer": frozenset(),
    "wallet": frozenset(),
    "elicence": frozenset(),
    "credentials": frozenset(
        {
            "audit",
            "base45",
            "clock",
            "dcql",
            "errors",
            "jws",
            "openid4vci",
            "openid4vp",
            "qr",
            "sd_jwt",
            "sd_jwt_vc",
            "status_list",
            "trace",
            "trust",
        }
    ),
    "verifier": frozenset(
        {
            "CHECKS",
            "CheckInfo",
            "CheckResult",
            "MemoryReplayStore",
            "Policy",
            "ReplayStore",
            "StatusSource",
            "TrustListSource",
            "VerificationResult",
            "Verifier",
            "decode_input",
            "failure_report",
            "http_fetch",
        }
    ),
}

MUST_BE_PINNED = ("keys", "credentials.errors")
PACKAGES = ("keys", "schemas", "credentials", "issuer", "wallet", "verifier", "elicence")


def _exported(module_name: str) -> list[str] | None:
    return getattr(importlib.import_module(module_name), "__all__", None)


@pytest.mark.parametrize("module_name", MUST_BE_PINNED)
def test_required_pins_exist(module_name):
    assert module_name in PINNED
    assert _exported(module_name) is not None, f"{module_name} must define __all__"


@pytest.mark.parametrize("module_name", sorted(set(PACKAGES) | set(PINNED)))
def test_exported_members_are_pinned(module_name):
    exported = _exported(module_name)
    if exported is None:
        pytest.skip(f"{module_name} has no __all__ yet (its __init__ is still a placeholder)")
    if module_name not in PINNED:
        pytest.skip(f"{module_name} exports {len(exported)} names but is not pinned yet: add them to PINNED")
    assert len(exported) == len(set(exported)), "duplicate names in __all__"
    assert set(exported) == PINNED[module_name]


@pytest.mark.parametrize("module_name", sorted(set(PACKAGES) | set(PINNED)))
def test_every_exported_name_exists(module_name):
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        pytest.skip(f"{module_name} has no __all__ yet")
    assert [name for name in exported if not hasattr(module, name)] == []


def test_keys_reexports_every_public_name_of_its_modules():
    names: set[str] = set()
    for sub in ("keys.errors", "keys.jwk", "keys.signer", "keys.keystore", "keys.x509"):
        names.update(importlib.import_module(sub).__all__)
    assert set(importlib.import_module("keys").__all__) == names
