"""Compact JWS (RFC 7515) signing and verification: the only module that imports PyJWT.

Every signed thing in eLicence (SD-JWT VCs, key binding JWTs, status list tokens, trust lists, request
objects, receipts) goes through :func:`sign` and :func:`verify`. Verification is explicit and fails
closed, in this order: size, structure, ``alg`` on the allow-list (never ``none``, never an HMAC),
``typ``, ``crit``, key resolution, key type matching ``alg``, signature.

PyJWT supplies the EdDSA algorithm object; ES256 signatures (raw ``R || S``, RFC 7518 s3.4) are
converted to DER and verified with ``cryptography`` directly, which is cheaper than PyJWT's
``ECAlgorithm`` (see bench/hotpath.py). PyJWT's ``decode`` is not used on the hot path because it
re-validates base64url character by character and costs about three bare signature verifications.
Parsing here is strict base64url and strict JSON instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Union

from cryptography.exceptions import InvalidSignature as CryptographyInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import OKPAlgorithm

from credentials.errors import (
    CritUnsupported,
    InvalidKey,
    InvalidSignature,
    InvalidTyp,
    Malformed,
    PayloadTooLarge,
    UnknownKey,
    UnsupportedAlg,
)
from keys.errors import InvalidKeyMaterial, KeyMaterialError
from keys.jwk import PublicKey, b64u_decode, b64u_encode, load_public_jwk
from keys.signer import Signer

__all__ = [
    "ALLOWED_ALGS",
    "MAX_JWS_BYTES",
    "Jws",
    "KeyResolver",
    "sign",
    "parse",
    "verify",
    "verify_parsed",
    "dumps",
    "loads",
    "public_key_from_jwk",
]

#: The algorithm allow-list. ``none`` and every HMAC are absent by design, not by configuration.
ALLOWED_ALGS: frozenset[str] = frozenset({"ES256", "EdDSA"})

#: Default bound on a compact JWS: far above any credential, far below a denial of service.
MAX_JWS_BYTES = 256 * 1024

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _verify_es256(signing_input: bytes, key: ec.EllipticCurvePublicKey, signature: bytes) -> bool:
    # RFC 7518 s3.4: the JWS signature is R || S, 32 octets each for P-256; cryptography takes DER.
    # Called directly rather than through PyJWT's ECAlgorithm.verify, which does the same conversion
    # and builds a new ECDSA(SHA256()) per call: about 3 µs less per ES256 signature.
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), signing_input, _ECDSA_SHA256)
    except CryptographyInvalidSignature:
        return False
    return True


_VERIFIERS: dict[str, Callable[[bytes, Any, bytes], bool]] = {
    "ES256": _verify_es256,
    "EdDSA": OKPAlgorithm().verify,
}
_KEY_TYPES: dict[str, type | tuple[type, ...]] = {
    "ES256": ec.EllipticCurvePublicKey,
    "EdDSA": ed25519.Ed25519PublicKey,
}

#: A key, or a function from the protected header to the key (raising ``UnknownKey`` if none).
KeyResolver = Union[PublicKey, Callable[[Mapping[str, Any]], PublicKey]]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # RFC 7515 s4 / RFC 8259 s4: duplicate member names are rejected rather than guessed at.
        raise ValueError("duplicate member name in JSON object")
    return obj


# One decoder for every call: json.loads(text, object_pairs_hook=...) builds a new JSONDecoder (and its
# scanner) each time, about a microsecond per call on the verification hot path.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def loads(data: bytes | str) -> Any:
    """Strict UTF-8 JSON: no duplicate member names, no NaN/Infinity; raises ``Malformed``."""
    try:
        # RFC 7515 s5.2 step 3: "a UTF-8-encoded representation of a completely valid JSON object";
        # json.loads(bytes) would also accept UTF-16/32 and a byte order mark.
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        if not isinstance(text, str):
            raise TypeError(f"the JSON object must be str, bytes or bytearray, not {type(text).__name__}")
        # JSONDecoder.decode refuses a byte order mark too ("Expecting value"), as json.loads does.
        return _DECODER.decode(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Malformed(f"invalid JSON: {exc}") from exc


# json.dumps with any non-default option builds a new JSONEncoder per call; this one is reused.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as signed everywhere here (non-ASCII kept as UTF-8, not escaped)."""
    return _ENCODER.encode(obj).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Jws:
    """A parsed compact JWS. ``verified`` is only true for values returned by :func:`verify`."""

    raw: str
    header: Mapping[str, Any]
    payload: Mapping[str, Any]
    signing_input: bytes
    signature: bytes
    verified: bool = False


