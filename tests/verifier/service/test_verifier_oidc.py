"""Log in with e-licence, end to end in process: a sample portal (an OpenID Connect Relying Party written
against the standards only: discovery, the authorization code flow with PKCE, PyJWT to check the ID
Token with the JWKS) sends the user's browser to the verifier, the browser shows the login page, the
wallet answers the OpenID4VP request (credentials.openid4vp's wallet side, real keys), the page's poll
sends the browser back with the code, and the portal redeems it. SQLite, and PostgreSQL when configured."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt as pyjwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from credentials import openid4vp as vp
from credentials import sd_jwt_vc
from keys.signer import SoftwareSigner
from schemas.synthetic import generate_person, generate_staff_authorisation
from verifier import api, oidc, store

CALLBACK = "https://portal.example.gov.cn/callback"
STATUS_URI = "https://amr.sh.example.gov.cn/status/1"


# --- the sample portal (Relying Party) ------------------------------------------------------------------


class LoginRefusedByPortal(Exception):
    """The portal's own checks of the ID Token failed."""


class SamplePortal:
    """A portal that speaks OpenID Connect and nothing else: no credential code at all."""

    def __init__(self, http: TestClient, client_id: str, client_secret: str, redirect_uri: str = CALLBACK) -> None:
        self.http = http
        self.clock = lambda: http.app.state.verifier.now().timestamp()  # the portal's clock is the deployment's (the test's)
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.metadata = http.get("/verifier/.well-known/openid-configuration").json()

    def _path(self, url: str) -> str:
        parts = urlsplit(url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def login_url(self, **changes: Any) -> tuple[str, dict[str, str]]:
        """The authorization request URL and what the portal keeps in its session (state, nonce, verifier)."""
        session = {"state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16),
                   "verifier": secrets.token_urlsafe(48)}
        challenge = base64.urlsafe_b64encode(hashlib.sha256(session["verifier"].encode()).digest()).rstrip(b"=").decode()
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": "openid", "state": session["state"], "nonce": session["nonce"],
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        params.update(changes)
        return self.metadata["authorization_endpoint"] + "?" + urlencode({k: v for k, v in params.items() if v is not None}), session

    def callback(self, location: str, session: dict[str, str]) -> dict[str, str]:
        """The portal's redirect URI handler: the parameters, after checking ``state`` and ``iss``."""
        assert location.startswith(self.redirect_uri + "?")
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        if params.get("state") != session["state"]:
            raise LoginRefusedByPortal("state mismatch")
        if params.get("iss") != self.metadata["issuer"]:
            raise LoginRefusedByPortal("iss mismatch")
        return params

    def redeem(self, code: str, session: dict[str, str], *, verifier: str | None = None, secret: str | None = None,
               redirect_uri: str | None = None, post_auth: bool = False) -> Any:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri or self.redirect_uri,
                "code_verifier": session["verifier"] if verifier is None else verifier}
        secret = self.client_secret if secret is None else secret
        headers = {}
        if post_auth:
            form.update(client_id=self.client_id, client_secret=secret)
        else:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{self.client_id}:{secret}".encode()).decode()
        return self.http.post(self._path(self.metadata["token_endpoint"]), data=form, headers=headers)

    def verify_id_token(self, id_token: str, session: dict[str, str]) -> dict[str, Any]:
        """Check the ID Token as any OpenID Connect library would: JWKS signature, iss, aud, exp, nonce."""
        keys = self.http.get(self._path(self.metadata["jwks_uri"])).json()["keys"]
        kid = pyjwt.get_unverified_header(id_token)["kid"]
        key = next(pyjwt.PyJWK(k) for k in keys if k["kid"] == kid)
        # exp and iat are checked against the portal's clock (the test's), not PyJWT's wall clock.
        claims = pyjwt.decode(id_token, key.key, algorithms=["ES256"], audience=self.client_id,
                              issuer=self.metadata["issuer"],
                              options={"require": ["exp", "iat", "sub", "nonce"], "verify_exp": False,
                                       "verify_iat": False})
        if not claims["iat"] <= self.clock() < claims["exp"]:
            raise LoginRefusedByPortal("the ID Token is expired or not yet valid")
        if claims["nonce"] != session["nonce"]:
            raise LoginRefusedByPortal("nonce mismatch")
        return claims


