"""The wallet's OpenID4VCI client (wallet/oid4vci_client.py) against this project's issuer, in process.

The issuer is the deployment's app (``elicence.app.create_app`` over an ``IssuerService`` on the test's
database, the demo authorities of ``seed_demo``, a clock that stands still); the wallet talks to it
only over HTTP through Starlette's ``TestClient``. Misbehaving issuers are the real one behind an
``httpx`` transport that rewrites one exchange (a swapped proof, garbage, a redirect, a timeout).
Every refusal asserts the error ``code``, and where it matters that the PIN or the offer was not spent.
Runs on SQLite, and on PostgreSQL when ``ELICENCE_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from credentials import openid4vci as o4
from credentials import sd_jwt
from credentials.jws import parse as parse_jws
from credentials.trust import TrustedIssuer, TrustList, create_trust_list, load_trust_list
from keys.jwk import jwks, thumbprint
from keys.signer import SoftwareSigner
from schemas.registry import TypeRegistry, all_types
from schemas.synthetic import generate_business_licence
from wallet import oid4vci_client as wc

PUBLIC_URL = "https://issuer.example.gov.cn"
SH = f"{PUBLIC_URL}/issuers/sh-amr"
ZJ = f"{PUBLIC_URL}/issuers/zj-amr"
BL_VCT = "https://elicence.cn/vct/business-licence"
STAFF_VCT = "https://elicence.cn/vct/staff-authorisation"
OPERATOR = SoftwareSigner.generate("ES256")


class Tap(httpx.BaseTransport):
    """A transport in front of the issuer app: records each request; ``rewrite`` may answer instead."""

    def __init__(self, inner: httpx.BaseTransport, rewrite: Callable[[httpx.Request, Callable], httpx.Response] | None):
        self.inner = inner
        self.rewrite = rewrite
        self.seen: list[tuple[str, str]] = []
        self.hosts: set[str] = set()

    def forward(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        return response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        self.hosts.add(request.url.host)
        if self.rewrite is None:
            return self.forward(request)
        return self.rewrite(request, self.forward)


@dataclass
class Issuer:
    """The issuer app of one test and the helpers a wallet test needs."""

    client: Any
    clock: Any
    keys: dict[str, str]

    @property
    def now(self) -> int:
        return int(self.clock.now.timestamp())

    def admin(self, slug: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[slug]}"}

    def offer(self, seed: int = 1, *, slug: str = "sh-amr", **extra: Any) -> dict[str, Any]:
        """Import record ``seed`` and create an offer for it; the operator's view, with the PIN."""
        claims = generate_business_licence(random.Random(seed))
        r = self.client.post(f"/issuers/{slug}/admin/records", json={"type": "business-licence", "claims": claims},
                             headers=self.admin(slug))
        assert r.status_code == 201, r.text
        r = self.client.post(f"/issuers/{slug}/admin/offers",
                             json={"type": "business-licence", "uscc": claims["uscc"], **extra},
                             headers=self.admin(slug))
        assert r.status_code == 201, r.text
        return {**r.json(), "claims": claims}

    def offer_state(self, offer: dict[str, Any], slug: str = "sh-amr") -> dict[str, Any]:
        r = self.client.get(f"/issuers/{slug}/admin/offers/{offer['offer_id']}", headers=self.admin(slug))
        assert r.status_code == 200, r.text
        return r.json()

    def trust(self, entries: dict[str, Any] | None = None, *, keys: dict[str, list] | None = None) -> TrustList:
        """A trust list naming each slug with the vcts given (default: all it issues) and its published keys."""
        entries = {"sh-amr": None, "zj-amr": None} if entries is None else entries
        issuers = []
        for slug, vcts in entries.items():
            meta = self.client.get(f"/.well-known/openid-credential-issuer/issuers/{slug}").json()
            published = self.client.get(f"/.well-known/jwt-vc-issuer/issuers/{slug}").json()["jwks"]["keys"]
            issuers.append(TrustedIssuer(
                id=meta["credential_issuer"], name={"zh-CN": slug, "en": slug}, region="310000",
                vcts=tuple(vcts or sorted({c["vct"] for c in meta["credential_configurations_supported"].values()})),
                jwks=tuple((keys or {}).get(slug, published)),
            ))
        token = create_trust_list(issuers, signer=OPERATOR, iss="https://trust.example.gov.cn", iat=self.now,
                                  exp=self.now + 86400, sequence=1)
        return load_trust_list(token, operator_key=OPERATOR.public_jwk, now=self.now)

    def http(self, rewrite: Callable | None = None) -> tuple[httpx.Client, Tap]:
        tap = Tap(self.client._transport, rewrite)
        # follow_redirects=True as TestClient's default: the wallet must refuse redirects per request.
        return httpx.Client(transport=tap, follow_redirects=True), tap

    def receive(self, link: str | bytes, *, pin: str | None, holder: SoftwareSigner | None = None,
                trust: TrustList | None = None, rewrite: Callable | None = None, **kw: Any) -> wc.Received:
        http, _ = self.http(rewrite)
        with http:
            return wc.receive(link, tx_code=pin, holder=holder or SoftwareSigner.generate("ES256"), http=http,
                              trust=trust or self.trust(), now=kw.pop("now", self.now), **kw)


