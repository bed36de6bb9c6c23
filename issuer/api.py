"""HTTP for the issuer role: the public OpenID4VCI endpoints and the authenticated admin API (FastAPI).

Handlers translate request -> :class:`issuer.service.IssuerService` call -> response; the decisions
are the service's. Every error is ``{"error": code, "error_description": ...}`` with a stable code:
OpenID4VCI errors keep their protocol codes and statuses (``invalid_grant``, ``invalid_proof``,
``invalid_nonce``, ...); the store's and the service's map through :data:`STATUS_BY_CODE`; the
framework's own refusals (unknown route ``not_found``, wrong method ``method_not_allowed``) and an
unexpected fault (500 ``server_error``, no detail) keep the same shape. A body larger than
:data:`MAX_BODY_BYTES` is refused (413 ``request_too_large``) before any handler reads it.

Public (no authentication), for authority ``{slug}`` whose issuer identifier is ``<public>/issuers/{slug}``:

=======================================================  ============================================
``GET /.well-known/openid-credential-issuer/issuers/{slug}``   Credential Issuer Metadata (12.2)
``GET /.well-known/oauth-authorization-server/issuers/{slug}`` RFC 8414 metadata (token endpoint)
``GET /.well-known/jwt-vc-issuer/issuers/{slug}``              issuer JWKS (SD-JWT VC s5)
``GET /vct/{type}``                                           type metadata of each ``vct``
``GET /issuers/{slug}/offers/{id}``                           a Credential Offer by reference (4.1.3)
``POST /issuers/{slug}/token`` / ``nonce`` / ``credential``    OpenID4VCI 6, 7, 8
``GET /issuers/{slug}/status/{list}``                         ``statuslist+jwt`` with Cache-Control/ETag
``POST /issuers/{slug}/authorisations``                       a legal representative asks for a 授权
=======================================================  ============================================

Admin, under ``/issuers/{slug}/admin`` with ``Authorization: Bearer <operator API key>`` of that
authority: records, offers (and their QR image), credentials (listing, status changes), keys
(rotation, compromise), the audit log. ``Idempotency-Key`` is honoured on issuance (offers, changes of
registration) and status changes.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from credentials import openid4vci as o4
from credentials import qr
from credentials.errors import CredentialError, error_responses
from issuer import service as svc
from issuer import store
from issuer.group_commit import GroupCommit
from issuer.service import IssuerService
from schemas.errors import CredentialTypeError

__all__ = ["STATUS_BY_CODE", "MAX_BODY_BYTES", "ISSUER_PATHS", "BodyLimit", "install", "public_router", "admin_router"]

#: Largest request body accepted (a credential request with its proof, or a record, is a few KiB).
MAX_BODY_BYTES = 256 * 1024

#: HTTP status of each store / service error code (the service's own carry ``http_status``).
STATUS_BY_CODE: dict[str, int] = {
    "not_found": 404,
    "conflict": 409,
    "invalid_value": 400,
    "invalid_row": 400,
    "invalid_transition": 409,
    "spent": 400,
    "status_list_full": 503,
    "store_error": 500,
}

#: ``error`` code of the framework's own HTTP errors (unknown route, wrong method, ...).
_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large",
               415: "unsupported_media_type"}

STATUSLIST_MEDIA_TYPE = "application/statuslist+jwt"
_SLUG = Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="the authority's slug")


# --- errors ---------------------------------------------------------------------------------------------


def _error(status: int, code: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": description}, status_code=status, headers=headers)


#: Where the issuer's routes are (what :class:`BodyLimit` guards).
ISSUER_PATHS = ("/issuers/", "/.well-known/openid-credential-issuer/", "/.well-known/oauth-authorization-server/",
                "/.well-known/jwt-vc-issuer/", "/vct/")


class BodyLimit:
    """ASGI middleware: a request whose body exceeds ``limit`` bytes gets 413 ``request_too_large``
    before any handler sees it, whether its ``Content-Length`` declares it or it arrives streamed
    (chunked): the body is read here, counted, and handed on whole only when it fits."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Only the issuer's own paths: roles mounted beside it (a verifier taking photos) set their own.
        if scope["type"] != "http" or not scope.get("path", "").startswith(ISSUER_PATHS):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client is gone: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Any:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body, only a disconnect can come

        await self.app(scope, replay, send)


