"""Log in with e-licence in a real headless Chromium, against a real ``elicence serve`` process (demo seed:
the authorities, the demo department, and the sample portal registered as its OpenID Connect client), on
SQLite and on PostgreSQL when configured.

The story: the enterprise's legal representative holds the licence in the wallet (issued by the local
issuer over OpenID4VCI, through the HTTP APIs); in the browser they open the sample portal ``/portal``,
click "使用电子营业执照登录 / Log in with e-licence", land on the provider's login page with a QR code
(read from the page and decoded from a screenshot of the QR image: both are the same ``openid4vp://``
link); the wallet answers it with consent; the login page, polling, takes the browser back to the portal
by itself, and the portal shows the enterprise's name and USCC. Then the refusal: the wallet declines and
the portal shows ``access_denied``. A screenshot of the logged-in portal is kept under
``$ELICENCE_TEST_ARTIFACTS`` (or the test's ``tmp_path``). And, without a browser, the README's portal
registration runs as written against the server and the portal it registers gets the login page.

Playwright drives the system Chromium (``ELICENCE_CHROMIUM`` or ``/usr/bin/chromium``); without one the
test is skipped, except under ``CI=true``, where it fails (the ``chromium`` fixture, tests/elicence/conftest.py).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from credentials import qr
from elicence.portal import DEMO_PORTAL_FILE, PORTAL_PATH
from schemas.synthetic import generate_business_licence
from tests.elicence.served import ROOT, elicence_serve
from tests.elicence.test_portal_oidc_interop import wallet_answers
from tests.wallet.test_wallet_flows import PASSWORD, PIN

TIMEOUT_MS = 20_000
README = ROOT / "README.md"


def licence_holder(http: httpx.Client, var: Path, seed: int) -> tuple[dict[str, str], dict[str, Any]]:
    """Over the HTTP APIs: the sh-amr operator imports a record and makes an offer; the legal representative
    signs up, claims the enterprise and receives the licence with the offer's PIN."""
    key = next(o["api_key"] for o in json.loads((var / "demo-operators.json").read_text()) if o["authority"] == "sh-amr")
    admin = {"Authorization": f"Bearer {key}"}
    claims = generate_business_licence(random.Random(seed))
    r = http.post("/issuers/sh-amr/admin/records", headers=admin, json={"type": "business-licence", "claims": claims})
    assert r.is_success, r.text
    offer = http.post("/issuers/sh-amr/admin/offers", headers=admin, json={"type": "business-licence",
                                                                          "uscc": claims["uscc"]}).json()
    phone = f"139{seed:08d}"
    assert http.post("/wallet/accounts", json={"phone": phone, "password": PASSWORD, "display_name": "张三"}).is_success
    token = http.post("/wallet/sessions", json={"phone": phone, "password": PASSWORD}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert http.put("/wallet/pin", headers=headers, json={"pin": PIN}).status_code == 204
    enterprise = http.post("/wallet/enterprises", headers=headers, json={"uscc": claims["uscc"], "name": claims["name"]})
    assert enterprise.is_success, enterprise.text
    r = http.post("/wallet/credentials/receive", headers=headers, json={
        "offer": offer["offer_uri"], "tx_code": offer["tx_code"], "enterprise_id": enterprise.json()["id"]})
    assert r.status_code == 201, r.text
    return headers, claims


def _to_login_page(page: Any, base: str) -> str:
    """Click the portal's login button; on the provider's page, the QR code's link (decoded from the image)."""
    page.goto(f"{base}{PORTAL_PATH}/")
    page.click("#login")
    page.wait_for_url("**/verifier/oidc/authorize?**")
    page.locator("#qr svg").wait_for()
    link = page.get_attribute("#wallet-link", "href")
    assert link is not None and link.startswith("openid4vp://")
    assert qr.decode_image(page.locator("#qr svg").screenshot()) == link  # the QR a phone would scan
    return link


def test_an_enterprise_logs_in_to_the_sample_portal_with_its_e_licence_in_chromium(
        chromium, database_url, tmp_path):
    from playwright.sync_api import sync_playwright

    artifacts = Path(os.environ.get("ELICENCE_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    # The demo department's access certificate names localhost: its OpenID4VP request and response URIs
    # are on this deployment only when the public URL is on that host name (verifier.service._origin).
    with elicence_serve(tmp_path, {"ELICENCE_DATABASE_URL": database_url}) as served, \
            httpx.Client(base_url=served.base, timeout=30) as http:
        assert f"sample portal     {served.base}{PORTAL_PATH}" in served.output()
        assert stat.S_IMODE((served.var / DEMO_PORTAL_FILE).stat().st_mode) == 0o600
        headers, claims = licence_holder(http, served.var, seed=23)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium)
            try:
                page = browser.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                problems: list[str] = []
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))

                response = page.goto(f"{served.base}{PORTAL_PATH}/")
                assert response is not None and response.status == 200
                assert "使用电子营业执照登录" in page.inner_text("#login")
                assert "script-src 'none'" in response.headers["content-security-policy"]

                # Consent: the login page polls and returns to the portal by itself, which shows who logged in.
                wallet_answers(http, headers, _to_login_page(page, served.base))
                page.wait_for_url(f"{served.base}{PORTAL_PATH}/")
                page.locator("#logged-in").wait_for()
                assert page.inner_text("#enterprise-name") == claims["name"]
                assert page.inner_text("#uscc") == claims["uscc"]
                shot = artifacts / "portal-logged-in.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"\nscreenshot of the logged-in sample portal: {shot}")

                # Log out, log in again, and decline in the wallet: the portal says access_denied.
                page.click("#logout")
                page.locator("#logged-out").wait_for()
                wallet_answers(http, headers, _to_login_page(page, served.base), consent=False)
                page.wait_for_selector('#error[data-code="access_denied"]')
                assert page.inner_text("#error-code") == "access_denied"
                assert page.locator("#logged-in").count() == 0 and page.locator("#login").is_visible()

                unexpected = [m for m in problems if "status of 40" not in m]  # the refusal page is a 403
                assert unexpected == [], unexpected
            finally:
                browser.close()


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("curl")), reason="needs bash and curl")
def test_the_readme_registers_a_portal_and_finds_the_provider(database_url, tmp_path):
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Log in with e-licence"):]
    script = next(b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if "/portals" in b)
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # the README calls .venv/bin/...
    with elicence_serve(tmp_path, {"ELICENCE_DATABASE_URL": database_url}) as served:
        done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script.replace("http://127.0.0.1:8000", served.base)],
                              cwd=tmp_path, env=served.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        registered = json.loads((tmp_path / "portal.json").read_text())
        assert registered["client_id"].startswith("elp_") and registered["client_secret"]
        assert registered["redirect_uris"] == ["https://portal.example.gov.cn/callback"]
        metadata = json.loads(done.stdout)
        assert metadata["issuer"] == f"{served.base}/verifier"
        assert metadata["code_challenge_methods_supported"] == ["S256"]
        # The portal's authorization request gets the login page with the wallet's QR code.
        r = httpx.get(metadata["authorization_endpoint"], params={
            "response_type": "code", "client_id": registered["client_id"], "scope": "openid", "state": "s",
            "redirect_uri": registered["redirect_uris"][0], "nonce": "n", "code_challenge_method": "S256",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"})
        assert r.status_code == 200 and 'id="wallet-link" href="openid4vp://' in r.text
