"""Properties of the OpenID4VCI parsers: arbitrary input raises only ``OpenId4VciError``; offers round-trip."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from credentials import openid4vci as vci

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
# Values near the real shapes, so that the deeper checks are reached too.
NAMES = st.sampled_from(
    ["credential_configuration_id", "credential_identifier", "proofs", "proof", "jwt", "credential_response_encryption",
     "credential_issuer", "credential_configuration_ids", "grants", vci.PRE_AUTHORIZED_GRANT, "pre-authorized_code",
     "tx_code", "length", "input_mode", "description", "business-licence", "x"]
)
SHAPED = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 70) | st.sampled_from(["", "business-licence", "https://a.example", "text", "e30.e30.e30"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=5),
    max_leaves=25,
)
PREFIXES = st.sampled_from(
    ["", "openid-credential-offer://?", "openid-credential-offer://?credential_offer=",
     "openid-credential-offer://?credential_offer_uri=", "OPENID-CREDENTIAL-OFFER://?credential_offer="]
)


def only_protocol_errors(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except vci.OpenId4VciError as exc:
        assert exc.code in vci.ERRORS
        assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in exc.to_dict()["error_description"])
        return None


@settings(max_examples=400, deadline=None)
@given(PREFIXES, st.text(max_size=200))
def test_parse_offer_uri_on_arbitrary_text(prefix, text):
    result = only_protocol_errors(vci.parse_offer_uri, prefix + text)
    assert result is None or isinstance(result, (str, vci.CredentialOffer))


@settings(max_examples=300, deadline=None)
@given(JSON | SHAPED)
def test_parse_offer_uri_on_arbitrary_json(value):
    link = "openid-credential-offer://?credential_offer=" + quote(json.dumps(value), safe="")
    result = only_protocol_errors(vci.parse_offer_uri, link)
    assert result is None or isinstance(result, vci.CredentialOffer)
    only_protocol_errors(vci.parse_offer, value)


@settings(max_examples=400, deadline=None)
@given(JSON | SHAPED)
def test_parse_credential_request_on_arbitrary_values(body):
    result = only_protocol_errors(
        vci.parse_credential_request, body, configurations={"business-licence"}, identifiers={"x": "business-licence"}
    )
    assert result is None or (result.configuration_id == "business-licence" and len(result.proofs) == 1)


FORM_NAMES = st.sampled_from(["grant_type", "pre-authorized_code", "tx_code", "client_id", "x"])
FORM_VALUES = st.sampled_from([vci.PRE_AUTHORIZED_GRANT, "", "code"]) | JSON


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(FORM_NAMES, FORM_VALUES)
    | st.lists(st.tuples(FORM_NAMES | JSON, FORM_VALUES), max_size=5)
    | st.lists(JSON, max_size=3)
    | JSON
)
def test_parse_token_request_on_arbitrary_forms(form):
    result = only_protocol_errors(vci.parse_token_request, form)
    assert result is None or isinstance(result, vci.PreAuthorizedTokenRequest)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | JSON)
def test_verify_proof_on_arbitrary_input(value):
    only_protocol_errors(vci.verify_proof, value, audience="https://a.example", now=1_760_000_000)


IDS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["https://a.example", "https://a.example:8443/issuers/x", "http://127.0.0.1:8000/i", "http://localhost/i"]),
    st.lists(IDS, min_size=1, max_size=4, unique=True),
    IDS,
    st.none() | st.builds(vci.TxCode, st.none() | st.integers(1, 64), st.none() | st.sampled_from(["numeric", "text"]),
                          st.none() | st.text(max_size=300)),
)
def test_offers_round_trip(issuer, ids, code, tx_code):
    offer = vci.CredentialOffer(issuer, tuple(ids), code, tx_code)
    assert vci.parse_offer_uri(vci.offer_uri(offer)) == offer
