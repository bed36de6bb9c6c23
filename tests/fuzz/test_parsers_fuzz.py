"""Fuzzing every parser of untrusted input in ``credentials/`` and the verifier SDK, on a bounded budget.

Each entry point gets structure-aware mutations of a *valid* input (flipped and inserted characters,
cuts, removed, duplicated and swapped ``~``/``.`` parts, parts replaced by hostile base64url JSON:
deep nesting, huge numbers, duplicate members, lone surrogates, non-UTF-8 bytes) and, where the
signature would stop everything early, mutations of the signed JSON *re-signed with the trusted key*,
so the checks behind the signature are fuzzed too. Every call must:

- return, or raise only the entry point's coded errors (:class:`~credentials.errors.CredentialError`,
  or the protocol trees ``OpenId4VciError`` / ``OpenId4VpError`` / ``DcqlError``) with a non-empty
  snake_case ``code``; any other exception fails the test;
- finish within the hypothesis ``deadline`` (:data:`DEADLINE`, generous: it catches pathological
  cases such as quadratic parsing or an inflation bomb, not slowness);
- allocate at most :data:`MEMORY_LIMIT` bytes at peak (``tracemalloc``, Python allocations: inflated
  data, decoded JSON, base64 buffers). Pillow's pixel buffers are not Python allocations: image size
  is bounded by the pixel check, which a crafted header tests directly.

The budget is fixed and reproducible: ``derandomize=True`` (the same examples every run) and
:data:`EXAMPLES` per entry point, about 40 s in all on one core.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credentials import base45, dcql, jws, qr, sd_jwt, sd_jwt_vc, status_list, trust
from credentials import openid4vci as vci
from credentials import openid4vp as vp
from credentials.dcql import DcqlError
from credentials.errors import CredentialError
from elicence.scenario import build_world, issue_licence, licence_claims
from keys.jwk import b64u_encode
from keys.signer import SoftwareSigner
from keys.x509 import issue_access_certificate, make_registrar_ca, x5c_encode
from verifier.sdk import MemoryReplayStore, StatusSource, TrustListSource, Verifier

NOW = 1_790_000_000
#: Examples per entry point (image decoding, the slowest, gets fewer).
EXAMPLES = 300
#: Per-example time limit: a pathological case, not a benchmark.
DEADLINE = timedelta(seconds=2)
#: Peak Python allocation allowed for one call on inputs up to the size limits.
MEMORY_LIMIT = 64 * 1024 * 1024
#: The exception trees an entry point may raise; each carries a stable ``code``.
CODED = (CredentialError, vci.OpenId4VciError, vp.OpenId4VpError, DcqlError)
_CODE = re.compile(r"[a-z][a-z0-9_]*")

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def bounded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``: its result, or its coded error; fails on any other exception or on too much memory."""
    tracemalloc.start()
    try:
        try:
            result = fn(*args, **kwargs)
        except CODED as exc:
            assert isinstance(exc.code, str) and _CODE.fullmatch(exc.code), (type(exc), exc.code)
            result = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"{getattr(fn, '__name__', fn)} allocated {peak} bytes at peak"
    return result


# --- the world: one valid instance of every input -------------------------------------------------

WORLD = build_world(now=NOW)
CREDENTIAL = issue_licence(WORLD, licence_claims(1), idx=7, now=NOW)
PRESENTATION = sd_jwt.present(
    CREDENTIAL, disclose=[("registration", "domicile"), ("registration", "issue_date")], holder_signer=WORLD.holder,
    aud=qr.OFFLINE_AUDIENCE, nonce="fuzz-nonce", now=NOW,
)
EL1 = qr.encode_payload(PRESENTATION)
PNG = qr.render_png(EL1, scale=2, border=2)
ISSUER_JWT, *_DISCLOSURES, KB_JWT = PRESENTATION.split("~")
TRUST = trust.load_trust_list(WORLD.trust_list, operator_key=WORLD.operator.public_jwk, now=NOW)
KB = sd_jwt.KeyBindingPolicy(nonce=None, aud=qr.OFFLINE_AUDIENCE, max_age=qr.OFFLINE_FRESHNESS)

HOLDER = SoftwareSigner.generate("ES256")
ISSUER_URL = "https://amr.sh.example.gov.cn"
PROOF = vci.make_proof(HOLDER, audience=ISSUER_URL, nonce="c-nonce", iat=NOW)
OFFER = vci.CredentialOffer(ISSUER_URL, ("business-licence",), "code-1", vci.TxCode(6, "numeric"))
OFFER_URI = vci.offer_uri(OFFER)
CREDENTIAL_REQUEST = {"credential_configuration_id": "business-licence", "proofs": {"jwt": [PROOF]}}

