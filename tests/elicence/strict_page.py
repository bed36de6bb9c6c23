"""What every page the deployment serves must hold to (elicence/pages.py), checked on a response without a
browser: the security headers, and a Content Security Policy that pins each inline script and style block by
its hash and that the page does not need to break (no style attributes, inline handlers or other origins)."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

_BLOCK = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def check_strict_page(response: Any) -> dict[str, str]:
    """Assert the page's headers and policy; returns the policy's directives by name."""
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    policy = dict(d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["img-src"] == "'self' data:" and policy["connect-src"] == "'self'"
    html = response.text
    blocks = _BLOCK.findall(html)
    assert sorted(kind for kind, _ in blocks) == ["script", "style"]
    for kind, body in blocks:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert policy[f"{kind}-src"] == f"'sha256-{digest}'"
    # The policy blocks style attributes, inline handlers and other origins: the page must use none.
    assert not re.search(r"\sstyle=|\son[a-z]+=|<script\s+src|https?://", html, re.IGNORECASE)
    return policy
