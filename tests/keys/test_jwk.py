"""keys/jwk.py: JWK round trips, strict base64url, and refusal of weak or dangerous key material."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keys.errors import InvalidKeyMaterial
from keys.jwk import (
    alg_for_key,
    b64u_decode,
    b64u_encode,
    generate_private_key,
    jwks,
    load_private_jwk,
    load_public_jwk,
    private_jwk,
    public_jwk,
    thumbprint,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc7638" / "thumbprint.json"
ALGS = ("ES256", "EdDSA")


def _invalid(jwk, **kwargs) -> InvalidKeyMaterial:
    with pytest.raises(InvalidKeyMaterial) as info:
        load_public_jwk(jwk, **kwargs)
    assert info.value.code == "invalid_key"
    return info.value


def _sign(key, message: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(hashes.SHA256()))
    return key.sign(message)


def _verify(public, signature: bytes, message: bytes) -> None:
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    else:
        public.verify(signature, message)


def _ec_coordinates_jwk(curve: ec.EllipticCurve, crv: str, size: int) -> dict[str, str]:
    nums = ec.generate_private_key(curve).public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": crv,
        "x": b64u_encode(nums.x.to_bytes(size, "big")),
        "y": b64u_encode(nums.y.to_bytes(size, "big")),
    }


# --- base64url --------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff\xfe", b"abc", bytes(range(256))])
def test_b64u_round_trip(data):
    assert b64u_decode(b64u_encode(data)) == data


@pytest.mark.parametrize(
    "text",
    [
        "QUI=",  # padding
        "ab+/",  # standard alphabet, not base64url
        "ab c",  # whitespace
        "QUJDR",  # length 1 mod 4 can encode nothing
        "AB",  # non-zero pad bits: a second spelling of b"\x00"
        "QUJ\u00e9",  # non-ASCII
    ],
)
def test_b64u_decode_rejects_anything_but_canonical_base64url(text):
    with pytest.raises(ValueError):
        b64u_decode(text)


# --- round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_public_jwk_round_trip(alg):
    key = generate_private_key(alg)
    jwk = public_jwk(key)
    loaded = load_public_jwk(jwk, alg=alg)
    assert public_jwk(loaded) == jwk
    assert alg_for_key(loaded) == alg
    assert "d" not in jwk


@pytest.mark.parametrize("alg", ALGS)
def test_private_jwk_round_trip_signs_for_the_same_public_key(alg):
    key = generate_private_key(alg)
    loaded = load_private_jwk(private_jwk(key))
    assert private_jwk(loaded) == private_jwk(key)
    _verify(key.public_key(), _sign(loaded, b"licence"), b"licence")


@pytest.mark.parametrize("alg", ALGS)
def test_thumbprint_ignores_optional_members_and_is_the_jwks_kid(alg):
    key = generate_private_key(alg)
    jwk = public_jwk(key)
    decorated = {**jwk, "alg": alg, "use": "sig", "kid": "anything"}
    assert thumbprint(decorated) == thumbprint(jwk)
    (entry,) = jwks([jwk])["keys"]
    assert entry["kid"] == thumbprint(jwk)
    assert entry["alg"] == alg and entry["use"] == "sig"


def test_jwks_never_carries_private_members():
    key = generate_private_key("ES256")
    (entry,) = jwks([private_jwk(key)])["keys"]
    assert "d" not in entry
    assert entry["x"] == public_jwk(key)["x"]


def test_generate_refuses_other_algorithms():
    with pytest.raises(InvalidKeyMaterial) as info:
        generate_private_key("RS256")
    assert info.value.code == "invalid_key"


def test_alg_for_key_refuses_other_curves():
    with pytest.raises(InvalidKeyMaterial) as info:
        alg_for_key(ec.generate_private_key(ec.SECP384R1()))
    assert info.value.code == "invalid_key"


# --- RFC 7638 vectors -------------------------------------------------------------------------------


def _thumbprint_cases():
    doc = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert doc["document"].startswith("RFC 7638")
    return [pytest.param(case, id=f"rfc7638-s{case['section']}") for case in doc["cases"]]


@pytest.mark.parametrize("case", _thumbprint_cases())
def test_rfc7638_thumbprint_vector(case):
    digest = hashlib.sha256(case["canonical_json"].encode("utf-8")).digest()
    assert list(digest) == case["sha256_octets"]  # the vector is self-consistent
    assert thumbprint(case["jwk"]) == case["thumbprint"]
    assert b64u_decode(thumbprint(case["jwk"])) == digest


def test_rfc7638_vector_key_itself_is_refused_for_signing():
    (case,) = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]
    _invalid(case["jwk"])


def test_thumbprint_needs_its_required_members():
    jwk = public_jwk(generate_private_key("ES256"))
    del jwk["y"]
    with pytest.raises(InvalidKeyMaterial) as info:
        thumbprint(jwk)
    assert info.value.code == "invalid_key"


# --- weak or dangerous public keys ------------------------------------------------------------------


def test_p384_key_is_refused():
    error = _invalid(_ec_coordinates_jwk(ec.SECP384R1(), "P-384", 48))
    assert "P-256" in error.detail


def test_secp256k1_key_is_refused():
    _invalid(_ec_coordinates_jwk(ec.SECP256K1(), "secp256k1", 32))


def test_p256_label_on_secp256k1_coordinates_is_refused_as_off_curve():
    jwk = _ec_coordinates_jwk(ec.SECP256K1(), "P-256", 32)
    error = _invalid(jwk)
    assert "not on the P-256 curve" in error.detail


def test_point_not_on_curve_is_refused():
    jwk = public_jwk(generate_private_key("ES256"))
    y = int.from_bytes(b64u_decode(jwk["y"]), "big")
    jwk["y"] = b64u_encode(((y + 1) % 2**256).to_bytes(32, "big"))
    _invalid(jwk)


def test_point_at_origin_is_refused():
    zero = b64u_encode(bytes(32))
    _invalid({"kty": "EC", "crv": "P-256", "x": zero, "y": zero})


# The eight points of small order on edwards25519 (identity, order 2, two of order 4, four of order 8)
# and non-canonical encodings of them: the blocklist of libsodium and of "Taming the many EdDSAs"
# (Chalkias et al., 2020). A key among them "verifies" forged signatures.
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1, i.e. identity
]


@pytest.mark.parametrize("hex_point", SMALL_ORDER)
def test_ed25519_small_order_point_is_refused(hex_point):
    error = _invalid({"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(bytes.fromhex(hex_point))})
    assert "small order" in error.detail


@pytest.mark.parametrize("alg", ALGS)
def test_private_member_where_public_expected_is_refused(alg):
    error = _invalid(private_jwk(generate_private_key(alg)))
    assert "private" in error.detail


@pytest.mark.parametrize(
    ("alg", "member", "size"),
    [("ES256", "x", 31), ("ES256", "x", 33), ("ES256", "y", 64), ("EdDSA", "x", 31), ("EdDSA", "x", 33)],
)
def test_wrong_member_length_is_refused(alg, member, size):
    jwk = public_jwk(generate_private_key(alg))
    jwk[member] = b64u_encode(b"\x01" * size)
    error = _invalid(jwk)
    assert f"must be 32 bytes, got {size}" in error.detail


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("spoil", [lambda x: x + "=", lambda x: x.replace(x[0], "+", 1), lambda x: x[:10] + " " + x[10:]])
def test_non_base64url_member_is_refused(alg, spoil):
    jwk = public_jwk(generate_private_key(alg))
    jwk["x"] = spoil(jwk["x"])
    error = _invalid(jwk)
    assert "base64url" in error.detail


@pytest.mark.parametrize(
    ("alg", "declared", "required"),
    [
        ("ES256", "EdDSA", None),
        ("ES256", "ES384", None),
        ("EdDSA", "ES256", None),
        ("ES256", None, "EdDSA"),
        ("EdDSA", None, "ES256"),
    ],
)
def test_alg_mismatch_is_refused(alg, declared, required):
    jwk = public_jwk(generate_private_key(alg))
    if declared:
        jwk["alg"] = declared
    _invalid(jwk, alg=required)


def test_rsa_key_is_refused():
    nums = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()
    _invalid({"kty": "RSA", "n": b64u_encode(nums.n.to_bytes(256, "big")), "e": "AQAB"})


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "OKP", "crv": "X25519", "x": b64u_encode(bytes(range(1, 33)))},
        {"kty": "OKP", "crv": "Ed448", "x": b64u_encode(bytes(range(1, 58)))},
        {"kty": "EC", "crv": "P-256", "x": 1, "y": 2},
        {"kty": "EC", "crv": "P-256"},
        {"crv": "P-256"},
        ["kty", "EC"],
        "EC",
    ],
    ids=["oct", "x25519", "ed448", "numbers", "no-coordinates", "no-kty", "array", "string"],
)
def test_other_shapes_and_types_are_refused(jwk):
    _invalid(jwk)


def test_ed25519_valid_key_from_raw_bytes_is_accepted():
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    key = load_public_jwk({"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(raw)})
    assert key.public_bytes_raw() == raw


# --- private JWKs -----------------------------------------------------------------------------------


def _private_invalid(jwk) -> InvalidKeyMaterial:
    with pytest.raises(InvalidKeyMaterial) as info:
        load_private_jwk(jwk)
    assert info.value.code == "invalid_key"
    return info.value


@pytest.mark.parametrize("alg", ALGS)
def test_private_jwk_with_another_keys_public_members_is_refused(alg):
    mine = private_jwk(generate_private_key(alg))
    other = public_jwk(generate_private_key(alg))
    error = _private_invalid({**mine, **other})
    assert "do not match" in error.detail


@pytest.mark.parametrize("alg", ALGS)
def test_private_jwk_without_d_is_refused(alg):
    _private_invalid(public_jwk(generate_private_key(alg)))


@pytest.mark.parametrize(
    "d",
    [
        0,
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,  # the group order n
    ],
    ids=["zero", "order"],
)
def test_ec_private_scalar_out_of_range_is_refused(d):
    jwk = private_jwk(generate_private_key("ES256"))
    jwk["d"] = b64u_encode(d.to_bytes(32, "big"))
    _private_invalid(jwk)


@pytest.mark.parametrize("alg", ALGS)
def test_private_jwk_with_short_d_is_refused(alg):
    jwk = private_jwk(generate_private_key(alg))
    jwk["d"] = jwk["d"][:-4]
    _private_invalid(jwk)


def test_private_jwk_on_wrong_curve_is_refused():
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = _ec_coordinates_jwk(ec.SECP384R1(), "P-384", 48)
    jwk["d"] = b64u_encode(key.private_numbers().private_value.to_bytes(48, "big"))
    _private_invalid(jwk)
