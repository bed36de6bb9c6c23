"""HTTP for the verifier service (FastAPI), under ``/verifier``: counter scans, OpenID4VP 1.0 requests and
responses, the service item catalogue, verification receipts and the department's audit.

Handlers translate request -> :class:`verifier.service.VerifierService` call -> response; the decisions
are the service's. Errors are ``{"error": code, "error_description": ...}`` with the stable codes of
:mod:`verifier.store` and :mod:`verifier.service`; OpenID4VP protocol errors keep their OAuth codes
(``invalid_request``, ...). Staff endpoints need ``Authorization: Bearer <staff API key>`` of that
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
=================================================================  ======================================
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from credentials import openid4vp as vp
from keys.x509 import certificate_pem
from verifier import service as svc
from verifier.store import InvalidValue, Staff, StoreError
from verifier.service import VerifierService

__all__ = ["MAX_BODY_BYTES", "MAX_SCAN_BYTES", "VerifierBodyLimit", "install", "public_router", "staff_router"]

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

    @app.exception_handler(StoreError)
    async def _verifier_error(_request: Request, exc: StoreError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="elicence-verifier"'} if exc.http_status == 401 else None
        return _error(exc.http_status, exc.code, exc.detail, headers)

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


def _protocol_error(exc: vp.OpenId4VpError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=_NO_STORE)


# --- public endpoints -----------------------------------------------------------------------------------

public_router = APIRouter(prefix=_PREFIX, tags=["verifier (public)"])


@public_router.get("/items")
def items(verifier: Verifier) -> list[dict[str, Any]]:
    """The service items (事项) and their required materials, with what can replace each."""
    return verifier.items()


@public_router.get("/registrar.pem", response_class=Response)
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


@public_router.get("/oid4vp/requests/{transaction_id}", response_class=Response)
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


@public_router.post("/receipts/verify")
async def verify_receipt(request: Request, verifier: Verifier) -> dict[str, Any]:
    """Check a verification receipt (``{"receipt": token}``) against the registrar; answers its claims."""
    body = await _json_body(request)
    token = body.get("receipt") if isinstance(body, dict) else None
    anchors = await run_in_threadpool(verifier.registrar_certificates)
    receipt = svc.verify_receipt(token, trust_anchors=anchors, now=verifier.now())
    return receipt.to_json()


# --- staff endpoints ------------------------------------------------------------------------------------

staff_router = APIRouter(prefix=_PREFIX + "/departments/{slug}", tags=["verifier (department staff)"])


@staff_router.post("/scans")
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


@staff_router.post("/requests", status_code=201)
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