HOST = "verifier.example.gov.cn"
CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA = make_registrar_ca(CA_KEY, common_name="Registrar", not_before=NOW - 10, not_after=NOW + 86_400)
RP_SIGNER = SoftwareSigner.generate("ES256")
X5C = x5c_encode([issue_access_certificate(ca_certificate=CA, ca_key=CA_KEY, dns_name=HOST,
                                           public_key=RP_SIGNER.private_key.public_key(),
                                           not_before=NOW - 10, not_after=NOW + 86_400)])
DCQL = {"credentials": [{"id": "licence", "format": "dc+sd-jwt", "meta": {"vct_values": ["https://elicence.cn/vct/business-licence"]},
                         "claims": [{"path": ["name"]}, {"path": ["registration", "domicile"]}]}]}
VP_REQUEST = vp.create_request(
    dns_name=HOST, signer=RP_SIGNER, x5c=X5C, response_uri=f"https://{HOST}/post",
    request_uri=f"https://{HOST}/request/1", dcql_query=DCQL, now=NOW,
)
CLIENT_ID = VP_REQUEST.request.client_id


def verifier() -> Verifier:
    """A verifier of the world's credentials at :data:`NOW` (a fresh replay store each time)."""
    clock = lambda: float(NOW)  # noqa: E731
    return Verifier(
        trust=TrustListSource.from_fetch(lambda: WORLD.trust_list, anchor=WORLD.operator.public_jwk,
                                         clock=clock, initial=WORLD.trust_list),
        status=StatusSource(lambda uri: WORLD.status_token, clock=clock),
        replay=MemoryReplayStore(),
        clock=clock,
    )


# --- mutation strategies ----------------------------------------------------------------------------

#: JSON texts a parser must survive: deep nesting, huge and odd numbers, duplicates, surrogates.
HOSTILE_JSON = st.sampled_from([
    "[" * 5000 + "]" * 5000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    "9" * 5000,
    "1e999",
    "-1e999",
    "NaN",
    '{"a":1,"a":2}',
    '"\\ud800"',
    '{"_sd":["' + "A" * 43 + '"],"_sd":[]}',
    "[" + ",".join(["1"] * 20000) + "]",
    '{"x":"' + "\u4e00" * 20000 + '"}',
    "",
    "null",
    "[]",
    '"text"',
])
HOSTILE_BYTES = st.sampled_from([b"\xff\xfe\xfd", b"\xc3\x28", b"\xed\xa0\x80", b"\x00" * 64, b"\xef\xbb\xbf{}"])
NASTY_VALUES = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 2**63, -(2**64), 10**300, 1.5, 1e308, -1e308, "", "\x00", "é", "~", ".",
                     [], {}, "A" * 10_000, [None] * 1000, {"_sd": "x"}, {"...": 1}, {"_sd_alg": "md5"}]),
    st.integers(),
    st.text(max_size=30),
    st.recursive(st.none() | st.integers(-3, 3) | st.text(max_size=5),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                 max_leaves=10),
    st.integers(50, 900).map(lambda depth: json.loads("[" * depth + "]" * depth)),
)
CHARS = st.sampled_from(list("~.-_Aa0=+/ %:é\x00\n") + ["\udcff", "EL1:", "~~", ".."])


@st.composite
def hostile_part(draw: st.DrawFn) -> str:
    """A part as an attacker would write it: base64url of hostile JSON or bytes, or not base64url at all."""
    kind = draw(st.sampled_from(["json", "bytes", "raw", "padded"]))
    if kind == "json":
        return b64u_encode(draw(HOSTILE_JSON).encode("utf-8", "surrogatepass"))
    if kind == "bytes":
        return b64u_encode(draw(HOSTILE_BYTES) + draw(st.binary(max_size=16)))
    if kind == "padded":
        return b64u_encode(draw(st.binary(min_size=1, max_size=16))) + "="
    return draw(st.text(max_size=20))


