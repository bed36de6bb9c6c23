"""The wallet demo page (``GET /wallet/demo``, elicence/pages.py) in a real headless Chromium, against a real
server: the deployment's app under uvicorn on a free port, on SQLite (and PostgreSQL when configured).

The story a person would follow: sign up, set the PIN, claim the enterprise, receive its licence with the
offer link and the authority's PIN, see the card, show it as a QR code (the PNG decodes to an ``EL1:``
payload the verifier SDK accepts against the deployment's trust list), answer a county's OpenID4VP request
with consent (the answer verifies), authorise a staff member signed in in a second browser, withdraw it,
read the usage record; with the stable error codes the page shows for a wrong PIN, a wrong offer PIN and
a bad request link (text and photo), the page's security headers, refresh token rotation when the
access token is refused, and a Content Security Policy that stops injected scripts.

Playwright (Python, sync API) drives the system Chromium: ``ELICENCE_CHROMIUM`` or ``/usr/bin/chromium``
(the ``chromium`` and ``live_server`` fixtures are in tests/elicence/conftest.py). Without one the test is
skipped, except under ``CI=true`` (``.ci/run`` installs Debian's chromium), where it fails. A screenshot of the card with its QR code is saved under the test's ``tmp_path``.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Request, Response

from credentials import openid4vp as vp
from credentials import qr
from elicence.app import create_app, open_issuer, open_trust_operator, open_wallet, seed_demo, wallet_network
from elicence.config import Settings
from elicence.pages import WALLET_PAGE_PATH
from issuer.service import IssuerService
from keys import x509 as kx
from keys.signer import SoftwareSigner
from schemas.synthetic import generate_business_licence
from tests.elicence.strict_page import check_strict_page
from verifier.sdk import Policy, StatusSource, TrustListSource, Verifier
from wallet.flows import WalletFlows

PASSWORD = "correct horse battery"
PIN = "260817"
WRONG_PIN = "913572"
LEGAL_REP_PHONE = "13800000001"
STAFF_PHONE = "13800000002"
TIMEOUT_MS = 20_000


def _registered(signer: SoftwareSigner, *, dns_name: str, organization: str) -> tuple[Any, list[str]]:
    """A registrar CA (the wallet's verifier root) and the access certificate chain it issues for ``signer``."""
    valid = {"not_before": dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)}
    valid["not_after"] = valid["not_before"] + dt.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    root = kx.make_registrar_ca(ca_key, common_name="Test registrar", **valid)
    leaf = kx.issue_access_certificate(ca_certificate=root, ca_key=ca_key, dns_name=dns_name, organization=organization,
                                       public_key=signer.private_key.public_key(), **valid)
    return root, kx.x5c_encode([leaf])


class CountyVerifier:
    """A county service centre's online verifier (OpenID4VP 1.0, ``x509_san_dns:localhost``), mounted on the
    server: the wallet fetches its signed request and posts the answer to it over real HTTP."""

    def __init__(self, base: str) -> None:
        self.signer = SoftwareSigner.generate("ES256")
        self.root, self.x5c = _registered(self.signer, dns_name="localhost", organization="浦东新区政务服务中心")
        self.base = f"{base.replace('127.0.0.1', 'localhost')}/county"
        self.made: dict[str, vp.VerifierRequest] = {}
        self.answers: dict[str, Any] = {}
        self.router = APIRouter(prefix="/county")
        self.router.add_api_route("/request/{rid}", self._request_object, methods=["GET"])
        self.router.add_api_route("/response/{rid}", self._direct_post, methods=["POST"])

    def _request_object(self, rid: str) -> Response:
        return Response(self.made[rid].request_object, media_type="application/oauth-authz-req+jwt")

    async def _direct_post(self, rid: str, request: Request) -> dict[str, Any]:
        form = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        self.answers[rid] = vp.parse_response_form(form)
        return {}

    def link(self, rid: str) -> str:
        """A request for the licence's USCC, name and domicile, as the openid4vp:// link its QR code holds."""
        query = {"credentials": [{"id": "licence", "format": "dc+sd-jwt",
                                  "meta": {"vct_values": ["https://elicence.cn/vct/business-licence"]},
                                  "claims": [{"path": ["uscc"]}, {"path": ["name"]}, {"path": ["registration", "domicile"]}]}]}
        self.made[rid] = vp.create_request(dns_name="localhost", signer=self.signer, x5c=self.x5c,
                                           response_uri=f"{self.base}/response/{rid}", request_uri=f"{self.base}/request/{rid}",
                                           dcql_query=query, now=int(time.time()), client_name="浦东新区政务服务中心",
                                           purpose="办理食品经营许可")
        return self.made[rid].uri


