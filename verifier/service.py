"""The verifying departments' service: counter scans, OpenID4VP 1.0 requests, materials exemption, receipts.

Pure decisions over the store (``verifier.store``), the credential core and the verifier SDK; no web
framework here (``verifier.api`` translates HTTP to these calls). One :class:`VerifierService` serves
every department of the deployment. Every presentation is checked by the SDK
(:class:`verifier.sdk.Verifier`): trust list, signature, disclosures, validity, key binding, status
(IETF Token Status List), policy and replay, the replay cache being the database
(:class:`verifier.store.SqlReplayStore`), so any worker can verify any presentation once.

* **Departments** (:meth:`VerifierService.create_department`): a slug, names in zh-CN and en, a DNS name
  (the OpenID4VP ``x509_san_dns`` Client Identifier), the credential types it accepts, an ES256
  request-signing key in the encrypted keystore and its access certificate from the deployment's
  registrar CA (whose key is in the keystore too; the demo deployment creates the CA,
  :meth:`VerifierService.ensure_registrar`; a production one imports it,
  :meth:`VerifierService.import_registrar`). Staff accounts hold API keys scoped to one department;
  another department's requests, results and audit are ``not_found`` to them.
* **Counter scan** (:meth:`VerifierService.scan`): the ``EL1:`` text a scanner types or a photo of the
  QR code, verified offline-profile (audience ``urn:elicence:offline``, freshness window, replay),
  answered with a result card: ``valid`` / ``invalid`` / ``cannot_verify`` (stale or unreachable trust or
  status data is never "valid"), the reason in zh-CN and en by error code (:func:`reasons` is the whole
  table), issuer (its trust list name), type, disclosed claims with their labels, status and how fresh the
  trust and status data were. A photo in which no code can be read is ``no_qr_code`` and is not recorded:
  nothing was presented.
* **Online request** (OpenID4VP 1.0, DCQL, cross-device, ``direct_post``):
  :meth:`VerifierService.create_request` signs a Request Object
  (:func:`credentials.openid4vp.create_request`) and stores the transaction (nonce, state, DCQL,
  expiry, the hash of the creator's result secret) in the database;
  :meth:`VerifierService.request_object` serves it; :meth:`VerifierService.direct_post` accepts one
  response (a conditional update, whichever worker gets it) and verifies it with
  :func:`credentials.openid4vp.verify_response` plugging in the SDK; :meth:`VerifierService.result`
  gives the verdict to the creator's session only.
* **Materials exemption (免提交)**: a catalogue of service items (``verifier/catalogue/*.json``) lists
  each item's materials; a material may be satisfied by a credential type with required claims (and,
  for a staff member, an authorisation whose scope covers the item and whose term has not ended).
  After a scan or an online response naming an item, :func:`evaluate_materials` reports per material
  ``exempt`` (which credential, issuer, when verified) or ``to_submit``, and the department signs a
  **verification receipt** (JWS, ``typ`` ``verification-receipt+jwt``, its access certificate in
  ``x5c``) that :func:`verifier.receipts.verify_receipt` checks later against the registrar's certificate
  (re-exported here with :class:`~verifier.receipts.ReceiptInvalid`, :class:`~verifier.receipts.Receipt`
  and :data:`~verifier.receipts.RECEIPT_TYP`).
* **Audit**: each verification is recorded (department, staff, channel, item, verdict, code, time,
  types) without claims, and appended with every other action (department, key, staff, request) to
  the department's hash-chained audit log (:mod:`credentials.audit`), checked by
  :meth:`VerifierService.verify_audit`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from cryptography import x509
from sqlalchemy.orm import Session, sessionmaker

from credentials import dcql, jws, qr
from credentials.audit import AuditChainBroken, _thaw
from credentials import openid4vp as vp
from credentials.errors import ERROR_CLASSES, CannotVerify, CredentialError, Malformed, PayloadTooLarge, error_for_code
from keys.errors import KeyMaterialError
from keys.jwk import b64u_encode, load_private_jwk
from keys.keystore import Keystore, KeyState
from keys.signer import Signer
from keys.x509 import (
    certificate_pem,
    issue_access_certificate,
    load_pem_certificates,
    make_registrar_ca,
    x5c_encode,
)
from schemas.errors import UnknownCredentialType
from schemas.registry import CredentialType, get_type
from verifier import oidc, store
from verifier.receipts import RECEIPT_TYP, Receipt, ReceiptInvalid, verify_receipt
from verifier.sdk import Policy, StatusSource, TrustListSource, VerificationResult, Verifier, failure_report
from verifier.store import Department, InvalidValue, NotFound, Staff, StoreError, unit_of_work

__all__ = [
    "RECEIPT_TYP",
    "REGISTRAR_OWNER",
    "VerifierPolicy",
    "VerifierService",
    "RequestCreated",
    "NewPortal",
    "LoginStarted",
    "OIDC_OWNER",
    "Requirement",
    "Material",
    "ServiceItem",
    "Catalogue",
    "Evidence",
    "Receipt",
    "ServiceError",
    "Unauthorized",
    "UnknownType",
    "TypeNotAllowed",
    "UnknownItem",
    "CatalogueInvalid",
    "RegistrarMissing",
    "UnknownRequest",
    "RequestExpired",
    "ResponseAlreadyReceived",
    "ResponseRejected",
    "ReceiptInvalid",
    "NoQrCode",
    "load_catalogue",
    "evaluate_materials",
    "verify_receipt",
    "messages",
    "reasons",
]

#: Loopback hosts that a "localhost" department is reached through (see ``VerifierService._origin``).
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
#: Keystore owner of the deployment's registrar CA key (not a department: slugs never start with '_').
REGISTRAR_OWNER = "_registrar"
#: Keystore owner of the OpenID Provider's ID Token signing keys (not a department).
OIDC_OWNER = "_oidc"
#: Audit chain of deployment-wide actions (the registrar).
_DEPLOYMENT = "_deployment"
_CATALOGUE_DIR = Path(__file__).resolve().parent / "catalogue"
_STAFF_AUTHORISATION = "staff-authorisation"
_BUSINESS_LICENCE = "business-licence"
#: Dates in an authorisation (valid_from / valid_until) are calendar days in China Standard Time.
_CST = timezone(timedelta(hours=8))
_MAX_CREDENTIAL_QUERIES = 8
#: A service item code, as a staff authorisation's scope names it (schemas/types/staff-authorisation).
_ITEM_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")
#: A material id becomes a DCQL Credential Query id (s6.1: alphanumeric, underscore or hyphen).
_MATERIAL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


# --- errors ---------------------------------------------------------------------------------------------


class ServiceError(StoreError):
    """Errors the service adds to the store's tree; ``http_status`` is what the API answers."""

    code = "service_error"
    http_status: ClassVar[int] = 400


class Unauthorized(ServiceError):
    code = "unauthorized"
    description = "A staff API key is required (Authorization: Bearer <key>)."
    http_status = 401


class UnknownType(ServiceError):
    code = "unknown_credential_type"
    description = "No such credential type."


class TypeNotAllowed(ServiceError):
    code = "type_not_allowed"
    description = "This department does not accept this credential type."
    http_status = 403


class UnknownItem(ServiceError):
    code = "unknown_item"
    description = "No such service item in the catalogue."
    http_status = 404


class CatalogueInvalid(ServiceError):
    code = "catalogue_invalid"
    description = "The service item catalogue is invalid."
    http_status = 500


class RegistrarMissing(ServiceError):
    code = "registrar_missing"
    description = "The deployment has no registrar CA: import one (or run the demo deployment)."
    http_status = 503


class UnknownRequest(ServiceError):
    code = "unknown_request"
    description = "No such presentation request."
    http_status = 404


class RequestExpired(ServiceError):
    code = "request_expired"
    description = "The presentation request has expired."


class ResponseAlreadyReceived(ServiceError):
    code = "response_already_received"
    description = "A response to this request was already received."


class ResponseRejected(ServiceError):
    """The wallet's response was received and did not verify; ``code`` is the failure's code."""

    code = "response_rejected"
    description = "The presentation did not verify."

    def __init__(self, detail: str | None = None, *, code: str) -> None:
        super().__init__(detail)
        self.code = code  # type: ignore[misc]  # the instance carries the failure's own stable code


class NoQrCode(ServiceError):
    """No single QR code could be read from a scanned image: nothing was verified, so nothing is recorded
    (a counter's camera sends frames until one holds the code)."""

    code = "no_qr_code"
    description = "No QR code could be read from the image."
    http_status = 422


