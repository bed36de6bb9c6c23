"""The OpenID Provider rules of "log in with e-licence": OpenID Connect Core 1.0 (incorporating errata
set 2) over OAuth 2.0 (RFC 6749) with PKCE (RFC 7636, ``S256`` only), Discovery 1.0 and RFC 9207 (``iss``
in the authorization response).

A portal (the Relying Party) redirects the browser to the authorization endpoint; the verifier runs an
OpenID4VP 1.0 request for the enterprise's business licence (and, when a staff member acts, their staff
authorisation), and answers the portal with an authorization code that it redeems at the token
endpoint for a signed ID Token. This module holds the decisions, with no web framework and no I/O:
parameter validation (:func:`validate_authorization_request`), the redirects
(:func:`code_redirect`, :func:`error_redirect`), client authentication (:func:`client_credentials`),
PKCE (:func:`check_pkce`), pairwise subjects (:func:`pairwise_subject`), the DCQL query of the login
request (:func:`login_dcql`), the login decision over the verified presentations
(:func:`evaluate_login`), the ID Token claims (:func:`id_token_claims`) and the discovery document
(:func:`provider_metadata`). :class:`verifier.service.VerifierService` persists the state in
``verifier.store`` (``verifier_portal``, ``verifier_login``) and signs.

Choices where the specifications leave room, with the reason:

* Only the authorization code flow (``response_type=code``) with PKCE ``S256`` is offered, and
  ``nonce`` is required: a portal cannot downgrade to a flow without proof of possession of the code
  or without binding the ID Token to its browser session (OAuth 2.0 Security BCP, RFC 9700 s2.1.1).
* ``redirect_uri`` is compared by exact string match with a registered one (RFC 9700 s2.1: "MUST
  utilize exact string matching"), and it is required even when one is registered.
* Client authentication: ``client_secret_basic`` or ``client_secret_post`` (OIDC Core s9); secrets are
  256-bit random values stored as SHA-256 only, so a slow hash adds nothing.
* ``sub`` is pairwise (OIDC Core s8.1): HMAC-SHA-256 of the USCC under the portal's own salt, so two
  portals cannot join their users on ``sub``; the USCC is also given as a claim, because the portal
  needs the public register identity of the enterprise (issue 5).
* An acting staff member is the RFC 8693 s4.1 ``act`` claim (with a pairwise ``sub`` of their own
  holder key's thumbprint, and their name) and the authorisation's scope and term in ``authorisation``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from credentials import dcql
from credentials.audit import _thaw
from credentials.openid4vci import _ascii
from credentials.sd_jwt_vc import VerifiedCredential
from keys.jwk import b64u_encode, thumbprint
from schemas.registry import get_type
from verifier.store import StoreError

__all__ = [
    "ID_TOKEN_TYP",
    "SCOPE_OPENID",
    "LICENCE_QUERY",
    "AUTHORISATION_QUERY",
    "OidcError",
    "InvalidRequest",
    "InvalidClient",
    "InvalidGrant",
    "UnsupportedGrantType",
    "UnsupportedResponseType",
    "InvalidScope",
    "AccessDenied",
    "LoginRequired",
    "InvalidToken",
    "LoginRefused",
    "AuthorizationParams",
    "LoginIdentity",
    "check_redirect_uri",
    "validate_authorization_request",
    "code_redirect",
    "error_redirect",
    "client_credentials",
    "s256",
    "check_pkce",
    "pairwise_subject",
    "login_dcql",
    "evaluate_login",
    "id_token_claims",
    "provider_metadata",
    "parse_form",
]

#: JOSE ``typ`` of the ID Token (RFC 7519 s5.1; OIDC Core does not define a dedicated one).
ID_TOKEN_TYP = "JWT"
SCOPE_OPENID = "openid"
#: Credential Query ids of the login request.
LICENCE_QUERY = "licence"
AUTHORISATION_QUERY = "authorisation"
_BUSINESS_LICENCE = get_type("business-licence").vct
_STAFF_AUTHORISATION = get_type("staff-authorisation").vct
#: Dates in an authorisation (valid_from / valid_until) are calendar days in China Standard Time.
_CST = timezone(timedelta(hours=8))
#: RFC 7636 s4.1: code_verifier = 43*128unreserved.
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
#: RFC 7636 s4.2: S256 challenge = BASE64URL(SHA256(verifier)), 43 characters without padding.
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
#: RFC 6749 A.5 / A.10: state and nonce are VSCHAR; bounded here so they fit the database.
_VSCHAR = re.compile(r"[\x20-\x7e]{1,512}")
_MAX_REDIRECT_URI = 2000
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


# --- errors ---------------------------------------------------------------------------------------------


class OidcError(StoreError):
    """An OAuth 2.0 / OpenID Connect error: ``code`` is the protocol's ``error`` (RFC 6749 s4.1.2.1, s5.2;
    OIDC Core s3.1.2.6), ``reason`` a finer stable snake_case name of the failed check.

    ``redirect_uri`` (and ``state``) are set when the error may be sent back to the portal: only once the
    client and its ``redirect_uri`` are known to be genuine (RFC 6749 s4.1.2.1). ::

        OidcError                   (StoreError)
        ├── InvalidRequest          invalid_request            400
        ├── InvalidClient           invalid_client             401
        ├── InvalidGrant            invalid_grant              400
        ├── UnsupportedGrantType    unsupported_grant_type     400
        ├── UnsupportedResponseType unsupported_response_type  400
        ├── InvalidScope            invalid_scope              400
        ├── AccessDenied            access_denied              403
        ├── LoginRequired           login_required             400
        └── InvalidToken            invalid_token              401 (RFC 6750 s3.1)
    """

    code = "invalid_request"
    description = "The request is invalid."
    http_status: ClassVar[int] = 400

    def __init__(self, detail: str | None = None, *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason or self.code
        self.redirect_uri: str | None = None
        self.state: str | None = None

    def redirectable(self, redirect_uri: str, state: str | None) -> OidcError:
        """This error, marked to be returned to ``redirect_uri`` with ``state``."""
        self.redirect_uri, self.state = redirect_uri, state
        return self

    def to_dict(self) -> dict[str, str]:
        """The OAuth error body (``error``, ``error_description``)."""
        return {"error": self.code, "error_description": _ascii(self.detail)}


class InvalidRequest(OidcError):
    code = "invalid_request"
    description = "The request is missing a parameter or is malformed."


class InvalidClient(OidcError):
    code = "invalid_client"
    description = "Client authentication failed."
    http_status = 401


class InvalidGrant(OidcError):
    code = "invalid_grant"
    description = "The authorization code is invalid, expired, used, or was issued to another client."


class UnsupportedGrantType(OidcError):
    code = "unsupported_grant_type"
    description = "Only the authorization_code grant is supported."


class UnsupportedResponseType(OidcError):
    code = "unsupported_response_type"
    description = "Only response_type=code is supported."


class InvalidScope(OidcError):
    code = "invalid_scope"
    description = "The scope must include openid."


class AccessDenied(OidcError):
    code = "access_denied"
    description = "The enterprise did not log in: the request was declined, expired, or did not verify."
    http_status = 403


class LoginRequired(OidcError):
    code = "login_required"
    description = "Logging in with the e-licence needs the user (prompt=none cannot be honoured)."


class InvalidToken(OidcError):
    code = "invalid_token"
    description = "The access token is invalid or expired."
    http_status = 401


class LoginRefused(StoreError):
    """The presentations verified but do not log anyone in; ``code`` is the reason (instance attribute)."""

    code = "login_refused"
    description = "The presentations do not establish a login."
    http_status = 403

    def __init__(self, detail: str | None = None, *, code: str) -> None:
        super().__init__(detail)
        self.code = code  # type: ignore[misc]  # the instance carries its own stable code


# --- authorization request ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthorizationParams:
    """A validated authorization request (OIDC Core s3.1.2.1 with RFC 7636 s4.3)."""

    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    state: str | None
    nonce: str
    code_challenge: str


def check_redirect_uri(value: Any) -> str:
    """A redirect URI a portal may register: absolute https (http only on the loopback host), no fragment.

    Raises ``InvalidRequest`` (``reason`` ``invalid_redirect_uri``).
    """
    if not isinstance(value, str) or not value or len(value) > _MAX_REDIRECT_URI:
        raise InvalidRequest("redirect_uri must be an absolute URI", reason="invalid_redirect_uri")
    parts = urlsplit(value)
    # RFC 6749 s3.1.2: "The endpoint URI MUST NOT include a fragment component."
    if parts.fragment or "#" in value or not parts.hostname:
        raise InvalidRequest("redirect_uri must be absolute and have no fragment", reason="invalid_redirect_uri")
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        raise InvalidRequest("redirect_uri must use https", reason="invalid_redirect_uri")
    return value


def _single(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        # RFC 6749 s3.1: "Request and response parameters MUST NOT be included more than once."
        if len(value) != 1:
            raise InvalidRequest(f"{name} is repeated", reason="repeated_parameter")
        value = value[0]
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be text")
    return value


def validate_authorization_request(
    params: Mapping[str, Any], *, registered_redirect_uris: Sequence[str] | None
) -> AuthorizationParams:
    """Check an authorization request against the client's registered redirect URIs (``None``: unknown client).

    An unknown client or a ``redirect_uri`` that is not registered raises an error that is *not*
    redirectable (RFC 6749 s4.1.2.1: "MUST NOT automatically redirect the user-agent to the invalid
    redirection URI"); every later error is marked redirectable. Raises ``InvalidClient``,
    ``InvalidRequest``, ``UnsupportedResponseType``, ``InvalidScope``, ``LoginRequired``.
    """
    client_id = _single(params, "client_id")
    if not client_id or registered_redirect_uris is None:
        raise InvalidClient("unknown client_id", reason="unknown_client")
    redirect_uri = _single(params, "redirect_uri")
    if redirect_uri is None or redirect_uri not in registered_redirect_uris:
        raise InvalidRequest("redirect_uri is not registered for this client", reason="redirect_uri_mismatch")
    state = _single(params, "state")
    if state is not None and not _VSCHAR.fullmatch(state):
        # The state is not echoed when it is malformed: it could carry anything into the portal's URL.
        raise InvalidRequest("state must be 1-512 printable ASCII characters").redirectable(redirect_uri, None)
    try:
        response_type = _single(params, "response_type")
        if response_type != "code":
            raise UnsupportedResponseType(f"response_type {str(response_type)[:32]!r} is not supported")
        if _single(params, "response_mode") not in (None, "query"):
            raise InvalidRequest("only response_mode=query is supported", reason="unsupported_response_mode")
        scope = tuple((_single(params, "scope") or "").split())
        if SCOPE_OPENID not in scope:
            # OIDC Core s3.1.2.1: "OpenID Connect requests MUST contain the openid scope value."
            raise InvalidScope("scope must include openid")
        if "request" in params or "request_uri" in params:
            raise InvalidRequest("request objects are not supported", reason="request_not_supported")
        prompt = (_single(params, "prompt") or "").split()
        if "none" in prompt:
            # OIDC Core s3.1.2.1: with prompt=none the OP "MUST return an error if an End-User is not
            # already authenticated"; here every login is a fresh presentation.
            raise LoginRequired("every login needs the wallet: prompt=none cannot be honoured")
        nonce = _single(params, "nonce")
        if nonce is None or not _VSCHAR.fullmatch(nonce):
            raise InvalidRequest("nonce is required (1-512 printable ASCII characters)", reason="missing_nonce")
        challenge = _single(params, "code_challenge")
        method = _single(params, "code_challenge_method")
        if challenge is None:
            raise InvalidRequest("code_challenge is required (PKCE, S256)", reason="missing_code_challenge")
        if method != "S256":
            # RFC 7636 s4.2: S256 is Mandatory To Implement; "plain" gives no protection against a stolen request.
            raise InvalidRequest("code_challenge_method must be S256", reason="unsupported_challenge_method")
        if not _CHALLENGE.fullmatch(challenge):
            raise InvalidRequest("code_challenge is not an S256 challenge", reason="invalid_code_challenge")
    except OidcError as exc:
        raise exc.redirectable(redirect_uri, state) from None
    return AuthorizationParams(client_id, redirect_uri, scope, state, nonce, challenge)


def _with_query(uri: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(uri)
    # RFC 6749 s3.1.2: the redirect URI's own query "MUST be retained when adding additional query parameters".
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def code_redirect(redirect_uri: str, *, code: str, state: str | None, issuer: str) -> str:
    """The successful authorization response (RFC 6749 s4.1.2, with RFC 9207 ``iss``)."""
    params = {"code": code, "iss": issuer}
    if state is not None:
        params["state"] = state
    return _with_query(redirect_uri, params)


def error_redirect(redirect_uri: str, error: OidcError, *, state: str | None, issuer: str) -> str:
    """The error response sent back to the portal (RFC 6749 s4.1.2.1, with RFC 9207 ``iss``)."""
    params = {"error": error.code, "error_description": _ascii(error.detail), "iss": issuer}
    if state is not None:
        params["state"] = state
    return _with_query(redirect_uri, params)


# --- token endpoint -------------------------------------------------------------------------------------


def client_credentials(authorization: str | None, form: Mapping[str, str]) -> tuple[str, str]:
    """``(client_id, client_secret)`` from HTTP Basic (``client_secret_basic``) or the form
    (``client_secret_post``).

    Raises ``InvalidClient`` when no credentials are given or Basic is malformed; ``InvalidRequest`` when
    both methods are used (RFC 6749 s2.3: "MUST NOT use more than one authentication method").
    """
    posted = form.get("client_secret")
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClient("use HTTP Basic or client_secret_post", reason="unsupported_authentication")
        if posted is not None:
            raise InvalidRequest("use one client authentication method", reason="multiple_authentication")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidClient("malformed HTTP Basic credentials", reason="malformed_authentication") from exc
        user, sep, password = decoded.partition(":")
        if not sep:
            raise InvalidClient("malformed HTTP Basic credentials", reason="malformed_authentication")
        # RFC 6749 s2.3.1: id and secret are form-urlencoded before Basic encoding.
        client_id, secret = unquote(user.replace("+", " ")), unquote(password.replace("+", " "))
        if form.get("client_id") not in (None, client_id):
            raise InvalidRequest("client_id differs from the authenticated client", reason="client_id_mismatch")
        return client_id, secret
    client_id = form.get("client_id")
    if not client_id or posted is None:
        raise InvalidClient("client authentication is required", reason="missing_authentication")
    return client_id, posted


def s256(code_verifier: str) -> str:
    """RFC 7636 s4.2: ``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))``."""
    return b64u_encode(hashlib.sha256(code_verifier.encode("ascii")).digest())


def check_pkce(code_verifier: Any, code_challenge: str) -> None:
    """RFC 7636 s4.6: the verifier must hash to the stored challenge; raises ``InvalidGrant``/``InvalidRequest``."""
    if code_verifier is None:
        raise InvalidRequest("code_verifier is required", reason="missing_code_verifier")
    if not isinstance(code_verifier, str) or not _VERIFIER.fullmatch(code_verifier):
        raise InvalidGrant("code_verifier is malformed", reason="pkce_mismatch")
    if not hmac.compare_digest(s256(code_verifier), code_challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge", reason="pkce_mismatch")


def pairwise_subject(salt: str, value: str) -> str:
    """OIDC Core s8.1 pairwise identifier: base64url HMAC-SHA-256 of ``value`` under the portal's ``salt``."""
    return b64u_encode(hmac.new(salt.encode("utf-8"), value.encode("utf-8"), hashlib.sha256).digest())


