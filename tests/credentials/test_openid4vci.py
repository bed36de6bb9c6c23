"""OpenID4VCI 1.0 protocol core: errors, credential offers, token and nonce, credential requests, metadata."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from credentials import jws
from credentials import openid4vci as vci
from credentials.errors import Malformed
from schemas import all_types, get_type

ISSUER = "https://amr.sh.example.gov.cn/issuers/sh-amr"
LOCAL_ISSUER = "http://127.0.0.1:8000/issuers/sh-amr"
OFFER = vci.CredentialOffer(ISSUER, ("business-licence",), "c0de-Pre_Auth", vci.TxCode(6, "numeric", "短信验证码"))
PRE = vci.PRE_AUTHORIZED_GRANT


def code_of(fn, *args, **kwargs) -> str:
    with pytest.raises(vci.OpenId4VciError) as info:
        fn(*args, **kwargs)
    return info.value.code


def offer_link(obj) -> str:
    return "openid-credential-offer://?credential_offer=" + quote(json.dumps(obj), safe="")


def offer_json(**changes):
    obj = OFFER.to_json()
    obj.update(changes)
    return obj


def grant_json(**changes):
    grant = dict(OFFER.to_json()["grants"][PRE])
    grant.update(changes)
    return offer_json(grants={PRE: grant})


# --- errors ---------------------------------------------------------------------------------------


def test_error_codes_and_statuses():
    assert {code: cls.status for code, cls in vci.ERRORS.items()} == {
        "invalid_request": 400,
        "invalid_grant": 400,
        "invalid_client": 400,
        "unsupported_grant_type": 400,
        "invalid_token": 401,
        "invalid_proof": 400,
        "invalid_nonce": 400,
        "invalid_credential_request": 400,
        "unknown_credential_configuration": 400,
        "unknown_credential_identifier": 400,
        "invalid_encryption_parameters": 400,
        "credential_request_denied": 400,
    }
    for code, cls in vci.ERRORS.items():
        err = vci.error_for_code(code, "why")
        assert isinstance(err, cls) and isinstance(err, vci.OpenId4VciError)
        assert err.to_dict() == {"error": code, "error_description": "why"}
        assert err.headers()["Cache-Control"] == "no-store"
    with pytest.raises(KeyError):
        vci.error_for_code("no_such_error")


def test_error_without_description_uses_the_default():
    assert vci.InvalidNonce().to_dict()["error_description"].startswith("The nonce")


def test_error_description_is_restricted_to_the_allowed_ascii():
    # 8.3.1.2: no characters outside %x20-21 / %x23-5B / %x5D-7E.
    err = vci.InvalidProof('bad "typ" \\ 证照\n' + "x" * 1000)
    text = err.to_dict()["error_description"]
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in text)
    assert text.startswith("bad 'typ' / ???") and len(text) <= 400


def test_invalid_token_carries_a_bearer_challenge():
    assert vci.InvalidToken().headers() == {"Cache-Control": "no-store", "WWW-Authenticate": 'Bearer error="invalid_token"'}


# --- credential offer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offer",
    [
        OFFER,
        vci.CredentialOffer(ISSUER, ("business-licence", "food-business-permit"), "abc"),
        vci.CredentialOffer(ISSUER, ("x",), "abc", vci.TxCode()),
        vci.CredentialOffer(LOCAL_ISSUER, ("x",), "a b&c=d+e%f", vci.TxCode(description='引号 " & # ?')),
        vci.CredentialOffer("http://[::1]:8000", ["x"], "abc", vci.TxCode(4, "text")),
    ],
)
def test_offer_round_trips_through_the_deep_link(offer):
    link = vci.offer_uri(offer)
    assert link.startswith("openid-credential-offer://?credential_offer=%7B")
    assert vci.parse_offer_uri(link) == offer
    assert vci.parse_offer(jws.dumps(offer.to_json())) == offer
    assert vci.parse_offer(offer.to_json()) == offer


def test_offer_json_shape():
    assert OFFER.to_json() == {
        "credential_issuer": ISSUER,
        "credential_configuration_ids": ["business-licence"],
        "grants": {PRE: {"pre-authorized_code": "c0de-Pre_Auth",
                         "tx_code": {"length": 6, "input_mode": "numeric", "description": "短信验证码"}}},
    }
    assert "tx_code" not in vci.CredentialOffer(ISSUER, ("x",), "c").to_json()["grants"][PRE]
    assert vci.CredentialOffer(ISSUER, ("x",), "c", vci.TxCode()).to_json()["grants"][PRE]["tx_code"] == {}


def test_offer_by_reference_round_trips():
    url = "https://amr.sh.example.gov.cn/issuers/sh-amr/offers/3f2a?lang=zh"
    link = vci.offer_reference_uri(url)
    assert link == "openid-credential-offer://?credential_offer_uri=" + quote(url, safe="")
    assert vci.parse_offer_uri(link) == url
    assert vci.parse_offer_uri(vci.offer_reference_uri("http://127.0.0.1:8000/o/1")) == "http://127.0.0.1:8000/o/1"


@pytest.mark.parametrize(
    "url", ["http://amr.example.gov.cn/o/1", "https://a.example/o#f", "ftp://a.example/o", "https://u@a.example/o", ""]
)
def test_offer_reference_must_be_https(url):
    assert code_of(vci.offer_reference_uri, url) == "invalid_request"
    link = "openid-credential-offer://?credential_offer_uri=" + quote(url, safe="")
    assert code_of(vci.parse_offer_uri, link) == "invalid_request"


def test_parse_offer_ignores_unknown_members_and_other_grants():
    obj = offer_json(extra={"x": 1})
    obj["grants"] = {**obj["grants"], "authorization_code": {"issuer_state": "s"}}
    obj["grants"][PRE] = {**obj["grants"][PRE], "authorization_server": "https://as.example", "other": 1}
    obj["grants"][PRE]["tx_code"] = {**obj["grants"][PRE]["tx_code"], "future_member": True}
    assert vci.parse_offer(obj) == OFFER


def test_offer_scheme_is_case_insensitive():
    assert vci.parse_offer_uri(vci.offer_uri(OFFER).replace("openid-credential-offer", "OpenID-Credential-Offer", 1)) == OFFER


BAD_LINKS = {
    "other scheme": "https://wallet.example/?credential_offer=" + quote(json.dumps(OFFER.to_json())),
    "openid4vp scheme": "openid4vp://?credential_offer=" + quote(json.dumps(OFFER.to_json())),
    "no slashes": "openid-credential-offer:?credential_offer=" + quote(json.dumps(OFFER.to_json())),
    "authority": "openid-credential-offer://wallet/?credential_offer=" + quote(json.dumps(OFFER.to_json())),
    "path": "openid-credential-offer:///offer?credential_offer=" + quote(json.dumps(OFFER.to_json())),
    "fragment": vci.offer_uri(OFFER) + "#frag",
    "both parameters": vci.offer_uri(OFFER) + "&credential_offer_uri=https%3A%2F%2Fa.example%2Fo",
    "repeated parameter": vci.offer_uri(OFFER) + "&" + vci.offer_uri(OFFER).split("?", 1)[1],
    "extra parameter": vci.offer_uri(OFFER) + "&lang=zh",
    "no parameter": "openid-credential-offer://?",
    "no query": "openid-credential-offer://",
    "unknown parameter only": "openid-credential-offer://?offer=x",
    "parameter without value": "openid-credential-offer://?credential_offer",
    "empty value": "openid-credential-offer://?credential_offer=",
    "not JSON": "openid-credential-offer://?credential_offer=%7Bnope",
    "JSON array": "openid-credential-offer://?credential_offer=%5B%5D",
    "invalid UTF-8": "openid-credential-offer://?credential_offer=%FF%FE",
    "newline": vci.offer_uri(OFFER)[:40] + "\n" + vci.offer_uri(OFFER)[40:],
    "leading space": " " + vci.offer_uri(OFFER),
    "too long": "openid-credential-offer://?credential_offer=" + "a" * vci.MAX_OFFER_CHARS,
    "empty": "",
    "bad IPv6 URL": "openid-credential-offer://[::1?credential_offer=x",
}


@pytest.mark.parametrize("link", BAD_LINKS.values(), ids=BAD_LINKS.keys())
def test_odd_offer_links_are_refused(link):
    assert code_of(vci.parse_offer_uri, link) == "invalid_request"


@pytest.mark.parametrize("value", [None, 7, b"openid-credential-offer://?x", ["a"]])
def test_offer_link_must_be_text(value):
    assert code_of(vci.parse_offer_uri, value) == "invalid_request"


BAD_OFFERS = {
    "no issuer": {k: v for k, v in offer_json().items() if k != "credential_issuer"},
    "issuer over http": offer_json(credential_issuer="http://amr.example.gov.cn"),
    "issuer on a loopback look-alike": offer_json(credential_issuer="http://127.0.0.1.example.com"),
    "issuer with query": offer_json(credential_issuer=ISSUER + "?x=1"),
    "issuer not a string": offer_json(credential_issuer=7),
    "no ids": {k: v for k, v in offer_json().items() if k != "credential_configuration_ids"},
    "ids empty": offer_json(credential_configuration_ids=[]),
    "ids a string": offer_json(credential_configuration_ids="business-licence"),
    "ids repeated": offer_json(credential_configuration_ids=["a", "a"]),
    "id not a string": offer_json(credential_configuration_ids=[1]),
    "id empty": offer_json(credential_configuration_ids=[""]),
    "no grants": {k: v for k, v in offer_json().items() if k != "grants"},
    "grants empty": offer_json(grants={}),
    "grants not an object": offer_json(grants=[PRE]),
    "authorization code only": offer_json(grants={"authorization_code": {}}),
    "grant not an object": offer_json(grants={PRE: "code"}),
    "no code": offer_json(grants={PRE: {}}),
    "code empty": grant_json(**{"pre-authorized_code": ""}),
    "code not a string": grant_json(**{"pre-authorized_code": 123}),
    "code too long": grant_json(**{"pre-authorized_code": "a" * 3000}),
    "tx_code not an object": grant_json(tx_code=True),
    "tx_code length 0": grant_json(tx_code={"length": 0}),
    "tx_code length a string": grant_json(tx_code={"length": "6"}),
    "tx_code length a boolean": grant_json(tx_code={"length": True}),
    "tx_code length too big": grant_json(tx_code={"length": 65}),
    "tx_code input mode unknown": grant_json(tx_code={"input_mode": "alphanumeric"}),
    "tx_code description too long": grant_json(tx_code={"description": "x" * 301}),
    "tx_code description not a string": grant_json(tx_code={"description": 5}),
}


@pytest.mark.parametrize("obj", BAD_OFFERS.values(), ids=BAD_OFFERS.keys())
def test_bad_offers_are_refused(obj):
    assert code_of(vci.parse_offer, obj) == "invalid_request"
    assert code_of(vci.parse_offer_uri, offer_link(obj)) == "invalid_request"


def test_offer_text_limits():
    assert code_of(vci.parse_offer, "x" * (vci.MAX_OFFER_CHARS + 1)) == "invalid_request"
    assert code_of(vci.parse_offer, b"\xff") == "invalid_request"
    assert code_of(vci.parse_offer, '{"a":1,"a":2}') == "invalid_request"
    assert code_of(vci.parse_offer, None) == "invalid_request"
    assert vci.parse_offer(bytearray(jws.dumps(OFFER.to_json()))) == OFFER


def test_tx_code_description_of_exactly_300_characters_is_allowed():
    assert vci.TxCode(description="字" * 300).description == "字" * 300


def test_offer_constructor_checks():
    assert code_of(vci.CredentialOffer, ISSUER, "abc", "c") == "invalid_request"
    assert code_of(vci.CredentialOffer, ISSUER, ("a",), "c", {"length": 6}) == "invalid_request"
    assert code_of(vci.CredentialOffer, ISSUER, tuple(f"c{i}" for i in range(65)), "c") == "invalid_request"


# --- token endpoint -------------------------------------------------------------------------------


def test_token_request_from_a_mapping_and_from_pairs():
    form = {"grant_type": PRE, "pre-authorized_code": "code", "tx_code": "123456", "client_id": "wallet"}
    expected = vci.PreAuthorizedTokenRequest("code", "123456", "wallet")
    assert vci.parse_token_request(form) == expected
    assert vci.parse_token_request(list(form.items())) == expected
    assert vci.parse_token_request({"grant_type": PRE, "pre-authorized_code": "c", "scope": "x"}) == (
        vci.PreAuthorizedTokenRequest("c")
    )


@pytest.mark.parametrize(
    "form, code",
    [
        ({"pre-authorized_code": "c"}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "c"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": PRE}, "invalid_request"),
        ({"grant_type": PRE, "pre-authorized_code": ""}, "invalid_request"),
        ({"grant_type": PRE, "pre-authorized_code": "c" * 3000}, "invalid_request"),
        ({"grant_type": PRE, "pre-authorized_code": ["c"]}, "invalid_request"),
        ({"grant_type": PRE, "pre-authorized_code": "c", "tx_code": ""}, "invalid_request"),
        ({"grant_type": PRE, "pre-authorized_code": "c", "tx_code": 123456}, "invalid_request"),
        ({"grant_type": PRE, "pre-authorized_code": "c", "client_id": ""}, "invalid_request"),
        ({"grant_type": 7, "pre-authorized_code": "c"}, "invalid_request"),
        ([("grant_type", PRE), ("pre-authorized_code", "a"), ("pre-authorized_code", "b")], "invalid_request"),
        ([("grant_type", PRE), ("grant_type", PRE), ("pre-authorized_code", "a")], "invalid_request"),
        ([("grant_type", PRE, "x")], "invalid_request"),
        ([(["grant_type"], PRE)], "invalid_request"),
        ({7: PRE}, "invalid_request"),
        (["grant_type"], "invalid_request"),
        ("grant_type=x", "invalid_request"),
        (None, "invalid_request"),
    ],
)
def test_bad_token_requests(form, code):
    assert code_of(vci.parse_token_request, form) == code


def test_tx_code_presence_follows_the_offer():
    with_pin = vci.PreAuthorizedTokenRequest("c", "123456")
    without = vci.PreAuthorizedTokenRequest("c")
    vci.check_tx_code_presence(with_pin, required=True)
    vci.check_tx_code_presence(without, required=False)
    assert code_of(vci.check_tx_code_presence, without, required=True) == "invalid_request"
    assert code_of(vci.check_tx_code_presence, with_pin, required=False) == "invalid_request"


def test_token_and_nonce_responses():
    assert vci.token_response("tok-en.1~+/=", 300) == {"access_token": "tok-en.1~+/=", "token_type": "Bearer", "expires_in": 300}
    assert vci.nonce_response("n0nce") == {"c_nonce": "n0nce"}
    for bad in (("", 300), ("a b", 300), ("tok", 0), ("tok", 1.5), ("tok", True)):
        with pytest.raises(ValueError):
            vci.token_response(*bad)
    with pytest.raises(ValueError):
        vci.nonce_response("")
    assert vci.NO_STORE == {"Cache-Control": "no-store"}


@pytest.mark.parametrize("header", ["Bearer abc.DEF-_~+/==", "bearer abc", "BEARER  abc"])
def test_bearer_token(header):
    assert vci.parse_bearer_token(header) == header.split()[-1]


@pytest.mark.parametrize(
    "header", [None, "", "abc", "Basic YTpi", "Bearer", "Bearer ", "Bearer a b", "Bearer ===", "Bearer 证照", 7,
               "Bearer " + "a" * 3000]
)
def test_bad_bearer_token_is_invalid_token_with_401(header):
    with pytest.raises(vci.InvalidToken) as info:
        vci.parse_bearer_token(header)
    assert info.value.code == "invalid_token" and info.value.status == 401


# --- credential request ---------------------------------------------------------------------------

CONFIGS = {"business-licence", "food-business-permit"}
PROOF = "eyJ0eXAiOiJvcGVuaWQ0dmNpLXByb29mK2p3dCJ9.e30.c2ln"


def request(**changes):
    body = {"credential_configuration_id": "business-licence", "proofs": {"jwt": [PROOF]}}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_credential_request_is_parsed():
    got = vci.parse_credential_request(request(format="dc+sd-jwt", vct="ignored"), configurations=CONFIGS)
    assert got == vci.CredentialRequest("business-licence", (PROOF,))


def test_credential_identifier_granted_by_the_caller():
    body = request(credential_configuration_id=None, credential_identifier="licence-2025")
    got = vci.parse_credential_request(body, configurations=CONFIGS, identifiers={"licence-2025": "business-licence"})
    assert got == vci.CredentialRequest("business-licence", (PROOF,), "licence-2025")
    assert code_of(vci.parse_credential_request, body, configurations=CONFIGS) == "unknown_credential_identifier"
    assert code_of(
        vci.parse_credential_request, body, configurations=CONFIGS, identifiers={"licence-2025": "gone"}
    ) == "unknown_credential_configuration"


BAD_REQUESTS = {
    "not an object": ([request()], "invalid_credential_request"),
    "a string": ("{}", "invalid_credential_request"),
    "null": (None, "invalid_credential_request"),
    "no configuration": (request(credential_configuration_id=None), "invalid_credential_request"),
    "both identifiers": (request(credential_identifier="x"), "invalid_credential_request"),
    "configuration not a string": (request(credential_configuration_id=["business-licence"]), "invalid_credential_request"),
    "configuration empty": (request(credential_configuration_id=""), "invalid_credential_request"),
    "identifier not a string": (request(credential_configuration_id=None, credential_identifier=1), "invalid_credential_request"),
    "unknown configuration": (request(credential_configuration_id="passport"), "unknown_credential_configuration"),
    "encryption asked for": (request(credential_response_encryption={"jwk": {}, "enc": "A128GCM"}), "invalid_encryption_parameters"),
    "no proofs": (request(proofs=None), "invalid_proof"),
    "legacy singular proof": (request(proofs=None, proof={"proof_type": "jwt", "jwt": PROOF}), "invalid_proof"),
    "proofs not an object": (request(proofs=[PROOF]), "invalid_proof"),
    "proofs empty": (request(proofs={}), "invalid_proof"),
    "two proof types": (request(proofs={"jwt": [PROOF], "attestation": [PROOF]}), "invalid_proof"),
    "di_vp proof type": (request(proofs={"di_vp": [{}]}), "invalid_proof"),
    "attestation proof type": (request(proofs={"attestation": [PROOF]}), "invalid_proof"),
    "jwt not a list": (request(proofs={"jwt": PROOF}), "invalid_proof"),
    "jwt empty list": (request(proofs={"jwt": []}), "invalid_proof"),
    "jwt element not a string": (request(proofs={"jwt": [{"jwt": PROOF}]}), "invalid_proof"),
    "jwt element empty": (request(proofs={"jwt": [""]}), "invalid_proof"),
    "jwt element too long": (request(proofs={"jwt": ["a" * (vci.MAX_PROOF_CHARS + 1)]}), "invalid_proof"),
    "batch of two": (request(proofs={"jwt": [PROOF, PROOF]}), "invalid_credential_request"),
    "batch of a thousand": (request(proofs={"jwt": [PROOF] * 1000}), "invalid_credential_request"),
}


@pytest.mark.parametrize("body, code", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_credential_requests(body, code):
    assert code_of(vci.parse_credential_request, body, configurations=CONFIGS) == code


def test_legacy_proof_is_named_in_the_error():
    with pytest.raises(vci.InvalidProof) as info:
        vci.parse_credential_request(request(proofs=None, proof={"jwt": PROOF}), configurations=CONFIGS)
    assert "singular proof" in info.value.description


def test_batch_limit_is_a_parameter():
    got = vci.parse_credential_request(request(proofs={"jwt": [PROOF, PROOF]}), configurations=CONFIGS, max_proofs=2)
    assert got.proofs == (PROOF, PROOF)


def test_credential_response():
    assert vci.credential_response(["a~b~"]) == {"credentials": [{"credential": "a~b~"}]}
    assert vci.credential_response(("a", "b"))["credentials"][1] == {"credential": "b"}
    for bad in ([], "abc", [""], [None]):
        with pytest.raises(ValueError):
            vci.credential_response(bad)


# --- metadata -------------------------------------------------------------------------------------


def test_configuration_for_the_business_licence():
    ct = get_type("business-licence")
    config = vci.configuration_for_type(ct)
    as_json = config.to_json()
    assert config.id == "business-licence"
    assert as_json["format"] == "dc+sd-jwt" and as_json["vct"] == ct.vct
    assert as_json["cryptographic_binding_methods_supported"] == ["jwk"]
    assert as_json["credential_signing_alg_values_supported"] == ["ES256"]
    assert as_json["proof_types_supported"] == {"jwt": {"proof_signing_alg_values_supported": ["ES256", "EdDSA"]}}
    display = as_json["credential_metadata"]["display"]
    assert [(d["locale"], d["name"]) for d in display] == [("zh-CN", "营业执照"), ("en", "Business licence")]
    assert display[0]["background_color"] == "#B71C1C" and display[0]["text_color"] == "#FFFFFF"
    assert display[0]["description"]
    claims = as_json["credential_metadata"]["claims"]
    uscc = next(c for c in claims if c["path"] == ["uscc"])
    assert uscc == {
        "path": ["uscc"],
        "display": [{"name": "统一社会信用代码", "locale": "zh-CN"}, {"name": "Unified social credit code", "locale": "en"}],
        "mandatory": True,
    }
    assert [tuple(c["path"]) for c in claims] == list(ct.claim_paths)
    json.dumps(as_json)  # plain JSON values only


@pytest.mark.parametrize("ct", all_types(), ids=lambda t: t.slug)
def test_every_credential_type_has_a_configuration(ct):
    config = vci.configuration_for_type(ct, configuration_id=f"{ct.slug}-v1", signing_algs=["EdDSA", "ES256"])
    assert config.id == f"{ct.slug}-v1" and config.signing_algs == ("EdDSA", "ES256")
    names = {d["locale"]: d["name"] for d in config.to_json()["credential_metadata"]["display"]}
    assert names == {"zh-CN": ct.name_zh, "en": ct.name_en}
    for claim in config.to_json()["credential_metadata"]["claims"]:
        assert [d["locale"] for d in claim["display"]] == ["zh-CN", "en"]
        assert claim.get("mandatory", False) == (tuple(claim["path"]) in ct.mandatory_paths)


def test_issuer_metadata_document():
    configs = [vci.configuration_for_type(get_type("business-licence")), vci.configuration_for_type(get_type("food-business-permit"))]
    doc = vci.issuer_metadata(
        credential_issuer=LOCAL_ISSUER,
        credential_endpoint=LOCAL_ISSUER + "/credential",
        nonce_endpoint=LOCAL_ISSUER + "/nonce",
        display={"zh-CN": "上海市市场监督管理局", "en": "Shanghai AMR"},
        configurations=configs,
    )
    assert doc["credential_issuer"] == LOCAL_ISSUER and "authorization_servers" not in doc
    assert doc["credential_endpoint"] == LOCAL_ISSUER + "/credential"
    assert doc["nonce_endpoint"] == LOCAL_ISSUER + "/nonce"
    assert doc["display"] == [{"name": "上海市市场监督管理局", "locale": "zh-CN"}, {"name": "Shanghai AMR", "locale": "en"}]
    assert list(doc["credential_configurations_supported"]) == ["business-licence", "food-business-permit"]
    assert vci.well_known_url(LOCAL_ISSUER, vci.ISSUER_WELL_KNOWN) == (
        "http://127.0.0.1:8000/.well-known/openid-credential-issuer/issuers/sh-amr"
    )
    with_as = vci.issuer_metadata(
        credential_issuer=ISSUER, credential_endpoint=ISSUER + "/credential?v=1", nonce_endpoint=ISSUER + "/nonce",
        display={}, configurations=configs[:1], authorization_servers=["https://as.example.gov.cn"],
    )
    assert with_as["authorization_servers"] == ["https://as.example.gov.cn"] and "display" not in with_as


def _metadata(**changes):
    args = dict(
        credential_issuer=ISSUER, credential_endpoint=ISSUER + "/credential", nonce_endpoint=ISSUER + "/nonce",
        display={"en": "AMR"}, configurations=[vci.CredentialConfiguration("x", "https://v.example/x")],
    )
    args.update(changes)
    return vci.issuer_metadata(**args)


@pytest.mark.parametrize(
    "changes",
    [
        dict(credential_issuer="http://amr.example.gov.cn"),
        dict(credential_issuer=ISSUER + "/?q"),
        dict(credential_endpoint="http://amr.example.gov.cn/credential"),
        dict(nonce_endpoint=ISSUER + "/nonce#f"),
        dict(display={"en": ""}),
        dict(display=[("en", "AMR")]),
        dict(configurations=[]),
        dict(configurations=[{"id": "x"}]),
        dict(configurations=[vci.CredentialConfiguration("x", "v1"), vci.CredentialConfiguration("x", "v2")]),
        dict(authorization_servers=[]),
        dict(authorization_servers=["http://as.example"]),
    ],
)
def test_issuer_metadata_refuses_bad_configuration(changes):
    with pytest.raises(Malformed):
        _metadata(**changes)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(id="", vct="v"),
        dict(id="x", vct=""),
        dict(id="x", vct="v", signing_algs=("none",)),
        dict(id="x", vct="v", signing_algs=("HS256",)),
        dict(id="x", vct="v", proof_algs=()),
        dict(id="x", vct="v", proof_algs="ES256"),
        dict(id="x", vct="v", proof_algs=("ES256", "ES256")),
        dict(id="x", vct="v", scope=""),
        dict(id="x", vct="v", display=({"locale": "en"},)),
        dict(id="x", vct="v", display=({"name": "a", "locale": "en"}, {"name": "b", "locale": "en"})),
        dict(id="x", vct="v", display={"name": "a"}),
        dict(id="x", vct="v", claims=({"path": []},)),
        dict(id="x", vct="v", claims=({"path": ["a", -1]},)),
        dict(id="x", vct="v", claims=({"path": "a"},)),
        dict(id="x", vct="v", claims=({"path": ["a"]}, {"path": ["a"]})),
        dict(id="x", vct="v", claims=({"path": ["a"], "mandatory": "yes"},)),
        dict(id="x", vct="v", claims=({"path": ["a"], "display": [{"locale": "en"}]},)),
    ],
)
def test_credential_configuration_refuses_bad_values(kwargs):
    with pytest.raises(Malformed):
        vci.CredentialConfiguration(**kwargs)


def test_authorization_server_metadata():
    doc = vci.authorization_server_metadata(issuer=ISSUER, token_endpoint=ISSUER + "/token")
    assert doc == {
        "issuer": ISSUER,
        "token_endpoint": ISSUER + "/token",
        "grant_types_supported": [PRE],
        "token_endpoint_auth_methods_supported": ["none"],
        "pre-authorized_grant_anonymous_access_supported": True,
    }
    assert vci.well_known_url(ISSUER, vci.AS_WELL_KNOWN) == (
        "https://amr.sh.example.gov.cn/.well-known/oauth-authorization-server/issuers/sh-amr"
    )
    with pytest.raises(Malformed):
        vci.authorization_server_metadata(issuer="http://as.example", token_endpoint="https://as.example/t")
    with pytest.raises(Malformed):
        vci.authorization_server_metadata(issuer=ISSUER, token_endpoint="https://u:p@as.example/t")


@pytest.mark.parametrize("suffix", ["", "a/b", "../x", "A", 7])
def test_well_known_suffix_is_one_segment(suffix):
    with pytest.raises(Malformed):
        vci.well_known_url(ISSUER, suffix)
