"""HTTP for the verifier service (FastAPI), under ``/verifier``: counter scans, OpenID4VP 1.0 requests and
responses, the service item catalogue, verification receipts and the department's audit.

Handlers translate request -> :class:`verifier.service.VerifierService` call -> response; the decisions
are the service's. Errors are ``{"error": code, "error_description": ...}`` with the stable codes of
:mod:`verifier.store`, :mod:`verifier.service` and :mod:`verifier.receipts`; OpenID4VP protocol errors
keep their OAuth codes (``invalid_request``, ...). Staff endpoints need ``Authorization: Bearer <staff API key>`` of that
department: a missing or unknown key is 401; another department's requests, results and audit are 404
``not_found``, exactly as unknown ones. A body larger than :data:`MAX_BODY_BYTES` (a photo for a scan:
:data:`MAX_SCAN_BYTES`) is refused (413 ``request_too_large``) before a handler reads it.

=================================================================  ======================================
``GET /verifier/items``                                             the service item catalogue
``GET /verifier/registrar.pem``                                     registrar CA certificate (trust anchor)
``GET /verifier/departments/{slug}``                                a department's public description
``POST /verifier/departments/{slug}/scans``                         staff: verify an offline QR (JSON
                                                                    ``{"text", "item"}``, ``text/plain``,
                                                                    or an image body with ``?item=``)
``POST /verifier/departments/{slug}/requests``                      staff: create an OpenID4VP request
``GET /verifier/departments/{slug}/requests/{id}/result``           staff + ``X-Result-Secret``: the verdict
``GET /verifier/departments/{slug}/verifications`` / ``audit``      staff: the department's records
``GET /verifier/departments/{slug}/audit/verify``                   staff: check the audit hash chain
``GET /verifier/oid4vp/requests/{id}``                              the signed Request Object (wallet)
``POST /verifier/oid4vp/responses/{id}``                            ``direct_post`` response (wallet)
``POST /verifier/receipts/verify``                                  check a verification receipt
``GET /verifier/.well-known/openid-configuration``                  OpenID Provider metadata (log in)
``GET /verifier/oidc/jwks``                                         ID Token signing keys
``GET|POST /verifier/oidc/authorize``                               authorization endpoint: the login page
                                                                    (QR code, polling) or an error
``GET /verifier/oidc/authorize/{id}/status``                        the login page's poll (its cookie)
``POST /verifier/oidc/token``                                       token endpoint (code + PKCE -> ID Token)
``GET|POST /verifier/oidc/userinfo``                                UserInfo (Bearer access token)
``POST|GET /verifier/departments/{slug}/portals``                   staff: register a portal (OIDC client),
                                                                    list them
``DELETE /verifier/departments/{slug}/portals/{client_id}``         staff: revoke a portal
=================================================================  ======================================

"Log in with e-licence" (OpenID Connect, :mod:`verifier.oidc`): protocol errors keep their OAuth
codes; an authorization error is redirected to the portal only once its ``redirect_uri`` is known
to be registered, otherwise it is an error page (JSON when the client asks for JSON).
"""

from __future__ import annotations

import html
import json
import secrets
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from credentials import openid4vp as vp
from credentials.errors import error_responses
from keys.x509 import certificate_pem
from verifier import oidc
from verifier import service as svc
from verifier.receipts import ReceiptInvalid
from verifier.store import InvalidValue, Staff, StoreError
from verifier.service import VerifierService

__all__ = ["MAX_BODY_BYTES", "MAX_SCAN_BYTES", "LOGIN_COOKIE", "VerifierBodyLimit", "install", "public_router",
           "staff_router", "oidc_router"]

#: Largest body under ``/verifier`` (a ``direct_post`` form with a few presentations, a request body).
MAX_BODY_BYTES = 1024 * 1024 + 64 * 1024
#: Largest scan body: a phone photo of a QR code.
MAX_SCAN_BYTES = 8 * 1024 * 1024
_PREFIX = "/verifier"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: The handlers FastAPI installs by itself: the verifier replaces only these, never another role's.
_FRAMEWORK_DEFAULTS = (None, http_exception_handler, request_validation_exception_handler)
_SLUG = Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="the department's slug")
_TX_ID = Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the transaction id")
#: What the verifier's endpoints may answer with the error body (422: a photo without a QR code).
_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422, 503)
#: The cookie that binds a login page's polling to the browser that opened it (path-scoped to that login).
LOGIN_COOKIE = "elv_login"


def _error(status: int, code: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": description}, status_code=status,
                        headers={**_NO_STORE, **(headers or {})})


