"""The department scan page (``GET /verifier/desk``, elicence/pages.py) in a real headless Chromium, against a
real server: the deployment's app (issuer, wallet, trust list, verifier with the demo department
``pudong-window`` and its staff key) under uvicorn on a free port, on SQLite (and PostgreSQL when configured).

The story of a counter: a wallet (over its HTTP API) receives an enterprise's licence and shows it as a QR
code; the staff member signs in with the staff API key (a wrong key shows ``unauthorized``), and scans the
code three ways: the device camera (Chromium's fake capture device playing a Y4M video made here from the
wallet's QR PNG, blank frames first), an uploaded photo (with a service item: the materials exempt from
submission, and the signed receipt downloaded and checked), and a hardware scanner's text with Enter. Each
is a green card with the enterprise's name. The same code again is a red card (``replay``) with the reason
in Chinese and English, garbage is red (``malformed``), a code the page does not know still shows its raw
code, and a photo without a code is ``no_qr_code`` and recorded nowhere: camera frames without a code must
not fill the verification records. Screenshots of the result card are saved to ``ELICENCE_TEST_ARTIFACTS``
(else the test's ``tmp_path``) and their paths printed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from credentials.errors import ERROR_CLASSES
from elicence import pages
from elicence.app import (
    DEMO_DEPARTMENT,
    create_app,
    open_issuer,
    open_trust_operator,
    open_verifier,
    open_wallet,
    seed_demo,
    seed_demo_verifier,
    wallet_network,
)
from elicence.config import Settings
from elicence.pages import DEPARTMENT_PAGE_PATH
from schemas.synthetic import generate_business_licence
from tests.elicence.strict_page import check_strict_page
from wallet.flows import WalletFlows

PIN = "260817"
TIMEOUT_MS = 20_000
FOOD_ITEM = "310000-food-permit-01"
SLUG = DEMO_DEPARTMENT["slug"]


@dataclass
class Counter:
    """The running deployment, a wallet holding one licence (over HTTP), and the demo staff key."""

    base: str
    staff_key: str
    wallet: httpx.Client
    credential_id: str
    claims: dict[str, Any]

    def code(self) -> dict[str, Any]:
        """A fresh offline QR of the licence (亮码): ``text`` (``EL1:...``) and ``png`` (bytes)."""
        r = self.wallet.post(f"/wallet/credentials/{self.credential_id}/qr", json={"pin": PIN})
        assert r.status_code == 200, r.text
        shown = r.json()
        return {"text": shown["text"], "png": base64.b64decode(shown["png"])}

    def staff(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base}/verifier/departments/{SLUG}{path}",
                             headers={"Authorization": f"Bearer {self.staff_key}", **kw.pop("headers", {})}, **kw)

    def recorded(self) -> int:
        """How many verifications the department has recorded."""
        return len(self.staff("GET", "/verifications", params={"limit": 1000}).json())


@pytest.fixture
def counter(database_url, sessions, tmp_path, live_server) -> Iterator[Counter]:
    settings = Settings.from_env({"ELICENCE_PORT": str(live_server.port), "ELICENCE_DATABASE_URL": database_url},
                                 var_dir=tmp_path / "var")
    issuer = open_issuer(settings, sessions=sessions)
    wallet = open_wallet(settings, sessions=sessions)
    trust = open_trust_operator(settings, issuer)
    verifier = open_verifier(settings, trust, sessions=sessions)
    seed_demo(issuer, settings.var_dir)
    (staff,) = seed_demo_verifier(verifier, settings.var_dir)
    flows = WalletFlows(wallet, wallet_network(settings, trust, verifier_roots=verifier.registrar_certificates))
    live_server.start(create_app(issuer=issuer, wallet=wallet, trust=trust, flows=flows, verifier=verifier))

    operator = issuer.create_operator(authority="sh-amr", name="窗口", actor="test").operator
    claims = generate_business_licence(random.Random(23))
    issuer.import_record(operator, type_name="business-licence", claims=claims)
    offer = issuer.create_offer(operator, type_name="business-licence", uscc=claims["uscc"])
    client = httpx.Client(base_url=live_server.base, timeout=30)
    account = {"phone": "13800000001", "password": "correct horse battery"}
    assert client.post("/wallet/accounts", json={**account, "display_name": "张三"}).status_code == 201
    token = client.post("/wallet/sessions", json=account).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    assert client.put("/wallet/pin", json={"pin": PIN}).status_code < 300
    enterprise = client.post("/wallet/enterprises", json={"uscc": claims["uscc"], "name": claims["name"]}).json()
    received = client.post("/wallet/credentials/receive", json={"offer": offer.offer_uri, "tx_code": offer.tx_code,
                                                                "enterprise_id": enterprise["id"]})
    assert received.status_code == 201, received.text
    try:
        yield Counter(live_server.base, staff.api_key, client, received.json()["id"], claims)
    finally:
        client.close()


def _blank(width: int = 640, height: int = 480) -> Image.Image:
    return Image.new("L", (width, height), 235)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def write_y4m(path: Path, qr_png: bytes, *, width: int = 960, height: int = 720, fps: int = 5) -> None:
    """A Y4M video (YUV4MPEG2, 4:2:0) for Chromium's fake camera: one second of blank frames, then one
    second of the QR code (the device loops it). Luma is the grey image; chroma is neutral."""
    side = min(width, height) - 40
    code = Image.open(io.BytesIO(qr_png)).convert("L").resize((side, side), Image.NEAREST)
    shown = _blank(width, height)
    shown.paste(code, ((width - side) // 2, (height - side) // 2))
    chroma = bytes([128]) * (width // 2 * height // 2) * 2
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image in [_blank(width, height)] * fps + [shown] * fps:
            out.write(b"FRAME\n" + image.tobytes() + chroma)


def _artifact_dir(tmp_path: Path) -> Path:
    where = Path(os.environ.get("ELICENCE_TEST_ARTIFACTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def _screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    path = _artifact_dir(tmp_path) / name
    page.locator("#result").screenshot(path=str(path))
    print(f"\nscreenshot of the result card: {path}")
    return path


def _verdict(page: Any, verdict: str, code: str | None = None) -> str:
    """Wait for the result card's verdict (and code); returns the card's text."""
    selector = f"#result[data-verdict='{verdict}']" + (f"[data-code='{code}']" if code is not None else "")
    page.wait_for_selector(selector, state="visible")
    return page.inner_text("#result")


def test_a_counter_scans_a_wallet_code_by_camera_photo_and_scanner_in_chromium(chromium, counter, backend, tmp_path):
    from playwright.sync_api import sync_playwright

    video = tmp_path / "qr.y4m"
    write_y4m(video, counter.code()["png"])
    name = counter.claims["name"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"])
        try:
            context = browser.new_context(accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(str(e)))

            # The page, its headers; a wrong key is refused with its code, the right one opens the desk.
            response = page.goto(f"{counter.base}{DEPARTMENT_PAGE_PATH}?department={SLUG}")
            assert response is not None and response.status == 200
            headers = response.headers
            assert "default-src 'none'" in headers["content-security-policy"]
            assert "unsafe-inline" not in headers["content-security-policy"]
            assert headers["permissions-policy"].startswith("camera=(self)")
            assert page.input_value("#sign-in-department") == SLUG
            page.fill("#sign-in-key", "elv_not-a-key")
            page.click("#sign-in-submit")
            page.wait_for_selector('#error[data-code="unauthorized"]', state="visible")
            assert page.evaluate("sessionStorage.length") == 0
            page.fill("#sign-in-key", counter.staff_key)
            page.click("#sign-in-submit")
            page.locator("#view-desk").wait_for(state="visible")
            assert "浦东新区企业服务中心" in page.inner_text("#who-name")
            assert page.locator("#item option").count() >= 6  # "none" and the catalogue's items

            # (a) The camera: frames go to the server until one holds the code; only that one is recorded.
            before = counter.recorded()
            page.click("#camera-start")
            text = _verdict(page, "valid")
            assert name in text and "上海市市场监督管理局" in text and "营业执照" in text
            assert counter.recorded() == before + 1
            frames, empty = (int(page.get_attribute("#camera-status", a) or 0) for a in ("data-frames", "data-empty"))
            print(f"\ncamera: {frames} frames sent, {empty} without a code (not recorded)")
            assert frames == empty + 1
            assert page.locator("#camera-video").is_hidden()  # the camera stops once a code is read
            assert page.get_attribute("#result-status", "data-status") == "valid"
            assert "信任列表" in page.inner_text("#result-freshness")
            assert page.inner_text("#result tr[data-path='uscc'] td") == counter.claims["uscc"]
            assert "统一社会信用代码" in page.inner_text("#result tr[data-path='uscc'] th")

            # (b) A photo, for a service item: which materials are exempt, and the signed receipt.
            page.select_option("#item", FOOD_ITEM)
            page.set_input_files("#photo", files=[{"name": "code.png", "mimeType": "image/png",
                                                   "buffer": counter.code()["png"]}])
            page.wait_for_selector("#result-exemption:not(.hidden)")
            text = _verdict(page, "valid")
            assert name in text
            licence_row = page.locator("#result-materials tr[data-material='business-licence-copy']")
            assert licence_row.get_attribute("data-status") == "exempt"
            assert "上海市市场监督管理局" in licence_row.inner_text() and "营业执照" in licence_row.inner_text()
            assert page.locator("#result-materials tr[data-status='to_submit']").count() >= 1
            shot = _screenshot(page, tmp_path, f"department-result-valid-{backend}.png")
            receipt_id = page.inner_text("#receipt-id")
            with page.expect_download() as download:
                page.click("#receipt-download")
            receipt = Path(download.value.path()).read_text()
            assert download.value.suggested_filename == f"receipt-{receipt_id}.jwt"
            checked = httpx.post(f"{counter.base}/verifier/receipts/verify", json={"receipt": receipt}).json()
            assert checked["valid"] and checked["claims"]["jti"] == receipt_id
            assert checked["claims"]["item"]["id"] == FOOD_ITEM

            # (c) A hardware scanner types the text and Enter.
            page.select_option("#item", "")
            code = counter.code()["text"]
            page.fill("#scanner", code)
            page.press("#scanner", "Enter")
            page.wait_for_selector("#result-exemption.hidden", state="attached")
            assert name in _verdict(page, "valid")

            # (d) The same code again is a replay: red, the reason in Chinese and English, the code.
            page.fill("#scanner", code)
            page.press("#scanner", "Enter")
            text = _verdict(page, "invalid", "replay")
            reason = ERROR_CLASSES["replay"]
            assert page.inner_text("#result-reason-zh") == reason.description_zh
            assert page.inner_text("#result-reason-en") == reason.description
            assert page.inner_text("#result-code") == "replay"
            _screenshot(page, tmp_path, f"department-result-invalid-{backend}.png")
            page.fill("#scanner", "EL1:garbage")
            page.press("#scanner", "Enter")
            _verdict(page, "invalid", "malformed")
            assert page.inner_text("#result-reason-zh") == ERROR_CLASSES["malformed"].description_zh

            # A photo without a code: its own code, nothing recorded (over HTTP, and through the page).
            before = counter.recorded()
            r = counter.staff("POST", "/scans", content=_png(_blank()), headers={"Content-Type": "image/png"})
            assert (r.status_code, r.json()["error"]) == (422, "no_qr_code")
            page.set_input_files("#photo", files=[{"name": "blank.png", "mimeType": "image/png", "buffer": _png(_blank())}])
            page.wait_for_selector('#error[data-code="no_qr_code"]', state="visible")
            assert "二维码" in page.inner_text("#error-message")
            assert counter.recorded() == before

            # A code the page's table does not know: amber for cannot_verify, the raw code still shown.
            page.route("**/scans", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(
                {"card": {"verdict": "cannot_verify", "error": "some_future_code", "error_description": "new",
                          "message": {"zh-CN": "新的原因", "en": "a new reason"}, "issuer": None, "type": None,
                          "claims": {}, "fields": [], "status": None, "freshness": None}})))
            page.fill("#scanner", "EL1:anything")
            page.press("#scanner", "Enter")
            _verdict(page, "cannot_verify", "some_future_code")
            assert page.inner_text("#result-code") == "some_future_code"
            assert page.inner_text("#result-reason-zh") == "新的原因"
            page.unroute("**/scans")

            # Sign out forgets the key.
            page.click("#sign-out")
            page.locator("#view-sign-in").wait_for(state="visible")
            assert page.evaluate("sessionStorage.length") == 0 and page.input_value("#sign-in-key") == ""
            page.reload()
            page.locator("#view-sign-in").wait_for(state="visible")

            unexpected = [m for m in console if "status of 4" not in m]
            assert unexpected == [], unexpected
        finally:
            browser.close()
    assert shot.read_bytes()[:4] == b"\x89PNG"


def test_the_desk_page_has_its_headers_and_a_reason_for_every_code_a_scan_answers():
    # No browser needed: this runs wherever the suite runs, Chromium or not.
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from verifier import service

    app = FastAPI()
    pages.install(app)
    r = TestClient(app).get(DEPARTMENT_PAGE_PATH)
    check_strict_page(r)
    assert r.headers["permissions-policy"] == "camera=(self), microphone=(), geolocation=()"
    html = r.text
    # The reason table: every credential error and every code the service adds, in both languages.
    table = json.loads(re.search(r'<script type="application/json" id="reasons">(.*?)</script>', html, re.S).group(1))
    expected = set(ERROR_CLASSES) | {"no_qr_code", "unauthorized", "unknown_item", "ok", "authorisation_out_of_scope"}
    assert expected <= set(table)
    assert all(t["zh-CN"] and t["en"] for t in table.values())
    assert table["revoked"] == {"zh-CN": ERROR_CLASSES["revoked"].description_zh, "en": ERROR_CLASSES["revoked"].description}
    assert table == service.reasons()
    # The wallet page keeps the camera off.
    assert TestClient(app).get(pages.WALLET_PAGE_PATH).headers["permissions-policy"].startswith("camera=()")
