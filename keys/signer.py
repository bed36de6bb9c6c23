"""The signing interface: callers sign through a :class:`Signer`, never through a raw private key.

A hardware security module (or a remote signing service) replaces the software key by implementing
this protocol; no caller changes. Signatures are in JWS form (RFC 7515/7518): for ES256 the raw
``R || S`` concatenation of 64 bytes, for EdDSA the 64-byte Ed25519 signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keys.jwk import PrivateKey, alg_for_key, generate_private_key, public_jwk, thumbprint

__all__ = ["Signer", "SoftwareSigner"]


@runtime_checkable
class Signer(Protocol):
    """Anything that can produce a JWS signature with one key."""

    @property
    def alg(self) -> str:
        """JWS algorithm name: ``"ES256"`` or ``"EdDSA"``."""
        ...

    @property
    def kid(self) -> str:
        """Key identifier: the RFC 7638 JWK thumbprint of the public key."""
        ...

    @property
    def public_jwk(self) -> Mapping[str, str]:
        """The public key as a JWK (no private members)."""
        ...

    def sign(self, signing_input: bytes) -> bytes:
        """Sign the JWS signing input (``BASE64URL(header) || '.' || BASE64URL(payload)``)."""
        ...


class SoftwareSigner:
    """A :class:`Signer` over an in-memory private key (from the keystore or a JWK file)."""

    __slots__ = ("_key", "_alg", "_jwk", "_kid")

    def __init__(self, private_key: "PrivateKey") -> None:
        self._key = private_key
        self._alg = alg_for_key(private_key)
        self._jwk = public_jwk(private_key)
        self._kid = thumbprint(self._jwk)

    @classmethod
    def generate(cls, alg: str = "ES256") -> "SoftwareSigner":
        """A signer over a freshly generated key."""
        return cls(generate_private_key(alg))

    @property
    def alg(self) -> str:
        return self._alg

    @property
    def kid(self) -> str:
        return self._kid

    @property
    def public_jwk(self) -> Mapping[str, str]:
        return dict(self._jwk)

    @property
    def private_key(self) -> "PrivateKey":
        """The key itself, for export to the keystore; never logged."""
        return self._key

    def sign(self, signing_input: bytes) -> bytes:
        if self._alg == "ES256":
            der = self._key.sign(signing_input, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
            r, s = decode_dss_signature(der)
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self._key.sign(signing_input)  # type: ignore[call-arg]

    def __repr__(self) -> str:
        return f"SoftwareSigner(alg={self._alg!r}, kid={self._kid!r})"