class VerifierBodyLimit:
    """ASGI middleware: a ``/verifier`` request whose body exceeds its limit gets 413 ``request_too_large``,
    whether ``Content-Length`` declares it or the body streams in chunks. Other paths pass untouched."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES, scan_limit: int = MAX_SCAN_BYTES) -> None:
        self.app = app
        self.limit = limit
        self.scan_limit = scan_limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(_PREFIX):
            await self.app(scope, receive, send)
            return
        limit = self.scan_limit if path.endswith("/scans") else self.limit
        refuse = _error(413, "request_too_large", f"the request body is larger than {limit} bytes")
        declared = dict(scope.get("headers", ())).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await refuse(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await refuse(scope, receive, send)
                return
            more = message.get("more_body", False)
        pending = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def replay() -> Any:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)


def install(app: FastAPI, verifier: VerifierService) -> None:
    """Mount the verifier's routers on ``app`` with its body limit and error handler.

    The framework-level handlers are added only where the app has none yet, so a role mounted beside
    the verifier keeps its own.
    """
    app.state.verifier = verifier
    app.add_middleware(VerifierBodyLimit)
    app.include_router(public_router)
    app.include_router(staff_router)
    app.include_router(oidc_router)

    @app.exception_handler(StoreError)
    async def _verifier_error(_request: Request, exc: StoreError | ReceiptInvalid) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="elicence-verifier"'} if exc.http_status == 401 else None
        return _error(exc.http_status, exc.code, exc.detail, headers)

    app.add_exception_handler(ReceiptInvalid, _verifier_error)  # framework-free (verifier.receipts): no StoreError

    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, "invalid_request", f"{where or 'request'}: {first.get('msg', 'invalid')}")

    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        return _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail),
                      dict(exc.headers or {}))

    async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        # A fault of ours: a stable code, no trace or detail in the response (the server logs it).
        return _error(500, "server_error", "The verifier could not complete the request.")

    for kind, handler in ((RequestValidationError, _validation_error), (StarletteHTTPException, _http_error),
                          (Exception, _unexpected)):
        if app.exception_handlers.get(kind) in _FRAMEWORK_DEFAULTS:
            app.add_exception_handler(kind, handler)


# --- dependencies ---------------------------------------------------------------------------------------


def _verifier(request: Request) -> VerifierService:
    return request.app.state.verifier


def _staff(
    request: Request, slug: Annotated[str, _SLUG], authorization: Annotated[str | None, Header()] = None
) -> Staff:
    key = None
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise svc.Unauthorized("use Authorization: Bearer <staff API key>")
        key = value.strip()
    return _verifier(request).authenticate(key, department=slug)


Verifier = Annotated[VerifierService, Depends(_verifier)]
StaffMember = Annotated[Staff, Depends(_staff)]
Slug = Annotated[str, _SLUG]
TxId = Annotated[str, _TX_ID]


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body(), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidValue("the body is not valid JSON") from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _body(media_types: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of a handler that reads the body itself (``openapi_extra``), per media type."""
    return {"requestBody": {"required": True, "content": {m: {"schema": s} for m, s in media_types.items()}}}


_STR = {"type": "string"}
_OPTIONAL_STR = {"type": ["string", "null"]}


def _protocol_error(exc: vp.OpenId4VpError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=_NO_STORE)


# --- public endpoints -----------------------------------------------------------------------------------

public_router = APIRouter(prefix=_PREFIX, tags=["verifier (public)"], responses=_ERRORS)


@public_router.get("/items")
def items(verifier: Verifier) -> list[dict[str, Any]]:
    """The service items (事项) and their required materials, with what can replace each."""
    return verifier.items()


@public_router.get("/registrar.pem", response_class=Response,
                   responses={200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}}}})
def registrar_certificate(verifier: Verifier) -> Response:
    """The registrar CA certificate: the trust anchor of the departments' access certificates."""
    pem = "".join(certificate_pem(c) for c in verifier.registrar_certificates())
    return Response(pem, media_type="application/x-pem-file")


@public_router.get("/departments/{slug}")
def department(slug: Slug, verifier: Verifier) -> dict[str, Any]:
    """A department's name, Client Identifier, accepted types and access certificate."""
    found = verifier.department(slug)
    return {"id": found.slug, "name": {"zh-CN": found.name_zh, "en": found.name_en},
            "client_id": f"{vp.X509_SAN_DNS}:{found.dns_name}", "vcts": list(found.vcts),
            "certificate": found.certificate}


@public_router.get("/oid4vp/requests/{transaction_id}", response_class=Response,
                   responses={200: {"content": {vp.REQUEST_MEDIA_TYPE: {"schema": {"type": "string"}}}}})
