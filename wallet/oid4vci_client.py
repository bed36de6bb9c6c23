"""The wallet side of OpenID for Verifiable Credential Issuance 1.0 (final), Pre-Authorized Code Flow.

:func:`receive` takes a Credential Offer as the holder received it (the ``openid-credential-offer://``
deep link, or a QR image of it) and the Transaction Code (PIN) the authority delivered out of band,
runs the protocol against the issuer and returns the credential only after verifying it:

1. Offer (4.1): by value, or by reference (``credential_offer_uri``, fetched with ``GET``, 4.1.3).
2. Trust, before anything is sent to the issuer: the Credential Issuer must be on the trust list and
   allowed to issue the offered ``vct``, and the type must be known to the schema registry; the PIN
   is never spent on an issuer the wallet would refuse anyway.
3. Credential Issuer Metadata (12.2.2, well-known path insertion), Authorization Server Metadata
   (RFC 8414 s3, OpenID4VCI 12.3) for the token endpoint.
4. Token Request (6.1, form-encoded ``pre-authorized_code`` and ``tx_code``), Nonce Request (7),
   key proof (Appendix F.1, ``openid4vci-proof+jwt``, ``aud`` the issuer, no ``iss``: anonymous
   access), Credential Request (8.2) with the Bearer access token.
5. Verification (SD-JWT VC s3.4 with :func:`credentials.sd_jwt_vc.verify_vc`): signature with the
   issuer's key *from the trust list* (never from the issuer's own endpoints), ``iss`` equal to the
   offer's Credential Issuer, ``vct`` the configuration's and known to the registry, the claims valid
   for the type, every Disclosure valid, not expired, and ``cnf.jwk`` the holder's key (RFC 7638
   thumbprints compared).

HTTP is a port: the caller passes an ``httpx.Client`` (tests: Starlette's ``TestClient`` over the
issuer app; production: :func:`http_client`). Every request is sent with ``follow_redirects=False``,
its body read up to ``max_response_bytes``, and only ``https`` URLs are contacted unless
``allow_http`` (then ``http`` on a loopback host only, the rule of
:func:`credentials.sd_jwt_vc.check_url`).

Errors: every failure is a :class:`ReceiveError` (a ``credentials.errors.CredentialError``) with a
stable ``code``::

    ReceiveError                  receive_failed
    ├── OfferInvalid              offer_invalid            not a usable offer (link, QR, JSON)
    ├── OfferUnavailable          offer_unavailable        expired, used, withdrawn or exhausted offer
    ├── TxCodeInvalid             tx_code_invalid          wrong PIN (``attempts_left`` when the issuer says)
    │   └── TxCodeRequired        tx_code_required         the offer needs a PIN and none was given
    ├── IssuerUnreachable         issuer_unreachable       network failure, timeout, HTTP 5xx
    ├── IssuerResponseInvalid     issuer_response_invalid  garbage: not JSON, wrong type, too big, redirect
    ├── IssuanceRefused           issuance_refused         another OpenID4VCI error (``issuer_error`` kept)
    ├── IssuerNotTrusted          issuer_not_trusted       not on the trust list, or not for this vct
    ├── TrustListExpired          trust_list_expired       the trust list given is past its exp
    ├── CredentialTypeUnknown     credential_type_unknown  the vct is not in the schema registry
    ├── HolderKeyUnsupported      holder_key_unsupported   the issuer takes no proofs with this key's alg
    ├── CredentialInvalid         credential_invalid       verification failed (``credential_code`` kept)
    └── CredentialWrongHolder     credential_wrong_holder  bound to another key, or to none

Choices where the specification leaves room, with the reason:

* ``invalid_grant`` (6.3) covers both a wrong Transaction Code and a bad, expired or used code. It is
  reported as ``tx_code_invalid`` when a Transaction Code was sent and the issuer's
  ``error_description`` speaks of it (and not of the offer being expired, used or exhausted), else
  as ``offer_unavailable``. The description is free text, so this is a heuristic; the OpenID4VCI
  ``error`` itself is kept on every such error (``issuer_error``).
* A PIN that cannot be right by the offer's own ``tx_code`` description (``length``, ``input_mode``
  ``numeric``) is refused here, without spending one of the issuer's attempts.
* A PIN given for an offer that asks for none is not sent (6.1: ``tx_code`` "MUST NOT be used
  otherwise").
* A ``credential_offer_uri`` is fetched only from the origin of an issuer on the trust list: the
  offer comes from a scanned picture, and a backend that fetches any URL it is shown can be steered
  at internal hosts.
* One retry on ``invalid_nonce`` with a fresh ``c_nonce`` (8.3.1.2 tells the wallet to do so).
* Deferred issuance (HTTP 202 with ``transaction_id``), encrypted responses and the Authorization
  Code Flow are not supported: an issuer that answers that way gets ``issuer_response_invalid``.
* Redirects are never followed (RFC 8414 s3, 12.2.2 name exact metadata URLs; a redirect to
  another host would leak the access token or the PIN there).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from credentials import jws
from credentials import openid4vci as o4
from credentials import qr
from credentials.errors import (
    CredentialError,
    IssuerNotAuthorizedForType,
    TrustError,
    UntrustedIssuer,
)
from credentials.sd_jwt_vc import StatusReference, check_url, verify_vc
from credentials.trust import TrustList
from keys.errors import KeyMaterialError
from keys.jwk import thumbprint
from keys.signer import Signer
from schemas.errors import CredentialTypeError, UnknownCredentialType
from schemas.registry import TypeRegistry, default_registry

__all__ = [
    "MAX_RESPONSE_BYTES",
    "ReceiveError",
    "OfferInvalid",
    "OfferUnavailable",
    "TxCodeInvalid",
    "TxCodeRequired",
    "IssuerUnreachable",
    "IssuerResponseInvalid",
    "IssuanceRefused",
    "IssuerNotTrusted",
    "TrustListExpired",
    "CredentialTypeUnknown",
    "HolderKeyUnsupported",
    "CredentialInvalid",
    "CredentialWrongHolder",
    "Received",
    "receive",
    "http_client",
]

#: Largest response body read from an issuer (metadata with display data and a credential are a few KiB).
MAX_RESPONSE_BYTES = 256 * 1024
_JSON = "application/json"
_DESCRIPTION_CHARS = 300
#: Longest PIN, access token or nonce taken (the protocol core's parameter bound).
_MAX_TEXT = 2048


# --------------------------------------------------------------------------------------------------
# Errors


class ReceiveError(CredentialError):
    """Root of the wallet's receive errors; ``issuer_error`` is the OpenID4VCI ``error`` behind it, if any."""

    code = "receive_failed"
    #: The status a wallet API answers with: 4xx for the holder's input, 502/504 for the issuer's fault.
    http_status: ClassVar[int] = 502
    description = "The credential could not be received."
    description_zh = "未能领取该证照。"

    def __init__(self, detail: str | None = None, *, issuer_error: str | None = None) -> None:
        super().__init__(detail)
        self.issuer_error = issuer_error


