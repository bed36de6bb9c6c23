"""The error tree of eLicence credentials, with stable machine-readable codes.

Every failure of parsing or verification raises a subclass of :class:`CredentialError`. Its ``code``
(snake_case) is part of the API contract: the SDK, the services and their users branch on it, and
the services put it in ``{"error": code, "error_description": ...}``. Each class also carries a short
human description in English and Chinese for the pages shown to people.

::

    CredentialError
    ├── Malformed                      malformed
    │   ├── PayloadTooLarge            payload_too_large
    │   ├── MalformedDisclosure        malformed_disclosure
    │   ├── MissingClaim               missing_claim
    │   └── SchemaInvalid              schema_invalid
    ├── JoseError
    │   ├── UnsupportedAlg             unsupported_alg
    │   ├── InvalidSignature           invalid_signature
    │   ├── InvalidTyp                 invalid_typ
    │   ├── InvalidKey                 invalid_key
    │   ├── UnknownKey                 unknown_key
    │   └── CritUnsupported            crit_unsupported
    ├── TrustError
    │   ├── UntrustedIssuer            untrusted_issuer
    │   └── IssuerNotAuthorizedForType issuer_not_authorized_for_type
    ├── CannotVerify                   cannot_verify        (material stale or unavailable: not "invalid")
    │   └── StatusUnavailable          status_unavailable
    ├── ValidityError
    │   ├── Expired                    expired
    │   ├── NotYetValid                not_yet_valid
    │   └── IatInFuture                iat_in_future
    ├── DisclosureError
    │   ├── SdAlgUnsupported           sd_alg_unsupported
    │   ├── DisclosureUnreferenced     disclosure_unreferenced
    │   ├── DigestDuplicate            digest_duplicate
    │   ├── DuplicateDisclosure        duplicate_disclosure
    │   ├── ReservedClaimName          reserved_claim_name
    │   └── ClaimNameCollision         claim_name_collision
    ├── KeyBindingError                kb_invalid
    │   ├── KbMissing                  kb_missing
    │   ├── KbNonceMismatch            kb_nonce_mismatch
    │   ├── KbAudMismatch              kb_aud_mismatch
    │   ├── KbIatOutOfWindow           kb_iat_out_of_window
    │   └── SdHashMismatch             sd_hash_mismatch
    ├── Replay                         replay
    └── StatusError
        ├── Revoked                    revoked
        ├── Suspended                  suspended
        └── StatusListInvalid          status_list_invalid

``KeyBindingError`` itself is raised with code ``kb_invalid`` (bad signature, wrong ``typ``, missing
claims of the key binding JWT); its subclasses name the precise failure.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

__all__ = [
    "CredentialError",
    "Malformed",
    "PayloadTooLarge",
    "MalformedDisclosure",
    "MissingClaim",
    "SchemaInvalid",
    "JoseError",
    "UnsupportedAlg",
    "InvalidSignature",
    "InvalidTyp",
    "InvalidKey",
    "UnknownKey",
    "CritUnsupported",
    "TrustError",
    "UntrustedIssuer",
    "IssuerNotAuthorizedForType",
    "CannotVerify",
    "StatusUnavailable",
    "ValidityError",
    "Expired",
    "NotYetValid",
    "IatInFuture",
    "DisclosureError",
    "SdAlgUnsupported",
    "DisclosureUnreferenced",
    "DigestDuplicate",
    "DuplicateDisclosure",
    "ReservedClaimName",
    "ClaimNameCollision",
    "KeyBindingError",
    "KbMissing",
    "KbNonceMismatch",
    "KbAudMismatch",
    "KbIatOutOfWindow",
    "SdHashMismatch",
    "Replay",
    "StatusError",
    "Revoked",
    "Suspended",
    "StatusListInvalid",
    "ERROR_CLASSES",
    "error_for_code",
    "error_responses",
]


class CredentialError(Exception):
    """Root of the tree. ``code`` is stable; ``detail`` says what exactly was wrong with this input."""

    code: ClassVar[str] = "credential_error"
    description: ClassVar[str] = "The credential could not be processed."
    description_zh: ClassVar[str] = "无法处理该证照。"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.description
        #: The named verification check that raised this error, and those that passed before it
        #: (set by :class:`credentials.trace.CheckTrace`; ``None`` outside a traced verification).
        self.check: str | None = None
        self.passed: tuple[str, ...] = ()
        #: What a failed presentation *claims* (issuer, vct), unverified, for display only (set by the SDK).
        self.claimed: dict[str, str] = {}
        super().__init__(self.detail)

    def to_dict(self) -> dict[str, str]:
        """The OAuth-style error body used by every service and by the CLI's ``--json``."""
        return {"error": self.code, "error_description": self.detail}


