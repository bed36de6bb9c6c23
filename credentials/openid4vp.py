"""OpenID for Verifiable Presentations 1.0 (final, 2025): the protocol core of the cross-device flow.

The Verifier shows ``openid4vp://?client_id=x509_san_dns:<host>&request_uri=...``; the Wallet fetches
a signed Request Object (RFC 9101, JAR) from ``request_uri``, checks it, and posts the ``vp_token``
to ``response_uri`` with Response Mode ``direct_post``. Pure values in, values out (no web framework,
no database, no network, no clock). Section numbers are those of OpenID4VP 1.0 (the text
incorporating errata set 1); DCQL lives in :mod:`credentials.dcql`, certificates in :mod:`keys.x509`.

* Authorization Request by reference (s5, s5.10, s13.1.2): :class:`RequestReference`,
  :func:`authorization_request_uri`, :func:`parse_authorization_request_uri`;
* Request Object (s5, s5.8, s5.9.3 ``x509_san_dns``): :class:`AuthorizationRequest`,
  :func:`new_nonce`, :func:`create_request` / :func:`sign_request_object` (Verifier),
  :func:`verify_request_object` (Wallet); Request URI method ``post`` (s5.10): :data:`WALLET_METADATA`,
  :func:`request_uri_post_form` (Wallet), :func:`parse_request_uri_post` (Verifier);
* Response (s8.1, s8.2 ``direct_post``, B.3.6 SD-JWT VC): :func:`present_for_request`,
  :func:`response_form`, :func:`error_response_form` (Wallet); :func:`parse_response_form`,
  :func:`verify_response` (Verifier, s8.6 VP Token Validation);
* Errors (s8.5, RFC 6749 s4.1.2.1, RFC 9101 s6.2): :class:`OpenId4VpError` and subclasses.

Errors carry the OAuth ``error`` code of the specification in ``code`` (what goes on the wire) and a
finer stable ``reason`` (snake_case): the code of the underlying failure (``certificate_expired``,
``invalid_dcql_query``, ...) or a name for the check (``response_uri_mismatch``, ``missing_nonce``).
:func:`verify_request_object` raises nothing but :class:`OpenId4VpError`. :func:`verify_response`
raises :class:`OpenId4VpError` for the response as a whole and lets the
:class:`~credentials.errors.CredentialError` of a rejected presentation through.

Choices where the specification leaves room, with the reason:

* Only the ``x509_san_dns`` Client Identifier Prefix is accepted, with a signed Request Object passed
  by reference. Any other prefix is ``invalid_request`` (s8.5: "The Wallet does not support the
  Client Identifier Prefix"); a Client Identifier without prefix (a pre-registered client, s5.9.2) is
  ``invalid_client``: no client is pre-registered with this Wallet. A request by value or in URL
  parameters cannot be signed here, so it is refused.
* The Wallet always holds ``response_uri`` to the certified host (s5.9.3: "If not, the FQDN of the
  redirect_uri value MUST match the Client Identifier"); it keeps no list of trusted Client
  Identifiers that would let a Verifier choose another host.
* Response Mode ``direct_post`` only: ``direct_post.jwt`` (encryption) is refused.
* ``aud`` of the Request Object is ``https://self-issued.me/v2`` (s5.8, static discovery: this Wallet
  is invoked through ``openid4vp://`` with static metadata, s13.1.2), and the Wallet requires it,
  although the examples of s5.10.1 and s8.2 leave it out: an object without ``aud`` names no recipient.
* ``client_metadata.client_name`` (RFC 7591 s2) is defined by this profile as usable (s5.1: "Other
  metadata parameters MUST be ignored unless a profile ... explicitly defines them"). It is the
  Verifier's own word; the name vouched for by the registrar is the certificate's organizationName,
  returned as :attr:`AuthorizationRequest.verifier_name`. ``purpose`` is a request parameter of this
  profile (s5: "Additional request parameters ... MAY be defined"): a text for the consent screen.
* ``transaction_data`` and ``verifier_info`` are not supported: a request with ``transaction_data``
  is refused (s5: "Wallets that do not support this parameter MUST reject requests that contain it");
  ``verifier_info`` is ignored (s5.11: Wallets "SHOULD ignore any unrecognized ... types").
* Request Objects live at most ``MAX_REQUEST_LIFETIME`` (10 min): ``exp`` is required.
* Presentations that fail their checks are discarded and the rest must still satisfy the query
  (s8.6: "the effected Presentation MUST be discarded"); a wrong ``nonce`` rejects the whole response
  (s14.1.2: "the response MUST be rejected").
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from credentials import dcql, jws
from credentials.audit import _freeze, _thaw
from credentials.clock import Timestamp, seconds
from credentials.errors import CredentialError, KbNonceMismatch
from credentials.openid4vci import _ascii, _show
from credentials.sd_jwt import MAX_SD_JWT_BYTES, KeyBindingPolicy, present
from credentials.sd_jwt_vc import IssuerKeyLookup, VerifiedCredential, check_url, verify_vc
from keys.errors import KeyMaterialError
from keys.jwk import b64u_encode
from keys.signer import Signer
from keys.x509 import x5c_encode, verify_x5c_for_dns

__all__ = [
    # constants
    "SCHEME",
    "REQUEST_TYP",
    "REQUEST_MEDIA_TYPE",
    "RESPONSE_TYPE",
    "DIRECT_POST",
    "X509_SAN_DNS",
    "STATIC_AUDIENCE",
    "DEFAULT_VP_FORMATS",
    "MAX_REQUEST_OBJECT_CHARS",
    "MAX_VP_TOKEN_CHARS",
    "MAX_PRESENTATIONS",
    "MAX_REQUEST_LIFETIME",
    # errors
    "OpenId4VpError",
    "InvalidRequest",
    "InvalidRequestObject",
    "InvalidClient",
    "InvalidScope",
    "AccessDenied",
    "VpFormatsNotSupported",
    "InvalidRequestUriMethod",
    "InvalidTransactionData",
    "WalletUnavailable",
    "ERRORS",
    "error_for_code",
    # request
    "RequestReference",
    "authorization_request_uri",
    "parse_authorization_request_uri",
    "AuthorizationRequest",
    "VerifierRequest",
    "new_nonce",
    "sign_request_object",
    "create_request",
    "verify_request_object",
    "WALLET_METADATA",
    "request_uri_post_form",
    "parse_request_uri_post",
    # response
    "present_for_request",
    "response_form",
    "error_response_form",
    "AuthorizationResponse",
    "DiscardedPresentation",
    "VerifiedResponse",
    "PresentationVerifier",
    "parse_response_form",
    "verify_response",
]

#: s13.1.2: the custom URL scheme bound to the static Wallet configuration.
SCHEME = "openid4vp"
#: s5: "Verifiers MUST include the typ Header Parameter in Request Objects with the value oauth-authz-req+jwt".
REQUEST_TYP = "oauth-authz-req+jwt"
#: s5.10.1: the content type of the Request URI response.
REQUEST_MEDIA_TYPE = "application/oauth-authz-req+jwt"
#: s5.6: the Response Type of this specification.
RESPONSE_TYPE = "vp_token"
#: s8.2: the Response Mode posting the response to ``response_uri``.
DIRECT_POST = "direct_post"
#: s5.9.3: the one Client Identifier Prefix accepted here.
X509_SAN_DNS = "x509_san_dns"
#: s5.8: "the aud claim MUST be "https://self-issued.me/v2", when Static Discovery metadata is used".
STATIC_AUDIENCE = "https://self-issued.me/v2"
#: s11.1 / B.3.4: what this Verifier accepts (fully-specified names: Ed25519 is EdDSA over Ed25519).
DEFAULT_VP_FORMATS: Mapping[str, Mapping[str, Sequence[str]]] = _freeze(
    {dcql.SD_JWT_VC_FORMAT: {"sd-jwt_alg_values": ("ES256", "Ed25519"), "kb-jwt_alg_values": ("ES256", "Ed25519")}}
)
MAX_REQUEST_OBJECT_CHARS = 64 * 1024
MAX_URI_CHARS = 4096
MAX_PARAM_CHARS = 2048
#: Bound on the ``vp_token`` form field: 16 presentations of a large credential.
MAX_VP_TOKEN_CHARS = 1024 * 1024
MAX_PRESENTATIONS = 16
#: Longest accepted ``exp - iat`` of a Request Object, and the default lifetime of one made here.
MAX_REQUEST_LIFETIME = 600
DEFAULT_REQUEST_LIFETIME = 300
MAX_NAME_CHARS = 200
MAX_PURPOSE_CHARS = 500

# s5.2: nonce and state "MUST only contain ASCII URL safe characters (uppercase and lowercase letters,
# decimal digits, hyphen, period, underscore, and tilde)".
_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")
_DNS_NAME = re.compile(
    r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*", re.IGNORECASE
)
# s5.9.3 names these prefixes; only x509_san_dns is supported, origin is refused by rule.
_KNOWN_PREFIXES = frozenset(
    {"redirect_uri", "openid_federation", "decentralized_identifier", "verifier_attestation", "x509_san_dns",
     "x509_hash", "origin"}
)
_SIGNATURE_ALGS = frozenset({"ES256"})


# --------------------------------------------------------------------------------------------------
# Errors (s8.5)


class OpenId4VpError(Exception):
    """A protocol error: ``code`` is the OAuth / OpenID4VP ``error``; ``reason`` the finer stable code."""

    code: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400
    default_description: ClassVar[str] = "The request is invalid."

    def __init__(self, description: str | None = None, *, reason: str | None = None) -> None:
        self.description = _ascii(description or self.default_description)
        self.reason = reason or self.code
        super().__init__(self.description)

    def to_dict(self) -> dict[str, str]:
        """The error body: ``{"error": code, "error_description": description}``."""
        return {"error": self.code, "error_description": self.description}


class InvalidRequest(OpenId4VpError):
    """RFC 6749 s4.1.2.1 / s8.5 ``invalid_request``: malformed, unsupported prefix, prefix rules broken."""

    code = "invalid_request"
    default_description = "The authorization request is invalid."


class InvalidRequestObject(OpenId4VpError):
    """RFC 9101 s6.2 ``invalid_request_object``: the Request Object is malformed, badly signed or expired."""

    code = "invalid_request_object"
    default_description = "The request object is invalid."


class InvalidClient(OpenId4VpError):
    """s8.5 ``invalid_client``: the client is unknown or its metadata conflicts."""

    code = "invalid_client"
    default_description = "The client is not known to this wallet."


class InvalidScope(OpenId4VpError):
    """s8.5 ``invalid_scope``: a ``scope`` standing for a DCQL query is not supported here."""

    code = "invalid_scope"
    default_description = "The requested scope is invalid or unknown."


class AccessDenied(OpenId4VpError):
    """s8.5 ``access_denied``: no matching credentials, or the End-User refused."""

    code = "access_denied"
    default_description = "The request was refused."


class VpFormatsNotSupported(OpenId4VpError):
    """s8.5 ``vp_formats_not_supported``: none of the Verifier's formats is supported."""

    code = "vp_formats_not_supported"
    default_description = "None of the requested presentation formats is supported."