class Browser:
    """The user's browser: follows the portal's redirect, shows the login page and runs its poll."""

    def __init__(self, http: TestClient) -> None:
        self.http = http

    def open(self, url: str) -> Any:
        parts = urlsplit(url)
        self.page = self.http.get(parts.path + "?" + parts.query, headers={"Accept": "text/html"})
        return self.page

    @property
    def wallet_link(self) -> str:
        found = re.search(r'href="(openid4vp://[^"]+)"', self.page.text)
        assert found, "the login page shows the openid4vp:// link"
        return found.group(1).replace("&amp;", "&")

    @property
    def status_url(self) -> str:
        found = re.search(r'var statusUrl = "([^"]+)"', self.page.text)
        assert found, "the login page polls a status URL"
        return found.group(1)

    def poll(self) -> dict[str, Any]:
        r = self.http.get(self.status_url, headers={"Accept": "application/json"})
        assert r.status_code == 200, r.text
        return r.json()


# --- the wallet's side ----------------------------------------------------------------------------------


def wallet_fetch(desk, http: TestClient, link: str) -> vp.AuthorizationRequest:
    """What the wallet does with the link: fetch the signed Request Object and check it (registrar roots)."""
    reference = vp.parse_authorization_request_uri(link)
    token = http.get(urlsplit(reference.request_uri).path).text
    return vp.verify_request_object(token, client_id=reference.client_id,
                                    trust_anchors=desk.service.registrar_certificates(), now=desk.clock.timestamp())


def wallet_answer(desk, http: TestClient, link: str, presentations: dict[str, tuple[str, SoftwareSigner]] | None = None,
                  *, refuse: bool = False) -> Any:
    """Answer the login request: ``{query id: (credential, holder key)}`` (default: the licence), or refuse."""
    request = wallet_fetch(desk, http, link)
    if refuse:
        form = vp.error_response_form(request)
    else:
        chosen = presentations or {"licence": (desk.licence, desk.holder)}
        now = int(desk.clock.timestamp())
        form = vp.response_form(request, {
            qid: [vp.present_for_request(cred, request=request, disclose=[], holder_signer=key, now=now)]
            for qid, (cred, key) in chosen.items()
        })
    return http.post(urlsplit(request.response_uri).path, data=form)


def authorisation(desk, *, holder: SoftwareSigner | None = None, scope: Any = None, days_left: int = 30,
                  idx: int = 8, licence_idx: int = 7, **changes: Any) -> str:
    """A staff authorisation of the desk's enterprise, bound to the staff member's own key (the wallet's model)."""
    claims = generate_staff_authorisation(random.Random(4), desk.claims, generate_person(random.Random(3)),
                                          licence_status={"idx": licence_idx, "uri": STATUS_URI})
    today = desk.today()
    claims.update(scope={"all": True} if scope is None else scope,
                  valid_from=(today - timedelta(days=10)).isoformat(),
                  valid_until=(today + timedelta(days=days_left)).isoformat(), **changes)
    ctype = desk.types["staff-authorisation"]
    return sd_jwt_vc.issue_vc(claims, vct=ctype.vct, issuer=desk.ISSUER_ID, signer=desk.issuer,
                              disclosable=ctype.disclosable_paths(claims),
                              holder_jwk=(holder or desk.staff_key).public_jwk, status=(idx, STATUS_URI),
                              iat=desk.T - 86400, exp=desk.T + 400 * 86400)


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture
def http(desk) -> TestClient:
    app = FastAPI()
    api.install(app, desk.service)
    return TestClient(app, base_url=desk.PUBLIC_URL, follow_redirects=False)


def register(http: TestClient, desk, *, department: str = "pudong-window", api_key: str | None = None,
             **body: Any) -> dict[str, Any]:
    body.setdefault("name", "一网通办")
    body.setdefault("redirect_uris", [CALLBACK])
    r = http.post(f"/verifier/departments/{department}/portals", json=body,
                  headers={"Authorization": f"Bearer {api_key or desk.api_key}"})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def portal(desk, http) -> SamplePortal:
    created = register(http, desk)
    return SamplePortal(http, created["client_id"], created["client_secret"])