@pytest.fixture
def issuer(sessions, database_url, tmp_path, clock):
    """The issuer app on the test's database (SQLite; PostgreSQL too when configured), on the test clock."""
    from fastapi.testclient import TestClient

    from elicence.app import create_app, seed_demo
    from issuer.service import IssuerService
    from keys.keystore import generate_kek

    service = IssuerService(sessions=sessions, kek=generate_kek(), public_url=PUBLIC_URL, clock=clock)
    keys = {o.authority: o.api_key for o in seed_demo(service, tmp_path)}
    with TestClient(create_app(issuer=service)) as client:
        yield Issuer(client, clock, keys)


def refused(code: str, call: Callable[[], Any]) -> wc.ReceiveError:
    with pytest.raises(wc.ReceiveError) as info:
        call()
    assert info.value.code == code, (info.value.code, info.value.detail)
    assert info.value.detail
    return info.value


def on(path_end: str, answer: Callable[[httpx.Request, Callable], httpx.Response]) -> Callable:
    """A rewrite that answers requests whose path ends with ``path_end`` and forwards the rest."""

    def rewrite(request: httpx.Request, forward: Callable) -> httpx.Response:
        return answer(request, forward) if request.url.path.endswith(path_end) else forward(request)

    return rewrite


# --- success ---------------------------------------------------------------------------------------------


def test_offer_by_value_gives_a_verified_credential_bound_to_the_holder(issuer):
    offer = issuer.offer(1)
    holder = SoftwareSigner.generate("ES256")
    got = issuer.receive(offer["offer_uri"], pin=offer["tx_code"], holder=holder)
    assert got.issuer == SH and got.vct == BL_VCT and got.configuration_id == "business-licence"
    assert got.holder_kid == thumbprint(holder.public_jwk)
    assert got.claims["uscc"] == offer["claims"]["uscc"]
    assert got.claims["name"] == offer["claims"]["name"]
    assert got.claims["cnf"]["jwk"] == dict(holder.public_jwk)
    assert got.expires_at > issuer.now and got.issued_at == issuer.now
    assert got.status is not None and got.status.uri.startswith(f"{SH}/status/")
    assert got.issuer_kid == parse_jws(got.credential.split("~")[0]).header["kid"]
    # Every disclosure the issuer sent is in the credential the wallet stores.
    assert len(sd_jwt.SdJwt.parse(got.credential).disclosures) >= 5
    assert issuer.offer_state(offer)["state"] == "issued"


def test_offer_by_reference_is_fetched_from_the_issuer(issuer):
    offer = issuer.offer(2)
    http, tap = issuer.http()
    with http:
        got = wc.receive(offer["offer_reference_uri"], tx_code=offer["tx_code"],
                         holder=SoftwareSigner.generate("EdDSA"), http=http, trust=issuer.trust(), now=issuer.now)
    assert got.claims["uscc"] == offer["claims"]["uscc"]
    assert tap.seen[0] == ("GET", f"/issuers/sh-amr/offers/{offer['offer_id']}")
    assert [p for _, p in tap.seen[1:]] == [
        "/.well-known/openid-credential-issuer/issuers/sh-amr",
        "/.well-known/oauth-authorization-server/issuers/sh-amr",
        "/issuers/sh-amr/token",
        "/issuers/sh-amr/nonce",
        "/issuers/sh-amr/credential",
    ]


