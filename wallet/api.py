"""HTTP for the wallet role: the backend API the enterprise's mobile wallet calls (FastAPI), under ``/wallet``.

Handlers translate request -> :class:`wallet.service.WalletService` call -> response; the decisions
are the service's. Every endpoint but registration, sign-in and refresh needs ``Authorization: Bearer
<access token>`` (RFC 6750); a missing, unknown, revoked or expired token is 401 with a
``WWW-Authenticate`` challenge. Errors are ``{"error": code, "error_description": ...}`` with the
stable codes and statuses of :mod:`wallet.errors`; an enterprise, member or credential of another
tenant is 404 ``not_found``, exactly as an unknown id. A body larger than :data:`MAX_BODY_BYTES` is
refused (413 ``request_too_large``) before a handler reads it. Responses are ``Cache-Control: no-store``
(tokens, RFC 6749 s5.1; personal data).

=========================================================  ==============================================
``POST /wallet/accounts``                                  register (phone, password, display name)
``POST /wallet/sessions``                                  sign in: access + refresh token
``POST /wallet/sessions/refresh``                          rotate the refresh token
``DELETE /wallet/sessions``                                sign out (the refresh token family is revoked)
``PUT /wallet/pin``                                        set or change the 6-digit wallet PIN
``GET /wallet/me``                                         the user and their enterprises with roles
``GET /wallet/keys``                                       public holder keys (never a private one)
``POST /wallet/enterprises``                               claim an enterprise (becoming its 法定代表人)
``GET|POST /wallet/enterprises/{id}/members``              members; add an administrator or staff member
``DELETE /wallet/enterprises/{id}/members/{user_id}``       remove a member
``GET /wallet/enterprises/{id}/usage``                     the enterprise's usage record (用照记录)
``GET /wallet/credentials`` / ``GET|DELETE .../{id}``       list, open, delete credentials
``GET /wallet/usage``                                      the caller's own usage record
=========================================================  ==============================================
"""

from __future__ import annotations

import base64
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from credentials.errors import CredentialError, error_responses
from credentials.openid4vp import OpenId4VpError
from wallet import store
from wallet.errors import InvalidValue, TokenRequired, WalletError
from wallet.flows import WalletFlows
from wallet.service import HolderKey, Principal, WalletService

__all__ = [
    "MAX_BODY_BYTES",
    "WalletBodyLimit",
    "install",
    "accounts_router",
    "enterprises_router",
    "credentials_router",
    "usage_router",
    "flows_router",
    "IMAGE_BODY_BYTES",
]

#: Largest request body accepted under ``/wallet`` (every body here is a small JSON object)...
MAX_BODY_BYTES = 64 * 1024
#: ...but where a photo of a QR code may come (base64 in JSON).
IMAGE_BODY_BYTES = 6 * 1024 * 1024
_PREFIX = "/wallet"
_IMAGE_PATHS = frozenset({f"{_PREFIX}/credentials/receive", f"{_PREFIX}/requests/inspect"})
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: The handlers FastAPI installs by itself (422 validation bodies): the wallet replaces only these.
_FRAMEWORK_DEFAULTS = (None, http_exception_handler, request_validation_exception_handler)


def _error(status: int, code: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": description}, status_code=status,
                        headers={**_NO_STORE, **(headers or {})})