@dataclass
class Server:
    base: str
    issuer: IssuerService
    operator: Any
    county: CountyVerifier

    def offer(self, seed: int) -> tuple[dict[str, Any], Any]:
        """A registry record of a synthetic enterprise, and an offer of its licence (link + PIN)."""
        claims = generate_business_licence(random.Random(seed))
        self.issuer.import_record(self.operator, type_name="business-licence", claims=claims)
        return claims, self.issuer.create_offer(self.operator, type_name="business-licence", uscc=claims["uscc"])

    def verifier(self) -> Verifier:
        """The verifier SDK as a counter would set it up: this deployment's trust list and status lists."""
        anchor = httpx.get(f"{self.base}/trust/operator.jwk").json()
        trust = TrustListSource.from_fetch(lambda: httpx.get(f"{self.base}/trust/list").text, anchor=anchor)
        return Verifier(trust=trust, status=StatusSource(lambda uri: httpx.get(uri).text), policy=Policy())


@pytest.fixture
def server(database_url, sessions, tmp_path, live_server) -> Server:
    """The deployment (demo seed: sh-amr and zj-amr) served by uvicorn in a thread (tests/elicence/conftest.py)."""
    settings = Settings.from_env({"ELICENCE_PORT": str(live_server.port), "ELICENCE_DATABASE_URL": database_url},
                                 var_dir=tmp_path / "var")
    issuer = open_issuer(settings, sessions=sessions)
    wallet = open_wallet(settings, sessions=sessions)
    trust = open_trust_operator(settings, issuer)
    seed_demo(issuer, settings.var_dir)
    county = CountyVerifier(settings.public_url)
    network = wallet_network(settings, trust, verifier_roots=[county.root])
    app = create_app(issuer=issuer, wallet=wallet, trust=trust, flows=WalletFlows(wallet, network))
    app.include_router(county.router)
    live_server.start(app)
    operator = issuer.create_operator(authority="sh-amr", name="窗口", actor="test").operator
    return Server(settings.public_url, issuer, operator, county)


def _pin(page: Any, pin: str) -> None:
    page.locator("#pin-dialog").wait_for(state="visible")
    page.fill("#pin-input", pin)
    page.click("#pin-ok")


def _error_code(page: Any, code: str) -> None:
    """The page shows the API's stable error code, and a description beside it."""
    page.wait_for_selector(f'#error[data-code="{code}"]', state="visible")
    assert page.inner_text("#error-code") == code
    assert page.inner_text("#error-message").strip()


def _sign_up(page: Any, base: str, phone: str, name: str) -> None:
    page.goto(f"{base}{WALLET_PAGE_PATH}")
    page.fill("#register-phone", phone)
    page.fill("#register-password", PASSWORD)
    page.fill("#register-name", name)
    page.click("#register-submit")
    page.locator("#view-pin").wait_for(state="visible")
    page.fill("#pin-new", PIN)
    page.click("#pin-submit")
    page.locator("#view-app").wait_for(state="visible")
    assert name in page.inner_text("#who-name")