class InvalidRequestUriMethod(OpenId4VpError):
    """s8.5 ``invalid_request_uri_method``: ``request_uri_method`` is neither ``get`` nor ``post``."""

    code = "invalid_request_uri_method"
    default_description = "request_uri_method must be get or post."


class InvalidTransactionData(OpenId4VpError):
    """s8.5 ``invalid_transaction_data`` (transaction data is not supported here)."""

    code = "invalid_transaction_data"
    default_description = "Transaction data is not supported."


class WalletUnavailable(OpenId4VpError):
    """s8.5 ``wallet_unavailable``."""

    code = "wallet_unavailable"
    default_description = "The wallet is unavailable."


#: Every error class by its code.
ERRORS: Mapping[str, type[OpenId4VpError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InvalidRequestObject,
        InvalidClient,
        InvalidScope,
        AccessDenied,
        VpFormatsNotSupported,
        InvalidRequestUriMethod,
        InvalidTransactionData,
        WalletUnavailable,
    )
}


def error_for_code(code: str, description: str | None = None) -> OpenId4VpError:
    """An error instance for a code; raises ``KeyError`` for a code not in :data:`ERRORS`."""
    return ERRORS[code](description)


def _wrap(
    error: type[OpenId4VpError], exc: CredentialError | KeyMaterialError | dcql.DcqlError, what: str
) -> OpenId4VpError:
    return error(f"{what}: {exc.detail}", reason=exc.code)