def request_object(transaction_id: TxId, verifier: Verifier) -> Response:
    """The signed Request Object of a pending request (OpenID4VP 1.0 s5.10, ``request_uri``)."""
    return Response(verifier.request_object(transaction_id), media_type=vp.REQUEST_MEDIA_TYPE, headers=_NO_STORE)


@public_router.post("/oid4vp/responses/{transaction_id}")
async def direct_post(transaction_id: TxId, request: Request, verifier: Verifier) -> JSONResponse:
    """The wallet's Authorization Response, Response Mode ``direct_post`` (OpenID4VP 1.0 s8.2)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _protocol_error(vp.InvalidRequest("the response must be application/x-www-form-urlencoded"))
    raw = await request.body()
    try:
        form = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw), errors="strict")
    except (ValueError, UnicodeDecodeError):
        return _protocol_error(vp.InvalidRequest("the form is malformed"))
    try:
        # Off the event loop: verifying fetches trust and status lists, perhaps from this very server.
        return JSONResponse(await run_in_threadpool(verifier.direct_post, transaction_id, form), headers=_NO_STORE)
    except vp.OpenId4VpError as exc:
        return _protocol_error(exc)


@public_router.post("/receipts/verify", openapi_extra=_body(
    {"application/json": {"type": "object", "required": ["receipt"], "properties": {"receipt": _STR}}}))
async def verify_receipt(request: Request, verifier: Verifier) -> dict[str, Any]:
    """Check a verification receipt (``{"receipt": token}``) against the registrar; answers its claims."""
    body = await _json_body(request)
    token = body.get("receipt") if isinstance(body, dict) else None
    anchors = await run_in_threadpool(verifier.registrar_certificates)
    receipt = svc.verify_receipt(token, trust_anchors=anchors, now=verifier.now())
    return receipt.to_json()


# --- staff endpoints ------------------------------------------------------------------------------------

staff_router = APIRouter(prefix=_PREFIX + "/departments/{slug}", tags=["verifier (department staff)"], responses=_ERRORS)


@staff_router.post("/scans", openapi_extra=_body({
    "application/json": {"type": "object", "required": ["text"], "properties": {"text": _STR, "item": _OPTIONAL_STR}},
    "text/plain": _STR, "image/png": {"type": "string", "format": "binary"}}))
async def scan(
    request: Request, staff: StaffMember, verifier: Verifier, item: Annotated[str | None, Query(max_length=64)] = None
) -> JSONResponse:
    """Verify an offline QR code: JSON ``{"text", "item"}``, the scanner's text, or a photo (image body)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if content_type == "application/json":
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise InvalidValue("the body must be {\"text\": \"EL1:...\", \"item\": optional item id}")
        data: str | bytes = body["text"]
        item = body.get("item", item)
    elif content_type.startswith("text/"):
        data = raw.decode("utf-8", errors="replace")
    elif content_type.startswith("image/") or content_type == "application/octet-stream":
        data = raw
    else:
        raise InvalidValue("send JSON, text/plain or an image")
    # Off the event loop: verifying fetches trust and status lists, perhaps from this very server.
    scanned = await run_in_threadpool(lambda: verifier.scan(staff, data=data, item_id=item))
    return JSONResponse(scanned, headers=_NO_STORE)


@staff_router.post("/requests", status_code=201, openapi_extra=_body({"application/json": {"type": "object", "properties": {
    "credentials": {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {
        "type": _STR, "claims": {"type": "array", "items": _STR}}}},
    "item": _OPTIONAL_STR, "purpose": _OPTIONAL_STR}}}))
async def create_request(request: Request, staff: StaffMember, verifier: Verifier) -> JSONResponse:
    """Create an OpenID4VP request: ``{"credentials": [{"type", "claims"}]}`` or ``{"item"}``, ``purpose``."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise InvalidValue("the body must be a JSON object")
    created = await run_in_threadpool(lambda: verifier.create_request(
        staff, credentials=body.get("credentials"), item_id=body.get("item"), purpose=body.get("purpose")))
    return JSONResponse(created.to_json(), status_code=201, headers=_NO_STORE)


@staff_router.get("/requests/{transaction_id}/result")
def result(
    transaction_id: TxId,
    staff: StaffMember,
    verifier: Verifier,
    x_result_secret: Annotated[str | None, Header(max_length=128)] = None,
) -> JSONResponse:
    """The request's state and verdict, for the session holding its result secret (polling)."""
    return JSONResponse(verifier.result(staff, transaction_id=transaction_id, secret=x_result_secret),
                        headers=_NO_STORE)