def test_qr_image_of_the_offer_is_read(issuer):
    offer = issuer.offer(3)
    png = issuer.client.get(f"/issuers/sh-amr/admin/offers/{offer['offer_id']}/qr.png", headers=issuer.admin("sh-amr"))
    assert png.headers["content-type"] == "image/png"
    got = issuer.receive(png.content, pin=offer["tx_code"])
    assert got.claims["uscc"] == offer["claims"]["uscc"]


def test_an_invalid_nonce_is_retried_once_with_a_fresh_nonce(issuer):
    offer = issuer.offer(4)
    calls = {"credential": 0}

    def stale_nonce_first(request, forward):
        calls["credential"] += 1
        if calls["credential"] == 1:
            return httpx.Response(400, json={"error": "invalid_nonce", "error_description": "stale"})
        return forward(request)

    http, tap = issuer.http(on("/credential", stale_nonce_first))
    with http:
        got = wc.receive(offer["offer_uri"], tx_code=offer["tx_code"], holder=SoftwareSigner.generate(), http=http,
                         trust=issuer.trust(), now=issuer.now)
    assert got.vct == BL_VCT
    assert [p for _, p in tap.seen].count("/issuers/sh-amr/nonce") == 2


# --- the offer and the PIN -----------------------------------------------------------------------------


def test_a_wrong_pin_is_tx_code_invalid_with_attempts_left_and_the_offer_stays_usable(issuer):
    offer = issuer.offer(5)
    wrong = "0" * 6 if offer["tx_code"] != "0" * 6 else "1" * 6
    error = refused("tx_code_invalid", lambda: issuer.receive(offer["offer_uri"], pin=wrong))
    assert isinstance(error, wc.TxCodeInvalid) and error.attempts_left == 4
    assert error.issuer_error == "invalid_grant"
    assert issuer.offer_state(offer)["state"] == "offered"
    assert issuer.receive(offer["offer_uri"], pin=offer["tx_code"]).vct == BL_VCT


def test_too_many_wrong_pins_make_the_offer_unavailable(issuer):
    offer = issuer.offer(6)
    wrong = "0" * 6 if offer["tx_code"] != "0" * 6 else "1" * 6
    for left in (4, 3, 2, 1, 0):
        assert refused("tx_code_invalid", lambda: issuer.receive(offer["offer_uri"], pin=wrong)).attempts_left == left
    refused("offer_unavailable", lambda: issuer.receive(offer["offer_uri"], pin=offer["tx_code"]))


def test_a_missing_or_impossible_pin_is_refused_without_spending_an_attempt(issuer):
    offer = issuer.offer(7)
    http, tap = issuer.http()
    trust = issuer.trust()
    for pin, code in ((None, "tx_code_required"), ("", "tx_code_required"), ("12345", "tx_code_invalid"),
                      ("12345a", "tx_code_invalid"), ("1234567", "tx_code_invalid")):
        error = refused(code, lambda: wc.receive(offer["offer_uri"], tx_code=pin, holder=SoftwareSigner.generate(),
                                                 http=http, trust=trust, now=issuer.now))
        assert error.attempts_left is None
    assert tap.seen == []
    assert issuer.offer_state(offer)["pin_attempts"] == 0


def test_a_replayed_offer_is_unavailable_by_value_and_by_reference(issuer):
    offer = issuer.offer(8)
    issuer.receive(offer["offer_uri"], pin=offer["tx_code"])
    error = refused("offer_unavailable", lambda: issuer.receive(offer["offer_uri"], pin=offer["tx_code"]))
    assert error.issuer_error == "invalid_grant"
    refused("offer_unavailable", lambda: issuer.receive(offer["offer_reference_uri"], pin=offer["tx_code"]))


def test_an_expired_offer_is_unavailable_by_value_and_by_reference(issuer):
    offer = issuer.offer(9, expires_in=600)
    issuer.clock.advance(601)
    refused("offer_unavailable", lambda: issuer.receive(offer["offer_uri"], pin=offer["tx_code"]))
    refused("offer_unavailable", lambda: issuer.receive(offer["offer_reference_uri"], pin=offer["tx_code"]))


