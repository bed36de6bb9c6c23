"""Interop: OpenID4VP 1.0 between our core (credentials.openid4vp, credentials.dcql) and an independent library.

The independent side is the OpenWallet Foundation's ``@openid4vc/openid4vp`` 0.4.6 (oid4vc-ts), with the
foundation's ``dcql`` package for the DCQL check of the presented claims and ``@sd-jwt/sd-jwt-vc`` for the
SD-JWT VC and its Key Binding JWT, pinned in ``openid4vp_node/package-lock.json`` and driven by scripts in
``openid4vp_node/`` under node (one JSON object on stdin, one on stdout):

* ``verifier.mjs create``: ``Openid4vpVerifier.createOpenId4vpAuthorizationRequest`` makes a signed JAR
  Request Object (``x509_san_dns``, ``direct_post``, a DCQL query for the business licence) with a
  registrar-issued access certificate made here with :mod:`keys.x509`; our Wallet checks it with
  :func:`credentials.openid4vp.verify_request_object` and answers with :func:`present_for_request` /
  :func:`response_form` from a real SD-JWT VC issued here;
* ``verifier.mjs verify``: ``parseOpenid4vpAuthorizationResponse`` (state, vp_token shape), then
  ``SDJwtVcInstance.verify`` (signature, digests, KB-JWT signature / nonce / sd_hash), the KB ``aud`` and
  freshness, and ``DcqlPresentationResult`` (the disclosed claims satisfy the query);
* ``wallet.mjs``: ``Openid4vpClient`` resolves a request made by our :func:`create_request` (x5c signer,
  SAN = client_id, response_uri host) and posts a key-bound presentation with the library's
  ``submitOpenid4vpAuthorizationResponse``; our :func:`verify_response` checks it.

Differences from our implementation that the tests pin (each would show as a failure if the library changed):
the library's default Request Object ``aud`` is the ``request_uri`` (ours requires ``https://self-issued.me/v2``,
s5.8); it makes ``x509_san_dns`` requests without ``client_metadata`` and with a ``response_uri`` off the
certified host (our Wallet refuses both); it accepts a bare string as a ``vp_token`` entry (s8.1 wants an
array); with ``request_uri_method=post`` it posts the wallet metadata's members as form fields instead of one
``wallet_metadata`` parameter and never sends ``wallet_nonce`` (s5.10), yet requires ``wallet_nonce`` back.

The library leaves the certificate chain to the caller's ``verifyJwt`` callback (``common.mjs`` checks it
against the registrar root with node:crypto) and the presentations entirely to the caller. Each failing case
asserts the step and the library's message, or our error ``code`` and ``reason``.

Needs ``node`` (>= 20) and ``npm``; skipped, with the reason, when either is missing. The first run installs
the locked packages with ``npm ci`` into ``openid4vp_node/node_modules`` (kept; reinstalled when the lock
names other versions); an unreachable registry skips, any other install failure fails.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request  # module level: the route below is resolved from its annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from credentials import dcql, jws
from credentials import openid4vp as vp
from credentials.errors import CredentialError
from credentials.sd_jwt import present
from credentials.sd_jwt_vc import issue_vc
from keys.jwk import private_jwk
from keys.signer import SoftwareSigner
from keys.x509 import issue_access_certificate, make_registrar_ca, x5c_encode
from schemas.registry import get_type
from schemas.synthetic import generate_business_licence

NODE_DIR = Path(__file__).parent / "openid4vp_node"
#: The packages the scripts import; each must be installed at the version the lock file names.
LIBRARIES = ("@openid4vc/openid4vp", "@openid4vc/oauth2", "@sd-jwt/sd-jwt-vc", "@sd-jwt/crypto-nodejs", "dcql")
RUN_TIMEOUT = 60

# The library's wallet side checks exp against the real clock (no `now` option), so the whole module runs on it.
NOW = int(time.time())
DAY = 86_400
HOST = "verifier.window.example.gov.cn"
CLIENT_ID = f"x509_san_dns:{HOST}"
RESPONSE_URI = f"https://{HOST}/openid4vp/response/tx-1"
REQUEST_URI = f"https://{HOST}/openid4vp/request/tx-1"
ISS = "https://samr.example.gov.cn/issuers/sh-amr"
LICENCE = get_type("business-licence")
REQUESTED = (("uscc",), ("name",), ("registration", "domicile"))


@pytest.fixture(autouse=True)
def _now() -> None:
    """Each test starts at the time it runs: the library reads the real clock, and the suite may reach
    this module minutes after importing it (request objects live 300 s)."""
    global NOW
    NOW = int(time.time())


# --- node and the locked packages ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node(npm_project) -> str:
    """The node executable, with the scripts' locked packages installed (``npm ci`` the first time)."""
    return npm_project(NODE_DIR, LIBRARIES, "the independent OpenID4VP library")


