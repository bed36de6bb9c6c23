"""Interop: the wallet's OpenID4VCI client against an independent minimal issuer written from the spec.

The issuer below is written only from OpenID for Verifiable Credential Issuance 1.0 (sections 4.1
offer, 6 token, 7 nonce, 8 credential, 12.2 metadata, Appendix F.1 key proofs) and RFC 8414. It uses
neither ``issuer/`` nor ``credentials/``: proofs are checked with jwcrypto and credentials issued with
the IETF SD-JWT reference implementation (PyPI ``sd-jwt``, import ``sd_jwt``), bound (``cnf.jwk``)
to the key of the proof. Its identifier has a path and its authorization server is a separate
identifier, so the well-known path insertion rule (12.2.2, RFC 8414 s3.1) is exercised too.
"""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
import pytest

pytest.importorskip("sd_jwt.issuer")
from jwcrypto.jwk import JWK  # noqa: E402  (a dependency of the reference implementation)
from jwcrypto.jws import JWS, InvalidJWSSignature  # noqa: E402
from sd_jwt.common import SDObj  # noqa: E402
from sd_jwt.issuer import SDJWTIssuer  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from credentials.trust import TrustedIssuer, create_trust_list, load_trust_list  # noqa: E402
from keys.jwk import jwks, private_jwk, thumbprint  # noqa: E402
from keys.signer import SoftwareSigner  # noqa: E402
from schemas.synthetic import generate_business_licence  # noqa: E402
from wallet import oid4vci_client as wc  # noqa: E402

NOW = 1_790_000_000
HOST = "https://vci.interop.example"
ISSUER = f"{HOST}/tenant-a"  # a Credential Issuer Identifier with a path
AUTH_SERVER = f"{HOST}/as"
VCT = "https://elicence.cn/vct/business-licence"
PIN = "493817"
OPERATOR = SoftwareSigner.generate("ES256")


# --- the minimal issuer ------------------------------------------------------------------------------------


def oauth_error(code: str, description: str, status: int = 400) -> JSONResponse:
    # RFC 6749 s5.2 / OpenID4VCI 6.3, 8.3.1.2: {"error": ..., "error_description": ...}, not cached.
    return JSONResponse({"error": code, "error_description": description}, status_code=status,
                        headers={"Cache-Control": "no-store"})