class WalletBodyLimit:
    """ASGI middleware: a ``/wallet`` request whose body exceeds ``limit`` bytes gets 413
    ``request_too_large``, whether ``Content-Length`` declares it or the body streams in chunks (the
    body is counted here and handed on only when it fits). Other paths pass untouched."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(_PREFIX):
            await self.app(scope, receive, send)
            return
        limit = IMAGE_BODY_BYTES if scope.get("path") in _IMAGE_PATHS else self.limit
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


def install(app: FastAPI, wallet: WalletService, flows: WalletFlows | None = None) -> None:
    """Mount the wallet's routers on ``app`` with its body limit and error handler; with ``flows``,
    also the protocol endpoints (receive, QR codes, presentation requests, staff authorisations).

    The framework-level handlers (validation errors as 400 ``invalid_request``, unknown routes, faults
    as 500 ``server_error``) are added only where the app has none yet, so a role mounted beside the
    wallet keeps its own.
    """
    app.state.wallet = wallet
    app.state.wallet_flows = flows
    app.add_middleware(WalletBodyLimit)
    routers = [accounts_router, enterprises_router, credentials_router, usage_router]
    if flows is not None:
        routers[:0] = [flows_router]  # before /wallet/credentials/{id}: /wallet/credentials/receive is a flow
    for router in routers:
        app.include_router(router)

    @app.exception_handler(WalletError)
    async def _wallet_error(_request: Request, exc: WalletError) -> JSONResponse:
        return _error(exc.http_status, exc.code, exc.detail, exc.headers())

    @app.exception_handler(OpenId4VpError)
    async def _request_error(_request: Request, exc: OpenId4VpError) -> JSONResponse:
        # A request the wallet refuses: its OpenID4VP code, and the finer reason in the description.
        return _error(exc.status, exc.code, f"{exc.reason}: {exc.description}" if exc.reason != exc.code else exc.description)

    if app.exception_handlers.get(CredentialError) is None:
        @app.exception_handler(CredentialError)
        async def _credential_error(_request: Request, exc: CredentialError) -> JSONResponse:
            return _error(getattr(exc, "http_status", 400), exc.code, exc.detail)

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
        return _error(500, "server_error", "The wallet could not complete the request.")

    for kind, handler in ((RequestValidationError, _validation_error), (StarletteHTTPException, _http_error),
                          (Exception, _unexpected)):
        if app.exception_handlers.get(kind) in _FRAMEWORK_DEFAULTS:
            app.add_exception_handler(kind, handler)


# --- dependencies ---------------------------------------------------------------------------------------


def _wallet(request: Request) -> WalletService:
    return request.app.state.wallet


def _principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    token = None
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise TokenRequired("use Authorization: Bearer <access token>")
        token = value.strip()
    return _wallet(request).authenticate(token)


def _no_store(response: Response) -> None:
    response.headers.update(_NO_STORE)


Wallet = Annotated[WalletService, Depends(_wallet)]
Caller = Annotated[Principal, Depends(_principal)]
#: Ids are UUIDs: anything else (a NUL byte, which PostgreSQL text cannot hold) is refused before a lookup.
_ID = r"^[A-Za-z0-9_-]{1,64}$"
EnterpriseId = Annotated[str, Path(pattern=_ID, description="the enterprise's id")]
CredentialId = Annotated[str, Path(pattern=_ID, description="the credential's id")]
MemberId = Annotated[str, Path(pattern=_ID, description="the member's user id")]


# --- models ---------------------------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(_In):
    """A new account: a mainland mobile number, a password (at least 10 characters), a display name."""

    phone: str = Field(max_length=32, examples=["+86 138 0013 8000"])
    password: str = Field(max_length=1024)
    display_name: str = Field(max_length=200, examples=["张三"])


class SignInIn(_In):
    phone: str = Field(max_length=32)
    password: str = Field(max_length=1024)


class RefreshIn(_In):
    refresh_token: str = Field(max_length=512)


class PinIn(_In):
    """The new 6-digit PIN; ``old_pin`` when changing it."""

    pin: str = Field(max_length=32, examples=["260817"])
    old_pin: str | None = Field(default=None, max_length=32)


class ClaimIn(_In):
    uscc: str = Field(max_length=64, examples=["91310000MA1FL1234X"])
    name: str = Field(max_length=400)


class MemberIn(_In):
    """The account (by phone number) to make an administrator or a staff member."""

    phone: str = Field(max_length=32)
    role: Literal["administrator", "staff"]


class UserOut(BaseModel):
    id: str
    phone: str
    display_name: str
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    user: UserOut


class EnterpriseOut(BaseModel):
    id: str
    uscc: str
    name: str
    created_at: datetime


class MembershipOut(BaseModel):
    enterprise: EnterpriseOut
    role: str


class MeOut(BaseModel):
    user: UserOut
    pin_set: bool
    enterprises: list[MembershipOut]


class KeyOut(BaseModel):
    kid: str
    owner: str
    alg: str
    state: str
    public_jwk: dict[str, str]
    created_at: datetime


class MemberOut(BaseModel):
    user_id: str
    phone: str
    display_name: str
    role: str
    added_by: str | None
    added_at: datetime


class CredentialOut(BaseModel):
    id: str
    enterprise_id: str | None
    user_id: str | None
    holder_kid: str
    vct: str
    issuer: str
    configuration_id: str
    received_at: datetime
    expires_at: datetime | None
    status_list_uri: str | None
    status_list_idx: int | None
    status: str | None
    status_checked_at: datetime | None


class CredentialDetailOut(CredentialOut):
    credential: str = Field(description="the SD-JWT VC with all its disclosures")


class UsageOut(BaseModel):
    id: str
    enterprise_id: str | None
    user_id: str
    credential_ids: list[str]
    channel: str
    verifier_client_id: str | None
    verifier_name: str | None
    purpose: str | None
    disclosed: list[str]
    request_id: str | None
    nonce: str | None
    outcome: str
    at: datetime


class UsagePage(BaseModel):
    items: list[UsageOut]
    next_cursor: str | None


def _user_out(user: store.User) -> dict[str, Any]:
    return {"id": user.id, "phone": user.phone, "display_name": user.display_name, "created_at": user.created_at}


def _enterprise_out(e: store.Enterprise) -> dict[str, Any]:
    return {"id": e.id, "uscc": e.uscc, "name": e.name, "created_at": e.created_at}


def _tokens_out(pair: Any) -> dict[str, Any]:
    return {"access_token": pair.access_token, "token_type": pair.token_type, "expires_in": pair.expires_in,
            "refresh_token": pair.refresh_token, "refresh_expires_in": pair.refresh_expires_in,
            "user": _user_out(pair.user)}


#: What every wallet endpoint may answer with the error body; the protocol flows add their peers' failures.
_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 429, 503)
_FLOW_ERRORS = {**_ERRORS, **error_responses(410, 422, 502, 504)}

Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=200)]


# --- accounts and sessions ------------------------------------------------------------------------------

accounts_router = APIRouter(prefix=_PREFIX, tags=["wallet: accounts"], dependencies=[Depends(_no_store)],
                            responses=_ERRORS)


@accounts_router.post("/accounts", status_code=201, response_model=UserOut)
def register(body: RegisterIn, wallet: Wallet) -> dict[str, Any]:
    """Register with a mainland mobile number, a password and a display name."""
    return _user_out(wallet.register(phone=body.phone, password=body.password, display_name=body.display_name))


@accounts_router.post("/sessions", response_model=TokenOut)
def sign_in(body: SignInIn, wallet: Wallet) -> dict[str, Any]:
    """Sign in: a 15-minute access token and a rotating 30-day refresh token."""
    return _tokens_out(wallet.sign_in(phone=body.phone, password=body.password))


@accounts_router.post("/sessions/refresh", response_model=TokenOut)
def refresh(body: RefreshIn, wallet: Wallet) -> dict[str, Any]:
    """Trade the refresh token for a new pair (a reused refresh token ends the whole session)."""
    return _tokens_out(wallet.refresh(refresh_token=body.refresh_token))


@accounts_router.delete("/sessions", status_code=204, response_class=Response)
def sign_out(caller: Caller, wallet: Wallet) -> Response:
    """Sign out: the session's access tokens and refresh tokens are revoked."""
    wallet.sign_out(caller)
    return Response(status_code=204, headers=_NO_STORE)