def _too_large(limit: int) -> JSONResponse:
    return _error(413, "request_too_large", f"the request body is larger than {limit} bytes")


def install(app: FastAPI, issuer: IssuerService) -> None:
    """Mount the issuer's routers on ``app`` and its error handlers (one per family of errors)."""
    app.state.issuer = issuer
    # The credential endpoint's transactions, grouped (see issuer.group_commit and
    # IssuerService.credential_batch): one per batch of concurrent requests instead of one per credential.
    app.state.issuer_credentials = GroupCommit(lambda batch: app.state.issuer.credential_batch(batch),
                                               name="issuer-credentials")
    app.add_middleware(BodyLimit)
    app.include_router(public_router)
    app.include_router(admin_router)

    @app.exception_handler(o4.OpenId4VciError)
    async def _protocol_error(_request: Request, exc: o4.OpenId4VciError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers())

    @app.exception_handler(store.StoreError)
    async def _store_error(_request: Request, exc: store.StoreError) -> JSONResponse:
        status = getattr(exc, "http_status", None) or STATUS_BY_CODE.get(exc.code, 400)
        headers = {"WWW-Authenticate": 'Bearer realm="elicence-admin"'} if status == 401 else None
        return JSONResponse(exc.to_dict(), status_code=status, headers=headers)

    @app.exception_handler(CredentialError)
    async def _credential_error(_request: Request, exc: CredentialError) -> JSONResponse:
        return _error(400, exc.code, exc.detail)

    @app.exception_handler(CredentialTypeError)
    async def _type_error(_request: Request, exc: CredentialTypeError) -> JSONResponse:
        return _error(400, exc.code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own refusals (no such route, method not allowed, ...) in the same shape.
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        # Anything else is a fault of ours: a stable code, no trace or detail in the response (the
        # server logs the exception).
        return _error(500, "server_error", "The issuer could not complete the request.")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, "invalid_request", f"{where or 'request'}: {first.get('msg', 'invalid')}")


async def _issuer(request: Request) -> IssuerService:
    # async: FastAPI runs a plain function dependency in its thread pool, a thread hop per request.
    return request.app.state.issuer


Issuer = Annotated[IssuerService, Depends(_issuer)]
Slug = Annotated[str, _SLUG]


async def _json_body(request: Request, *, error: type[Exception] = svc.InvalidValue) -> Any:
    """The request body as JSON, refusing oversize bodies and broken JSON with ``error``."""
    body = await _bounded_body(request)
    try:
        # RFC 8259 has no NaN or Infinity: Python's json would accept them.
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error("the body is not valid JSON") from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _bounded_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


class _TooLarge(svc.ServiceError):
    code = "request_too_large"
    description = f"The request body is larger than {MAX_BODY_BYTES} bytes."
    http_status = 413


# --- public endpoints -----------------------------------------------------------------------------------

public_router = APIRouter(tags=["OpenID4VCI issuer (public)"], responses=error_responses(400, 401, 403, 404, 413, 503))


@public_router.get("/.well-known/openid-credential-issuer/issuers/{slug}")
def issuer_metadata(slug: Slug, issuer: Issuer) -> dict[str, Any]:
    """Credential Issuer Metadata (OpenID4VCI 12.2), display names in zh-CN and en."""
    return issuer.issuer_metadata(slug)


@public_router.get("/.well-known/oauth-authorization-server/issuers/{slug}")
def authorization_server_metadata(slug: Slug, issuer: Issuer) -> dict[str, Any]:
    """OAuth 2.0 Authorization Server Metadata (RFC 8414) of the issuer's token endpoint."""
    return issuer.authorization_server_metadata(slug)


