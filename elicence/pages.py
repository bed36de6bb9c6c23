"""Web pages the deployment serves to people: the wallet demo page at ``GET /wallet/demo`` and the
department scan page (窗口核验) at ``GET /verifier/desk``.

The wallet page (``elicence/pages/wallet.html``) stands in for the enterprise's mobile app in demos and in
the browser tests; the department page (``elicence/pages/department.html``) is what a counter's staff use:
sign in with their staff API key, pick a service item, scan the wallet's QR code with the device camera,
an uploaded photo or a hardware scanner, and read the result card. Each is one self-contained HTML file
(inline CSS and vanilla JS, no build step, no external URL) that calls the API of the same origin. The
department page's table of failure reasons (zh-CN and en by error code) is filled in here from
:func:`verifier.service.reasons`, as a JSON data block, so it names every code a scan can answer.

Both are served with a strict Content Security Policy (CSP Level 3, W3C): scripts and styles only as the
page's own inline blocks, pinned by their SHA-256 hashes computed here at start; images from the same
origin or ``data:`` (the QR code PNG); requests only to the same origin; no framing
(``frame-ancestors 'none'``); no form submissions and no ``<base>``. With ``X-Content-Type-Options:
nosniff`` and ``Referrer-Policy: no-referrer`` (keys and tokens never travel in URLs, and no page URL
leaks to another site). ``Permissions-Policy`` denies the camera to the wallet page and allows it to the
department page's own origin only.

Every other HTML response of the app (the API documentation at ``/docs`` and ``/redoc``, the sign-in
provider's login and error pages, the sample portal) gets the same headers from :class:`HtmlSecurityHeaders`
where its handler set none: ``nosniff``, ``no-referrer``, no framing (``X-Frame-Options: DENY`` and
``frame-ancestors 'none'``), no camera, microphone or location, and, without a policy of its own, a CSP
that forbids framing, ``<base>``, plugins and form posts to other sites (it does not restrict scripts,
which the API documentation loads from its CDN).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.datastructures import MutableHeaders

from verifier.service import reasons

__all__ = ["WALLET_PAGE_PATH", "DEPARTMENT_PAGE_PATH", "wallet_page", "department_page", "content_security_policy",
           "security_headers", "HtmlSecurityHeaders", "install"]

WALLET_PAGE_PATH = "/wallet/demo"
DEPARTMENT_PAGE_PATH = "/verifier/desk"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)
#: Where the department page's reason table goes (a data block: never executed, so not in script-src).
_REASONS_SLOT = '<script type="application/json" id="reasons">{}</script>'


def _read(name: str) -> str:
    return resources.files("elicence").joinpath(f"pages/{name}").read_text(encoding="utf-8")


def wallet_page() -> str:
    """The wallet demo page's HTML, from the package data."""
    return _read("wallet.html")


def department_page() -> str:
    """The department scan page's HTML, its table of failure reasons filled in (every code a scan answers)."""
    html = _read("department.html")
    if html.count(_REASONS_SLOT) != 1:
        raise RuntimeError("department.html must hold the reasons slot exactly once")
    # "<" escaped: no text of the table can close the data block.
    table = json.dumps(reasons(), ensure_ascii=False, sort_keys=True).replace("<", "\\u003c")
    return html.replace(_REASONS_SLOT, _REASONS_SLOT.replace("{}", table))


def _hashes(html: str, tag: str) -> list[str]:
    # CSP 3 s8.4: a hash source matches the inline block's exact text, as UTF-8.
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
            for kind, body in _INLINE.findall(html) if kind == tag]


def content_security_policy(html: str) -> str:
    """The page's CSP: only its own inline script and style blocks (by hash), same-origin requests, data: images."""
    scripts = " ".join(_hashes(html, "script")) or "'none'"
    styles = " ".join(_hashes(html, "style")) or "'none'"
    return "; ".join([
        "default-src 'none'",
        f"script-src {scripts}",
        f"style-src {styles}",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'none'",  # every form is sent by the script as JSON; a form that would navigate is blocked
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ])


def security_headers(html: str, *, camera: bool = False) -> dict[str, str]:
    """Every header the page is served with; ``camera`` lets the page's own origin use the camera."""
    return {
        "Content-Security-Policy": content_security_policy(html),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",  # for browsers without frame-ancestors
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": f"camera=({'self' if camera else ''}), microphone=(), geolocation=()",
        "Cache-Control": "no-cache",
    }


#: What an HTML response carries when its handler did not say otherwise.
_BASELINE = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
_BASELINE_CSP = "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'"


class HtmlSecurityHeaders:
    """ASGI middleware: every ``text/html`` response gets the headers above that it lacks, and a CSP
    without ``frame-ancestors`` gets ``frame-ancestors 'none'``. Other responses pass untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    for name, value in _BASELINE.items():
                        headers.setdefault(name, value)
                    csp = headers.get("content-security-policy")
                    if csp is None:
                        headers["Content-Security-Policy"] = _BASELINE_CSP
                    elif "frame-ancestors" not in csp:
                        headers["Content-Security-Policy"] = f"{csp}; frame-ancestors 'none'"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Serve the wallet demo page at :data:`WALLET_PAGE_PATH` and the department scan page at
    :data:`DEPARTMENT_PAGE_PATH` on ``app``, and give every HTML response of ``app`` the security headers
    (:class:`HtmlSecurityHeaders`)."""
    app.add_middleware(HtmlSecurityHeaders)
    wallet_html, desk_html = wallet_page(), department_page()
    wallet_headers, desk_headers = security_headers(wallet_html), security_headers(desk_html, camera=True)

    @app.get(WALLET_PAGE_PATH, tags=["pages"], response_class=HTMLResponse, include_in_schema=False)
    def wallet_demo() -> HTMLResponse:
        """The wallet demo page (stands in for the mobile app)."""
        return HTMLResponse(wallet_html, headers=wallet_headers)

    @app.get(DEPARTMENT_PAGE_PATH, tags=["pages"], response_class=HTMLResponse, include_in_schema=False)
    def department_desk() -> HTMLResponse:
        """The department scan page (窗口核验): staff scan a wallet's QR code and read the result card."""
        return HTMLResponse(desk_html, headers=desk_headers)