# --- the login request and decision ---------------------------------------------------------------------


def login_dcql(*, allow_staff: bool) -> dict[str, Any]:
    """The DCQL query of a login: the business licence (USCC, name), or it and a staff authorisation."""
    licence = {"id": LICENCE_QUERY, "format": dcql.SD_JWT_VC_FORMAT, "meta": {"vct_values": [_BUSINESS_LICENCE]},
               "claims": [{"path": ["uscc"]}, {"path": ["name"]}]}
    if not allow_staff:
        return {"credentials": [licence]}
    authorisation = {
        "id": AUTHORISATION_QUERY, "format": dcql.SD_JWT_VC_FORMAT, "meta": {"vct_values": [_STAFF_AUTHORISATION]},
        "claims": [{"path": [name]} for name in ("enterprise_uscc", "staff_name", "scope", "valid_from",
                                                  "valid_until")],
    }
    # DCQL s6.2: the licence with an authorisation (a staff member, 经办人) or alone (the legal
    # representative). Options are in the Verifier's order of preference and a wallet takes the first it
    # can answer, so a staff member's wallet, which can present the licence too, names the acting person.
    return {"credentials": [licence, authorisation],
            "credential_sets": [{"options": [[LICENCE_QUERY, AUTHORISATION_QUERY], [LICENCE_QUERY]]}]}


