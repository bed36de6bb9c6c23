"""The sample portal (一网通办 示例门户) at ``/portal``: "log in with e-licence" as any portal would add it.

It is a plain OpenID Connect Relying Party (OpenID Connect Core 1.0, authorization code flow) written with
Authlib's Starlette client, an independent, widely used OpenID Connect library: it shares no code with
the OpenID Provider in ``verifier/`` and knows nothing about credentials. It discovers the provider
(Discovery 1.0) at the deployment's ``/verifier/.well-known/openid-configuration``, checking that the
document names the issuer it was fetched for; sends the browser to
the authorization endpoint with ``state``, ``nonce`` and PKCE ``S256`` (RFC 7636); on the way back
checks ``state`` against its own session, and ``iss`` (RFC 9207) against the discovered issuer; redeems
the code at the token endpoint with ``client_secret_basic``; and lets the library validate the ID
Token (Authlib with joserfc): signature with a key of the provider's JWKS and an algorithm it advertises,
``iss``, ``aud``, ``exp``, ``nonce``, with ``iat`` and ``sub`` present. The page then shows who logged in: the enterprise's name and USCC and, for a staff
member (经办人), the acting person and the scope of their authorisation.

State, nonce and code verifier live in the portal's session, a cookie signed with the portal's own key
(Starlette's ``SessionMiddleware``: ``HttpOnly``, ``SameSite=Lax``, ``Secure`` on https, path
``/portal``), so a callback is accepted only from the browser that started the login; the session is
replaced when someone logs in. An error answer of the provider (``access_denied`` when the holder
declines, ...) or a failed check of the portal's own is shown with its code. Pages have no script and
a strict Content Security Policy (:func:`elicence.pages.security_headers`; forms post only to the portal).

:class:`PortalSettings` is what a portal is given when it registers (client id and secret, its redirect
URI) with the discovery URL and its session key; the demo deployment keeps them in
``var/demo-portal.json`` (:func:`elicence.app.seed_demo_portal`).

No handler of the portal reads a request body (the login is GET, the log-out form carries nothing): a
request that declares a body above :data:`MAX_BODY_BYTES` gets 413 ``request_too_large``, and a streamed
one is never read, so it costs nothing.
"""

from __future__ import annotations

import html
import json
import warnings
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import httpx
from joserfc.errors import JoseError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from elicence import pages

with warnings.catch_warnings():
    # Authlib prefers the httpx2 fork and warns when it falls back to httpx, which this project uses.
    import authlib.deprecate  # noqa: F401  (it installs its own "always" filter first, which this one overrides)

    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.starlette_client import OAuth, OAuthError

__all__ = ["PORTAL_PATH", "MAX_BODY_BYTES", "PORTAL_NAME", "SESSION_COOKIE", "DEMO_PORTAL_FILE", "PortalSettings", "create_portal_app",
           "install"]

PORTAL_PATH = "/portal"
#: The name the portal registers under; the provider's login page shows it.
PORTAL_NAME = "一网通办 示例门户 (sample portal)"
SESSION_COOKIE = "elicence_portal"
DEMO_PORTAL_FILE = "demo-portal.json"
#: How long a portal session lasts (seconds), logged in or waiting for the provider's answer.
SESSION_MAX_AGE = 8 * 3600
#: The largest request body the portal accepts (it reads none).
MAX_BODY_BYTES = 4 * 1024
_CLIENT = "elicence"