@dataclass
class MinimalIssuer:
    """One offer (code -> claims), single-use codes, tokens and nonces; ``bind_to`` overrides cnf for tests."""

    signing_key: JWK
    kid: str
    with_nonce_endpoint: bool = True
    bind_to: JWK | None = None
    unbound: bool = False
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    nonces: set[str] = field(default_factory=set)
    offers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def new_offer(self, claims: dict[str, Any], *, pin: str | None = PIN) -> dict[str, Any]:
        """A Credential Offer object (4.1.1) with a Pre-Authorized Code."""
        code = secrets.token_urlsafe(24)
        self.codes[code] = {"claims": claims, "pin": pin}
        grant: dict[str, Any] = {"pre-authorized_code": code}
        if pin is not None:
            grant["tx_code"] = {"length": len(pin), "input_mode": "numeric", "description": "PIN sent by SMS"}
        offer = {"credential_issuer": ISSUER, "credential_configuration_ids": ["licence_sd_jwt"],
                 "grants": {"urn:ietf:params:oauth:grant-type:pre-authorized_code": grant}}
        self.offers[code[:12]] = offer
        return offer

    # 12.2.4 Credential Issuer Metadata
    async def issuer_metadata(self, request: Request) -> JSONResponse:
        meta: dict[str, Any] = {
            "credential_issuer": ISSUER,
            "authorization_servers": [AUTH_SERVER],
            "credential_endpoint": f"{ISSUER}/credential",
            "credential_configurations_supported": {
                "licence_sd_jwt": {
                    "format": "dc+sd-jwt",
                    "vct": VCT,
                    "cryptographic_binding_methods_supported": ["jwk"],
                    "credential_signing_alg_values_supported": ["ES256"],
                    "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": ["ES256", "EdDSA"]}},
                },
                "other_format": {"format": "mso_mdoc", "doctype": "org.iso.18013.5.1.mDL"},
            },
        }
        if self.with_nonce_endpoint:
            meta["nonce_endpoint"] = f"{ISSUER}/nonce"
        return JSONResponse(meta)

    # RFC 8414 s2 Authorization Server Metadata
    async def as_metadata(self, request: Request) -> JSONResponse:
        return JSONResponse({
            "issuer": AUTH_SERVER,
            "token_endpoint": f"{AUTH_SERVER}/token",
            "grant_types_supported": ["urn:ietf:params:oauth:grant-type:pre-authorized_code"],
            "pre-authorized_grant_anonymous_access_supported": True,
        })

    # 4.1.3 Credential Offer by reference
    async def offer_by_reference(self, request: Request) -> JSONResponse:
        offer = self.offers.get(request.path_params["ref"])
        if offer is None:
            return oauth_error("invalid_request", "no such offer", 404)
        return JSONResponse(offer)

    # 6 Token Endpoint
    async def token(self, request: Request) -> JSONResponse:
        if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return oauth_error("invalid_request", "form encoding required")
        form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:pre-authorized_code":
            return oauth_error("unsupported_grant_type", "only the pre-authorized code grant")
        entry = self.codes.get(form.get("pre-authorized_code", ""))
        if entry is None:
            return oauth_error("invalid_grant", "Pre-Authorized Code is invalid or was already used")
        if entry["pin"] is not None and form.get("tx_code") != entry["pin"]:
            # 6.3: invalid_grant "the End-User provides the wrong Pre-Authorized Code or ... Transaction Code".
            return oauth_error("invalid_grant", "the Transaction Code is wrong")
        del self.codes[form["pre-authorized_code"]]
        access_token = secrets.token_urlsafe(32)
        self.tokens[access_token] = entry
        return JSONResponse({"access_token": access_token, "token_type": "Bearer", "expires_in": 300},
                            headers={"Cache-Control": "no-store"})

    # 7 Nonce Endpoint
    async def nonce(self, request: Request) -> JSONResponse:
        c_nonce = secrets.token_urlsafe(16)
        self.nonces.add(c_nonce)
        return JSONResponse({"c_nonce": c_nonce}, headers={"Cache-Control": "no-store"})

    # 8 Credential Endpoint
    async def credential(self, request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        entry = self.tokens.pop(auth[7:], None) if auth.startswith("Bearer ") else None
        if entry is None:
            return oauth_error("invalid_token", "unknown access token", 401)
        body = json.loads(await request.body())
        if body.get("credential_configuration_id") != "licence_sd_jwt":
            return oauth_error("unknown_credential_configuration", "unknown configuration")
        proofs = body.get("proofs", {}).get("jwt", [])
        if len(proofs) != 1:
            return oauth_error("invalid_proof", "exactly one jwt proof expected")
        holder = self.check_proof(proofs[0])
        if isinstance(holder, JSONResponse):
            return holder
        claims = entry["claims"]
        user_claims: dict[Any, Any] = {"iss": ISSUER, "vct": VCT, "iat": NOW, "exp": NOW + 365 * 86400}
        user_claims.update({SDObj(name): value for name, value in claims.items()})
        issued = SDJWTIssuer(user_claims, self.signing_key, holder_key=None if self.unbound else self.bind_to or holder,
                             extra_header_parameters={"typ": "dc+sd-jwt", "kid": self.kid})
        return JSONResponse({"credentials": [{"credential": issued.sd_jwt_issuance}]},
                            headers={"Cache-Control": "no-store"})

    def check_proof(self, proof: str) -> JWK | JSONResponse:
        """Appendix F.4: typ, alg, jwk header, signature, aud, iat, nonce."""
        token = JWS()
        try:
            token.deserialize(proof)
            header = token.jose_header
            if header.get("typ") != "openid4vci-proof+jwt" or header.get("alg") not in ("ES256", "EdDSA"):
                return oauth_error("invalid_proof", "bad typ or alg")
            if "kid" in header or "x5c" in header or "jwk" not in header:
                return oauth_error("invalid_proof", "a jwk header is required")
            key = JWK(**header["jwk"])
            token.verify(key)
        except (InvalidJWSSignature, ValueError, KeyError, TypeError) as exc:
            return oauth_error("invalid_proof", f"proof rejected: {type(exc).__name__}")
        payload = json.loads(token.payload)
        if payload.get("aud") != ISSUER or "iss" in payload or not isinstance(payload.get("iat"), int):
            return oauth_error("invalid_proof", "aud, iss or iat is wrong")
        if self.with_nonce_endpoint:
            if payload.get("nonce") not in self.nonces:
                return oauth_error("invalid_nonce", "unknown c_nonce")
            self.nonces.discard(payload["nonce"])
        return key

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/.well-known/openid-credential-issuer/tenant-a", self.issuer_metadata),
            Route("/.well-known/oauth-authorization-server/as", self.as_metadata),
            Route("/tenant-a/offers/{ref}", self.offer_by_reference),
            Route("/as/token", self.token, methods=["POST"]),
            Route("/tenant-a/nonce", self.nonce, methods=["POST"]),
            Route("/tenant-a/credential", self.credential, methods=["POST"]),
        ])