class Malformed(CredentialError):
    code = "malformed"
    description = "The input is not well-formed."
    description_zh = "数据格式错误。"


class PayloadTooLarge(Malformed):
    code = "payload_too_large"
    description = "The input exceeds a size or depth limit."
    description_zh = "数据超出大小或层级限制。"


class MalformedDisclosure(Malformed):
    code = "malformed_disclosure"
    description = "A disclosure is not a well-formed base64url JSON array."
    description_zh = "披露项格式错误。"


class MissingClaim(Malformed):
    code = "missing_claim"
    description = "A required claim is missing."
    description_zh = "缺少必需的声明。"


class SchemaInvalid(Malformed):
    code = "schema_invalid"
    description = "The claims do not match the credential type's schema."
    description_zh = "证照内容不符合该证照类型的数据规范。"


class JoseError(CredentialError):
    code = "jose_error"
    description = "The JWS could not be verified."
    description_zh = "签名数据无法验证。"


class UnsupportedAlg(JoseError):
    code = "unsupported_alg"
    description = "The signature algorithm is not allowed."
    description_zh = "不允许的签名算法。"


class InvalidSignature(JoseError):
    code = "invalid_signature"
    description = "The signature does not verify: the data was altered or signed by another key."
    description_zh = "签名无效：数据被篡改或非该密钥签发。"


class InvalidTyp(JoseError):
    code = "invalid_typ"
    description = "The JOSE header 'typ' is not the expected type."
    description_zh = "数据类型（typ）不正确。"


class InvalidKey(JoseError):
    code = "invalid_key"
    description = "The key is invalid, weak, or does not match the algorithm."
    description_zh = "密钥无效、强度不足或与算法不符。"


class UnknownKey(JoseError):
    code = "unknown_key"
    description = "The signing key is not known for this issuer."
    description_zh = "未知的签名密钥。"


class CritUnsupported(JoseError):
    code = "crit_unsupported"
    description = "The JWS marks a header parameter as critical that is not understood."
    description_zh = "包含无法识别的关键头部参数。"


class TrustError(CredentialError):
    code = "trust_error"
    description = "The issuer is not trusted."
    description_zh = "签发机关不受信任。"


class UntrustedIssuer(TrustError):
    code = "untrusted_issuer"
    description = "The issuer is not on the trust list."
    description_zh = "签发机关不在信任列表中。"


class IssuerNotAuthorizedForType(TrustError):
    code = "issuer_not_authorized_for_type"
    description = "The issuer is trusted, but not for this credential type."
    description_zh = "签发机关无权签发此类证照。"


class CannotVerify(CredentialError):
    code = "cannot_verify"
    description = "Trust or status material is stale or unavailable, so validity cannot be established."
    description_zh = "信任列表或状态列表过期或不可用，暂时无法核验。"


class StatusUnavailable(CannotVerify):
    code = "status_unavailable"
    description = "The status list could not be obtained."
    description_zh = "无法获取证照状态列表。"


class ValidityError(CredentialError):
    code = "validity_error"
    description = "The credential is outside its validity period."
    description_zh = "证照不在有效期内。"


class Expired(ValidityError):
    code = "expired"
    description = "The credential has expired."
    description_zh = "证照已过期。"


class NotYetValid(ValidityError):
    code = "not_yet_valid"
    description = "The credential is not yet valid."
    description_zh = "证照尚未生效。"


class IatInFuture(ValidityError):
    code = "iat_in_future"
    description = "The credential claims to be issued in the future."
    description_zh = "签发时间晚于当前时间。"


class DisclosureError(CredentialError):
    code = "disclosure_error"
    description = "The selective disclosures are inconsistent with the signed credential."
    description_zh = "选择性披露内容与签名证照不一致。"