class OfferInvalid(ReceiveError):
    """The link, QR image or offer document is not a usable Credential Offer."""

    code = "offer_invalid"
    http_status = 400
    description = "This is not a valid credential offer."
    description_zh = "这不是有效的证照领取码。"


class OfferUnavailable(ReceiveError):
    """The offer is expired, already used, withdrawn, or locked after too many wrong PINs."""

    code = "offer_unavailable"
    http_status = 410
    description = "The credential offer has expired or was already used; ask the authority for a new one."
    description_zh = "领取码已过期或已被使用，请向发证机关重新申请。"


class TxCodeInvalid(ReceiveError):
    """The Transaction Code (PIN) is wrong; ``attempts_left`` when the issuer said how many remain."""

    code = "tx_code_invalid"
    http_status = 400
    description = "The PIN is wrong."
    description_zh = "领取密码错误。"

    def __init__(
        self, detail: str | None = None, *, issuer_error: str | None = None, attempts_left: int | None = None
    ) -> None:
        super().__init__(detail, issuer_error=issuer_error)
        self.attempts_left = attempts_left


class TxCodeRequired(TxCodeInvalid):
    """The offer requires a Transaction Code (PIN) and none was given."""

    code = "tx_code_required"
    http_status = 400
    description = "This offer needs the PIN the authority sent you."
    description_zh = "领取该证照需要发证机关提供的领取密码。"