# --- the wallet against it ---------------------------------------------------------------------------------


@dataclass
class Interop:
    issuer: MinimalIssuer
    signer: SoftwareSigner
    client: TestClient

    def trust(self, *, key: dict[str, Any] | None = None, days: int = 1):
        entry = TrustedIssuer(id=ISSUER, name={"en": "Interop issuer"}, region="000000", vcts=(VCT,),
                              jwks=tuple(jwks([key or self.signer.public_jwk])["keys"]))
        token = create_trust_list([entry], signer=OPERATOR, iss="https://trust.example.gov.cn", iat=NOW,
                                  exp=NOW + days * 86400, sequence=1)
        return load_trust_list(token, operator_key=OPERATOR.public_jwk, now=NOW)

    def receive(self, link: str, *, pin: str | None = PIN, holder: SoftwareSigner | None = None, **kw: Any):
        return wc.receive(link, tx_code=pin, holder=holder or SoftwareSigner.generate("ES256"), http=self.client,
                          trust=kw.pop("trust", None) or self.trust(), now=NOW, **kw)


def by_value(offer: dict[str, Any]) -> str:
    return "openid-credential-offer://?credential_offer=" + quote(json.dumps(offer), safe="")


@pytest.fixture
def interop():
    signer = SoftwareSigner.generate("ES256")
    issuer = MinimalIssuer(signing_key=JWK(**private_jwk(signer.private_key)), kid=signer.kid)
    with TestClient(issuer.app(), base_url=HOST) as client:
        yield Interop(issuer, signer, client)


def licence(seed: int) -> dict[str, Any]:
    return generate_business_licence(random.Random(seed))


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_the_wallet_receives_and_verifies_a_reference_implementation_credential(interop, alg):
    claims = licence(1)
    holder = SoftwareSigner.generate(alg)
    got = interop.receive(by_value(interop.issuer.new_offer(claims)), holder=holder)
    assert got.issuer == ISSUER and got.vct == VCT and got.configuration_id == "licence_sd_jwt"
    assert got.holder_kid == thumbprint(holder.public_jwk) == thumbprint(got.claims["cnf"]["jwk"])
    assert {k: got.claims[k] for k in claims} == claims
    assert got.issuer_kid == interop.signer.kid and got.expires_at == NOW + 365 * 86400
    assert got.status is None