@pytest.mark.parametrize("link", [
    "openid-credential-offer://?foo=bar",
    "https://issuer.example.gov.cn/issuers/sh-amr/offers/x",
    "openid-credential-offer://?credential_offer=%7B%22credential_issuer%22%3A1%7D",
    "openid-credential-offer://?credential_offer_uri=https%3A%2F%2Fissuer.example.gov.cn%2Fo%23frag",
    b"\x89PNG\r\n\x1a\n not really",
], ids=["parameter", "not-a-deep-link", "bad-offer-json", "fragment", "not-an-image"])
def test_what_is_not_an_offer_is_offer_invalid(issuer, link):
    http, tap = issuer.http()
    refused("offer_invalid", lambda: wc.receive(link, tx_code="123456", holder=SoftwareSigner.generate(), http=http,
                                                trust=issuer.trust(), now=issuer.now))
    assert tap.seen == []


def test_an_image_without_a_qr_code_is_offer_invalid(issuer):
    from PIL import Image
    import io

    out = io.BytesIO()
    Image.new("L", (64, 64), 255).save(out, format="PNG")
    refused("offer_invalid", lambda: issuer.receive(out.getvalue(), pin="123456"))


def test_an_offer_reference_on_a_host_of_no_trusted_issuer_is_not_fetched(issuer):
    link = o4.offer_reference_uri("https://elsewhere.example/offers/1")
    http, tap = issuer.http()
    error = refused("issuer_not_trusted", lambda: wc.receive(link, tx_code="123456", holder=SoftwareSigner.generate(),
                                                             http=http, trust=issuer.trust(), now=issuer.now))
    assert tap.seen == [] and error.reason == "untrusted_issuer"


def test_http_is_refused_unless_allowed(issuer):
    link = o4.offer_uri(o4.CredentialOffer("http://127.0.0.1:8000/issuers/sh-amr", ("business-licence",), "code",
                                           o4.TxCode(length=6, input_mode="numeric")))
    http, tap = issuer.http()
    refused("offer_invalid", lambda: wc.receive(link, tx_code="123456", holder=SoftwareSigner.generate(), http=http,
                                                trust=issuer.trust(), now=issuer.now))
    # Allowed, the loopback issuer is still not on the trust list: refused before any request.
    refused("issuer_not_trusted", lambda: wc.receive(link, tx_code="123456", holder=SoftwareSigner.generate(),
                                                     http=http, trust=issuer.trust(), now=issuer.now, allow_http=True))
    assert tap.seen == []


# --- trust and type ------------------------------------------------------------------------------------


def test_an_issuer_not_on_the_trust_list_is_refused_before_the_pin_is_sent(issuer):
    offer = issuer.offer(10)
    http, tap = issuer.http()
    error = refused("issuer_not_trusted", lambda: wc.receive(
        offer["offer_uri"], tx_code=offer["tx_code"], holder=SoftwareSigner.generate(), http=http,
        trust=issuer.trust({"zj-amr": None}), now=issuer.now))
    assert error.reason == "untrusted_issuer"
    assert tap.seen == []
    state = issuer.offer_state(offer)
    assert (state["state"], state["pin_attempts"]) == ("offered", 0)


def test_an_issuer_not_allowed_for_the_type_is_refused_before_the_pin_is_sent(issuer):
    offer = issuer.offer(11)
    http, tap = issuer.http()
    error = refused("issuer_not_trusted", lambda: wc.receive(
        offer["offer_uri"], tx_code=offer["tx_code"], holder=SoftwareSigner.generate(), http=http,
        trust=issuer.trust({"sh-amr": [STAFF_VCT]}), now=issuer.now))
    assert error.reason == "issuer_not_authorized_for_type"
    assert not any(p.endswith("/token") for _, p in tap.seen)
    assert issuer.offer_state(offer)["state"] == "offered"


def test_an_unknown_type_is_refused_before_the_pin_is_sent(issuer):
    offer = issuer.offer(12)
    registry = TypeRegistry(tuple(t for t in all_types() if t.vct != BL_VCT))
    http, tap = issuer.http()
    refused("credential_type_unknown", lambda: wc.receive(
        offer["offer_uri"], tx_code=offer["tx_code"], holder=SoftwareSigner.generate(), http=http,
        trust=issuer.trust(), now=issuer.now, types=registry))
    assert not any(p.endswith("/token") for _, p in tap.seen)
    assert issuer.offer_state(offer)["state"] == "offered"


