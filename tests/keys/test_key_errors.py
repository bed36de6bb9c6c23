"""keys/errors.py and the keystore's KEK errors: one tree, stable unique codes, agreeing with credentials."""

from __future__ import annotations

import keys
from credentials import errors as credential_errors
from keys.errors import KeyMaterialError, KeystoreError


def _tree(cls: type) -> list[type]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_tree(sub))
    return out


def test_codes_are_unique_snake_case_and_described():
    classes = _tree(KeyMaterialError)
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    assert all(code.replace("_", "").isalpha() and code.islower() for code in codes)
    assert all(c.description for c in classes)


def test_every_key_error_is_exported_from_keys():
    assert {c.__name__ for c in _tree(KeyMaterialError)} <= set(keys.__all__)


def test_kek_errors_are_keystore_errors():
    assert issubclass(keys.KekMissing, KeystoreError) and issubclass(keys.KekInvalid, KeystoreError)
    assert (keys.KekMissing.code, keys.KekInvalid.code) == ("keystore_kek_missing", "keystore_kek_invalid")


def test_codes_shared_with_the_credential_tree_mean_the_same():
    assert keys.InvalidKeyMaterial.code == credential_errors.InvalidKey.code == "invalid_key"
    assert keys.KeyNotFound.code == credential_errors.UnknownKey.code == "unknown_key"


def test_error_body_carries_code_and_detail():
    assert keys.WrongKek("detail").to_dict() == {"error": "keystore_wrong_kek", "error_description": "detail"}
    assert keys.KeystoreTampered().to_dict()["error_description"] == keys.KeystoreTampered.description