#: People-facing messages of the codes the service adds (credential errors carry their own), and of the
#: errors a counter's staff meet when scanning.
_MESSAGES: Mapping[str, tuple[str, str]] = {
    "ok": ("核验通过。", "Verified."),
    "no_qr_code": ("未能从图片中识别出二维码，请对准二维码重试。", "No QR code could be read from the image: aim at the code and try again."),
    "unauthorized": ("工作人员密钥无效或已停用，请重新登录。", "The staff API key is unknown or revoked: sign in again."),
    "not_found": ("未找到该部门或记录。", "No such department or record."),
    "unknown_item": ("事项目录中没有该事项。", "No such service item in the catalogue."),
    "invalid_value": ("请求内容不正确。", "The request is not valid."),
    "request_too_large": ("上传的图片过大。", "The uploaded image is too large."),
    "authorisation_out_of_scope": ("授权范围不包含该事项。", "The authorisation does not cover this service item."),
    "authorisation_not_in_term": ("授权不在有效期内。", "The authorisation is not within its term."),
    "enterprise_mismatch": ("授权书与营业执照不属于同一企业。", "The authorisation is for another enterprise."),
    "not_presented": ("未出示可替代该材料的电子证照。", "No electronic licence that replaces this material was shown."),
    "not_electronic": ("该材料暂无电子证照可替代，需提交。", "No electronic licence replaces this material yet."),
    "access_denied": ("持照人拒绝了出示请求。", "The holder declined the request."),
    "server_error": ("核验服务出错，无法核验。", "The verifier could not complete the verification."),
    "response_already_received": ("该请求已收到应答。", "A response to this request was already received."),
    "request_expired": ("请求已过期。", "The request has expired."),
    "invalid_request": ("应答不符合协议要求。", "The response does not follow the protocol."),
    "dcql_not_satisfied": ("出示的证照不满足请求。", "The credentials shown do not answer the request."),
    "state_mismatch": ("应答不属于该请求。", "The response belongs to another request."),
    "licence_missing": ("登录需要出示营业执照。", "Logging in needs the business licence."),
    "key_binding_required": ("出示未经持有人密钥签名。", "The presentation is not signed by its holder's key."),
    "holder_keys_inconsistent": ("营业执照与授权书的持有人密钥不一致。",
                                 "The licence and the authorisation are not held as the wallet holds them."),
    "authorisation_for_another_licence": ("授权书不是依据该营业执照授予的。",
                                          "The authorisation was granted under another licence."),
    "authorisation_invalid": ("授权书不符合要求。", "The authorisation is not acceptable."),
}


def messages(code: str | None) -> dict[str, str]:
    """The zh-CN and en message for a verdict code (``None`` is success)."""
    if code is None:
        code = "ok"
    if code in _MESSAGES:
        zh, en = _MESSAGES[code]
        return {"zh-CN": zh, "en": en}
    try:
        cls = error_for_code(code)
    except KeyError:
        return {"zh-CN": "核验未通过。", "en": "Verification failed."}
    return {"zh-CN": cls.description_zh, "en": cls.description}


def reasons() -> dict[str, dict[str, str]]:
    """Every code a scan can answer (each credential error, each code the service adds) with its
    zh-CN and en message: the table a department page shows failures by."""
    return {code: messages(code) for code in (*ERROR_CLASSES, *_MESSAGES)}


# --- the catalogue of service items ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requirement:
    """What satisfies a material: a credential type with these claims disclosed (and, for an
    authorisation, a scope covering the item)."""

    type: str
    vct: str
    claims: tuple[tuple[str, ...], ...]
    scope_covers_item: bool = False