def test_the_issuer_key_comes_from_the_trust_list_not_from_the_issuer(issuer):
    # The trust list names sh-amr with another key under the real kid: the signature cannot verify.
    real = issuer.client.get("/.well-known/jwt-vc-issuer/issuers/sh-amr").json()["jwks"]["keys"]
    impostor = {**jwks([SoftwareSigner.generate("ES256").public_jwk])["keys"][0], "kid": real[0]["kid"]}
    offer = issuer.offer(13)
    error = refused("credential_invalid", lambda: issuer.receive(
        offer["offer_uri"], pin=offer["tx_code"], trust=issuer.trust(keys={"sh-amr": [impostor]})))
    assert error.credential_code == "invalid_signature"
    # A trust list without the issuer's current kid: unknown_key.
    offer = issuer.offer(14)
    other = jwks([SoftwareSigner.generate("ES256").public_jwk])["keys"]
    error = refused("credential_invalid", lambda: issuer.receive(
        offer["offer_uri"], pin=offer["tx_code"], trust=issuer.trust(keys={"sh-amr": other})))
    assert error.credential_code == "unknown_key"


# --- the issuer misbehaves ----------------------------------------------------------------------------


def test_a_credential_bound_to_another_key_is_refused(issuer):
    """The transport re-signs the key proof with another key: the issuer binds the credential to that key."""
    offer = issuer.offer(15)
    other = SoftwareSigner.generate("ES256")

    def swap_proof(request, forward):
        body = json.loads(request.content)
        nonce = parse_jws(body["proofs"]["jwt"][0]).payload["nonce"]
        body["proofs"]["jwt"] = [o4.make_proof(other, audience=SH, nonce=nonce, iat=issuer.now)]
        return forward(httpx.Request("POST", request.url, headers={"Authorization": request.headers["Authorization"]},
                                     json=body))

    error = refused("credential_wrong_holder", lambda: issuer.receive(offer["offer_uri"], pin=offer["tx_code"],
                                                                      rewrite=on("/credential", swap_proof)))
    assert thumbprint(other.public_jwk) in error.detail


def test_a_credential_of_another_trusted_issuer_is_refused(issuer):
    """The response carries a valid credential for this holder, but issued by zj-amr, not the offer's issuer."""
    holder = SoftwareSigner.generate("ES256")
    zj_offer = issuer.offer(16, slug="zj-amr")
    elsewhere = issuer.receive(zj_offer["offer_uri"], pin=zj_offer["tx_code"], holder=holder)
    assert elsewhere.issuer == ZJ
    offer = issuer.offer(17)

    def swap_credential(request, forward):
        forward(request)
        return httpx.Response(200, json=o4.credential_response([elsewhere.credential]))

    error = refused("credential_invalid", lambda: issuer.receive(
        offer["offer_uri"], pin=offer["tx_code"], holder=holder, rewrite=on("/credential", swap_credential)))
    assert error.credential_code == "untrusted_issuer"
    # With zj-amr off the trust list, the swapped credential's issuer is not trusted at all.
    offer = issuer.offer(43)
    error = refused("issuer_not_trusted", lambda: issuer.receive(
        offer["offer_uri"], pin=offer["tx_code"], holder=holder, trust=issuer.trust({"sh-amr": None}),
        rewrite=on("/credential", swap_credential)))
    assert error.reason == "untrusted_issuer"


def test_a_tampered_credential_is_refused(issuer):
    offer = issuer.offer(18)

    def tamper(request, forward):
        body = forward(request).json()
        text = body["credentials"][0]["credential"]
        jwt, rest = text.split("~", 1)
        h, p, s = jwt.split(".")
        s = ("A" if s[0] != "A" else "B") + s[1:]
        return httpx.Response(200, json={"credentials": [{"credential": f"{h}.{p}.{s}~{rest}"}]})

    error = refused("credential_invalid", lambda: issuer.receive(offer["offer_uri"], pin=offer["tx_code"],
                                                                 rewrite=on("/credential", tamper)))
    assert error.credential_code == "invalid_signature"