@st.composite
def mutated_text(draw: st.DrawFn, text: str, separators: str = "~.") -> str:
    """``text`` after 1-4 edits at the character or part level."""
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "cut", "cut_front", "parts", "part_hostile", "repeat"]))
        pos = draw(st.integers(0, max(len(text) - 1, 0)))
        if op == "flip" and text:
            text = text[:pos] + draw(CHARS) + text[pos + 1:]
        elif op == "insert":
            text = text[:pos] + draw(CHARS) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 64)):]
        elif op == "cut":
            text = text[:pos]
        elif op == "cut_front":
            text = text[pos:]
        elif op == "repeat":
            text = text + text[pos:] * draw(st.integers(1, 3))
        else:
            sep = draw(st.sampled_from(separators))
            parts = text.split(sep)
            i = draw(st.integers(0, len(parts) - 1))
            if op == "part_hostile":
                parts[i] = draw(hostile_part())
            else:
                action = draw(st.sampled_from(["remove", "duplicate", "swap", "empty"]))
                if action == "remove" and len(parts) > 1:
                    del parts[i]
                elif action == "duplicate":
                    parts.insert(i, parts[i])
                elif action == "swap":
                    j = draw(st.integers(0, len(parts) - 1))
                    parts[i], parts[j] = parts[j], parts[i]
                else:
                    parts[i] = ""
            text = sep.join(parts)
    return text


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with flipped, cut or inserted bytes."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "zero_run"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[pos:pos + 16] = bytes(16)
    return bytes(data)


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    """The paths into ``value``, at most 6 steps deep (a nested value drawn before adds no more)."""
    out = [path]
    if len(path) < 6 and isinstance(value, (dict, list)):
        for k, v in (value.items() if isinstance(value, dict) else enumerate(value)):
            out += _paths(v, path + (k,))
    return out


@st.composite
def mutated_json(draw: st.DrawFn, value: Any) -> Any:
    """A copy of ``value`` (a JSON object) with 1-3 members replaced by nasty values, removed, or added."""
    value = copy.deepcopy(value)
    for _ in range(draw(st.integers(1, 3))):
        nasty = copy.deepcopy(draw(NASTY_VALUES))  # sampled values are shared: never mutate them
        path = draw(st.sampled_from(_paths(value)))
        if not path:
            if isinstance(value, dict):
                value[draw(st.sampled_from(["_sd", "...", "cnf", "x", "status", "_sd_alg"]))] = nasty
            continue
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = nasty
    return value


def resigned(token: str, signer: SoftwareSigner, payload: Any, *, include_kid: bool = True) -> str:
    """``token`` with ``payload`` signed by ``signer`` under the same ``typ`` and extra header members."""
    header = jws.parse(token).header
    extra = {k: v for k, v in header.items() if k not in ("alg", "typ", "kid")}
    return jws.sign(payload, signer, typ=header["typ"], header=extra or None, include_kid=include_kid)


def zlib_bomb(size: int) -> str:
    """A base64url ZLIB stream of ``size`` zero bytes (about 1,000 times smaller than its output)."""
    return b64u_encode(zlib.compress(bytes(size), 9))


# --- EL1, Base45 and QR images -------------------------------------------------------------------------


@FUZZ
@given(st.one_of(mutated_text(EL1, separators=":"), st.text(alphabet=base45.ALPHABET, max_size=2000).map("EL1:".__add__),
                 st.text(max_size=500)))
def test_el1_decode(text):
    result = bounded(qr.decode_payload, text)
    assert isinstance(result, (str, CredentialError))


@FUZZ
@given(st.one_of(mutated_text(EL1[4:], separators=" "), st.text(max_size=2000), st.binary(max_size=64).map(repr)))
def test_base45_decode(text):
    result = bounded(base45.b45decode, text)
    assert isinstance(result, (bytes, CredentialError))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, mode: int = 0) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (colour type ``mode``) over a few rows of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(bytes(min(width, 4096) + 1) * 4)) + _png_chunk(b"IEND", b""))


@settings(FUZZ, max_examples=100)
@given(st.one_of(mutated_bytes(PNG), st.tuples(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"RIFF"]),
                                                  st.binary(max_size=512)).map(b"".join)))
def test_qr_image_decode(data):
    result = bounded(qr.decode_image, data)
    assert isinstance(result, (str, CredentialError))


@pytest.mark.parametrize("width,height,mode", [(100_000, 100_000, 0), (65_535, 65_535, 6), (9_000, 9_000, 2), (1, 2**31 - 1, 0)])
def test_qr_image_claiming_huge_dimensions_is_refused_before_decoding(width, height, mode):
    error = bounded(qr.decode_image, png_claiming(width, height, mode))
    assert isinstance(error, CredentialError) and error.code == "payload_too_large"


# --- SD-JWT, SD-JWT VC, JWS ---------------------------------------------------------------------------

ISSUER_PAYLOAD = jws.parse(ISSUER_JWT).payload