@accounts_router.put("/pin", status_code=204, response_class=Response)
def set_pin(body: PinIn, caller: Caller, wallet: Wallet) -> Response:
    """Set the 6-digit wallet PIN, or change it with the old one."""
    wallet.set_pin(caller.user, pin=body.pin, old_pin=body.old_pin)
    return Response(status_code=204, headers=_NO_STORE)


@accounts_router.get("/me", response_model=MeOut)
def me(caller: Caller, wallet: Wallet) -> dict[str, Any]:
    """The signed-in user, whether the PIN is set, and their enterprises with their roles."""
    profile = wallet.me(caller.user)
    return {"user": _user_out(profile.user), "pin_set": profile.pin_set,
            "enterprises": [{"enterprise": _enterprise_out(m.enterprise), "role": m.role.value}
                            for m in profile.memberships]}


@accounts_router.get("/keys", response_model=list[KeyOut])
def keys(caller: Caller, wallet: Wallet) -> list[HolderKey]:
    """Public holder keys: the user's own and their enterprises' licence keys."""
    return list(wallet.holder_keys(caller.user))


# --- enterprises and members ----------------------------------------------------------------------------

enterprises_router = APIRouter(prefix=f"{_PREFIX}/enterprises", tags=["wallet: enterprises"],
                               dependencies=[Depends(_no_store)], responses=_ERRORS)