@staff_router.get("/verifications")
def verifications(
    staff: StaffMember, verifier: Verifier, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    """The department's verifications, newest first (no claims)."""
    return verifier.verifications(staff, limit=limit)


@staff_router.get("/audit")
def audit(staff: StaffMember, verifier: Verifier, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """The department's recorded actions, newest first."""
    return verifier.audit(staff, limit=limit)


@staff_router.get("/audit/verify")
def verify_audit(staff: StaffMember, verifier: Verifier) -> dict[str, Any]:
    """Check the department's hash-chained audit log end to end."""
    return verifier.verify_audit(staff)


@staff_router.post("/portals", status_code=201, openapi_extra=_body({"application/json": {
    "type": "object", "required": ["name", "redirect_uris"], "properties": {
        "name": _STR, "redirect_uris": {"type": "array", "items": _STR}, "allow_staff": {"type": "boolean"},
        "item": _OPTIONAL_STR}}}))
async def register_portal(request: Request, staff: StaffMember, verifier: Verifier) -> JSONResponse:
    """Register a portal for "log in with e-licence": ``{"name", "redirect_uris", "allow_staff", "item"}``."""
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise InvalidValue("the body must be {\"name\", \"redirect_uris\": [...], \"allow_staff\", \"item\"}")
    allow_staff = body.get("allow_staff", True)
    if not isinstance(allow_staff, bool):
        raise InvalidValue("allow_staff must be true or false")
    created = verifier.register_portal(staff, name=body["name"], redirect_uris=body.get("redirect_uris"),
                                       allow_staff=allow_staff, item_id=body.get("item"))
    return JSONResponse(created.to_json(), status_code=201, headers=_NO_STORE)


@staff_router.get("/portals")
def portals(staff: StaffMember, verifier: Verifier) -> list[dict[str, Any]]:
    """The department's registered portals (no secrets)."""
    return verifier.portals(staff)


@staff_router.delete("/portals/{client_id}", status_code=204)
def revoke_portal(client_id: TxId, staff: StaffMember, verifier: Verifier) -> Response:
    """Revoke a portal: no new login, no code redeemed, its access tokens invalid."""
    verifier.revoke_portal(staff, client_id=client_id)
    return Response(status_code=204)


# --- log in with e-licence (OpenID Connect) -------------------------------------------------------------

oidc_router = APIRouter(prefix=_PREFIX, tags=["verifier (log in with e-licence)"], responses=_ERRORS)


def _oauth_error(exc: oidc.OidcError, *, basic: bool = False) -> JSONResponse:
    headers = dict(_NO_STORE)
    if exc.http_status == 401:
        # RFC 6749 s5.2 (invalid_client) and RFC 6750 s3 (invalid_token): say how to authenticate.
        headers["WWW-Authenticate"] = ('Basic realm="elicence-oidc"' if basic
                                       else f'Bearer realm="elicence-oidc", error="{exc.code}"')
    return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)


def _error_page(request: Request, exc: oidc.OidcError) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        # 400 even for invalid_client: the browser did not try to authenticate, so a 401 would mislead.
        return JSONResponse(exc.to_dict(), status_code=400, headers=_NO_STORE)
    body = (f"<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>登录失败 Login failed</title>"
            f"<h1>无法登录 / Cannot log in</h1><p><code>{html.escape(exc.code)}</code>: {html.escape(exc.detail)}</p>"
            f"<p>请返回原网站重试。Please go back to the portal and try again.</p></html>")
    return HTMLResponse(body, status_code=400, headers={**_NO_STORE, "Content-Security-Policy": "default-src 'none'"})


_LOGIN_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>电子营业执照登录 Log in with e-licence</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:2rem auto;text-align:center}}svg{{width:18rem;height:auto}}</style>
</head><body>
<h1>电子营业执照登录<br><small>Log in with e-licence</small></h1>
<p>登录 {portal} · {department_zh} / {department_en}</p>
<div id="qr">{qr}</div>
<p><a id="wallet-link" href="{uri}">在本机打开电子营业执照 / Open the wallet on this device</a></p>
<p id="status" role="status">请用电子营业执照扫码 / Scan with the e-licence wallet</p>
<script nonce="{nonce}">
(function () {{
  var statusUrl = {status_url};
  function poll() {{
    fetch(statusUrl, {{credentials: "same-origin", headers: {{"Accept": "application/json"}}}})
      .then(function (r) {{ return r.json(); }})
      .then(function (body) {{
        if (body.redirect_to) {{ window.location.replace(body.redirect_to); return; }}
        if (body.status === "pending") {{ setTimeout(poll, 1500); return; }}
        document.getElementById("status").textContent = "登录已结束 / This login has ended";
      }})
      .catch(function () {{ setTimeout(poll, 3000); }});
  }}
  setTimeout(poll, 1500);
}})();
</script></body></html>
"""


def _status_url(login_id: str) -> str:
    return f"{_PREFIX}/oidc/authorize/{login_id}/status"


@oidc_router.get("/.well-known/openid-configuration")
def openid_configuration(verifier: Verifier) -> dict[str, Any]:
    """OpenID Provider Metadata (OpenID Connect Discovery 1.0 s4)."""
    return verifier.oidc_metadata()


@oidc_router.get("/oidc/jwks")
def oidc_jwks(verifier: Verifier) -> dict[str, Any]:
    """The ID Token signing keys (JWK Set)."""
    return verifier.oidc_jwks()


#: The authorization endpoint's errors: an error page (JSON when asked for), or back to a registered portal.
_AUTHORIZE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERRORS[400], "content": {**_ERRORS[400]["content"], "text/html": {"schema": {"type": "string"}}}},
    303: {"description": "See Other: the error, sent back to the portal's registered redirect URI"},
}


# One route per method: a route with two methods would give both the same OpenAPI operationId.
@oidc_router.get("/oidc/authorize", response_class=HTMLResponse, responses=_AUTHORIZE_ERRORS)
@oidc_router.post("/oidc/authorize", response_class=HTMLResponse, responses=_AUTHORIZE_ERRORS)
async def authorize(request: Request, verifier: Verifier) -> Response:
    """Authorization endpoint: the login page with the wallet's QR code, or an error (to the portal if safe)."""
    # OIDC Core s3.1.2.1: "Authorization Servers MUST support the use of the HTTP GET and POST methods".
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        try:
            pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
        except (ValueError, UnicodeDecodeError):
            return _error_page(request, oidc.InvalidRequest("the form is malformed"))
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    try:
        started = verifier.oidc_authorize(params)
    except oidc.OidcError as exc:
        if exc.redirect_uri is not None:
            location = oidc.error_redirect(exc.redirect_uri, exc, state=exc.state, issuer=verifier.oidc_issuer)
            return RedirectResponse(location, status_code=303, headers=_NO_STORE)
        return _error_page(request, exc)
    nonce = secrets.token_urlsafe(16)
    page = _LOGIN_PAGE.format(
        portal=html.escape(started.portal_name), department_zh=html.escape(started.department_name_zh),
        department_en=html.escape(started.department_name_en), qr=started.qr_svg, uri=html.escape(started.uri),
        nonce=nonce, status_url=json.dumps(_status_url(started.login_id)),
    )
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src data:; "
           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
    response = HTMLResponse(page, headers={**_NO_STORE, "Content-Security-Policy": csp, "Referrer-Policy": "no-referrer"})
    ttl = max(1, int((started.expires_at - verifier.now()).total_seconds()) + 120)
    response.set_cookie(LOGIN_COOKIE, started.browser_secret, max_age=ttl, path=_status_url(started.login_id),
                        secure=verifier.public_url.startswith("https://"), httponly=True, samesite="lax")
    return response


