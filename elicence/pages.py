"""Web pages the deployment serves to people: the wallet demo page at ``GET /wallet/demo``.

The page (``elicence/pages/wallet.html``) stands in for the enterprise's mobile app in demos and in the
browser tests: one self-contained HTML file (inline CSS and vanilla JS, no build step, no external URL)
that calls the wallet API of the same origin. It is served with a strict Content Security Policy
(CSP Level 3, W3C): scripts and styles only as the page's own inline blocks, pinned by their SHA-256
hashes computed here at start; images from the same origin or ``data:`` (the QR code PNG); requests only
to the same origin; no framing (``frame-ancestors 'none'``); no form submissions and no ``<base>``.
With ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` (tokens never travel in
URLs, and no page URL leaks to another site).
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

__all__ = ["WALLET_PAGE_PATH", "wallet_page", "content_security_policy", "security_headers", "install"]

WALLET_PAGE_PATH = "/wallet/demo"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def wallet_page() -> str:
    """The wallet demo page's HTML, from the package data."""
    return resources.files("elicence").joinpath("pages/wallet.html").read_text(encoding="utf-8")


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


def security_headers(html: str) -> dict[str, str]:
    """Every header the page is served with."""
    return {
        "Content-Security-Policy": content_security_policy(html),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",  # for browsers without frame-ancestors
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        "Cache-Control": "no-cache",
    }


def install(app: FastAPI) -> None:
    """Serve the wallet demo page at :data:`WALLET_PAGE_PATH` on ``app``."""
    html = wallet_page()
    headers = security_headers(html)

    @app.get(WALLET_PAGE_PATH, tags=["pages"], response_class=HTMLResponse, include_in_schema=False)
    def wallet_demo() -> HTMLResponse:
        """The wallet demo page (stands in for the mobile app)."""
        return HTMLResponse(html, headers=headers)
