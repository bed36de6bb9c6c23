"""OpenID4VP 1.0 cross-device flow with real keys, certificates and SD-JWT VCs: every check fails once.

The Verifier (x509_san_dns, access certificate from a registrar CA) creates a signed request; the
Wallet checks it, matches its credentials with DCQL, presents them key-bound to the request; the
Verifier checks the direct_post response. Each test that breaks one step asserts the error's code
(``code``, the OAuth error on the wire) and ``reason`` (the finer stable code).
"""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from credentials import dcql, jws
from credentials import openid4vp as vp
from credentials.errors import CredentialError
from credentials.sd_jwt import SdJwt, present, process_disclosures
from credentials.sd_jwt_vc import issue_vc, verify_vc
from keys.signer import SoftwareSigner
from keys.x509 import issue_access_certificate, make_registrar_ca, x5c_encode

NOW = 1_780_000_000
DAY = 86_400
HOST = "verifier.window.example.gov.cn"
CLIENT_ID = f"x509_san_dns:{HOST}"
RESPONSE_URI = f"https://{HOST}/openid4vp/response/tx-1"
REQUEST_URI = f"https://{HOST}/openid4vp/request/tx-1"
ISS = "https://samr.example.gov.cn/issuer"
LICENCE = "https://elicence.example.gov.cn/vct/business-licence/v1"
FOOD = "https://elicence.example.gov.cn/vct/food-permit/v1"

CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA = make_registrar_ca(CA_KEY, common_name="eLicence RP Registrar", not_before=NOW - DAY, not_after=NOW + 3650 * DAY)
VERIFIER = SoftwareSigner.generate("ES256")
ISSUER = SoftwareSigner.generate("ES256")
HOLDER = SoftwareSigner.generate("ES256")
ISSUER_KEY = jws.public_key_from_jwk(ISSUER.public_jwk)


def access_certificate(dns_name=HOST, *, ca=CA, ca_key=CA_KEY, key=VERIFIER, not_after=NOW + 365 * DAY):
    return issue_access_certificate(ca_certificate=ca, ca_key=ca_key, dns_name=dns_name,
                                    public_key=key.private_key.public_key(), organization="浦东新区市场监管局",
                                    not_before=NOW - DAY, not_after=not_after)


X5C = x5c_encode([access_certificate()])

QUERY = {
    "credentials": [
        {"id": "licence", "format": "dc+sd-jwt", "meta": {"vct_values": [LICENCE]},
         "claims": [{"path": ["uscc"]}, {"path": ["name"]}]},
        {"id": "food", "format": "dc+sd-jwt", "meta": {"vct_values": [FOOD]}, "claims": [{"path": ["permit_no"]}]},
    ],
    "credential_sets": [{"options": [["licence"]]}, {"options": [["food"]], "required": False}],
}


def counter_salts():
    n = iter(range(10_000))
    return lambda: f"salt{next(n)}"


def credential(vct=LICENCE, claims=None, disclosable=("uscc", "name", "legal_representative")):
    claims = claims or {"uscc": "91310000MA1FL0EXAM", "name": "上海示例科技有限公司", "legal_representative": "张三"}
    return issue_vc(claims, vct=vct, issuer=ISS, signer=ISSUER, disclosable=list(disclosable),
                    holder_jwk=HOLDER.public_jwk, status=None, iat=NOW - DAY, exp=NOW + 365 * DAY,
                    salt_source=counter_salts())


LICENCE_VC = credential()
FOOD_VC = credential(FOOD, {"permit_no": "JY13101150000001", "holder": "上海示例科技有限公司"}, ("permit_no",))


def candidate(sd_jwt_text: str, ref=None) -> dcql.Candidate:
    sd = SdJwt.parse(sd_jwt_text)
    payload = jws.parse(sd.issuer_jwt).payload
    claims = process_disclosures(payload, sd.disclosures).claims
    return dcql.Candidate(claims["vct"], claims, ref=ref)


