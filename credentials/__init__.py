"""The shared credential core, one module per specification.

- ``jws``: compact JWS (RFC 7515), the only PyJWT import; ``errors``: the coded error tree
- ``sd_jwt``: SD-JWT (RFC 9901); ``sd_jwt_vc``: SD-JWT VC (draft-ietf-oauth-sd-jwt-vc)
- ``status_list``: Token Status List (draft-ietf-oauth-status-list); ``trust``: the signed trust list
- ``base45``: RFC 9285; ``qr``: the compact offline QR payload, rendering and decoding
- ``trace``: named verification checks; ``clock``: time values
- ``openid4vci``: OpenID for Verifiable Credential Issuance 1.0 messages and key proofs
- ``openid4vp``: OpenID for Verifiable Presentations 1.0 (cross-device, ``x509_san_dns``, ``direct_post``);
  ``dcql``: its Digital Credentials Query Language
- ``audit``: the hash-chained audit log (records, chain verification)

No web framework and no database are imported here (a test walks the imports).
"""

from credentials import (
    audit,
    base45,
    clock,
    dcql,
    errors,
    jws,
    openid4vci,
    openid4vp,
    qr,
    sd_jwt,
    sd_jwt_vc,
    status_list,
    trace,
    trust,
)

__all__ = [
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
]
