"""Hostile input at the HTTP edge of the whole deployment: body and header size limits, attempt limits that
every worker enforces, and the security headers of every HTML page.

Where the limits are (each refuses with 413 ``request_too_large`` before a handler reads the body):

- issuer paths: :data:`issuer.api.MAX_BODY_BYTES` (256 KiB);
- ``/wallet``: :data:`wallet.api.MAX_BODY_BYTES` (64 KiB; 6 MiB for the two image uploads);
- ``/verifier``: :data:`verifier.api.MAX_BODY_BYTES` (1 MiB + 64 KiB; 8 MiB for ``/scans``);
- ``/portal``: :data:`elicence.portal.MAX_BODY_BYTES` (4 KiB: it reads no body at all).

Headers: the app refuses more than :data:`elicence.limits.MAX_HEADER_BYTES` (16 KiB) of them with 431
``request_header_fields_too_large``; the server's protocol (:class:`elicence.limits.BoundedHttpToolsProtocol`,
uvicorn's httptools with a bound) refuses a head still unfinished after :data:`elicence.limits.MAX_HEAD_BYTES`
with the same 431 and closes the connection, before the app sees anything.

Attempt limits, each counted in the database and committed before the secret is compared, so every worker
sees the same count: wallet sign-in and PIN (5 failures lock for 15 minutes: tests/wallet/
test_wallet_accounts.py), the issuer's transaction code (5 attempts per offer: tests/issuer/
test_issuer_api_protocol.py, and under concurrency tests/issuer/service/test_issuer_service_concurrency.py)
and the pre-authorised code (one redemption: test_replayed_pre_authorised_code_is_invalid_grant and
test_a_pre_authorised_code_redeemed_concurrently_succeeds_once). The test below runs the wallet's across
two service instances, as two workers would.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

import issuer.api
import verifier.api
import wallet.api
from elicence import limits, portal
from tests.elicence.test_portal_oidc_interop import Site
from tests.wallet.conftest import FAST, KEK, Clock, Kit, NOW
from wallet import errors
from wallet.service import WalletService

#: (path prefix, body limit) of every part of the deployment.
LIMITS = [("/issuers/", issuer.api.MAX_BODY_BYTES), ("/wallet/", wallet.api.MAX_BODY_BYTES),
          ("/verifier/", verifier.api.MAX_BODY_BYTES), (portal.PORTAL_PATH + "/", portal.MAX_BODY_BYTES)]
#: The pages the walk must find (a check on the walk itself, not the list of pages it checks).
KNOWN_PAGES = {"/wallet/demo", "/verifier/desk", "/verifier/oidc/authorize", "/portal/", "/docs"}


@pytest.fixture
def site(sessions, tmp_path) -> Site:
    """The deployment app (issuer, wallet, trust list, verifier) with the sample portal mounted on it."""
    return Site(sessions, tmp_path)


def routes(app: Any, prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """Every (path, methods) of ``app``, the routes of mounted apps included."""
    for route in app.routes:
        if hasattr(route, "effective_route_contexts"):
            # FastAPI >= 0.16x keeps an included router as one route that resolves its routes lazily.
            for context in route.effective_route_contexts():
                yield context.path, set(getattr(context.original_route, "methods", None) or ())
        elif isinstance(route, Mount):
            yield from routes(route.app, prefix + route.path)
        elif isinstance(route, (APIRoute, Route)):
            yield prefix + route.path, set(route.methods or ())


def concrete(path: str) -> str:
    """A request path for a route path: each ``{parameter}`` becomes ``x``."""
    return "/".join("x" if part.startswith("{") else part for part in path.split("/")) or "/"


# --- body limits --------------------------------------------------------------------------------------------


def _post_route(site: Site, prefix: str) -> str:
    """The first POST route under ``prefix`` that takes an ordinary body (not an image upload)."""
    large = {"/scans", "/credentials/receive", "/requests/inspect"}
    return next(concrete(path) for path, methods in routes(site.client.app)
                if "POST" in methods and path.startswith(prefix) and not any(path.endswith(s) for s in large))


@pytest.mark.parametrize("prefix,limit", LIMITS, ids=[p.strip("/") for p, _ in LIMITS])
def test_every_role_and_the_portal_refuse_a_declared_oversize_body(site, prefix, limit):
    path = _post_route(site, prefix)
    r = site.client.post(path, content=b"x" * (limit + 1), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, (path, r.status_code, r.text)
    assert r.json()["error"] == "request_too_large"


@pytest.mark.parametrize("prefix,limit", LIMITS[:3], ids=[p.strip("/") for p, _ in LIMITS[:3]])
def test_every_role_refuses_an_oversize_body_streamed_without_a_length(site, prefix, limit):
    path = _post_route(site, prefix)
    chunks = (b"x" * 65536 for _ in range(limit // 65536 + 2))  # no Content-Length: sent chunked
    r = site.client.post(path, content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, (path, r.status_code, r.text)
    assert r.json()["error"] == "request_too_large"


# --- header size --------------------------------------------------------------------------------------------


def _raw_request(port: int, header_bytes: int, *, end: bool = True) -> tuple[int, bytes]:
    """Send a request whose head carries ``header_bytes`` of padding (unfinished unless ``end``); the
    status and body of the answer (read until the server closes)."""
    request = (f"GET /wallet/demo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {'a' * header_bytes}\r\n"
               + ("Connection: close\r\n\r\n" if end else "")).encode("ascii")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        try:
            conn.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed before all of it was sent: the answer is still there to read
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except ConnectionResetError:
            # Closed with our bytes unread: the kernel may reset the connection, and drop the answer.
            if not answer:
                return 0, b""
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_oversize_request_headers_are_refused_with_a_coded_431_by_the_app_or_the_server(site, live_server):
    live_server.start(site.client.app)
    assert _raw_request(live_server.port, 8 * 1024)[0] == 200
    # A head within the server's bound but over the headers' bound: the app refuses it (HeaderLimit).
    assert limits.MAX_HEADER_BYTES + 1024 < limits.MAX_HEAD_BYTES
    status, body = _raw_request(live_server.port, limits.MAX_HEADER_BYTES + 1024)
    assert status == 431 and json.loads(body)["error"] == "request_header_fields_too_large"
    # A head past the server's bound that never ends: the protocol refuses it and closes.
    status, body = _raw_request(live_server.port, limits.MAX_HEAD_BYTES + 4096, end=False)
    assert status == 431 and json.loads(body)["error"] == "request_header_fields_too_large"
    assert "request head is longer than" in json.loads(body)["error_description"]
    # 1 MiB of head: refused and closed long before it is all sent (the answer may be lost to the reset).
    status, body = _raw_request(live_server.port, 1024 * 1024)
    assert status in (0, 431), status
    assert _raw_request(live_server.port, 8 * 1024)[0] == 200  # and the server goes on


def test_a_large_body_read_with_the_end_of_its_request_does_not_count_as_the_next_head(site, live_server):
    live_server.start(site.client.app)
    body = b"x" * (200 * 1024)  # several heads' worth, arriving in the reads that end its request
    first = (b"POST /issuers/sh-amr/nonce HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    second = b"GET /wallet/demo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as conn:
        # One keep-alive connection; the last read holds more than a head's bound of the body, then the next request.
        tail = limits.MAX_HEAD_BYTES + 8 * 1024
        conn.sendall(first[:-tail])
        time.sleep(0.2)  # (so that the rest arrives in a read of its own; no timing is asserted)
        conn.sendall(first[-tail:] + second)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    statuses = [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]
    assert len(statuses) == 2 and 431 not in statuses, statuses
    assert statuses[1] == 200


def test_oversize_headers_get_the_coded_error_in_process(site):
    r = site.client.get("/wallet/demo", headers={"X-Padding": "a" * limits.MAX_HEADER_BYTES})
    assert r.status_code == 431 and r.json()["error"] == "request_header_fields_too_large"


# --- attempt limits across workers -----------------------------------------------------------------------


def test_wallet_sign_in_failures_count_across_workers(sessions):
    clock = Clock(NOW)
    first, second = (WalletService(sessions=sessions, kek=KEK, policy=FAST, clock=clock) for _ in range(2))
    Kit.user(first, 1)
    for worker in (first, second, first, second):
        with pytest.raises(errors.InvalidCredentials):
            worker.sign_in(phone=Kit.phone(1), password="wrong password")
    with pytest.raises(errors.AccountLocked):
        second.sign_in(phone=Kit.phone(1), password="wrong password")
    with pytest.raises(errors.AccountLocked):  # the other worker: even the right password
        first.sign_in(phone=Kit.phone(1), password=Kit.PASSWORD)


# --- security headers -------------------------------------------------------------------------------------


def _html_responses(site: Site) -> dict[str, Any]:
    """GET every route of the app (parameters as ``x``), following redirects on the same site, and keep the
    HTML answers by path. The portal's login button leads to the provider's login page this way."""
    found: dict[str, Any] = {}
    for path, methods in routes(site.client.app):
        if "GET" not in methods:
            continue
        url = concrete(path)
        for _ in range(4):
            r = site.client.get(url)
            if r.headers.get("content-type", "").startswith("text/html"):
                found[r.url.path] = r
            location = r.headers.get("location", "")
            if not (r.is_redirect and location.startswith(("/", str(site.client.base_url)))):
                break
            url = location
    return found


def test_every_html_page_carries_the_security_headers(site):
    pages = _html_responses(site)
    assert KNOWN_PAGES <= set(pages), sorted(pages)
    for path, r in pages.items():
        csp = {d.split(" ", 1)[0]: d.partition(" ")[2] for d in r.headers["content-security-policy"].split("; ")}
        assert csp.get("frame-ancestors") == "'none'", (path, csp)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer", path
        assert r.headers["x-frame-options"] == "DENY", path
        permissions = r.headers["permissions-policy"]
        assert "microphone=()" in permissions and "geolocation=()" in permissions, path
        assert "camera=()" in permissions or path == "/verifier/desk", path  # the desk scans with the camera