@public_router.get("/.well-known/jwt-vc-issuer/issuers/{slug}")
def jwt_vc_issuer_metadata(slug: Slug, issuer: Issuer, response: Response) -> dict[str, Any]:
    """JWT VC Issuer Metadata (SD-JWT VC s5): the issuer's public keys."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return issuer.jwt_vc_issuer_metadata(slug)


@public_router.get("/vct/{type_slug}")
def type_metadata(type_slug: Annotated[str, Path(max_length=64)], issuer: Issuer) -> dict[str, Any]:
    """SD-JWT VC Type Metadata of a credential type (zh-CN and en display, disclosure policy)."""
    try:
        return issuer.type_metadata(type_slug)
    except svc.UnknownType as exc:
        # A GET of a vct that names no type is a missing resource, not a bad request.
        raise store.NotFound(exc.detail) from exc


@public_router.get("/issuers/{slug}/offers/{offer_id}")
def credential_offer(slug: Slug, offer_id: Annotated[str, Path(max_length=64)], issuer: Issuer,
                     response: Response) -> dict[str, Any]:
    """A Credential Offer by reference (OpenID4VCI 4.1.3); 404 once used, withdrawn or expired."""
    response.headers.update(o4.NO_STORE)
    return issuer.offer_document(slug, offer_id)


# The protocol handlers read their bodies themselves; the documents say what they take.
@public_router.post("/issuers/{slug}/token", openapi_extra={"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["grant_type"], "properties": {
        "grant_type": {"type": "string", "examples": [o4.PRE_AUTHORIZED_GRANT]},
        "pre-authorized_code": {"type": "string"}, "tx_code": {"type": "string"}}}}}}})
async def token(slug: Slug, request: Request, issuer: Issuer) -> JSONResponse:
    """Token Endpoint (OpenID4VCI 6): pre-authorised code and transaction code for an access token."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise o4.InvalidRequest("the token request must be application/x-www-form-urlencoded")
    raw = await _bounded_body(request)
    from urllib.parse import parse_qsl

    try:
        items = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw), errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise o4.InvalidRequest("the form is malformed") from exc
    body = issuer.token(slug, items)
    return JSONResponse(body, headers=dict(o4.NO_STORE))


@public_router.post("/issuers/{slug}/nonce")
def nonce(slug: Slug, issuer: Issuer) -> JSONResponse:
    """Nonce Endpoint (OpenID4VCI 7): a fresh single-use c_nonce."""
    return JSONResponse(issuer.nonce(slug), headers=dict(o4.NO_STORE))


@public_router.post("/issuers/{slug}/credential", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "required": ["proofs"], "properties": {
        "credential_configuration_id": {"type": "string"}, "credential_identifier": {"type": "string"},
        "proofs": {"type": "object", "required": ["jwt"], "properties": {
            "jwt": {"type": "array", "minItems": 1, "items": {"type": "string"}}}}}}}}}})
