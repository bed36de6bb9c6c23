"""Key generation, JWK import/export (RFC 7517/7518, RFC 8037) and JWK thumbprints (RFC 7638).

Only two signature algorithms exist here: ES256 (P-256, the default) and EdDSA (Ed25519). Import is
strict: a JWK with private members where a public key is expected, a wrong curve, a point that is not
on the curve, or an Ed25519 point of small order is refused with ``invalid_key``.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Union

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keys.errors import InvalidKeyMaterial

__all__ = [
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
]

ALGORITHMS = ("ES256", "EdDSA")

PrivateKey = Union[ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey]
PublicKey = Union[ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey]

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

# Encodings of the Ed25519 points of small order (the 8-torsion subgroup), in canonical and the
# non-canonical forms that decode to them. Accepting one lets a "signature" verify for any message.
_ED25519_SMALL_ORDER = frozenset(
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "0100000000000000000000000000000000000000000000000000000000000080",
    )
)


_STD_TO_URL = bytes.maketrans(b"+/", b"-_")


def b64u_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    # binascii directly: base64.urlsafe_b64encode is the same two steps behind two more calls.
    return binascii.b2a_base64(data, newline=False).translate(_STD_TO_URL).rstrip(b"=").decode("ascii")


def _url_to_std_table() -> bytes:
    # The base64url alphabet (RFC 4648 s5) to the standard one (s4); every other byte, '+', '/' and '='
    # included, to '!', so that it cannot reach a2b_base64, which would skip it silently.
    table = bytearray(b"!" * 256)
    letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for url, std in zip(letters + b"-_", letters + b"+/"):
        table[url] = std
    return bytes(table)


_TO_STD_OR_BANG = _url_to_std_table()
# The last character of a canonical encoding whose length is 2 or 3 (mod 4): RFC 4648 s3.5 pad bits,
# the low 4 or 2 bits of its 6-bit value, are zero.
_LAST_OF_2 = frozenset("AQgw")
_LAST_OF_3 = frozenset("AEIMQUYcgkosw048")
_PAD = (b"", b"", b"==", b"=")


def b64u_decode(text: str) -> bytes:
    """Strict base64url without padding; raises ``ValueError`` on any other alphabet or padding."""
    if not isinstance(text, str):
        raise ValueError("not base64url")
    try:
        std = text.encode("ascii").translate(_TO_STD_OR_BANG)
    except UnicodeEncodeError:
        raise ValueError("not base64url") from None
    # base64.b64decode(altchars=b"-_") still accepts '+' and '/', so the alphabet is checked here.
    tail = len(std) & 3
    if b"!" in std or tail == 1:
        raise ValueError("not base64url")
    # RFC 4648 s3.5: non-zero pad bits would give a second spelling of the same bytes (token
    # malleability). Checking the last character is exact and cheaper than re-encoding.
    if tail and text[-1] not in (_LAST_OF_2 if tail == 2 else _LAST_OF_3):
        raise ValueError("not canonical base64url")
    return binascii.a2b_base64(std + _PAD[tail])


def generate_private_key(alg: str = "ES256") -> PrivateKey:
    """A new private key for ``alg`` (``ES256`` or ``EdDSA``); raises ``InvalidKeyMaterial`` otherwise."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise InvalidKeyMaterial(f"unsupported algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}")


