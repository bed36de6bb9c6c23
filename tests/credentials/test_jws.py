"""credentials/jws.py: compact JWS sign/verify, failing closed with a stable code for each failure."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from credentials import jws
from credentials.errors import CredentialError, UnknownKey
from keys.jwk import b64u_encode, private_jwk, public_jwk
from keys.signer import SoftwareSigner

TYP = "dc+sd-jwt"
PAYLOAD = {"iss": "https://samr.example.gov.cn", "vct": "urn:elicence:business-licence", "名称": "示例科技有限公司"}


@pytest.fixture(params=["ES256", "EdDSA"])
def signer(request) -> SoftwareSigner:
    return SoftwareSigner.generate(request.param)


def _public(signer: SoftwareSigner):
    return signer.private_key.public_key()


def _b64json(obj) -> str:
    return b64u_encode(json.dumps(obj).encode("utf-8"))


def _compact(header, payload, signer: SoftwareSigner | None = None, signature: bytes = b"\x00" * 64) -> str:
    """A compact JWS with any header, signed by ``signer`` over the real signing input when given."""
    signing_input = _b64json(header) + "." + _b64json(payload)
    if signer is not None:
        signature = signer.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64u_encode(signature)


def _raw(header_bytes: bytes, payload_bytes: bytes, signature: bytes = b"\x00" * 64) -> str:
    return ".".join(b64u_encode(p) for p in (header_bytes, payload_bytes, signature))


def _code(fn, *args, **kwargs) -> str:
    with pytest.raises(CredentialError) as info:
        fn(*args, **kwargs)
    return info.value.code


# --- round trips ------------------------------------------------------------------------------------


def test_sign_verify_round_trip(signer):
    token = jws.sign(PAYLOAD, signer, typ=TYP)
    result = jws.verify(token, _public(signer), typ=TYP)
    assert result.verified is True
    assert result.payload == PAYLOAD
    assert dict(result.header) == {"alg": signer.alg, "typ": TYP, "kid": signer.kid}
    assert result.raw == token


def test_resolver_gets_the_header_and_supplies_the_key(signer):
    seen = []

    def resolve(header):
        seen.append(header["kid"])
        return _public(signer)

    jws.verify(jws.sign(PAYLOAD, signer, typ=TYP), resolve, typ=TYP)
    assert seen == [signer.kid]


def test_parse_alone_is_not_verification(signer):
    parsed = jws.parse(jws.sign(PAYLOAD, signer, typ=TYP))
    assert parsed.verified is False
    assert jws.verify_parsed(parsed, _public(signer), typ=TYP).verified is True


def test_extra_header_and_no_kid(signer):
    token = jws.sign(PAYLOAD, signer, typ="openid4vci-proof+jwt", header={"jwk": signer.public_jwk}, include_kid=False)
    header = jws.verify(token, _public(signer), typ="openid4vci-proof+jwt").header
    assert "kid" not in header and header["jwk"] == dict(signer.public_jwk)


def test_one_of_several_typs(signer):
    token = jws.sign(PAYLOAD, signer, typ="vc+sd-jwt")
    assert jws.verify(token, _public(signer), typ=("dc+sd-jwt", "vc+sd-jwt")).verified


def test_payload_is_signed_as_compact_utf8_json(signer):
    token = jws.sign(PAYLOAD, signer, typ=TYP)
    assert jws.parse(token).signing_input.split(b".")[1] == b64u_encode(jws.dumps(PAYLOAD)).encode()
    assert jws.dumps({"名": 1}) == '{"名":1}'.encode("utf-8")


# --- algorithms -------------------------------------------------------------------------------------


def test_alg_none_is_unsupported(signer):
    token = _compact({"alg": "none", "typ": TYP}, PAYLOAD, signature=b"")
    assert _code(jws.verify, token, _public(signer), typ=TYP) == "unsupported_alg"


def test_hs256_signed_with_the_public_key_as_secret_is_unsupported():
    """The classic key-confusion attack: HMAC over the token with the issuer's public key as secret."""
    issuer = SoftwareSigner.generate("ES256")
    public = _public(issuer)
    secret = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = _b64json({"alg": "HS256", "typ": TYP}) + "." + _b64json({**PAYLOAD, "admin": True})
    forged = signing_input + "." + b64u_encode(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    assert _code(jws.verify, forged, public, typ=TYP) == "unsupported_alg"
    # Nor can a caller widen the allow-list to an HMAC.
    assert _code(jws.verify, forged, public, typ=TYP, algorithms={"HS256", "ES256"}) == "unsupported_alg"


def test_rs256_is_unsupported():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing_input = _b64json({"alg": "RS256", "typ": TYP}) + "." + _b64json(PAYLOAD)
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = signing_input + "." + b64u_encode(signature)
    assert _code(jws.verify, token, key.public_key(), typ=TYP) == "unsupported_alg"


@pytest.mark.parametrize("header", [{"typ": TYP}, {"alg": None, "typ": TYP}, {"alg": ["ES256"], "typ": TYP}, {"alg": "es256", "typ": TYP}])
def test_missing_or_non_string_alg_is_unsupported(signer, header):
    assert _code(jws.verify, _compact(header, PAYLOAD, signer), _public(signer), typ=TYP) == "unsupported_alg"


def test_alg_outside_the_callers_narrower_list_is_unsupported():
    signer = SoftwareSigner.generate("EdDSA")
    token = jws.sign(PAYLOAD, signer, typ=TYP)
    assert _code(jws.verify, token, _public(signer), typ=TYP, algorithms={"ES256"}) == "unsupported_alg"


def test_signer_with_a_disallowed_alg_cannot_sign():
    class HmacSigner:
        alg, kid, public_jwk = "HS256", "k", {}

        def sign(self, data: bytes) -> bytes:
            return hmac.new(b"k", data, hashlib.sha256).digest()

    assert _code(jws.sign, PAYLOAD, HmacSigner(), typ=TYP) == "unsupported_alg"


# --- typ and crit -----------------------------------------------------------------------------------


@pytest.mark.parametrize("typ", ["JWT", "kb+jwt", None, "DC+SD-JWT"])
def test_wrong_typ_is_invalid_typ(signer, typ):
    header = {"alg": signer.alg} if typ is None else {"alg": signer.alg, "typ": typ}
    assert _code(jws.verify, _compact(header, PAYLOAD, signer), _public(signer), typ=TYP) == "invalid_typ"


def test_unknown_crit_is_rejected(signer):
    token = _compact({"alg": signer.alg, "typ": TYP, "crit": ["exp"], "exp": 1}, PAYLOAD, signer)
    assert _code(jws.verify, token, _public(signer), typ=TYP) == "crit_unsupported"


@pytest.mark.parametrize("crit", ["b64", [], [1], [None], {"b64": True}])
def test_malformed_crit_is_rejected(signer, crit):
    token = _compact({"alg": signer.alg, "typ": TYP, "crit": crit, "b64": True}, PAYLOAD, signer)
    assert _code(jws.verify, token, _public(signer), typ=TYP, understood_crit={"b64"}) == "crit_unsupported"


def test_understood_crit_passes(signer):
    token = _compact({"alg": signer.alg, "typ": TYP, "crit": ["x-elicence"], "x-elicence": 1}, PAYLOAD, signer)
    assert jws.verify(token, _public(signer), typ=TYP, understood_crit={"x-elicence"}).verified


def test_crit_naming_an_absent_parameter_is_rejected(signer):
    token = _compact({"alg": signer.alg, "typ": TYP, "crit": ["x-elicence"]}, PAYLOAD, signer)
    assert _code(jws.verify, token, _public(signer), typ=TYP, understood_crit={"x-elicence"}) == "crit_unsupported"


# --- keys -------------------------------------------------------------------------------------------


def test_eddsa_header_with_an_ec_key_is_invalid_key():
    ed, ec_signer = SoftwareSigner.generate("EdDSA"), SoftwareSigner.generate("ES256")
    token = jws.sign(PAYLOAD, ed, typ=TYP)
    assert _code(jws.verify, token, _public(ec_signer), typ=TYP) == "invalid_key"


def test_es256_header_with_an_ed25519_key_is_invalid_key():
    token = jws.sign(PAYLOAD, SoftwareSigner.generate("ES256"), typ=TYP)
    assert _code(jws.verify, token, _public(SoftwareSigner.generate("EdDSA")), typ=TYP) == "invalid_key"


def test_es256_header_with_a_p384_key_is_invalid_key():
    token = jws.sign(PAYLOAD, SoftwareSigner.generate("ES256"), typ=TYP)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    assert _code(jws.verify, token, p384, typ=TYP) == "invalid_key"


def test_resolver_raising_unknown_key_propagates(signer):
    def resolve(header):
        raise UnknownKey(f"no key {header.get('kid')!r} for this issuer")

    token = jws.sign(PAYLOAD, signer, typ=TYP)
    assert _code(jws.verify, token, resolve, typ=TYP) == "unknown_key"


def test_public_key_from_jwk_accepts_a_good_key_and_maps_bad_ones_to_invalid_key(signer):
    key = jws.public_key_from_jwk(public_jwk(signer.private_key), alg=signer.alg)
    assert jws.verify(jws.sign(PAYLOAD, signer, typ=TYP), key, typ=TYP).verified
    assert _code(jws.public_key_from_jwk, private_jwk(signer.private_key)) == "invalid_key"
    other = "EdDSA" if signer.alg == "ES256" else "ES256"
    assert _code(jws.public_key_from_jwk, public_jwk(signer.private_key), alg=other) == "invalid_key"


# --- signatures -------------------------------------------------------------------------------------


def _replace_part(token: str, index: int, part: str) -> str:
    parts = token.split(".")
    parts[index] = part
    return ".".join(parts)


@pytest.mark.parametrize("position", [0, 31, 32, 63])
def test_flipped_signature_byte_is_invalid_signature(signer, position):
    token = jws.sign(PAYLOAD, signer, typ=TYP)
    signature = bytearray(jws.parse(token).signature)
    signature[position] ^= 0x80
    assert _code(jws.verify, _replace_part(token, 2, b64u_encode(bytes(signature))), _public(signer), typ=TYP) == "invalid_signature"


def test_changed_payload_is_invalid_signature(signer):
    token = jws.sign(PAYLOAD, signer, typ=TYP)
    forged = _replace_part(token, 1, b64u_encode(jws.dumps({**PAYLOAD, "名称": "另一家公司"})))
    assert _code(jws.verify, forged, _public(signer), typ=TYP) == "invalid_signature"


def test_signature_of_another_key_is_invalid_signature(signer):
    token = jws.sign(PAYLOAD, signer, typ=TYP)
    assert _code(jws.verify, token, _public(SoftwareSigner.generate(signer.alg)), typ=TYP) == "invalid_signature"


@pytest.mark.parametrize("length", [0, 63, 65, 128])
def test_wrong_length_signature_is_invalid_signature(signer, length):
    token = jws.sign(PAYLOAD, signer, typ=TYP)
    signature = (jws.parse(token).signature * 2)[:length]
    assert _code(jws.verify, _replace_part(token, 2, b64u_encode(signature)), _public(signer), typ=TYP) == "invalid_signature"


def test_der_encoded_ecdsa_signature_is_invalid_signature():
    """RFC 7518 s3.4: ES256 signatures are R || S, not the DER that most ECDSA APIs produce."""
    signer = SoftwareSigner.generate("ES256")
    signing_input = _b64json({"alg": "ES256", "typ": TYP}) + "." + _b64json(PAYLOAD)
    der = signer.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    token = signing_input + "." + b64u_encode(der)
    assert _code(jws.verify, token, _public(signer), typ=TYP) == "invalid_signature"


# --- malformed input --------------------------------------------------------------------------------

HEADER = {"alg": "ES256", "typ": TYP}


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        _b64json(HEADER) + "." + _b64json(PAYLOAD),  # 2 parts
        _compact(HEADER, PAYLOAD) + "." + _b64json({}),  # 4 parts
        _compact(HEADER, PAYLOAD).replace(".", "..", 1),  # empty part
        _b64json(HEADER) + "." + _b64json(PAYLOAD) + ".AA*A",  # not base64url
        _b64json(HEADER) + "." + _b64json(PAYLOAD) + ".ab+/",  # standard base64 alphabet
        _b64json(HEADER) + "=." + _b64json(PAYLOAD) + ".AAAA",  # padding
        _b64json(HEADER) + " ." + _b64json(PAYLOAD) + ".AAAA",  # whitespace
        _raw(json.dumps(HEADER).encode(), b"[1, 2]"),  # JSON array payload
        _raw(b"[]", json.dumps(PAYLOAD).encode()),  # JSON array header
        _raw(json.dumps(HEADER).encode(), b'"text"'),  # JSON string payload
        _raw(json.dumps(HEADER).encode(), b"not json"),
        _raw(b'{"alg":"ES256","alg":"none","typ":"dc+sd-jwt"}', b"{}"),  # duplicate header member
        _raw(json.dumps(HEADER).encode(), b'{"iss":"a","iss":"b"}'),  # duplicate payload member
        _raw(json.dumps(HEADER).encode(), b'{"exp":NaN}'),
        _raw(json.dumps(HEADER).encode(), b'{"exp":-Infinity}'),
        _raw(json.dumps(HEADER).encode(), b'{"a":"\xff"}'),  # not UTF-8
        _raw(json.dumps(HEADER).encode("utf-16"), b"{}"),  # UTF-16 JSON
        _raw(b"\xef\xbb\xbf" + json.dumps(HEADER).encode(), b"{}"),  # byte order mark
        _raw(json.dumps(HEADER).encode(), b"[" * 50_000 + b"]" * 50_000),  # nesting bomb
    ],
    ids=[
        "empty",
        "one-part",
        "two-parts",
        "four-parts",
        "empty-part",
        "non-b64url",
        "std-b64",
        "padding",
        "whitespace",
        "array-payload",
        "array-header",
        "string-payload",
        "not-json",
        "duplicate-header-member",
        "duplicate-payload-member",
        "nan",
        "infinity",
        "not-utf8",
        "utf16",
        "bom",
        "deep-nesting",
    ],
)
def test_malformed_jws_is_malformed(token):
    assert _code(jws.parse, token) == "malformed"
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert _code(jws.verify, token, key, typ=TYP) == "malformed"


