"""X.509 certificates for relying parties (RFC 5280) and the ``x5c`` chain (RFC 7515 s4.1.6).

OpenID for Verifiable Presentations 1.0 s5.9.3 (Client Identifier Prefix ``x509_san_dns``) asks the
Verifier to sign its request object with the key of a certificate whose ``dNSName`` Subject
Alternative Name is its Client Identifier, and the Wallet to "validate the signature and the trust
chain of the X.509 certificate". This module is that certificate layer, with ``cryptography`` only:

* a small PKI: :func:`make_registrar_ca` (the self-signed root of the registrar that admits relying
  parties) and :func:`issue_access_certificate` (a leaf for one DNS name, ``dNSName`` SAN, signed by
  the registrar; ES256 / P-256 throughout);
* :func:`x5c_encode` / :func:`x5c_decode`: a chain as the JOSE ``x5c`` array, leaf first;
* :func:`verify_x5c_for_dns`: path validation of an ``x5c`` chain for a DNS name against the trust
  anchors passed in, at a given time, with ``cryptography.x509.verification`` (the server profile:
  it validates a DNS name in the SAN, which is what ``x509_san_dns`` needs).

The common failures are checked explicitly first so that each has its own code (time, then name);
whatever ``cryptography``'s path validation still refuses after that is ``certificate_untrusted``::

    KeyMaterialError
    └── CertificateError          certificate_invalid      not DER, too large, wrong key type, bad x5c
        ├── CertificateUntrusted  certificate_untrusted    no valid path to a trust anchor
        ├── CertificateNameMismatch certificate_name_mismatch  no dNSName SAN equal to the name
        ├── CertificateExpired    certificate_expired      a certificate of the chain has expired
        └── CertificateNotYetValid certificate_not_yet_valid  a certificate is not valid yet

Choices, with the reason:

* The leaf carries no Extended Key Usage: an access certificate signs request objects, it is not a
  TLS server certificate; ``cryptography``'s server profile accepts a leaf without EKU.
* The name check is exact (ASCII case-insensitive, RFC 5280 s4.2.1.6 / RFC 4343): a wildcard SAN does
  not stand for a Client Identifier, which names one host.
* Only P-256 leaf keys are accepted (ES256 is the only request object algorithm here).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import DNSName, PolicyBuilder, Store, VerificationError

from keys.errors import KeyMaterialError

__all__ = [
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
]

#: Certificates accepted in one ``x5c`` (leaf, intermediates, optionally the root).
MAX_CHAIN_LENGTH = 5
#: DER bytes accepted per certificate: an access certificate is well under 1 KiB.
MAX_CERTIFICATE_BYTES = 8 * 1024

_SHA256 = hashes.SHA256()


class CertificateError(KeyMaterialError):
    """A certificate or ``x5c`` chain is unusable; ``code`` says why."""

    code: ClassVar[str] = "certificate_invalid"
    description: ClassVar[str] = "The certificate or certificate chain is invalid."


class CertificateUntrusted(CertificateError):
    code = "certificate_untrusted"
    description = "The certificate chain does not lead to a trusted registrar."


class CertificateNameMismatch(CertificateError):
    code = "certificate_name_mismatch"
    description = "The certificate is not issued for this DNS name."


class CertificateExpired(CertificateError):
    code = "certificate_expired"
    description = "A certificate of the chain has expired."


class CertificateNotYetValid(CertificateError):
    code = "certificate_not_yet_valid"
    description = "A certificate of the chain is not yet valid."


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """A validated chain: the leaf, its P-256 public key, its DNS names and the path to the anchor."""

    leaf: x509.Certificate
    public_key: ec.EllipticCurvePublicKey
    dns_names: tuple[str, ...]
    organization: str | None
    path: tuple[x509.Certificate, ...]


def _utc(now: dt.datetime | int | float) -> dt.datetime:
    if isinstance(now, dt.datetime):
        if now.tzinfo is None:
            raise TypeError("datetime must be timezone-aware")
        return now.astimezone(dt.timezone.utc)
    if isinstance(now, bool) or not isinstance(now, (int, float)):
        raise TypeError(f"time must be seconds since the epoch or a datetime, not {type(now).__name__}")
    return dt.datetime.fromtimestamp(now, dt.timezone.utc)


def _name(common_name: str, organization: str | None) -> x509.Name:
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _p256(key: object, what: str) -> None:
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise CertificateError(f"{what} must be a P-256 key (ES256)")


def _key_usage(*, sign: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    serial_number: int | None,
    not_before: dt.datetime | int | float,
    not_after: dt.datetime | int | float,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial_number or x509.random_serial_number())
        .not_valid_before(_utc(not_before))
        .not_valid_after(_utc(not_after))
    )


def make_registrar_ca(
    key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    organization: str | None = None,
    not_before: dt.datetime | int | float,
    not_after: dt.datetime | int | float,
    serial_number: int | None = None,
) -> x509.Certificate:
    """A self-signed root certificate for the registrar of relying parties (ES256, path length 0)."""
    _p256(key, "the registrar key")
    name = _name(common_name, organization)
    return (
        _builder(name, name, key.public_key(), serial_number, not_before, not_after)
        # RFC 5280 s4.2.1.9: in a CA certificate basicConstraints "MUST" be critical; s4.2.1.3 keyCertSign.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, _SHA256)
    )


def issue_access_certificate(
    *,
    ca_certificate: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    dns_name: str,
    public_key: ec.EllipticCurvePublicKey,
    organization: str | None = None,
    not_before: dt.datetime | int | float,
    not_after: dt.datetime | int | float,
    serial_number: int | None = None,
) -> x509.Certificate:
    """A relying party's access certificate: ``dNSName`` SAN ``dns_name``, signed by the registrar CA."""
    _p256(public_key, "the relying party key")
    _p256(ca_key, "the registrar key")
    try:
        # x509.DNSName accepts any text; the A-label (IDNA) form is what RFC 5280 s4.2.1.6 requires.
        ascii_name = dns_name.encode("idna").decode("ascii")
    except (UnicodeError, AttributeError) as exc:
        raise CertificateError(f"not a DNS name: {dns_name!r}") from exc
    return (
        _builder(
            _name(ascii_name, organization), ca_certificate.subject, public_key, serial_number, not_before, not_after
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(ascii_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, cert_sign=False), critical=True)
        # RFC 5280 s4.2.1.1: authorityKeyIdentifier "MUST" be included in all but self-signed certificates.
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(ca_key, _SHA256)
    )


