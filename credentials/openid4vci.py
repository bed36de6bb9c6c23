"""OpenID for Verifiable Credential Issuance 1.0 (final, September 2025): the protocol core.

Message shapes and checks of the Pre-Authorized Code Flow, for the issuer service and the wallet;
pure values in, values out (no web framework, no database, no network). Section numbers are those
of the final specification:

* 4.1 Credential Offer: :class:`CredentialOffer`, :func:`offer_uri`, :func:`offer_reference_uri`,
  :func:`parse_offer_uri`, :func:`parse_offer`;
* 6 Token Endpoint: :func:`parse_token_request`, :func:`check_tx_code_presence`, :func:`token_response`;
* 7 Nonce Endpoint: :func:`nonce_response`;
* 8 Credential Endpoint: :func:`parse_bearer_token`, :func:`parse_credential_request`,
  :func:`credential_response`; Appendix F.1 key proofs: :func:`make_proof`, :func:`verify_proof`;
* 12.2 Credential Issuer Metadata (format ``dc+sd-jwt``, Appendix A.3): :class:`CredentialConfiguration`,
  :func:`configuration_for_type`, :func:`issuer_metadata`; 12.3 and RFC 8414:
  :func:`authorization_server_metadata`; :func:`well_known_url`.

Errors are :class:`OpenId4VciError` subclasses carrying the OAuth / OpenID4VCI ``error`` code and
the HTTP status (6.3, 8.3.1.2, RFC 6749 s5.2, RFC 6750 s3.1). Parsers raise nothing else; the
metadata builders raise ``credentials.errors.Malformed`` for a bad configuration value.

Choices where the specification leaves room, with the reason:

* Only the Pre-Authorized Code grant is implemented. :func:`parse_offer` refuses an offer without it
  (4.1.1 makes ``grants`` OPTIONAL, but without it this wallet has no way to proceed); another grant
  next to it is ignored. Anonymous access: the token endpoint needs no client authentication.
* ``proofs`` (plural) only. The singular ``proof`` of the drafts is not part of 1.0; as an
  unrecognised parameter it is ignored (8.2: "MUST ignore any unrecognized parameters"), so a request
  carrying only ``proof`` fails as ``invalid_proof`` (``proofs`` missing), with a message saying so.
* Proof type ``jwt`` with the holder key in the ``jwk`` header only: ``kid`` (a DID URL) and ``x5c``
  are refused with ``invalid_proof``; the ``key_attestation`` header is not required and not read.
* One proof per request: batch issuance is not offered (no ``batch_credential_issuance`` in the
  metadata), so more than one proof is ``invalid_credential_request``.
* The proof's ``aud`` must be a string equal to the Credential Issuer Identifier (F.1: "REQUIRED
  (string)"), not an array. ``iss`` must be absent for anonymous access (F.1: "MUST be omitted") and
  equal the ``client_id`` otherwise. ``iat`` must lie in ``[now - max_age, now + skew]``.
* ``credential_identifier`` is accepted only for identifiers the caller passes (none are issued by
  a Pre-Authorized Code token response here, so by default it is ``unknown_credential_identifier``).
* Encryption of requests and responses is not supported: a request with
  ``credential_response_encryption`` is refused (``invalid_encryption_parameters``) rather than
  answered in the clear against the wallet's wish.
* ``authorization_details`` in a token request is ignored: RFC 9396 is not implemented, and the
  authorization server metadata does not advertise it.
* The offer deep link must be exactly ``openid-credential-offer://?<one parameter>``; anything else
  (another scheme, an authority or path, a second parameter, a fragment) is refused.
* ``error_description`` is reduced to the ASCII subset 8.3.1.2 allows (no ``"`` or ``\\``).
* ``http://`` URLs are accepted for the loopback hosts only (local development), by the same rule as
  :func:`credentials.sd_jwt_vc.check_url`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit

from credentials import jws
from credentials.clock import Timestamp, seconds
from credentials.errors import CredentialError, Malformed
from credentials.sd_jwt_vc import check_issuer_identifier, check_url
from credentials.sd_jwt_vc import well_known_url as _insert_well_known
from keys.jwk import public_jwk, thumbprint
from keys.signer import Signer

__all__ = [
    # constants
    "PRE_AUTHORIZED_GRANT",
    "PROOF_TYP",
    "OFFER_SCHEME",
    "FORMAT",
    "ISSUER_WELL_KNOWN",
    "AS_WELL_KNOWN",
    "MAX_PROOFS",
    "NO_STORE",
    # errors
    "OpenId4VciError",
    "InvalidRequest",
    "InvalidGrant",
    "InvalidClient",
    "UnsupportedGrantType",
    "InvalidToken",
    "InvalidProof",
    "InvalidNonce",
    "InvalidCredentialRequest",
    "UnknownCredentialConfiguration",
    "UnknownCredentialIdentifier",
    "InvalidEncryptionParameters",
    "CredentialRequestDenied",
    "ERRORS",
    "error_for_code",
    # offer
    "TxCode",
    "CredentialOffer",
    "offer_uri",
    "offer_reference_uri",
    "parse_offer_uri",
    "parse_offer",
    # token and nonce
    "PreAuthorizedTokenRequest",
    "parse_token_request",
    "check_tx_code_presence",
    "token_response",
    "nonce_response",
    # credential endpoint
    "ProofResult",
    "make_proof",
    "verify_proof",
    "CredentialRequest",
    "parse_bearer_token",
    "parse_credential_request",
    "credential_response",
    # metadata
    "CredentialConfiguration",
    "configuration_for_type",
    "issuer_metadata",
    "authorization_server_metadata",
    "well_known_url",
]

#: 4.1.1: the grant type of the Pre-Authorized Code Flow.
PRE_AUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
#: F.1: "typ: REQUIRED. MUST be openid4vci-proof+jwt".
PROOF_TYP = "openid4vci-proof+jwt"
#: 12.1.1: the custom URL scheme of a wallet's Credential Offer Endpoint.
OFFER_SCHEME = "openid-credential-offer"
#: A.3.1: the Credential Format Identifier of SD-JWT VC.
FORMAT = "dc+sd-jwt"
#: 12.2.2: the well-known suffix of the Credential Issuer Metadata.
ISSUER_WELL_KNOWN = "openid-credential-issuer"
#: RFC 8414 s3: the well-known suffix of the Authorization Server Metadata.
AS_WELL_KNOWN = "oauth-authorization-server"
#: Proofs accepted in one Credential Request (no batch issuance).
MAX_PROOFS = 1
#: 6.2 / 7.2 / 8.3: token, nonce and credential responses (and their errors) "MUST" not be cached.
NO_STORE: Mapping[str, str] = {"Cache-Control": "no-store"}

MAX_OFFER_CHARS = 16 * 1024
MAX_PARAM_CHARS = 2048
MAX_PROOF_CHARS = 16 * 1024
MAX_TX_CODE_LENGTH = 64
_TX_CODE_DESCRIPTION_MAX = 300
_INPUT_MODES = ("numeric", "text")
_OFFER_PARAMS = ("credential_offer", "credential_offer_uri")
_KEY_HEADERS = ("jwk", "kid", "x5c")
_B64TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/")


# --------------------------------------------------------------------------------------------------
# Errors


def _ascii(text: str, limit: int = 400) -> str:
    # 8.3.1.2: error_description "MUST NOT include characters outside the set %x20-21 / %x23-5B /
    # %x5D-7E" (RFC 6749 s5.2 says the same): no quote, no backslash, ASCII only.
    out = []
    for ch in text[:limit]:
        if ch == '"':
            out.append("'")
        elif ch == "\\":
            out.append("/")
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


def _show(value: Any, limit: int = 60) -> str:
    """A short printable rendering of an untrusted value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OpenId4VciError(Exception):
    """A protocol error: ``code`` is the OAuth / OpenID4VCI ``error`` value, ``status`` the HTTP status."""

    code: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400
    default_description: ClassVar[str] = "The request is invalid."

    def __init__(self, description: str | None = None) -> None:
        self.description = _ascii(description or self.default_description)
        super().__init__(self.description)

    def to_dict(self) -> dict[str, str]:
        """The error response body: ``{"error": code, "error_description": description}``."""
        return {"error": self.code, "error_description": self.description}

    def headers(self) -> dict[str, str]:
        """HTTP headers the error response carries (``Cache-Control: no-store``; see subclasses)."""
        return dict(NO_STORE)