def make_request(**kw) -> vp.VerifierRequest:
    args = dict(dns_name=HOST, signer=VERIFIER, x5c=X5C, response_uri=RESPONSE_URI, request_uri=REQUEST_URI,
                dcql_query=QUERY, now=NOW, client_name="浦东新区行政服务中心", purpose="核验营业执照以办理食品经营许可")
    args.update(kw)
    return vp.create_request(**args)


def resign(claims=None, *, header=None, signer=VERIFIER, x5c=X5C, typ=vp.REQUEST_TYP, base=None):
    """A request object with changed claims, signed like the Verifier does unless told otherwise."""
    payload = dict((base or make_request()).request.claims())
    for name, value in (claims or {}).items():
        if value is _DROP:
            payload.pop(name, None)
        else:
            payload[name] = value
    hdr = {"x5c": x5c} if x5c is not None else {}
    hdr.update(header or {})
    return jws.sign(payload, signer, typ=typ, header=hdr, include_kid=False)


_DROP = object()


def wallet_verify(token, client_id=CLIENT_ID, **kw):
    return vp.verify_request_object(token, client_id=client_id, trust_anchors=[CA], now=kw.pop("now", NOW + 5), **kw)


def resolve(iss, header, vct):
    assert iss == ISS
    return ISSUER_KEY


def wallet_answer(request: vp.AuthorizationRequest, held=(LICENCE_VC, FOOD_VC), *, now=NOW + 10, aud=None, nonce=None):
    """The Wallet's side after consent: match, present each selected credential, form fields."""
    result = dcql.match(request.dcql_query, [candidate(c, ref=c) for c in held])
    assert result.satisfied
    presentations = {}
    for qid in result.selection:
        chosen = result.by_query[qid][0]
        if aud is None and nonce is None:
            text = vp.present_for_request(chosen.candidate.ref, request=request, disclose=chosen.disclose,
                                          holder_signer=HOLDER, now=now)
        else:
            text = present(chosen.candidate.ref, disclose=chosen.disclose, holder_signer=HOLDER,
                           aud=aud or request.client_id, nonce=nonce or request.nonce, now=now)
        presentations[qid] = [text]
    return vp.response_form(request, presentations)


def verifier_check(form, request: vp.AuthorizationRequest, **kw):
    return vp.verify_response(vp.parse_response_form(form), request=request, now=kw.pop("now", NOW + 20),
                              resolve_issuer_key=kw.pop("resolve_issuer_key", resolve), **kw)


def expect(exc_type, code, reason, fn, *args, **kw):
    with pytest.raises(exc_type) as info:
        fn(*args, **kw)
    assert info.value.code == code
    if reason is not None:
        assert info.value.reason == reason
    return info.value


# --------------------------------------------------------------------------------------------------
# The whole flow


def test_cross_device_flow_round_trip():
    created = make_request()
    assert created.uri.startswith("openid4vp://?client_id=x509_san_dns%3A")
    ref = vp.parse_authorization_request_uri(created.uri)
    assert (ref.client_id, ref.request_uri) == (CLIENT_ID, REQUEST_URI)
    request = wallet_verify(created.request_object, client_id=ref.client_id)
    assert request.verifier_name == "浦东新区市场监管局"
    assert request.client_name == "浦东新区行政服务中心"
    assert request.purpose == "核验营业执照以办理食品经营许可"
    assert request.dns_name == HOST and request.nonce == created.request.nonce
    assert request.dcql_query == created.request.dcql_query
    assert request.requested_claims == {"licence": (("uscc",), ("name",)), "food": (("permit_no",),)}
    form = wallet_answer(request)
    assert set(form) == {"vp_token", "state"} and form["state"] == created.request.state
    result = verifier_check(form, created.request)
    licence = result.credentials["licence"][0]
    assert licence.vct == LICENCE and licence.key_bound
    assert licence.claims["uscc"] == "91310000MA1FL0EXAM" and licence.claims["name"] == "上海示例科技有限公司"
    assert "legal_representative" not in licence.claims  # not requested, not disclosed
    assert result.credentials["food"][0].claims["permit_no"] == "JY13101150000001"
    assert result.discarded == ()