def log_in(desk, http, portal: SamplePortal, presentations=None, **changes: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The whole dance up to the callback: returns (the callback's parameters, the portal's session)."""
    url, session = portal.login_url(**changes)
    browser = Browser(http)
    assert browser.open(url).status_code == 200
    assert browser.poll()["status"] == "pending"
    answered = wallet_answer(desk, http, browser.wallet_link, presentations)
    assert answered.status_code == 200, answered.text
    polled = browser.poll()
    assert polled["status"] == "complete"
    return portal.callback(polled["redirect_to"], session), session


# --- the happy paths ------------------------------------------------------------------------------------


def test_a_portal_logs_an_enterprise_in_end_to_end(desk, http, portal):
    assert portal.metadata["issuer"] == desk.PUBLIC_URL + "/verifier"
    assert portal.metadata["code_challenge_methods_supported"] == ["S256"]
    url, session = portal.login_url()
    browser = Browser(http)
    page = browser.open(url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text and browser.wallet_link.startswith("openid4vp://?client_id=x509_san_dns")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "Path=/verifier/oidc/authorize/" in cookie
    request = wallet_fetch(desk, http, browser.wallet_link)
    assert request.verifier_name == "浦东新区企业服务中心" and "一网通办" in (request.purpose or "")
    assert browser.poll()["status"] == "pending"
    assert wallet_answer(desk, http, browser.wallet_link).status_code == 200
    polled = browser.poll()
    assert polled["status"] == "complete"
    params = portal.callback(polled["redirect_to"], session)
    assert browser.poll() == {"status": "finished"}  # the code is delivered once
    r = portal.redeem(params["code"], session)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store", r.text
    tokens = r.json()
    assert tokens["token_type"] == "Bearer" and tokens["access_token"] and tokens["scope"] == "openid"
    claims = portal.verify_id_token(tokens["id_token"], session)
    assert claims["uscc"] == desk.claims["uscc"] and claims["enterprise_name"] == desk.claims["name"]
    assert claims["sub"] != desk.claims["uscc"] and "act" not in claims
    assert claims["auth_time"] == desk.T and claims["exp"] == desk.T + 300
    userinfo = http.get("/verifier/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == claims["sub"]
    assert userinfo.json()["uscc"] == desk.claims["uscc"]
    # The login is in the department's audit, as a verification without claims.
    records = desk.service.verifications(desk.staff)
    assert records[0]["channel"] == "login" and records[0]["verdict"] == "valid"
    assert desk.service.verify_audit(desk.staff)["valid"] is True


def test_sub_is_stable_for_one_portal_and_differs_between_portals(desk, http, portal):
    other = register(http, desk, name="招投标平台", redirect_uris=["https://bid.example.gov.cn/cb"])
    second = SamplePortal(http, other["client_id"], other["client_secret"], "https://bid.example.gov.cn/cb")
    subs = []
    for p in (portal, portal, second):
        params, session = log_in(desk, http, p)
        subs.append(p.verify_id_token(p.redeem(params["code"], session).json()["id_token"], session)["sub"])
    assert subs[0] == subs[1] != subs[2]


def test_a_staff_member_logs_in_and_the_token_names_them_and_their_scope(desk, http, portal):
    staff = authorisation(desk, scope={"matters": [desk.FOOD_ITEM]})
    params, session = log_in(desk, http, portal, {"licence": (desk.licence, desk.holder),
                                                  "authorisation": (staff, desk.staff_key)})
    claims = portal.verify_id_token(portal.redeem(params["code"], session).json()["id_token"], session)
    assert claims["uscc"] == desk.claims["uscc"]
    expected = generate_staff_authorisation(random.Random(4), desk.claims, generate_person(random.Random(3)))
    assert claims["act"]["name"] == expected["staff_name"]
    assert claims["authorisation"]["scope"] == {"matters": [desk.FOOD_ITEM]}
    assert claims["authorisation"]["valid_until"] == (desk.today() + timedelta(days=30)).isoformat()
    assert claims["act"]["sub"] != claims["sub"]


def test_the_state_is_echoed_exactly_and_the_redirect_uri_query_kept(desk, http):
    created = register(http, desk, redirect_uris=["https://portal.example.gov.cn/cb?tenant=7"])
    portal = SamplePortal(http, created["client_id"], created["client_secret"], "https://portal.example.gov.cn/cb?tenant=7")
    state = "a b&c=d/?~!*'()%20+#"
    url, session = portal.login_url(state=state)
    session["state"] = state
    browser = Browser(http)
    browser.open(url)
    wallet_answer(desk, http, browser.wallet_link)
    location = browser.poll()["redirect_to"]
    assert location.startswith("https://portal.example.gov.cn/cb?tenant=7&code=")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [session["state"]] and query["tenant"] == ["7"]


def test_a_state_that_is_not_printable_ascii_is_refused_and_not_echoed(desk, http, portal):
    url, session = portal.login_url(state="état")
    r = Browser(http).open(url)
    assert r.status_code == 303
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and "state" not in query


def test_client_secret_post_authenticates_too(desk, http, portal):
    params, session = log_in(desk, http, portal)
    r = portal.redeem(params["code"], session, post_auth=True)
    assert r.status_code == 200, r.text


# --- authorization errors: redirected to the portal only when its redirect_uri is genuine ---------------


@pytest.mark.parametrize(("changes", "code"), [
    ({"redirect_uri": "https://evil.example.com/callback"}, "invalid_request"),
    ({"redirect_uri": CALLBACK + "/"}, "invalid_request"),
    ({"redirect_uri": None}, "invalid_request"),
    ({"client_id": "elp_nobody"}, "invalid_client"),
    ({"client_id": None}, "invalid_client"),
])
def test_an_unverifiable_redirect_uri_or_client_is_never_redirected_to(desk, http, portal, changes, code):
    url, _ = portal.login_url(**changes)
    page = Browser(http).open(url)
    assert page.status_code == 400 and "location" not in page.headers
    assert code in page.text and "evil.example.com" not in page.text
    parts = urlsplit(url)
    r = http.get(parts.path + "?" + parts.query, headers={"Accept": "application/json"})
    assert (r.status_code, r.json()["error"]) == (400, code)


@pytest.mark.parametrize(("changes", "code"), [
    ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"nonce": None}, "invalid_request"),
    ({"scope": "profile"}, "invalid_scope"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"prompt": "none"}, "login_required"),
])
def test_a_bad_authorization_request_is_sent_back_to_the_portal_with_its_code_and_state(
        desk, http, portal, changes, code):
    url, session = portal.login_url(**changes)
    r = Browser(http).open(url)
    assert r.status_code == 303
    params = portal.callback(r.headers["location"], session)
    assert params["error"] == code and "code" not in params


def test_the_service_says_why_an_authorization_request_is_refused(desk, portal):
    with pytest.raises(oidc.InvalidRequest) as info:
        desk.service.oidc_authorize({"client_id": portal.client_id, "redirect_uri": CALLBACK, "response_type": "code",
                                     "scope": "openid", "nonce": "n"})
    assert (info.value.reason, info.value.redirect_uri) == ("missing_code_challenge", CALLBACK)
    with pytest.raises(oidc.InvalidRequest) as info:
        desk.service.oidc_authorize({"client_id": portal.client_id, "redirect_uri": "https://evil.example.com/"})
    assert (info.value.reason, info.value.redirect_uri) == ("redirect_uri_mismatch", None)


# --- the login's outcome ---------------------------------------------------------------------------------


def test_a_request_nobody_answered_sends_access_denied_back_to_the_portal(desk, http, portal):
    url, session = portal.login_url()
    browser = Browser(http)
    browser.open(url)
    desk.clock.advance(299)
    assert browser.poll()["status"] == "pending"
    desk.clock.advance(2)
    polled = browser.poll()
    assert polled["status"] == "failed" and polled["error"] == "access_denied"
    params = portal.callback(polled["redirect_to"], session)
    assert params["error"] == "access_denied" and "expired" in params["error_description"]
    # The wallet can no longer fetch the request either.
    reference = vp.parse_authorization_request_uri(browser.wallet_link)
    assert http.get(urlsplit(reference.request_uri).path).json()["error"] == "request_expired"


def test_a_wallet_refusal_sends_access_denied_back_to_the_portal(desk, http, portal):
    url, session = portal.login_url()
    browser = Browser(http)
    browser.open(url)
    assert wallet_answer(desk, http, browser.wallet_link, refuse=True).status_code == 200
    polled = browser.poll()
    params = portal.callback(polled["redirect_to"], session)
    assert (params["error"], params["error_description"]) == ("access_denied", "the holder declined the request")


def test_the_poll_belongs_to_the_browser_that_opened_the_page(desk, http, portal):
    url, _ = portal.login_url()
    browser = Browser(http)
    browser.open(url)
    wallet_answer(desk, http, browser.wallet_link)
    stranger = TestClient(http.app, base_url=desk.PUBLIC_URL, follow_redirects=False)
    r = stranger.get(browser.status_url)
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    stranger.cookies.set(api.LOGIN_COOKIE, "guess", domain=urlsplit(desk.PUBLIC_URL).hostname,
                         path=urlsplit(browser.status_url).path)
    assert stranger.get(browser.status_url).status_code == 404
    assert browser.poll()["status"] == "complete"


def _staff_login_error(desk, http, portal, presentations) -> dict[str, str]:
    url, session = portal.login_url()
    browser = Browser(http)
    browser.open(url)
    answered = wallet_answer(desk, http, browser.wallet_link, presentations)
    assert answered.status_code == 400
    params = portal.callback(browser.poll()["redirect_to"], session)
    assert params["error"] == "access_denied" and "code" not in params
    return params | {"wallet_error": answered.json()["error"]}


@pytest.mark.parametrize(("make", "code"), [
    (lambda desk: authorisation(desk, enterprise_uscc="91310000MA1FL0JX4B"), "enterprise_mismatch"),
    (lambda desk: authorisation(desk, holder=desk.holder), "holder_keys_inconsistent"),
    (lambda desk: authorisation(desk, licence_idx=99), "authorisation_for_another_licence"),
    (lambda desk: authorisation(desk, days_left=-1), "authorisation_not_in_term"),
])
def test_a_staff_authorisation_that_does_not_fit_the_licence_is_no_login(desk, http, portal, make, code):
    credential = make(desk)
    holder = desk.holder if code == "holder_keys_inconsistent" else desk.staff_key
    params = _staff_login_error(desk, http, portal, {"licence": (desk.licence, desk.holder),
                                                     "authorisation": (credential, holder)})
    assert params["wallet_error"] == code and code in params["error_description"]


def test_a_revoked_staff_authorisation_is_no_login_not_a_login_as_the_enterprise(desk, http, portal):
    desk.set_status(8, 1)
    params = _staff_login_error(desk, http, portal, {"licence": (desk.licence, desk.holder),
                                                     "authorisation": (authorisation(desk), desk.staff_key)})
    assert "revoked" in params["error_description"]


def test_an_authorisation_outside_the_portals_service_item_is_no_login(desk, http):
    created = register(http, desk, item=desk.TAX_ITEM)
    portal = SamplePortal(http, created["client_id"], created["client_secret"])
    params = _staff_login_error(desk, http, portal, {
        "licence": (desk.licence, desk.holder),
        "authorisation": (authorisation(desk, scope={"matters": [desk.FOOD_ITEM]}), desk.staff_key)})
    assert params["wallet_error"] == "authorisation_out_of_scope"


def test_a_revoked_licence_is_no_login(desk, http, portal):
    desk.set_status(7, 1)
    url, session = portal.login_url()
    browser = Browser(http)
    browser.open(url)
    assert wallet_answer(desk, http, browser.wallet_link).json()["error"] == "revoked"
    assert portal.callback(browser.poll()["redirect_to"], session)["error"] == "access_denied"


# --- the token endpoint ---------------------------------------------------------------------------------


def test_a_wrong_code_verifier_is_invalid_grant(desk, http, portal):
    params, session = log_in(desk, http, portal)
    r = portal.redeem(params["code"], session, verifier=secrets.token_urlsafe(48))
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    r = portal.redeem(params["code"], session, verifier="")
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")


def test_a_missing_code_verifier_is_invalid_request(desk, http, portal):
    params, session = log_in(desk, http, portal)
    form = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": CALLBACK,
            "client_id": portal.client_id, "client_secret": portal.client_secret}
    r = http.post("/verifier/oidc/token", data=form)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")


def test_a_reused_code_is_invalid_grant_and_revokes_the_first_tokens(desk, http, portal):
    params, session = log_in(desk, http, portal)
    first = portal.redeem(params["code"], session).json()
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    assert http.get("/verifier/oidc/userinfo", headers=bearer).status_code == 200
    again = portal.redeem(params["code"], session)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    r = http.get("/verifier/oidc/userinfo", headers=bearer)
    assert (r.status_code, r.json()["error"]) == (401, "invalid_token")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert portal.redeem(params["code"], session).json()["error"] == "invalid_grant"


def test_the_service_names_the_reason_of_an_invalid_grant(desk, http, portal):
    params, session = log_in(desk, http, portal)
    form = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": CALLBACK,
            "code_verifier": session["verifier"], "client_id": portal.client_id, "client_secret": portal.client_secret}
    for changes, reason in (({"code_verifier": "x" * 43}, "pkce_mismatch"),
                            ({"redirect_uri": CALLBACK + "?x=1"}, "redirect_uri_mismatch"),
                            ({"code": "nope"}, "unknown_code")):
        with pytest.raises(oidc.InvalidGrant) as info:
            desk.service.oidc_token({**form, **changes})
        assert info.value.reason == reason
    desk.service.oidc_token(form)
    with pytest.raises(oidc.InvalidGrant) as info:
        desk.service.oidc_token(form)
    assert info.value.reason == "code_reused"


def test_an_expired_code_is_invalid_grant(desk, http, portal):
    params, session = log_in(desk, http, portal)
    desk.clock.advance(60)
    r = portal.redeem(params["code"], session)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    with pytest.raises(oidc.InvalidGrant) as info:
        desk.service.oidc_token({"grant_type": "authorization_code", "code": params["code"], "redirect_uri": CALLBACK,
                                 "code_verifier": session["verifier"], "client_id": portal.client_id,
                                 "client_secret": portal.client_secret})
    assert info.value.reason == "code_expired"


def test_a_code_redeemed_just_in_time_works(desk, http, portal):
    params, session = log_in(desk, http, portal)
    desk.clock.advance(59)
    assert portal.redeem(params["code"], session).status_code == 200


@pytest.mark.parametrize("secret", ["wrong", ""])
def test_a_wrong_client_secret_is_invalid_client(desk, http, portal, secret):
    params, session = log_in(desk, http, portal)
    r = portal.redeem(params["code"], session, secret=secret)
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    assert r.headers["www-authenticate"].startswith("Basic")
    r = portal.redeem(params["code"], session, secret=secret, post_auth=True)
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    assert portal.redeem(params["code"], session).status_code == 200  # the code was not spent


def test_client_authentication_is_required_and_one_method_only(desk, http, portal):
    params, session = log_in(desk, http, portal)
    form = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": CALLBACK,
            "code_verifier": session["verifier"]}
    r = http.post("/verifier/oidc/token", data=form)
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    basic = "Basic " + base64.b64encode(f"{portal.client_id}:{portal.client_secret}".encode()).decode()
    r = http.post("/verifier/oidc/token", data={**form, "client_secret": portal.client_secret},
                  headers={"Authorization": basic})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = http.post("/verifier/oidc/token", data={**form, "grant_type": "password"}, headers={"Authorization": basic})
    assert (r.status_code, r.json()["error"]) == (400, "unsupported_grant_type")
    r = http.post("/verifier/oidc/token", content=json.dumps(form), headers={"Authorization": basic,
                                                                            "Content-Type": "application/json"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")


def test_another_portals_code_is_invalid_grant(desk, http, portal):
    other = register(http, desk, name="其他门户")
    thief = SamplePortal(http, other["client_id"], other["client_secret"])
    params, session = log_in(desk, http, portal)
    r = thief.redeem(params["code"], session)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    assert portal.redeem(params["code"], session).status_code == 200


def test_the_portal_rejects_an_id_token_issued_for_another_session_nonce(desk, http, portal):
    params, session = log_in(desk, http, portal)
    _, other_session = portal.login_url()
    id_token = portal.redeem(params["code"], session).json()["id_token"]
    with pytest.raises(LoginRefusedByPortal, match="nonce"):
        portal.verify_id_token(id_token, {**session, "nonce": other_session["nonce"]})
    assert pyjwt.decode(id_token, options={"verify_signature": False})["nonce"] == session["nonce"]


def test_the_portal_rejects_an_expired_id_token(desk, http, portal):
    params, session = log_in(desk, http, portal)
    id_token = portal.redeem(params["code"], session).json()["id_token"]
    desk.clock.advance(299)
    portal.verify_id_token(id_token, session)
    desk.clock.advance(1)
    with pytest.raises(LoginRefusedByPortal, match="expired"):
        portal.verify_id_token(id_token, session)


def test_an_id_token_signed_by_another_key_does_not_verify(desk, http, portal):
    params, session = log_in(desk, http, portal)
    id_token = portal.redeem(params["code"], session).json()["id_token"]
    header, payload, signature = id_token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["uscc"] = "91310000MA1FL0JX4B"
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(pyjwt.InvalidSignatureError):
        portal.verify_id_token(f"{header}.{body}.{signature}", session)


# --- registration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"redirect_uris": ["http://portal.example.gov.cn/cb"]}, 400, "invalid_value"),
    ({"redirect_uris": ["https://portal.example.gov.cn/cb#frag"]}, 400, "invalid_value"),
    ({"redirect_uris": []}, 400, "invalid_value"),
    ({"item": "no-such-item"}, 404, "unknown_item"),
])
def test_a_portal_registration_is_checked(desk, http, body, status, code):
    r = http.post("/verifier/departments/pudong-window/portals", json={"name": "门户", "redirect_uris": [CALLBACK], **body},
                  headers={"Authorization": f"Bearer {desk.api_key}"})
    assert (r.status_code, r.json()["error"]) == (status, code)


def test_a_department_must_accept_what_a_login_presents(desk, http):
    r = http.post("/verifier/departments/tax-office/portals", json={"name": "税务门户", "redirect_uris": [CALLBACK]},
                  headers={"Authorization": f"Bearer {desk.tax_api_key}"})
    assert (r.status_code, r.json()["error"]) == (403, "type_not_allowed")
    created = register(http, desk, department="tax-office", api_key=desk.tax_api_key, allow_staff=False,
                       redirect_uris=["http://127.0.0.1:8080/cb"])
    portal = SamplePortal(http, created["client_id"], created["client_secret"], "http://127.0.0.1:8080/cb")
    url, session = portal.login_url()
    browser = Browser(http)
    browser.open(url)
    request = wallet_fetch(desk, http, browser.wallet_link)
    assert request.client_id == "x509_san_dns:tax.example.gov.cn"
    assert [q.id for q in request.dcql_query.credentials] == ["licence"]


def test_registering_a_portal_needs_a_staff_key(desk, http):
    r = http.post("/verifier/departments/pudong-window/portals", json={"name": "门户", "redirect_uris": [CALLBACK]})
    assert (r.status_code, r.json()["error"]) == (401, "unauthorized")


def test_a_revoked_portal_cannot_log_in_or_redeem_and_its_tokens_die(desk, http, portal):
    params, session = log_in(desk, http, portal)
    tokens = portal.redeem(params["code"], session).json()
    pending, pending_session = log_in(desk, http, portal)
    staff = {"Authorization": f"Bearer {desk.api_key}"}
    listed = http.get("/verifier/departments/pudong-window/portals", headers=staff).json()
    assert [p["client_id"] for p in listed] == [portal.client_id] and "client_secret" not in listed[0]
    other = {"Authorization": f"Bearer {desk.tax_api_key}"}
    assert http.delete(f"/verifier/departments/tax-office/portals/{portal.client_id}", headers=other).status_code == 404
    assert http.delete(f"/verifier/departments/pudong-window/portals/{portal.client_id}", headers=staff).status_code == 204
    r = http.get("/verifier/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert (r.status_code, r.json()["error"]) == (401, "invalid_token")
    r = portal.redeem(pending["code"], pending_session)
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    url, _ = portal.login_url()
    page = Browser(http).open(url)
    assert page.status_code == 400 and "location" not in page.headers and "invalid_client" in page.text


def test_purge_forgets_who_logged_in_once_the_login_is_over(desk, http, portal):
    params, session = log_in(desk, http, portal)
    portal.redeem(params["code"], session)
    code_hash = store.api_key_hash(params["code"])

    def identity() -> Any:
        with store.unit_of_work(desk.sessions, read_only=True) as tx:
            return store.get_login_by_code(tx, code_hash=code_hash).identity

    desk.clock.advance(3600 + 300)
    desk.service.purge()
    assert identity() is not None  # the request expired exactly keep_results_for ago: not yet
    desk.clock.advance(1)
    assert desk.service.purge() >= 1
    assert identity() is None


def test_the_authorization_endpoint_takes_a_posted_form_too(desk, http, portal):
    url, session = portal.login_url()
    form = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    page = http.post("/verifier/oidc/authorize", data=form, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "openid4vp://" in page.text
    r = http.post("/verifier/oidc/authorize", data={**form, "scope": "email"})
    assert r.status_code == 303 and portal.callback(r.headers["location"], session)["error"] == "invalid_scope"