class InvalidRequest(OpenId4VciError):
    """RFC 6749 s5.2 ``invalid_request``; 6.3: a Transaction Code sent when none was expected, or missing."""

    code = "invalid_request"
    default_description = "The request is missing a parameter or is malformed."


class InvalidGrant(OpenId4VciError):
    """6.3 ``invalid_grant``: wrong or expired Pre-Authorized Code, or wrong Transaction Code."""

    code = "invalid_grant"
    default_description = "The pre-authorized code or transaction code is invalid or expired."


class InvalidClient(OpenId4VciError):
    """6.3 ``invalid_client``: client authentication failed or is required."""

    code = "invalid_client"
    default_description = "Client authentication failed."


class UnsupportedGrantType(OpenId4VciError):
    """RFC 6749 s5.2 ``unsupported_grant_type``."""

    code = "unsupported_grant_type"
    default_description = "Only the pre-authorized code grant is supported."


class InvalidToken(OpenId4VciError):
    """RFC 6750 s3.1 ``invalid_token`` (HTTP 401, with a ``WWW-Authenticate: Bearer`` challenge)."""

    code = "invalid_token"
    status = 401
    default_description = "The access token is missing, invalid or expired."

    def headers(self) -> dict[str, str]:
        # RFC 6750 s3: the 401 response "MUST include the HTTP WWW-Authenticate response header".
        return {**NO_STORE, "WWW-Authenticate": f'Bearer error="{self.code}"'}


class InvalidProof(OpenId4VciError):
    """8.3.1.2 ``invalid_proof``: ``proofs`` missing, a key proof invalid, or one without a ``c_nonce``."""

    code = "invalid_proof"
    default_description = "The key proof is invalid."


class InvalidNonce(OpenId4VciError):
    """8.3.1.2 ``invalid_nonce``: a key proof carries a ``c_nonce`` that is unknown, used or expired."""

    code = "invalid_nonce"
    default_description = "The nonce in the key proof is invalid; request a new one from the nonce endpoint."


class InvalidCredentialRequest(OpenId4VciError):
    """8.3.1.2 ``invalid_credential_request``: missing, unsupported, repeated or malformed parameters."""

    code = "invalid_credential_request"
    default_description = "The credential request is malformed."


class UnknownCredentialConfiguration(OpenId4VciError):
    """8.3.1.2 ``unknown_credential_configuration``."""

    code = "unknown_credential_configuration"
    default_description = "The requested credential configuration is unknown."


class UnknownCredentialIdentifier(OpenId4VciError):
    """8.3.1.2 ``unknown_credential_identifier``."""

    code = "unknown_credential_identifier"
    default_description = "The requested credential identifier is unknown."


class InvalidEncryptionParameters(OpenId4VciError):
    """8.3.1.2 ``invalid_encryption_parameters`` (encryption is not supported here)."""

    code = "invalid_encryption_parameters"
    default_description = "Credential response encryption is not supported."


class CredentialRequestDenied(OpenId4VciError):
    """8.3.1.2 ``credential_request_denied``: the wallet should treat it as unrecoverable."""

    code = "credential_request_denied"
    default_description = "The credential request was denied."


#: Every error class by its code.
ERRORS: Mapping[str, type[OpenId4VciError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InvalidGrant,
        InvalidClient,
        UnsupportedGrantType,
        InvalidToken,
        InvalidProof,
        InvalidNonce,
        InvalidCredentialRequest,
        UnknownCredentialConfiguration,
        UnknownCredentialIdentifier,
        InvalidEncryptionParameters,
        CredentialRequestDenied,
    )
}