@oidc_router.get("/oidc/authorize/{login_id}/status")
def login_status(login_id: TxId, request: Request, verifier: Verifier) -> JSONResponse:
    """The login page's poll: ``pending``, or where to send the browser (only with the page's cookie)."""
    return JSONResponse(verifier.oidc_status(login_id, browser_secret=request.cookies.get(LOGIN_COOKIE)),
                        headers=_NO_STORE)


@oidc_router.post("/oidc/token")
async def token(request: Request, verifier: Verifier) -> JSONResponse:
    """Token endpoint: an authorization code (with PKCE and client authentication) for an ID Token."""
    authorization = request.headers.get("authorization")
    try:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise oidc.InvalidRequest("the body must be application/x-www-form-urlencoded")
        try:
            raw = (await request.body()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise oidc.InvalidRequest("the form is not UTF-8") from exc
        return JSONResponse(verifier.oidc_token(oidc.parse_form(raw), authorization=authorization), headers=_NO_STORE)
    except oidc.OidcError as exc:
        return _oauth_error(exc, basic=authorization is not None)


@oidc_router.get("/oidc/userinfo")
@oidc_router.post("/oidc/userinfo")
def userinfo(request: Request, verifier: Verifier) -> JSONResponse:
    """UserInfo endpoint (OIDC Core s5.3): the login's claims for its Bearer access token."""
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    try:
        claims = verifier.oidc_userinfo(value.strip() if scheme.lower() == "bearer" else None)
    except oidc.OidcError as exc:
        return _oauth_error(exc)
    return JSONResponse(claims, headers=_NO_STORE)