def x5c_encode(chain: Iterable[x509.Certificate]) -> list[str]:
    """The JOSE ``x5c`` array: standard base64 of each DER certificate, leaf first (RFC 7515 s4.1.6)."""
    return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii") for c in chain]


def x5c_decode(x5c: object) -> tuple[x509.Certificate, ...]:
    """Decode an ``x5c`` array; raises ``CertificateError`` for anything but 1..5 base64 DER certificates."""
    if not isinstance(x5c, list) or not x5c:
        raise CertificateError("x5c must be a non-empty array")
    if len(x5c) > MAX_CHAIN_LENGTH:
        raise CertificateError(f"x5c holds {len(x5c)} certificates, more than {MAX_CHAIN_LENGTH}")
    out = []
    for i, text in enumerate(x5c):
        # 4/3 of the DER size, rounded up to whole base64 quanta.
        if not isinstance(text, str) or len(text) > (MAX_CERTIFICATE_BYTES + 2) // 3 * 4:
            raise CertificateError(f"x5c[{i}] must be a string of at most {MAX_CERTIFICATE_BYTES} DER bytes")
        try:
            # RFC 7515 s4.1.6: "base64-encoded (Section 4 of [RFC4648] -- not base64url-encoded) DER".
            der = base64.b64decode(text, validate=True)
            out.append(x509.load_der_x509_certificate(der))
        except (binascii.Error, ValueError) as exc:
            raise CertificateError(f"x5c[{i}] is not a base64 DER certificate") from exc
    return tuple(out)


def certificate_pem(certificate: x509.Certificate) -> str:
    """The certificate in PEM form (for files and configuration)."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_pem_certificates(data: bytes | str) -> tuple[x509.Certificate, ...]:
    """All certificates of a PEM bundle (trust anchors); raises ``CertificateError`` if there is none."""
    raw = data.encode("ascii") if isinstance(data, str) else data
    try:
        certificates = tuple(x509.load_pem_x509_certificates(raw))
    except ValueError as exc:
        raise CertificateError("not a PEM certificate bundle") from exc
    return certificates


def dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """The ``dNSName`` entries of the Subject Alternative Name extension (none without one)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    except ValueError as exc:  # a malformed extension
        raise CertificateError(f"unreadable subjectAltName: {exc}") from exc
    return tuple(san.get_values_for_type(x509.DNSName))


def subject_organization(certificate: x509.Certificate) -> str | None:
    """The subject's organizationName (O), the registered name of the relying party, if any."""
    values = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    value = values[0].value if values else None
    return value if isinstance(value, str) else None


def _check_validity(chain: Sequence[x509.Certificate], at: dt.datetime) -> None:
    for i, certificate in enumerate(chain):
        if at > certificate.not_valid_after_utc:
            raise CertificateExpired(f"x5c[{i}] expired at {certificate.not_valid_after_utc.isoformat()}")
        if at < certificate.not_valid_before_utc:
            raise CertificateNotYetValid(f"x5c[{i}] is valid from {certificate.not_valid_before_utc.isoformat()}")


def verify_x5c_for_dns(
    x5c: object,
    *,
    dns_name: str,
    trust_anchors: Sequence[x509.Certificate],
    now: dt.datetime | int | float,
) -> VerifiedChain:
    """Validate an ``x5c`` chain for ``dns_name`` against ``trust_anchors`` at ``now``.

    Raises ``certificate_invalid`` (malformed ``x5c``, leaf key not P-256), ``certificate_expired`` /
    ``certificate_not_yet_valid``, ``certificate_name_mismatch`` and ``certificate_untrusted``.
    """
    chain = x5c_decode(x5c)
    at = _utc(now)
    if not trust_anchors:
        raise CertificateUntrusted("no trust anchors are configured")
    leaf = chain[0]
    _check_validity(chain, at)
    names = dns_names(leaf)
    wanted = dns_name.lower()
    # OpenID4VP 1.0 s5.9.3: the Client Identifier "MUST be a DNS name and match a dNSName Subject
    # Alternative Name (SAN) [RFC5280] entry in the leaf certificate passed with the request".
    if not any(n.lower() == wanted for n in names):
        raise CertificateNameMismatch(f"the leaf certificate names {list(names)}, not {dns_name!r}")
    try:
        verifier = PolicyBuilder().store(Store(list(trust_anchors))).time(at).build_server_verifier(DNSName(dns_name))
        path = verifier.verify(leaf, list(chain[1:]))
    except VerificationError as exc:
        raise CertificateUntrusted(f"certificate path validation failed: {exc}") from exc
    except ValueError as exc:  # DNSName refuses a string that is not a DNS name
        raise CertificateNameMismatch(f"not a DNS name: {dns_name!r}") from exc
    public_key = leaf.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
        raise CertificateError("the leaf certificate key is not a P-256 key (ES256)")
    return VerifiedChain(leaf, public_key, names, subject_organization(leaf), tuple(path))
