"""The shared credential core, one module per specification.

- ``jws``: compact JWS (RFC 7515), the only PyJWT import; ``errors``: the coded error tree
- ``sd_jwt``: SD-JWT (RFC 9901); ``sd_jwt_vc``: SD-JWT VC (draft-ietf-oauth-sd-jwt-vc)
- ``status_list``: Token Status List (draft-ietf-oauth-status-list); ``trust``: the signed trust list
- ``base45``: RFC 9285; ``qr``: the compact offline QR payload, rendering and decoding
- ``trace``: named verification checks; ``clock``: time values
- ``openid4vci``: OpenID for Verifiable Credential Issuance 1.0 messages and key proofs
- ``audit``: the hash-chained audit log (records, chain verification)

No web framework and no database are imported here (a test walks the imports).
"""

from credentials import audit, base45, clock, errors, jws, openid4vci, qr, sd_jwt, sd_jwt_vc, status_list, trace, trust

__all__ = ["audit", "base45", "clock", "errors", "jws", "openid4vci", "qr", "sd_jwt", "sd_jwt_vc", "status_list", "trace", "trust"]