# --------------------------------------------------------------------------------------------------
# Small checks


def _text(value: Any, what: str, error: type[OpenId4VpError], limit: int = MAX_PARAM_CHARS) -> str:
    if not isinstance(value, str) or not value:
        raise error(f"{what} must be a non-empty string", reason=f"invalid_{what}")
    if len(value) > limit:
        raise error(f"{what} is longer than {limit} characters", reason="payload_too_large")
    return value


def _url_safe(value: Any, what: str) -> str:
    if value is None:
        raise InvalidRequest(f"the request has no {what}", reason=f"missing_{what}")
    text = _text(value, what, InvalidRequest, 512)
    if not _URL_SAFE.fullmatch(text):
        # s5.2: nonce/state "Values MUST only contain ASCII URL safe characters".
        raise InvalidRequest(f"{what} must contain only ASCII URL safe characters", reason=f"invalid_{what}")
    return text


def _url(value: Any, what: str, error: type[OpenId4VpError]) -> str:
    try:
        return check_url(_text(value, what, error), what=what)
    except CredentialError as exc:
        raise error(f"{what}: {exc.detail}", reason=f"invalid_{what}") from exc


def _split_client_id(client_id: str) -> tuple[str | None, str]:
    # s5.9.1: "The Client Identifier Prefix is defined as the string before the (first) : character."
    prefix, sep, rest = client_id.partition(":")
    return (prefix, rest) if sep else (None, client_id)


def _dns_client_id(client_id: Any) -> str:
    """The DNS name of an ``x509_san_dns`` Client Identifier; raises the s8.5 errors for the others."""
    text = _text(client_id, "client_id", InvalidRequest)
    prefix, name = _split_client_id(text)
    if prefix is None:
        # s5.9.2: without ':' "the Wallet MUST treat the Client Identifier as referencing a
        # pre-registered client"; none is registered with this Wallet.
        raise InvalidClient(f"client_id {_show(text)} names no pre-registered client", reason="unknown_client")
    if prefix != X509_SAN_DNS:
        # s5.9.3: origin "The Wallet MUST NOT accept this Client Identifier Prefix in requests"; the
        # others are valid but unsupported here (s8.5 invalid_request).
        known = "reserved" if prefix == "origin" else ("unsupported" if prefix in _KNOWN_PREFIXES else "unknown")
        raise InvalidRequest(
            f"client_id prefix {_show(prefix)} is {known}; only {X509_SAN_DNS} is accepted",
            reason="unsupported_client_id_prefix",
        )
    # s5.9.3: the part after "x509_san_dns:" "MUST be a DNS name".
    if not _DNS_NAME.fullmatch(name):
        raise InvalidRequest(f"client_id {_show(text)} does not hold a DNS name", reason="invalid_client_id")
    return name


# --------------------------------------------------------------------------------------------------
# Authorization Request by reference (s5, s5.10, s13.1.2)


@dataclass(frozen=True, slots=True)
class RequestReference:
    """The parameters of the QR code: Client Identifier, Request URI and optional Request URI method."""

    client_id: str
    request_uri: str
    request_uri_method: str | None = None

    def __post_init__(self) -> None:
        _dns_client_id(self.client_id)
        _url(self.request_uri, "request_uri", InvalidRequest)
        if self.request_uri_method is not None and self.request_uri_method not in ("get", "post"):
            # s5.1: "Two case-sensitive valid values are defined in this specification: get and post."
            raise InvalidRequestUriMethod(f"request_uri_method {_show(self.request_uri_method)} is not get or post")


def authorization_request_uri(reference: RequestReference) -> str:
    """``openid4vp://?client_id=...&request_uri=...[&request_uri_method=...]`` for a QR code."""
    params = [("client_id", reference.client_id), ("request_uri", reference.request_uri)]
    if reference.request_uri_method is not None:
        params.append(("request_uri_method", reference.request_uri_method))
    return f"{SCHEME}://?{urlencode(params)}"


def parse_authorization_request_uri(text: Any) -> RequestReference:
    """Parse a scanned ``openid4vp://`` link into a :class:`RequestReference`.

    Raises ``invalid_request`` for another scheme, a fragment, a repeated parameter, a missing
    ``request_uri`` (an unsigned request: ``request_not_signed``), a Client Identifier that is not
    ``x509_san_dns:<DNS name>`` (``invalid_client`` without prefix), a Request URI that is not https;
    ``invalid_request_uri_method``; ``invalid_transaction_data`` when transaction data is present.
    Other parameters are ignored (s5.10.1: the Wallet "MUST only use the parameters in this Request Object").
    """
    if not isinstance(text, str) or not text:
        raise InvalidRequest("an authorization request link must be a non-empty string")
    if len(text) > MAX_URI_CHARS:
        raise InvalidRequest(f"the link is longer than {MAX_URI_CHARS} characters", reason="payload_too_large")
    if any(c.isspace() or c < " " or c == "\x7f" for c in text):
        raise InvalidRequest("the link contains white space or control characters")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise InvalidRequest("the link is not a URI") from exc
    if parts.scheme.lower() != SCHEME or not text.lower().startswith(SCHEME + "://"):
        raise InvalidRequest(f"the link does not use the {SCHEME}:// scheme")
    if parts.netloc or parts.path not in ("", "/") or "#" in text:
        raise InvalidRequest(f"an authorization request link is {SCHEME}://? followed by parameters")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError as exc:
        raise InvalidRequest("the link's query is malformed") from exc
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            # RFC 6749 s3.1: "Request and response parameters MUST NOT be included more than once."
            raise InvalidRequest(f"parameter {_show(name)} is repeated")
        params[name] = value
    if "transaction_data" in params:
        raise InvalidTransactionData("transaction_data is not supported by this wallet")
    if "request_uri" not in params:
        if "request_uri_method" in params:
            # s5.1: "request_uri_method parameter MUST NOT be present if a request_uri parameter is not present."
            raise InvalidRequest("request_uri_method without request_uri")
        # s5.9.3: x509_san_dns requests "MUST be signed"; only signed Request Objects by reference are
        # taken, so a request in URL parameters (or by value) is an unsigned request here.
        raise InvalidRequest("the request is not a signed request object by reference", reason="request_not_signed")
    if "client_id" not in params:
        raise InvalidRequest("the link has no client_id", reason="missing_client_id")  # s5.2 "REQUIRED"
    return RequestReference(params["client_id"], params["request_uri"], params.get("request_uri_method"))