@pytest.mark.parametrize(("path", "member"), [
    ("/openid-credential-issuer/issuers/sh-amr", "credential_issuer"),
    ("/oauth-authorization-server/issuers/sh-amr", "issuer"),
], ids=["issuer-metadata", "as-metadata"])
def test_metadata_naming_another_issuer_is_refused_before_the_pin_is_sent(issuer, path, member):
    offer = issuer.offer(19)

    def other_issuer(request, forward):
        return httpx.Response(200, json={**forward(request).json(), member: ZJ})

    refused("issuer_response_invalid", lambda: issuer.receive(offer["offer_uri"], pin=offer["tx_code"],
                                                              rewrite=on(path, other_issuer)))
    assert issuer.offer_state(offer)["state"] == "offered"


def test_an_issuer_error_is_kept_faithfully(issuer):
    # The wallet's clock is an hour behind the issuer's: the issuer refuses the key proof as too old.
    offer = issuer.offer(20)
    error = refused("issuance_refused", lambda: issuer.receive(offer["offer_uri"], pin=offer["tx_code"],
                                                               now=issuer.now - 3600))
    assert error.issuer_error == "invalid_proof"
    assert isinstance(error.__cause__, o4.InvalidProof)


def _html(status: int) -> Callable:
    return lambda request, forward: httpx.Response(
        status, headers={"content-type": "text/html"}, content=b"<html><body><h1>Bad Gateway</h1></body></html>")


def _raw(status: int, content: bytes, content_type: str = "application/json") -> Callable:
    return lambda request, forward: httpx.Response(status, headers={"content-type": content_type}, content=content)


def _raise(exc: Exception) -> Callable:
    def answer(request, forward):
        raise exc

    return answer


GARBAGE = {
    "html-200": (_html(200), "issuer_response_invalid"),
    "html-400": (_html(400), "issuer_response_invalid"),
    "html-502": (_html(502), "issuer_unreachable"),
    "json-500": (_raw(500, b'{"error":"server_error"}'), "issuer_unreachable"),
    "invalid-json": (_raw(200, b'{"credential_issuer": '), "issuer_response_invalid"),
    "duplicate-members": (_raw(200, b'{"a": 1, "a": 2}'), "issuer_response_invalid"),
    "json-array": (_raw(200, b"[]"), "issuer_response_invalid"),
    "text-plain": (_raw(200, b"{}", "text/plain"), "issuer_response_invalid"),
    "good-json-as-text": (
        lambda request, forward: httpx.Response(200, headers={"content-type": "text/plain"},
                                                content=forward(request).content),
        "issuer_response_invalid"),
    "no-content-type": (lambda request, forward: httpx.Response(200, content=b"{}"), "issuer_response_invalid"),
    "oversize": (_raw(200, b'{"x":"' + b"a" * (wc.MAX_RESPONSE_BYTES + 10) + b'"}'), "issuer_response_invalid"),
    "oversize-streamed": (
        lambda request, forward: httpx.Response(
            200, headers={"content-type": "application/json"},
            stream=httpx.ByteStream(b'{"x":"' + b"a" * (wc.MAX_RESPONSE_BYTES + 10) + b'"}')),
        "issuer_response_invalid"),
    "padded-oversize": (
        lambda request, forward: httpx.Response(
            200, headers={"content-type": "application/json"},
            content=forward(request).content + b" " * wc.MAX_RESPONSE_BYTES),
        "issuer_response_invalid"),
    "padded-oversize-streamed": (
        lambda request, forward: httpx.Response(
            200, headers={"content-type": "application/json"},
            stream=httpx.ByteStream(forward(request).content + b" " * wc.MAX_RESPONSE_BYTES)),
        "issuer_response_invalid"),
    "declared-oversize": (
        lambda request, forward: httpx.Response(
            200, headers={"content-type": "application/json", "content-length": str(10**9)},
            stream=httpx.ByteStream(forward(request).content)),
        "issuer_response_invalid"),
    "redirect-elsewhere": (lambda request, forward: httpx.Response(302, headers={"location": "https://evil.example/x"}),
                           "issuer_response_invalid"),
    "error-without-object": (_raw(400, b'{"message":"no"}'), "issuer_response_invalid"),
    "timeout": (_raise(httpx.ReadTimeout("timed out")), "issuer_unreachable"),
    "connection-refused": (_raise(httpx.ConnectError("refused")), "issuer_unreachable"),
}
STEPS = {
    "issuer-metadata": "/openid-credential-issuer/issuers/sh-amr",
    "as-metadata": "/oauth-authorization-server/issuers/sh-amr",
    "token": "/issuers/sh-amr/token",
    "nonce": "/issuers/sh-amr/nonce",
    "credential": "/issuers/sh-amr/credential",
}