def test_request_object_header_and_claims_follow_the_specification():
    created = make_request()
    parsed = jws.parse(created.request_object)
    assert parsed.header["typ"] == "oauth-authz-req+jwt" and parsed.header["alg"] == "ES256"
    assert parsed.header["x5c"] == X5C and "kid" not in parsed.header
    claims = parsed.payload
    assert claims["aud"] == "https://self-issued.me/v2"
    assert (claims["response_type"], claims["response_mode"]) == ("vp_token", "direct_post")
    assert claims["client_id"] == CLIENT_ID and claims["response_uri"] == RESPONSE_URI
    assert claims["exp"] - claims["iat"] == 300 and claims["iat"] == NOW
    assert claims["client_metadata"]["vp_formats_supported"]["dc+sd-jwt"]["kb-jwt_alg_values"] == ["ES256", "Ed25519"]
    assert claims["dcql_query"] == QUERY
    # s5.2: fresh values of ASCII URL safe characters, and not the same for nonce and state.
    assert claims["nonce"] != claims["state"] and len(claims["nonce"]) >= 22


def test_nonces_come_from_the_source_passed_in():
    values = iter(["nonce-1", "state-1"])
    created = make_request(nonce_source=lambda: next(values))
    assert (created.request.nonce, created.request.state) == ("nonce-1", "state-1")


def test_stored_request_claims_rebuild_the_request():
    created = make_request()
    rebuilt = vp.AuthorizationRequest.from_claims(created.request.claims())
    assert rebuilt.nonce == created.request.nonce and rebuilt.dcql_query == created.request.dcql_query
    assert rebuilt.claims() == created.request.claims()


def test_kb_jwt_audience_is_the_full_client_id_with_prefix():
    request = wallet_verify(make_request().request_object)
    form = wallet_answer(request)
    text = json.loads(form["vp_token"])["licence"][0]
    kb = jws.parse(SdJwt.parse(text).kb_jwt).payload
    assert kb["aud"] == CLIENT_ID and kb["nonce"] == request.nonce


# --------------------------------------------------------------------------------------------------
# The QR link


def test_request_uri_method_round_trips():
    ref = vp.RequestReference(CLIENT_ID, REQUEST_URI, "post")
    assert vp.parse_authorization_request_uri(vp.authorization_request_uri(ref)) == ref


@pytest.mark.parametrize(
    ("link", "error", "reason"),
    [
        ("https://wallet.example/?client_id=x&request_uri=y", "invalid_request", None),
        (f"openid4vp://?client_id={quote(CLIENT_ID)}", "invalid_request", "request_not_signed"),
        (f"openid4vp://?request_uri={quote(REQUEST_URI)}", "invalid_request", "missing_client_id"),
        (f"openid4vp://?client_id={quote('did:example:123')}&request_uri={quote(REQUEST_URI)}", "invalid_request",
         "unsupported_client_id_prefix"),
        (f"openid4vp://?client_id=verifier-1&request_uri={quote(REQUEST_URI)}", "invalid_client", "unknown_client"),
        (f"openid4vp://?client_id={quote('x509_san_dns:not a host')}&request_uri={quote(REQUEST_URI)}",
         "invalid_request", "invalid_client_id"),
        (f"openid4vp://?client_id={quote(CLIENT_ID)}&request_uri={quote('http://evil.example/r')}", "invalid_request",
         "invalid_request_uri"),
        (f"openid4vp://?client_id={quote(CLIENT_ID)}&request_uri={quote(REQUEST_URI)}&request_uri_method=PUT",
         "invalid_request_uri_method", None),
        (f"openid4vp://?client_id={quote(CLIENT_ID)}&client_id=x&request_uri={quote(REQUEST_URI)}",
         "invalid_request", None),
        (f"openid4vp://?client_id={quote(CLIENT_ID)}&request_uri={quote(REQUEST_URI)}&transaction_data=e30",
         "invalid_transaction_data", None),
        (f"openid4vp://?client_id={quote(CLIENT_ID)}&request_uri={quote(REQUEST_URI)}#frag", "invalid_request", None),
        ("openid4vp://?" + "a" * 5000, "invalid_request", "payload_too_large"),
        ("openid4vp://?client_id=a b", "invalid_request", None),
        (None, "invalid_request", None),
    ],
    ids=["other-scheme", "no-request-uri", "no-client-id", "did-prefix", "no-prefix", "not-dns", "http-request-uri",
         "bad-method", "repeated", "transaction-data", "fragment", "oversize", "space", "none"],
)
def test_bad_authorization_request_links_are_refused(link, error, reason):
    expect(vp.OpenId4VpError, error, reason, vp.parse_authorization_request_uri, link)


