"""Properties of the OpenID4VP parsers: arbitrary input raises only ``OpenId4VpError`` with an ASCII description."""

from __future__ import annotations

from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from credentials import jws
from credentials import openid4vp as vp
from keys.signer import SoftwareSigner
from keys.x509 import issue_access_certificate, make_registrar_ca, x5c_encode

NOW = 1_780_000_000
HOST = "verifier.example.gov.cn"
CLIENT_ID = f"x509_san_dns:{HOST}"
CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA = make_registrar_ca(CA_KEY, common_name="Registrar", not_before=NOW - 10, not_after=NOW + 86_400)
SIGNER = SoftwareSigner.generate("ES256")
X5C = x5c_encode([issue_access_certificate(ca_certificate=CA, ca_key=CA_KEY, dns_name=HOST,
                                           public_key=SIGNER.private_key.public_key(), not_before=NOW - 10,
                                           not_after=NOW + 86_400)])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
VALUES = st.one_of(
    JSON,
    st.sampled_from([CLIENT_ID, f"https://{HOST}/post", "https://other.example/post", "vp_token", "direct_post",
                     "fragment", "n-0S6_WzA2Mj", "bad nonce", vp.STATIC_AUDIENCE, NOW, NOW + 100, NOW - 1000]),
    st.just({"credentials": [{"id": "l", "format": "dc+sd-jwt", "meta": {"vct_values": ["https://v.example"]}}]}),
    st.just({"vp_formats_supported": {"dc+sd-jwt": {}}}),
)
CLAIMS = st.dictionaries(
    st.sampled_from(["client_id", "response_uri", "response_type", "response_mode", "nonce", "state", "dcql_query",
                     "client_metadata", "aud", "iat", "exp", "nbf", "scope", "redirect_uri", "transaction_data",
                     "wallet_nonce", "purpose", "x"]),
    VALUES,
    max_size=14,
)


def only_protocol_errors(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except vp.OpenId4VpError as exc:
        assert exc.code in vp.ERRORS and exc.reason
        assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in exc.to_dict()["error_description"])
        return None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.builds(lambda s: "openid4vp://?" + s, st.text(max_size=200)),
                 st.builds(lambda a, b: f"openid4vp://?client_id={quote(a)}&request_uri={quote(b)}",
                           st.text(max_size=40), st.text(max_size=40))))
def test_arbitrary_links_raise_only_protocol_errors(text):
    only_protocol_errors(vp.parse_authorization_request_uri, text)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["vp_token", "state", "error", "error_description", "x"]),
                       st.one_of(st.text(max_size=50), JSON.map(lambda v: jws.dumps(v).decode()), JSON), max_size=4))
def test_arbitrary_response_forms_raise_only_protocol_errors(form):
    only_protocol_errors(vp.parse_response_form, form)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), JSON))
def test_arbitrary_request_objects_raise_only_protocol_errors(token):
    only_protocol_errors(vp.verify_request_object, token, client_id=CLIENT_ID, trust_anchors=[CA], now=NOW)


@settings(max_examples=300, deadline=None)
@given(CLAIMS, st.dictionaries(st.sampled_from(["x5c", "crit", "kid"]), JSON, max_size=2))
def test_signed_request_objects_with_arbitrary_claims_raise_only_protocol_errors(claims, header):
    token = jws.sign(claims, SIGNER, typ=vp.REQUEST_TYP, header={"x5c": X5C, **header}, include_kid=False)
    only_protocol_errors(vp.verify_request_object, token, client_id=CLIENT_ID, trust_anchors=[CA], now=NOW)