def test_the_wallet_page_tells_the_whole_story_in_chromium(chromium, server, tmp_path):
    from playwright.sync_api import sync_playwright

    claims, offer = server.offer(seed=11)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium)
        try:
            rep_context, staff_context = browser.new_context(), browser.new_context()
            rep, staff = rep_context.new_page(), staff_context.new_page()
            console: list[str] = []
            for p in (rep, staff):
                p.set_default_timeout(TIMEOUT_MS)
                p.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
                p.on("pageerror", lambda e: console.append(str(e)))

            # The page and its security headers.
            response = rep.goto(f"{server.base}{WALLET_PAGE_PATH}")
            assert response is not None and response.status == 200
            headers = response.headers
            csp = headers["content-security-policy"]
            assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "img-src 'self' data:" in csp
            assert "unsafe-inline" not in csp and "http" not in csp.replace("'self'", "")
            assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"

            # Sign up, set the PIN, claim the enterprise.
            _sign_up(rep, server.base, LEGAL_REP_PHONE, "张三")
            rep.click('nav [data-tab="enterprises"]')
            rep.fill("#claim-uscc", claims["uscc"])
            rep.fill("#claim-name", claims["name"])
            rep.click("#claim-submit")
            rep.locator("#enterprise-list li", has_text=claims["name"]).wait_for()
            assert "法定代表人" in rep.inner_text("#enterprise-list")

            # Receive: a wrong offer PIN is refused with its code, then the right one stores the licence.
            rep.click('nav [data-tab="receive"]')
            rep.fill("#receive-offer", offer.offer_uri)
            rep.fill("#receive-tx-code", "000000" if offer.tx_code != "000000" else "111111")
            rep.click("#receive-submit")
            _error_code(rep, "tx_code_invalid")
            rep.fill("#receive-tx-code", offer.tx_code)
            rep.click("#receive-submit")
            card = rep.locator("article.card[data-vct$='business-licence']")
            card.wait_for()
            assert rep.locator("#error").is_hidden()
            text = card.inner_text()
            assert "营业执照" in text and "统一社会信用代码" in text and claims["uscc"] in text and claims["name"] in text
            assert "上海市市场监督管理局" in text  # the issuer's name, from the trust list
            card.locator("button.check-status").click()
            rep.locator("article.card .status[data-status='valid']").wait_for()

            # 亮码: a wrong PIN shows its code and no QR; the right one shows a QR the verifier SDK accepts.
            rep.locator("article.card button.show-qr").click()
            _pin(rep, WRONG_PIN)
            _error_code(rep, "pin_invalid")
            assert rep.locator("#qr-view").is_hidden()
            rep.locator("article.card button.show-qr").click()
            _pin(rep, PIN)
            rep.locator("#qr-view").wait_for(state="visible")
            src = rep.get_attribute("#qr-image", "src")
            assert src is not None and src.startswith("data:image/png;base64,")
            assert int(rep.get_attribute("#qr-countdown", "data-seconds") or 0) > 0
            shot = tmp_path / "wallet-card-qr.png"
            rep.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot of the card and its QR code: {shot}")
            payload = qr.decode_image(base64.b64decode(src.split(",", 1)[1]))
            assert payload.startswith("EL1:")
            result = server.verifier().verify(payload)
            assert result.valid, result
            assert result.credential.claims["uscc"] == claims["uscc"]
            assert result.credential.claims["legal_representative"] == claims["legal_representative"]
            rep.click("#qr-new")
            _pin(rep, PIN)
            rep.wait_for_function("s => document.getElementById('qr-image').src !== s", arg=src)

            # 授权: a second account (second browser context) is added as staff, authorised, withdrawn.
            _sign_up(staff, server.base, STAFF_PHONE, "李四")
            rep.click('nav [data-tab="authorise"]')
            rep.fill("#member-phone", STAFF_PHONE)
            rep.select_option("#member-role", "staff")
            rep.click("#member-submit")
            rep.locator("#member-list tr", has_text="李四").wait_for()
            rep.check("#grant-scope-all")
            rep.click("#grant-submit")
            _pin(rep, PIN)
            grant = rep.locator("#grant-list tr[data-authorisation]")
            grant.wait_for()
            assert "李四" in grant.inner_text()
            staff.click('nav [data-tab="credentials"]')
            staff_card = staff.locator("article.card[data-vct$='staff-authorisation']")
            staff_card.wait_for()
            grant.locator("button.withdraw").click()
            _pin(rep, PIN)
            rep.locator("#grant-list .status[data-status='invalid']").wait_for()
            staff_card.locator("button.check-status").click()
            staff.locator("article.card[data-vct$='staff-authorisation'] .status[data-status='invalid']").wait_for()

            # 扫码: a request without a signed request object is refused with its code, as a link and as a photo.
            bogus = "openid4vp://?client_id=x509_san_dns:localhost"
            rep.click('nav [data-tab="scan"]')
            rep.fill("#scan-link", bogus)
            rep.click("#scan-submit")
            _error_code(rep, "invalid_request")
            assert rep.inner_text("#error-message").startswith("request_not_signed")
            rep.fill("#scan-link", "")
            rep.set_input_files("#scan-image", files=[{"name": "request.png", "mimeType": "image/png",
                                                       "buffer": qr.render_png(bogus)}])
            rep.click("#scan-submit")
            _error_code(rep, "invalid_request")
            assert rep.inner_text("#error-message").startswith("request_not_signed")  # the photo decoded to the link
            assert rep.locator("#scan-preview").is_hidden()
            # ...and a county's signed request shows who asks, why and for what; consent with the PIN answers it.
            rep.set_input_files("#scan-image", files=[])
            rep.fill("#scan-link", server.county.link("r1"))
            rep.click("#scan-submit")
            rep.locator("#scan-preview").wait_for(state="visible")
            assert rep.inner_text("#scan-verifier") == "浦东新区政务服务中心"
            assert rep.inner_text("#scan-purpose") == "办理食品经营许可"
            assert "registration.domicile" in rep.inner_text("#scan-requested")
            rep.click("#scan-consent")
            _pin(rep, PIN)
            rep.wait_for_selector("#scan-result[data-outcome='sent']")
            made, trusted = server.county.made["r1"], server.verifier()
            answer = vp.verify_response(server.county.answers["r1"], request=made.request, now=int(time.time()),
                                        verify_presentation=lambda p, kb: trusted.verify(p, nonce=kb.nonce,
                                                                                         audience=kb.aud).credential)
            presented = answer.credentials["licence"][0].claims
            assert presented["uscc"] == claims["uscc"] and presented["registration"]["domicile"]
            assert "business_scope" not in presented["registration"]

            # 用照记录: the enterprise's record lists both codes shown and the request answered.
            rep.click('nav [data-tab="usage"]')
            rep.select_option("#usage-scope", label=claims["name"])
            rep.wait_for_function("() => document.querySelectorAll('#usage-list tr[data-usage]').length === 3")
            assert rep.locator("#usage-list tr[data-outcome='shown']").count() == 2
            assert "浦东新区政务服务中心" in rep.inner_text("#usage-list tr[data-outcome='sent']")

            # A refused access token is replaced through the refresh token, which rotates.
            before = rep.evaluate("JSON.parse(sessionStorage.getItem('elicence.wallet.session'))")
            rep.evaluate("""() => {
                const s = JSON.parse(sessionStorage.getItem('elicence.wallet.session'));
                s.access = 'not-a-token';
                sessionStorage.setItem('elicence.wallet.session', JSON.stringify(s));
            }""")
            rep.reload()
            rep.locator("#view-app").wait_for(state="visible")
            after = rep.evaluate("JSON.parse(sessionStorage.getItem('elicence.wallet.session'))")
            assert after["refresh"] != before["refresh"] and after["access"] not in (before["access"], "not-a-token")
            assert "张三" in rep.inner_text("#who-name")
            assert rep.evaluate("location.href") == f"{server.base}{WALLET_PAGE_PATH}"  # no token in the URL

            # Errors the page shows are the API's (above); nothing else went wrong, CSP included.
            unexpected = [m for m in console if "status of 4" not in m]
            assert unexpected == [], unexpected
        finally:
            browser.close()