def error_for_code(code: str, description: str | None = None) -> OpenId4VciError:
    """An error instance for a code; raises ``KeyError`` for a code not in :data:`ERRORS`."""
    return ERRORS[code](description)


# --------------------------------------------------------------------------------------------------
# Small checks shared by the parsers


def _text(value: Any, what: str, error: type[OpenId4VciError], limit: int = MAX_PARAM_CHARS) -> str:
    if not isinstance(value, str) or not value:
        raise error(f"{what} must be a non-empty string")
    if len(value) > limit:
        raise error(f"{what} is longer than {limit} characters")
    return value


def _identifier(value: Any, what: str, error: type[OpenId4VciError]) -> str:
    try:
        return check_issuer_identifier(_text(value, what, error))
    except CredentialError as exc:
        raise error(f"{what}: {exc.detail}") from exc


def _url(value: Any, what: str, error: type[OpenId4VciError]) -> str:
    try:
        return check_url(_text(value, what, error), what=what)
    except CredentialError as exc:
        raise error(f"{what}: {exc.detail}") from exc


# --------------------------------------------------------------------------------------------------
# 4.1 Credential Offer


@dataclass(frozen=True, slots=True)
class TxCode:
    """4.1.1 ``tx_code``: a Transaction Code is required (all members optional; ``TxCode()`` is ``{}``).

    Raises ``InvalidRequest`` for a ``length`` outside 1..64, an ``input_mode`` other than
    ``numeric``/``text`` or a ``description`` over 300 characters.
    """

    length: int | None = None
    input_mode: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.length is not None and (
            type(self.length) is not int or not 1 <= self.length <= MAX_TX_CODE_LENGTH
        ):
            raise InvalidRequest(f"tx_code length must be an integer from 1 to {MAX_TX_CODE_LENGTH}")
        if self.input_mode is not None and self.input_mode not in _INPUT_MODES:
            # 4.1.1: "Possible values are numeric (only digits) and text (any characters)."
            raise InvalidRequest(f"tx_code input_mode {_show(self.input_mode)} is not numeric or text")
        if self.description is not None and (
            not isinstance(self.description, str) or len(self.description) > _TX_CODE_DESCRIPTION_MAX
        ):
            # 4.1.1: "The length of the string MUST NOT exceed 300 characters."
            raise InvalidRequest(
                f"tx_code description must be a string of at most {_TX_CODE_DESCRIPTION_MAX} characters"
            )

    def to_json(self) -> dict[str, Any]:
        """The ``tx_code`` object, members that are set only."""
        out: dict[str, Any] = {}
        if self.length is not None:
            out["length"] = self.length
        if self.input_mode is not None:
            out["input_mode"] = self.input_mode
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class CredentialOffer:
    """A Credential Offer with the Pre-Authorized Code grant (4.1.1).

    Raises ``InvalidRequest`` for an issuer that is not a Credential Issuer Identifier (12.2.1), an
    empty or repeated configuration id, or an empty code.
    """

    credential_issuer: str
    credential_configuration_ids: tuple[str, ...]
    pre_authorized_code: str
    tx_code: TxCode | None = None

    def __post_init__(self) -> None:
        _identifier(self.credential_issuer, "credential_issuer", InvalidRequest)
        ids = self.credential_configuration_ids
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
            raise InvalidRequest("credential_configuration_ids must be an array of strings")
        ids = tuple(ids)
        object.__setattr__(self, "credential_configuration_ids", ids)
        # 4.1.1: "REQUIRED. A non-empty array of unique strings".
        if not ids or len(ids) > 64:
            raise InvalidRequest("credential_configuration_ids must hold 1 to 64 ids")
        for cid in ids:
            _text(cid, "a credential_configuration_id", InvalidRequest)
        if len(set(ids)) != len(ids):
            raise InvalidRequest("credential_configuration_ids must be unique")
        _text(self.pre_authorized_code, "pre-authorized_code", InvalidRequest)
        if self.tx_code is not None and not isinstance(self.tx_code, TxCode):
            raise InvalidRequest("tx_code must be a TxCode")

    def to_json(self) -> dict[str, Any]:
        """The Credential Offer object (4.1.1)."""
        grant: dict[str, Any] = {"pre-authorized_code": self.pre_authorized_code}
        if self.tx_code is not None:
            # 4.1.1: tx_code is an "Object indicating that a Transaction Code is required if
            # present, even if empty".
            grant["tx_code"] = self.tx_code.to_json()
        return {
            "credential_issuer": self.credential_issuer,
            "credential_configuration_ids": list(self.credential_configuration_ids),
            "grants": {PRE_AUTHORIZED_GRANT: grant},
        }


def offer_uri(offer: CredentialOffer) -> str:
    """The by-value deep link ``openid-credential-offer://?credential_offer=<percent-encoded JSON>``."""
    text = jws.dumps(offer.to_json()).decode("utf-8")
    return f"{OFFER_SCHEME}://?credential_offer={quote(text, safe='')}"


def offer_reference_uri(uri: str) -> str:
    """The by-reference deep link ``openid-credential-offer://?credential_offer_uri=<percent-encoded URL>``.

    Raises ``InvalidRequest`` unless ``uri`` is an https URL (http on loopback) without fragment.
    """
    # 4.1: "credential_offer_uri: String that is a URL using the https scheme".
    _url(uri, "credential_offer_uri", InvalidRequest)
    return f"{OFFER_SCHEME}://?credential_offer_uri={quote(uri, safe='')}"