# --------------------------------------------------------------------------------------------------
# The Request Object, Wallet side


def test_request_object_signed_by_another_key_is_invalid_request_object():
    token = resign(signer=SoftwareSigner.generate("ES256"))
    expect(vp.InvalidRequestObject, "invalid_request_object", "invalid_signature", wallet_verify, token)


def test_tampered_request_object_is_invalid_request_object():
    header, payload, sig = make_request().request_object.split(".")
    claims = jws.parse(make_request().request_object).payload | {"response_uri": f"https://{HOST}/other"}
    forged = f"{header}.{jws.b64u_encode(jws.dumps(claims))}.{sig}"
    expect(vp.InvalidRequestObject, "invalid_request_object", "invalid_signature", wallet_verify, forged)


def test_certificate_from_an_untrusted_registrar_is_refused():
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = make_registrar_ca(rogue_key, common_name="Rogue", not_before=NOW - DAY, not_after=NOW + DAY)
    token = resign(x5c=x5c_encode([access_certificate(ca=rogue, ca_key=rogue_key), rogue]))
    expect(vp.InvalidRequest, "invalid_request", "certificate_untrusted", wallet_verify, token)


def test_expired_access_certificate_is_refused():
    token = resign(x5c=x5c_encode([access_certificate(not_after=NOW - 1)]))
    expect(vp.InvalidRequest, "invalid_request", "certificate_expired", wallet_verify, token)


def test_certificate_for_another_host_is_a_name_mismatch():
    token = resign(x5c=x5c_encode([access_certificate("other.example.gov.cn")]))
    expect(vp.InvalidRequest, "invalid_request", "certificate_name_mismatch", wallet_verify, token)


def test_malformed_x5c_is_invalid_request_object():
    expect(vp.InvalidRequestObject, "invalid_request_object", "certificate_invalid", wallet_verify,
           resign(x5c=["bm90IGEgY2VydA=="]))
    expect(vp.InvalidRequestObject, "invalid_request_object", "missing_x5c", wallet_verify, resign(x5c=None))


def test_response_uri_on_another_host_is_refused():
    token = resign({"response_uri": "https://collector.example.com/post"})
    expect(vp.InvalidRequest, "invalid_request", "response_uri_mismatch", wallet_verify, token)


def test_creating_a_request_with_a_response_uri_on_another_host_is_refused():
    expect(vp.InvalidRequest, "invalid_request", "response_uri_mismatch", make_request,
           response_uri="https://collector.example.com/post")


@pytest.mark.parametrize(
    ("client_id", "error", "reason"),
    [
        ("redirect_uri:https://verifier.window.example.gov.cn/cb", "invalid_request", "unsupported_client_id_prefix"),
        ("origin:https://verifier.window.example.gov.cn", "invalid_request", "unsupported_client_id_prefix"),
        ("made_up_prefix:verifier.window.example.gov.cn", "invalid_request", "unsupported_client_id_prefix"),
        ("verifier.window.example.gov.cn", "invalid_client", "unknown_client"),
    ],
)
def test_client_identifier_prefixes_other_than_x509_san_dns_are_refused(client_id, error, reason):
    token = resign({"client_id": client_id})
    expect(vp.OpenId4VpError, error, reason, wallet_verify, token, client_id=client_id)