def test_non_string_token_is_malformed():
    assert _code(jws.parse, b"a.b.c") == "malformed"


def test_oversize_token_is_payload_too_large(signer):
    big = jws.sign({"blob": "x" * jws.MAX_JWS_BYTES}, signer, typ=TYP)
    assert _code(jws.verify, big, _public(signer), typ=TYP) == "payload_too_large"
    small = jws.sign(PAYLOAD, signer, typ=TYP)
    assert _code(jws.parse, small, max_bytes=len(small) - 1) == "payload_too_large"
    assert jws.parse(small, max_bytes=len(small)).payload == PAYLOAD


def test_loads_is_strict_and_dumps_is_compact():
    assert jws.loads(b'{"a":[1,2.5,"\xc3\xa9"]}') == {"a": [1, 2.5, "é"]}
    for bad in (b'{"a":1,"a":1}', b"NaN", b"{", '{"a":1}'.encode("utf-32")):
        assert _code(jws.loads, bad) == "malformed"


# --- property: parsing arbitrary input raises only coded errors --------------------------------------

_B64U_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_parts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=_B64U_ALPHABET + "=+/. ", max_size=40),
    st.binary(max_size=40).map(b64u_encode),
    _json_values.map(lambda v: b64u_encode(json.dumps(v).encode())),
)
# Well-formed parts too, so that the later checks (typ, crit, key type, signature) are reached as well.
_headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(["ES256", "EdDSA", "none", "HS256"]) | _json_values, "typ": st.just(TYP) | _json_values},
    optional={
        "crit": st.lists(st.sampled_from(["kid", "b64"]) | _json_values, max_size=3) | _json_values,
        "kid": _json_values,
    },
).map(lambda v: b64u_encode(json.dumps(v).encode()))
_objects = st.dictionaries(st.text(max_size=6), _json_values, max_size=4).map(
    lambda v: b64u_encode(json.dumps(v).encode())
)
_signatures = st.binary(min_size=62, max_size=66).map(b64u_encode)
_three_parts = st.tuples(_headers | _parts, _objects | _parts, _signatures | _parts)
_VERIFY_KEY = ec.generate_private_key(ec.SECP256R1()).public_key()


def _only_coded_errors(token: str) -> None:
    try:
        jws.parse(token)
    except CredentialError:
        pass
    try:
        jws.verify(token, _VERIFY_KEY, typ=TYP, understood_crit={"kid"})
    except CredentialError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parse_of_arbitrary_text_raises_only_credential_errors(text):
    _only_coded_errors(text)


@settings(max_examples=500, deadline=None)
@given(_three_parts)
def test_parse_of_arbitrary_three_part_strings_raises_only_credential_errors(parts):
    _only_coded_errors(".".join(parts))


def test_sign_refuses_extra_header_that_overrides_alg_or_typ() -> None:
    signer = SoftwareSigner.generate("ES256")
    for extra in ({"alg": "none"}, {"typ": "other"}):
        with pytest.raises(ValueError):
            jws.sign({"a": 1}, signer, typ="x", header=extra)