@dataclass(frozen=True)
class NodeRun:
    returncode: int
    stdout: str
    stderr: str

    def result(self) -> dict[str, Any]:
        """The script's output object; fails the test with the script's error otherwise."""
        assert self.returncode == 0, f"the node script failed (exit {self.returncode}):\n{self.stderr[-4000:]}"
        return json.loads(self.stdout)

    def error(self) -> dict[str, Any]:
        """The script's error line ``{step, name, error, message}`` after a refusal."""
        assert self.returncode == 1, (self.returncode, self.stdout[:500], self.stderr[-2000:])
        assert self.stdout == "", self.stdout[:500]
        return json.loads(self.stderr.strip().splitlines()[-1])


def run(node: str, *argv: str, payload: dict[str, Any]) -> NodeRun:
    done = subprocess.run([node, *argv], cwd=NODE_DIR, input=json.dumps(payload), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    return NodeRun(done.returncode, done.stdout, done.stderr)


# --- keys, certificates and the credential -----------------------------------------------------------------


@dataclass(frozen=True)
class Registrar:
    """A registrar root and one access certificate it issued (leaf key and ``x5c``)."""

    root: Any
    root_key: ec.EllipticCurvePrivateKey
    leaf: SoftwareSigner
    x5c: list[str]

    @property
    def anchors(self) -> list[str]:
        return x5c_encode([self.root])


def registrar(name: str = "eLicence RP Registrar", dns_name: str = HOST) -> Registrar:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_registrar_ca(root_key, common_name=name, not_before=NOW - DAY, not_after=NOW + 3650 * DAY)
    leaf = SoftwareSigner.generate("ES256")
    cert = issue_access_certificate(ca_certificate=root, ca_key=root_key, dns_name=dns_name,
                                    public_key=leaf.private_key.public_key(), organization="浦东新区市场监管局",
                                    not_before=NOW - DAY, not_after=NOW + 365 * DAY)
    return Registrar(root, root_key, leaf, x5c_encode([cert]))


@dataclass(frozen=True)
class Licence:
    claims: dict[str, Any]
    sd_jwt: str
    issuer: SoftwareSigner
    holder: SoftwareSigner


@pytest.fixture(scope="module")
def pki() -> Registrar:
    return registrar()


@pytest.fixture(scope="module")
def licence() -> Licence:
    """A business licence SD-JWT VC issued the way the issuer does (type metadata decides what is disclosable)."""
    claims = generate_business_licence(random.Random(7))
    issuer, holder = SoftwareSigner.generate("ES256"), SoftwareSigner.generate("ES256")
    sd_jwt = issue_vc(claims, vct=LICENCE.vct, issuer=ISS, signer=issuer, disclosable=LICENCE.disclosable_paths(claims),
                      holder_jwk=holder.public_jwk, status=None, iat=NOW - DAY, exp=NOW + 365 * DAY)
    return Licence(claims, sd_jwt, issuer, holder)


# --- the two directions ------------------------------------------------------------------------------------


def node_request(node: str, pki: Registrar, **overrides: Any) -> dict[str, Any]:
    """A request made and signed by the library: ``{authorization_request, request_object, request_payload}``."""
    payload = {"dns_name": HOST, "response_uri": RESPONSE_URI, "request_uri": REQUEST_URI,
               "signing_jwk": private_jwk(pki.leaf.private_key), "x5c": pki.x5c, "vct": LICENCE.vct,
               "claims": [list(p) for p in REQUESTED], "aud": vp.STATIC_AUDIENCE, "now": NOW}
    payload.update(overrides)
    return run(node, "verifier.mjs", "create", payload=payload).result()


def wallet_accepts(created: dict[str, Any], pki: Registrar) -> vp.AuthorizationRequest:
    """Our Wallet: scan the link, check the Request Object fetched from its request_uri."""
    reference = vp.parse_authorization_request_uri(created["authorization_request"])
    assert (reference.client_id, reference.request_uri) == (CLIENT_ID, REQUEST_URI)
    return vp.verify_request_object(created["request_object"], client_id=reference.client_id,
                                    trust_anchors=[pki.root], now=NOW + 1)


def wallet_presentation(request: vp.AuthorizationRequest, licence: Licence) -> str:
    """Our Wallet after consent: the DCQL match decides what to disclose, the presentation is key-bound."""
    found = dcql.match(request.dcql_query, [dcql.Candidate(LICENCE.vct, licence.claims, ref=licence.sd_jwt)])
    assert found.satisfied and found.selection == ("licence",)
    chosen = found.by_query["licence"][0]
    return vp.present_for_request(chosen.candidate.ref, request=request, disclose=chosen.disclose,
                                  holder_signer=licence.holder, now=NOW + 2)


def node_verify(node: str, created: dict[str, Any], form: dict[str, str], licence: Licence,
                now: int | None = None) -> NodeRun:
    return run(node, "verifier.mjs", "verify", payload={
        "request_payload": created["request_payload"], "response": form,
        "issuer_jwk": dict(licence.issuer.public_jwk), "now": NOW + 3 if now is None else now})


def our_request(pki: Registrar, **kw: Any) -> vp.VerifierRequest:
    query = {"credentials": [{"id": "licence", "format": "dc+sd-jwt", "meta": {"vct_values": [LICENCE.vct]},
                              "claims": [{"path": list(p)} for p in REQUESTED]}]}
    return vp.create_request(dns_name=HOST, signer=pki.leaf, x5c=pki.x5c, response_uri=RESPONSE_URI,
                             request_uri=REQUEST_URI, dcql_query=query, now=NOW, client_name="浦东新区行政服务中心", **kw)


def node_wallet(node: str, created: vp.VerifierRequest, pki: Registrar, licence: Licence, **extra: Any) -> NodeRun:
    return run(node, "wallet.mjs", payload={
        "authorization_request": created.uri, "request_object": created.request_object,
        "trust_anchors": pki.anchors, "credential": licence.sd_jwt,
        "holder_jwk": private_jwk(licence.holder.private_key), "now": NOW + 2, **extra})


def resolve_issuer(licence: Licence):
    def resolve(iss: str, header: Any, vct: str):
        assert iss == ISS
        return jws.public_key_from_jwk(licence.issuer.public_jwk)
    return resolve


def expect(exc_type: type[Exception], code: str, reason: str | None, fn: Any, *args: Any, **kw: Any) -> Exception:
    with pytest.raises(exc_type) as info:
        fn(*args, **kw)
    assert info.value.code == code, (info.value.code, info.value)
    if reason is not None:
        assert info.value.reason == reason, (info.value.reason, info.value)
    return info.value


def b64u_json(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# --- 1-3: the library verifies, our Wallet answers -----------------------------------------------------------


def test_our_wallet_answers_the_node_verifier_and_the_library_accepts(node: str, pki: Registrar,
                                                                     licence: Licence) -> None:
    created = node_request(node, pki)
    header, claims = (b64u_json(p) for p in created["request_object"].split(".")[:2])
    # What the library put in the JAR Request Object (RFC 9101; OpenID4VP 1.0 s5, s5.9.3).
    assert header == {"alg": "ES256", "x5c": pki.x5c, "typ": "oauth-authz-req+jwt"}
    assert claims["client_id"] == CLIENT_ID and claims["response_mode"] == "direct_post"
    assert claims["iat"] == NOW and claims["exp"] == NOW + 300 and claims["aud"] == vp.STATIC_AUDIENCE

    request = wallet_accepts(created, pki)
    assert request.nonce == created["request_payload"]["nonce"] and request.state == created["request_payload"]["state"]
    assert request.response_uri == RESPONSE_URI and request.dns_name == HOST
    assert request.verifier_name == "浦东新区市场监管局"  # the registrar's word, from the certificate
    assert request.requested_claims == {"licence": REQUESTED}

    form = vp.response_form(request, {"licence": [wallet_presentation(request, licence)]})
    result = node_verify(node, created, form, licence).result()

    assert result["state"] == request.state and result["client_id"] == CLIENT_ID
    assert result["dcql"] == {"can_be_satisfied": True}
    [shown] = result["presentations"]["licence"]
    assert shown["vct"] == LICENCE.vct
    assert shown["kb"]["aud"] == CLIENT_ID and shown["kb"]["nonce"] == request.nonce
    assert (shown["claims"]["uscc"], shown["claims"]["name"]) == (licence.claims["uscc"], licence.claims["name"])
    # Only the requested member of the selectively disclosable `registration` object was disclosed.
    assert shown["claims"]["registration"] == {"domicile": licence.claims["registration"]["domicile"]}


def test_the_library_default_request_aud_is_refused_by_our_wallet(node: str, pki: Registrar) -> None:
    # Left alone, createOpenId4vpAuthorizationRequest sets aud = request_uri; s5.8 wants
    # "https://self-issued.me/v2" with static discovery, which is how this Wallet is invoked.
    created = node_request(node, pki, aud=None)
    assert b64u_json(created["request_object"].split(".")[1])["aud"] == REQUEST_URI
    expect(vp.InvalidRequestObject, "invalid_request_object", "invalid_aud", wallet_accepts, created, pki)


def test_a_node_request_without_client_metadata_is_refused_by_our_wallet(node: str, pki: Registrar) -> None:
    # The library makes it; s5.9.3 says x509_san_dns Verifier metadata "MUST be obtained from the
    # client_metadata parameter", and s5.1 needs vp_formats_supported from somewhere: our Wallet refuses.
    created = node_request(node, pki, client_metadata=None)
    assert "client_metadata" not in b64u_json(created["request_object"].split(".")[1])
    expect(vp.InvalidRequest, "invalid_request", "missing_client_metadata", wallet_accepts, created, pki)


def test_a_node_request_signed_under_another_registrar_is_refused_by_our_wallet(node: str, pki: Registrar) -> None:
    rogue = registrar("Rogue Registrar")  # same DNS name, same shape, not under our registrar root
    created = node_request(node, rogue)
    expect(vp.InvalidRequest, "invalid_request", "certificate_untrusted", wallet_accepts, created, pki)


def test_a_node_request_for_another_host_is_refused_by_our_wallet(node: str, pki: Registrar) -> None:
    # The library itself accepts a response_uri off the certified host (it checks that only on the wallet side).
    created = node_request(node, pki, response_uri="https://collector.example.net/openid4vp/response")
    expect(vp.InvalidRequest, "invalid_request", "response_uri_mismatch", wallet_accepts, created, pki)


@pytest.fixture(scope="module")
def exchange(node: str, pki: Registrar) -> tuple[dict[str, Any], vp.AuthorizationRequest]:
    """One library request and our Wallet's reading of it, for the refusals below."""
    created = node_request(node, pki)
    return created, wallet_accepts(created, pki)


def test_the_library_rejects_a_response_with_another_state(node: str, exchange: Any, licence: Licence) -> None:
    created, request = exchange
    form = vp.response_form(request, {"licence": [wallet_presentation(request, licence)]})
    form["state"] = vp.new_nonce()
    error = node_verify(node, created, form, licence).error()
    assert (error["step"], error["name"]) == ("response", "Oauth2Error")
    assert "state mismatch" in error["message"]


def test_the_library_rejects_a_presentation_bound_to_another_nonce(node: str, exchange: Any, licence: Licence) -> None:
    created, request = exchange
    text = present(licence.sd_jwt, disclose=REQUESTED, holder_signer=licence.holder, aud=CLIENT_ID,
                   nonce=vp.new_nonce(), now=NOW + 2)
    error = node_verify(node, created, vp.response_form(request, {"licence": [text]}), licence).error()
    assert error["step"] == "presentation" and error["message"] == "Verify Error: Invalid Nonce"


def test_a_presentation_bound_to_another_audience_is_rejected(node: str, exchange: Any, licence: Licence) -> None:
    # The library leaves the KB-JWT aud to its caller; verifier.mjs compares it with the effective client_id.
    created, request = exchange
    text = present(licence.sd_jwt, disclose=REQUESTED, holder_signer=licence.holder, aud="x509_san_dns:other.example",
                   nonce=request.nonce, now=NOW + 2)
    error = node_verify(node, created, vp.response_form(request, {"licence": [text]}), licence).error()
    assert error["step"] == "key_binding" and "is not x509_san_dns:" in error["message"]


def test_the_library_rejects_a_credential_from_another_issuer_key(node: str, exchange: Any, licence: Licence) -> None:
    created, request = exchange
    form = vp.response_form(request, {"licence": [wallet_presentation(request, licence)]})
    stranger = dataclasses.replace(licence, issuer=SoftwareSigner.generate("ES256"))
    error = node_verify(node, created, form, stranger).error()
    assert error["step"] == "presentation" and "Invalid JWT Signature" in error["message"]


@pytest.mark.parametrize(("vp_token", "name", "message"), [
    ({"other": ["<presentation>"]}, "DcqlPresentationResultError", "Query other not found in the dcql query"),
    ({}, "DcqlInvalidPresentationRecordError", "Invalid Presentation record"),
], ids=["answers-another-query", "answers-nothing"])
def test_the_library_rejects_a_vp_token_without_the_requested_credential(
    node: str, exchange: Any, licence: Licence, vp_token: Any, name: str, message: str
) -> None:
    created, request = exchange
    text = wallet_presentation(request, licence)
    # response_form refuses both (an id the query lacks, no presentation), so the form is written by hand.
    token = {qid: [text for _ in items] for qid, items in vp_token.items()}
    form = {"vp_token": json.dumps(token), "state": request.state}
    error = node_verify(node, created, form, licence).error()
    assert (error["step"], error["name"]) == ("dcql", name)
    assert error["message"].startswith(message), error


def test_the_library_rejects_a_presentation_missing_a_requested_claim(node: str, exchange: Any,
                                                                      licence: Licence) -> None:
    created, request = exchange
    text = vp.present_for_request(licence.sd_jwt, request=request, disclose=[("uscc",), ("name",)],
                                  holder_signer=licence.holder, now=NOW + 2)
    error = node_verify(node, created, vp.response_form(request, {"licence": [text]}), licence).error()
    assert (error["step"], error["name"]) == ("dcql", "DcqlInvalidPresentationRecordError")


def test_a_bare_string_vp_token_entry_passes_the_library_but_not_our_verifier(node: str, exchange: Any,
                                                                              licence: Licence) -> None:
    # s8.1: each value "is an array of one or more Presentations". The library still takes a bare string (the
    # shape of drafts before 1.0); our parse_response_form holds to 1.0.
    created, request = exchange
    form = {"vp_token": json.dumps({"licence": wallet_presentation(request, licence)}), "state": request.state}
    assert node_verify(node, created, form, licence).result()["dcql"] == {"can_be_satisfied": True}
    expect(vp.InvalidRequest, "invalid_request", "malformed", vp.parse_response_form, form)


# --- 4: the library as the Wallet, our Verifier -----------------------------------------------------------


def test_the_node_wallet_answers_our_request_and_our_verifier_accepts(node: str, pki: Registrar,
                                                                    licence: Licence) -> None:
    created = our_request(pki)
    result = node_wallet(node, created, pki, licence).result()

    assert result["client"] == {"prefix": "x509_san_dns", "identifier": HOST, "effective": CLIENT_ID}
    assert result["version"] == 100  # the library read our Request Object as OpenID4VP 1.0 final
    posted = result["posted"]
    assert (posted["method"], posted["url"]) == ("POST", RESPONSE_URI)
    assert posted["content_type"] == "application/x-www-form-urlencoded"
    form = parse_qsl(posted["body"], keep_blank_values=True, strict_parsing=True)
    assert sorted(name for name, _ in form) == ["state", "vp_token"]

    verified = vp.verify_response(vp.parse_response_form(form), request=created.request, now=NOW + 3,
                                  resolve_issuer_key=resolve_issuer(licence))
    [credential] = verified.credentials["licence"]
    assert verified.discarded == () and credential.key_bound and credential.vct == LICENCE.vct
    assert credential.kb_payload["aud"] == CLIENT_ID and credential.kb_payload["nonce"] == created.request.nonce
    assert credential.disclosed_paths == (("registration",), ("registration", "domicile"))
    assert credential.claims["registration"] == {"domicile": licence.claims["registration"]["domicile"]}


def test_our_verifier_rejects_the_node_wallet_answer_for_another_nonce(node: str, pki: Registrar,
                                                                       licence: Licence) -> None:
    created = our_request(pki)
    form = parse_qsl(node_wallet(node, created, pki, licence).result()["posted"]["body"])
    expected = dataclasses.replace(created.request, nonce=vp.new_nonce())
    expect(CredentialError, "kb_nonce_mismatch", None, vp.verify_response, vp.parse_response_form(form),
           request=expected, now=NOW + 3, resolve_issuer_key=resolve_issuer(licence))
    other = dataclasses.replace(created.request, state=vp.new_nonce())
    expect(vp.InvalidRequest, "invalid_request", "state_mismatch", vp.verify_response, vp.parse_response_form(form),
           request=other, now=NOW + 3, resolve_issuer_key=resolve_issuer(licence))


def test_the_node_wallet_refuses_our_request_signed_under_another_registrar(node: str, pki: Registrar,
                                                                           licence: Licence) -> None:
    created = our_request(registrar("Rogue Registrar"))
    error = node_wallet(node, created, pki, licence).error()
    # The chain is checked in our verifyJwt callback (common.mjs); the library turns its refusal into this error.
    assert (error["step"], error["name"]) == ("resolve_request", "Oauth2JwtVerificationError")
    assert error["message"].endswith("the certificate chain does not lead to a trust anchor")


def test_the_node_wallet_refuses_a_certificate_for_another_host(node: str, pki: Registrar, licence: Licence) -> None:
    # create_request signs with whatever certificate it is given; the library checks the leaf's dNSName SAN.
    elsewhere = registrar(dns_name="other.example.gov.cn")
    created = our_request(dataclasses.replace(pki, leaf=elsewhere.leaf, x5c=elsewhere.x5c))
    error = node_wallet(node, created, dataclasses.replace(pki, root=elsewhere.root), licence).error()
    assert error["step"] == "resolve_request" and error["error"] == "invalid_request"
    assert "san dns names [other.example.gov.cn] must match" in error["message"]


#: What the node wallet says about itself with request_uri_method=post (s10.1 names).
NODE_WALLET_METADATA = {"vp_formats_supported": {"dc+sd-jwt": {"kb-jwt_alg_values": ["ES256"]}},
                        "client_id_prefixes_supported": ["x509_san_dns"]}


def test_the_node_wallet_posts_to_request_uri_without_the_wallet_metadata_parameter(node: str, pki: Registrar,
                                                                                   licence: Licence) -> None:
    # s5.10: the POST body holds "wallet_metadata" (a JSON object) and "wallet_nonce". @openid4vc/openid4vp 0.4.6
    # sends the metadata's members as top-level form fields instead, so our Verifier finds no wallet_metadata
    # (it ignores the unknown fields, s5.10: "MUST ignore any unrecognized parameters"); the flow still completes.
    created = our_request(pki, request_uri_method="post")
    assert "request_uri_method=post" in created.uri
    result = node_wallet(node, created, pki, licence, wallet_metadata=NODE_WALLET_METADATA).result()
    fetch = result["exchanges"][0]
    assert (fetch["method"].lower(), fetch["url"]) == ("post", REQUEST_URI)
    assert fetch["content_type"] == "application/x-www-form-urlencoded"
    body = parse_qsl(fetch["body"], strict_parsing=True)
    assert sorted(name for name, _ in body) == sorted(NODE_WALLET_METADATA)  # no "wallet_metadata" parameter
    assert vp.parse_request_uri_post(body) == (None, {})
    form = parse_qsl(result["posted"]["body"])
    verified = vp.verify_response(vp.parse_response_form(form), request=created.request, now=NOW + 3,
                                  resolve_issuer_key=resolve_issuer(licence))
    assert verified.credentials["licence"][0].key_bound


def test_the_node_wallet_cannot_complete_a_post_flow_with_its_own_wallet_nonce(node: str, pki: Registrar,
                                                                              licence: Licence) -> None:
    # The library requires its wallet_nonce back in the Request Object but never sends it (s5.10), so a
    # Verifier cannot put it there: ours, reading the POST, finds no wallet_nonce to echo.
    created = our_request(pki, request_uri_method="post")
    nonce = vp.new_nonce()
    error = node_wallet(node, created, pki, licence, wallet_metadata=NODE_WALLET_METADATA, wallet_nonce=nonce).error()
    fetch = error["exchanges"][0]
    assert fetch["method"].lower() == "post" and nonce not in fetch["body"]
    assert vp.parse_request_uri_post(parse_qsl(fetch["body"], strict_parsing=True))[0] is None
    assert error["step"] == "resolve_request" and error["error"] == "invalid_request"
    assert "wallet_nonce" in error["message"]


# --- the wallet service itself, over HTTP --------------------------------------------------------------------


def test_the_wallet_service_answers_the_node_verifier_over_http(node: str, pki: Registrar, licence: Licence,
                                                                sessions) -> None:
    # The same exchange through the wallet's own endpoints: it fetches the library's request object from
    # its request_uri, shows who asks, and posts the answer to its response_uri; the library checks it.
    from fastapi import APIRouter, FastAPI, Response
    from fastapi.testclient import TestClient

    from keys.keystore import generate_kek
    from wallet import api as wallet_api
    from wallet.flows import Network, WalletFlows
    from wallet.service import WalletPolicy, WalletService

    wallet = WalletService(sessions=sessions, kek=generate_kek(), policy=WalletPolicy(scrypt_n=2**4))
    user = wallet.register(phone="13800000001", password="correct horse battery", display_name="张三")
    wallet.set_pin(user, pin="260817")
    enterprise = wallet.claim_enterprise(user, uscc=licence.claims["uscc"], name=licence.claims["name"])
    key = wallet.signer_for(user, purpose="key_proof", enterprise_id=enterprise.id)
    sd = issue_vc(licence.claims, vct=LICENCE.vct, issuer=ISS, signer=licence.issuer,
                  disclosable=LICENCE.disclosable_paths(licence.claims), holder_jwk=key.public_jwk, status=None,
                  iat=NOW - DAY, exp=NOW + 365 * DAY)
    wallet.store_credential(user, credential=sd, vct=LICENCE.vct, issuer=ISS, configuration_id="business-licence",
                            holder_kid=key.kid, enterprise_id=enterprise.id, expires_at=NOW + 365 * DAY)
    # The wallet service signs with the real clock, and this test may run minutes after NOW was read.
    started = int(time.time())
    created = node_request(node, pki, now=started)
    posted: dict[str, str] = {}
    app = FastAPI()
    verifier_site = APIRouter()

    @verifier_site.get("/openid4vp/request/tx-1")
    def request_object() -> Response:
        return Response(created["request_object"], media_type="application/oauth-authz-req+jwt")

    @verifier_site.post("/openid4vp/response/tx-1")
    async def response(request: Request) -> dict[str, str]:
        posted.update(parse_qsl((await request.body()).decode()))
        return {}

    def no_trust_list() -> Any:
        raise AssertionError("answering a request needs no issuer trust list")

    app.include_router(verifier_site)
    flows = WalletFlows(wallet, Network(http=lambda: TestClient(app), trust=no_trust_list,
                                        verifier_roots=lambda: [pki.root]))
    wallet_api.install(app, wallet, flows)
    with TestClient(app) as client:
        token = client.post("/wallet/sessions", json={"phone": "13800000001", "password": "correct horse battery"})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        preview = client.post("/wallet/requests/inspect", headers=headers,
                              json={"request": created["authorization_request"]})
        assert preview.status_code == 200, preview.text
        p = preview.json()
        assert p["verifier_name"] == "浦东新区市场监管局" and p["satisfiable"]
        r = client.post("/wallet/requests/respond", headers=headers, json={
            "request_object": p["request_object"], "client_id": p["client_id"], "consent": True, "pin": "260817"})
        assert r.status_code == 200 and r.json()["outcome"] == "sent", r.text
    result = node_verify(node, created, posted, licence, now=int(time.time())).result()
    [shown] = result["presentations"]["licence"]
    assert shown["kb"]["aud"] == CLIENT_ID and shown["kb"]["nonce"] == created["request_payload"]["nonce"]
    assert started <= shown["kb"]["iat"] <= int(time.time())
    assert shown["claims"]["registration"] == {"domicile": licence.claims["registration"]["domicile"]}