@enterprises_router.post("", status_code=201, response_model=EnterpriseOut)
def claim_enterprise(body: ClaimIn, caller: Caller, wallet: Wallet) -> dict[str, Any]:
    """Claim an enterprise by its USCC, becoming its legal representative."""
    return _enterprise_out(wallet.claim_enterprise(caller.user, uscc=body.uscc, name=body.name))


@enterprises_router.get("/{enterprise_id}/members", response_model=list[MemberOut])
def members(enterprise_id: EnterpriseId, caller: Caller, wallet: Wallet) -> list[store.Member]:
    """The enterprise's members and their roles (legal representative and administrators)."""
    return list(wallet.members(caller.user, enterprise_id=enterprise_id))


@enterprises_router.post("/{enterprise_id}/members", status_code=201, response_model=MemberOut)
def add_member(enterprise_id: EnterpriseId, body: MemberIn, caller: Caller, wallet: Wallet) -> store.Member:
    """Name an administrator (legal representative only) or link a staff member, by phone number."""
    return wallet.add_member(caller.user, enterprise_id=enterprise_id, phone=body.phone, role=body.role)


@enterprises_router.delete("/{enterprise_id}/members/{member_id}", status_code=204, response_class=Response)
def remove_member(enterprise_id: EnterpriseId, member_id: MemberId, caller: Caller, wallet: Wallet) -> Response:
    """Remove a member from the enterprise (or leave it)."""
    wallet.remove_member(caller.user, enterprise_id=enterprise_id, member_id=member_id)
    return Response(status_code=204, headers=_NO_STORE)


@enterprises_router.get("/{enterprise_id}/usage", response_model=UsagePage)
def enterprise_usage(enterprise_id: EnterpriseId, caller: Caller, wallet: Wallet, limit: Limit = 50,
                     cursor: Cursor = None) -> store.Page[store.UsageRecord]:
    """The enterprise's usage record, newest first (staff see their own presentations only)."""
    return wallet.usage(caller.user, enterprise_id=enterprise_id, limit=limit, cursor=cursor)


# --- credentials ----------------------------------------------------------------------------------------

credentials_router = APIRouter(prefix=f"{_PREFIX}/credentials", tags=["wallet: credentials"],
                               dependencies=[Depends(_no_store)], responses=_ERRORS)


@credentials_router.get("", response_model=list[CredentialOut])
def list_credentials(caller: Caller, wallet: Wallet,
                     enterprise_id: Annotated[str | None, Query(pattern=_ID)] = None) -> list[store.StoredCredential]:
    """Credentials the user may see, newest first, optionally of one enterprise (without their text)."""
    return list(wallet.credentials(caller.user, enterprise_id=enterprise_id))


@credentials_router.get("/{credential_id}", response_model=CredentialDetailOut)
def get_credential(credential_id: CredentialId, caller: Caller, wallet: Wallet) -> store.StoredCredential:
    """Open one credential, with its SD-JWT VC text."""
    return wallet.credential(caller.user, credential_id=credential_id)


@credentials_router.delete("/{credential_id}", status_code=204, response_class=Response)
def delete_credential(credential_id: CredentialId, caller: Caller, wallet: Wallet) -> Response:
    """Delete a credential from the wallet (it stays valid at its issuer)."""
    wallet.delete_credential(caller.user, credential_id=credential_id)
    return Response(status_code=204, headers=_NO_STORE)


# --- own usage record -----------------------------------------------------------------------------------

usage_router = APIRouter(prefix=_PREFIX, tags=["wallet: usage record"], dependencies=[Depends(_no_store)],
                         responses=_ERRORS)


@usage_router.get("/usage", response_model=UsagePage)
def own_usage(caller: Caller, wallet: Wallet, limit: Limit = 50,
              cursor: Cursor = None) -> store.Page[store.UsageRecord]:
    """The caller's own usage record (every presentation they made), newest first."""
    return wallet.usage(caller.user, limit=limit, cursor=cursor)


# --- protocol flows: receive, show, answer, authorise ------------------------------------------------------


def _flows(request: Request) -> WalletFlows:
    flows = request.app.state.wallet_flows
    assert flows is not None  # the router is mounted only with flows
    return flows


Flows = Annotated[WalletFlows, Depends(_flows)]
Pin = Annotated[str, Field(min_length=1, max_length=16, description="the 6-digit wallet PIN")]