@st.composite
def presentations(draw: st.DrawFn) -> str:
    """A mutated presentation; half of them with the issuer's payload changed and re-signed by the issuer."""
    if draw(st.booleans()):
        return draw(mutated_text(PRESENTATION))
    issuer_jwt = resigned(ISSUER_JWT, WORLD.issuer, draw(mutated_json(ISSUER_PAYLOAD)))
    disclosures = draw(st.lists(st.sampled_from(_DISCLOSURES) | hostile_part(), max_size=6))
    sd_text = sd_jwt.SdJwt(issuer_jwt, tuple(disclosures)).sd_jwt_text
    kb = jws.sign({"iat": NOW, "aud": qr.OFFLINE_AUDIENCE, "nonce": "n",
                   "sd_hash": b64u_encode(hashlib.sha256(sd_text.encode("utf-8", "surrogatepass")).digest())},
                  WORLD.holder, typ=sd_jwt.KB_TYP, include_kid=False)
    return sd_text + kb


@FUZZ
@given(presentations())
def test_sd_jwt_parse_and_verify(text):
    bounded(sd_jwt.SdJwt.parse, text)
    key = WORLD.issuer.private_key.public_key()
    result = bounded(sd_jwt.verify, text, issuer_key=key, expected_typ=sd_jwt_vc.VC_TYP, now=NOW, kb=KB)
    assert isinstance(result, (sd_jwt.VerifiedSdJwt, CredentialError))


@FUZZ
@given(presentations() | st.text(max_size=300))
def test_sd_jwt_vc_verify(text):
    result = bounded(sd_jwt_vc.verify_vc, text, resolve_issuer_key=TRUST.resolver(), now=NOW, kb=KB)
    assert isinstance(result, (sd_jwt_vc.VerifiedCredential, CredentialError))


@FUZZ
@given(mutated_text(ISSUER_JWT, separators=".") | st.text(max_size=300))
def test_jws_parse_and_verify(token):
    bounded(jws.parse, token)
    result = bounded(jws.verify, token, WORLD.issuer.private_key.public_key(), typ=sd_jwt_vc.VC_TYP)
    assert isinstance(result, (jws.Jws, CredentialError))


# --- status lists and the trust list ---------------------------------------------------------------------

STATUS_PAYLOAD = jws.parse(WORLD.status_token).payload


@st.composite
def status_tokens(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["text", "claims", "lst"]))
    if kind == "text":
        return draw(mutated_text(WORLD.status_token, separators="."))
    payload = dict(STATUS_PAYLOAD)
    if kind == "claims":
        payload = draw(mutated_json(payload))
    else:
        payload["status_list"] = {
            "bits": draw(st.sampled_from([1, 2, 4, 8, 3, 0, 2**40, "2", None])),
            "lst": draw(st.one_of(
                st.integers(1, 64).map(lambda mib: zlib_bomb(mib * 1024 * 1024)),
                st.binary(max_size=200).map(b64u_encode),
                st.binary(max_size=200).map(lambda b: b64u_encode(zlib.compress(b))),
                st.binary(max_size=200).map(lambda b: b64u_encode(zlib.compress(b, wbits=-15))),
                hostile_part(),
            )),
        }
    return jws.sign(payload, WORLD.issuer, typ=status_list.TYP)


@settings(FUZZ, max_examples=200)
@given(status_tokens())
def test_status_list_token_verify(token):
    result = bounded(status_list.verify_status_list_token, token, key=WORLD.issuer.private_key.public_key(),
                     expected_uri=WORLD.status_uri, now=NOW)
    assert isinstance(result, (status_list.VerifiedStatusList, CredentialError))


def test_status_list_zlib_bomb_stops_at_the_size_limit():
    token = jws.sign({**STATUS_PAYLOAD, "status_list": {"bits": 2, "lst": zlib_bomb(256 * 1024 * 1024)}},
                     WORLD.issuer, typ=status_list.TYP)
    error = bounded(status_list.verify_status_list_token, token, key=WORLD.issuer.private_key.public_key(),
                    expected_uri=WORLD.status_uri, now=NOW)
    assert isinstance(error, CredentialError) and error.code == "payload_too_large"


TRUST_PAYLOAD = jws.parse(WORLD.trust_list).payload


