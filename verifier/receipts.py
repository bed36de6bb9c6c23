"""Verification receipts: checking, later and anywhere, what a department verified (no web framework, no database).

A receipt is a JWT (RFC 7519 claims in a compact JWS, RFC 7515) that a department of the verifier
service signs after a counter scan or an online request naming a service item
(:meth:`verifier.service.VerifierService.scan`): JOSE ``typ`` :data:`RECEIPT_TYP`, ES256, the department's
access certificate chain in ``x5c`` (RFC 7515 s4.1.6), ``iss`` its OpenID4VP ``x509_san_dns`` client
identifier. :func:`verify_receipt` checks it against the registrar CA certificate(s) the deployment
publishes at ``GET /verifier/registrar.pem``, in a fixed order: the JWS parses, ``iss`` names a DNS
name, ``typ``, the ``x5c`` chain (to the registrar, valid at ``now``, the leaf certified for that DNS
name), the signature. Any failure raises :class:`ReceiptInvalid` with the failed check's code in
``reason``. ``elicence receipt verify`` is this function on the command line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from cryptography import x509

from credentials import jws
from credentials.audit import _thaw
from credentials.errors import CredentialError
from credentials.openid4vp import X509_SAN_DNS
from keys.errors import KeyMaterialError
from keys.x509 import verify_x5c_for_dns

__all__ = ["RECEIPT_TYP", "Receipt", "ReceiptInvalid", "verify_receipt"]

#: JOSE ``typ`` of a verification receipt (a JWT: RFC 7519 claims, signed by the department's key).
RECEIPT_TYP = "verification-receipt+jwt"


class ReceiptInvalid(Exception):
    """A verification receipt does not verify; ``reason`` is the failed check's stable code.

    ``code`` (``receipt_invalid``), ``detail`` and ``http_status`` match the verifier service's errors,
    whose API answers ``{"error": "receipt_invalid", "error_description": detail}``.
    """

    code: ClassVar[str] = "receipt_invalid"
    description: ClassVar[str] = "The verification receipt is invalid."
    http_status: ClassVar[int] = 400

    def __init__(self, detail: str | None = None, *, reason: str) -> None:
        self.detail = detail or self.description
        self.reason = reason
        super().__init__(self.detail)

    def to_dict(self) -> dict[str, str]:
        """The OAuth-style error body."""
        return {"error": self.code, "error_description": self.detail}


@dataclass(frozen=True, slots=True)
class Receipt:
    """A verified receipt: its claims, and the department's certified DNS name and organisation."""

    claims: Mapping[str, Any]
    dns_name: str
    organization: str | None

    def to_json(self) -> dict[str, Any]:
        return {"valid": True, "department_dns_name": self.dns_name, "organization": self.organization,
                "claims": _thaw(self.claims)}


def verify_receipt(token: Any, *, trust_anchors: Sequence[x509.Certificate], now: datetime | int | float) -> Receipt:
    """Check a verification receipt: ``typ``, the ``x5c`` access certificate for the DNS name of ``iss``
    (chained to ``trust_anchors``, the registrar's certificates, valid at ``now``) and the ES256 signature.

    Raises ``ReceiptInvalid`` whose ``reason`` is the failed check's code (``malformed``,
    ``invalid_typ``, ``certificate_*``, ``invalid_signature``, ...).
    """
    try:
        parsed = jws.parse(token)
    except CredentialError as exc:
        raise ReceiptInvalid(f"not a compact JWS: {exc.detail}", reason=exc.code) from exc
    iss = parsed.payload.get("iss")
    if not isinstance(iss, str) or not iss.startswith(X509_SAN_DNS + ":"):
        raise ReceiptInvalid("the receipt's iss is not an x509_san_dns client identifier", reason="malformed")
    dns_name = iss.split(":", 1)[1]
    if parsed.header.get("typ") != RECEIPT_TYP:
        raise ReceiptInvalid(f"typ is not {RECEIPT_TYP}", reason="invalid_typ")
    try:
        at = now.timestamp() if isinstance(now, datetime) else now
        chain = verify_x5c_for_dns(parsed.header.get("x5c"), dns_name=dns_name, trust_anchors=trust_anchors, now=at)
    except KeyMaterialError as exc:
        raise ReceiptInvalid(f"x5c: {exc.detail}", reason=exc.code) from exc
    try:
        jws.verify_parsed(parsed, chain.public_key, typ=RECEIPT_TYP, algorithms=("ES256",))
    except CredentialError as exc:
        raise ReceiptInvalid(f"signature: {exc.detail}", reason=exc.code) from exc
    return Receipt(parsed.payload, dns_name, chain.organization)