class SdAlgUnsupported(DisclosureError):
    code = "sd_alg_unsupported"
    description = "The disclosure digest algorithm is not supported."
    description_zh = "不支持的披露摘要算法。"


class DisclosureUnreferenced(DisclosureError):
    code = "disclosure_unreferenced"
    description = "A disclosure is not referenced by the signed credential."
    description_zh = "披露项未被签名证照引用。"


class DigestDuplicate(DisclosureError):
    code = "digest_duplicate"
    description = "A digest appears more than once in the credential."
    description_zh = "证照中存在重复的摘要。"


class DuplicateDisclosure(DisclosureError):
    code = "duplicate_disclosure"
    description = "The same disclosure is presented more than once."
    description_zh = "同一披露项出现多次。"


class ReservedClaimName(DisclosureError):
    code = "reserved_claim_name"
    description = "A disclosure uses a reserved claim name (_sd or ...)."
    description_zh = "披露项使用了保留的声明名称。"


class ClaimNameCollision(DisclosureError):
    code = "claim_name_collision"
    description = "A disclosure would overwrite a claim that already exists."
    description_zh = "披露项与已有声明重名。"


class KeyBindingError(CredentialError):
    code = "kb_invalid"
    description = "The key binding proof is invalid."
    description_zh = "持有人密钥绑定证明无效。"


class KbMissing(KeyBindingError):
    code = "kb_missing"
    description = "A key binding proof is required but missing."
    description_zh = "缺少持有人密钥绑定证明。"


class KbNonceMismatch(KeyBindingError):
    code = "kb_nonce_mismatch"
    description = "The key binding proof answers another request (nonce mismatch)."
    description_zh = "绑定证明的随机数与本次请求不符。"


class KbAudMismatch(KeyBindingError):
    code = "kb_aud_mismatch"
    description = "The key binding proof is addressed to another verifier."
    description_zh = "绑定证明的接收方不是本核验方。"


class KbIatOutOfWindow(KeyBindingError):
    code = "kb_iat_out_of_window"
    description = "The presentation is too old or dated in the future."
    description_zh = "出示时间超出允许范围（二维码已失效）。"


class SdHashMismatch(KeyBindingError):
    code = "sd_hash_mismatch"
    description = "The key binding proof does not cover this presentation (sd_hash mismatch)."
    description_zh = "绑定证明与出示内容不符。"


class Replay(CredentialError):
    code = "replay"
    description = "This presentation has already been used."
    description_zh = "该出示码已被使用过。"


class StatusError(CredentialError):
    code = "status_error"
    description = "The credential is not in a valid status."
    description_zh = "证照状态异常。"


class Revoked(StatusError):
    code = "revoked"
    description = "The credential has been revoked."
    description_zh = "证照已被注销或吊销。"


class Suspended(StatusError):
    code = "suspended"
    description = "The credential is suspended."
    description_zh = "证照已被暂停使用。"


class StatusListInvalid(StatusError):
    code = "status_list_invalid"
    description = "The status list token is invalid."
    description_zh = "状态列表无效。"


def _leaves(cls: type[CredentialError]) -> list[type[CredentialError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_leaves(sub))
    return out


#: Every class of the tree by its code (the abstract inner nodes included).
ERROR_CLASSES: dict[str, type[CredentialError]] = {c.code: c for c in _leaves(CredentialError)}


def error_for_code(code: str) -> type[CredentialError]:
    """The class for a stable code; raises ``KeyError`` for an unknown code."""
    return ERROR_CLASSES[code]


#: JSON Schema of the error body every service answers with (:meth:`CredentialError.to_dict` and the
#: roles' own errors): a stable ``error`` code and a human ``error_description``; some errors add
#: details (the issuer's claim validation adds ``fields``).
_ERROR_BODY_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "error_description"],
    "properties": {
        "error": {"type": "string", "description": "stable machine-readable code (snake_case)"},
        "error_description": {"type": "string", "description": "what exactly was wrong, for people"},
    },
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI Response Objects for the HTTP ``statuses`` a service answers with the error body
    ``{"error", "error_description"}`` (FastAPI takes them as ``responses=``); raises ``ValueError`` for
    a number that is not an HTTP status."""
    return {status: {"description": HTTPStatus(status).phrase,
                     "content": {"application/json": {"schema": _ERROR_BODY_SCHEMA}}} for status in statuses}