def parse_offer_uri(text: Any) -> CredentialOffer | str:
    """Parse a scanned deep link: a :class:`CredentialOffer` (by value) or the offer's URL (by reference).

    Raises ``InvalidRequest`` for anything but ``openid-credential-offer://?`` with exactly one of
    ``credential_offer`` / ``credential_offer_uri``, and for every error of :func:`parse_offer`.
    The wallet fetches a returned URL (``application/json``) and passes the body to :func:`parse_offer`.
    """
    if not isinstance(text, str) or not text:
        raise InvalidRequest("a credential offer link must be a non-empty string")
    if len(text) > MAX_OFFER_CHARS:
        raise InvalidRequest(f"the credential offer link is longer than {MAX_OFFER_CHARS} characters")
    if any(c.isspace() or c < " " or c == "\x7f" for c in text):
        # urlsplit silently drops tabs and newlines (and leading blanks): refuse them instead.
        raise InvalidRequest("the credential offer link contains white space or control characters")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise InvalidRequest("the credential offer link is not a URI") from exc
    if parts.scheme.lower() != OFFER_SCHEME or not text.lower().startswith(OFFER_SCHEME + "://"):
        raise InvalidRequest(f"the link does not use the {OFFER_SCHEME}:// scheme")
    if parts.netloc or parts.path not in ("", "/") or parts.fragment or "#" in text:
        raise InvalidRequest(f"a credential offer link is {OFFER_SCHEME}://? followed by one parameter")
    try:
        params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError as exc:  # UnicodeDecodeError included
        raise InvalidRequest("the credential offer link's query is malformed") from exc
    # 4.1: "The Credential Offer contains a single URI query parameter, either credential_offer or
    # credential_offer_uri"; each "MUST NOT be present when the ... other parameter is present."
    if len(params) != 1 or params[0][0] not in _OFFER_PARAMS:
        names = sorted({name for name, _ in params})
        raise InvalidRequest(f"expected one of credential_offer, credential_offer_uri; got {_show(names)}")
    name, value = params[0]
    if name == "credential_offer_uri":
        return _url(value, "credential_offer_uri", InvalidRequest)
    return parse_offer(value)


def parse_offer(data: Any) -> CredentialOffer:
    """Parse a Credential Offer object (JSON text, bytes or an already decoded object).

    Raises ``InvalidRequest`` for bad JSON, a missing or malformed member, or an offer without the
    Pre-Authorized Code grant. Unknown members are ignored (4.1.1: "The Wallet MUST ignore any
    unrecognized parameters").
    """
    if isinstance(data, (str, bytes, bytearray)):
        if len(data) > MAX_OFFER_CHARS:
            raise InvalidRequest(f"the credential offer is longer than {MAX_OFFER_CHARS} characters")
        try:
            data = jws.loads(bytes(data) if isinstance(data, bytearray) else data)
        except CredentialError as exc:
            raise InvalidRequest(f"the credential offer is not JSON: {exc.detail}") from exc
    if not isinstance(data, Mapping):
        raise InvalidRequest("the credential offer must be a JSON object")
    if "credential_issuer" not in data:
        raise InvalidRequest("the credential offer has no credential_issuer")
    ids = data.get("credential_configuration_ids")
    if type(ids) is not list:
        raise InvalidRequest("credential_configuration_ids must be an array of strings")
    grants = data.get("grants")
    if not isinstance(grants, Mapping):
        raise InvalidRequest("the offer has no grants (only the pre-authorized code flow is supported)")
    grant = grants.get(PRE_AUTHORIZED_GRANT)
    if grant is None:
        raise InvalidRequest("the credential offer has no pre-authorized_code grant (the only flow supported)")
    if not isinstance(grant, Mapping):
        raise InvalidRequest("the pre-authorized_code grant must be an object")
    if "pre-authorized_code" not in grant:
        raise InvalidRequest("the pre-authorized_code grant has no pre-authorized_code")
    tx_code = None
    if "tx_code" in grant:
        raw = grant["tx_code"]
        if not isinstance(raw, Mapping):
            raise InvalidRequest("tx_code must be an object")
        tx_code = TxCode(raw.get("length"), raw.get("input_mode"), raw.get("description"))
    return CredentialOffer(data["credential_issuer"], tuple(ids), grant["pre-authorized_code"], tx_code)


# --------------------------------------------------------------------------------------------------
# 6 Token Endpoint, 7 Nonce Endpoint


@dataclass(frozen=True, slots=True)
class PreAuthorizedTokenRequest:
    """A Token Request with the Pre-Authorized Code grant (6.1)."""

    code: str
    tx_code: str | None = None
    client_id: str | None = None


def _form_items(form: Any) -> list[tuple[str, Any]]:
    if isinstance(form, Mapping):
        items = list(form.items())
    elif isinstance(form, (str, bytes)) or not isinstance(form, Iterable):
        raise InvalidRequest("the token request must be a form")
    else:
        items = list(form)
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str):
            raise InvalidRequest("the token request must be a form of named parameters")
    return items


