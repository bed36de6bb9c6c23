"""The story of ``elicence demo`` through the pages, in a real headless Chromium against a real ``elicence
serve`` (SQLite, and PostgreSQL when configured): the authority issues over its admin API (it has no page);
the legal representative signs up on the wallet demo page, claims the enterprise, receives the licence
with the offer link and PIN, and shows it as a QR code; the department's desk page scans the code's text
(as a hardware scanner types it) for a service item: green, the licence copy exempt; the sample portal's
login is answered on the wallet page (扫码 tab, the login page's link) and the portal shows the
enterprise; a staff member is authorised (wallet API, with the page's session); the authority revokes
the licence (admin API); once the desk's copy of the status list is due, a fresh code from the wallet page
scans red ``revoked``, with the reason in Chinese and English.

The HTTP flows are those of :mod:`elicence.story`; the page helpers those of the page tests.
"""

from __future__ import annotations

import base64
import random
import time

import httpx

from credentials import qr
from credentials.errors import ERROR_CLASSES
from elicence import story
from elicence.pages import DEPARTMENT_PAGE_PATH
from elicence.portal import PORTAL_PATH
from tests.elicence.served import SHORT_TTL, elicence_serve
from tests.elicence.test_department_page import _verdict
from tests.elicence.test_portal_page import _to_login_page
from tests.elicence.test_wallet_page import TIMEOUT_MS, _pin, _sign_up

PHONE = "13900000031"


def _shown_code(wallet, previous: str | None = None) -> str:
    """Show the licence as a QR code on the wallet page (credentials tab, PIN); the EL1 text its PNG holds."""
    wallet.click('nav [data-tab="credentials"]')
    wallet.locator("article.card[data-vct$='business-licence'] button.show-qr").click()
    _pin(wallet, story.PIN)
    wallet.locator("#qr-view").wait_for(state="visible")
    if previous is not None:
        wallet.wait_for_function("s => document.getElementById('qr-image').src !== s", arg=previous)
    src = wallet.get_attribute("#qr-image", "src")
    assert src is not None and src.startswith("data:image/png;base64,")
    return src


def _scanned(desk, src: str) -> None:
    """The desk's scanner field gets the code's text (read from the wallet page's PNG) and Enter."""
    desk.fill("#scanner", qr.decode_image(base64.b64decode(src.split(",", 1)[1])))
    desk.press("#scanner", "Enter")


def test_the_story_runs_through_the_pages_in_chromium(chromium, database_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with elicence_serve(tmp_path, {"ELICENCE_DATABASE_URL": database_url, **SHORT_TTL}) as served, \
            httpx.Client(base_url=served.base, timeout=30) as http:
        keys = story.DemoKeys.read(served.var)
        claims = (issued := story.issue_licence(http, keys.operator_key, random.Random(31))).claims
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium)
            try:
                wallet, desk, portal = (browser.new_context().new_page() for _ in range(3))
                problems: list[str] = []
                for page in (wallet, desk, portal):
                    page.set_default_timeout(TIMEOUT_MS)
                    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                    page.on("pageerror", lambda e: problems.append(str(e)))

                # The wallet demo page: sign up with the PIN, claim the enterprise, receive, show the QR code.
                _sign_up(wallet, served.base, PHONE, claims["legal_representative"])
                wallet.click('nav [data-tab="enterprises"]')
                wallet.fill("#claim-uscc", claims["uscc"])
                wallet.fill("#claim-name", claims["name"])
                wallet.click("#claim-submit")
                wallet.locator("#enterprise-list li", has_text=claims["name"]).wait_for()
                wallet.click('nav [data-tab="receive"]')
                wallet.fill("#receive-offer", issued.offer["offer_uri"])
                wallet.fill("#receive-tx-code", issued.offer["tx_code"])
                wallet.click("#receive-submit")
                wallet.locator("article.card[data-vct$='business-licence']").wait_for()
                src = _shown_code(wallet)

                # The department's desk: sign in with the staff key, the service item, the scanner's text.
                desk.goto(f"{served.base}{DEPARTMENT_PAGE_PATH}?department={keys.department}")
                desk.fill("#sign-in-key", keys.staff_key)
                desk.click("#sign-in-submit")
                desk.locator("#view-desk").wait_for(state="visible")
                desk.select_option("#item", story.ITEM)
                _scanned(desk, src)
                first_scan = time.monotonic()
                desk.wait_for_selector("#result-exemption:not(.hidden)")
                assert claims["name"] in _verdict(desk, "valid")
                row = desk.locator(f"#result-materials tr[data-material='{story.LICENCE_COPY}']")
                assert row.get_attribute("data-status") == "exempt"

                # The sample portal: its login page's link, answered on the wallet page; back at the portal.
                link = _to_login_page(portal, served.base)
                wallet.click('nav [data-tab="scan"]')
                wallet.fill("#scan-link", link)
                wallet.click("#scan-submit")
                wallet.locator("#scan-preview").wait_for(state="visible")
                wallet.click("#scan-consent")
                _pin(wallet, story.PIN)
                wallet.wait_for_selector("#scan-result[data-outcome='sent']")
                portal.wait_for_url(f"{served.base}{PORTAL_PATH}/")
                portal.locator("#logged-in").wait_for()
                assert portal.inner_text("#enterprise-name") == claims["name"]
                assert portal.inner_text("#uscc") == claims["uscc"]

                # A staff member authorised (wallet API, the page's session), the licence revoked (admin API).
                token = wallet.evaluate("JSON.parse(sessionStorage.getItem('elicence.wallet.session')).access")
                holder = story.Holder({"Authorization": f"Bearer {token}"}, PHONE, claims["legal_representative"])
                (licence,) = story.expect(http.get("/wallet/credentials", headers=holder.headers), 200, "credentials")
                staff = story.sign_up(http, "13900000032", "李四", pin=None)
                story.authorise_staff(http, holder, licence["enterprise_id"], staff)
                changed = story.revoke(http, keys.operator_key, claims["uscc"])
                assert [a["status"] for a in changed["authorisations"]] == ["revoked"]

                # Once the desk's copy of the status list is due (its ttl), a fresh code scans red: revoked.
                due = first_scan + story.status_ttl(http, licence["status_list_uri"]) + 1
                time.sleep(max(0.0, due - time.monotonic()))
                # A second code after the tab changes (the card list is rebuilt while the QR view sits in it).
                _scanned(desk, _shown_code(wallet, previous=src))
                _verdict(desk, "invalid", "revoked")
                red = desk.evaluate("getComputedStyle(document.querySelector('#result h2')).color")
                assert red == "rgb(179, 38, 30)", red  # --bad: #b3261e
                assert desk.inner_text("#result-reason-zh") == ERROR_CLASSES["revoked"].description_zh
                assert desk.inner_text("#result-reason-en") == ERROR_CLASSES["revoked"].description
                desk.locator("#result").screenshot(path=str(tmp_path / "story-revoked.png"))

                unexpected = [m for m in problems if "status of 4" not in m]
                assert unexpected == [], unexpected
            finally:
                browser.close()