class IssuerUnreachable(ReceiveError):
    """The issuer could not be reached, timed out, or failed (HTTP 5xx): worth trying again later."""

    code = "issuer_unreachable"
    http_status = 504
    description = "The issuer cannot be reached; try again later."
    description_zh = "无法连接发证机关，请稍后重试。"


class IssuerResponseInvalid(ReceiveError):
    """The issuer answered something this wallet cannot use (not JSON, wrong type, too large, a redirect)."""

    code = "issuer_response_invalid"
    http_status = 502
    description = "The issuer's answer is not a valid OpenID4VCI response."
    description_zh = "发证机关的响应无效。"


class IssuanceRefused(ReceiveError):
    """The issuer refused with an OpenID4VCI / OAuth error not mapped to a more precise code."""

    code = "issuance_refused"
    http_status = 502
    description = "The issuer refused to issue the credential."
    description_zh = "发证机关拒绝签发该证照。"


class IssuerNotTrusted(ReceiveError):
    """The issuer is not on the trust list (``reason`` ``untrusted_issuer``) or not for this type
    (``issuer_not_authorized_for_type``)."""

    code = "issuer_not_trusted"
    http_status = 403
    description = "The issuer is not trusted to issue this credential."
    description_zh = "该发证机关不在信任列表中，或无权签发此类证照。"

    def __init__(self, detail: str | None = None, *, reason: str = "untrusted_issuer") -> None:
        super().__init__(detail)
        self.reason = reason


class TrustListExpired(ReceiveError):
    """The trust list passed in is past its ``exp``: nothing can be verified with it (fail closed)."""

    code = "trust_list_expired"
    http_status = 503
    description = "The trust list has expired; refresh it and try again."
    description_zh = "信任列表已过期，请更新后重试。"


class CredentialTypeUnknown(ReceiveError):
    """The credential type (``vct``) is not in the wallet's schema registry."""

    code = "credential_type_unknown"
    http_status = 422
    description = "The credential type is not known to this wallet."
    description_zh = "本钱包不支持该证照类型。"


class HolderKeyUnsupported(ReceiveError):
    """The issuer accepts no key proofs signed with the holder key's algorithm."""

    code = "holder_key_unsupported"
    http_status = 422
    description = "The issuer does not accept this wallet key's algorithm."
    description_zh = "发证机关不支持本钱包密钥的算法。"


class CredentialInvalid(ReceiveError):
    """The credential failed verification; ``credential_code`` is the ``CredentialError`` code behind it."""

    code = "credential_invalid"
    http_status = 502
    description = "The issued credential failed verification and was not stored."
    description_zh = "签发的证照未通过校验，未予保存。"

    def __init__(self, detail: str | None = None, *, credential_code: str) -> None:
        super().__init__(detail)
        self.credential_code = credential_code


class CredentialWrongHolder(ReceiveError):
    """The credential is bound (``cnf.jwk``) to another key than the holder's, or to none."""

    code = "credential_wrong_holder"
    http_status = 502
    description = "The issued credential is not bound to this wallet's key."
    description_zh = "签发的证照未绑定本钱包的密钥。"


# --------------------------------------------------------------------------------------------------
# Result


@dataclass(frozen=True, slots=True)
class Received:
    """A received and verified credential, ready to store. ``claims``: every claim, all disclosed."""

    credential: str
    issuer: str
    vct: str
    configuration_id: str
    claims: Mapping[str, Any]
    holder_kid: str
    issuer_kid: str | None
    issued_at: int | float | None
    expires_at: int | float
    status: StatusReference | None


# --------------------------------------------------------------------------------------------------
# HTTP


def http_client(*, timeout: float = 10.0) -> httpx.Client:
    """A production ``httpx.Client`` for :func:`receive`: ``timeout`` seconds per phase, redirects not followed."""
    return httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False)