@dataclass(frozen=True, slots=True)
class LoginIdentity:
    """Who logged in: the enterprise, and the acting staff member with their authorisation, if any."""

    uscc: str
    name: str
    staff_name: str | None = None
    staff_key: str | None = None
    scope: Mapping[str, Any] | None = None
    valid_until: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view (stored with the login)."""
        return {"uscc": self.uscc, "name": self.name, "staff_name": self.staff_name,
                "staff_key": self.staff_key, "scope": None if self.scope is None else _thaw(self.scope),
                "valid_until": self.valid_until}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoginIdentity:
        """The inverse of :meth:`to_json`."""
        return cls(data["uscc"], data["name"], data.get("staff_name"), data.get("staff_key"),
                   data.get("scope"), data.get("valid_until"))


def _text_claim(claims: Mapping[str, Any], name: str, what: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise LoginRefused(f"the {what} does not disclose {name}", code="missing_claim")
    return value


def _key_bound(credential: VerifiedCredential, what: str) -> Mapping[str, Any]:
    if not credential.key_bound or credential.kb_payload is None or not credential.holder_jwk:
        raise LoginRefused(f"the {what} was not presented with key binding", code="key_binding_required")
    return credential.kb_payload


def evaluate_login(
    presented: Mapping[str, Sequence[VerifiedCredential]],
    *,
    discarded: Sequence[str] = (),
    now: datetime,
    item_id: str | None = None,
) -> LoginIdentity:
    """Decide a login from the verified presentations of :func:`login_dcql`'s query.

    Every presentation must have verified (``discarded`` lists the codes of those that did not: a staff
    authorisation that fails must not turn into a login as the enterprise itself); the licence and any
    authorisation are key-bound to the same request (``nonce``, ``aud``) by different keys (the
    wallet's custodial model: the licence to the enterprise key, the authorisation to the staff member's
    own key); the authorisation is for this enterprise and this licence (``licence_status``), within its
    term today (China Standard Time), and covers ``item_id`` when the portal names one. Raises
    ``LoginRefused`` with the code of the failed check.
    """
    if discarded:
        raise LoginRefused("a presentation did not verify", code=discarded[0])
    licences = presented.get(LICENCE_QUERY, ())
    if len(licences) != 1 or licences[0].vct != _BUSINESS_LICENCE:
        raise LoginRefused("exactly one business licence is needed", code="licence_missing")
    licence = licences[0]
    uscc = _text_claim(licence.claims, "uscc", "business licence")
    name = _text_claim(licence.claims, "name", "business licence")
    licence_kb = _key_bound(licence, "business licence")
    authorisations = presented.get(AUTHORISATION_QUERY, ())
    if not authorisations:
        return LoginIdentity(uscc, name)
    if len(authorisations) != 1 or authorisations[0].vct != _STAFF_AUTHORISATION:
        raise LoginRefused("at most one staff authorisation", code="authorisation_invalid")
    authorisation = authorisations[0]
    claims = authorisation.claims
    staff_kb = _key_bound(authorisation, "staff authorisation")
    if (staff_kb.get("nonce"), staff_kb.get("aud")) != (licence_kb.get("nonce"), licence_kb.get("aud")):
        raise LoginRefused("the two presentations answer different requests", code="holder_keys_inconsistent")
    staff_key = thumbprint(authorisation.holder_jwk or {})
    if staff_key == thumbprint(licence.holder_jwk or {}):
        # The wallet binds a licence to the enterprise's key and an authorisation to the staff member's
        # own key: one key holding both means the authorisation does not name a separate person's key.
        raise LoginRefused("the authorisation is bound to the enterprise's key", code="holder_keys_inconsistent")
    if claims.get("enterprise_uscc") != uscc:
        raise LoginRefused("the authorisation is for another enterprise", code="enterprise_mismatch")
    link = claims.get("licence_status")
    if link is not None and (
        licence.status is None or not isinstance(link, Mapping)
        or (link.get("idx"), link.get("uri")) != (licence.status.idx, licence.status.uri)
    ):
        raise LoginRefused("the authorisation was granted under another licence", code="authorisation_for_another_licence")
    staff_name = _text_claim(claims, "staff_name", "staff authorisation")
    today = now.astimezone(_CST).date()
    try:
        start = date.fromisoformat(str(claims.get("valid_from", "0001-01-01")))
        end = date.fromisoformat(str(claims["valid_until"]))
    except (KeyError, ValueError):
        raise LoginRefused("the authorisation has no readable term", code="authorisation_not_in_term") from None
    if not start <= today <= end:
        raise LoginRefused("the authorisation is not within its term", code="authorisation_not_in_term")
    scope = claims.get("scope")
    covered = isinstance(scope, Mapping) and (
        scope.get("all") is True
        or item_id is None
        or (isinstance(scope.get("matters"), (list, tuple)) and item_id in scope["matters"])
    )
    if not covered:
        raise LoginRefused("the authorisation does not cover this portal's service item", code="authorisation_out_of_scope")
    return LoginIdentity(uscc, name, staff_name, staff_key, scope, end.isoformat())


# --- ID Token and discovery -----------------------------------------------------------------------------


def id_token_claims(
    identity: LoginIdentity,
    *,
    issuer: str,
    client_id: str,
    salt: str,
    nonce: str,
    auth_time: datetime,
    now: datetime,
    lifetime: int,
) -> dict[str, Any]:
    """The ID Token claims (OIDC Core s2): ``sub`` pairwise of the USCC, the enterprise's USCC and name,
    and for an acting staff member ``act`` (RFC 8693 s4.1) and ``authorisation`` (scope, end of term)."""
    iat = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": pairwise_subject(salt, identity.uscc),
        "aud": client_id,
        "exp": iat + lifetime,
        "iat": iat,
        "auth_time": int(auth_time.timestamp()),
        # OIDC Core s3.1.3.6: the nonce of the authentication request, unmodified.
        "nonce": nonce,
        "amr": ["elicence"],
        "uscc": identity.uscc,
        "enterprise_name": identity.name,
    }
    if identity.staff_name is not None:
        # The staff member's own key (RFC 7638 thumbprint) names them: staff_account is a wallet-internal
        # handle the type metadata keeps selectively disclosable, so the login does not ask for it.
        claims["act"] = {"sub": pairwise_subject(salt, f"{identity.uscc}/{identity.staff_key}"),
                         "name": identity.staff_name}
        claims["authorisation"] = {"scope": _thaw(identity.scope), "valid_until": identity.valid_until}
    return claims


def provider_metadata(issuer: str) -> dict[str, Any]:
    """The OpenID Provider Metadata (Discovery 1.0 s3) of an issuer whose endpoints are under ``/oidc``."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oidc/authorize",
        "token_endpoint": f"{issuer}/oidc/token",
        "userinfo_endpoint": f"{issuer}/oidc/userinfo",
        "jwks_uri": f"{issuer}/oidc/jwks",
        "scopes_supported": [SCOPE_OPENID],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "uscc",
                             "enterprise_name", "act", "authorisation"],
        "prompt_values_supported": ["login", "consent"],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
    }


def parse_form(raw: str) -> dict[str, str]:
    """A ``application/x-www-form-urlencoded`` body; raises ``InvalidRequest`` on a repeated parameter."""
    out: dict[str, str] = {}
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw), errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("the form is malformed") from exc
    for name, value in pairs:
        if name in out:
            raise InvalidRequest(f"{name[:32]} is repeated", reason="repeated_parameter")
        out[name] = value
    return out