@dataclass(frozen=True)
class PortalSettings:
    """What the portal needs: its registration at the provider and the key that signs its session cookie."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    discovery_url: str
    session_key: str = field(repr=False)

    @classmethod
    def load(cls, path: Path) -> PortalSettings | None:
        """The settings kept in ``path``, or ``None`` when there is no such file."""
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def to_json(self) -> str:
        """The settings as the JSON text :meth:`load` reads (it holds secrets: keep it mode 0600)."""
        return json.dumps(asdict(self), indent=2)


# --- pages ----------------------------------------------------------------------------------------------


def _template() -> Template:
    return Template(resources.files("elicence").joinpath("pages/portal.html").read_text(encoding="utf-8"))


def _page(main: str, status: int = 200) -> HTMLResponse:
    body = _template().substitute(main=main)
    headers = pages.security_headers(body)
    # No script at all; the one form (log out) posts to the portal itself.
    headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
        "form-action 'none'", "form-action 'self'")
    headers["Cache-Control"] = "no-store"  # the page names who is logged in
    return HTMLResponse(body, status_code=status, headers=headers)


def _e(value: Any) -> str:
    return html.escape(str(value))


_LOGIN = (f'<section id="logged-out"><h2>登录<span class="en">Log in</span></h2>'
          f'<p>企业用户请用电子营业执照登录：扫描下一页的二维码，在电子营业执照中确认。'
          f'<span class="en">Enterprises log in with their e-licence: scan the next page\'s QR code and '
          f'confirm in the wallet.</span></p>'
          f'<a id="login" class="button" href="{PORTAL_PATH}/login">使用电子营业执照登录'
          f'<span class="en">Log in with e-licence</span></a></section>')


def _error(code: str, description: str | None) -> str:
    return (f'<div id="error" role="alert" data-code="{_e(code)}"><code id="error-code">{_e(code)}</code>'
            f'<span id="error-message">{_e(description or "")}</span><br>登录未成功，可重新登录。'
            f'<span class="en">You are not logged in; you may try again.</span></div>')


def _scope(scope: Any) -> str:
    if isinstance(scope, dict) and scope.get("all") is True:
        return "全部事项 / all service items"
    if isinstance(scope, dict) and isinstance(scope.get("matters"), list):
        return ", ".join(str(m) for m in scope["matters"])
    return json.dumps(scope, ensure_ascii=False)


def _who(claims: dict[str, Any]) -> str:
    rows = [("企业名称", "Enterprise", "enterprise-name", claims.get("enterprise_name")),
            ("统一社会信用代码", "USCC", "uscc", claims.get("uscc"))]
    act, authorisation = claims.get("act"), claims.get("authorisation")
    if isinstance(act, dict):
        rows.append(("经办人", "Acting staff member", "acting", act.get("name")))
        if isinstance(authorisation, dict):
            rows.append(("授权范围", "Scope", "scope", _scope(authorisation.get("scope"))))
            rows.append(("授权截止", "Authorised until", "valid-until", authorisation.get("valid_until")))
    else:
        rows.append(("登录身份", "Logged in as", "acting", "企业（法定代表人）/ the enterprise (legal representative)"))
    rows.append(("门户内用户标识", "Subject at this portal (pairwise)", "sub", claims.get("sub")))
    listed = "".join(f'<dt>{zh}<span class="en">{en}</span></dt><dd id="{key}">{_e(value)}</dd>'
                     for zh, en, key, value in rows)
    shown = json.dumps(claims, ensure_ascii=False, indent=2, sort_keys=True)
    return (f'<section id="logged-in"><h2>已登录<span class="en">Logged in</span></h2><dl>{listed}</dl>'
            f'<form method="post" action="{PORTAL_PATH}/logout"><button id="logout" class="secondary" type="submit">'
            f'退出<span class="en">Log out</span></button></form></section>'
            f'<section><h2>ID Token 声明<span class="en">The ID Token\'s claims, as validated</span></h2>'
            f'<pre id="claims">{_e(shown)}</pre></section>')


# --- the Relying Party ----------------------------------------------------------------------------------


def _claims_options(issuer: str, client_id: str) -> dict[str, Any]:
    # OIDC Core s3.1.3.7: iss must be the discovered issuer, aud must contain the client_id; exp, iat and
    # sub are required, and nonce because the portal sent one. (Authlib checks the nonce's value.)
    return {"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id},
            "exp": {"essential": True}, "iat": {"essential": True}, "sub": {"essential": True},
            "nonce": {"essential": True}}


class _Portal:
    def __init__(self, settings: PortalSettings, transport: httpx.AsyncBaseTransport | None) -> None:
        self.settings = settings
        oauth = OAuth()
        client_kwargs: dict[str, Any] = {"scope": "openid", "code_challenge_method": "S256",
                                         "token_endpoint_auth_method": "client_secret_basic", "timeout": 20}
        if transport is not None:
            client_kwargs["transport"] = transport
        self.client = oauth.register(_CLIENT, client_id=settings.client_id, client_secret=settings.client_secret,
                                     server_metadata_url=settings.discovery_url, client_kwargs=client_kwargs)

    async def _provider(self) -> dict[str, Any]:
        metadata = await self.client.load_server_metadata()
        # Discovery 1.0 s4.3: the issuer "MUST be identical to the Issuer URL that was used as the prefix
        # to /.well-known/openid-configuration to retrieve the configuration information".
        if f"{metadata.get('issuer')}/.well-known/openid-configuration" != self.settings.discovery_url:
            raise OAuthError(error="issuer_mismatch", description="the discovery document names another issuer")
        return metadata

    async def home(self, request: Request) -> Response:
        claims = request.session.get("claims")
        return _page(_who(claims) if isinstance(claims, dict) else _LOGIN)

    async def login(self, request: Request) -> Response:
        try:
            await self._provider()
            return await self.client.authorize_redirect(request, self.settings.redirect_uri)
        except OAuthError as exc:
            return _page(_error(exc.error, exc.description) + _LOGIN, 502)
        except httpx.HTTPError as exc:
            return _page(_error("provider_unreachable", f"the OpenID Provider did not answer: {type(exc).__name__}")
                         + _LOGIN, 502)

    async def callback(self, request: Request) -> Response:
        state = request.query_params.get("state")
        framework = self.client.framework
        if not state or await framework.get_state_data(request.session, state) is None:
            # RFC 6749 s10.12: an answer is taken only in the browser session that asked for it; this
            # one's error (if any) is not shown either, since anyone could have made this link.
            return _page(_error("mismatching_state", "this answer does not belong to a login started in this "
                                "browser (or it was used already)") + _LOGIN, 400)
        try:
            metadata = await self._provider()
            issuer = metadata["issuer"]
            sends_iss = metadata.get("authorization_response_iss_parameter_supported") is True
            if (sends_iss or "iss" in request.query_params) and request.query_params.get("iss") != issuer:
                # RFC 9207 s2.4: iss, required when the metadata says the server sends it, must be the issuer.
                raise OAuthError(error="issuer_mismatch", description="the answer names another issuer")
            token = await self.client.authorize_access_token(
                request, claims_options=_claims_options(issuer, self.settings.client_id))
        except OAuthError as exc:
            return await self._failed(request, state, exc.error or "invalid_response", exc.description)
        except JoseError as exc:
            return await self._failed(request, state, "invalid_id_token", str(exc))
        except httpx.HTTPError as exc:
            return await self._failed(request, state, "provider_unreachable", type(exc).__name__)
        if token.get("userinfo") is None:
            return await self._failed(request, state, "invalid_id_token", "the token response has no ID Token")
        claims = dict(token["userinfo"])
        # A new session for the logged-in user (no fixation): what the browser held before is dropped.
        request.session.clear()
        request.session["claims"] = claims
        return RedirectResponse(f"{PORTAL_PATH}/", status_code=303)

    async def _failed(self, request: Request, state: str, code: str, description: str | None) -> Response:
        await self.client.framework.clear_state_data(request.session, state)  # the login this answer ended
        return _page(_error(code, description) + _LOGIN, 403 if code == "access_denied" else 400)

    async def logout(self, request: Request) -> Response:
        request.session.clear()
        return RedirectResponse(f"{PORTAL_PATH}/", status_code=303)


class _BodyLimit:
    """ASGI middleware: 413 ``request_too_large`` for a declared body above :data:`MAX_BODY_BYTES`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        declared = dict(scope.get("headers", ())).get(b"content-length", b"") if scope["type"] == "http" else b""
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            response = JSONResponse({"error": "request_too_large",
                                     "error_description": f"the request body is larger than {MAX_BODY_BYTES} bytes"},
                                    status_code=413)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_portal_app(settings: PortalSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The portal as an ASGI app of its own (mounted at :data:`PORTAL_PATH`): ``/``, ``/login``, ``/callback``,
    ``/logout``. ``transport`` routes its calls to the provider (default: the network)."""
    portal = _Portal(settings, transport)
    https = settings.redirect_uri.startswith("https://")
    return Starlette(
        routes=[Route("/", portal.home), Route("/login", portal.login), Route("/callback", portal.callback),
                Route("/logout", portal.logout, methods=["POST"])],
        middleware=[Middleware(_BodyLimit), Middleware(SessionMiddleware, secret_key=settings.session_key, session_cookie=SESSION_COOKIE,
                               max_age=SESSION_MAX_AGE, path=PORTAL_PATH, same_site="lax", https_only=https)],
    )


def install(app: Starlette, settings: PortalSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
    """Mount the sample portal on ``app`` at :data:`PORTAL_PATH`."""
    app.mount(PORTAL_PATH, create_portal_app(settings, transport=transport))