def parse_token_request(form: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> PreAuthorizedTokenRequest:
    """Validate a token request's form (a mapping, or name/value pairs such as ``multi_items()``).

    Raises ``InvalidRequest`` for a repeated, non-string, empty or overlong parameter or a missing
    ``grant_type`` / ``pre-authorized_code``, and ``UnsupportedGrantType`` for any other grant type.
    Checking the code and the Transaction Code against the offer is the caller's (``invalid_grant``);
    so is :func:`check_tx_code_presence`.
    """
    params: dict[str, Any] = {}
    for name, value in _form_items(form):
        if name in params:
            # RFC 6749 s3.2: "Request and response parameters MUST NOT be included more than once."
            raise InvalidRequest(f"parameter {_show(name)} is repeated")
        params[name] = value
    for name in ("grant_type", "pre-authorized_code", "tx_code", "client_id"):
        if name in params:
            _text(params[name], name, InvalidRequest)
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("grant_type is missing")
    if grant_type != PRE_AUTHORIZED_GRANT:
        raise UnsupportedGrantType(f"grant_type {_show(grant_type)} is not supported; use {PRE_AUTHORIZED_GRANT}")
    code = params.get("pre-authorized_code")
    if code is None:
        # 6.1: pre-authorized_code "MUST be present if the grant_type is
        # urn:ietf:params:oauth:grant-type:pre-authorized_code".
        raise InvalidRequest("pre-authorized_code is missing")
    return PreAuthorizedTokenRequest(code, params.get("tx_code"), params.get("client_id"))


def check_tx_code_presence(request: PreAuthorizedTokenRequest, *, required: bool) -> None:
    """6.3: a Transaction Code must be sent exactly when the offer asked for one; raises ``InvalidRequest``."""
    if required and request.tx_code is None:
        raise InvalidRequest("this offer requires a tx_code (transaction code)")
    if not required and request.tx_code is not None:
        raise InvalidRequest("this offer does not expect a tx_code")


def token_response(access_token: str, expires_in: int) -> dict[str, Any]:
    """A successful Token Response (6.2, RFC 6749 s5.1) with ``token_type`` ``Bearer``.

    Raises ``ValueError`` for an empty token or a non-positive lifetime (a caller's mistake).
    """
    if not _is_b64token(access_token):
        raise ValueError("access_token must be a non-empty b64token (RFC 6750 s2.1)")
    if type(expires_in) is not int or expires_in <= 0:
        raise ValueError("expires_in must be a positive integer")
    return {"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in}


def nonce_response(c_nonce: str) -> dict[str, str]:
    """A Nonce Response (7.2); serve it with :data:`NO_STORE`. Raises ``ValueError`` for an empty nonce."""
    if not isinstance(c_nonce, str) or not c_nonce:
        raise ValueError("c_nonce must be a non-empty string")
    return {"c_nonce": c_nonce}


# --------------------------------------------------------------------------------------------------
# Appendix F.1 key proofs


@dataclass(frozen=True, slots=True)
class ProofResult:
    """A verified key proof: the holder key (public JWK members only) to bind the credential to."""

    holder_jwk: Mapping[str, str]
    nonce: str
    iat: int | float
    holder_thumbprint: str


def make_proof(
    signer: Signer,
    *,
    audience: str,
    nonce: str | None,
    iat: int,
    issuer: str | None = None,
) -> str:
    """A ``jwt`` key proof (F.1) signed by the holder key, with that key's public JWK in the header.

    ``issuer`` is the ``client_id`` (omit it for anonymous pre-authorized access); ``nonce`` the
    ``c_nonce`` from the nonce endpoint (``None`` only for an issuer without one).
    """
    payload: dict[str, Any] = {}
    if issuer is not None:
        payload["iss"] = issuer
    payload["aud"] = audience
    payload["iat"] = iat
    if nonce is not None:
        payload["nonce"] = nonce
    # F.1: kid "MUST NOT be present if jwk or x5c is present", hence include_kid=False.
    return jws.sign(payload, signer, typ=PROOF_TYP, header={"jwk": dict(signer.public_jwk)}, include_kid=False)


def verify_proof(
    jwt: Any,
    *,
    audience: str,
    now: Timestamp,
    max_age: int = 300,
    skew: int = 60,
    accepted_algs: Collection[str] = jws.ALLOWED_ALGS,
    client_id: str | None = None,
) -> ProofResult:
    """Verify a ``jwt`` key proof (F.1, F.4) and return the holder key and the nonce it carries.

    Raises ``InvalidProof`` for: a malformed JWS; ``typ`` not ``openid4vci-proof+jwt``; an ``alg``
    not in ``accepted_algs`` (never ``none`` nor an HMAC); not exactly one of ``jwk``/``kid``/``x5c``
    or a ``kid``/``x5c`` key (only ``jwk`` is supported); a ``jwk`` with private members or unusable;
    a bad signature; ``aud`` not ``audience``; ``iat`` missing, older than ``max_age`` or later than
    ``now + skew``; ``iss`` present for anonymous access or not ``client_id``; no ``nonce``.
    Checking that the nonce was issued here and is unused is the caller's: raise :class:`InvalidNonce`.
    """
    try:
        parsed = jws.parse(jwt, max_bytes=MAX_PROOF_CHARS)
    except CredentialError as exc:
        raise InvalidProof(f"the key proof is not a compact JWS: {exc.detail}") from exc
    header, payload = parsed.header, parsed.payload
    # F.4: "the key proof is explicitly typed using header parameters as defined for that proof type".
    if header.get("typ") != PROOF_TYP:
        raise InvalidProof(f"key proof typ {_show(header.get('typ'))} is not {PROOF_TYP}")
    # F.1: alg "MUST NOT be none or an identifier for a symmetric algorithm (MAC)"; jws.ALLOWED_ALGS
    # holds neither, and the intersection keeps it so whatever the caller passes.
    algs = frozenset(accepted_algs) & jws.ALLOWED_ALGS
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algs:
        raise InvalidProof(f"key proof alg {_show(alg)} is not one of {sorted(algs)}")
    present = [name for name in _KEY_HEADERS if name in header]
    if len(present) != 1:
        # F.1: each of kid, jwk, x5c "MUST NOT be present if" one of the others is present.
        raise InvalidProof(f"the key proof header needs exactly one of jwk, kid, x5c; found {present or 'none'}")
    if present[0] != "jwk":
        raise InvalidProof(f"key proofs with {present[0]} are not supported; send the public key as jwk")
    jwk = header["jwk"]
    if not isinstance(jwk, Mapping):
        raise InvalidProof("the key proof's jwk header must be a JSON object")
    try:
        # F.4: "the header parameter does not contain a private key" (load_public_jwk refuses d, ...).
        key = jws.public_key_from_jwk(jwk, alg=alg)
        # F.4: "the signature on the key proof verifies with the public key contained in the header".
        jws.verify_parsed(parsed, key, typ=PROOF_TYP, algorithms=algs)
    except CredentialError as exc:
        raise InvalidProof(f"key proof rejected: {exc.detail}") from exc
    aud = payload.get("aud")
    if aud != audience:
        # F.1: aud "REQUIRED (string). The value of this claim MUST be the Credential Issuer Identifier."
        raise InvalidProof(f"key proof aud {_show(aud)} is not this credential issuer")
    iat = payload.get("iat")
    # F.1: iat "REQUIRED (number)". JSON's 1e999 decodes to an infinite float: refused too.
    if type(iat) not in (int, float) or (type(iat) is float and not math.isfinite(iat)):
        raise InvalidProof("the key proof has no iat (a NumericDate)")
    t = seconds(now)
    # F.4: "the creation time of the JWT ... is within an acceptable window". No arithmetic on iat
    # in the messages: an integer beyond float range would overflow.
    if iat > t + skew:
        raise InvalidProof(f"the key proof's iat {_show(iat, 24)} is more than {skew} s in the future")
    if iat < t - max_age:
        raise InvalidProof(f"the key proof's iat {_show(iat, 24)} is more than {max_age} s old")
    iss = payload.get("iss")
    if client_id is None and "iss" in payload:
        # F.1: iss "MUST be omitted if the access token ... was obtained from a Pre-Authorized Code
        # Flow through anonymous access to the token endpoint."
        raise InvalidProof("the key proof has iss, which must be omitted for anonymous pre-authorized access")
    if client_id is not None and iss is not None and iss != client_id:
        # F.1: iss "MUST be the client_id of the Client making the Credential request".
        raise InvalidProof("the key proof's iss is not the client_id")
    nonce = payload.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        # F.1: nonce "MUST be present when the issuer has a Nonce Endpoint"; 8.3.1.2: invalid_proof
        # "if at least one of the key proofs does not contain a c_nonce value".
        raise InvalidProof("the key proof has no nonce (get a c_nonce from the nonce endpoint)")
    holder = public_jwk(key)
    return ProofResult(holder_jwk=holder, nonce=nonce, iat=iat, holder_thumbprint=thumbprint(holder))


# --------------------------------------------------------------------------------------------------
# 8 Credential Endpoint


@dataclass(frozen=True, slots=True)
class CredentialRequest:
    """A parsed Credential Request (8.2): the configuration and the ``jwt`` key proofs, not yet verified."""

    configuration_id: str
    proofs: tuple[str, ...]
    credential_identifier: str | None = None


def _is_b64token(value: Any) -> bool:
    # RFC 6750 s2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
    if not isinstance(value, str):
        return False
    body = value.rstrip("=")
    return bool(body) and set(body) <= _B64TOKEN


def parse_bearer_token(authorization: Any) -> str:
    """The access token of an ``Authorization: Bearer <token>`` header (RFC 6750 s2.1).

    Raises ``InvalidToken`` (HTTP 401) for a missing header, another scheme or a token that is not a
    b64token. Whether the token is one the server issued, unused and unexpired is the caller's check.
    """
    if not isinstance(authorization, str) or not authorization:
        raise InvalidToken("the request has no access token (Authorization: Bearer ...)")
    scheme, _, token = authorization.partition(" ")
    # RFC 6750 s2.1: credentials = "Bearer" 1*SP b64token; b64token = 1*( ALPHA / DIGIT / "-" /
    # "." / "_" / "~" / "+" / "/" ) *"="; the scheme name is case-insensitive (RFC 9110 s11.1).
    token = token.strip(" ")
    if scheme.lower() != "bearer" or not token or len(token) > MAX_PARAM_CHARS:
        raise InvalidToken("the Authorization header is not 'Bearer <token>'")
    if not _is_b64token(token):
        raise InvalidToken("the access token is not a b64token")
    return token


def parse_credential_request(
    body: Any,
    *,
    configurations: Container[str],
    identifiers: Mapping[str, str] | None = None,
    max_proofs: int = MAX_PROOFS,
) -> CredentialRequest:
    """Validate a Credential Request body (decoded JSON) against the known configuration ids.

    ``identifiers`` maps the ``credential_identifier`` values the token response granted to their
    configuration ids (none by default). Raises ``InvalidCredentialRequest`` (not an object; both
    or neither of ``credential_configuration_id`` / ``credential_identifier``; more than
    ``max_proofs`` proofs), ``UnknownCredentialConfiguration``, ``UnknownCredentialIdentifier``,
    ``InvalidEncryptionParameters`` (``credential_response_encryption`` sent) and ``InvalidProof``
    (``proofs`` missing or not ``{"jwt": [non-empty strings]}``). Unknown members are ignored.
    """
    if not isinstance(body, Mapping):
        raise InvalidCredentialRequest("the credential request must be a JSON object")
    has_cid, has_ident = "credential_configuration_id" in body, "credential_identifier" in body
    if has_cid and has_ident:
        # 8.2: "When this parameter is used, the credential_configuration_id MUST NOT be present."
        raise InvalidCredentialRequest("send credential_configuration_id or credential_identifier, not both")
    if not has_cid and not has_ident:
        raise InvalidCredentialRequest("credential_configuration_id is missing")
    ident: str | None = None
    if has_ident:
        ident = _text(body["credential_identifier"], "credential_identifier", InvalidCredentialRequest)
        if identifiers is None or ident not in identifiers:
            raise UnknownCredentialIdentifier(f"credential_identifier {_show(ident)} is unknown")
        cid = identifiers[ident]
        if cid not in configurations:
            raise UnknownCredentialConfiguration(f"credential configuration {_show(cid)} is unknown")
    else:
        cid = _text(body["credential_configuration_id"], "credential_configuration_id", InvalidCredentialRequest)
        if cid not in configurations:
            raise UnknownCredentialConfiguration(f"credential configuration {_show(cid)} is unknown")
    if "credential_response_encryption" in body:
        raise InvalidEncryptionParameters("credential response encryption is not supported by this issuer")
    if "proofs" not in body:
        if "proof" in body:
            raise InvalidProof(
                "proofs is missing; the singular proof parameter is not part of OpenID4VCI 1.0,"
                " send proofs: {jwt: [...]}"
            )
        # 8.3.1.2: invalid_proof "if the field is missing".
        raise InvalidProof("proofs is missing")
    proofs = body["proofs"]
    # 8.2: proofs "contains exactly one parameter named as the proof type ... the value set for
    # this parameter is a non-empty array".
    if not isinstance(proofs, Mapping) or len(proofs) != 1:
        raise InvalidProof("proofs must be an object with exactly one proof type")
    if "jwt" not in proofs:
        raise InvalidProof(f"proof type {_show(next(iter(proofs)))} is not supported; use jwt")
    jwts = proofs["jwt"]
    if type(jwts) is not list or not jwts:
        raise InvalidProof("proofs.jwt must be a non-empty array of JWTs")
    if len(jwts) > max_proofs:
        raise InvalidCredentialRequest(f"at most {max_proofs} proof(s) per request: no batch issuance")
    for proof in jwts:
        _text(proof, "a proof JWT", InvalidProof, MAX_PROOF_CHARS)
    return CredentialRequest(cid, tuple(jwts), ident)


def credential_response(credentials: Sequence[str]) -> dict[str, Any]:
    """A Credential Response (8.3): ``{"credentials": [{"credential": c}, ...]}``; serve with :data:`NO_STORE`.

    A.3.4: an SD-JWT VC is sent as is ("MUST NOT be re-encoded"). Raises ``ValueError`` for an
    empty list or a non-string credential.
    """
    if isinstance(credentials, str) or not credentials:
        raise ValueError("credentials must be a non-empty list of strings")
    if not all(isinstance(c, str) and c for c in credentials):
        raise ValueError("every credential must be a non-empty string")
    return {"credentials": [{"credential": c} for c in credentials]}


# --------------------------------------------------------------------------------------------------
# 12.2 Credential Issuer Metadata, 12.3 / RFC 8414 Authorization Server Metadata


def _display_list(entries: Any, what: str, *, name_key: str = "name") -> tuple[Mapping[str, Any], ...]:
    if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
        raise Malformed(f"{what} must be a list of display objects")
    out: list[Mapping[str, Any]] = []
    seen: set[Any] = set()
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get(name_key), str) or not entry[name_key]:
            raise Malformed(f"each {what} entry needs a non-empty {name_key}")
        locale = entry.get("locale")
        if locale is not None and not isinstance(locale, str):
            raise Malformed(f"{what} locale must be a string")
        if locale in seen:
            # 12.2.4: "There MUST be only one object for each language identifier."
            raise Malformed(f"{what} has two entries for locale {locale!r}")
        seen.add(locale)
        out.append(dict(entry))
    return tuple(out)


def _claims_list(entries: Any) -> tuple[Mapping[str, Any], ...]:
    if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
        raise Malformed("claims must be a list of claims description objects")
    out: list[Mapping[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for entry in entries:
        path = entry.get("path") if isinstance(entry, Mapping) else None
        # Appendix B.2: path "MUST be a non-empty array representing a claims path pointer"
        # (Appendix C: strings, nulls and non-negative integers).
        if (
            type(path) not in (list, tuple)
            or not path
            or not all(p is None or isinstance(p, str) or (type(p) is int and p >= 0) for p in path)
        ):
            raise Malformed(f"claims description path {path!r} is not a claims path pointer")
        key = tuple(path)
        if key in seen:
            # Appendix B.3: "When a repeated or contradictory claim description is provided, the
            # processing MUST be aborted."
            raise Malformed(f"claims description path {list(key)!r} is repeated")
        seen.add(key)
        if "display" in entry:
            _display_list(entry["display"], f"claim {list(key)!r} display")
        if "mandatory" in entry and type(entry["mandatory"]) is not bool:
            raise Malformed("claims description mandatory must be a boolean")
        out.append({**entry, "path": list(path)})
    return tuple(out)


def _algs(values: Any, what: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise Malformed(f"{what} must be a list of algorithm names")
    algs = tuple(values)
    if not algs or not set(algs) <= jws.ALLOWED_ALGS or len(set(algs)) != len(algs):
        raise Malformed(f"{what} must be a non-empty list of distinct algorithms from {sorted(jws.ALLOWED_ALGS)}")
    return algs


@dataclass(frozen=True, slots=True)
class CredentialConfiguration:
    """One entry of ``credential_configurations_supported`` for format ``dc+sd-jwt`` (12.2.4, A.3.2).

    ``display``: display objects (``name``, ``locale``, ``description``, ``background_color``, ...);
    ``claims``: claims description objects (``path``, ``display`` with ``name``/``locale``,
    ``mandatory``). Raises ``Malformed`` for an empty id or ``vct``, algorithms outside the allow-list,
    a display without ``name`` or with a repeated locale, a bad or repeated claim path.
    """

    id: str
    vct: str
    display: tuple[Mapping[str, Any], ...] = ()
    claims: tuple[Mapping[str, Any], ...] = ()
    signing_algs: tuple[str, ...] = ("ES256",)
    proof_algs: tuple[str, ...] = ("ES256", "EdDSA")
    scope: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise Malformed("a credential configuration id must be a non-empty string")
        # A.3.2: vct "REQUIRED. String designating the type of the Credential".
        if not isinstance(self.vct, str) or not self.vct:
            raise Malformed("vct must be a non-empty string")
        if self.scope is not None and (not isinstance(self.scope, str) or not self.scope):
            raise Malformed("scope must be a non-empty string")
        object.__setattr__(self, "display", _display_list(self.display, "display"))
        object.__setattr__(self, "claims", _claims_list(self.claims))
        object.__setattr__(self, "signing_algs", _algs(self.signing_algs, "signing_algs"))
        object.__setattr__(self, "proof_algs", _algs(self.proof_algs, "proof_algs"))

    def to_json(self) -> dict[str, Any]:
        """The configuration object, as the value under its id in ``credential_configurations_supported``."""
        out: dict[str, Any] = {"format": FORMAT}
        if self.scope is not None:
            out["scope"] = self.scope
        out["vct"] = self.vct
        # 12.2.4: cryptographic_binding_methods_supported "MUST be present when Cryptographic Key
        # Binding is required for a Credential"; proof_types_supported "MUST be present if
        # cryptographic_binding_methods_supported is present".
        out["cryptographic_binding_methods_supported"] = ["jwk"]
        out["credential_signing_alg_values_supported"] = list(self.signing_algs)
        out["proof_types_supported"] = {"jwt": {"proof_signing_alg_values_supported": list(self.proof_algs)}}
        metadata: dict[str, Any] = {}
        if self.display:
            metadata["display"] = [dict(d) for d in self.display]
        if self.claims:
            metadata["claims"] = [{**c, "path": list(c["path"])} for c in self.claims]
        if metadata:
            out["credential_metadata"] = metadata
        return out


_LOCALES = ("zh-CN", "en")


def configuration_for_type(
    credential_type: Any,
    *,
    configuration_id: str | None = None,
    signing_algs: Sequence[str] = ("ES256",),
    proof_algs: Sequence[str] = ("ES256", "EdDSA"),
) -> CredentialConfiguration:
    """A :class:`CredentialConfiguration` from a ``schemas.CredentialType`` (``schemas.get_type(...)``).

    Id: the type's slug unless given. Display: the type's names in zh-CN and en, with the
    description and colours of its type metadata; claims: every claim path with its zh-CN and en
    labels, ``mandatory`` for the schema's required claims. Raises ``Malformed`` like the class.
    """
    rendering: dict[str, Mapping[str, Any]] = {}
    for entry in credential_type.metadata.get("display", ()):
        if isinstance(entry, Mapping) and isinstance(entry.get("locale"), str):
            rendering[entry["locale"]] = entry
    display = []
    for locale in _LOCALES:
        item: dict[str, Any] = {"name": credential_type.display_name(locale), "locale": locale}
        meta = rendering.get(locale, {})
        if isinstance(meta.get("description"), str):
            item["description"] = meta["description"]
        rendering_obj = meta.get("rendering")
        simple = rendering_obj.get("simple") if isinstance(rendering_obj, Mapping) else None
        simple = simple if isinstance(simple, Mapping) else {}
        for member in ("background_color", "text_color"):
            if isinstance(simple.get(member), str):
                item[member] = simple[member]
        display.append(item)
    mandatory = set(credential_type.mandatory_paths)
    claims = []
    for path in credential_type.claim_paths:
        claim: dict[str, Any] = {
            "path": list(path),
            "display": [{"name": credential_type.label(path, locale), "locale": locale} for locale in _LOCALES],
        }
        if path in mandatory:
            # B.2: mandatory "true, indicates that the Credential Issuer will always include this claim".
            claim["mandatory"] = True
        claims.append(claim)
    return CredentialConfiguration(
        id=configuration_id if configuration_id is not None else credential_type.slug,
        vct=credential_type.vct,
        display=tuple(display),
        claims=tuple(claims),
        signing_algs=tuple(signing_algs),
        proof_algs=tuple(proof_algs),
    )


def issuer_metadata(
    *,
    credential_issuer: str,
    credential_endpoint: str,
    nonce_endpoint: str,
    display: Mapping[str, str],
    configurations: Sequence[CredentialConfiguration],
    authorization_servers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The Credential Issuer Metadata document (12.2.4), unsigned, served at :func:`well_known_url`.

    ``display`` maps a locale (``zh-CN``, ``en``) to the issuer's name. Without
    ``authorization_servers`` the issuer is its own authorization server. Raises ``Malformed`` for a
    bad identifier or endpoint URL, an empty or repeated configuration id, or an empty name.
    """
    issuer = check_issuer_identifier(credential_issuer)
    # 12.2.4: credential_endpoint / nonce_endpoint "MUST use the https scheme and MAY contain port,
    # path, and query parameter components".
    out: dict[str, Any] = {"credential_issuer": issuer}
    if authorization_servers is not None:
        servers = [check_issuer_identifier(s) for s in authorization_servers]
        if not servers:
            raise Malformed("authorization_servers must be a non-empty array when present")
        out["authorization_servers"] = servers
    out["credential_endpoint"] = check_url(credential_endpoint, what="credential_endpoint")
    out["nonce_endpoint"] = check_url(nonce_endpoint, what="nonce_endpoint")
    if not isinstance(display, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in display.items()
    ):
        raise Malformed("display must map locales to non-empty names")
    if display:
        out["display"] = [{"name": name, "locale": locale} for locale, name in display.items()]
    if not configurations:
        raise Malformed("at least one credential configuration is needed")
    supported: dict[str, Any] = {}
    for config in configurations:
        if not isinstance(config, CredentialConfiguration):
            raise Malformed("configurations must be CredentialConfiguration values")
        if config.id in supported:
            raise Malformed(f"credential configuration id {config.id!r} is repeated")
        supported[config.id] = config.to_json()
    out["credential_configurations_supported"] = supported
    return out


def authorization_server_metadata(*, issuer: str, token_endpoint: str) -> dict[str, Any]:
    """OAuth 2.0 Authorization Server Metadata (RFC 8414 s2, OpenID4VCI 12.3) for the pre-authorized flow.

    Anonymous access is declared (``pre-authorized_grant_anonymous_access_supported``) and no client
    authentication (``none``); ``response_types_supported`` is left out, as 12.2.4 allows "An
    Authorization Server that only supports the Pre-Authorized Code grant type". Raises ``Malformed``.
    """
    return {
        # RFC 8414 s3.3: "The issuer value returned MUST be identical to the authorization server's
        # issuer identifier value into which the well-known URI string was inserted".
        "issuer": check_issuer_identifier(issuer),
        "token_endpoint": check_url(token_endpoint, what="token_endpoint"),
        "grant_types_supported": [PRE_AUTHORIZED_GRANT],
        "token_endpoint_auth_methods_supported": ["none"],
        "pre-authorized_grant_anonymous_access_supported": True,
    }


def well_known_url(identifier: str, suffix: str) -> str:
    """``/.well-known/<suffix>`` inserted between host and path of ``identifier`` (12.2.2, RFC 8414 s3.1).

    E.g. ``well_known_url("https://issuer.example.com/tenant", ISSUER_WELL_KNOWN)`` is
    ``https://issuer.example.com/.well-known/openid-credential-issuer/tenant``. The rule is
    :func:`credentials.sd_jwt_vc.well_known_url`'s; raises ``Malformed`` like it.
    """
    return _insert_well_known(identifier, suffix)