@dataclass(frozen=True, slots=True)
class Material:
    """A required material of a service item; ``applies_to="agent"``: only when a staff member acts."""

    id: str
    name: Mapping[str, str]
    satisfied_by: Requirement | None = None
    applies_to: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceItem:
    """A service item (事项) and the materials its service guide asks for."""

    id: str
    name: Mapping[str, str]
    materials: tuple[Material, ...]
    guide: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": dict(self.name),
            "guide": dict(self.guide),
            "materials": [
                {
                    "id": m.id,
                    "name": dict(m.name),
                    "applies_to": m.applies_to,
                    "satisfied_by": None if m.satisfied_by is None else {
                        "type": m.satisfied_by.type,
                        "vct": m.satisfied_by.vct,
                        "claims": [list(c) for c in m.satisfied_by.claims],
                        "scope_covers_item": m.satisfied_by.scope_covers_item,
                    },
                }
                for m in self.materials
            ],
        }


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The service items a deployment knows, by id."""

    items: Mapping[str, ServiceItem]

    def item(self, item_id: Any) -> ServiceItem:
        """The item ``item_id``; raises ``UnknownItem``."""
        if not isinstance(item_id, str) or item_id not in self.items:
            raise UnknownItem(f"no service item {str(item_id)[:64]!r}")
        return self.items[item_id]


def _names(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(value.get(k), str) and value[k] for k in ("zh-CN", "en")):
        raise CatalogueInvalid(f"{what} needs names in zh-CN and en")
    return {"zh-CN": value["zh-CN"], "en": value["en"]}


def _requirement(value: Any, what: str) -> Requirement | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        raise CatalogueInvalid(f"{what}.satisfied_by needs a credential type")
    try:
        ctype = get_type(value["type"])
    except UnknownCredentialType as exc:
        raise CatalogueInvalid(f"{what}: unknown credential type {value['type']!r}") from exc
    claims = value.get("claims", [])
    if not isinstance(claims, list) or not all(
        isinstance(c, list) and c and all(isinstance(s, str) for s in c) for c in claims
    ):
        raise CatalogueInvalid(f"{what}.satisfied_by.claims must be a list of claim paths")
    known = {tuple(p) for p in ctype.claim_paths}
    for claim in claims:
        if tuple(claim) not in known:
            raise CatalogueInvalid(f"{what}: {ctype.slug} has no claim {'.'.join(claim)!r}")
    return Requirement(ctype.slug, ctype.vct, tuple(tuple(c) for c in claims), bool(value.get("scope_covers_item")))


def _item(data: Any, source: str) -> ServiceItem:
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
        raise CatalogueInvalid(f"{source}: an item needs an id")
    item_id = data["id"]
    if not _ITEM_ID.fullmatch(item_id):
        raise CatalogueInvalid(f"{source}: item id {item_id!r} is not a service item code")
    materials = data.get("materials")
    if not isinstance(materials, list) or not materials:
        raise CatalogueInvalid(f"{source}: item {item_id} lists no materials")
    out = []
    for i, m in enumerate(materials):
        what = f"{source}: {item_id}.materials[{i}]"
        if not isinstance(m, Mapping) or not isinstance(m.get("id"), str) or not _MATERIAL_ID.fullmatch(m["id"]):
            raise CatalogueInvalid(f"{what} needs an id of letters, digits, '-' and '_'")
        applies_to = m.get("applies_to")
        if applies_to not in (None, "agent"):
            raise CatalogueInvalid(f"{what}.applies_to must be 'agent' or absent")
        out.append(Material(m["id"], _names(m.get("name"), what), _requirement(m.get("satisfied_by"), what), applies_to))
    if len({m.id for m in out}) != len(out):
        raise CatalogueInvalid(f"{source}: item {item_id} lists a material twice")
    guide = _names(data["guide"], f"{source}: guide") if "guide" in data else {}
    return ServiceItem(item_id, _names(data.get("name"), f"{source}: {item_id}"), tuple(out), guide)


def load_catalogue(paths: Iterable[str | Path] | None = None) -> Catalogue:
    """Service items from JSON files (default: the shipped ``verifier/catalogue/*.json``).

    Raises ``CatalogueInvalid`` for an unreadable file, an unknown credential type or claim, or an id used twice.
    """
    files = sorted(_CATALOGUE_DIR.glob("*.json")) if paths is None else [Path(p) for p in paths]
    items: dict[str, ServiceItem] = {}
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CatalogueInvalid(f"cannot read {path.name}: {exc}") from exc
        item = _item(data, path.name)
        if item.id in items:
            raise CatalogueInvalid(f"item {item.id} is defined twice")
        items[item.id] = item
    return Catalogue(items)


# --- materials exemption --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    """A credential that verified: what a material can be exempted with."""

    vct: str
    issuer: str
    issuer_name: Mapping[str, str]
    claims: Mapping[str, Any]
    verified_at: datetime
    digest: str


def _disclosed(claims: Mapping[str, Any], path: Sequence[str]) -> bool:
    node: Any = claims
    for step in path:
        if not isinstance(node, Mapping) or step not in node:
            return False
        node = node[step]
    return True


def _authorisation_problem(evidence: Evidence, item: ServiceItem, licences: Sequence[Evidence], today: date) -> str | None:
    scope = evidence.claims.get("scope")
    covered = isinstance(scope, Mapping) and (
        scope.get("all") is True or (isinstance(scope.get("matters"), (list, tuple)) and item.id in scope["matters"])
    )
    if not covered:
        return "authorisation_out_of_scope"
    try:
        start = date.fromisoformat(str(evidence.claims.get("valid_from", "0001-01-01")))
        end = date.fromisoformat(str(evidence.claims["valid_until"]))
    except (KeyError, ValueError):
        return "authorisation_not_in_term"
    if not start <= today <= end:
        return "authorisation_not_in_term"
    usccs = {lic.claims.get("uscc") for lic in licences if "uscc" in lic.claims}
    if usccs and evidence.claims.get("enterprise_uscc") not in usccs:
        return "enterprise_mismatch"
    return None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def evaluate_materials(item: ServiceItem, evidence: Sequence[Evidence], *, now: datetime) -> dict[str, Any]:
    """Per material of ``item``: ``exempt`` (by which verified credential) or ``to_submit`` (with a code).

    An authorisation counts only when its scope covers the item, today (China Standard Time) is within
    its term and, when a business licence was shown too, it is for that enterprise.
    """
    today = now.astimezone(_CST).date()
    licences = [e for e in evidence if get_type(e.vct).slug == _BUSINESS_LICENCE]
    rows = []
    for material in item.materials:
        row: dict[str, Any] = {"id": material.id, "name": dict(material.name), "applies_to": material.applies_to}
        requirement = material.satisfied_by
        code = "not_electronic" if requirement is None else "not_presented"
        chosen = None
        if requirement is not None:
            for candidate in evidence:
                if candidate.vct != requirement.vct:
                    continue
                missing = [c for c in requirement.claims if not _disclosed(candidate.claims, c)]
                if missing:
                    code = "missing_claim"
                    continue
                if requirement.scope_covers_item:
                    problem = _authorisation_problem(candidate, item, licences, today)
                    if problem is not None:
                        code = problem
                        continue
                chosen = candidate
                break
        if chosen is not None:
            row.update(status="exempt", code=None, credential={
                "vct": chosen.vct, "type": get_type(chosen.vct).slug, "issuer": chosen.issuer,
                "issuer_name": dict(chosen.issuer_name)}, verified_at=_iso(chosen.verified_at))
        else:
            row.update(status="to_submit", code=code, message=messages(code))
        rows.append(row)
    return {
        "item": {"id": item.id, "name": dict(item.name)},
        "materials": rows,
        "exempt": sum(r["status"] == "exempt" for r in rows),
        "to_submit": sum(r["status"] == "to_submit" for r in rows),
    }


# --- values ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifierPolicy:
    """Lifetimes and limits (seconds unless named otherwise)."""

    request_lifetime: int = 300
    freshness: int = qr.OFFLINE_FRESHNESS
    skew: int = 60
    certificate_days: int = 365
    registrar_days: int = 3650
    keep_results_for: int = 3600
    code_lifetime: int = 60
    id_token_lifetime: int = 300
    access_token_lifetime: int = 300


@dataclass(frozen=True, slots=True)
class RequestCreated:
    """A new online request: the ``openid4vp://`` link, its QR code, and the result handle and secret (once)."""

    transaction_id: str
    department: str
    uri: str
    request_uri: str
    expires_at: datetime
    result_secret: str = field(repr=False)
    qr_svg: str = field(repr=False)
    qr_png: bytes = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction_id,
            "department": self.department,
            "uri": self.uri,
            "request_uri": self.request_uri,
            "expires_at": _iso(self.expires_at),
            "result_secret": self.result_secret,
            "qr_svg": self.qr_svg,
            "qr_png": "data:image/png;base64," + base64.b64encode(self.qr_png).decode("ascii"),
        }


@dataclass(frozen=True, slots=True)
class NewPortal:
    """A registered portal and its client secret: shown once, only its SHA-256 is stored."""

    portal: store.Portal
    client_secret: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"client_id": self.portal.client_id, "client_secret": self.client_secret, "name": self.portal.name,
                "department": self.portal.department, "redirect_uris": list(self.portal.redirect_uris),
                "allow_staff": self.portal.allow_staff, "item": self.portal.item_id,
                "token_endpoint_auth_methods": ["client_secret_basic", "client_secret_post"]}


@dataclass(frozen=True, slots=True)
class LoginStarted:
    """A login waiting for the wallet: the page's link and QR code, and the browser's secret (its cookie)."""

    login_id: str
    browser_secret: str = field(repr=False)
    portal_name: str
    department_name_zh: str
    department_name_en: str
    uri: str
    expires_at: datetime
    qr_svg: str = field(repr=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _system_now() -> datetime:
    return datetime.now(timezone.utc)


def _verdict_of(error: CredentialError) -> str:
    # Stale or unreachable trust or status data is "cannot verify", never a judgment on the credential.
    return "cannot_verify" if isinstance(error, CannotVerify) else "invalid"


def _audit_verification(tx: Session, record: store.Verification) -> None:
    # The verification row is the searchable record; its chained twin makes it tamper-evident. No claims.
    actor = "wallet" if record.staff_id is None else f"staff:{record.staff_id}"
    store.append_audit(tx, department=record.department, at=record.at, actor=actor, action=f"verification.{record.channel}",
                       subject=record.id, details={"verdict": record.verdict, "code": record.code, "item": record.item_id,
                                                   "vcts": list(record.vcts), "receipt": record.receipt_id,
                                                   "transaction": record.transaction_id})


def _type_info(vct: str | None) -> dict[str, Any] | None:
    if vct is None:
        return None
    try:
        ctype: CredentialType = get_type(vct)
    except UnknownCredentialType:
        return {"vct": vct, "slug": None, "name": None}
    return {"vct": vct, "slug": ctype.slug, "name": {"zh-CN": ctype.name_zh, "en": ctype.name_en}}


def _fields(vct: str, claims: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The disclosed claims as the type metadata labels them: objects opened depth first, arrays kept whole."""
    try:
        ctype: CredentialType | None = get_type(vct)
    except UnknownCredentialType:
        ctype = None
    out: list[dict[str, Any]] = []

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, Mapping) and value:
            for key, member in value.items():
                walk(member, path + (key,))
            return
        dotted = ".".join(path)
        label = {"zh-CN": dotted, "en": dotted} if ctype is None else {
            "zh-CN": ctype.label(path, "zh-CN"), "en": ctype.label(path, "en")}
        out.append({"path": dotted, "value": value, "label": label})

    for key, value in claims.items():
        walk(value, (key,))
    return out


def _scanned_text(data: str | bytes) -> str:
    """The text a scan carries: the scanner's text, or the QR code read from a photo (bytes that are not
    UTF-8). Raises ``NoQrCode`` when a photo holds no single readable code, ``PayloadTooLarge`` for a
    photo too large to read."""
    if isinstance(data, str):
        return data
    raw = bytes(data)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return qr.decode_image(raw)
    except PayloadTooLarge:
        raise
    except Malformed as exc:
        raise NoQrCode(exc.detail) from exc


def _evidence(result: VerificationResult, at: datetime) -> Evidence:
    # The KB-JWT's sd_hash names exactly what was presented (RFC 9901 s4.3) without repeating any claim.
    kb = result.credential.kb_payload or {}
    digest = kb.get("sd_hash") if isinstance(kb.get("sd_hash"), str) else ""
    return Evidence(result.vct, result.issuer, dict(result.issuer_name), dict(result.claims), at, digest)


# --- the service ----------------------------------------------------------------------------------------


class VerifierService:
    """The verifier role over one database; thread-safe (state lives in the database).

    ``trust`` is the pinned trust list source and ``status`` the status list source of the SDK (shared by
    every department; they cache with their ``ttl``). ``public_url`` is where the deployment is reachable;
    a department whose DNS name is its host gets its endpoints there, any other at ``https://<dns name>``.
    ``demo`` lets :meth:`ensure_registrar` create the registrar CA. ``clock`` and ``random_bytes`` are
    parameters for tests.
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        kek: bytes,
        public_url: str,
        trust: TrustListSource,
        status: StatusSource | None = None,
        catalogue: Catalogue | None = None,
        demo: bool = False,
        policy: VerifierPolicy = VerifierPolicy(),
        clock: Callable[[], datetime] = _system_now,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._sessions = sessions
        self._kek = kek
        self.public_url = public_url.rstrip("/")
        self._trust = trust
        self._status = status if status is not None else StatusSource.http(clock=lambda: self.now().timestamp())
        self.catalogue = catalogue if catalogue is not None else load_catalogue()
        self.demo = demo
        self.policy = policy
        self._clock = clock
        self._random = random_bytes
        self._replay = store.SqlReplayStore(sessions)
        self._signers: dict[str, Signer] = {}

    def now(self) -> datetime:
        """The service clock (an aware datetime)."""
        value = self._clock()
        if value.tzinfo is None:
            raise ValueError("the clock must return an aware datetime")
        return value

    def _token(self, nbytes: int = 32) -> str:
        return b64u_encode(self._random(nbytes))

    def _keystore(self, owner: str, tx: Session) -> Keystore:
        return Keystore(store.SqlKeyRecordStore(self._sessions, owner).using(tx), self._kek)

    # -- registrar -------------------------------------------------------------------------------------

    def registrar_certificates(self) -> tuple[x509.Certificate, ...]:
        """The registrar CA certificate(s) wallets and receipt checkers trust; raises ``RegistrarMissing``."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            registrar = store.get_registrar(tx)
        if registrar is None:
            raise RegistrarMissing()
        return load_pem_certificates(registrar.certificate)

    def ensure_registrar(self, *, actor: str = "cli") -> store.Registrar:
        """The registrar CA; in demo mode it is created on first use. Raises ``RegistrarMissing`` otherwise."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            registrar = store.get_registrar(tx)
        if registrar is not None:
            return registrar
        if not self.demo:
            raise RegistrarMissing()
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            keystore = self._keystore(REGISTRAR_OWNER, tx)
            kid = keystore.generate("ES256", now=now, owner=REGISTRAR_OWNER, label="registrar CA")
            certificate = make_registrar_ca(
                keystore.signer(kid).private_key, common_name="eLicence demo registrar", organization="eLicence demo",
                not_before=now, not_after=now + timedelta(days=self.policy.registrar_days),
            )
            registrar = store.put_registrar(tx, kid=kid, certificate=certificate_pem(certificate), now=now)
            store.append_audit(tx, department=_DEPLOYMENT, at=now, actor=actor, action="registrar.created", subject=kid)
        return registrar

    def import_registrar(self, *, private_jwk: Mapping[str, Any], certificate: str, actor: str = "cli") -> store.Registrar:
        """Import the deployment's registrar CA (its private JWK and PEM certificate) into the keystore.

        Raises ``InvalidValue`` when the certificate is not a CA certificate of that key, ``Conflict`` if one exists.
        """
        try:
            key = load_private_jwk(private_jwk)
            (ca,) = load_pem_certificates(certificate)[:1]
        except (KeyMaterialError, ValueError) as exc:
            raise InvalidValue(f"registrar key or certificate: {exc}") from exc
        if ca.public_key().public_numbers() != key.public_key().public_numbers():
            raise InvalidValue("the registrar certificate is not for this key")
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            kid = self._keystore(REGISTRAR_OWNER, tx).import_private_jwk(private_jwk, now=now, owner=REGISTRAR_OWNER,
                                                                       label="registrar CA")
            registrar = store.put_registrar(tx, kid=kid, certificate=certificate_pem(ca), now=now)
            store.append_audit(tx, department=_DEPLOYMENT, at=now, actor=actor, action="registrar.imported", subject=kid)
        return registrar

    # -- departments and staff -------------------------------------------------------------------------

    def create_department(
        self, *, slug: str, name_zh: str, name_en: str, dns_name: str, types: Sequence[str], actor: str = "cli"
    ) -> Department:
        """Register a department with a fresh ES256 request-signing key and its access certificate.

        Raises ``InvalidValue`` (slug, names, DNS name), ``UnknownType``, ``Conflict``, ``RegistrarMissing``.
        """
        try:
            vcts = [get_type(t).vct for t in types]
        except (UnknownCredentialType, TypeError) as exc:
            raise UnknownType(f"unknown credential type in {list(types)!r}") from exc
        if not vcts:
            raise InvalidValue("a department accepts at least one credential type")
        try:
            vp.RequestReference(f"{vp.X509_SAN_DNS}:{dns_name}", f"https://{dns_name}/")
        except (vp.OpenId4VpError, TypeError) as exc:
            raise InvalidValue(f"dns_name {str(dns_name)[:64]!r} is not a DNS name") from exc
        registrar = self.ensure_registrar(actor=actor)
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            store.create_department(tx, slug=slug, name_zh=name_zh, name_en=name_en, dns_name=dns_name, vcts=vcts,
                                    now=now)
            keystore = self._keystore(slug, tx)
            kid = keystore.generate("ES256", now=now, owner=slug, label="request objects and receipts")
            ca_key = self._keystore(REGISTRAR_OWNER, tx).signer(registrar.kid).private_key
            certificate = issue_access_certificate(
                ca_certificate=load_pem_certificates(registrar.certificate)[0], ca_key=ca_key, dns_name=dns_name,
                public_key=keystore.signer(kid).private_key.public_key(), organization=name_zh,
                not_before=now, not_after=now + timedelta(days=self.policy.certificate_days),
            )
            department = store.set_department_certificate(tx, slug=slug, kid=kid, certificate=certificate_pem(certificate))
            store.append_audit(tx, department=slug, at=now, actor=actor, action="department.created", subject=slug,
                               details={"dns_name": department.dns_name, "vcts": vcts, "kid": kid})
        return department

    def department(self, slug: str) -> Department:
        """The department ``slug``; raises ``NotFound``."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            department = store.get_department(tx, slug=slug)
        if department is None:
            raise NotFound(f"no department {slug!r}")
        return department

    def departments(self) -> tuple[Department, ...]:
        """Every department of the deployment."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            return store.list_departments(tx)

    def create_staff(self, *, department: str, name: str, actor: str = "cli") -> store.NewStaff:
        """A staff account of ``department`` and its API key (shown once); raises ``NotFound``."""
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            created = store.create_staff(tx, department=department, name=name, now=now, random_bytes=self._random)
            store.append_audit(tx, department=department, at=now, actor=actor, action="staff.created",
                               subject=created.staff.id, details={"name": created.staff.name})
        return created

    def revoke_staff(self, staff: Staff, *, staff_id: str) -> Staff:
        """Revoke a staff key of the caller's department; raises ``NotFound``."""
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            revoked = store.revoke_staff(tx, department=staff.department, staff_id=staff_id, now=now)
            store.append_audit(tx, department=staff.department, at=now, actor=f"staff:{staff.id}",
                               action="staff.revoked", subject=staff_id)
        return revoked

    def authenticate(self, api_key: str | None, *, department: str) -> Staff:
        """The staff member of ``department`` holding ``api_key``.

        Raises ``Unauthorized`` for no, unknown or revoked key; ``NotFound`` for another department's
        staff (a department that is not theirs does not exist for them).
        """
        if not api_key:
            raise Unauthorized()
        with unit_of_work(self._sessions, read_only=True) as tx:
            staff = store.authenticate_staff(tx, api_key=api_key)
        if staff is None:
            raise Unauthorized("the API key is unknown or revoked")
        if staff.department != department:
            raise NotFound(f"no department {department!r}")
        return staff

    # -- verification core -----------------------------------------------------------------------------

    def _sdk(self, department: Department, *, now: float) -> Verifier:
        policy = Policy(accepted_vcts=frozenset(department.vcts), freshness=self.policy.freshness, skew=self.policy.skew)
        return Verifier(trust=self._trust, status=self._status, policy=policy, replay=self._replay, clock=lambda: now)

    def _freshness(self) -> dict[str, Any]:
        try:
            current = self._trust.current()
        except CredentialError as exc:
            return {"trust_list_age_s": None, "trust_list_stale": True, "trust_list_error": exc.code,
                    "status_list_age_s": None}
        return {"trust_list_age_s": round(current.age, 1), "trust_list_stale": current.stale,
                "trust_list_sequence": current.trust_list.sequence, "status_list_age_s": None}

    @staticmethod
    def _valid_card(result: VerificationResult) -> dict[str, Any]:
        view = result.to_dict()
        return {
            "verdict": "valid",
            "error": None,
            "message": messages(None),
            "issuer": {"id": result.issuer, "name": dict(result.issuer_name), "region": result.region, "verified": True},
            "type": _type_info(result.vct),
            "claims": view["claims"],
            "fields": _fields(result.vct, view["claims"]),
            "status": result.status,
            "issued_at": result.issued_at,
            "expires_at": result.expires_at,
            "presented_at": result.presented_at,
            "freshness": {"trust_list_age_s": view["trust_list_age_s"], "trust_list_stale": result.trust_list_stale,
                          "status_list_age_s": view["status_list_age_s"]},
            "checks": view["checks"],
        }

    def _failure_card(self, error: CredentialError) -> dict[str, Any]:
        report = failure_report(error)
        return {
            "verdict": _verdict_of(error),
            "error": error.code,
            "error_description": error.detail,
            "message": messages(error.code),
            # What the presentation says of itself, unverified: shown so the holder knows which one failed.
            "issuer": None if report["claimed_issuer"] is None else {"id": report["claimed_issuer"], "verified": False},
            "type": _type_info(report["claimed_vct"]),
            "claims": {},
            "fields": [],
            "status": None,
            "freshness": self._freshness(),
            "failed_check": report["failed_check"],
            "checks": report["checks"],
        }

    def _sign_receipt(
        self, tx: Session, department: Department, item: ServiceItem, *, channel: str, now: datetime,
        cards: Sequence[Mapping[str, Any]], exemption: Mapping[str, Any], evidence: Sequence[Evidence],
    ) -> tuple[str, str]:
        receipt_id = str(uuid.UUID(bytes=self._random(16), version=4))
        enterprise = next((e.claims for e in evidence if get_type(e.vct).slug == _BUSINESS_LICENCE), None)
        payload = {
            "iss": f"{vp.X509_SAN_DNS}:{department.dns_name}",
            "jti": receipt_id,
            "iat": int(now.timestamp()),
            "department": {"id": department.slug, "name": {"zh-CN": department.name_zh, "en": department.name_en}},
            "item": {"id": item.id, "name": dict(item.name)},
            "channel": channel,
            # Minimal data: the enterprise's identity (public register data), never the persons' claims.
            "enterprise": None if enterprise is None else {"uscc": enterprise.get("uscc"), "name": enterprise.get("name")},
            "verifications": [
                {"vct": (c.get("type") or {}).get("vct"), "issuer": (c.get("issuer") or {}).get("id"),
                 "verdict": c["verdict"], "code": c["error"], "status": c.get("status")}
                for c in cards
            ],
            "credentials": [{"vct": e.vct, "issuer": e.issuer, "digest": e.digest} for e in evidence],
            "materials": [
                {"id": m["id"], "status": m["status"], "code": m["code"],
                 "vct": (m.get("credential") or {}).get("vct")}
                for m in exemption["materials"]
            ],
        }
        signer = self._department_signer(tx, department)
        x5c = x5c_encode(load_pem_certificates(department.certificate or ""))
        return receipt_id, jws.sign(payload, signer, typ=RECEIPT_TYP, header={"x5c": x5c}, include_kid=False)

    def _department_signer(self, tx: Session, department: Department) -> Signer:
        if department.kid is None:
            raise RegistrarMissing(f"department {department.slug!r} has no signing key")
        signer = self._signers.get(department.kid)
        if signer is None:
            signer = self._keystore(department.slug, tx).signer(department.kid)
            self._signers[department.kid] = signer
        return signer

    def _conclude(
        self, department: Department, item: ServiceItem | None, *, channel: str, now: datetime,
        cards: Sequence[Mapping[str, Any]], evidence: Sequence[Evidence], tx: Session,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if item is not None:
            exemption = evaluate_materials(item, evidence, now=now)
            receipt_id, receipt = self._sign_receipt(tx, department, item, channel=channel, now=now, cards=cards,
                                                     exemption=exemption, evidence=evidence)
            out.update(exemption=exemption, receipt=receipt, receipt_id=receipt_id)
        return out

    # -- counter scan ----------------------------------------------------------------------------------

    def scan(self, staff: Staff, *, data: str | bytes, item_id: str | None = None) -> dict[str, Any]:
        """Verify an offline QR (``EL1:`` text, or a photo of the code) and answer the result card.

        With ``item_id``, also the materials exemption and a signed verification receipt. The verdict
        is recorded (no claims). Raises ``UnknownItem`` before verifying, and ``NoQrCode`` for a photo in
        which no code can be read (nothing was presented: nothing is recorded); never raises for a bad code.
        """
        item = None if item_id is None else self.catalogue.item(item_id)
        department = self.department(staff.department)
        now = self.now()
        evidence: list[Evidence] = []
        try:
            result = self._sdk(department, now=now.timestamp()).verify(_scanned_text(data))
            card = self._valid_card(result)
            evidence.append(_evidence(result, now))
        except CredentialError as exc:
            card = self._failure_card(exc)
        with unit_of_work(self._sessions) as tx:
            out = {"card": card, **self._conclude(department, item, channel="scan", now=now, cards=[card],
                                                  evidence=evidence, tx=tx)}
            record = store.record_verification(
                tx, department=department.slug, staff_id=staff.id, channel="scan", verdict=card["verdict"],
                code=card["error"], vcts=[e.vct for e in evidence], at=now, item_id=item_id,
                receipt_id=out.get("receipt_id"),
            )
            _audit_verification(tx, record)
        out["verification_id"] = record.id
        return out

    # -- online request (OpenID4VP) --------------------------------------------------------------------

    def _origin(self, department: Department) -> str:
        # response_uri must be on the certified host (OpenID4VP s5.9.3); a department served by this
        # deployment's own host keeps its scheme and port. A deployment on a loopback address (make run:
        # http://127.0.0.1:8000) serves a "localhost" department under that name, on its own port.
        public = urlsplit(self.public_url)
        if public.hostname == department.dns_name:
            return self.public_url
        if department.dns_name == "localhost" and public.hostname in _LOOPBACK_HOSTS:
            port = f":{public.port}" if public.port else ""
            return public._replace(netloc=f"localhost{port}").geturl().rstrip("/")
        return f"https://{department.dns_name}"

    def _dcql(self, department: Department, credentials: Any, item: ServiceItem | None) -> dict[str, Any]:
        queries: list[dict[str, Any]] = []
        optional: list[str] = []
        if item is not None:
            for material in item.materials:
                need = material.satisfied_by
                if need is None or need.vct not in department.vcts:
                    continue
                query: dict[str, Any] = {"id": material.id, "format": dcql.SD_JWT_VC_FORMAT,
                                         "meta": {"vct_values": [need.vct]}}
                if need.claims:
                    query["claims"] = [{"path": list(c)} for c in need.claims]
                queries.append(query)
                if material.applies_to == "agent":
                    optional.append(query["id"])
        else:
            if not isinstance(credentials, list) or not 0 < len(credentials) <= _MAX_CREDENTIAL_QUERIES:
                raise InvalidValue(f"credentials must list 1 to {_MAX_CREDENTIAL_QUERIES} requested credentials")
            for i, wanted in enumerate(credentials):
                if not isinstance(wanted, Mapping) or not isinstance(wanted.get("type"), str):
                    raise InvalidValue(f"credentials[{i}] needs a type")
                try:
                    vct = get_type(wanted["type"]).vct
                except UnknownCredentialType as exc:
                    raise UnknownType(f"no credential type {wanted['type'][:64]!r}") from exc
                if vct not in department.vcts:
                    raise TypeNotAllowed(f"{department.slug} does not accept {wanted['type'][:64]!r}")
                query = {"id": f"q{i}", "format": dcql.SD_JWT_VC_FORMAT, "meta": {"vct_values": [vct]}}
                claims = wanted.get("claims")
                if claims is not None:
                    if not isinstance(claims, list) or not claims:
                        raise InvalidValue(f"credentials[{i}].claims must be a non-empty list of claim paths")
                    query["claims"] = [{"path": [c] if isinstance(c, str) else c} for c in claims]
                queries.append(query)
        if not queries:
            raise InvalidValue("nothing to request: the item has no material this department can verify")
        out: dict[str, Any] = {"credentials": queries}
        if optional:
            # DCQL s6.2: materials for an acting staff member are asked for, not required.
            out["credential_sets"] = [{"options": [[q["id"]]], "required": q["id"] not in optional} for q in queries]
        return out

    def create_request(
        self,
        staff: Staff,
        *,
        credentials: Any = None,
        item_id: str | None = None,
        purpose: str | None = None,
    ) -> RequestCreated:
        """Sign an OpenID4VP Request Object for ``credentials`` (``[{"type", "claims"}]``) or a service
        item's materials, store the transaction, and return the link, its QR code and the result secret.

        Raises ``InvalidValue`` (request, DCQL), ``UnknownType``, ``TypeNotAllowed``, ``UnknownItem``.
        """
        item = None if item_id is None else self.catalogue.item(item_id)
        department = self.department(staff.department)
        query = self._dcql(department, credentials, item)
        with unit_of_work(self._sessions) as tx:
            return self._start_transaction(tx, department, query, staff_id=staff.id, item_id=item_id, purpose=purpose,
                                           actor=f"staff:{staff.id}")

    def _start_transaction(
        self, tx: Session, department: Department, query: Mapping[str, Any], *, staff_id: str | None,
        item_id: str | None, purpose: str | None, actor: str,
    ) -> RequestCreated:
        # One signed Request Object and its stored transaction, in the caller's database transaction.
        now = self.now()
        transaction_id = self._token(16)
        secret = self._token(32)
        origin = self._origin(department)
        signer = self._department_signer(tx, department)
        try:
            created = vp.create_request(
                dns_name=department.dns_name, signer=signer,
                x5c=load_pem_certificates(department.certificate or ""),
                response_uri=f"{origin}/verifier/oid4vp/responses/{transaction_id}",
                request_uri=f"{origin}/verifier/oid4vp/requests/{transaction_id}",
                dcql_query=query, now=now, client_name=department.name_zh, purpose=purpose,
                lifetime=self.policy.request_lifetime, nonce_source=self._token,
            )
        except vp.OpenId4VpError as exc:
            raise InvalidValue(exc.description) from exc
        expires_at = now + timedelta(seconds=self.policy.request_lifetime)
        store.create_transaction(
            tx, transaction_id=transaction_id, department=department.slug, staff_id=staff_id,
            secret_hash=_sha256(secret), request=created.request.claims(), request_object=created.request_object,
            item_id=item_id, now=now, expires_at=expires_at,
        )
        store.append_audit(tx, department=department.slug, at=now, actor=actor,
                           action="request.created", subject=transaction_id, details={"item": item_id})
        return RequestCreated(transaction_id, department.slug, created.uri,
                              f"{origin}/verifier/oid4vp/requests/{transaction_id}", expires_at, secret,
                              qr.render_svg(created.uri), qr.render_png(created.uri))

    def _transaction(self, transaction_id: str) -> store.Transaction:
        with unit_of_work(self._sessions, read_only=True) as tx:
            found = store.get_transaction(tx, transaction_id=transaction_id)
        if found is None:
            raise UnknownRequest()
        return found

    def request_object(self, transaction_id: str) -> str:
        """The signed Request Object of a pending transaction (``application/oauth-authz-req+jwt``).

        Raises ``UnknownRequest``, ``RequestExpired``, ``ResponseAlreadyReceived``.
        """
        found = self._transaction(transaction_id)
        if found.status is not store.TransactionStatus.PENDING:
            raise ResponseAlreadyReceived()
        if found.expires_at <= self.now():
            raise RequestExpired()
        return found.request_object

    def direct_post(self, transaction_id: str, form: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
        """Receive the wallet's ``direct_post`` response (OpenID4VP s8.2), verify it, store the verdict.

        A malformed body or a response for another transaction's ``state`` is refused without using up
        the transaction (``invalid_request``); otherwise the transaction takes this response only.
        Returns ``{}``; raises ``UnknownRequest``, ``RequestExpired``, ``ResponseAlreadyReceived``,
        the protocol's ``OpenId4VpError``, or ``ResponseRejected`` (the failure's code) after recording it.
        """
        found = self._transaction(transaction_id)
        request = vp.AuthorizationRequest.from_claims(_thaw(found.request))
        response = vp.parse_response_form(form)
        if response.state != request.state:
            raise vp.InvalidRequest("the response's state is not this transaction's", reason="state_mismatch")
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            try:
                store.claim_transaction(tx, transaction_id=transaction_id, now=now)
            except store.Spent as exc:
                raise {"expired": RequestExpired, "used": ResponseAlreadyReceived}.get(exc.reason, UnknownRequest)() from exc
        try:
            return self._verify_response(found, request, response, now)
        except (ResponseRejected, RequestExpired, ResponseAlreadyReceived, UnknownRequest):
            raise
        except Exception:
            # A fault of ours after the transaction was taken: fail closed, never leave it "responding".
            with unit_of_work(self._sessions) as tx:
                with contextlib.suppress(NotFound):
                    store.complete_transaction(tx, transaction_id=transaction_id, verdict="cannot_verify",
                                               code="server_error", result={"verdict": "cannot_verify",
                                                                            "error": "server_error",
                                                                            "message": messages("server_error")})
            raise

    def _verify_response(
        self, found: store.Transaction, request: vp.AuthorizationRequest, response: vp.AuthorizationResponse,
        now: datetime,
    ) -> dict[str, Any]:
        transaction_id = found.id
        department = self.department(found.department)
        sdk = self._sdk(department, now=now.timestamp())
        results: dict[int, VerificationResult] = {}

        def verify_presentation(text: str, kb: Any) -> Any:
            result = sdk.verify(text, nonce=None if kb is None else kb.nonce, audience=None if kb is None else kb.aud)
            results[id(result.credential)] = result
            return result.credential

        cards: list[dict[str, Any]] = []
        evidence: list[Evidence] = []
        with unit_of_work(self._sessions, read_only=True) as tx:
            login = store.get_login_by_transaction(tx, transaction_id=transaction_id)
            portal = None if login is None else store.get_portal(tx, client_id=login.client_id)
        identity: dict[str, Any] | None = None
        try:
            verified = vp.verify_response(response, request=request, now=now.timestamp(),
                                          verify_presentation=verify_presentation,
                                          max_age=self.policy.freshness, skew=self.policy.skew)
        except vp.OpenId4VpError as exc:
            code = exc.reason if exc.reason in _MESSAGES or exc.reason == exc.code else exc.code
            verdict = "refused" if response.error is not None else "invalid"
            cards.append({"verdict": verdict, "error": code, "error_description": exc.description,
                          "message": messages(code)})
        except CredentialError as exc:
            cards.append(self._failure_card(exc))
        else:
            for creds in verified.credentials.values():
                for credential in creds:
                    result = results[id(credential)]
                    cards.append(self._valid_card(result))
                    evidence.append(_evidence(result, now))
            if portal is not None:
                # A login asks more of the presentations than that each verifies (verifier.oidc.evaluate_login).
                try:
                    identity = oidc.evaluate_login(verified.credentials, discarded=[d.code for d in verified.discarded],
                                                   now=now, item_id=portal.item_id).to_json()
                except oidc.LoginRefused as exc:
                    cards.append({"verdict": "invalid", "error": exc.code, "error_description": exc.detail,
                                  "message": messages(exc.code)})
        item = None if found.item_id is None else self.catalogue.item(found.item_id)
        failed = next((c for c in cards if c["verdict"] != "valid"), None)
        verdict = "valid" if failed is None else failed["verdict"]
        code = None if failed is None else failed["error"]
        with unit_of_work(self._sessions) as tx:
            concluded = self._conclude(department, item, channel="online", now=now, cards=cards, evidence=evidence, tx=tx)
            result = {"verdict": verdict, "error": code, "message": messages(code), "cards": cards, **concluded}
            if identity is not None and failed is None:
                result["login"] = identity
            store.complete_transaction(tx, transaction_id=transaction_id, verdict=verdict, code=code, result=result)
            record = store.record_verification(
                tx, department=department.slug, staff_id=found.staff_id, channel="online" if portal is None else "login",
                verdict=verdict, code=code,
                vcts=[e.vct for e in evidence], at=now, transaction_id=transaction_id, item_id=found.item_id,
                receipt_id=concluded.get("receipt_id"),
            )
            _audit_verification(tx, record)
        if failed is not None and verdict != "refused":
            raise ResponseRejected(failed.get("error_description") or "the presentation did not verify", code=code or "invalid")
        return {}

    def result(self, staff: Staff, *, transaction_id: str, secret: str | None) -> dict[str, Any]:
        """The state and verdict of a transaction, for the session that created it only.

        Raises ``NotFound`` for an unknown transaction, another department's, or a wrong or missing secret.
        """
        with unit_of_work(self._sessions, read_only=True) as tx:
            found = store.get_transaction(tx, transaction_id=transaction_id)
        if (
            found is None
            or found.department != staff.department
            or not isinstance(secret, str)
            or not hmac.compare_digest(_sha256(secret), found.secret_hash)
        ):
            raise NotFound("no such request")
        out: dict[str, Any] = {"transaction_id": found.id, "expires_at": _iso(found.expires_at), "item": found.item_id}
        if found.status is store.TransactionStatus.COMPLETE:
            out.update(status="complete", **({} if found.result is None else _thaw(found.result)))
        elif found.expires_at + timedelta(seconds=self._grace(found)) <= self.now():
            out.update(status="expired", verdict=None)
        else:
            out.update(status="pending", verdict=None)
        return out

    def _grace(self, found: store.Transaction) -> float:
        # A response taken just before expiry is still being verified: wait for its verdict a little.
        return self.policy.skew if found.status is store.TransactionStatus.RESPONDING else 0

    # -- catalogue and audit ---------------------------------------------------------------------------

    def items(self) -> list[dict[str, Any]]:
        """The service items of the catalogue (JSON-ready)."""
        return [item.to_json() for item in self.catalogue.items.values()]

    def verifications(self, staff: Staff, *, limit: int = 100) -> list[dict[str, Any]]:
        """The newest verifications of the caller's department (the audit; no claims)."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            rows = store.list_verifications(tx, department=staff.department, limit=limit)
        return [
            {"id": r.id, "at": _iso(r.at), "staff_id": r.staff_id, "channel": r.channel, "item": r.item_id,
             "verdict": r.verdict, "code": r.code, "vcts": list(r.vcts), "transaction_id": r.transaction_id,
             "receipt_id": r.receipt_id}
            for r in rows
        ]

    def audit(self, staff: Staff, *, limit: int = 100) -> list[dict[str, Any]]:
        """The newest recorded actions of the caller's department."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            rows = store.list_audit(tx, department=staff.department, limit=limit)
        return [{"seq": r.seq, "at": _iso(r.at), "actor": r.actor, "action": r.action, "subject": r.subject,
                 "details": _thaw(r.details), "hash": r.hash} for r in rows]

    def verify_audit(self, staff: Staff) -> dict[str, Any]:
        """Check the caller's department audit chain end to end: ``{"valid", "records"}`` or where it breaks."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            try:
                count = store.verify_audit(tx, department=staff.department)
            except AuditChainBroken as exc:
                return {"valid": False, "seq": exc.seq, "reason": exc.reason, "detail": exc.detail}
        return {"valid": True, "records": count}

    def purge(self) -> int:
        """Drop stored results (personal data) of long-expired transactions and logins, and stale replay entries."""
        with unit_of_work(self._sessions) as tx:
            return (store.purge_expired(tx, now=self.now(), keep_results_for=self.policy.keep_results_for)
                    + store.purge_logins(tx, now=self.now(), keep_for=self.policy.keep_results_for))

    # -- log in with e-licence (OpenID Connect) --------------------------------------------------------

    @property
    def oidc_issuer(self) -> str:
        """The OpenID Provider's issuer identifier (its discovery document is under ``/.well-known``)."""
        return f"{self.public_url}/verifier"

    def register_portal(
        self,
        staff: Staff,
        *,
        name: str,
        redirect_uris: Sequence[str],
        allow_staff: bool = True,
        item_id: str | None = None,
        actor: str | None = None,
    ) -> NewPortal:
        """Register a portal as an OpenID Connect client of the caller's department; its secret is shown once.

        Raises ``InvalidValue`` (redirect URIs, name), ``TypeNotAllowed`` (the department does not accept
        the business licence, or the staff authorisation when ``allow_staff``), ``UnknownItem``.
        """
        if not isinstance(redirect_uris, (list, tuple)) or not redirect_uris or len(redirect_uris) > 10:
            raise InvalidValue("redirect_uris must list 1 to 10 URIs")
        for uri in redirect_uris:
            try:
                oidc.check_redirect_uri(uri)
            except oidc.OidcError as exc:
                raise InvalidValue(f"redirect_uris: {exc.detail}") from exc
        if item_id is not None:
            self.catalogue.item(item_id)
        department = self.department(staff.department)
        needed = [_BUSINESS_LICENCE] + ([_STAFF_AUTHORISATION] if allow_staff else [])
        for slug in needed:
            if get_type(slug).vct not in department.vcts:
                raise TypeNotAllowed(f"{department.slug} does not accept {slug}, which a login presents")
        client_id = "elp_" + self._token(16)
        secret = self._token(32)
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            portal = store.create_portal(
                tx, client_id=client_id, department=department.slug, name=name,
                secret_hash=_sha256(secret), redirect_uris=list(redirect_uris), allow_staff=bool(allow_staff),
                item_id=item_id, pairwise_salt=self._token(32), now=now,
            )
            store.append_audit(tx, department=department.slug, at=now, actor=actor or f"staff:{staff.id}",
                               action="portal.registered", subject=client_id,
                               details={"name": name, "redirect_uris": list(redirect_uris), "allow_staff": allow_staff,
                                        "item": item_id})
        return NewPortal(portal, secret)

    def portals(self, staff: Staff) -> list[dict[str, Any]]:
        """The portals of the caller's department (no secrets)."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            rows = store.list_portals(tx, department=staff.department)
        return [{"client_id": p.client_id, "name": p.name, "redirect_uris": list(p.redirect_uris),
                 "allow_staff": p.allow_staff, "item": p.item_id, "created_at": _iso(p.created_at),
                 "revoked_at": _iso(p.revoked_at)} for p in rows]

    def revoke_portal(self, staff: Staff, *, client_id: str) -> store.Portal:
        """Revoke a portal of the caller's department (and its access tokens); raises ``NotFound``."""
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            portal = store.revoke_portal(tx, department=staff.department, client_id=client_id, now=now)
            store.append_audit(tx, department=staff.department, at=now, actor=f"staff:{staff.id}",
                               action="portal.revoked", subject=client_id)
        return portal

    def oidc_metadata(self) -> dict[str, Any]:
        """The OpenID Provider Metadata (Discovery 1.0)."""
        return oidc.provider_metadata(self.oidc_issuer)

    def _oidc_signer(self) -> Signer:
        with unit_of_work(self._sessions) as tx:
            keystore = self._keystore(OIDC_OWNER, tx)
            active = keystore.list(owner=OIDC_OWNER, states=(KeyState.ACTIVE,))
            if active:
                kid = max(active, key=lambda r: (r.created_at, r.kid)).kid
            else:
                # The provider's key is the deployment's own, created on first use in any mode; portals
                # find it in the JWKS, so no one has to be told about it.
                kid = keystore.generate("ES256", now=self.now(), owner=OIDC_OWNER, label="OpenID Connect ID tokens")
                store.append_audit(tx, department=_DEPLOYMENT, at=self.now(), actor="oidc", action="oidc.key.created",
                                   subject=kid)
            signer = self._signers.get(kid)
            if signer is None:
                signer = self._signers[kid] = keystore.signer(kid)
        return signer

    def oidc_jwks(self) -> dict[str, Any]:
        """The JWK Set of the ID Token signing keys (created on first use)."""
        self._oidc_signer()
        with unit_of_work(self._sessions, read_only=True) as tx:
            return self._keystore(OIDC_OWNER, tx).jwks(owner=OIDC_OWNER)

    def oidc_authorize(self, params: Mapping[str, Any]) -> LoginStarted:
        """Start a login: check the authorization request, create the portal department's OpenID4VP request
        for the licence (and a staff authorisation), and return what the browser shows and polls with.

        Raises ``OidcError``: not redirectable (unknown or revoked client, unregistered ``redirect_uri``)
        or marked with the portal's ``redirect_uri`` and ``state`` (RFC 6749 s4.1.2.1).
        """
        client_id = params.get("client_id")
        if isinstance(client_id, (list, tuple)) and len(client_id) == 1:
            client_id = client_id[0]
        with unit_of_work(self._sessions, read_only=True) as tx:
            portal = store.get_portal(tx, client_id=client_id) if isinstance(client_id, str) else None
        if portal is not None and portal.revoked_at is not None:
            portal = None
        request = oidc.validate_authorization_request(
            params, registered_redirect_uris=None if portal is None else portal.redirect_uris)
        assert portal is not None
        department = self.department(portal.department)
        login_id = self._token(16)
        browser_secret = self._token(32)
        with unit_of_work(self._sessions) as tx:
            created = self._start_transaction(tx, department, oidc.login_dcql(allow_staff=portal.allow_staff),
                                              staff_id=None, item_id=None, purpose=f"登录 {portal.name}"[:200],
                                              actor=f"portal:{portal.client_id}")
            store.create_login(
                tx, login_id=login_id, client_id=portal.client_id, transaction_id=created.transaction_id,
                browser_hash=_sha256(browser_secret), redirect_uri=request.redirect_uri, state=request.state,
                nonce=request.nonce, code_challenge=request.code_challenge, scope=" ".join(request.scope),
                now=self.now(), expires_at=created.expires_at,
            )
        return LoginStarted(login_id, browser_secret, portal.name, department.name_zh, department.name_en,
                            created.uri, created.expires_at, created.qr_svg)

    def _finish_login(self, login: store.Login, *, now: datetime) -> str | None:
        # Decide a pending login from its transaction; returns the code when this call issued it.
        transaction = self._transaction(login.transaction_id)
        code = None
        identity = None
        error: oidc.OidcError | None = None
        if transaction.status is store.TransactionStatus.COMPLETE:
            result = _thaw(transaction.result) if transaction.result is not None else {}
            identity = result.get("login")
            if transaction.verdict == "valid" and isinstance(identity, dict):
                code = self._token(32)
            elif transaction.verdict == "refused":
                error = oidc.AccessDenied("the holder declined the request", reason="refused")
            else:
                error = oidc.AccessDenied(f"the presentation did not verify: {transaction.code or 'invalid'}",
                                          reason=transaction.code or "invalid")
        elif transaction.expires_at + timedelta(seconds=self._grace(transaction)) <= now:
            error = oidc.AccessDenied("nobody answered the request before it expired", reason="request_expired")
        else:
            return None
        with unit_of_work(self._sessions) as tx:
            try:
                store.finish_login(
                    tx, login_id=login.id, code_hash=None if code is None else _sha256(code),
                    code_expires_at=None if code is None else now + timedelta(seconds=self.policy.code_lifetime),
                    identity=identity if code is not None else None, auth_time=transaction.responded_at,
                    error=None if error is None else error.code,
                    error_description=None if error is None else error.detail,
                )
            except store.Spent:
                return None  # another poll finished it first: that one delivers the answer
            store.append_audit(tx, department=transaction.department, at=now, actor=f"portal:{login.client_id}",
                               action="login.succeeded" if code is not None else "login.failed", subject=login.id,
                               details={"transaction": transaction.id,
                                        "reason": None if error is None else error.reason})
        return code

    def oidc_status(self, login_id: str, *, browser_secret: str | None) -> dict[str, Any]:
        """Where a login stands, for the browser that started it: ``pending``, or ``complete`` with the
        redirect to the portal (the code is delivered once), ``failed`` with the error redirect, or ``finished``.

        Raises ``NotFound`` for an unknown login or a wrong or missing browser secret.
        """
        with unit_of_work(self._sessions, read_only=True) as tx:
            login = store.get_login(tx, login_id=login_id)
        if (login is None or not isinstance(browser_secret, str)
                or not hmac.compare_digest(_sha256(browser_secret), login.browser_hash)):
            raise NotFound("no such login")
        now = self.now()
        if login.status is store.LoginStatus.PENDING:
            code = self._finish_login(login, now=now)
            if code is not None:
                return {"status": "complete",
                        "redirect_to": oidc.code_redirect(login.redirect_uri, code=code, state=login.state,
                                                          issuer=self.oidc_issuer)}
            with unit_of_work(self._sessions, read_only=True) as tx:
                login = store.get_login(tx, login_id=login_id)
            assert login is not None
            if login.status is store.LoginStatus.PENDING:
                return {"status": "pending", "expires_at": _iso(login.expires_at)}
        if login.status is store.LoginStatus.FAILED:
            error = oidc.AccessDenied(login.error_description)
            return {"status": "failed", "error": login.error,
                    "redirect_to": oidc.error_redirect(login.redirect_uri, error, state=login.state,
                                                       issuer=self.oidc_issuer)}
        return {"status": "finished"}

    def _portal_client(self, client_id: str, secret: str) -> store.Portal:
        with unit_of_work(self._sessions, read_only=True) as tx:
            portal = store.get_portal(tx, client_id=client_id)
        # Compare a hash even for an unknown client, so timing does not tell which client ids exist.
        expected = portal.secret_hash if portal is not None else _sha256("")
        good = hmac.compare_digest(_sha256(secret), expected)
        if portal is None or portal.revoked_at is not None or not good:
            raise oidc.InvalidClient("unknown client or wrong client secret", reason="bad_client_credentials")
        return portal

    def oidc_token(self, form: Mapping[str, str], *, authorization: str | None = None) -> dict[str, Any]:
        """The token endpoint (RFC 6749 s4.1.3, OIDC Core s3.1.3): redeem a code for an ID Token and an access token.

        Raises ``OidcError``: ``invalid_client`` (authentication), ``invalid_request``,
        ``unsupported_grant_type``, ``invalid_grant`` (``reason``: ``unknown_code``, ``code_reused`` —
        the login is then revoked —, ``code_expired``, ``redirect_uri_mismatch``, ``pkce_mismatch``).
        """
        client_id, secret = oidc.client_credentials(authorization, form)
        portal = self._portal_client(client_id, secret)
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise oidc.InvalidRequest("grant_type is required")
        if grant_type != "authorization_code":
            raise oidc.UnsupportedGrantType(f"grant_type {grant_type[:40]!r} is not supported")
        code = form.get("code")
        if not code:
            raise oidc.InvalidRequest("code is required", reason="missing_code")
        code_hash = _sha256(code)
        with unit_of_work(self._sessions, read_only=True) as tx:
            login = store.get_login_by_code(tx, code_hash=code_hash)
        if login is None or login.client_id != portal.client_id:
            # RFC 6749 s4.1.3: "ensure that the authorization code was issued to the authenticated confidential client".
            raise oidc.InvalidGrant("no such authorization code for this client", reason="unknown_code")
        if login.status is store.LoginStatus.CODE:
            # RFC 6749 s4.1.3: redirect_uri must be "identical" to the one of the authorization request.
            if form.get("redirect_uri") != login.redirect_uri:
                raise oidc.InvalidGrant("redirect_uri differs from the authorization request's",
                                        reason="redirect_uri_mismatch")
            oidc.check_pkce(form.get("code_verifier"), login.code_challenge)
        now = self.now()
        access_token = self._token(32)
        spent: store.Spent | None = None
        with unit_of_work(self._sessions) as tx:
            try:
                login = store.redeem_code(tx, code_hash=code_hash, client_id=portal.client_id, now=now,
                                          access_hash=_sha256(access_token),
                                          access_expires_at=now + timedelta(seconds=self.policy.access_token_lifetime))
            except store.Spent as exc:
                # Committed: a reused code revokes the login (RFC 6749 s4.1.2: "SHOULD revoke ... all tokens").
                spent = exc
                store.append_audit(tx, department=portal.department, at=now, actor=f"portal:{portal.client_id}",
                                   action="login.code_refused", subject=login.id, details={"reason": exc.reason})
        if spent is not None:
            if spent.reason == "used":
                raise oidc.InvalidGrant("the authorization code was already used; the login is revoked",
                                        reason="code_reused")
            if spent.reason == "expired":
                raise oidc.InvalidGrant("the authorization code has expired", reason="code_expired")
            raise oidc.InvalidGrant("no such authorization code for this client", reason="unknown_code")
        assert login.identity is not None and login.auth_time is not None
        identity = oidc.LoginIdentity.from_json(_thaw(login.identity))
        claims = oidc.id_token_claims(identity, issuer=self.oidc_issuer, client_id=portal.client_id,
                                      salt=portal.pairwise_salt, nonce=login.nonce, auth_time=login.auth_time, now=now,
                                      lifetime=self.policy.id_token_lifetime)
        id_token = jws.sign(claims, self._oidc_signer(), typ=oidc.ID_TOKEN_TYP)
        return {"access_token": access_token, "token_type": "Bearer",
                "expires_in": self.policy.access_token_lifetime, "id_token": id_token, "scope": login.scope}

    def oidc_userinfo(self, access_token: str | None) -> dict[str, Any]:
        """The UserInfo claims (OIDC Core s5.3) of an unexpired access token; raises ``InvalidToken``."""
        if not access_token:
            raise oidc.InvalidToken("an access token is required", reason="missing_token")
        with unit_of_work(self._sessions, read_only=True) as tx:
            login = store.get_login_by_access_token(tx, access_hash=_sha256(access_token), now=self.now())
            portal = None if login is None else store.get_portal(tx, client_id=login.client_id)
        if login is None or portal is None or login.identity is None or login.auth_time is None:
            raise oidc.InvalidToken("the access token is invalid, expired or revoked")
        identity = oidc.LoginIdentity.from_json(_thaw(login.identity))
        claims = oidc.id_token_claims(identity, issuer=self.oidc_issuer, client_id=portal.client_id,
                                      salt=portal.pairwise_salt, nonce=login.nonce, auth_time=login.auth_time,
                                      now=self.now(), lifetime=0)
        return {k: v for k, v in claims.items() if k not in ("iss", "aud", "exp", "iat", "nonce", "auth_time", "amr")}