def sign(
    payload: Mapping[str, Any],
    signer: Signer,
    *,
    typ: str,
    header: Mapping[str, Any] | None = None,
    include_kid: bool = True,
) -> str:
    """Sign ``payload`` as a compact JWS with ``alg``/``typ``/``kid`` from the signer and ``typ``.

    Extra ``header`` parameters are added after those three (``jwk`` for a key proof, ``x5c``, ...).
    """
    if signer.alg not in ALLOWED_ALGS:
        raise UnsupportedAlg(f"signer algorithm {signer.alg!r} is not allowed")
    hdr: dict[str, Any] = {"alg": signer.alg, "typ": typ}
    if include_kid:
        hdr["kid"] = signer.kid
    if header:
        if "alg" in header or "typ" in header:
            # alg comes from the signer and typ from the caller's keyword, never from extra parameters.
            raise ValueError("extra JWS header parameters may not set alg or typ")
        hdr.update(header)
    signing_input = (b64u_encode(dumps(hdr)) + "." + b64u_encode(dumps(payload))).encode("ascii")
    return signing_input.decode("ascii") + "." + b64u_encode(signer.sign(signing_input))


def parse(token: str, *, max_bytes: int = MAX_JWS_BYTES) -> Jws:
    """Split and decode a compact JWS without verifying it; raises ``Malformed``/``PayloadTooLarge``."""
    if not isinstance(token, str):
        raise Malformed("JWS must be a string")
    if len(token) > max_bytes:
        raise PayloadTooLarge(f"JWS of {len(token)} characters exceeds {max_bytes}")
    parts = token.split(".")
    if len(parts) != 3:
        raise Malformed(f"compact JWS needs 3 parts, got {len(parts)}")
    header_b64, payload_b64, sig_b64 = parts
    try:
        header_raw = b64u_decode(header_b64)
        payload_raw = b64u_decode(payload_b64)
        sig = b64u_decode(sig_b64)
    except ValueError as exc:
        raise Malformed("JWS part is not base64url") from exc
    header = loads(header_raw)
    payload = loads(payload_raw)
    if type(header) is not dict or type(payload) is not dict:
        raise Malformed("JWS header and payload must be JSON objects")
    # The signing input is the token up to its second '.', already checked to be ASCII base64url.
    return Jws(token, header, payload, token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii"), sig)


def verify(
    token: str,
    key: KeyResolver,
    *,
    typ: str | Collection[str],
    algorithms: Collection[str] = ALLOWED_ALGS,
    understood_crit: Collection[str] = (),
    max_bytes: int = MAX_JWS_BYTES,
) -> Jws:
    """Parse and verify a compact JWS; returns it with ``verified=True`` or raises a coded error."""
    return verify_parsed(
        parse(token, max_bytes=max_bytes),
        key,
        typ=typ,
        algorithms=algorithms,
        understood_crit=understood_crit,
    )


def verify_parsed(
    jws: Jws,
    key: KeyResolver,
    *,
    typ: str | Collection[str],
    algorithms: Collection[str] = ALLOWED_ALGS,
    understood_crit: Collection[str] = (),
) -> Jws:
    """Verify an already parsed JWS (see :func:`verify`)."""
    header = jws.header
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGS or alg not in algorithms:
        raise UnsupportedAlg(f"alg {alg!r} is not allowed (allowed: {', '.join(sorted(algorithms))})")
    expected = (typ,) if isinstance(typ, str) else tuple(typ)
    if header.get("typ") not in expected:
        raise InvalidTyp(f"typ {header.get('typ')!r} is not {' or '.join(expected)}")
    crit = header.get("crit")
    if crit is not None:
        # RFC 7515 s4.1.11: a recipient that does not understand a listed extension MUST reject the JWS.
        if not isinstance(crit, list) or not crit or not all(isinstance(c, str) for c in crit):
            raise CritUnsupported("crit must be a non-empty array of names")
        unknown = [c for c in crit if c not in understood_crit or c not in header]
        if unknown:
            raise CritUnsupported(f"critical header parameter(s) not understood: {unknown}")
    public = key(header) if callable(key) else key
    if not isinstance(public, _KEY_TYPES[alg]):
        raise InvalidKey(f"key type does not match alg {alg}")
    if alg == "ES256" and not isinstance(public.curve, ec.SECP256R1):  # type: ignore[union-attr]
        raise InvalidKey("ES256 needs a P-256 key")
    if len(jws.signature) != 64 or not _VERIFIERS[alg](jws.signing_input, public, jws.signature):
        raise InvalidSignature()
    return Jws(jws.raw, jws.header, jws.payload, jws.signing_input, jws.signature, verified=True)


def public_key_from_jwk(jwk: Any, *, alg: str | None = None) -> PublicKey:
    """Import a public JWK met inside a credential or header, translating key errors to ``invalid_key``."""
    try:
        return load_public_jwk(jwk, alg=alg)
    except InvalidKeyMaterial as exc:
        raise InvalidKey(exc.detail) from exc
    except KeyMaterialError as exc:  # pragma: no cover - load_public_jwk raises only the above
        raise UnknownKey(exc.detail) from exc

