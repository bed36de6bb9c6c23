"""The named verification checks, in their fixed order, with what each one proves.

The SD-JWT VC core (:func:`credentials.sd_jwt_vc.verify_vc`) runs ``format`` to ``key_binding`` on a
:class:`~credentials.trace.CheckTrace`; the checks below continue on the same trace: ``status``
(IETF Token Status List), ``policy`` (what this verifier accepts) and ``replay`` (offline codes are
accepted once). Each is a small function that raises a coded error or returns; a new rule is a new
function here, not a new branch elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from credentials.errors import InvalidTyp, MissingClaim, Replay
from credentials.sd_jwt_vc import VerifiedCredential
from credentials.status_list import CachedStatusList

__all__ = [
    "CHECKS",
    "CheckInfo",
    "ReplayStore",
    "check_status",
    "check_policy",
    "check_replay",
    "replay_key",
]


@dataclass(frozen=True, slots=True)
class CheckInfo:
    """A check's stable name and what it establishes, in English and Chinese (for result pages)."""

    name: str
    description: str
    description_zh: str


#: Every check in the order it runs. ``decode`` turns a QR image or compact payload into the
#: presentation; the next six are the SD-JWT VC core; the last three are the verifier's own.
CHECKS: tuple[CheckInfo, ...] = (
    CheckInfo("decode", "QR code or compact payload decoded", "二维码解码"),
    CheckInfo("format", "presentation well-formed (SD-JWT, JWS)", "数据格式"),
    CheckInfo("trusted_issuer", "issuer on the trust list and allowed to issue this type", "签发机关可信"),
    CheckInfo("signature", "issuer signature valid (allowed algorithm, typ dc+sd-jwt)", "签发机关签名"),
    CheckInfo("disclosures", "disclosed claims match the signed digests", "披露内容完整"),
    CheckInfo("validity_period", "within iat/nbf/exp, bounded clock skew", "有效期"),
    CheckInfo("key_binding", "presented by the holder's key (nonce, audience, freshness, sd_hash)", "持有人绑定"),
    CheckInfo("status", "not revoked or suspended (status list)", "证照状态"),
    CheckInfo("policy", "type accepted and required claims disclosed", "核验要求"),
    CheckInfo("replay", "this presentation not seen before", "防重放"),
)


class ReplayStore(Protocol):
    """Remembers presentations for their freshness window (in memory here; a database in services)."""

    def remember(self, key: str, *, expires_at: float, now: float) -> bool:
        """Record ``key`` until ``expires_at``; return False if it is already recorded and unexpired."""
        ...


def check_status(credential: VerifiedCredential, lookup: Any, *, required: bool) -> CachedStatusList | None:
    """Look the credential up in its status list; returns the list used (for its age) or ``None``.

    ``lookup(reference, issuer) -> CachedStatusList`` applies the Token Status List rules (raises
    ``revoked``, ``suspended``, ``status_unavailable``, ``status_list_invalid``). A credential without
    a status reference fails with ``missing_claim`` when status is ``required``: a licence that cannot
    be revoked is not one a department should accept.
    """
    if credential.status is None:
        if required:
            raise MissingClaim("the credential has no status reference, so revocation cannot be checked")
        return None
    return lookup(credential.status, credential.issuer)


def check_policy(
    credential: VerifiedCredential,
    *,
    accepted_vcts: frozenset[str] | None,
    required_claims: Mapping[str, tuple[str | tuple[str, ...], ...]] | tuple[str | tuple[str, ...], ...],
) -> None:
    """The verifier's acceptance rules: the credential type and the claims that must be disclosed.

    ``required_claims`` is a tuple of claims, or a mapping from ``vct`` to such a tuple. A claim is a
    top-level name or a path into nested objects (``("registration", "domicile")``): with recursive
    disclosures an object can be disclosed with none of its members, so naming the object alone
    does not require any member. Raises ``invalid_typ`` for a type not accepted and ``missing_claim``
    naming every claim missing.
    """
    if accepted_vcts is not None and credential.vct not in accepted_vcts:
        raise InvalidTyp(f"credential type {credential.vct!r} is not accepted here")
    required = (
        required_claims.get(credential.vct, ()) if isinstance(required_claims, Mapping) else required_claims
    )
    missing = [_claim_name(claim) for claim in required if not _disclosed(credential.claims, claim)]
    if missing:
        raise MissingClaim(f"required claim(s) not disclosed: {', '.join(missing)}")


def _claim_name(claim: str | tuple[str, ...]) -> str:
    return claim if isinstance(claim, str) else ".".join(claim)


def _disclosed(claims: Mapping[str, Any], claim: str | tuple[str, ...]) -> bool:
    node: Any = claims
    for step in (claim,) if isinstance(claim, str) else claim:
        if not isinstance(node, Mapping) or step not in node:
            return False
        node = node[step]
    return True


def replay_key(credential: VerifiedCredential) -> str | None:
    """The identity of a key-bound presentation: a hash of its KB-JWT claims.

    The claims (``iat``, ``nonce``, ``sd_hash``, ``aud``) are hashed, not the token text: an ECDSA
    signature is malleable, so a re-signed copy of the same KB-JWT must still count as a replay.
    """
    kb = credential.kb_payload
    if kb is None:
        return None
    material = "\x1f".join(str(kb.get(k)) for k in ("iat", "nonce", "sd_hash", "aud"))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def check_replay(credential: VerifiedCredential, store: ReplayStore | None, *, window: float, now: float) -> bool:
    """Refuse a key-bound presentation seen before within its freshness window (``replay``).

    Returns whether the check applied (a presentation without key binding has no identity to
    remember: it is a bearer credential, and the policy decides whether that is acceptable).
    """
    key = replay_key(credential)
    if key is None or store is None:
        return False
    iat = credential.kb_payload["iat"]  # type: ignore[index]
    if not store.remember(key, expires_at=float(iat) + window, now=now):
        raise Replay("this presentation was already verified; ask the holder to refresh the code")
    return True
