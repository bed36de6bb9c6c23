"""Interop without a browser: the sample portal (elicence/portal.py, Authlib's OpenID Connect client) logs
in against our OpenID Provider (verifier/), both in one deployment app in process, Authlib's HTTP calls
(discovery, JWKS, token endpoint) routed into the app. The wallet answers through its own HTTP API
(inspect, respond) with a licence it received over OpenID4VCI; the portal page then shows the ID Token's
claims as Authlib validated them. Also: the portal's own checks (state bound to the browser, ``iss``,
a forged session), its seeding, and that it shares no code with the provider. SQLite, and PostgreSQL
when configured."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from elicence import portal
from elicence.app import DemoStaff, seed_demo_portal
from tests.test_architecture import imported_modules
from tests.verifier.service.test_verifier_oidc import Browser
from tests.verifier.service.test_verifier_oidc_wallet import PUBLIC, World
from tests.wallet.test_wallet_flows import PIN

PORTAL = portal.PORTAL_PATH


def wallet_answers(http: httpx.Client, headers: dict[str, str], link: str, *, consent: bool = True) -> dict[str, Any]:
    """The wallet (its backend's HTTP API) reads the openid4vp:// request, then consents with the PIN or refuses."""
    preview = http.post("/wallet/requests/inspect", headers=headers, json={"request": link})
    assert preview.status_code == 200, preview.text
    p = preview.json()
    assert p["satisfiable"], p
    r = http.post("/wallet/requests/respond", headers=headers, json={
        "request_object": p["request_object"], "client_id": p["client_id"], "consent": consent, "pin": PIN})
    assert r.status_code == 200, r.text
    return p


def shown_claims(page: str) -> dict[str, Any]:
    """The ID Token claims the portal page lists (as Authlib validated them)."""
    found = re.search(r'<pre id="claims">(.*?)</pre>', page, re.S)
    assert found, page
    return json.loads(html.unescape(found.group(1)))


class Site:
    """The deployment app of the wallet-login tests, with the sample portal seeded and mounted on it."""

    def __init__(self, sessions, var: Path) -> None:
        self.world = World(sessions)
        created = self.world.verifier.create_staff(department="portal-login", name="门户管理员")
        self.staff = [DemoStaff("portal-login", created.staff.id, created.api_key)]
        self.var = var
        settings = seed_demo_portal(self.world.verifier, self.staff, var, PUBLIC)
        assert settings is not None
        self.settings = settings
        app = self.world.client.app
        portal.install(app, settings, transport=httpx.ASGITransport(app=app))
        self.client = self.world.client

    def start(self, client: TestClient | None = None) -> tuple[Browser, dict[str, str]]:
        """The user clicks the login button: the portal sends the browser to the provider's login page."""
        client = client or self.client
        r = client.get(f"{PORTAL}/login")
        assert r.status_code == 302, r.text
        browser = Browser(client)
        assert browser.open(r.headers["location"]).status_code == 200
        return browser, {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}

    def log_in(self, headers: dict[str, str], *, consent: bool = True) -> tuple[Any, dict[str, str]]:
        """The whole login: the button, the wallet's answer, the page's poll back to the portal's callback."""
        browser, sent = self.start()
        wallet_answers(self.client, headers, browser.wallet_link, consent=consent)
        polled = browser.poll()
        assert polled["redirect_to"].startswith(self.settings.redirect_uri + "?"), polled
        parts = urlsplit(polled["redirect_to"])
        return self.client.get(f"{parts.path}?{parts.query}"), sent


@pytest.fixture
def site(sessions, tmp_path) -> Site:
    return Site(sessions, tmp_path / "var")


def test_the_portal_logs_the_enterprise_in_through_authlib_and_shows_the_validated_id_token(site):
    page = site.client.get(f"{PORTAL}/")
    assert page.status_code == 200 and 'id="login"' in page.text and "使用电子营业执照登录" in page.text
    headers, _, claims = site.world.licence_holder()
    callback, sent = site.log_in(headers)
    # What Authlib sent: the code flow with PKCE S256, a state and a nonce, to the discovered endpoint.
    assert sent["response_type"] == "code" and sent["scope"] == "openid"
    assert sent["client_id"] == site.settings.client_id and sent["redirect_uri"] == site.settings.redirect_uri
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
    assert sent["state"] and sent["nonce"]
    assert callback.status_code == 303 and callback.headers["location"] == f"{PORTAL}/"
    home = site.client.get(f"{PORTAL}/")
    assert 'id="logged-in"' in home.text
    assert f'<dd id="enterprise-name">{html.escape(claims["name"])}</dd>' in home.text
    assert f'<dd id="uscc">{claims["uscc"]}</dd>' in home.text
    token = shown_claims(home.text)
    assert token["iss"] == site.world.verifier.oidc_issuer and token["aud"] == site.settings.client_id
    assert token["nonce"] == sent["nonce"] and token["exp"] > token["iat"] and token["sub"]
    assert (token["uscc"], token["enterprise_name"]) == (claims["uscc"], claims["name"])
    assert "act" not in token and token["amr"] == ["elicence"]


def test_a_staff_member_is_shown_as_acting_with_the_scope_of_the_authorisation(site):
    headers, enterprise, claims = site.world.licence_holder()
    staff, _ = site.world.staff_member(headers, enterprise)
    callback, _ = site.log_in(staff)
    assert callback.status_code == 303
    home = site.client.get(f"{PORTAL}/").text
    assert f'<dd id="uscc">{claims["uscc"]}</dd>' in home and '<dd id="acting">李四</dd>' in home
    assert "all service items" in re.search(r'<dd id="scope">(.*?)</dd>', home).group(1)
    token = shown_claims(home)
    assert token["act"]["name"] == "李四" and token["authorisation"]["scope"] == {"all": True}
    assert token["act"]["sub"] != token["sub"]


def test_a_refusal_in_the_wallet_shows_access_denied_and_logs_nobody_in(site):
    headers, _, _ = site.world.licence_holder()
    callback, _ = site.log_in(headers, consent=False)
    assert callback.status_code == 403
    assert 'data-code="access_denied"' in callback.text and 'id="login"' in callback.text
    assert 'id="logged-in"' not in site.client.get(f"{PORTAL}/").text


def test_an_answer_is_taken_once_and_only_in_the_browser_that_asked(site):
    headers, _, _ = site.world.licence_holder()
    browser, sent = site.start()
    wallet_answers(site.client, headers, browser.wallet_link)
    parts = urlsplit(browser.poll()["redirect_to"])
    callback = f"{parts.path}?{parts.query}"
    # Another browser (no session cookie) holding the link is turned away, and the code stays unspent...
    stranger = TestClient(site.client.app, base_url=PUBLIC, follow_redirects=False)
    r = stranger.get(callback)
    assert r.status_code == 400 and 'data-code="mismatching_state"' in r.text
    # ...so the browser that asked logs in with it; a replay of the same answer is refused.
    assert site.client.get(callback).status_code == 303
    replay = site.client.get(callback)
    assert replay.status_code == 400 and 'data-code="mismatching_state"' in replay.text
    # An error answer is shown only for a login this browser started, with the provider's state.
    forged = site.client.get(f"{PORTAL}/callback?error=access_denied&state={sent['state']}")
    assert 'data-code="mismatching_state"' in forged.text and "access_denied" not in forged.text


def test_an_answer_naming_another_issuer_is_refused(site):
    _, sent = site.start()
    r = site.client.get(f"{PORTAL}/callback", params={"code": "x" * 43, "state": sent["state"],
                                                      "iss": "https://op.example.com"})
    assert r.status_code == 400 and 'data-code="issuer_mismatch"' in r.text
    # The login is over: the same state with the right issuer is no longer accepted.
    r = site.client.get(f"{PORTAL}/callback", params={"code": "x" * 43, "state": sent["state"],
                                                      "iss": site.world.verifier.oidc_issuer})
    assert 'data-code="mismatching_state"' in r.text


def test_an_unknown_code_is_the_providers_invalid_grant(site):
    _, sent = site.start()
    r = site.client.get(f"{PORTAL}/callback", params={"code": "x" * 43, "state": sent["state"],
                                                      "iss": site.world.verifier.oidc_issuer})
    assert r.status_code == 400 and 'data-code="invalid_grant"' in r.text


def test_a_session_cookie_signed_with_another_key_is_ignored(site):
    headers, _, _ = site.world.licence_holder()
    assert site.log_in(headers)[0].status_code == 303
    cookie = site.client.cookies.get(portal.SESSION_COOKIE)
    payload, _, signature = cookie.rpartition(".")
    site.client.cookies.set(portal.SESSION_COOKIE, payload + "." + signature[::-1], path=PORTAL)
    assert 'id="logged-out"' in site.client.get(f"{PORTAL}/").text


def test_the_portal_pages_run_no_script_and_post_only_to_themselves(site):
    r = site.client.get(f"{PORTAL}/")
    policy = dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["script-src"] == "'none'"
    assert policy["form-action"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert policy["style-src"].startswith("'sha256-") and "unsafe" not in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
    assert site.client.get(f"{PORTAL}/logout").status_code == 405  # logging out is a POST


def test_seeding_keeps_the_client_in_a_private_file_and_reuses_it(site):
    path = site.var / portal.DEMO_PORTAL_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert portal.PortalSettings.load(path) == site.settings
    verifier = site.world.verifier
    assert seed_demo_portal(verifier, site.staff, site.var, PUBLIC) == site.settings  # a restart reuses it
    # Another public URL (another port): registered afresh, the old client revoked.
    moved = seed_demo_portal(verifier, site.staff, site.var, "http://127.0.0.1:9001")
    assert moved is not None and moved.client_id != site.settings.client_id
    assert moved.redirect_uri == "http://127.0.0.1:9001/portal/callback"
    member = verifier.authenticate(site.staff[0].api_key, department="portal-login")
    listed = {p["client_id"]: p for p in verifier.portals(member)}
    assert listed[site.settings.client_id]["revoked_at"] is not None
    assert listed[moved.client_id]["revoked_at"] is None
    assert seed_demo_portal(verifier, [], site.var, PUBLIC) is None  # no staff member: no portal
    stale = [DemoStaff("portal-login", "st_gone", "a key of another database")]
    assert seed_demo_portal(verifier, stale, site.var, PUBLIC) is None


def test_the_portal_shares_no_code_with_the_provider():
    root = Path(__file__).resolve().parents[2]
    source = (root / "elicence" / "portal.py").read_text(encoding="utf-8")
    ours = {name.split(".")[0] for name in imported_modules(source, "elicence/portal.py")}
    assert ours & {"verifier", "credentials", "keys", "issuer", "wallet", "schemas"} == set()
    assert "authlib" in ours


def test_a_discovery_document_naming_another_issuer_is_not_followed(site):
    # The provider's issuer is on localhost: a discovery URL on 127.0.0.1 gets a document naming another issuer.
    app = site.client.app
    moved = dataclasses.replace(site.settings, discovery_url=f"{PUBLIC}/verifier/.well-known/openid-configuration")
    other = TestClient(portal.create_portal_app(moved, transport=httpx.ASGITransport(app=app)),
                       base_url=PUBLIC, follow_redirects=False)
    r = other.get("/login")  # the portal app on its own: its routes are not under the mount point
    assert r.status_code == 502 and 'data-code="issuer_mismatch"' in r.text and "location" not in r.headers