def test_client_id_must_be_identical_to_the_link():
    token = make_request().request_object
    expect(vp.InvalidRequest, "invalid_request", "client_id_mismatch", wallet_verify, token,
           client_id="x509_san_dns:other.example.gov.cn")


def test_unsigned_request_object_is_refused():
    claims = make_request().request.claims()
    header = jws.b64u_encode(jws.dumps({"alg": "none", "typ": vp.REQUEST_TYP}))
    unsigned = f"{header}.{jws.b64u_encode(jws.dumps(claims))}."
    expect(vp.InvalidRequest, "invalid_request", "request_not_signed", wallet_verify, unsigned)


def test_request_object_without_the_explicit_type_is_refused():
    expect(vp.InvalidRequestObject, "invalid_request_object", "invalid_typ", wallet_verify, resign(typ="JWT"))


@pytest.mark.parametrize(
    ("claims", "error", "reason"),
    [
        ({"nonce": _DROP}, "invalid_request", "missing_nonce"),
        ({"nonce": "has space"}, "invalid_request", "invalid_nonce"),
        ({"nonce": 42}, "invalid_request", "invalid_nonce"),
        ({"state": "a/b"}, "invalid_request", "invalid_state"),
        ({"response_mode": "fragment"}, "invalid_request", "unsupported_response_mode"),
        ({"response_mode": "direct_post.jwt"}, "invalid_request", "unsupported_response_mode"),
        ({"response_mode": _DROP}, "invalid_request", "unsupported_response_mode"),
        ({"response_type": "code"}, "invalid_request", "unsupported_response_type"),
        ({"redirect_uri": f"https://{HOST}/cb"}, "invalid_request", "redirect_uri_present"),
        ({"response_uri": _DROP}, "invalid_request", "missing_response_uri"),
        ({"response_uri": f"http://{HOST}/post"}, "invalid_request", "invalid_response_uri"),
        ({"dcql_query": {"credentials": []}}, "invalid_request", "invalid_dcql_query"),
        ({"dcql_query": {"credentials": [{"id": "x y", "format": "dc+sd-jwt", "meta": {}}]}}, "invalid_request",
         "invalid_dcql_query"),
        ({"dcql_query": _DROP}, "invalid_request", "missing_dcql_query"),
        ({"dcql_query": _DROP, "scope": "com.example.licence"}, "invalid_scope", None),
        ({"scope": "com.example.licence"}, "invalid_request", "scope_and_dcql_query"),
        ({"client_metadata": _DROP}, "invalid_request", "missing_client_metadata"),
        ({"client_metadata": {"vp_formats_supported": {"mso_mdoc": {}}}}, "vp_formats_not_supported", None),
        ({"client_metadata": {"vp_formats_supported": {"dc+sd-jwt": {}}, "client_name": ""}}, "invalid_request", None),
        ({"dcql_query": {"credentials": [{"id": "m", "format": "mso_mdoc", "meta": {"doctype_value": "x"}}]}},
         "vp_formats_not_supported", None),
        ({"transaction_data": ["e30"]}, "invalid_transaction_data", None),
        ({"purpose": "x" * 501}, "invalid_request", None),
        ({"aud": "https://wallet.example"}, "invalid_request_object", "invalid_aud"),
        ({"aud": _DROP}, "invalid_request_object", "invalid_aud"),
        ({"exp": _DROP}, "invalid_request_object", "missing_claim"),
        ({"exp": NOW - 120}, "invalid_request_object", "expired"),
        ({"exp": "soon"}, "invalid_request_object", "malformed"),
        ({"iat": NOW + 3600, "exp": NOW + 3700}, "invalid_request_object", "iat_in_future"),
        ({"iat": NOW, "exp": NOW + 7200}, "invalid_request_object", "expired"),
        ({"nbf": NOW + 3600}, "invalid_request_object", "not_yet_valid"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_each_request_parameter_check_fails_with_its_code(claims, error, reason):
    expect(vp.OpenId4VpError, error, reason, wallet_verify, resign(claims))


def test_state_is_required_when_holder_binding_is_waived():
    query = {"credentials": [{"id": "l", "format": "dc+sd-jwt", "meta": {"vct_values": [LICENCE]},
                              "require_cryptographic_holder_binding": False}]}
    token = resign({"dcql_query": query, "state": _DROP})
    expect(vp.InvalidRequest, "invalid_request", "missing_state", wallet_verify, token)


def test_wallet_nonce_must_come_back_in_the_request_object():
    created = make_request(wallet_nonce="qPmxiNFCR3QTm19POc8u")
    nonce = "qPmxiNFCR3QTm19POc8u"
    assert wallet_verify(created.request_object, wallet_nonce=nonce).wallet_nonce == nonce
    expect(vp.InvalidRequest, "invalid_request", "wallet_nonce_mismatch", wallet_verify, created.request_object,
           wallet_nonce="another")


def test_expired_request_object_is_refused_at_the_wallet():
    token = make_request().request_object
    expect(vp.InvalidRequestObject, "invalid_request_object", "expired", wallet_verify, token, now=NOW + 301 + 60)


def test_oversize_request_object_is_refused_before_parsing():
    expect(vp.InvalidRequestObject, "invalid_request_object", "payload_too_large", wallet_verify,
           "a" * (vp.MAX_REQUEST_OBJECT_CHARS + 1))


@pytest.mark.parametrize("token", ["", "a.b", "e30.e30", 42], ids=["empty", "two-parts", "no-signature-part", "int"])
def test_malformed_request_object_is_invalid_request_object(token):
    expect(vp.InvalidRequestObject, "invalid_request_object", None, wallet_verify, token)


def test_request_objects_are_signed_with_es256_only():
    expect(vp.InvalidRequestObject, "invalid_request_object", "unsupported_alg", vp.sign_request_object,
           make_request().request, signer=SoftwareSigner.generate("EdDSA"), x5c=X5C)


def test_iss_in_the_request_object_is_ignored():
    assert wallet_verify(resign({"iss": "https://someone.example"})).client_id == CLIENT_ID


def test_error_descriptions_are_reduced_to_the_allowed_ascii():
    err = vp.InvalidRequest('bad "value" \\ 值')
    assert err.to_dict() == {"error": "invalid_request", "error_description": "bad 'value' / ?"}
    assert vp.error_for_code("access_denied").status == 400


# --------------------------------------------------------------------------------------------------
# The response, Wallet side


def test_error_response_for_refusal_carries_state():
    request = wallet_verify(make_request().request_object)
    assert vp.error_response_form(request) == {"error": "access_denied", "state": request.state}
    with pytest.raises(ValueError):
        vp.error_response_form(request, "made_up")


@pytest.mark.parametrize(
    "presentations",
    [{"unknown": ["x~"]}, {"licence": []}, {"licence": ["a~", "b~"]}, {}],
    ids=["unknown-id", "empty", "two-without-multiple", "nothing"],
)
def test_vp_token_is_built_for_the_query_only(presentations):
    request = wallet_verify(make_request().request_object)
    expect(vp.InvalidRequest, "invalid_request", None, vp.response_form, request, presentations)


# --------------------------------------------------------------------------------------------------
# The response, Verifier side


def test_vp_token_missing_the_required_credential_is_refused():
    created = make_request()
    request = wallet_verify(created.request_object)
    form = wallet_answer(request, held=(LICENCE_VC, FOOD_VC))
    token = json.loads(form["vp_token"])
    form["vp_token"] = json.dumps({"food": token["food"]})
    expect(vp.InvalidRequest, "invalid_request", "dcql_not_satisfied", verifier_check, form, created.request)


def test_kb_jwt_with_wrong_audience_is_rejected():
    created = make_request()
    request = wallet_verify(created.request_object)
    form = wallet_answer(request, held=(LICENCE_VC,), aud=HOST)  # the DNS name without the prefix
    expect(CredentialError, "kb_aud_mismatch", None, verifier_check, form, created.request)


def test_kb_jwt_with_wrong_nonce_rejects_the_whole_response():
    created = make_request()
    request = wallet_verify(created.request_object)
    form = wallet_answer(request, held=(LICENCE_VC, FOOD_VC))
    other = wallet_answer(dataclasses.replace(request, nonce="another-nonce"), held=(FOOD_VC, LICENCE_VC))
    form["vp_token"] = json.dumps({"licence": json.loads(form["vp_token"])["licence"],
                                   "food": json.loads(other["vp_token"])["food"]})
    # The wrong nonce is on the optional credential: still the response as a whole is rejected.
    expect(CredentialError, "kb_nonce_mismatch", None, verifier_check, form, created.request)


def test_stale_presentation_is_rejected():
    created = make_request()
    request = wallet_verify(created.request_object)
    form = wallet_answer(request, held=(LICENCE_VC,), now=NOW - 1000)
    expect(CredentialError, "kb_iat_out_of_window", None, verifier_check, form, created.request)


def test_presentation_without_key_binding_is_rejected_when_required():
    created = make_request()
    request = wallet_verify(created.request_object)
    plain = present(LICENCE_VC, disclose=["uscc", "name"])
    form = vp.response_form(request, {"licence": [plain]})
    expect(CredentialError, "kb_missing", None, verifier_check, form, created.request)


def test_failed_optional_presentation_is_discarded_and_the_rest_accepted():
    created = make_request()
    request = wallet_verify(created.request_object)
    form = wallet_answer(request, held=(LICENCE_VC, FOOD_VC))
    token = json.loads(form["vp_token"])
    stale = present(FOOD_VC, disclose=["permit_no"], holder_signer=HOLDER, aud=CLIENT_ID, nonce=request.nonce,
                    now=NOW - 1000)
    form["vp_token"] = json.dumps({"licence": token["licence"], "food": [stale]})
    result = verifier_check(form, created.request)
    assert set(result.credentials) == {"licence"}
    assert [(d.query_id, d.index, d.code) for d in result.discarded] == [("food", 0, "kb_iat_out_of_window")]


def test_credential_of_another_type_answering_a_query_is_rejected():
    created = make_request()
    request = wallet_verify(created.request_object)
    wrong = vp.present_for_request(FOOD_VC, request=request, disclose=["permit_no"], holder_signer=HOLDER, now=NOW + 10)
    form = vp.response_form(request, {"licence": [wrong]})
    expect(CredentialError, "invalid_typ", None, verifier_check, form, created.request)


def test_requested_claim_not_disclosed_is_refused():
    created = make_request()
    request = wallet_verify(created.request_object)
    partial = vp.present_for_request(LICENCE_VC, request=request, disclose=["uscc"], holder_signer=HOLDER, now=NOW + 10)
    form = vp.response_form(request, {"licence": [partial]})
    expect(vp.InvalidRequest, "invalid_request", "dcql_not_satisfied", verifier_check, form, created.request)


def test_two_presentations_for_a_single_credential_query_are_refused():
    created = make_request()
    request = wallet_verify(created.request_object)
    one = json.loads(wallet_answer(request, held=(LICENCE_VC,))["vp_token"])["licence"][0]
    form = {"vp_token": json.dumps({"licence": [one, one]}), "state": request.state}
    expect(vp.InvalidRequest, "invalid_request", "dcql_not_satisfied", verifier_check, form, created.request)


def test_answer_to_an_unknown_query_is_refused():
    created = make_request()
    request = wallet_verify(created.request_object)
    token = json.loads(wallet_answer(request, held=(LICENCE_VC,))["vp_token"])
    form = {"vp_token": json.dumps(token | {"extra": token["licence"]}), "state": request.state}
    expect(vp.InvalidRequest, "invalid_request", "dcql_not_satisfied", verifier_check, form, created.request)


def test_state_must_be_this_transactions():
    created = make_request()
    request = wallet_verify(created.request_object)
    form = wallet_answer(request, held=(LICENCE_VC,)) | {"state": "another-transaction"}
    expect(vp.InvalidRequest, "invalid_request", "state_mismatch", verifier_check, form, created.request)


def test_wallet_refusal_surfaces_as_access_denied():
    created = make_request()
    request = wallet_verify(created.request_object)
    expect(vp.AccessDenied, "access_denied", "access_denied", verifier_check, vp.error_response_form(request),
           created.request)


def test_verifier_sdk_style_callable_can_verify_presentations():
    created = make_request()
    request = wallet_verify(created.request_object)
    seen = []

    def verify_presentation(text, kb):
        seen.append(kb)
        return verify_vc(text, resolve_issuer_key=resolve, now=NOW + 20, kb=kb)

    form = wallet_answer(request, held=(LICENCE_VC,))
    result = vp.verify_response(vp.parse_response_form(form), request=created.request, now=NOW + 20,
                                verify_presentation=verify_presentation)
    assert result.credentials["licence"][0].key_bound
    assert seen[0].nonce == created.request.nonce and seen[0].aud == CLIENT_ID
    with pytest.raises(TypeError):
        vp.verify_response(vp.parse_response_form(form), request=created.request, now=NOW)


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"state": "s"}, "missing_vp_token"),
        ({"vp_token": "not json"}, "malformed"),
        ({"vp_token": "[]"}, "malformed"),
        ({"vp_token": "{}"}, "malformed"),
        ({"vp_token": '{"licence": "eyJ"}'}, "malformed"),
        ({"vp_token": '{"licence": [1]}'}, "malformed"),
        ({"vp_token": "x" * (vp.MAX_VP_TOKEN_CHARS + 1)}, "payload_too_large"),
        ({"vp_token": json.dumps({f"q{i}": ["a~"] for i in range(vp.MAX_PRESENTATIONS + 1)})}, "payload_too_large"),
        ({"vp_token": json.dumps({"q": ["a" * 300_000]})}, "payload_too_large"),
        ([("vp_token", "{}"), ("vp_token", "{}")], None),
        ("vp_token=x", None),
    ],
    ids=["no-token", "not-json", "array", "empty", "not-array", "not-strings", "oversize", "too-many", "huge-one",
         "repeated", "not-a-form"],
)
def test_malformed_direct_post_bodies_are_invalid_request(form, reason):
    expect(vp.InvalidRequest, "invalid_request", reason, vp.parse_response_form, form)