def test_an_offer_by_reference_and_no_pin(interop):
    offer = interop.issuer.new_offer(licence(2), pin=None)
    ref = next(k for k, v in interop.issuer.offers.items() if v is offer)
    link = "openid-credential-offer://?credential_offer_uri=" + quote(f"{ISSUER}/offers/{ref}", safe="")
    assert interop.receive(link, pin="ignored").claims["uscc"] == licence(2)["uscc"]


def test_an_issuer_without_a_nonce_endpoint(interop):
    interop.issuer.with_nonce_endpoint = False
    assert interop.receive(by_value(interop.issuer.new_offer(licence(3)))).vct == VCT


def test_a_wrong_pin_and_a_used_code(interop):
    link = by_value(interop.issuer.new_offer(licence(4)))
    with pytest.raises(wc.TxCodeInvalid) as info:
        interop.receive(link, pin="000000" if PIN != "000000" else "111111")
    assert info.value.code == "tx_code_invalid" and info.value.issuer_error == "invalid_grant"
    interop.receive(link)
    with pytest.raises(wc.OfferUnavailable) as info:
        interop.receive(link)
    assert info.value.code == "offer_unavailable"


def test_a_credential_bound_to_another_key(interop):
    interop.issuer.bind_to = JWK(**dict(SoftwareSigner.generate("ES256").public_jwk))
    with pytest.raises(wc.CredentialWrongHolder) as info:
        interop.receive(by_value(interop.issuer.new_offer(licence(5))))
    assert info.value.code == "credential_wrong_holder"


def test_a_credential_bound_to_no_key(interop):
    interop.issuer.unbound = True
    with pytest.raises(wc.CredentialWrongHolder) as info:
        interop.receive(by_value(interop.issuer.new_offer(licence(8))))
    assert info.value.code == "credential_wrong_holder" and "no cnf.jwk" in info.value.detail


def test_a_key_not_on_the_trust_list(interop):
    other = SoftwareSigner.generate("ES256").public_jwk
    with pytest.raises(wc.CredentialInvalid) as info:
        interop.receive(by_value(interop.issuer.new_offer(licence(6))), trust=interop.trust(key=other))
    assert info.value.code == "credential_invalid" and info.value.credential_code == "unknown_key"


def test_claims_that_do_not_fit_the_type(interop):
    claims = {**licence(7), "uscc": "91310000MA1FL0EXA0"}  # a wrong GB 32100 check character
    with pytest.raises(wc.CredentialInvalid) as info:
        interop.receive(by_value(interop.issuer.new_offer(claims)))
    assert info.value.credential_code == "schema_invalid"


def test_an_expired_credential_is_not_stored(interop):
    # This issuer does not check the proof's iat, so a wallet clock past the credential's exp reaches
    # the wallet's own validity check.
    link = by_value(interop.issuer.new_offer(licence(9)))
    with pytest.raises(wc.CredentialInvalid) as info:
        wc.receive(link, tx_code=PIN, holder=SoftwareSigner.generate(), http=interop.client,
                   trust=interop.trust(days=400), now=NOW + 366 * 86400)
    assert info.value.credential_code == "expired"


def test_an_expired_trust_list_is_refused_before_any_request(interop):
    link = by_value(interop.issuer.new_offer(licence(10)))
    with pytest.raises(wc.TrustListExpired) as info:
        nowhere = httpx.Client(transport=httpx.MockTransport(lambda request: pytest.fail(f"requested {request.url}")))
        wc.receive(link, tx_code=PIN, holder=SoftwareSigner.generate(), http=nowhere, trust=interop.trust(),
                   now=NOW + 86400)
    assert info.value.code == "trust_list_expired"


def test_the_production_client_follows_no_redirect_and_has_timeouts():
    with wc.http_client(timeout=3.0) as client:
        assert client.follow_redirects is False
        assert (client.timeout.connect, client.timeout.read) == (3.0, 3.0)