def alg_for_key(key: PrivateKey | PublicKey) -> str:
    """The JWS ``alg`` of a key; raises ``InvalidKeyMaterial`` for any other key type or curve."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if isinstance(key.curve, ec.SECP256R1):
            return "ES256"
        raise InvalidKeyMaterial(f"EC curve {key.curve.name} is not allowed; only P-256")
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "EdDSA"
    raise InvalidKeyMaterial(f"key type {type(key).__name__} is not allowed")


def _fixed(n: int, size: int) -> str:
    return b64u_encode(n.to_bytes(size, "big"))


def public_jwk(key: PrivateKey | PublicKey) -> dict[str, str]:
    """The public JWK of a key, with exactly the RFC 7638 required members (no ``kid``)."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        key = key.public_key()
    alg = alg_for_key(key)
    if alg == "ES256":
        nums = key.public_numbers()  # type: ignore[union-attr]
        return {"kty": "EC", "crv": "P-256", "x": _fixed(nums.x, 32), "y": _fixed(nums.y, 32)}
    raw = key.public_bytes_raw()  # type: ignore[union-attr]
    return {"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(raw)}


def private_jwk(key: PrivateKey) -> dict[str, str]:
    """The private JWK (public members plus ``d``). Handle with care: this is secret material."""
    jwk = public_jwk(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        jwk["d"] = _fixed(key.private_numbers().private_value, 32)
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        jwk["d"] = b64u_encode(key.private_bytes_raw())
    else:  # pragma: no cover - alg_for_key above already refused it
        raise InvalidKeyMaterial("not a private key")
    return jwk


def _member(jwk: Mapping[str, object], name: str, size: int) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise InvalidKeyMaterial(f"JWK member {name!r} is missing or not a string")
    try:
        raw = b64u_decode(value)
    except ValueError as exc:
        raise InvalidKeyMaterial(f"JWK member {name!r} is not base64url") from exc
    if len(raw) != size:
        raise InvalidKeyMaterial(f"JWK member {name!r} must be {size} bytes, got {len(raw)}")
    return raw


def _check_alg(jwk: Mapping[str, object], found: str, alg: str | None) -> None:
    declared = jwk.get("alg")
    if declared is not None and declared != found:
        raise InvalidKeyMaterial(f"JWK 'alg' {declared!r} does not match its key type ({found})")
    if alg is not None and alg != found:
        raise InvalidKeyMaterial(f"key is for {found}, not {alg}")


def load_public_jwk(jwk: Mapping[str, object], *, alg: str | None = None) -> PublicKey:
    """Import a public JWK; with ``alg``, also require the key to be for that algorithm.

    Raises ``InvalidKeyMaterial`` for private members, unknown ``kty``/``crv``, bad lengths, points
    not on the curve, and Ed25519 small-order points.
    """
    if not isinstance(jwk, Mapping):
        raise InvalidKeyMaterial("JWK must be a JSON object")
    leaked = _PRIVATE_MEMBERS.intersection(jwk)
    if leaked:
        raise InvalidKeyMaterial(f"private key member(s) {sorted(leaked)} where a public key is expected")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "EC":
        if crv != "P-256":
            raise InvalidKeyMaterial(f"EC curve {crv!r} is not allowed; only P-256")
        _check_alg(jwk, "ES256", alg)
        x = int.from_bytes(_member(jwk, "x", 32), "big")
        y = int.from_bytes(_member(jwk, "y", 32), "big")
        try:
            # cryptography checks that the point is on the curve (and not the point at infinity).
            return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        except ValueError as exc:
            raise InvalidKeyMaterial("EC point is not on the P-256 curve") from exc
    if kty == "OKP":
        if crv != "Ed25519":
            raise InvalidKeyMaterial(f"OKP curve {crv!r} is not allowed; only Ed25519")
        _check_alg(jwk, "EdDSA", alg)
        raw = _member(jwk, "x", 32)
        if raw in _ED25519_SMALL_ORDER:
            raise InvalidKeyMaterial("Ed25519 public key is a point of small order")
        try:
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise InvalidKeyMaterial("not a valid Ed25519 public key") from exc
    raise InvalidKeyMaterial(f"JWK kty {kty!r} is not allowed; use EC (P-256) or OKP (Ed25519)")


def load_private_jwk(jwk: Mapping[str, object]) -> PrivateKey:
    """Import a private JWK and check that its public members match the private scalar."""
    if not isinstance(jwk, Mapping) or "d" not in jwk:
        raise InvalidKeyMaterial("private JWK must be a JSON object with a 'd' member")
    public = {k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS}
    expected = load_public_jwk(public)
    key: PrivateKey
    if jwk.get("kty") == "EC":
        d = int.from_bytes(_member(jwk, "d", 32), "big")
        try:
            key = ec.derive_private_key(d, ec.SECP256R1())
        except ValueError as exc:
            raise InvalidKeyMaterial("EC private scalar out of range") from exc
    else:
        key = ed25519.Ed25519PrivateKey.from_private_bytes(_member(jwk, "d", 32))
    if public_jwk(key) != public_jwk(expected):
        raise InvalidKeyMaterial("private JWK's public members do not match its private key")
    return key


_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}


def thumbprint(jwk: Mapping[str, object]) -> str:
    """RFC 7638 JWK thumbprint with SHA-256, base64url: the ``kid`` of every key here."""
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty"))  # type: ignore[arg-type]
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise InvalidKeyMaterial("JWK lacks the members its thumbprint needs")
    # RFC 7638 s3.2: required members only, lexicographic order, no whitespace.
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64u_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def jwks(keys: Iterable[Mapping[str, object]]) -> dict[str, list[dict[str, object]]]:
    """A JWK Set of public keys, each with ``kid`` (thumbprint), ``alg`` and ``use``."""
    out = []
    for jwk in keys:
        pub = {k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS}
        key = load_public_jwk(pub)
        entry: dict[str, object] = dict(public_jwk(key))
        entry.update(kid=thumbprint(entry), alg=alg_for_key(key), use="sig")
        out.append(entry)
    return {"keys": out}