def test_a_script_injected_into_the_page_does_not_run_but_the_page_does(chromium, server):
    from playwright.sync_api import sync_playwright

    url = f"{server.base}{WALLET_PAGE_PATH}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

            def inject(route: Any) -> None:
                # What a stored cross-site scripting bug would add: an inline script, an inline handler and a
                # script from elsewhere, served under the page's own headers.
                real = route.fetch()
                body = real.text().replace("<main>", "<main><script>window.injected = 1</script>"
                                           "<img src=x onerror=\"window.injected = 2\">"
                                           "<script src=\"https://cdn.example.com/x.js\"></script>", 1)
                route.fulfill(response=real, body=body)

            page.route(url, inject)
            page.goto(url)
            page.fill("#sign-in-phone", LEGAL_REP_PHONE)
            page.fill("#sign-in-password", PASSWORD)
            page.click("#sign-in-submit")
            _error_code(page, "invalid_credentials")  # the page's own script runs and shows the API's code
            assert page.evaluate("window.injected") is None
            assert len(violations) >= 2, violations
        finally:
            browser.close()


def test_the_page_is_served_with_its_security_headers_and_nothing_inline_escapes_the_policy():
    # No browser needed: this runs wherever the suite runs, Chromium or not.
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from elicence import pages

    app = FastAPI()
    pages.install(app)
    r = TestClient(app).get(WALLET_PAGE_PATH)
    check_strict_page(r)
    assert pages.content_security_policy(r.text.replace("</style>", "x</style>")) != r.headers["content-security-policy"]