flows_router = APIRouter(prefix=_PREFIX, tags=["wallet: receive, show, present, authorise"],
                         dependencies=[Depends(_no_store)], responses=_FLOW_ERRORS)


def _image(b64: str | None) -> bytes | None:
    if b64 is None:
        return None
    try:
        return base64.b64decode(b64, validate=True)
    except ValueError as exc:
        raise InvalidValue("the image must be base64 (PNG or JPEG bytes)") from exc


def _link_or_image(text: str | None, image: str | None, what: str) -> str | bytes:
    if (text is None) == (image is None):
        raise InvalidValue(f"give the {what} as text or as an image, not both or neither")
    return text if text is not None else _image(image)  # type: ignore[return-value]


class ReceiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offer: str | None = Field(default=None, max_length=8192, description="the openid-credential-offer:// link")
    offer_image: str | None = Field(default=None, description="or a photo or screenshot of its QR code (base64)")
    tx_code: str | None = Field(default=None, max_length=64, description="the PIN the authority delivered")
    enterprise_id: str | None = Field(default=None, pattern=_ID,
                                      description="receive the enterprise's licence or permit into its key")


@flows_router.post("/credentials/receive", status_code=201, response_model=CredentialOut)
def receive(body: ReceiveIn, caller: Caller, flows: Flows) -> store.StoredCredential:
    """Receive a credential over OpenID4VCI from a credential offer and its PIN; verified before it is kept."""
    offer = _link_or_image(body.offer, body.offer_image, "offer")
    return flows.receive(caller.user, offer=offer, tx_code=body.tx_code, enterprise_id=body.enterprise_id)


class ShowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: Pin
    claims: list[Annotated[str, Field(max_length=128)]] | None = Field(
        default=None, max_length=32, description="claim paths to disclose (dotted); default: the type's QR view")
    svg: bool = Field(default=False, description="also answer the code as SVG")


class ShownOut(BaseModel):
    credential_id: str
    text: str = Field(description="the EL1: payload the QR code holds")
    png: str = Field(description="the QR code as PNG, base64")
    svg: str | None = Field(description="the QR code as SVG, when asked for")
    disclosed: list[str]
    expires_at: datetime
    usage_id: str


@flows_router.post("/credentials/{credential_id}/qr", response_model=ShownOut)
def show_qr(credential_id: CredentialId, body: ShowIn, caller: Caller, flows: Flows) -> dict[str, Any]:
    """A new QR code of the credential (亮码): a fresh key-bound presentation, after the wallet PIN."""
    shown = flows.show_qr(caller.user, credential_id=credential_id, pin=body.pin, claims=body.claims, svg=body.svg)
    return {"credential_id": shown.credential_id, "text": shown.text, "png": base64.b64encode(shown.png).decode(),
            "svg": shown.svg, "disclosed": list(shown.disclosed), "expires_at": shown.expires_at,
            "usage_id": shown.usage_id}


class CardFieldOut(BaseModel):
    path: str
    label_zh: str
    label_en: str
    value: Any


class CardOut(BaseModel):
    credential: CredentialOut
    type_zh: str
    type_en: str
    issuer_name: dict[str, str] = Field(description="from the trust list; empty when the issuer is not on it")
    fields: list[CardFieldOut]
    colours: dict[str, str]
    qr_claims: list[str] = Field(description="what a QR code shows unless the holder chooses otherwise")


@flows_router.get("/credentials/{credential_id}/card", response_model=CardOut)
def card(credential_id: CredentialId, caller: Caller, flows: Flows) -> dict[str, Any]:
    """The credential as a card: type name, issuer, each claim with its zh-CN / en label, status."""
    c = flows.card(caller.user, credential_id=credential_id)
    return {"credential": c.credential, "type_zh": c.type_zh, "type_en": c.type_en, "issuer_name": dict(c.issuer_name),
            "fields": [{"path": f.path, "label_zh": f.label_zh, "label_en": f.label_en, "value": f.value}
                       for f in c.fields],
            "colours": dict(c.colours), "qr_claims": list(c.qr_claims)}


@flows_router.post("/credentials/{credential_id}/status", response_model=CredentialOut)
def refresh_status(credential_id: CredentialId, caller: Caller, flows: Flows) -> store.StoredCredential:
    """Check the credential's status list now (verified with the issuer's key from the trust list)."""
    return flows.refresh_status(caller.user, credential_id=credential_id)


class InspectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request: str | None = Field(default=None, max_length=8192, description="the openid4vp:// link")
    request_image: str | None = Field(default=None, description="or a photo or screenshot of its QR code (base64)")


class OfferedOut(BaseModel):
    credential_id: str
    vct: str
    disclose: list[str]


class PreviewOut(BaseModel):
    request_object: str = Field(description="send it back to answer")
    client_id: str
    verifier_name: str | None = Field(description="the name its registrar certified")
    client_name: str | None = Field(description="the name the verifier gives itself")
    purpose: str | None
    requested: dict[str, list[str]]
    offered: dict[str, list[OfferedOut]]
    satisfiable: bool
    expires_at: int | None


@flows_router.post("/requests/inspect", response_model=PreviewOut)
def inspect_request(body: InspectIn, caller: Caller, flows: Flows) -> dict[str, Any]:
    """Who asks, why, for which claims, and what would answer (扫码): the signed request is checked first."""
    preview = flows.inspect(caller.user, link=_link_or_image(body.request, body.request_image, "request"))
    return {"request_object": preview.request_object, "client_id": preview.client_id,
            "verifier_name": preview.verifier_name, "client_name": preview.client_name, "purpose": preview.purpose,
            "requested": {k: list(v) for k, v in preview.requested.items()},
            "offered": {k: [{"credential_id": o.credential_id, "vct": o.vct, "disclose": list(o.disclose)} for o in v]
                        for k, v in preview.offered.items()},
            "satisfiable": preview.satisfiable, "expires_at": preview.expires_at}


class RespondIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_object: str = Field(max_length=65536)
    client_id: str = Field(max_length=512)
    consent: bool
    pin: str | None = Field(default=None, max_length=16)
    choices: dict[str, Annotated[str, Field(pattern=_ID)]] | None = Field(
        default=None, description="credential id per credential query id (default: the first that answers)")


class AnsweredOut(BaseModel):
    outcome: Literal["sent", "refused"]
    usage_id: str
    redirect_uri: str | None


@flows_router.post("/requests/respond", response_model=AnsweredOut)
def respond(body: RespondIn, caller: Caller, flows: Flows) -> dict[str, Any]:
    """Answer a presentation request: with consent and the PIN the vp_token (direct_post), else access_denied."""
    answered = flows.respond(caller.user, request_object=body.request_object, client_id=body.client_id,
                             consent=body.consent, pin=body.pin, choices=body.choices)
    return {"outcome": answered.outcome, "usage_id": answered.usage_id, "redirect_uri": answered.redirect_uri}


class AuthoriseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    member_id: str = Field(pattern=_ID, description="the staff member's user id (see members)")
    scope: dict[str, Any] = Field(description='{"all": true} or {"matters": ["..."]}')
    valid_until: date
    valid_from: date | None = None
    pin: Pin


@flows_router.post("/enterprises/{enterprise_id}/authorisations", status_code=201, response_model=CredentialOut)
def authorise(enterprise_id: EnterpriseId, body: AuthoriseIn, caller: Caller, flows: Flows) -> store.StoredCredential:
    """Authorise a staff member (授权): the issuer grants it on the licence, the staff member's key receives it."""
    return flows.authorise_staff(caller.user, enterprise_id=enterprise_id, member_id=body.member_id, scope=body.scope,
                                 valid_until=body.valid_until, valid_from=body.valid_from, pin=body.pin)


@flows_router.get("/enterprises/{enterprise_id}/authorisations", response_model=list[CredentialOut])
def authorisations(enterprise_id: EnterpriseId, caller: Caller, flows: Flows) -> list[store.StoredCredential]:
    """The enterprise's staff authorisations (legal representative and administrators)."""
    return list(flows.service.enterprise_authorisations(caller.user, enterprise_id=enterprise_id))


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: Pin


@flows_router.post("/enterprises/{enterprise_id}/authorisations/{credential_id}/withdraw", response_model=CredentialOut)
def withdraw(enterprise_id: EnterpriseId, credential_id: CredentialId, body: WithdrawIn, caller: Caller,
             flows: Flows) -> store.StoredCredential:
    """Withdraw a staff authorisation at its issuer: revoked at once (the status list says so)."""
    return flows.withdraw_authorisation(caller.user, enterprise_id=enterprise_id, credential_id=credential_id,
                                        pin=body.pin)