async def credential(
    slug: Slug, request: Request, issuer: Issuer, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """Credential Endpoint (OpenID4VCI 8): key proof in, SD-JWT VC bound to that key out."""
    o4.parse_bearer_token(authorization)  # 401 before the body is read
    body = await _json_body(request, error=o4.InvalidCredentialRequest)
    prepared = issuer.prepare_credential(slug, authorization=authorization, body=body)
    result = await asyncio.wrap_future(request.app.state.issuer_credentials.submit(prepared))
    return JSONResponse(result, headers=dict(o4.NO_STORE))


@public_router.get("/issuers/{slug}/status/{list_id}", response_class=Response, responses={
    200: {"content": {STATUSLIST_MEDIA_TYPE: {"schema": {"type": "string"}}}},
    304: {"description": "Not Modified: If-None-Match names the current ETag"}})
def status_list_token(
    slug: Slug,
    list_id: Annotated[int, Path(ge=1, le=2**31 - 1)],  # a PostgreSQL INTEGER, as stored
    issuer: Issuer,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Status List Token (IETF Token Status List), re-signed as soon as a status changes."""
    signed = issuer.status_token(slug, list_id)
    headers = {"Cache-Control": f"public, max-age={signed.ttl}", "ETag": signed.etag}
    if if_none_match is not None and _etag_matches(if_none_match, signed.etag):
        return Response(status_code=304, headers=headers)
    return Response(signed.token, media_type=STATUSLIST_MEDIA_TYPE, headers=headers)


def _etag_matches(if_none_match: str, etag: str) -> bool:
    # RFC 9110 s13.1.2: If-None-Match uses the weak comparison (W/"x" matches "x"), and "*" matches
    # any current representation.
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in [t.removeprefix("W/") for t in tags]


class OfferOut(BaseModel):
    """A credential offer: deep links by value and by reference, and the PIN (shown once)."""

    offer_id: str
    authority: str
    credential_configuration_id: str
    uscc: str
    offer_uri: str
    offer_reference_uri: str
    credential_offer_uri: str
    tx_code: str
    expires_at: str


@public_router.post("/issuers/{slug}/authorisations", status_code=201, response_model=OfferOut)
async def request_authorisation(slug: Slug, request: Request, issuer: Issuer) -> dict[str, Any]:
    """A legal representative presents the business licence and asks for a staff authorisation (授权).

    Body: ``licence`` (a key-bound presentation: aud = this issuer, nonce from the nonce endpoint),
    ``staff`` ({name, account}), ``scope`` ({"all": true} or {"matters": [...]}), ``valid_from``,
    ``valid_until``, ``staff_jwk``. Answers an offer only the staff member's key can redeem.
    """
    body = await _json_body(request)
    return issuer.request_authorisation(slug, body).to_json()


class WithdrawnOut(BaseModel):
    id: str
    status: str
    reason: str | None
    status_changed_at: datetime | None


@public_router.post("/issuers/{slug}/authorisations/withdraw", response_model=WithdrawnOut)
async def withdraw_authorisation(slug: Slug, request: Request, issuer: Issuer) -> dict[str, Any]:
    """The enterprise withdraws a staff authorisation it granted (revoked at once, in the next status token).

    Body: ``licence`` (a key-bound presentation of the licence it was granted under: aud = this issuer,
    nonce from the nonce endpoint) and ``authorisation`` (the authorisation credential).
    """
    body = await _json_body(request)
    row = issuer.withdraw_authorisation(slug, body)
    return {"id": row.id, "status": row.status.value, "reason": row.reason, "status_changed_at": row.status_changed_at}


# --- admin ----------------------------------------------------------------------------------------------

admin_router = APIRouter(prefix="/issuers/{slug}/admin", tags=["issuer admin (operator API key)"],
                         responses=error_responses(400, 401, 403, 404, 409, 413, 503))


def _operator(slug: Slug, request: Request, authorization: Annotated[str | None, Header()] = None) -> store.Operator:
    key = None
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            key = value.strip()
    return request.app.state.issuer.authenticate(key, authority=slug)


OperatorDep = Annotated[store.Operator, Depends(_operator)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


def _idempotent(issuer: IssuerService, operator: store.Operator, key: str | None, request: Any,
                run: Any, status: int = 200) -> JSONResponse:
    def work() -> tuple[int, dict[str, Any]]:
        return status, run()

    code, body, replayed = issuer.idempotent(operator, key=key, request=request, run=work)
    headers = {"Cache-Control": "no-store"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=code, headers=headers)


class RecordIn(BaseModel):
    """A registry record: its credential type (slug or vct) and its claims."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(max_length=200, examples=["business-licence"])
    claims: dict[str, Any]


class RecordOut(BaseModel):
    id: str
    authority: str
    vct: str
    uscc: str
    claims: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _record_out(record: store.Record) -> dict[str, Any]:
    return {"id": record.id, "authority": record.authority, "vct": record.vct, "uscc": record.uscc,
            "claims": record.claims_json(), "created_at": record.created_at, "updated_at": record.updated_at}


@admin_router.post("/records", status_code=201, response_model=RecordOut)
def import_record(body: RecordIn, operator: OperatorDep, issuer: Issuer) -> dict[str, Any]:
    """Import (insert or replace) one registry record, validated against its type and the USCC check."""
    return _record_out(issuer.import_record(operator, type_name=body.type, claims=body.claims))


@admin_router.get("/records/{type_name}/{uscc}", response_model=RecordOut)
def get_record(type_name: str, uscc: Annotated[str, Path(max_length=18)], operator: OperatorDep,
               issuer: Issuer) -> dict[str, Any]:
    """A registry record by type and USCC."""
    return _record_out(issuer.get_record(operator, type_name=type_name, uscc=uscc))


class ChangeIn(BaseModel):
    """A change of registration (变更): the record's new claims."""

    model_config = ConfigDict(extra="forbid")
    claims: dict[str, Any]
    expires_in: int | None = Field(default=None, description="lifetime of the new offer, seconds")


@admin_router.put("/records/{type_name}/{uscc}")
def change_registration(type_name: str, uscc: Annotated[str, Path(max_length=18)], body: ChangeIn,
                        operator: OperatorDep, issuer: Issuer, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Change of registration (变更): replace the record, revoke its credentials, create a new offer."""
    if body.claims.get("uscc") != uscc:
        raise store.InvalidValue("the claims' uscc must be the USCC in the path")

    def run() -> dict[str, Any]:
        offer, revoked = issuer.change_registration(operator, type_name=type_name, claims=body.claims,
                                                    expires_in=body.expires_in)
        return {"offer": offer.to_json(), "revoked": revoked}

    return _idempotent(issuer, operator, idempotency_key, ["change", type_name, uscc, body.model_dump()], run)


class OfferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(max_length=200, examples=["business-licence"])
    uscc: str = Field(max_length=18)
    expires_in: int | None = Field(default=None, description="lifetime of the offer, seconds (default 1800)")


@admin_router.post("/offers", status_code=201, response_model=OfferOut)
def create_offer(body: OfferIn, operator: OperatorDep, issuer: Issuer,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Create a credential offer for a record: deep links by value and by reference, and the PIN."""
    return _idempotent(
        issuer, operator, idempotency_key, ["offer", body.model_dump()],
        lambda: issuer.create_offer(operator, type_name=body.type, uscc=body.uscc, expires_in=body.expires_in).to_json(),
        status=201,
    )


class OfferStateOut(BaseModel):
    offer_id: str
    state: str
    expires_at: datetime
    pin_attempts: int


@admin_router.get("/offers/{offer_id}", response_model=OfferStateOut)
def offer_state(offer_id: Annotated[str, Path(max_length=64)], operator: OperatorDep, issuer: Issuer) -> dict[str, Any]:
    """Where an offer stands: offered, redeemed, issued, expired or withdrawn."""
    offer = issuer.offer_state(operator, offer_id=offer_id)
    return {"offer_id": offer.id, "state": offer.state.value, "expires_at": offer.expires_at,
            "pin_attempts": offer.pin_attempts}


@admin_router.get("/offers/{offer_id}/qr.png", response_class=Response,
                  responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}})
def offer_qr(offer_id: Annotated[str, Path(max_length=64)], operator: OperatorDep, issuer: Issuer) -> Response:
    """The offer's by-reference deep link as a QR image for the enterprise's wallet to scan."""
    offer = issuer.offer_state(operator, offer_id=offer_id)
    link = o4.offer_reference_uri(issuer.endpoint(operator.authority, f"offers/{offer.id}"))
    return Response(qr.render_png(link, scale=6), media_type="image/png", headers={"Cache-Control": "no-store"})


@admin_router.delete("/offers/{offer_id}", response_model=OfferStateOut)
def withdraw_offer(offer_id: Annotated[str, Path(max_length=64)], operator: OperatorDep, issuer: Issuer) -> dict[str, Any]:
    """Withdraw an offer that was not redeemed yet."""
    offer = issuer.withdraw_offer(operator, offer_id=offer_id)
    return {"offer_id": offer.id, "state": offer.state.value, "expires_at": offer.expires_at,
            "pin_attempts": offer.pin_attempts}


class CredentialOut(BaseModel):
    id: str
    vct: str
    uscc: str
    status: str
    reason: str | None
    kid: str
    status_list_id: int
    status_idx: int
    issued_at: datetime
    expires_at: datetime | None
    status_changed_at: datetime | None
    replaced_by: str | None
    granted_under: str | None
    holder_thumbprint: str | None


def _credential_out(c: store.Credential) -> dict[str, Any]:
    return {"id": c.id, "vct": c.vct, "uscc": c.uscc, "status": c.status.value, "reason": c.reason, "kid": c.kid,
            "status_list_id": c.status_list_id, "status_idx": c.status_idx, "issued_at": c.issued_at,
            "expires_at": c.expires_at, "status_changed_at": c.status_changed_at, "replaced_by": c.replaced_by,
            "granted_under": c.granted_under, "holder_thumbprint": c.holder_thumbprint}


#: A time given in a query: ISO 8601 text only (left to itself, pydantic reads a number as a Unix time).
IsoTime = Annotated[datetime, BeforeValidator(datetime.fromisoformat)]


class CredentialPage(BaseModel):
    items: list[CredentialOut]
    next_cursor: str | None


@admin_router.get("/credentials", response_model=CredentialPage)
def list_credentials(
    operator: OperatorDep,
    issuer: Issuer,
    uscc: Annotated[str | None, Query(max_length=18)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    type: Annotated[str | None, Query(max_length=200)] = None,
    issued_from: IsoTime | None = None,
    issued_before: IsoTime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Credentials of the authority, newest first, by USCC, status, type and issue date."""
    vct = issuer._type(type).vct if type else None
    for name, value in (("issued_from", issued_from), ("issued_before", issued_before)):
        if value is not None and value.tzinfo is None:
            raise store.InvalidValue(f"{name} needs a time zone (e.g. 2026-11-01T00:00:00+08:00)")
    page = issuer.list_credentials(operator, uscc=uscc, status=status, vct=vct, issued_from=issued_from,
                                   issued_before=issued_before, limit=limit, cursor=cursor)
    return {"items": [_credential_out(c) for c in page.items], "next_cursor": page.next_cursor}


@admin_router.get("/credentials/{credential_id}", response_model=CredentialOut)
def get_credential(credential_id: Annotated[str, Path(max_length=64)], operator: OperatorDep, issuer: Issuer) -> dict[str, Any]:
    """One credential's record (its status, status index, key, replacement)."""
    return _credential_out(issuer.credential_row(operator, credential_id=credential_id))


class StatusIn(BaseModel):
    """suspend, reinstate, or revoke with a reason (deregistered 注销, revoked_as_penalty 吊销, other)."""

    model_config = ConfigDict(extra="forbid")
    action: str = Field(examples=["revoke"])
    reason: str | None = Field(default=None, max_length=500, examples=["deregistered"])


@admin_router.post("/credentials/{credential_id}/status")
def change_status(credential_id: Annotated[str, Path(max_length=64)], body: StatusIn, operator: OperatorDep,
                  issuer: Issuer, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Suspend, reinstate or revoke; visible in the next status list token served. A licence's
    authorisations follow it."""

    def run() -> dict[str, Any]:
        changed, cascaded = issuer.change_status(operator, credential_id=credential_id, action=body.action,
                                                 reason=body.reason)
        return json.loads(json.dumps({"credential": _credential_out(changed),
                                      "authorisations": [_credential_out(c) for c in cascaded]}, default=_iso))

    return _idempotent(issuer, operator, idempotency_key, ["status", credential_id, body.model_dump()], run)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


@admin_router.get("/keys")
def list_keys(operator: OperatorDep, issuer: Issuer) -> list[dict[str, Any]]:
    """The authority's signing keys and their states (no private material)."""
    return issuer.keys(operator)


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alg: str | None = Field(default=None, examples=["ES256"])


@admin_router.post("/keys/rotate")
def rotate_key(operator: OperatorDep, issuer: Issuer, body: RotateIn | None = None) -> dict[str, Any]:
    """Rotate: a new active key; the old one is retired and stays published while its credentials live."""
    return issuer.rotate_key(operator, alg=body.alg if body else None)


class CompromiseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


@admin_router.post("/keys/{kid}/compromise")
def compromise_key(kid: Annotated[str, Path(max_length=128)], operator: OperatorDep, issuer: Issuer,
                   body: CompromiseIn | None = None) -> dict[str, Any]:
    """Key compromise: revoke the key and every credential it signed; a new key replaces an active one."""
    return issuer.compromise_key(operator, kid=kid, reason=body.reason if body else "")


@admin_router.get("/audit")
def audit(operator: OperatorDep, issuer: Issuer, after_seq: Annotated[int, Query(ge=0)] = 0,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """The authority's audit records after ``after_seq``, oldest first."""
    return [
        {"seq": r.seq, "at": _iso(r.at), "actor": r.actor, "action": r.action, "subject": r.subject,
         "details": store.plain_json(r.details), "hash": r.hash}
        for r in issuer.audit(operator, after_seq=after_seq, limit=limit)
    ]


@admin_router.get("/audit/verify")
def audit_verify(operator: OperatorDep, issuer: Issuer) -> dict[str, Any]:
    """Verify the authority's audit chain end to end; names the first broken record."""
    report = issuer.verify_audit(operator)
    broken = None
    if report.broken is not None:
        broken = {"seq": report.broken.seq, "reason": report.broken.reason, "detail": report.broken.detail}
    return {"chain": report.chain, "records": report.count, "ok": report.broken is None, "broken": broken}