# --------------------------------------------------------------------------------------------------
# Request Object (s5, s5.8, s5.9.3)


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """The parameters of a Request Object, as the Verifier makes them and the Wallet checks them.

    ``verifier_name`` (the certificate's organizationName) and ``dns_name`` are set by
    :func:`verify_request_object`; ``client_name`` and ``purpose`` are the Verifier's own words.
    """

    client_id: str
    response_uri: str
    nonce: str
    dcql_query: dcql.DcqlQuery
    state: str | None = None
    client_name: str | None = None
    purpose: str | None = None
    vp_formats_supported: Mapping[str, Any] = field(default_factory=lambda: DEFAULT_VP_FORMATS)
    wallet_nonce: str | None = None
    issued_at: int | None = None
    expires_at: int | None = None
    verifier_name: str | None = None
    dns_name: str | None = None

    @property
    def requested_claims(self) -> dict[str, tuple[dcql.ClaimsPathPointer, ...]]:
        """For the consent screen: each Credential Query id and the claim paths it names (all options)."""
        return {q.id: tuple(c.path for c in q.claims or ()) for q in self.dcql_query.credentials}

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> "AuthorizationRequest":
        """Rebuild the parameters from Request Object claims the Verifier made and stored itself.

        No signature, certificate or time is checked (use :func:`verify_request_object` for a received
        one); raises ``invalid_request`` for missing or malformed members.
        """
        metadata = claims.get("client_metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        state = claims.get("state")
        return cls(
            client_id=_text(claims.get("client_id"), "client_id", InvalidRequest),
            response_uri=_url(claims.get("response_uri"), "response_uri", InvalidRequest),
            nonce=_url_safe(claims.get("nonce"), "nonce"),
            dcql_query=_parse_dcql(claims.get("dcql_query")),
            state=None if state is None else _url_safe(state, "state"),
            client_name=metadata.get("client_name"),
            purpose=claims.get("purpose"),
            vp_formats_supported=metadata.get("vp_formats_supported", DEFAULT_VP_FORMATS),
            wallet_nonce=claims.get("wallet_nonce"),
            issued_at=claims.get("iat"),
            expires_at=claims.get("exp"),
        )

    def claims(self) -> dict[str, Any]:
        """The Request Object payload (JWT claims) for these parameters."""
        metadata: dict[str, Any] = {"vp_formats_supported": _thaw(self.vp_formats_supported)}
        if self.client_name is not None:
            metadata["client_name"] = self.client_name
        out: dict[str, Any] = {
            "aud": STATIC_AUDIENCE,
            "client_id": self.client_id,
            "response_type": RESPONSE_TYPE,
            "response_mode": DIRECT_POST,
            "response_uri": self.response_uri,
            "nonce": self.nonce,
        }
        if self.state is not None:
            out["state"] = self.state
        out["dcql_query"] = self.dcql_query.to_json()
        out["client_metadata"] = metadata
        if self.purpose is not None:
            out["purpose"] = self.purpose
        if self.wallet_nonce is not None:
            out["wallet_nonce"] = self.wallet_nonce
        if self.issued_at is not None:
            out["iat"] = self.issued_at
        if self.expires_at is not None:
            out["exp"] = self.expires_at
        return out


def new_nonce() -> str:
    """A fresh nonce or state: 32 random bytes, base64url (s13.3 asks for at least 16 random bytes)."""
    return b64u_encode(secrets.token_bytes(32))


def sign_request_object(request: AuthorizationRequest, *, signer: Signer, x5c: Sequence[str] | Iterable[Any]) -> str:
    """Sign the Request Object (``typ`` ``oauth-authz-req+jwt``, ES256) with the access certificate's key.

    ``x5c`` is the chain, leaf first: base64 DER strings or ``cryptography`` certificates.
    """
    chain = list(x5c)
    encoded = [c if isinstance(c, str) else x5c_encode([c])[0] for c in chain]
    if signer.alg not in _SIGNATURE_ALGS:
        raise InvalidRequestObject(f"request objects are signed with ES256, not {signer.alg}", reason="unsupported_alg")
    # s5.9.3: "signed with the private key corresponding to the public key in the leaf X.509
    # certificate of the certificate chain added to the request in the x5c JOSE header".
    return jws.sign(request.claims(), signer, typ=REQUEST_TYP, header={"x5c": encoded}, include_kid=False)


@dataclass(frozen=True, slots=True)
class VerifierRequest:
    """What the Verifier keeps for one transaction and what it shows (``uri`` in the QR code)."""

    request: AuthorizationRequest
    request_object: str
    uri: str


def create_request(
    *,
    dns_name: str,
    signer: Signer,
    x5c: Sequence[Any],
    response_uri: str,
    request_uri: str,
    dcql_query: dcql.DcqlQuery | Mapping[str, Any],
    now: Timestamp,
    client_name: str | None = None,
    purpose: str | None = None,
    request_uri_method: str | None = None,
    wallet_nonce: str | None = None,
    lifetime: int = DEFAULT_REQUEST_LIFETIME,
    nonce_source: Callable[[], str] = new_nonce,
) -> VerifierRequest:
    """A new transaction: fresh ``nonce`` and ``state``, the signed Request Object and the QR link.

    Raises ``invalid_request`` for a bad DNS name, ``response_uri`` (https, on ``dns_name``) or DCQL query.
    """
    client_id = f"{X509_SAN_DNS}:{dns_name}"
    _dns_client_id(client_id)
    _check_response_uri(_url(response_uri, "response_uri", InvalidRequest), dns_name)
    query = dcql_query if isinstance(dcql_query, dcql.DcqlQuery) else _parse_dcql(dcql_query)
    if not 0 < lifetime <= MAX_REQUEST_LIFETIME:
        raise InvalidRequest(f"lifetime must be 1..{MAX_REQUEST_LIFETIME} seconds")
    t = int(seconds(now))
    request = AuthorizationRequest(
        client_id=client_id,
        response_uri=response_uri,
        # s5.2: "The Verifier MUST create a fresh, cryptographically random number with sufficient
        # entropy for every Authorization Request"; s5.3: state likewise (at least 128 bits).
        nonce=_url_safe(nonce_source(), "nonce"),
        state=_url_safe(nonce_source(), "state"),
        dcql_query=query,
        client_name=client_name,
        purpose=purpose,
        wallet_nonce=wallet_nonce,
        issued_at=t,
        expires_at=t + lifetime,
        dns_name=dns_name,
    )
    signed = sign_request_object(request, signer=signer, x5c=x5c)
    uri = authorization_request_uri(RequestReference(client_id, request_uri, request_uri_method))
    return VerifierRequest(request, signed, uri)


def _parse_dcql(data: Any) -> dcql.DcqlQuery:
    try:
        return dcql.parse_query(data)
    except dcql.DcqlError as exc:
        raise _wrap(InvalidRequest, exc, "dcql_query") from exc


def _check_response_uri(response_uri: str, dns_name: str) -> None:
    host = (urlsplit(response_uri).hostname or "").lower()
    if host != dns_name.lower():
        # s5.9.3 (x509_san_dns): "the FQDN of the redirect_uri value MUST match the Client Identifier
        # without the prefix"; s8.2: response_uri "MUST be a value that the client would be permitted
        # to use as redirect_uri".
        raise InvalidRequest(
            f"response_uri host {_show(host)} is not the certified host {_show(dns_name)}",
            reason="response_uri_mismatch",
        )


def _number(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None and name not in claims:
        return None
    if type(value) is not int:
        raise InvalidRequestObject(f"{name} must be an integer NumericDate", reason="malformed")
    return value


def _check_times(claims: Mapping[str, Any], *, now: int | float, skew: int) -> tuple[int | None, int]:
    iat, exp, nbf = _number(claims, "iat"), _number(claims, "exp"), _number(claims, "nbf")
    if exp is None:
        raise InvalidRequestObject("the request object has no exp", reason="missing_claim")
    if now >= exp + skew:
        raise InvalidRequestObject(f"the request object expired at {exp}", reason="expired")
    if nbf is not None and now < nbf - skew:
        raise InvalidRequestObject(f"the request object is not valid before {nbf}", reason="not_yet_valid")
    if iat is not None:
        if iat > now + skew:
            raise InvalidRequestObject(f"the request object is issued in the future ({iat})", reason="iat_in_future")
        if exp - iat > MAX_REQUEST_LIFETIME:
            raise InvalidRequestObject(
                f"the request object lives {exp - iat} s, more than {MAX_REQUEST_LIFETIME}", reason="expired"
            )
    elif exp - now > MAX_REQUEST_LIFETIME + skew:
        raise InvalidRequestObject(
            f"the request object expires more than {MAX_REQUEST_LIFETIME} s ahead", reason="expired"
        )
    return iat, exp


def _client_metadata(value: Any) -> tuple[Mapping[str, Any], str | None]:
    if not isinstance(value, Mapping):
        # s5.9.3: "All Verifier metadata other than the public key MUST be obtained from the
        # client_metadata parameter"; s5.1: vp_formats_supported "REQUIRED when not available to the
        # Wallet via another mechanism".
        raise InvalidRequest("client_metadata with vp_formats_supported is required", reason="missing_client_metadata")
    formats = value.get("vp_formats_supported")
    if not isinstance(formats, Mapping):
        raise InvalidRequest("client_metadata.vp_formats_supported must be an object", reason="missing_client_metadata")
    if dcql.SD_JWT_VC_FORMAT not in formats:
        raise VpFormatsNotSupported(f"the verifier accepts {_show(sorted(formats))}, not {dcql.SD_JWT_VC_FORMAT}")
    name = value.get("client_name")
    if name is not None and (not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS):
        raise InvalidRequest(f"client_name must be a string of at most {MAX_NAME_CHARS} characters")
    return formats, name


def verify_request_object(
    token: Any,
    *,
    client_id: str,
    trust_anchors: Sequence[Any],
    now: Timestamp,
    wallet_nonce: str | None = None,
    skew: int = 60,
) -> AuthorizationRequest:
    """Check a Request Object fetched from ``request_uri`` (Wallet side) and return its parameters.

    ``client_id`` is the one of the QR link; ``trust_anchors`` the registrar root certificates.
    Order: size and structure (``invalid_request_object``), ``typ``, unsigned (``request_not_signed``),
    ``client_id`` identical and ``x509_san_dns:<DNS name>``, the ``x5c`` chain for that name
    (``invalid_request`` with ``certificate_*`` reasons), signature with the leaf key
    (``invalid_request_object``), ``exp``/``iat``/``nbf``/``aud``, ``wallet_nonce``, ``response_type``,
    ``response_mode``, ``response_uri`` on the certified host, ``nonce``, ``state``, ``dcql_query``,
    ``client_metadata`` (``vp_formats_not_supported``), ``transaction_data``.
    """
    if not isinstance(token, str) or not token:
        raise InvalidRequestObject("the request object must be a compact JWS", reason="malformed")
    if len(token) > MAX_REQUEST_OBJECT_CHARS:
        raise InvalidRequestObject(
            f"the request object is longer than {MAX_REQUEST_OBJECT_CHARS} characters", reason="payload_too_large"
        )
    try:
        parsed = jws.parse(token, max_bytes=MAX_REQUEST_OBJECT_CHARS)
    except CredentialError as exc:
        raise _wrap(InvalidRequestObject, exc, "request object") from exc
    header, claims = parsed.header, parsed.payload
    # s5: "Wallets MUST NOT process Request Objects where the typ Header Parameter is not present or
    # does not have the value oauth-authz-req+jwt."
    if header.get("typ") != REQUEST_TYP:
        raise InvalidRequestObject(
            f"request object typ {_show(header.get('typ'))} is not {REQUEST_TYP}", reason="invalid_typ"
        )
    if header.get("alg") == "none" or not parsed.signature:
        # s5.9.3: with x509_san_dns "The request MUST be signed"; s8.5: "an unsigned request was sent
        # with Client Identifier Prefix ..." is invalid_request.
        raise InvalidRequest("the request object is not signed", reason="request_not_signed")
    # s5.10.1: "The Client Identifier value in the client_id Authorization Request parameter and the
    # Request Object client_id claim value MUST be identical, including the Client Identifier Prefix."
    if claims.get("client_id") != client_id:
        raise InvalidRequest("the request object's client_id differs from the link's", reason="client_id_mismatch")
    dns_name = _dns_client_id(client_id)
    at = seconds(now)
    x5c = header.get("x5c")
    if x5c is None:
        raise InvalidRequestObject("the request object has no x5c header", reason="missing_x5c")
    try:
        # s5.9.3: "The Wallet MUST validate the signature and the trust chain of the X.509 certificate."
        chain = verify_x5c_for_dns(x5c, dns_name=dns_name, trust_anchors=trust_anchors, now=at)
    except KeyMaterialError as exc:
        error = InvalidRequestObject if exc.code == "certificate_invalid" else InvalidRequest
        raise _wrap(error, exc, "x5c") from exc
    try:
        # RFC 9101 s6.2: "If signature validation fails, the Authorization Server MUST return an
        # invalid_request_object error."
        jws.verify_parsed(parsed, chain.public_key, typ=REQUEST_TYP, algorithms=_SIGNATURE_ALGS)
    except CredentialError as exc:
        raise _wrap(InvalidRequestObject, exc, "request object signature") from exc
    return _request_parameters(claims, client_id=client_id, dns_name=dns_name, organization=chain.organization,
                               now=at, skew=skew, wallet_nonce=wallet_nonce)


def _request_parameters(
    claims: Mapping[str, Any],
    *,
    client_id: str,
    dns_name: str,
    organization: str | None,
    now: int | float,
    skew: int,
    wallet_nonce: str | None,
) -> AuthorizationRequest:
    iat, exp = _check_times(claims, now=now, skew=skew)
    aud = claims.get("aud")
    if aud != STATIC_AUDIENCE and not (isinstance(aud, list) and STATIC_AUDIENCE in aud):
        # s5.8: with Static Discovery "the aud claim MUST be "https://self-issued.me/v2"".
        raise InvalidRequestObject(f"request object aud {_show(aud)} is not {STATIC_AUDIENCE}", reason="invalid_aud")
    if wallet_nonce is not None and claims.get("wallet_nonce") != wallet_nonce:
        # s5.10.1: "the Wallet MUST validate whether the request object contains the respective nonce
        # value in a wallet_nonce claim. If it does not, the Wallet MUST terminate request processing."
        raise InvalidRequest("the request object does not carry this wallet_nonce", reason="wallet_nonce_mismatch")
    if "transaction_data" in claims:
        # s5: "Wallets that do not support this parameter MUST reject requests that contain it."
        raise InvalidTransactionData("transaction_data is not supported by this wallet")
    if claims.get("response_type") != RESPONSE_TYPE:
        raise InvalidRequest(
            f"response_type {_show(claims.get('response_type'))} is not {RESPONSE_TYPE}",
            reason="unsupported_response_type",
        )
    if claims.get("response_mode") != DIRECT_POST:
        # s5.2: response_mode "REQUIRED"; only direct_post (s8.2) is implemented.
        raise InvalidRequest(
            f"response_mode {_show(claims.get('response_mode'))} is not {DIRECT_POST}",
            reason="unsupported_response_mode",
        )
    if "redirect_uri" in claims:
        # s8.2: "If the redirect_uri Authorization Request parameter is present when the Response Mode
        # is direct_post, the Wallet MUST return an invalid_request Authorization Response error."
        raise InvalidRequest("redirect_uri must not be present with direct_post", reason="redirect_uri_present")
    if "response_uri" not in claims:
        # s8.2: response_uri "REQUIRED when the Response Mode direct_post is used".
        raise InvalidRequest("the request has no response_uri", reason="missing_response_uri")
    response_uri = _url(claims["response_uri"], "response_uri", InvalidRequest)
    _check_response_uri(response_uri, dns_name)
    nonce = _url_safe(claims.get("nonce"), "nonce")  # s5.2: nonce "REQUIRED"
    state = None if claims.get("state") is None else _url_safe(claims["state"], "state")
    if "dcql_query" not in claims:
        if "scope" in claims:
            raise InvalidScope("scope values standing for DCQL queries are not supported")
        # s8.5: "does not include a dcql_query parameter nor a scope parameter" is invalid_request.
        raise InvalidRequest("the request has no dcql_query", reason="missing_dcql_query")
    if "scope" in claims:
        # s8.5: "The request contains both a dcql_query parameter and a scope parameter".
        raise InvalidRequest("the request has both dcql_query and scope", reason="scope_and_dcql_query")
    query = _parse_dcql(claims["dcql_query"])
    if state is None and not all(q.require_cryptographic_holder_binding for q in query.credentials):
        # s5.3: a Verifier requesting a Presentation without Holder Binding "MUST include a state".
        raise InvalidRequest("state is required when holder binding is waived", reason="missing_state")
    if not any(q.format == dcql.SD_JWT_VC_FORMAT for q in query.credentials):
        raise VpFormatsNotSupported(f"the query requests no {dcql.SD_JWT_VC_FORMAT} credential")
    formats, client_name = _client_metadata(claims.get("client_metadata"))
    purpose = claims.get("purpose")
    if purpose is not None and (not isinstance(purpose, str) or len(purpose) > MAX_PURPOSE_CHARS):
        raise InvalidRequest(f"purpose must be a string of at most {MAX_PURPOSE_CHARS} characters")
    return AuthorizationRequest(
        client_id=client_id,
        response_uri=response_uri,
        nonce=nonce,
        dcql_query=query,
        state=state,
        client_name=client_name,
        purpose=purpose,
        vp_formats_supported=_freeze(formats),
        wallet_nonce=claims.get("wallet_nonce") if isinstance(claims.get("wallet_nonce"), str) else None,
        issued_at=iat,
        expires_at=exp,
        verifier_name=organization,
        dns_name=dns_name,
    )


# --------------------------------------------------------------------------------------------------
# Request URI method post (s5.10)

#: s10.1 / s13.1.2: this Wallet's static metadata, sent as ``wallet_metadata`` with ``request_uri_method=post``.
WALLET_METADATA: Mapping[str, Any] = _freeze(
    {
        "authorization_endpoint": f"{SCHEME}:",
        "response_types_supported": [RESPONSE_TYPE],
        "response_modes_supported": [DIRECT_POST],
        "vp_formats_supported": DEFAULT_VP_FORMATS,
        "client_id_prefixes_supported": [X509_SAN_DNS],
        "request_object_signing_alg_values_supported": sorted(_SIGNATURE_ALGS),
    }
)


def request_uri_post_form(*, wallet_nonce: str | None = None) -> dict[str, str]:
    """The form the Wallet posts to ``request_uri`` (s5.10): ``wallet_metadata`` and, if given, ``wallet_nonce``."""
    form = {"wallet_metadata": jws.dumps(_thaw(WALLET_METADATA)).decode("utf-8")}
    if wallet_nonce is not None:
        # s5.10: wallet_nonce "can be a base64url-encoded, fresh, cryptographically random number".
        form["wallet_nonce"] = _url_safe(wallet_nonce, "wallet_nonce")
    return form


def parse_request_uri_post(form: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> tuple[str | None, Mapping[str, Any]]:
    """The Verifier's reading of a Request URI POST (s5.10): ``(wallet_nonce, wallet_metadata)``.

    Raises ``invalid_request`` for a repeated parameter, a ``wallet_nonce`` that is not URL safe, or
    ``wallet_metadata`` that is not a JSON object. Other parameters are ignored (s5.10: "The Verifier
    MUST ignore any unrecognized parameters"). The Verifier puts ``wallet_nonce`` in the Request Object
    (s5.10: it "MUST use it as the wallet_nonce value in the signed authorization request object").
    """
    params = _form(form)
    nonce = params.get("wallet_nonce")
    if nonce is not None:
        nonce = _url_safe(nonce, "wallet_nonce")
    metadata: Any = {}
    if "wallet_metadata" in params:
        raw = _text(params["wallet_metadata"], "wallet_metadata", InvalidRequest, MAX_PARAM_CHARS * 4)
        try:
            metadata = jws.loads(raw)
        except CredentialError as exc:
            raise _wrap(InvalidRequest, exc, "wallet_metadata") from exc
        if not isinstance(metadata, dict):
            raise InvalidRequest("wallet_metadata must be a JSON object", reason="invalid_wallet_metadata")
    return nonce, _freeze(metadata)


# --------------------------------------------------------------------------------------------------
# Wallet side: the response (s8.1, s8.2, B.3.6)


def present_for_request(
    sd_jwt: str,
    *,
    request: AuthorizationRequest,
    disclose: Iterable[Any],
    holder_signer: Signer,
    now: int,
) -> str:
    """A key-bound SD-JWT VC presentation for this request (raises like :func:`credentials.sd_jwt.present`).

    B.3.6: the KB-JWT ``nonce`` "MUST be the value of nonce from the Authorization Request" and ``aud``
    "MUST be the value of the Client Identifier" (s14: "Wallets MUST always use the full Client
    Identifier, including the prefix").
    """
    return present(sd_jwt, disclose=disclose, holder_signer=holder_signer, aud=request.client_id,
                   nonce=request.nonce, now=now)


def _vp_token(request: AuthorizationRequest, presentations: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    token: dict[str, list[str]] = {}
    for query_id, items in presentations.items():
        try:
            query = request.dcql_query.credential(query_id)
        except KeyError as exc:
            raise InvalidRequest(f"no credential query {_show(query_id)} in the request") from exc
        items = [items] if isinstance(items, str) else list(items)
        if not items:
            # s8.1: "There MUST NOT be any entry in the JSON-encoded object for optional Credential
            # Queries when there are no matching Credentials".
            raise InvalidRequest(f"no presentation for {query_id!r}: leave the entry out")
        if len(items) > 1 and not query.multiple:
            # s8.1: "When multiple is omitted, or set to false, the array MUST contain only one Presentation."
            raise InvalidRequest(f"{query_id!r} allows one presentation")
        token[query_id] = items
    if not token:
        raise InvalidRequest("a vp_token needs at least one presentation; send access_denied instead")
    return token


def response_form(request: AuthorizationRequest, presentations: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The ``direct_post`` form fields: ``vp_token`` (s8.1, a JSON object of id -> presentations) and ``state``."""
    form = {"vp_token": jws.dumps(_vp_token(request, presentations)).decode("utf-8")}
    if request.state is not None:
        form["state"] = request.state
    return form


def error_response_form(
    request: AuthorizationRequest, code: str = AccessDenied.code, description: str | None = None
) -> dict[str, str]:
    """The Authorization Error Response form (s8.2), e.g. ``access_denied`` when the End-User refuses."""
    if code not in ERRORS:
        raise ValueError(f"unknown error code {code!r}")
    form = {"error": code}
    if description:
        # s8.5 / RFC 6749 s4.1.2.1: error_description is ASCII without '"' and '\\'.
        form["error_description"] = _ascii(description)
    if request.state is not None:
        form["state"] = request.state
    return form


# --------------------------------------------------------------------------------------------------
# Verifier side: the direct_post response (s8.2, s8.6)


@dataclass(frozen=True, slots=True)
class AuthorizationResponse:
    """A parsed ``direct_post`` body: a ``vp_token`` (id -> presentations) or an error, and ``state``."""

    state: str | None
    vp_token: Mapping[str, tuple[str, ...]] | None = None
    error: str | None = None
    error_description: str | None = None


@dataclass(frozen=True, slots=True)
class DiscardedPresentation:
    """A presentation that failed its checks (s8.6: "MUST be discarded"), with the error's code."""

    query_id: str
    index: int
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class VerifiedResponse:
    """The verified credentials by Credential Query id, and the presentations discarded."""

    credentials: Mapping[str, tuple[VerifiedCredential, ...]]
    discarded: tuple[DiscardedPresentation, ...] = ()


#: ``verify(presentation, kb_policy_or_None) -> VerifiedCredential``: e.g. the verifier SDK's checks
#: (trust list, status, replay) as ``lambda p, kb: sdk.verify(p, nonce=kb.nonce, audience=kb.aud).credential``.
PresentationVerifier = Callable[[str, "KeyBindingPolicy | None"], VerifiedCredential]


def _form(form: Any) -> dict[str, Any]:
    items = list(form.items()) if isinstance(form, Mapping) else None
    if items is None:
        if isinstance(form, (str, bytes)) or not isinstance(form, Iterable):
            raise InvalidRequest("the body must be a form")
        items = list(form)
    params: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str):
            raise InvalidRequest("the body must be a form of named parameters")
        if item[0] in params:
            # RFC 6749 s3.1: parameters "MUST NOT be included more than once".
            raise InvalidRequest(f"parameter {_show(item[0])} is repeated")
        params[item[0]] = item[1]
    return params


def parse_response_form(form: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> AuthorizationResponse:
    """Parse a ``direct_post`` body (s8.2); raises ``invalid_request`` (``payload_too_large`` for size)."""
    params = _form(form)
    state = params.get("state")
    if state is not None:
        state = _text(state, "state", InvalidRequest, 512)
    if "error" in params:
        error = _text(params["error"], "error", InvalidRequest, 64)
        description = params.get("error_description")
        if description is not None:
            description = _ascii(_text(description, "error_description", InvalidRequest))
        return AuthorizationResponse(state=state, error=error, error_description=description)
    raw = params.get("vp_token")
    if raw is None:
        raise InvalidRequest("the response has neither vp_token nor error", reason="missing_vp_token")
    raw = _text(raw, "vp_token", InvalidRequest, MAX_VP_TOKEN_CHARS)
    try:
        decoded = jws.loads(raw)
    except CredentialError as exc:
        raise _wrap(InvalidRequest, exc, "vp_token") from exc
    # s8.1: vp_token "is a JSON-encoded object containing entries where the key is the id value used
    # for a Credential Query in the DCQL query and the value is an array of one or more Presentations".
    if not isinstance(decoded, dict) or not decoded:
        raise InvalidRequest("vp_token must be a non-empty JSON object", reason="malformed")
    token: dict[str, tuple[str, ...]] = {}
    count = 0
    for query_id, items in decoded.items():
        if not isinstance(items, list) or not items or not all(isinstance(p, str) and p for p in items):
            raise InvalidRequest(
                f"vp_token[{_show(query_id)}] must be a non-empty array of strings", reason="malformed"
            )
        count += len(items)
        if count > MAX_PRESENTATIONS:
            raise InvalidRequest(f"more than {MAX_PRESENTATIONS} presentations", reason="payload_too_large")
        if any(len(p) > MAX_SD_JWT_BYTES for p in items):
            raise InvalidRequest(f"a presentation is longer than {MAX_SD_JWT_BYTES}", reason="payload_too_large")
        token[query_id] = tuple(items)
    return AuthorizationResponse(state=state, vp_token=token)


def _check_state(response: AuthorizationResponse, request: AuthorizationRequest) -> None:
    if request.state is not None and response.state != request.state:
        # s5.3: the Verifier MUST "check that the same state value is returned in the Authorization
        # Response"; s14.3.2: the Response URI SHOULD check state against a recent request.
        raise InvalidRequest("the response's state is not this transaction's", reason="state_mismatch")


def verify_response(
    response: AuthorizationResponse,
    *,
    request: AuthorizationRequest,
    now: Timestamp,
    resolve_issuer_key: IssuerKeyLookup | None = None,
    verify_presentation: PresentationVerifier | None = None,
    max_age: int = 300,
    skew: int = 60,
) -> VerifiedResponse:
    """Verify a ``direct_post`` response against the request the Verifier stored (s8.6).

    Each presentation is an SD-JWT VC checked by :func:`credentials.sd_jwt_vc.verify_vc` with
    ``resolve_issuer_key`` (or by ``verify_presentation``, e.g. the verifier SDK), with Key Binding
    (``nonce`` = the request's, ``aud`` = the full Client Identifier, ``max_age`` freshness, ``sd_hash``)
    unless the query waived it, and an accepted ``vct``. Failed presentations are discarded; the rest
    must satisfy the DCQL query. Raises: the Wallet's error as its :class:`OpenId4VpError`;
    ``invalid_request`` (``state_mismatch``, ``dcql_not_satisfied``, unknown ids); ``kb_nonce_mismatch``
    at once; otherwise, when the query is not satisfied, the first discarded presentation's error.
    The caller keeps one response per transaction: it consumes ``nonce`` and ``state`` once this
    returns (s13.3 step 10: "invalidates the transaction-id, request-id and nonce").
    """
    if (resolve_issuer_key is None) == (verify_presentation is None):
        raise TypeError("pass exactly one of resolve_issuer_key and verify_presentation")
    _check_state(response, request)
    if response.error is not None:
        cls = ERRORS.get(response.error, OpenId4VpError)
        raise cls(response.error_description or f"the wallet answered {response.error}", reason=response.error)
    token = response.vp_token or {}
    t = int(seconds(now))

    def check(text: str, kb: KeyBindingPolicy | None, vcts: Collection[str]) -> VerifiedCredential:
        if verify_presentation is not None:
            return verify_presentation(text, kb)
        return verify_vc(text, resolve_issuer_key=resolve_issuer_key, now=t, skew=skew, kb=kb,  # type: ignore[arg-type]
                         expected_vcts=vcts)

    verified: dict[str, list[VerifiedCredential]] = {}
    discarded: list[DiscardedPresentation] = []
    failures: list[CredentialError] = []
    for query_id, presentations in token.items():
        try:
            query = request.dcql_query.credential(query_id)
        except KeyError as exc:
            raise InvalidRequest(
                f"vp_token answers unknown query {_show(query_id)}", reason="dcql_not_satisfied"
            ) from exc
        kb = None
        if query.require_cryptographic_holder_binding:
            # s14.1.2: the proof "MUST be bound ... to the intended audience (the Client Identifier of
            # the Verifier) and the respective transaction (identified by the nonce parameter)".
            kb = KeyBindingPolicy(nonce=request.nonce, aud=request.client_id, max_age=max_age, skew=skew)
        for i, text in enumerate(presentations):
            try:
                verified.setdefault(query_id, []).append(check(text, kb, query.vct_values))
            except KbNonceMismatch:
                # s14.1.2: "If any Verifiable Presentation in the response does not contain the correct
                # nonce value, the response MUST be rejected."
                raise
            except CredentialError as exc:
                # s8.6: "If any of the checks related to an individual Presentation fail, the effected
                # Presentation MUST be discarded."
                discarded.append(DiscardedPresentation(query_id, i, exc.code, exc.detail))
                failures.append(exc)
    answers = {
        qid: [dcql.Candidate(c.vct, c.claims, holder_binding=c.key_bound) for c in found]
        for qid, found in verified.items()
        if found
    }
    try:
        dcql.check_answers(request.dcql_query, answers)
    except dcql.DcqlNotSatisfied as exc:
        if failures:
            raise failures[0] from exc
        raise _wrap(InvalidRequest, exc, "vp_token") from exc
    return VerifiedResponse({k: tuple(v) for k, v in verified.items() if v}, tuple(discarded))
