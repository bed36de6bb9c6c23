"""Errors of key handling, with stable codes shared with ``credentials.errors``.

``keys`` sits below ``credentials`` in the import order, so it has its own small tree; the credential
core translates these where it calls into ``keys`` (``raise InvalidKey(...) from exc``).

::

    KeyMaterialError
    ├── InvalidKeyMaterial   invalid_key     weak, malformed, wrong curve, private where public expected
    ├── KeyNotFound          unknown_key     no key with that kid in the keystore
    └── KeystoreError        keystore_error
        ├── WrongKek         keystore_wrong_kek     the key-encryption key does not open this keystore
        ├── KeystoreTampered keystore_tampered      a record fails its authentication tag
        ├── KeyStateError    key_state_invalid      e.g. signing with a retired or revoked key
        ├── KekMissing       keystore_kek_missing   (keys.keystore) no ELICENCE_KEK / ELICENCE_KEK_FILE
        └── KekInvalid       keystore_kek_invalid   (keys.keystore) not 32 random bytes in base64url
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "KeyMaterialError",
    "InvalidKeyMaterial",
    "KeyNotFound",
    "KeystoreError",
    "WrongKek",
    "KeystoreTampered",
    "KeyStateError",
]


class KeyMaterialError(Exception):
    """Root of key errors; ``code`` is stable."""

    code: ClassVar[str] = "key_error"
    description: ClassVar[str] = "Key material could not be used."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.description
        super().__init__(self.detail)

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.detail}


class InvalidKeyMaterial(KeyMaterialError):
    code = "invalid_key"
    description = "The key is invalid, weak, or not of an allowed type."


class KeyNotFound(KeyMaterialError):
    code = "unknown_key"
    description = "No key with this identifier."


class KeystoreError(KeyMaterialError):
    code = "keystore_error"
    description = "The keystore could not be used."


class WrongKek(KeystoreError):
    code = "keystore_wrong_kek"
    description = "The key-encryption key does not open this keystore."


class KeystoreTampered(KeystoreError):
    code = "keystore_tampered"
    description = "A keystore record failed its integrity check."


class KeyStateError(KeystoreError):
    code = "key_state_invalid"
    description = "The key's state does not allow this operation."