def _clean(text: Any, limit: int = _DESCRIPTION_CHARS) -> str:
    """An untrusted string from the issuer, shortened and with control characters replaced, for a message."""
    if not isinstance(text, str):
        return ""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit])


def _media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _check_target(url: Any, *, what: str, allow_http: bool, error: type[ReceiveError]) -> str:
    try:
        check_url(url, what=what)
    except CredentialError as exc:
        raise error(exc.detail) from exc
    if not allow_http and not url.startswith("https://"):
        raise error(f"{what} {url[:200]!r} is not https (http is allowed only with allow_http, on loopback)")
    return url


@dataclass(frozen=True, slots=True)
class _Http:
    """The injected client with this receipt's limits."""

    client: httpx.Client
    allow_http: bool
    max_bytes: int

    def call(self, method: str, url: str, *, what: str, **kwargs: Any) -> tuple[int, Any, httpx.Response]:
        """Send one request; returns ``(status, decoded JSON, response)`` for a JSON answer below 500.

        Raises ``IssuerUnreachable`` (transport failure, timeout, 5xx) and ``IssuerResponseInvalid``
        (redirect, oversize body, not ``application/json``, not JSON).
        """
        _check_target(url, what=what, allow_http=self.allow_http, error=IssuerResponseInvalid)
        headers = {"Accept": _JSON, **kwargs.pop("headers", {})}
        try:
            with self.client.stream(method, url, headers=headers, follow_redirects=False, **kwargs) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise IssuerResponseInvalid(
                        f"{what}: the response declares {declared} bytes, over {self.max_bytes}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise IssuerResponseInvalid(f"{what}: the response is larger than {self.max_bytes} bytes")
        except httpx.TimeoutException as exc:
            raise IssuerUnreachable(f"{what}: the issuer did not answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise IssuerUnreachable(f"{what}: cannot reach {urlsplit(url).netloc}: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:  # decoding errors, invalid URLs, stream errors
            raise IssuerResponseInvalid(f"{what}: {type(exc).__name__}: {_clean(str(exc))}") from exc
        status = response.status_code
        if 300 <= status < 400:
            # Never followed: a redirect elsewhere would carry the PIN or the access token there.
            raise IssuerResponseInvalid(f"{what}: the issuer answered HTTP {status} (a redirect, not followed)")
        if status >= 500:
            raise IssuerUnreachable(f"{what}: the issuer failed with HTTP {status}")
        if _media_type(response) != _JSON:
            challenge = _bearer_error(response) if status == 401 else None
            if challenge is not None:
                return status, {"error": challenge}, response
            shown = _media_type(response) or "no content type"
            raise IssuerResponseInvalid(f"{what}: HTTP {status} with {shown}, not {_JSON}")
        try:
            data = jws.loads(bytes(body))
        except CredentialError as exc:
            raise IssuerResponseInvalid(f"{what}: the body is not JSON ({exc.detail[:120]})") from exc
        return status, data, response

    def json_object(self, method: str, url: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        """A successful (2xx) JSON object answer; an OpenID4VCI error answer raises :func:`_refused`."""
        status, data, _ = self.call(method, url, what=what, **kwargs)
        if status >= 400:
            raise _refused(status, data, what=what)
        if status != 200 or type(data) is not dict:
            raise IssuerResponseInvalid(f"{what}: expected HTTP 200 with a JSON object, got HTTP {status}")
        return data


_BEARER_ERROR = re.compile(r'error="([\x20-\x21\x23-\x5b\x5d-\x7e]{1,64})"')


def _bearer_error(response: httpx.Response) -> str | None:
    # RFC 6750 s3: a 401 may carry the error only in "WWW-Authenticate: Bearer error=...".
    header = response.headers.get("www-authenticate", "")
    found = _BEARER_ERROR.search(header) if header.lower().startswith("bearer") else None
    return found.group(1) if found else None


def _refused(status: int, data: Any, *, what: str) -> ReceiveError:
    """The error for a 4xx answer: ``IssuanceRefused`` with the issuer's ``error``, or garbage."""
    error = data.get("error") if type(data) is dict else None
    if not isinstance(error, str) or not error or len(error) > 64:
        return IssuerResponseInvalid(f"{what}: HTTP {status} without an OAuth error object")
    description = _clean(data.get("error_description"))
    refused = IssuanceRefused(
        f"{what}: the issuer answered {_clean(error, 64)}" + (f": {description}" if description else ""),
        issuer_error=error,
    )
    if error in o4.ERRORS:
        # Keep the protocol error as the cause, so a caller can branch on its class too.
        refused.__cause__ = o4.error_for_code(error, description or None)
    return refused


# --------------------------------------------------------------------------------------------------
# Steps


def _read_offer(offer: str | bytes | bytearray) -> o4.CredentialOffer | str:
    if isinstance(offer, (bytes, bytearray)):
        try:
            offer = qr.decode_image(bytes(offer))
        except CredentialError as exc:
            raise OfferInvalid(f"the image holds no readable QR code: {exc.detail}") from exc
    try:
        return o4.parse_offer_uri(offer)
    except o4.OpenId4VciError as exc:
        raise OfferInvalid(exc.description) from exc


def _fetch_offer(http: _Http, uri: str, trust: TrustList) -> o4.CredentialOffer:
    _check_target(uri, what="credential_offer_uri", allow_http=http.allow_http, error=OfferInvalid)
    origin = _origin(uri)
    if not any(_origin(issuer.id) == origin for issuer in trust.issuers):
        raise IssuerNotTrusted(f"the offer is hosted at {origin}, which is no trusted issuer's")
    status, data, _ = http.call("GET", uri, what="credential offer")
    if status in (404, 410):
        # 4.1.3 leaves the error open; this issuer answers 404 once the offer is used or expired.
        raise OfferUnavailable("the issuer no longer has this credential offer (used, withdrawn or expired)")
    if status >= 400:
        raise _refused(status, data, what="credential offer")
    if status != 200:
        raise IssuerResponseInvalid(f"credential offer: HTTP {status}")
    try:
        return o4.parse_offer(data)
    except o4.OpenId4VciError as exc:
        raise OfferInvalid(f"the fetched credential offer is invalid: {exc.description}") from exc


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _check_tx_code(offer: o4.CredentialOffer, tx_code: str | None) -> str | None:
    """The PIN to send (``None`` when the offer asks for none); refuses one that cannot be right."""
    spec = offer.tx_code
    if spec is None:
        return None
    if tx_code is None or tx_code == "":
        raise TxCodeRequired("this offer needs the PIN (transaction code) the authority delivered")
    if not isinstance(tx_code, str) or len(tx_code) > _MAX_TEXT:
        raise TxCodeInvalid("the PIN must be a short string")
    # 4.1.1: input_mode numeric is "only digits"; length is "the length of the Transaction Code".
    if spec.input_mode in (None, "numeric") and not (tx_code.isascii() and tx_code.isdigit()):
        raise TxCodeInvalid("the PIN must be digits only")
    if spec.length is not None and len(tx_code) != spec.length:
        raise TxCodeInvalid(f"the PIN must be {spec.length} characters long")
    return tx_code


@dataclass(frozen=True, slots=True)
class _Configuration:
    id: str
    vct: str
    proof_algs: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class _IssuerMetadata:
    credential_endpoint: str
    nonce_endpoint: str | None
    authorization_server: str
    configuration: _Configuration


def _issuer_metadata(http: _Http, offer: o4.CredentialOffer, configuration_id: str | None) -> _IssuerMetadata:
    issuer = offer.credential_issuer
    meta = http.json_object("GET", o4.well_known_url(issuer, o4.ISSUER_WELL_KNOWN), what="issuer metadata")
    # 12.2.2: "The Credential Issuer Identifier MUST be identical to the credential_issuer value in
    # the metadata"; otherwise the metadata is not this issuer's.
    if meta.get("credential_issuer") != issuer:
        named = _clean(str(meta.get("credential_issuer")), 100)
        raise IssuerResponseInvalid(f"issuer metadata names credential_issuer {named!r}, not {issuer!r}")

    def endpoint(name: str) -> str:
        return _check_target(meta.get(name), what=name, allow_http=http.allow_http, error=IssuerResponseInvalid)

    credential_endpoint = endpoint("credential_endpoint")
    nonce_endpoint = endpoint("nonce_endpoint") if "nonce_endpoint" in meta else None
    servers = meta.get("authorization_servers")
    if servers is None:
        server = issuer  # 12.2.4: omitted, "the Credential Issuer acts as the Authorization Server"
    elif type(servers) is list and servers and all(isinstance(s, str) for s in servers):
        server = servers[0]
    else:
        raise IssuerResponseInvalid("authorization_servers must be a non-empty array of strings")
    supported = meta.get("credential_configurations_supported")
    if type(supported) is not dict:
        raise IssuerResponseInvalid("issuer metadata has no credential_configurations_supported object")
    wanted = offer.credential_configuration_ids
    if configuration_id is not None and configuration_id not in wanted:
        raise OfferInvalid(f"the offer does not include configuration {configuration_id!r}")
    candidates = [configuration_id] if configuration_id is not None else list(wanted)
    for cid in candidates:
        config = supported.get(cid)
        # A.3: format dc+sd-jwt is the only format this wallet stores.
        if type(config) is dict and config.get("format") == o4.FORMAT:
            return _IssuerMetadata(credential_endpoint, nonce_endpoint, server, _configuration(cid, config))
    raise IssuerResponseInvalid(f"the issuer's metadata has no {o4.FORMAT} configuration for {candidates!r}")


def _configuration(cid: str, config: Mapping[str, Any]) -> _Configuration:
    vct = config.get("vct")
    if not isinstance(vct, str) or not vct:
        raise IssuerResponseInvalid(f"configuration {cid!r} has no vct")  # A.3.2: vct REQUIRED
    proof_types = config.get("proof_types_supported")
    algs: tuple[str, ...] | None = None
    if proof_types is not None:
        jwt_type = proof_types.get("jwt") if type(proof_types) is dict else None
        listed = jwt_type.get("proof_signing_alg_values_supported") if type(jwt_type) is dict else None
        if type(listed) is not list or not all(isinstance(a, str) for a in listed):
            raise IssuerResponseInvalid(f"configuration {cid!r} takes no jwt key proofs")
        algs = tuple(listed)
    return _Configuration(cid, vct, algs)


def _token_endpoint(http: _Http, server: str) -> str:
    try:
        url = o4.well_known_url(server, o4.AS_WELL_KNOWN)
    except CredentialError as exc:
        raise IssuerResponseInvalid(f"authorization server {_clean(server, 100)!r}: {exc.detail}") from exc
    meta = http.json_object("GET", url, what="authorization server metadata")
    # RFC 8414 s3.3: "The issuer value returned MUST be identical to the authorization server's
    # issuer identifier value into which the well-known URI string was inserted".
    if meta.get("issuer") != server:
        raise IssuerResponseInvalid("the authorization server metadata names another issuer")
    return _check_target(meta.get("token_endpoint"), what="token_endpoint", allow_http=http.allow_http,
                         error=IssuerResponseInvalid)


_ATTEMPTS = re.compile(r"(\d{1,3}) (?:attempts?|tries|tr(?:y|ies)) (?:left|remaining)", re.IGNORECASE)
_PIN_WORDS = re.compile(r"transaction code|tx_code|\bpin\b", re.IGNORECASE)
_OFFER_GONE = re.compile(r"expired|already used|\bused\b|too many|exhausted|withdrawn|unknown", re.IGNORECASE)


def _token(http: _Http, url: str, offer: o4.CredentialOffer, tx_code: str | None) -> str:
    form = {"grant_type": o4.PRE_AUTHORIZED_GRANT, "pre-authorized_code": offer.pre_authorized_code}
    if tx_code is not None:
        form["tx_code"] = tx_code
    try:
        body = http.json_object("POST", url, what="token request", data=form)
    except IssuanceRefused as exc:
        if exc.issuer_error != "invalid_grant":
            raise
        detail = str(exc.__cause__) if exc.__cause__ is not None else exc.detail
        if tx_code is not None and _PIN_WORDS.search(detail) and not _OFFER_GONE.search(detail):
            left = _ATTEMPTS.search(detail)
            raise TxCodeInvalid(
                f"the issuer refused the PIN: {detail}", issuer_error=exc.issuer_error,
                attempts_left=int(left.group(1)) if left else None,
            ) from exc
        raise OfferUnavailable(f"the issuer refused the offer: {detail}", issuer_error=exc.issuer_error) from exc
    token = body.get("access_token")
    token_type = body.get("token_type")
    # 6.2 / RFC 6749 s5.1: access_token and token_type REQUIRED; only Bearer is usable here.
    if not isinstance(token, str) or not token or len(token) > _MAX_TEXT:
        raise IssuerResponseInvalid("the token response has no access_token")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise IssuerResponseInvalid(f"token_type {_clean(str(token_type), 40)!r} is not Bearer")
    try:
        # The header is built from it: refuse anything o4.parse_bearer_token would not accept back.
        o4.parse_bearer_token(f"Bearer {token}")
    except o4.OpenId4VciError as exc:
        raise IssuerResponseInvalid("the access token is not a b64token (RFC 6750 s2.1)") from exc
    return token


def _nonce(http: _Http, url: str | None) -> str | None:
    if url is None:
        return None  # F.1: nonce only "when the issuer has a Nonce Endpoint"
    body = http.json_object("POST", url, what="nonce request")
    nonce = body.get("c_nonce")
    if not isinstance(nonce, str) or not nonce or len(nonce) > _MAX_TEXT:
        raise IssuerResponseInvalid("the nonce response has no c_nonce")  # 7.2: c_nonce REQUIRED
    return nonce


def _credential(
    http: _Http, meta: _IssuerMetadata, *, issuer: str, token: str, holder: Signer, now: int
) -> str:
    body = None
    for attempt in range(2):
        proof = o4.make_proof(holder, audience=issuer, nonce=_nonce(http, meta.nonce_endpoint), iat=now)
        request = {"credential_configuration_id": meta.configuration.id, "proofs": {"jwt": [proof]}}
        status, data, _ = http.call("POST", meta.credential_endpoint, what="credential request", json=request,
                                    headers={"Authorization": f"Bearer {token}"})
        if status >= 400:
            refused = _refused(status, data, what="credential request")
            if attempt == 0 and refused.issuer_error == "invalid_nonce" and meta.nonce_endpoint is not None:
                continue  # 8.3.1.2: get a fresh c_nonce from the Nonce Endpoint and try again, once
            raise refused
        if status == 202:
            raise IssuerResponseInvalid("the issuer deferred issuance (HTTP 202), which this wallet does not support")
        if status != 200 or type(data) is not dict:
            raise IssuerResponseInvalid(f"credential request: expected HTTP 200 with a JSON object, got HTTP {status}")
        body = data
        break
    assert body is not None
    credentials = body.get("credentials")
    # 8.3: credentials "a non-empty array"; each object's credential is the SD-JWT VC string (A.3.4).
    if type(credentials) is not list or len(credentials) != 1 or type(credentials[0]) is not dict:
        raise IssuerResponseInvalid("the credential response must hold exactly one credential object")
    credential = credentials[0].get("credential")
    if not isinstance(credential, str) or not credential:
        raise IssuerResponseInvalid("the credential response's credential is not a string")
    return credential


def _verify(
    credential: str,
    *,
    trust: TrustList,
    issuer: str,
    configuration: _Configuration,
    types: TypeRegistry,
    holder_kid: str,
    now: int,
) -> Received:
    try:
        verified = verify_vc(credential, resolve_issuer_key=trust.resolver(), now=now,
                             expected_vcts=(configuration.vct,))
    except TrustError as exc:
        raise IssuerNotTrusted(exc.detail, reason=exc.code) from exc
    except CredentialError as exc:
        raise CredentialInvalid(f"{exc.code}: {exc.detail}", credential_code=exc.code) from exc
    if verified.issuer != issuer:
        # Signed by another trusted issuer, or by one that names itself differently: not this offer's.
        raise CredentialInvalid(f"the credential's iss {verified.issuer!r} is not the offer's issuer {issuer!r}",
                                credential_code="untrusted_issuer")
    try:
        types.validate_claims(verified.vct, dict(verified.claims))
    except UnknownCredentialType as exc:
        raise CredentialTypeUnknown(exc.detail) from exc
    except CredentialTypeError as exc:
        raise CredentialInvalid(f"{exc.code}: {exc.detail}", credential_code=exc.code) from exc
    if verified.holder_jwk is None:
        raise CredentialWrongHolder("the credential has no cnf.jwk: it is bound to no key")
    try:
        bound = thumbprint(verified.holder_jwk)
    except (KeyMaterialError, CredentialError, KeyError, TypeError, ValueError) as exc:
        raise CredentialWrongHolder("the credential's cnf.jwk is not a usable public key") from exc
    if bound != holder_kid:
        raise CredentialWrongHolder(f"the credential is bound to key {bound}, not this wallet's {holder_kid}")
    return Received(
        credential=credential,
        issuer=verified.issuer,
        vct=verified.vct,
        configuration_id=configuration.id,
        claims=MappingProxyType(dict(verified.claims)),
        holder_kid=holder_kid,
        issuer_kid=verified.kid,
        issued_at=verified.iat,
        expires_at=verified.exp,
        status=verified.status,
    )


# --------------------------------------------------------------------------------------------------
# The flow


def receive(
    offer: str | bytes,
    *,
    tx_code: str | None,
    holder: Signer,
    http: httpx.Client,
    trust: TrustList,
    now: int,
    allow_http: bool = False,
    configuration_id: str | None = None,
    types: TypeRegistry | None = None,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
) -> Received:
    """Receive the credential of an offer (deep link text or QR image bytes) bound to ``holder``, verified.

    ``trust`` is a verified trust list (``load_trust_list`` / ``TrustListCache.get().trust_list``);
    ``types`` the schema registry (the built-in types by default); ``configuration_id`` picks one of
    the offer's configurations (the first ``dc+sd-jwt`` one by default). Raises a
    :class:`ReceiveError` subclass, nothing else; nothing is returned unless every check passed.
    """
    types = default_registry() if types is None else types
    if trust.is_expired(now):
        # ETSI TS 119 612 NextUpdate: a list past its exp must not be relied upon.
        raise TrustListExpired(f"the trust list (sequence {trust.sequence}) expired at {trust.exp}")
    client = _Http(http, allow_http, max_response_bytes)
    parsed = _read_offer(offer)
    if isinstance(parsed, str):
        parsed = _fetch_offer(client, parsed, trust)
    issuer = parsed.credential_issuer
    _check_target(issuer, what="credential_issuer", allow_http=allow_http, error=OfferInvalid)
    try:
        trusted = trust.issuer(issuer)
    except UntrustedIssuer as exc:
        raise IssuerNotTrusted(exc.detail, reason=exc.code) from exc
    pin = _check_tx_code(parsed, tx_code)
    meta = _issuer_metadata(client, parsed, configuration_id)
    vct = meta.configuration.vct
    # Everything the wallet would refuse afterwards is refused now, before the PIN is spent.
    try:
        types.get(vct)
    except UnknownCredentialType as exc:
        raise CredentialTypeUnknown(exc.detail) from exc
    if vct not in trusted.vcts:
        reason = IssuerNotAuthorizedForType(f"issuer {issuer} is not authorised to issue {vct!r}")
        raise IssuerNotTrusted(reason.detail, reason=reason.code)
    algs = meta.configuration.proof_algs
    if algs is not None and holder.alg not in algs:
        raise HolderKeyUnsupported(f"the issuer takes proofs signed with {algs!r}, not {holder.alg}")
    token_url = _token_endpoint(client, meta.authorization_server)
    token = _token(client, token_url, parsed, pin)
    credential = _credential(client, meta, issuer=issuer, token=token, holder=holder, now=now)
    return _verify(credential, trust=trust, issuer=issuer, configuration=meta.configuration, types=types,
                   holder_kid=thumbprint(holder.public_jwk), now=now)