@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("garbage", list(GARBAGE))
def test_garbage_from_the_issuer_gets_a_stable_code(issuer, step, garbage):
    answer, code = GARBAGE[garbage]
    offer = issuer.offer(21)
    refused(code, lambda: issuer.receive(offer["offer_uri"], pin=offer["tx_code"], rewrite=on(STEPS[step], answer)))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed(issuer, status):
    offer = issuer.offer(41)
    target = "https://evil.example/.well-known/openid-credential-issuer/issuers/sh-amr"

    def redirect(request, forward):
        return httpx.Response(status, headers={"location": target, "content-type": "application/json"},
                              json=forward(request).json())

    http, tap = issuer.http(on("/openid-credential-issuer/issuers/sh-amr", redirect))
    error = refused("issuer_response_invalid", lambda: wc.receive(
        offer["offer_uri"], tx_code=offer["tx_code"], holder=SoftwareSigner.generate(), http=http,
        trust=issuer.trust(), now=issuer.now))
    assert "redirect" in error.detail
    assert tap.hosts == {"issuer.example.gov.cn"}


def test_the_response_cap_is_the_callers(issuer):
    offer = issuer.offer(22)
    refused("issuer_response_invalid", lambda: issuer.receive(offer["offer_uri"], pin=offer["tx_code"],
                                                              max_response_bytes=256))


def test_a_by_reference_offer_that_is_garbage_is_refused(issuer):
    offer = issuer.offer(23)
    refused("issuer_response_invalid", lambda: issuer.receive(
        offer["offer_reference_uri"], pin=offer["tx_code"], rewrite=on(f"/offers/{offer['offer_id']}", _html(200))))
    refused("offer_invalid", lambda: issuer.receive(
        offer["offer_reference_uri"], pin=offer["tx_code"],
        rewrite=on(f"/offers/{offer['offer_id']}", _raw(200, b'{"credential_issuer":"https://x.example"}'))))


def test_an_endpoint_on_plain_http_is_refused(issuer):
    offer = issuer.offer(24)

    def http_endpoint(request, forward):
        meta = forward(request).json()
        return httpx.Response(200, json={**meta, "credential_endpoint": "http://127.0.0.1/credential"})

    refused("issuer_response_invalid", lambda: issuer.receive(
        offer["offer_uri"], pin=offer["tx_code"],
        rewrite=on("/openid-credential-issuer/issuers/sh-amr", http_endpoint)))


def test_a_deferred_issuance_is_refused(issuer):
    offer = issuer.offer(25)
    error = refused("issuer_response_invalid", lambda: issuer.receive(
        offer["offer_uri"], pin=offer["tx_code"],
        rewrite=on("/credential", lambda request, forward: httpx.Response(202, json={"transaction_id": "t1"}))))
    assert "deferred" in error.detail


def test_a_token_response_without_bearer_token_is_refused(issuer):
    for seed, body in enumerate(({"token_type": "Bearer"}, {"access_token": "abc", "token_type": "DPoP"},
                                 {"access_token": "a b", "token_type": "Bearer"}), start=26):
        offer = issuer.offer(seed)
        refused("issuer_response_invalid", lambda: issuer.receive(
            offer["offer_uri"], pin=offer["tx_code"],
            rewrite=on("/token", lambda request, forward, body=body: httpx.Response(200, json=body))))


def test_a_holder_key_the_issuer_does_not_take_is_refused_before_the_pin_is_sent(issuer):
    offer = issuer.offer(40)

    def es256_only(request, forward):
        meta = forward(request).json()
        config = meta["credential_configurations_supported"]["business-licence"]
        config["proof_types_supported"] = {"jwt": {"proof_signing_alg_values_supported": ["ES256"]}}
        return httpx.Response(200, json=meta)

    refused("holder_key_unsupported", lambda: issuer.receive(
        offer["offer_uri"], pin=offer["tx_code"], holder=SoftwareSigner.generate("EdDSA"),
        rewrite=on("/openid-credential-issuer/issuers/sh-amr", es256_only)))
    assert issuer.offer_state(offer)["state"] == "offered"