@st.composite
def trust_tokens(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(mutated_text(WORLD.trust_list, separators="."))
    return resigned(WORLD.trust_list, WORLD.operator, draw(mutated_json(TRUST_PAYLOAD)))


@FUZZ
@given(trust_tokens())
def test_trust_list_verify(token):
    result = bounded(trust.load_trust_list, token, operator_key=WORLD.operator.public_jwk, now=NOW)
    assert isinstance(result, (trust.TrustList, CredentialError))


# --- OpenID4VCI ----------------------------------------------------------------------------------------


@st.composite
def proofs(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(mutated_text(PROOF, separators="."))
    payload = draw(mutated_json(jws.parse(PROOF).payload))
    header = draw(mutated_json({"jwk": dict(HOLDER.public_jwk)}))
    return jws.sign(payload, HOLDER, typ=vci.PROOF_TYP, header=header, include_kid=False)


@FUZZ
@given(proofs())
def test_openid4vci_proof(proof):
    result = bounded(vci.verify_proof, proof, audience=ISSUER_URL, now=NOW)
    assert isinstance(result, (vci.ProofResult, vci.OpenId4VciError))


@FUZZ
@given(st.one_of(mutated_text(OFFER_URI, separators="&=%"),
                 mutated_json(OFFER.to_json()).map(
                     lambda offer: "openid-credential-offer://?credential_offer=" + quote(json.dumps(offer), safe=""))))

def test_openid4vci_offer(uri):
    result = bounded(vci.parse_offer_uri, uri)
    assert isinstance(result, (str, vci.CredentialOffer, vci.OpenId4VciError))


@FUZZ
@given(mutated_json(CREDENTIAL_REQUEST), st.one_of(st.none(), st.text(max_size=40), mutated_text("Bearer abc.def-ghi_", " ")))
def test_openid4vci_credential_request_and_bearer(body, authorization):
    bounded(vci.parse_credential_request, body, configurations={"business-licence"})
    bounded(vci.parse_bearer_token, authorization)
    bounded(vci.parse_token_request, body if isinstance(body, dict) else {})


# --- OpenID4VP and DCQL ---------------------------------------------------------------------------------


@FUZZ
@given(mutated_text(VP_REQUEST.uri, separators="&=%?") | st.text(max_size=300))
def test_openid4vp_authorization_request_uri(uri):
    result = bounded(vp.parse_authorization_request_uri, uri)
    assert isinstance(result, (vp.RequestReference, vp.OpenId4VpError))


REQUEST_CLAIMS = jws.parse(VP_REQUEST.request_object).payload


@st.composite
def request_objects(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(mutated_text(VP_REQUEST.request_object, separators="."))
    return resigned(VP_REQUEST.request_object, RP_SIGNER, draw(mutated_json(REQUEST_CLAIMS)), include_kid=False)


@FUZZ
@given(request_objects())
def test_openid4vp_request_object(token):
    result = bounded(vp.verify_request_object, token, client_id=CLIENT_ID, trust_anchors=[CA], now=NOW)
    assert isinstance(result, (vp.AuthorizationRequest, vp.OpenId4VpError))


@FUZZ
@given(st.dictionaries(st.sampled_from(["vp_token", "state", "error", "error_description", "wallet_nonce", "wallet_metadata"]),
                       st.one_of(mutated_json({"licence": [PRESENTATION]}).map(json.dumps),
                                 presentations().map(lambda p: json.dumps({"licence": [p]})),
                                 HOSTILE_JSON, st.text(max_size=40)),
                       max_size=4))
def test_openid4vp_direct_post_and_request_uri_post(form):
    bounded(vp.parse_response_form, form)
    bounded(vp.parse_request_uri_post, form)


@FUZZ
@given(mutated_json(DCQL) | HOSTILE_JSON.map(lambda text: bounded(jws.loads, text)))
def test_dcql_parse(query):
    result = bounded(dcql.parse_query, query)
    assert isinstance(result, (dcql.DcqlQuery, DcqlError))


# --- the verifier SDK ------------------------------------------------------------------------------------


@FUZZ
@given(st.one_of(mutated_text(EL1, separators=":"), presentations(), mutated_bytes(EL1.encode("ascii")),
                 st.binary(max_size=600)))
def test_verifier_verify(data):
    result = bounded(verifier().verify, data)
    assert not isinstance(result, CredentialError) or result.check is not None


def test_the_valid_inputs_pass():
    """The seeds are valid, so the mutations start from inputs that reach every check."""
    assert qr.decode_payload(EL1) == PRESENTATION
    assert qr.decode_image(PNG) == EL1
    assert verifier().verify(EL1).valid
    assert status_list.verify_status_list_token(WORLD.status_token, key=WORLD.issuer.private_key.public_key(),
                                                expected_uri=WORLD.status_uri, now=NOW)
    assert vci.verify_proof(PROOF, audience=ISSUER_URL, now=NOW).nonce == "c-nonce"
    assert vci.parse_credential_request(CREDENTIAL_REQUEST, configurations={"business-licence"})
    assert vp.verify_request_object(VP_REQUEST.request_object, client_id=CLIENT_ID, trust_anchors=[CA], now=NOW)
    assert vp.parse_authorization_request_uri(VP_REQUEST.uri).client_id == CLIENT_ID
    assert dcql.parse_query(DCQL)