# --------------------------------------------------------------------------------------------------
# Request URI method post (s5.10)


def test_request_uri_post_carries_wallet_metadata_and_nonce_into_the_request_object():
    form = vp.request_uri_post_form(wallet_nonce="qPmxiNFCR3QTm19POc8u")
    wallet_nonce, metadata = vp.parse_request_uri_post(list(form.items()) + [("unknown", "ignored")])
    assert wallet_nonce == "qPmxiNFCR3QTm19POc8u"
    assert metadata["vp_formats_supported"]["dc+sd-jwt"]["kb-jwt_alg_values"] == ("ES256", "Ed25519")
    assert metadata["client_id_prefixes_supported"] == ("x509_san_dns",)
    created = make_request(request_uri_method="post", wallet_nonce=wallet_nonce)
    assert vp.parse_authorization_request_uri(created.uri).request_uri_method == "post"
    assert wallet_verify(created.request_object, wallet_nonce=wallet_nonce).wallet_nonce == wallet_nonce
    assert vp.parse_request_uri_post({}) == (None, {})


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"wallet_metadata": "[]"}, "invalid_wallet_metadata"),
        ({"wallet_metadata": "{"}, "malformed"),
        ({"wallet_metadata": ""}, "invalid_wallet_metadata"),
        ({"wallet_nonce": "a b"}, "invalid_wallet_nonce"),
        ([("wallet_nonce", "a"), ("wallet_nonce", "b")], None),
    ],
    ids=["array", "not-json", "empty", "nonce-not-url-safe", "repeated"],
)
def test_malformed_request_uri_posts_are_invalid_request(form, reason):
    expect(vp.InvalidRequest, "invalid_request", reason, vp.parse_request_uri_post, form)
