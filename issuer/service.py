"""The issuing authority's logic: OpenID4VCI 1.0 issuance, lifecycle, status lists, keys, authorisations.

Pure decisions over the store (``issuer.store``) and the credential core; no web framework here
(``issuer.api`` translates HTTP to these calls). One :class:`IssuerService` serves every authority
of the deployment; an authority's Credential Issuer Identifier is ``<public URL>/issuers/<slug>``.

Protocol (OpenID4VCI 1.0, Pre-Authorized Code Flow; :mod:`credentials.openid4vci` holds the messages):

* :meth:`IssuerService.create_offer`: a Credential Offer for a registry record, by value and by
  reference, with a numeric Transaction Code (PIN) the authority delivers out of band. The
  pre-authorised code is ``HMAC(offer key, offer id)``, where the offer key is derived from the
  key-encryption key (never in the database): the by-reference endpoint can rebuild the offer, and
  the database holds only the code's SHA-256.
* :meth:`IssuerService.token`: the code is single use (conditional update), the PIN has a limited
  number of attempts, counted in their own transaction *before* the PIN is compared, and the offer
  a short lifetime. Errors: ``invalid_request``, ``invalid_grant``, ``unsupported_grant_type``.
* :meth:`IssuerService.nonce`: a single-use ``c_nonce`` stored in the database (any worker).
* :meth:`IssuerService.credential`: the key proof (``openid4vci-proof+jwt``, audience = issuer,
  fresh nonce, ES256/EdDSA, holder key not one of the authority's own) is checked, then one
  transaction allocates a random status index, signs, records the credential and appends the audit
  record. The response is built only after that transaction commits, so no credential leaves
  without its row, its status index and its audit record.

Lifecycle (admin, an :class:`~issuer.store.Operator` of the authority): change of registration
(变更: the record is replaced, its credentials revoked, a new offer created), suspension and
reinstatement, revocation (注销 deregistration, 吊销 revocation as a penalty). Revoking or
suspending a business licence does the same to every staff authorisation granted under it.

Status lists (IETF Token Status List, 2 bits): the served ``statuslist+jwt`` is re-signed whenever
the list's version changed, so an acknowledged change is in the next token served.

Keys: each authority's keys live in the encrypted keystore on the ``issuer_key`` table. Rotation
retires the active key (it stays in the JWKS while credentials it signed are unexpired);
compromise revokes the key and revokes every credential it signed.

Every issuance, status change, authorisation, key and operator event is appended to the authority's
hash-chained audit log in the transaction that makes the change.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, ClassVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.orm import Session, sessionmaker

from credentials import openid4vci as o4
from credentials import sd_jwt_vc
from credentials import status_list as sl
from credentials.errors import CredentialError, UnknownKey
from credentials.sd_jwt import KeyBindingPolicy
from issuer import store
from issuer.store import (
    Authority,
    Conflict,
    Credential,
    CredentialStatus,
    InvalidValue,
    NotFound,
    Offer,
    Operator,
    StoreError,
    unit_of_work,
)
from keys.errors import KeyMaterialError, KeyNotFound
from keys.jwk import b64u_decode, b64u_encode, thumbprint
from keys.keystore import Keystore, KeyState
from keys.signer import Signer
from schemas.errors import SchemaError, UnknownCredentialType
from schemas.registry import CredentialType, get_type

__all__ = [
    "IssuerPolicy",
    "IssuerService",
    "OfferCreated",
    "StatusToken",
    "CredentialRequest",
    "ServiceError",
    "Unauthorized",
    "Forbidden",
    "UnknownType",
    "RecordInvalid",
    "IdempotencyConflict",
    "AuthorisationRefused",
    "NoSigningKey",
    "BUSINESS_LICENCE",
    "STAFF_AUTHORISATION",
    "REVOCATION_REASONS",
]

_log = logging.getLogger(__name__)

BUSINESS_LICENCE = "business-licence"
STAFF_AUTHORISATION = "staff-authorisation"

#: Reasons an operator gives for a revocation. 注销: the enterprise is deregistered; 吊销: the licence
#: is revoked as a penalty; the others are recorded by the service itself.
REVOCATION_REASONS = frozenset({"deregistered", "revoked_as_penalty", "changed", "licence_revoked", "key_compromised", "other"})
#: The reason of an authorisation the enterprise withdrew itself (not an operator's reason).
WITHDRAWN = "withdrawn"
_SUSPEND_CASCADE = "licence_suspended"
#: Dates in claims (an authorisation's valid_from / valid_until) are calendar days in China Standard Time.
_CST = timezone(timedelta(hours=8))
#: Bulk offers are audited as ``offers.created`` records listing at most this many offers each.
_OFFERS_PER_AUDIT_RECORD = 1000
# PIN digits by rejection sampling: bytes >= 250 would make some digits likelier than others.
_BIASED_BYTES = bytes(range(250, 256))
_DIGIT_OF_BYTE = bytes(ord("0") + b % 10 for b in range(256))


# --- errors ---------------------------------------------------------------------------------------------


class ServiceError(StoreError):
    """Errors the service adds to the store's tree; ``http_status`` is what the API answers."""

    code = "service_error"
    http_status: ClassVar[int] = 400


class Unauthorized(ServiceError):
    code = "unauthorized"
    description = "An operator API key is required (Authorization: Bearer <key>)."
    http_status = 401


class Forbidden(ServiceError):
    code = "forbidden"
    description = "This operator may not act for this authority."
    http_status = 403


class UnknownType(ServiceError):
    code = "unknown_credential_type"
    description = "The authority does not issue this credential type."


class RecordInvalid(ServiceError):
    """A record does not fit its type; ``errors`` lists ``(path, message_zh, message_en)`` per field."""

    code = "record_invalid"
    description = "The record does not fit its credential type."

    def __init__(self, detail: str | None = None, *, errors: Sequence[tuple[str, str, str]] = ()) -> None:
        super().__init__(detail)
        self.errors = tuple(errors)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = super().to_dict()
        body["fields"] = [{"path": p, "zh-CN": zh, "en": en} for p, zh, en in self.errors]
        return body


class IdempotencyConflict(ServiceError):
    code = "idempotency_key_reused"
    description = "This Idempotency-Key was used with a different request."
    http_status = 409


class AuthorisationRefused(ServiceError):
    code = "authorisation_refused"
    description = "The business licence presented does not allow this authorisation."
    http_status = 403


class NoSigningKey(ServiceError):
    code = "no_signing_key"
    description = "The authority has no active signing key."
    http_status = 503


# --- values ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuerPolicy:
    """Lifetimes and limits (seconds unless named otherwise)."""

    offer_ttl: int = 30 * 60
    max_offer_ttl: int = 30 * 86400
    token_ttl: int = 300
    nonce_ttl: int = 300
    pin_length: int = 6
    max_pin_attempts: int = 5
    proof_max_age: int = 300
    proof_skew: int = 60
    status_ttl: int = 60
    status_token_lifetime: int = 86400
    credential_days: int = 365
    max_authorisation_days: int = 3 * 366
    proof_algs: tuple[str, ...] = ("ES256", "EdDSA")
    signing_alg: str = "ES256"


@dataclass(frozen=True, slots=True)
class OfferCreated:
    """A new offer: the deep links (by value and by reference) and the PIN, shown once."""

    offer_id: str
    authority: str
    configuration_id: str
    uscc: str
    offer_uri: str
    offer_reference_uri: str
    credential_offer_uri: str
    tx_code: str = field(repr=False)
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "offer_id": self.offer_id,
            "authority": self.authority,
            "credential_configuration_id": self.configuration_id,
            "uscc": self.uscc,
            "offer_uri": self.offer_uri,
            "offer_reference_uri": self.offer_reference_uri,
            "credential_offer_uri": self.credential_offer_uri,
            "tx_code": self.tx_code,
            "expires_at": _iso(self.expires_at),
        }


@dataclass(frozen=True, slots=True)
class _OfferLinks:
    """The deep links of one authority's offers of one configuration, rendered once around placeholders.

    The pre-authorised code (base64url) and the offer id (a UUID) are left as they are by
    percent-encoding, so ``before + value + after`` is exactly the text :func:`o4.offer_uri` and
    :func:`o4.offer_reference_uri` render for each offer, without building and encoding each one.
    """

    authority: str
    configuration_id: str
    by_value: tuple[str, str]
    reference: tuple[str, str]
    by_reference: tuple[str, str]

    def offer(self, offer_id: str, uscc: str, code: str, pin: str, expires_at: datetime) -> OfferCreated:
        return OfferCreated(offer_id, self.authority, self.configuration_id, uscc, code.join(self.by_value),
                            offer_id.join(self.by_reference), offer_id.join(self.reference), pin, expires_at)


def _around(text: str, placeholder: str) -> tuple[str, str]:
    before, found, after = text.partition(placeholder)
    if not found or placeholder in after:  # pragma: no cover - a random placeholder met by chance
        raise RuntimeError("offer link placeholder is not unique")
    return before, after


#: How often a worker signs a status list again when other workers keep later signings of older versions
#: meanwhile (each try signs after the kept one, so a second try is already rare).
_STATUS_SIGNING_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class StatusToken:
    """A signed ``statuslist+jwt`` with what HTTP caching needs."""

    token: str = field(repr=False)
    etag: str
    ttl: int
    version: int
    signed_at: int
    kid: str


@dataclass(frozen=True, slots=True)
class CredentialRequest:
    """A credential request whose form and key proof are checked (:meth:`IssuerService.prepare_credential`),
    waiting for its transaction (:meth:`IssuerService.credential_batch`)."""

    auth: Authority
    ctype: CredentialType
    token_hash: str = field(repr=False)
    proof: o4.ProofResult
    now: datetime


class _Abandon(Exception):
    """A batch of :meth:`IssuerService.credential_batch` is rolled back; each request goes on its own."""


@dataclass(frozen=True, slots=True)
class _Issuance:
    """One credential to sign and record (:meth:`IssuerService._issue_many`)."""

    ctype: CredentialType
    claims: dict[str, Any]
    uscc: str
    holder_jwk: Mapping[str, Any] | None
    holder_thumbprint: str | None
    record_id: str | None
    granted_under: str | None
    actor: str
    details: Mapping[str, Any]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _sha256(text: str) -> str:
    # UTF-8, not ASCII: codes come from requests, and a non-ASCII one must be an unknown code, not a crash.
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _pin_hash(key: bytes, salt: bytes, pin: str) -> bytes:
    # A 6-digit PIN has 10^6 values: no unkeyed hash, however slow, keeps it from an offline search of a
    # leaked database. Keyed with a KEK-derived key (never stored), the stored value tests nothing without
    # the KEK; online, the attempt limit at the token endpoint and the offer's lifetime protect it.
    return hmac.new(key, salt + pin.encode("utf-8"), hashlib.sha256).digest()


def credential_hash(text: str) -> str:
    """SHA-256 (hex) of a credential's issuer-signed JWT: the same for the issued text and any
    presentation of it, so a presented credential finds its row."""
    return _sha256(text.split("~", 1)[0])


def _json_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def _system_now() -> datetime:
    return datetime.now(timezone.utc)


# --- the service ----------------------------------------------------------------------------------------


class IssuerService:
    """The issuer role over one database; thread-safe (state lives in the database).

    ``kek`` opens the keystore; ``public_url`` is where the deployment is reachable (its issuers are
    ``<public_url>/issuers/<slug>``). ``clock`` and ``random_bytes`` are parameters for tests.
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        kek: bytes,
        public_url: str,
        policy: IssuerPolicy = IssuerPolicy(),
        clock: Callable[[], datetime] = _system_now,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._sessions = sessions
        self._kek = kek
        self.public_url = public_url.rstrip("/")
        self.policy = policy
        self._clock = clock
        self._random = random_bytes
        # The offer key: HKDF-like derivation from the KEK, so the database alone cannot rebuild codes.
        self._offer_key = hmac.new(kek, b"elicence offer codes v1", hashlib.sha256).digest()
        # The offer PINs' key (see _pin_hash), derived the same way.
        self._pin_key = hmac.new(kek, b"elicence offer PINs v1", hashlib.sha256).digest()
        self._idempotency_key = hmac.new(kek, b"elicence idempotency outcomes v1", hashlib.sha256).digest()
        # Decrypted signers by kid: the key's state is read from the database on every use, so a key
        # retired or revoked by another worker stops signing here at once.
        self._signers: dict[str, Signer] = {}
        self._authorities: dict[str, Authority] = {}

    # -- identifiers -------------------------------------------------------------------------------------

    def issuer_id(self, slug: str) -> str:
        """The Credential Issuer Identifier of authority ``slug``."""
        return f"{self.public_url}/issuers/{slug}"

    def endpoint(self, slug: str, name: str) -> str:
        return f"{self.issuer_id(slug)}/{name}"

    def _status_prefix(self, slug: str) -> str:
        return f"{self.issuer_id(slug)}/status/"

    def now(self) -> datetime:
        value = self._clock()
        if value.tzinfo is None:
            raise ValueError("the clock must return an aware datetime")
        return value

    def _token(self, nbytes: int = 32) -> str:
        return b64u_encode(self._random(nbytes))

    # -- authorities and operators -----------------------------------------------------------------------

    def create_authority(
        self,
        *,
        slug: str,
        name_zh: str,
        name_en: str,
        types: Sequence[str],
        region: str = "",
        status_list_size: int = store.DEFAULT_STATUS_LIST_SIZE,
        actor: str = "cli",
    ) -> Authority:
        """Register an authority with its first signing key; raises ``InvalidValue``, ``Conflict``, ``UnknownType``."""
        now = self.now()
        vcts = [self._type(t).vct for t in types]
        with unit_of_work(self._sessions) as tx:
            auth = store.create_authority(
                tx,
                slug=slug,
                issuer_id=self.issuer_id(slug),
                name_zh=name_zh,
                name_en=name_en,
                region=region,
                vcts=vcts,
                now=now,
                status_list_size=status_list_size,
            )
            store.append_audit(tx, chain=slug, at=now, actor=actor, action="authority.created", subject=slug,
                               details={"issuer_id": auth.issuer_id, "vcts": vcts})
            kid = self._keystore(slug, tx).generate(self.policy.signing_alg, now=now, label="signing", owner=slug)
            store.append_audit(tx, chain=slug, at=now, actor=actor, action="key.generated", subject=kid,
                               details={"alg": self.policy.signing_alg})
        return auth

    def authority(self, slug: str) -> Authority:
        """The authority ``slug``; raises ``NotFound``."""
        auth = self._authorities.get(slug)
        if auth is not None:
            return auth
        with store.unit_of_work(self._sessions, read_only=True) as tx:
            auth = store.get_authority(tx, slug=slug)
        if auth is None:
            raise NotFound(f"no issuing authority {slug!r}")
        # An authority's row is written once and never updated (the store has no such function), so a
        # copy kept here cannot go stale; unknown slugs are not remembered (another worker may add them).
        self._authorities[slug] = auth
        return auth

    def authorities(self) -> tuple[Authority, ...]:
        with unit_of_work(self._sessions, read_only=True) as tx:
            return store.list_authorities(tx)

    def create_operator(self, *, authority: str, name: str, actor: str = "cli") -> store.NewOperator:
        """A new operator of ``authority`` and its API key (shown once). Raises ``NotFound``, ``InvalidValue``."""
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            created = store.create_operator(tx, authority=authority, name=name, now=now, random_bytes=self._random)
            store.append_audit(tx, chain=authority, at=now, actor=actor, action="operator.created",
                               subject=created.operator.id, details={"name": name})
        return created

    def revoke_operator(self, operator: Operator, *, operator_id: str) -> Operator:
        """Withdraw an operator's API key (same authority only); raises ``NotFound``, ``Forbidden``."""
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            target = store.get_operator(tx, operator_id=operator_id)
            if target is None or target.authority != operator.authority:
                raise NotFound(f"no operator {operator_id!r} at {operator.authority!r}")
            revoked = store.revoke_operator(tx, operator_id=operator_id, now=now)
            store.append_audit(tx, chain=operator.authority, at=now, actor=_actor(operator),
                               action="operator.revoked", subject=operator_id)
        return revoked

    def authenticate(self, api_key: str | None, *, authority: str) -> Operator:
        """The operator of this API key, if it may act for ``authority``; raises ``Unauthorized``, ``Forbidden``."""
        if not api_key:
            raise Unauthorized()
        with unit_of_work(self._sessions, read_only=True) as tx:
            operator = store.authenticate_operator(tx, api_key=api_key)
        if operator is None:
            raise Unauthorized("the API key is unknown or withdrawn")
        if operator.authority != authority:
            raise Forbidden(f"this operator acts for {operator.authority!r}, not {authority!r}")
        return operator

    # -- types -------------------------------------------------------------------------------------------

    @staticmethod
    def _type(name: str) -> CredentialType:
        try:
            return get_type(name)
        except UnknownCredentialType as exc:
            raise UnknownType(f"no credential type {name!r}") from exc

    def _issued_type(self, auth: Authority, name: str) -> CredentialType:
        ctype = self._type(name)
        if ctype.vct not in auth.vcts:
            raise UnknownType(f"{auth.slug!r} does not issue {ctype.slug!r}")
        return ctype

    def configurations(self, auth: Authority) -> dict[str, CredentialType]:
        """The authority's credential configurations: configuration id (the type slug) -> type."""
        out = {}
        for vct in auth.vcts:
            ctype = get_type(vct)
            out[ctype.slug] = ctype
        return out

    # -- metadata ----------------------------------------------------------------------------------------

    def issuer_metadata(self, slug: str) -> dict[str, Any]:
        """Credential Issuer Metadata (OpenID4VCI 12.2.4) of authority ``slug``; raises ``NotFound``."""
        auth = self.authority(slug)
        configs = [
            o4.configuration_for_type(t, signing_algs=(self.policy.signing_alg,), proof_algs=self.policy.proof_algs)
            for t in self.configurations(auth).values()
        ]
        return o4.issuer_metadata(
            credential_issuer=auth.issuer_id,
            credential_endpoint=self.endpoint(slug, "credential"),
            nonce_endpoint=self.endpoint(slug, "nonce"),
            display={"zh-CN": auth.name_zh, "en": auth.name_en},
            configurations=configs,
        )

    def authorization_server_metadata(self, slug: str) -> dict[str, Any]:
        """RFC 8414 metadata of the authority as its own authorization server; raises ``NotFound``."""
        auth = self.authority(slug)
        return o4.authorization_server_metadata(issuer=auth.issuer_id, token_endpoint=self.endpoint(slug, "token"))

    def jwt_vc_issuer_metadata(self, slug: str) -> dict[str, Any]:
        """``/.well-known/jwt-vc-issuer`` (SD-JWT VC s5): the issuer and its JWKS; raises ``NotFound``."""
        auth = self.authority(slug)
        return {"issuer": auth.issuer_id, "jwks": self.jwks(slug)}

    def jwks(self, slug: str) -> dict[str, Any]:
        """Active keys, and retired keys while a credential they signed is unexpired; never revoked ones."""
        now = self.now()
        with unit_of_work(self._sessions, read_only=True) as tx:
            keystore = self._keystore(slug, tx)
            keep = []
            for record in keystore.list(owner=slug, states=(KeyState.ACTIVE, KeyState.RETIRED)):
                if record.state is KeyState.RETIRED and not store.key_has_unexpired_credentials(tx, kid=record.kid, now=now):
                    continue
                keep.append(record)
            keep.sort(key=lambda r: (r.state is not KeyState.ACTIVE, -r.created_at.timestamp()))
            keys = [keystore.public_jwk(r.kid) for r in keep]
        return {"keys": keys}

    @staticmethod
    def type_metadata(name: str) -> dict[str, Any]:
        """The SD-JWT VC type metadata document served at a ``vct``; raises ``UnknownType``."""
        return dict(IssuerService._type(name).metadata)

    # -- keys --------------------------------------------------------------------------------------------

    def _keystore(self, slug: str, tx: Session) -> Keystore:
        return Keystore(store.SqlKeyRecordStore(self._sessions, slug).using(tx), self._kek)

    def _signer(self, tx: Session, slug: str) -> Signer:
        return self._signer_and_kids(tx, slug)[0]

    def _signer_and_kids(self, tx: Session, slug: str) -> tuple[Signer, frozenset[str]]:
        """The newest active key's signer, and the kids of every key the authority ever had (one read)."""
        keystore = self._keystore(slug, tx)
        records = keystore.list(owner=slug)
        active = [r for r in records if r.state is KeyState.ACTIVE]
        if not active:
            raise NoSigningKey(f"authority {slug!r} has no active signing key")
        newest = max(active, key=lambda r: (r.created_at, r.kid))
        signer = self._signers.get(newest.kid)
        if signer is None:
            signer = keystore.signer(newest.kid)
            self._signers[newest.kid] = signer
        return signer, frozenset(r.kid for r in records)

    def keys(self, operator: Operator) -> list[dict[str, Any]]:
        """The authority's key records (no private material)."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            records = self._keystore(operator.authority, tx).list(owner=operator.authority)
        return [
            {"kid": r.kid, "alg": r.alg, "state": r.state.value, "created_at": _iso(r.created_at),
             "retired_at": _iso(r.retired_at), "revoked_at": _iso(r.revoked_at)}
            for r in records
        ]

    def rotate_key(self, operator: Operator, *, alg: str | None = None) -> dict[str, Any]:
        """A new active key; the active ones are retired (kept in the JWKS while their credentials live)."""
        now = self.now()
        slug = operator.authority
        alg = alg or self.policy.signing_alg
        with unit_of_work(self._sessions) as tx:
            store.lock_authority(tx, slug=slug)
            keystore = self._keystore(slug, tx)
            old = [r.kid for r in keystore.list(owner=slug, states=(KeyState.ACTIVE,))]
            try:
                kid = keystore.generate(alg, now=now, label="signing", owner=slug)
            except KeyMaterialError as exc:
                raise InvalidValue(str(exc)) from exc
            for old_kid in old:
                keystore.retire(old_kid, now=now)
            store.append_audit(tx, chain=slug, at=now, actor=_actor(operator), action="key.rotated", subject=kid,
                               details={"alg": alg, "retired": old})
        return {"kid": kid, "retired": old}

    def compromise_key(self, operator: Operator, *, kid: str, reason: str = "") -> dict[str, Any]:
        """Revoke ``kid`` and every credential it signed; a new key is made if it was the active one.

        Raises ``NotFound`` (no such key of this authority), ``InvalidTransition`` (already revoked).
        """
        now = self.now()
        slug = operator.authority
        with unit_of_work(self._sessions) as tx:
            store.lock_authority(tx, slug=slug)
            keystore = self._keystore(slug, tx)
            try:
                record = keystore.record(kid)
            except KeyNotFound as exc:
                raise NotFound(f"no key {kid!r} at {slug!r}") from exc
            if record.state is KeyState.REVOKED:
                raise store.InvalidTransition(f"key {kid!r} is already revoked")
            keystore.revoke(kid, now=now)
            self._signers.pop(kid, None)
            entries = [store.AuditEntry(now, _actor(operator), "key.compromised", kid, {"reason": reason})]
            replacement = None
            if record.state is KeyState.ACTIVE and not keystore.list(owner=slug, states=(KeyState.ACTIVE,)):
                replacement = keystore.generate(self.policy.signing_alg, now=now, label="signing", owner=slug)
                entries.append(store.AuditEntry(now, _actor(operator), "key.generated", replacement,
                                                {"alg": self.policy.signing_alg, "replaces": kid}))
            revoked = store.revoke_credentials_of_key(tx, kid=kid, reason="key_compromised", now=now)
            entries += [
                store.AuditEntry(now, _actor(operator), "credential.revoked", c.id,
                                 {"reason": "key_compromised", "kid": kid, "status_idx": c.status_idx,
                                  "status_list": c.status_list_id})
                for c in revoked
            ]
            # A licence revoked here takes its authorisations along, also those another key signed
            # (granted after a rotation); those signed by this key were revoked just above.
            for grant in store.live_authorisations_under_key(tx, kid=kid):
                updated = store.set_credential_status(tx, credential_id=grant.id, status=CredentialStatus.REVOKED,
                                                      reason="licence_revoked", now=now)
                entries.append(_status_entry(now, _actor(operator), updated, "licence_revoked"))
            store.append_audits(tx, chain=slug, entries=entries)
        return {"kid": kid, "revoked_credentials": len(revoked), "new_kid": replacement}

    # -- registry records --------------------------------------------------------------------------------

    def _record_input(self, auth: Authority, type_name: str, claims: Any) -> store.RecordInput:
        ctype = self._issued_type(auth, type_name)
        if ctype.slug == STAFF_AUTHORISATION:
            raise UnknownType("staff authorisations are requested by the legal representative, not imported")
        try:
            ctype.validate_claims(claims)
        except SchemaError as exc:
            raise RecordInvalid(str(exc), errors=[(str(e.path) if not isinstance(e.path, str) else e.path, e.message_zh, e.message_en)
                                                  for e in getattr(exc, "errors", ())]) from exc
        uscc = claims.get("uscc") if isinstance(claims, Mapping) else None
        if not isinstance(uscc, str):
            raise RecordInvalid(f"records of {ctype.slug!r} need a 'uscc'")
        return store.RecordInput(ctype.vct, uscc, claims)

    def import_record(self, operator: Operator, *, type_name: str, claims: Any) -> store.Record:
        """Validate and store (insert or replace) one registry record; raises ``RecordInvalid``, ``UnknownType``."""
        auth = self.authority(operator.authority)
        item = self._record_input(auth, type_name, claims)
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            record = store.upsert_record(tx, authority=auth.slug, vct=item.vct, uscc=item.uscc, claims=item.claims, now=now)
            store.append_audit(tx, chain=auth.slug, at=now, actor=_actor(operator), action="record.imported",
                               subject=record.id, details={"vct": item.vct, "uscc": item.uscc,
                                                          "claims_hash": _json_hash(store.plain_json(item.claims))})
        return record

    def validate_records(self, authority: str, rows: Iterable[tuple[int, str, Any]]) -> list[store.RecordInput]:
        """Check ``(line, type, claims)`` rows; raises ``store.InvalidRow`` naming the first bad line."""
        auth = self.authority(authority)
        out = []
        for line, type_name, claims in rows:
            try:
                out.append(self._record_input(auth, type_name, claims))
            except (RecordInvalid, UnknownType) as exc:
                raise store.InvalidRow(f"line {line}: {exc.detail}", index=line, reason=exc.detail) from exc
        return out

    def import_records(self, authority: str, records: Sequence[store.RecordInput], *, actor: str = "cli") -> int:
        """Store a checked batch whole or not at all (see :meth:`validate_records`)."""
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            count = store.import_records(tx, authority=authority, records=records, now=now)
            store.append_audit(tx, chain=authority, at=now, actor=actor, action="records.imported", subject=authority,
                               details={"count": count})
        return count

    def refresh_record_statistics(self) -> None:
        """Tell the database how the record table looks after a bulk import (see
        :func:`issuer.store.refresh_record_statistics`); call it once after the last batch."""
        with unit_of_work(self._sessions) as tx:
            store.refresh_record_statistics(tx)

    def get_record(self, operator: Operator, *, type_name: str, uscc: str) -> store.Record:
        auth = self.authority(operator.authority)
        ctype = self._issued_type(auth, type_name)
        with unit_of_work(self._sessions, read_only=True) as tx:
            record = store.get_record(tx, authority=auth.slug, vct=ctype.vct, uscc=uscc)
        if record is None:
            raise NotFound(f"no {ctype.slug} record for {uscc}")
        return record

    # -- offers ------------------------------------------------------------------------------------------

    def _code_for(self, offer_id: str) -> str:
        return b64u_encode(hmac.new(self._offer_key, offer_id.encode("ascii"), hashlib.sha256).digest())

    def _offer_ttl(self, ttl: int | None) -> int:
        if ttl is None:
            return self.policy.offer_ttl
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= self.policy.max_offer_ttl:
            raise InvalidValue(f"expires_in must be an integer from 60 to {self.policy.max_offer_ttl} seconds")
        return ttl

    def _new_offer(
        self,
        tx: Session,
        *,
        auth: Authority,
        configuration_id: str,
        uscc: str,
        now: datetime,
        ttl: int,
        record_id: str | None = None,
        claims: Mapping[str, Any] | None = None,
        granted_under: str | None = None,
    ) -> OfferCreated:
        offer_id = str(uuid.UUID(bytes=self._random(16), version=4))
        code = self._code_for(offer_id)
        (pin,) = self._pins(1)
        salt = self._random(16)
        expires_at = now + timedelta(seconds=ttl)
        store.create_offer(
            tx,
            offer_id=offer_id,
            authority=auth.slug,
            configuration_id=configuration_id,
            code_hash=_sha256(code),
            expires_at=expires_at,
            now=now,
            record_id=record_id,
            pin_salt=salt,
            pin_hash=_pin_hash(self._pin_key, salt, pin),
            claims=claims,
            granted_under=granted_under,
        )
        reference = self.endpoint(auth.slug, f"offers/{offer_id}")
        offer = self._offer_value(auth, configuration_id, code)
        return OfferCreated(
            offer_id=offer_id,
            authority=auth.slug,
            configuration_id=configuration_id,
            uscc=uscc,
            offer_uri=o4.offer_uri(offer),
            offer_reference_uri=o4.offer_reference_uri(reference),
            credential_offer_uri=reference,
            tx_code=pin,
            expires_at=expires_at,
        )

    def _pins(self, count: int) -> list[str]:
        """``count`` PINs of ``policy.pin_length`` uniformly random decimal digits (one draw for all)."""
        size = self.policy.pin_length
        digits = b""
        while len(digits) < count * size:
            digits += self._random(2 * (count * size - len(digits))).translate(None, _BIASED_BYTES)
        text = digits.translate(_DIGIT_OF_BYTE).decode("ascii")
        return [text[i : i + size] for i in range(0, count * size, size)]

    def _offer_links(self, auth: Authority, configuration_id: str) -> _OfferLinks:
        code, offer_id = self._token(), str(uuid.UUID(bytes=self._random(16), version=4))
        reference = self.endpoint(auth.slug, f"offers/{offer_id}")
        return _OfferLinks(auth.slug, configuration_id,
                           by_value=_around(o4.offer_uri(self._offer_value(auth, configuration_id, code)), code),
                           reference=_around(reference, offer_id),
                           by_reference=_around(o4.offer_reference_uri(reference), offer_id))

    def _offer_value(self, auth: Authority, configuration_id: str, code: str) -> o4.CredentialOffer:
        return o4.CredentialOffer(
            credential_issuer=auth.issuer_id,
            credential_configuration_ids=(configuration_id,),
            pre_authorized_code=code,
            tx_code=o4.TxCode(
                length=self.policy.pin_length,
                input_mode="numeric",
                description="请输入登记机关提供的取照码 / Enter the PIN from the registration authority",
            ),
        )

    def create_offer(
        self, operator: Operator, *, type_name: str, uscc: str, expires_in: int | None = None
    ) -> OfferCreated:
        """A Credential Offer for the registry record (type, USCC); raises ``NotFound``, ``UnknownType``."""
        auth = self.authority(operator.authority)
        ctype = self._issued_type(auth, type_name)
        ttl = self._offer_ttl(expires_in)
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            record = store.get_record(tx, authority=auth.slug, vct=ctype.vct, uscc=uscc)
            if record is None:
                raise NotFound(f"no {ctype.slug} record for {uscc}; import it first")
            created = self._new_offer(tx, auth=auth, configuration_id=ctype.slug, uscc=uscc, now=now, ttl=ttl,
                                      record_id=record.id)
            store.append_audit(tx, chain=auth.slug, at=now, actor=_actor(operator), action="offer.created",
                               subject=created.offer_id, details={"uscc": uscc, "vct": ctype.vct})
        return created

    def create_offers_bulk(
        self, authority: str, *, type_name: str, usccs: Sequence[str], expires_in: int | None = None, actor: str = "cli",
        replace_open: bool = False,
    ) -> list[OfferCreated]:
        """One offer per record, in one transaction (the CLI's bulk issuance); raises ``NotFound``.

        Audited per batch, not per offer: ``offers.created`` records (subject: the authority) whose
        ``details`` are the type's ``vct`` and ``offers``, the ``[offer id, USCC]`` pairs, at most
        :data:`_OFFERS_PER_AUDIT_RECORD` a record. ``replace_open``: the records' offers still open are
        withdrawn in the same transaction (audited ``offer.withdrawn``, reason ``replaced``), so each
        record is left with the one offer made here.
        """
        auth = self.authority(authority)
        ctype = self._issued_type(auth, type_name)
        ttl = self._offer_ttl(expires_in)
        now = self.now()
        expires_at = now + timedelta(seconds=ttl)
        links = self._offer_links(auth, ctype.slug)
        out = []
        with unit_of_work(self._sessions) as tx:
            records = store.record_ids(tx, authority=auth.slug, vct=ctype.vct, usccs=usccs)
            missing = [u for u in usccs if u not in records]
            if missing:
                raise NotFound(f"no {ctype.slug} record for {missing[0]} ({len(missing)} missing)")
            rows = []
            for uscc, pin in zip(usccs, self._pins(len(usccs))):
                offer_id = str(uuid.UUID(bytes=self._random(16), version=4))
                code = self._code_for(offer_id)
                salt = self._random(16)
                rows.append(store.NewOffer(offer_id, auth.slug, ctype.slug, _sha256(code), expires_at, records[uscc],
                                           salt, _pin_hash(self._pin_key, salt, pin)))
                out.append(links.offer(offer_id, uscc, code, pin, expires_at))
            withdrawn = []
            if replace_open:
                for stale in store.open_offers_of_records(tx, record_ids=list(records.values())):
                    store.set_offer_state(tx, offer_id=stale.id, state=store.OfferState.WITHDRAWN, now=now)
                    withdrawn.append(store.AuditEntry(now, actor, "offer.withdrawn", stale.id, {"reason": "replaced"}))
            store.insert_offers(tx, offers=rows, now=now)
            pairs = [[o.offer_id, o.uscc] for o in out]
            store.append_audits(tx, chain=auth.slug, entries=withdrawn + [
                store.AuditEntry(now, actor, "offers.created", auth.slug,
                                 {"vct": ctype.vct, "offers": pairs[i : i + _OFFERS_PER_AUDIT_RECORD]})
                for i in range(0, len(pairs), _OFFERS_PER_AUDIT_RECORD)
            ])
        return out

    def offer_document(self, slug: str, offer_id: str) -> dict[str, Any]:
        """The Credential Offer behind a ``credential_offer_uri`` (4.1.3); ``NotFound`` once it is used or expired."""
        now = self.now()
        auth = self.authority(slug)
        with unit_of_work(self._sessions, read_only=True) as tx:
            offer = store.get_offer(tx, offer_id=offer_id) if _is_uuid(offer_id) else None
        if offer is None or offer.authority != slug or offer.state is not store.OfferState.OFFERED or offer.expires_at <= now:
            raise NotFound("no open credential offer here (used, withdrawn or expired)")
        return self._offer_value(auth, offer.configuration_id, self._code_for(offer.id)).to_json()

    def withdraw_offer(self, operator: Operator, *, offer_id: str) -> Offer:
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            offer = store.get_offer(tx, offer_id=offer_id) if _is_uuid(offer_id) else None
            if offer is None or offer.authority != operator.authority:
                raise NotFound(f"no offer {offer_id!r}")
            offer = store.set_offer_state(tx, offer_id=offer_id, state=store.OfferState.WITHDRAWN, now=now)
            store.append_audit(tx, chain=operator.authority, at=now, actor=_actor(operator), action="offer.withdrawn",
                               subject=offer_id)
        return offer

    def offer_state(self, operator: Operator, *, offer_id: str) -> Offer:
        with unit_of_work(self._sessions, read_only=True) as tx:
            offer = store.get_offer(tx, offer_id=offer_id) if _is_uuid(offer_id) else None
        if offer is None or offer.authority != operator.authority:
            raise NotFound(f"no offer {offer_id!r}")
        return offer

    # -- token and nonce endpoints -----------------------------------------------------------------------

    def token(self, slug: str, form: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
        """Token Endpoint (OpenID4VCI 6): pre-authorised code + PIN -> access token. Raises ``OpenId4VciError``."""
        request = o4.parse_token_request(form)
        self._authority_or_grant_error(slug)
        now = self.now()
        with unit_of_work(self._sessions, read_only=True) as tx:
            offer = store.find_offer_by_code(tx, code_hash=_sha256(request.code))
        if offer is None or offer.authority != slug:
            raise o4.InvalidGrant("the pre-authorized code is unknown")
        o4.check_tx_code_presence(request, required=offer.pin_hash is not None)
        if offer.pin_hash is not None:
            # The attempt is counted and committed before the PIN is compared: a wrong guess costs one
            # attempt even if this request dies right after.
            try:
                with unit_of_work(self._sessions) as tx:
                    counted = store.claim_pin_attempt(tx, offer_id=offer.id, max_attempts=self.policy.max_pin_attempts, now=now)
            except store.Spent as exc:
                raise o4.InvalidGrant(_spent_text(exc)) from exc
            assert offer.pin_salt is not None and request.tx_code is not None
            if not hmac.compare_digest(_pin_hash(self._pin_key, offer.pin_salt, request.tx_code), offer.pin_hash):
                left = self.policy.max_pin_attempts - counted.pin_attempts
                raise o4.InvalidGrant(f"the transaction code is wrong; {left} attempts left")
        access_token = self._token()
        with unit_of_work(self._sessions) as tx:
            try:
                store.redeem_offer(tx, offer_id=offer.id, now=now)
            except store.Spent as exc:
                raise o4.InvalidGrant(_spent_text(exc)) from exc
            store.create_access_token(tx, token_hash=_sha256(access_token), offer_id=offer.id,
                                      expires_at=now + timedelta(seconds=self.policy.token_ttl))
        return o4.token_response(access_token, self.policy.token_ttl)

    def _authority_or_grant_error(self, slug: str) -> Authority:
        try:
            return self.authority(slug)
        except NotFound as exc:
            raise o4.InvalidGrant("no such credential issuer") from exc

    def nonce(self, slug: str) -> dict[str, str]:
        """Nonce Endpoint (OpenID4VCI 7): a fresh single-use ``c_nonce``; raises ``NotFound``."""
        self.authority(slug)
        value = self._token()
        with unit_of_work(self._sessions) as tx:
            store.create_nonce(tx, value=value, expires_at=self.now() + timedelta(seconds=self.policy.nonce_ttl))
        return o4.nonce_response(value)

    def purge_expired(self) -> int:
        """Delete the ``c_nonce`` values and access tokens that have expired; how many rows went."""
        with unit_of_work(self._sessions) as tx:
            return store.purge_expired(tx, now=self.now())

    # -- credential endpoint -----------------------------------------------------------------------------

    def credential(self, slug: str, *, authorization: Any, body: Any) -> dict[str, Any]:
        """Credential Endpoint (OpenID4VCI 8): verify the key proof and issue, all in one transaction.

        Raises ``OpenId4VciError`` (``invalid_token``, ``invalid_credential_request``,
        ``unknown_credential_configuration``, ``invalid_proof``, ``invalid_nonce``, ...).
        """
        return self._credential(self.prepare_credential(slug, authorization=authorization, body=body))

    def prepare_credential(self, slug: str, *, authorization: Any, body: Any) -> CredentialRequest:
        """What the Credential Endpoint checks before the database: the bearer token's form, the request
        and the key proof (signature, ``typ``, audience, age, algorithm). Raises ``OpenId4VciError``.
        The result goes to :meth:`credential_batch`."""
        access_token = o4.parse_bearer_token(authorization)
        try:
            auth = self.authority(slug)
        except NotFound as exc:
            raise o4.InvalidToken("no such credential issuer") from exc
        configs = self.configurations(auth)
        request = o4.parse_credential_request(body, configurations=configs)
        now = self.now()
        proof = o4.verify_proof(
            request.proofs[0],
            audience=auth.issuer_id,
            now=int(now.timestamp()),
            max_age=self.policy.proof_max_age,
            skew=self.policy.proof_skew,
            accepted_algs=self.policy.proof_algs,
        )
        return CredentialRequest(auth, configs[request.configuration_id], _sha256(access_token), proof, now)

    def _credential(self, r: CredentialRequest) -> dict[str, Any]:
        """One prepared request in its own transaction, every check with its precise error."""
        slug, now, proof = r.auth.slug, r.now, r.proof
        with unit_of_work(self._sessions) as tx:
            try:
                token = store.consume_access_token(tx, token_hash=r.token_hash, now=now)
            except store.Spent as exc:
                raise o4.InvalidToken(f"the access token is {exc.reason}") from exc
            try:
                store.consume_nonce(tx, value=proof.nonce, now=now)
            except store.Spent as exc:
                raise o4.InvalidNonce(f"the c_nonce is {exc.reason}; get a fresh one from the nonce endpoint") from exc
            offer = store.get_offer(tx, offer_id=token.offer_id)
            if offer is None or offer.authority != slug or offer.state is not store.OfferState.REDEEMED:
                raise o4.InvalidToken("the access token does not belong to an open offer of this issuer")
            if offer.configuration_id != r.ctype.slug:
                raise o4.InvalidCredentialRequest(
                    f"this access token is for {offer.configuration_id}, not {r.ctype.slug}"
                )
            claims, uscc, expected_holder, replaces = self._offer_claims(tx, offer)
            if expected_holder is not None and proof.holder_thumbprint != expected_holder:
                raise o4.InvalidProof("the key proof is not signed by the staff member's key named in the authorisation")
            if offer.granted_under is not None:
                # Locked (authority row first, the store's lock order), so a status change of the licence
                # either commits first and is seen here, or waits and then cascades to this authorisation.
                store.lock_authority(tx, slug=slug)
                licence = store.lock_credential(tx, credential_id=offer.granted_under)
                if licence is None or licence.status is not CredentialStatus.VALID or licence.replaced_by is not None:
                    raise o4.CredentialRequestDenied("the business licence this authorisation was granted under is "
                                                     "no longer valid")
            signer, own_kids = self._signer_and_kids(tx, slug)
            if proof.holder_thumbprint in own_kids:
                raise o4.InvalidProof("the holder key is one of the issuer's own keys")
            # Marked before the status index is allocated: the authority's status list and audit head
            # are locked from allocation to commit, so the less work after it, the more issuances per second.
            try:
                store.set_offer_state(tx, offer_id=offer.id, state=store.OfferState.ISSUED, now=now)
            except store.InvalidTransition as exc:
                # Withdrawn (or issued) by another request since it was read above: nothing is issued.
                raise o4.InvalidToken("the access token does not belong to an open offer of this issuer") from exc
            ((text, row),) = self._issue_many(tx, auth=r.auth, signer=signer, now=now, jobs=[
                _Issuance(r.ctype, claims, uscc, proof.holder_jwk, proof.holder_thumbprint, offer.record_id,
                          offer.granted_under, f"holder:{proof.holder_thumbprint}", {"offer": offer.id})])
            for old in replaces:
                store.mark_replaced(tx, credential_id=old, replaced_by=row.id)
        return o4.credential_response([text])

    def credential_batch(self, requests: Sequence[CredentialRequest]) -> list[dict[str, Any] | Exception]:
        """Group commit for the Credential Endpoint: the outcome of each prepared request, in order (a
        response body, or the ``OpenId4VciError`` / other exception :meth:`credential` would raise).

        The plain ones (an open offer of a registry record, token and nonce unused and unexpired, no
        licence or replaced credential involved) are issued together, one transaction per authority:
        the tokens, nonces and offers of the batch are each used with one conditional statement, the
        status indexes are allocated at once, and the rows and audit records are written with one
        statement each, so the authority's status list and audit head are locked once per batch rather
        than once per credential. The same invariants hold as for :meth:`credential`: nothing is
        delivered before its transaction commits. Every other request (any that fails a check, a staff
        authorisation, a change of registration, a token or nonce given twice) then goes through
        :meth:`credential` on its own, which gives its precise error; so does every request of a batch
        whose transaction fails.
        """
        outcomes: list[dict[str, Any] | Exception | None] = [None] * len(requests)
        by_authority: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            by_authority.setdefault(r.auth.slug, []).append(i)
        for indexes in by_authority.values():
            try:
                for i, body in self._issue_plain([requests[i] for i in indexes], indexes).items():
                    outcomes[i] = body
            except _Abandon:
                pass
            except Exception:  # noqa: BLE001 - nothing of the batch committed: each request on its own
                _log.warning("a batch of %d credential requests failed; each is tried on its own", len(indexes),
                             exc_info=True)
        for i, r in enumerate(requests):
            if outcomes[i] is None:
                try:
                    outcomes[i] = self._credential(r)
                except Exception as exc:  # noqa: BLE001 - the caller answers each request with its own outcome
                    outcomes[i] = exc
        return outcomes  # type: ignore[return-value]

    def _issue_plain(self, requests: Sequence[CredentialRequest], indexes: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Issue the plain requests of one authority in one transaction; their response bodies by index.

        Raises ``_Abandon`` (or any error) to roll the batch back, when a request turns out to need more
        than this path does: then every request of the batch goes on its own."""
        auth = requests[0].auth
        now = self.now()
        tokens = Counter(r.token_hash for r in requests)
        nonces = Counter(r.proof.nonce for r in requests)
        # A token or nonce given twice: one of them must fail with its own error, so both go on their own.
        todo = [(i, r) for i, r in zip(indexes, requests) if tokens[r.token_hash] == 1 and nonces[r.proof.nonce] == 1]
        if not todo:
            return {}
        with unit_of_work(self._sessions) as tx:
            signer, own_kids = self._signer_and_kids(tx, auth.slug)
            todo = [(i, r) for i, r in todo if r.proof.holder_thumbprint not in own_kids]
            # Each step uses what is usable (one conditional UPDATE ... RETURNING per table, in the lock
            # order of the single path: token, nonce, offer) and gives back what a later step refused.
            spent = store.spend_access_tokens(tx, token_hashes=[r.token_hash for _, r in todo], now=now)
            todo = [(i, r) for i, r in todo if r.token_hash in spent]
            used = store.spend_nonces(tx, values=[r.proof.nonce for _, r in todo], now=now)
            refused = [r.token_hash for _, r in todo if r.proof.nonce not in used]
            todo = [(i, r) for i, r in todo if r.proof.nonce in used]
            offer_of = {r.token_hash: spent[r.token_hash].offer_id for _, r in todo}
            if len(set(offer_of.values())) != len(offer_of):
                raise _Abandon("one offer behind two tokens")
            offers: dict[str, Offer] = {}
            for configuration_id in {r.ctype.slug for _, r in todo}:
                offers.update(store.issue_record_offers(
                    tx, authority=auth.slug, configuration_id=configuration_id, now=now,
                    offer_ids=[offer_of[r.token_hash] for _, r in todo if r.ctype.slug == configuration_id]))
            lost = [r for _, r in todo if offer_of[r.token_hash] not in offers]
            store.unspend_access_tokens(tx, token_hashes=refused + [r.token_hash for r in lost])
            store.unspend_nonces(tx, values=[r.proof.nonce for r in lost])
            todo = [(i, r) for i, r in todo if offer_of[r.token_hash] in offers]
            if not todo:
                return {}
            records = store.get_records_by_ids(tx, record_ids=[offers[offer_of[r.token_hash]].record_id for _, r in todo])
            plain = []
            for i, r in todo:
                offer = offers[offer_of[r.token_hash]]
                record = records.get(offer.record_id)
                if offer.claims is not None or record is None:
                    raise _Abandon("a change of registration, or a record gone")  # rare: all on their own
                plain.append((i, r, offer, record))
            issued = self._issue_many(tx, auth=auth, signer=signer, now=now, jobs=[
                _Issuance(r.ctype, record.claims_json(), record.uscc, r.proof.holder_jwk, r.proof.holder_thumbprint,
                          record.id, None, f"holder:{r.proof.holder_thumbprint}", {"offer": offer.id})
                for _, r, offer, record in plain])
        return {i: o4.credential_response([text]) for (i, _, _, _), (text, _) in zip(plain, issued)}

    def _offer_claims(self, tx: Session, offer: Offer) -> tuple[dict[str, Any], str, str | None, list[str]]:
        """(subject claims, USCC, required holder thumbprint, credential ids this issuance replaces)."""
        extra = {} if offer.claims is None else store._plain_json(offer.claims)
        if offer.record_id is not None:
            record = store.get_record_by_id(tx, record_id=offer.record_id)
            if record is None:
                raise o4.CredentialRequestDenied("the registry record of this offer is gone")
            return record.claims_json(), record.uscc, None, list(extra.get("replaces", ()))
        claims = extra.get("claims")
        if not isinstance(claims, dict):
            raise o4.CredentialRequestDenied("this offer carries no claims")
        return claims, claims.get("enterprise_uscc", ""), extra.get("holder"), []

    def _issue_many(
        self, tx: Session, *, auth: Authority, signer: Signer, now: datetime, jobs: Sequence[_Issuance]
    ) -> list[tuple[str, Credential]]:
        """Allocate a status index for each job, sign, record the rows and append the audit records, in
        ``tx``. From the allocation to the commit the authority's status list and audit head are locked."""
        t = int(now.timestamp())
        slots = store.allocate_in_open_list(tx, authority=auth.slug, uri_prefix=self._status_prefix(auth.slug),
                                            count=len(jobs), now=now)
        texts, rows = [], []
        for job, slot in zip(jobs, slots):
            exp = self._expiry(job.ctype, job.claims, t)
            try:
                text = sd_jwt_vc.issue_vc(
                    job.claims,
                    vct=job.ctype.vct,
                    issuer=auth.issuer_id,
                    signer=signer,
                    disclosable=job.ctype.disclosable_paths(job.claims),
                    holder_jwk=job.holder_jwk,
                    status=(slot.idx, slot.uri),
                    iat=t,
                    exp=exp,
                )
            except CredentialError as exc:
                raise o4.CredentialRequestDenied(f"the credential cannot be issued: {exc.detail}") from exc
            texts.append(text)
            rows.append(store.NewCredential(
                credential_id=str(uuid.UUID(bytes=self._random(16), version=4)),
                authority=auth.slug,
                vct=job.ctype.vct,
                uscc=job.uscc,
                kid=signer.kid,
                status_list_id=slot.list_id,
                status_idx=slot.idx,
                issued_at=now,
                expires_at=datetime.fromtimestamp(exp, timezone.utc),
                credential_hash=credential_hash(text),
                record_id=job.record_id,
                holder_thumbprint=job.holder_thumbprint,
                granted_under=job.granted_under,
            ))
        stored = store.insert_credentials(tx, credentials=rows)
        store.append_audits(tx, chain=auth.slug, entries=[
            store.AuditEntry(now, job.actor, "authorisation.granted" if job.ctype.slug == STAFF_AUTHORISATION
                             else "credential.issued", row.id,
                             {"vct": job.ctype.vct, "uscc": job.uscc, "kid": signer.kid, "status_list": row.status_list_id,
                              "status_idx": row.status_idx, "credential_hash": row.credential_hash, **job.details})
            for job, row in zip(jobs, stored)])
        return list(zip(texts, stored))

    def _expiry(self, ctype: CredentialType, claims: Mapping[str, Any], t: int) -> int:
        if ctype.slug == STAFF_AUTHORISATION:
            return int(_end_of_day(date.fromisoformat(claims["valid_until"])).timestamp())
        return t + self.policy.credential_days * 86400

    # -- staff authorisations ----------------------------------------------------------------------------

    def request_authorisation(self, slug: str, body: Any) -> OfferCreated:
        """A legal representative asks for a staff authorisation (授权) by presenting the business licence.

        ``body``: ``licence`` (an SD-JWT VC presentation with Key Binding: audience this issuer, nonce
        from the nonce endpoint), ``staff`` (``name``, ``account``), ``scope`` (``{"all": true}`` or
        ``{"matters": [...]}``), ``valid_from`` / ``valid_until`` (dates), ``staff_jwk`` (the staff
        member's public key). Answers an offer whose credential only that key can receive.
        Raises ``AuthorisationRefused``, ``RecordInvalid``, ``InvalidValue``, ``CredentialError`` codes.
        """
        auth = self.authority(slug)
        ltype = self._issued_type(auth, BUSINESS_LICENCE)
        stype = self._issued_type(auth, STAFF_AUTHORISATION)
        if not isinstance(body, Mapping):
            raise InvalidValue("the request must be a JSON object")
        presentation = body.get("licence")
        staff = body.get("staff")
        if not isinstance(presentation, str) or not isinstance(staff, Mapping):
            raise InvalidValue("licence (a presentation) and staff ({name, account}) are required")
        staff_jwk = body.get("staff_jwk")
        try:
            from keys.jwk import load_public_jwk, public_jwk

            staff_thumb = thumbprint(public_jwk(load_public_jwk(staff_jwk)))  # type: ignore[arg-type]
        except (KeyMaterialError, TypeError, AttributeError) as exc:
            raise InvalidValue(f"staff_jwk is not an acceptable public key: {exc}") from exc
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            licence, verified = self._presented_licence(tx, auth, ltype, presentation, now)
            claims_in = verified.claims
            legal_rep = claims_in.get("legal_representative")
            enterprise_name = claims_in.get("name")
            if not isinstance(legal_rep, str) or not isinstance(enterprise_name, str):
                raise AuthorisationRefused("the presentation must show name and legal_representative")
            lst = store.get_list(tx, list_id=licence.status_list_id)
            assert lst is not None
            claims = {
                "enterprise_uscc": licence.uscc,
                "enterprise_name": enterprise_name,
                "staff_name": staff.get("name"),
                "staff_account": staff.get("account"),
                "scope": body.get("scope"),
                "valid_from": body.get("valid_from") or now.astimezone(_CST).date().isoformat(),
                "valid_until": body.get("valid_until"),
                "granted_by": {"name": legal_rep, "role": "legal_representative"},
                "licence_status": {"idx": licence.status_idx, "uri": lst.info.uri},
            }
            try:
                stype.validate_claims(claims)
            except SchemaError as exc:
                raise RecordInvalid(str(exc), errors=[(e.path if isinstance(e.path, str) else str(e.path), e.message_zh, e.message_en)
                                                      for e in getattr(exc, "errors", ())]) from exc
            until = date.fromisoformat(claims["valid_until"])
            today = now.astimezone(_CST).date()
            if until < today or (until - today).days > self.policy.max_authorisation_days:
                raise InvalidValue(f"valid_until must be from today to {self.policy.max_authorisation_days} days ahead")
            # The authorisation ends when its last day ends (see _expiry): that must not be after the licence.
            if licence.expires_at is not None and _end_of_day(until) > licence.expires_at:
                raise InvalidValue("valid_until is after the licence expires")
            created = self._new_offer(
                tx, auth=auth, configuration_id=stype.slug, uscc=licence.uscc, now=now, ttl=self.policy.offer_ttl,
                claims={"claims": claims, "holder": staff_thumb}, granted_under=licence.id,
            )
            store.append_audit(tx, chain=slug, at=now, actor=f"holder:{licence.holder_thumbprint}",
                               action="authorisation.requested", subject=created.offer_id,
                               details={"licence": licence.id, "staff_account": claims["staff_account"],
                                        "scope": claims["scope"], "valid_until": claims["valid_until"],
                                        "staff_key": staff_thumb})
        return created

    def _presented_licence(
        self, tx: Session, auth: Authority, ltype: CredentialType, presentation: Any, now: datetime
    ) -> tuple[Credential, Any]:
        """The licence row behind a key-bound presentation (aud this issuer, a fresh nonce, which it uses up).

        Raises ``AuthorisationRefused`` (another issuer's, unknown, used nonce, not valid or replaced)
        and the ``CredentialError`` codes of verification.
        """
        if not isinstance(presentation, str):
            raise InvalidValue("licence must be a presentation (text)")
        keys = self._issuer_public_keys(tx, auth.slug)

        def resolve(iss: str, header: Mapping[str, Any], vct: str) -> Any:
            if iss != auth.issuer_id:
                raise AuthorisationRefused("the licence was not issued by this authority")
            key = keys.get(header.get("kid"))
            if key is None:
                raise UnknownKey("the licence's signing key is not one of this authority's")
            return key

        nonce = _kb_nonce(presentation)
        verified = sd_jwt_vc.verify_vc(
            presentation,
            resolve_issuer_key=resolve,
            now=int(now.timestamp()),
            kb=KeyBindingPolicy(nonce=nonce, aud=auth.issuer_id),
            expected_vcts=(ltype.vct,),
        )
        try:
            store.consume_nonce(tx, value=nonce or "", now=now)
        except store.Spent as exc:
            raise AuthorisationRefused(f"the presentation's nonce is {exc.reason}; get a fresh one") from exc
        licence = store.get_credential_by_hash(tx, credential_hash=credential_hash(presentation))
        if licence is None or licence.authority != auth.slug:
            raise AuthorisationRefused("this licence is not on record here")
        if licence.status is not CredentialStatus.VALID or licence.replaced_by is not None:
            raise AuthorisationRefused(f"the licence is {licence.status.value}" + (" and replaced" if licence.replaced_by else ""))
        return licence, verified

    def withdraw_authorisation(self, slug: str, body: Any) -> Credential:
        """The enterprise withdraws a staff authorisation it granted, by presenting its business licence.

        ``body``: ``licence`` (key-bound presentation as for :meth:`request_authorisation`) and
        ``authorisation`` (the authorisation credential, or its issuer-signed JWT). The authorisation is
        revoked (reason ``withdrawn``) in the same transaction as its audit record, so the next status
        token shows it; withdrawing one already revoked changes nothing and answers it as it is.
        Raises ``AuthorisationRefused`` (not granted under this licence), ``NotFound``, ``InvalidValue``.
        """
        auth = self.authority(slug)
        ltype = self._issued_type(auth, BUSINESS_LICENCE)
        if not isinstance(body, Mapping):
            raise InvalidValue("the request must be a JSON object")
        grant_text = body.get("authorisation")
        if not isinstance(grant_text, str) or not grant_text:
            raise InvalidValue("authorisation (the credential to withdraw) is required")
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            licence, _ = self._presented_licence(tx, auth, ltype, body.get("licence"), now)
            grant = store.get_credential_by_hash(tx, credential_hash=credential_hash(grant_text))
            if grant is None or grant.authority != slug:
                raise NotFound("no such authorisation here")
            if grant.granted_under != licence.id:
                raise AuthorisationRefused("this authorisation was not granted under the licence presented")
            if grant.status is CredentialStatus.REVOKED:
                return grant
            store.lock_authority(tx, slug=slug)
            changed, _ = self._set_status(tx, grant, CredentialStatus.REVOKED, WITHDRAWN, now,
                                          f"holder:{licence.holder_thumbprint}")
        return changed

    def _issuer_public_keys(self, tx: Session, slug: str) -> dict[str, Any]:
        from credentials import jws

        keystore = self._keystore(slug, tx)
        out = {}
        for record in keystore.list(owner=slug, states=(KeyState.ACTIVE, KeyState.RETIRED)):
            out[record.kid] = jws.public_key_from_jwk(record.public_jwk, alg=record.alg)
        return out

    # -- lifecycle ---------------------------------------------------------------------------------------

    def credential_row(self, operator: Operator, *, credential_id: str) -> Credential:
        with unit_of_work(self._sessions, read_only=True) as tx:
            row = store.get_credential(tx, credential_id=credential_id) if _is_uuid(credential_id) else None
        if row is None or row.authority != operator.authority:
            raise NotFound(f"no credential {credential_id!r}")
        return row

    def list_credentials(self, operator: Operator, **filters: Any) -> store.Page[Credential]:
        with unit_of_work(self._sessions, read_only=True) as tx:
            return store.list_credentials(tx, authority=operator.authority, **filters)

    def change_status(
        self, operator: Operator, *, credential_id: str, action: str, reason: str | None = None
    ) -> tuple[Credential, list[Credential]]:
        """suspend / reinstate / revoke a credential; a licence takes its authorisations along.

        Returns (the credential, the authorisations changed with it). Raises ``NotFound``,
        ``InvalidTransition``, ``InvalidValue`` (unknown action or reason).
        """
        targets = {"suspend": CredentialStatus.SUSPENDED, "reinstate": CredentialStatus.VALID,
                   "revoke": CredentialStatus.REVOKED}
        if action not in targets:
            raise InvalidValue(f"action must be one of {sorted(targets)}")
        if action == "revoke" and reason not in REVOCATION_REASONS:
            raise InvalidValue(f"a revocation needs a reason: one of {sorted(REVOCATION_REASONS)}")
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            row = store.get_credential(tx, credential_id=credential_id) if _is_uuid(credential_id) else None
            if row is None or row.authority != operator.authority:
                raise NotFound(f"no credential {credential_id!r}")
            if action == "reinstate" and row.granted_under is not None:
                licence = store.get_credential(tx, credential_id=row.granted_under)
                if licence is None or licence.status is not CredentialStatus.VALID:
                    state = "gone" if licence is None else licence.status.value
                    raise store.InvalidTransition(f"the licence of authorisation {credential_id!r} is {state}; "
                                                  "an authorisation is valid only while its licence is")
            changed, cascaded = self._set_status(tx, row, targets[action], reason, now, _actor(operator))
        return changed, cascaded

    def _set_status(
        self, tx: Session, row: Credential, target: CredentialStatus, reason: str | None, now: datetime, actor: str
    ) -> tuple[Credential, list[Credential]]:
        changed = store.set_credential_status(tx, credential_id=row.id, status=target, reason=reason, now=now)
        entries = [_status_entry(now, actor, changed, reason)]
        cascaded: list[Credential] = []
        for grant in store.list_authorisations(tx, licence_id=row.id):
            follow = _cascade(target, grant)
            if follow is None:
                continue
            new_status, why = follow
            updated = store.set_credential_status(tx, credential_id=grant.id, status=new_status, reason=why, now=now)
            cascaded.append(updated)
            entries.append(_status_entry(now, actor, updated, why))
        store.append_audits(tx, chain=row.authority, entries=entries)
        return changed, cascaded

    def change_registration(
        self, operator: Operator, *, type_name: str, claims: Any, expires_in: int | None = None
    ) -> tuple[OfferCreated, list[str]]:
        """变更: replace the record, revoke its live credentials (and their authorisations), offer anew.

        Returns the new offer and the ids of the revoked credentials. Raises ``RecordInvalid``,
        ``NotFound`` (no record with this USCC yet), ``UnknownType``.
        """
        auth = self.authority(operator.authority)
        item = self._record_input(auth, type_name, claims)
        ctype = self._type(type_name)
        ttl = self._offer_ttl(expires_in)
        now = self.now()
        actor = _actor(operator)
        with unit_of_work(self._sessions) as tx:
            old = store.get_record(tx, authority=auth.slug, vct=item.vct, uscc=item.uscc)
            if old is None:
                raise NotFound(f"no {ctype.slug} record for {item.uscc}; a change needs an existing registration")
            record = store.upsert_record(tx, authority=auth.slug, vct=item.vct, uscc=item.uscc, claims=item.claims, now=now)
            # Offers still open for the old registration are withdrawn: the new offer is the one to redeem,
            # and what a withdrawn offer was to replace (an earlier change not yet claimed), the new one does.
            withdrawn: list[str] = []
            replaces: list[str] = []
            for stale in store.open_offers_of_record(tx, record_id=record.id):
                try:
                    store.set_offer_state(tx, offer_id=stale.id, state=store.OfferState.WITHDRAWN, now=now)
                except store.InvalidTransition:
                    continue  # issued meanwhile: its credential is live and is revoked below
                withdrawn.append(stale.id)
                if stale.claims is not None:
                    replaces.extend(store.plain_json(stale.claims).get("replaces", ()))
            revoked: list[str] = []
            for row in store.live_credentials_of_record(tx, record_id=record.id):
                self._set_status(tx, row, CredentialStatus.REVOKED, "changed", now, actor)
                revoked.append(row.id)
            replaces = list(dict.fromkeys(replaces + revoked))
            created = self._new_offer(tx, auth=auth, configuration_id=ctype.slug, uscc=item.uscc, now=now, ttl=ttl,
                                      record_id=record.id, claims={"replaces": replaces} if replaces else None)
            store.append_audits(tx, chain=auth.slug, entries=[
                *(store.AuditEntry(now, actor, "offer.withdrawn", w, {"reason": "changed"}) for w in withdrawn),
                store.AuditEntry(now, actor, "registration.changed", record.id, {
                    "uscc": item.uscc, "revoked": revoked, "withdrawn": withdrawn, "offer": created.offer_id,
                    "claims_hash": _json_hash(store.plain_json(item.claims)),
                }),
            ])
        return created, revoked

    # -- status list tokens ------------------------------------------------------------------------------

    def status_token(self, slug: str, list_id: int) -> StatusToken:
        """The signed status list token; re-signed when the list changed or the key rotated. Raises ``NotFound``.

        The token is kept in the database and shared by every worker: a verifier's cache refuses a
        token signed before the one it holds, so workers must not each serve their own signing of one
        list, and a new signing is never dated before the kept one (workers' clocks differ a little).
        A worker keeps its signing only if no later one was kept meanwhile (see
        :func:`issuer.store.save_status_token`) and serves what is kept, which shows at least the version
        it read. A list is served only under the authority that owns it (checked before its signing key
        is looked up: an unknown authority is ``NotFound``, not ``NoSigningKey``). The ETag names the
        list, its version, the key and the signing time: a token re-signed before it expires is a new
        representation, so a cache revalidating the old ETag gets the new token.
        """
        lifetime = self.policy.status_token_lifetime
        for _ in range(_STATUS_SIGNING_ATTEMPTS):
            t = int(self.now().timestamp())
            with unit_of_work(self._sessions, read_only=True) as tx:
                head = store.get_list_head(tx, list_id=list_id)
                if head is None or head.authority != slug:
                    raise NotFound(f"no status list {list_id} at {slug!r}")
                signer = self._signer(tx, slug)
                kept = head.token
                if kept is not None and kept.version == head.version and kept.kid == signer.kid \
                        and t - kept.signed_at < lifetime // 2:
                    return self._served_status(kept)
                state = store.get_list(tx, list_id=list_id)
                if state is None:
                    raise NotFound(f"no status list {list_id} at {slug!r}")
            iat = t if kept is None else max(t, kept.signed_at)
            token = sl.sign_status_list_token(
                state.status_list(), signer=signer, sub=state.info.uri, iss=self.issuer_id(slug),
                iat=iat, exp=iat + lifetime, ttl=self.policy.status_ttl,
            )
            ours = store.SignedStatusToken(list_id, state.info.version, signer.kid, iat, token)
            with unit_of_work(self._sessions) as tx:
                kept = store.save_status_token(tx, ours)
            if kept.version >= ours.version:
                return self._served_status(kept)
            # Another worker kept a later signing of an older version meanwhile: sign again after it.
        return self._served_status(ours)

    def _served_status(self, kept: store.SignedStatusToken) -> StatusToken:
        etag = f'"{kept.list_id}.{kept.version}.{kept.kid[:8]}.{kept.signed_at}"'
        return StatusToken(kept.token, etag, self.policy.status_ttl, kept.version, kept.signed_at, kept.kid)

    # -- audit -------------------------------------------------------------------------------------------

    def audit(self, operator: Operator, *, after_seq: int = 0, limit: int = 100) -> tuple[Any, ...]:
        with unit_of_work(self._sessions, read_only=True) as tx:
            return store.list_audit(tx, chain=operator.authority, after_seq=after_seq, limit=limit)

    def verify_audit(self, operator: Operator) -> store.ChainReport:
        with unit_of_work(self._sessions, read_only=True) as tx:
            return store.verify_audit(tx, chain=operator.authority)

    # -- idempotency -------------------------------------------------------------------------------------

    def idempotent(
        self,
        operator: Operator,
        *,
        key: str | None,
        request: Any,
        run: Callable[[], tuple[int, dict[str, Any]]],
    ) -> tuple[int, dict[str, Any], bool]:
        """Run ``run`` at most once per (operator, ``Idempotency-Key``); returns (status, body, replayed).

        ``run``'s units of work and the stored outcome commit as one transaction (:func:`store.joined`):
        a request that fails anywhere, the commit included, leaves neither, and its retry runs afresh;
        one whose commit succeeded but whose answer was lost gets the stored outcome on retry. A retry
        with the same key and another request gets ``IdempotencyConflict``. Two requests with one key
        racing: the second to store rolls its work back and answers with the first's outcome.
        """
        if key is None:
            status, body = run()
            return status, body, False
        if not isinstance(key, str) or not 1 <= len(key) <= 255 or not key.isprintable():
            raise InvalidValue("Idempotency-Key must be 1-255 printable characters")
        request_hash = _json_hash(request)
        with unit_of_work(self._sessions, read_only=True) as tx:
            stored = store.get_idempotency(tx, operator_id=operator.id, key=key)
        if stored is not None:
            if stored.request_hash != request_hash:
                raise IdempotencyConflict()
            return stored.status_code, self._unseal(stored.response, operator.id, key, request_hash), True
        try:
            with unit_of_work(self._sessions) as tx, store.joined(self._sessions, tx):
                status, body = run()
                record, mine = store.put_idempotency(tx, operator_id=operator.id, key=key, request_hash=request_hash,
                                                     status_code=status, response=self._seal(body, operator.id, key,
                                                                                              request_hash), now=self.now())
                if not mine:
                    raise _Raced(record)
        except _Raced as raced:  # rolled back: the first request's outcome stands
            record = raced.record
            if record.request_hash != request_hash:
                raise IdempotencyConflict() from None
            return record.status_code, self._unseal(record.response, operator.id, key, request_hash), True
        return status, body, False

    # A stored outcome can hold an offer's PIN: it is kept sealed (AES-256-GCM under a KEK-derived key,
    # bound to its operator, key and request), so the database alone does not reveal it.

    def _seal(self, body: dict[str, Any], operator_id: str, key: str, request_hash: str) -> dict[str, Any]:
        nonce = self._random(12)
        sealed = AESGCM(self._idempotency_key).encrypt(nonce, json.dumps(body).encode(),
                                                       f"{operator_id}|{key}|{request_hash}".encode())
        return {"sealed": b64u_encode(nonce + sealed)}

    def _unseal(self, stored: Any, operator_id: str, key: str, request_hash: str) -> dict[str, Any]:
        plain = store._plain_json(stored)
        if set(plain) != {"sealed"}:
            return plain  # stored before outcomes were sealed
        raw = b64u_decode(plain["sealed"])
        opened = AESGCM(self._idempotency_key).decrypt(raw[:12], raw[12:], f"{operator_id}|{key}|{request_hash}".encode())
        return json.loads(opened)


# --- helpers --------------------------------------------------------------------------------------------


class _Raced(Exception):
    """Another request stored an outcome under the same Idempotency-Key first (rolls this one back)."""

    def __init__(self, record: store.IdempotencyRecord) -> None:
        super().__init__("idempotency key stored by another request")
        self.record = record


def _end_of_day(day: date) -> datetime:
    """The instant a calendar day (China Standard Time) ends: when an authorisation valid until it expires."""
    return datetime.combine(day + timedelta(days=1), time(), _CST)


def _actor(operator: Operator) -> str:
    return f"operator:{operator.id}"


def _is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _spent_text(exc: store.Spent) -> str:
    return {
        "unknown": "the pre-authorized code is unknown",
        "expired": "the credential offer has expired",
        "used": "the pre-authorized code was already used",
        "exhausted": "too many wrong transaction codes; ask the authority for a new offer",
    }.get(exc.reason, "the pre-authorized code cannot be used")


def _kb_nonce(presentation: str) -> str | None:
    """The KB-JWT's nonce, read before verification only to know which nonce to require."""
    from credentials import jws

    kb = presentation.rsplit("~", 1)[-1]
    if not kb:
        return None
    try:
        nonce = jws.parse(kb).payload.get("nonce")
    except CredentialError:
        return None
    return nonce if isinstance(nonce, str) else None


def _status_entry(now: datetime, actor: str, row: Credential, reason: str | None) -> store.AuditEntry:
    action = {
        CredentialStatus.VALID: "credential.reinstated",
        CredentialStatus.SUSPENDED: "credential.suspended",
        CredentialStatus.REVOKED: "credential.revoked",
    }[row.status]
    return store.AuditEntry(now, actor, action, row.id, {
        "reason": reason, "status_list": row.status_list_id, "status_idx": row.status_idx, "uscc": row.uscc,
    })


def _cascade(target: CredentialStatus, grant: Credential) -> tuple[CredentialStatus, str] | None:
    """What a licence's status change does to one authorisation granted under it."""
    if grant.status is CredentialStatus.REVOKED:
        return None
    if target is CredentialStatus.REVOKED:
        return CredentialStatus.REVOKED, "licence_revoked"
    if target is CredentialStatus.SUSPENDED and grant.status is CredentialStatus.VALID:
        return CredentialStatus.SUSPENDED, _SUSPEND_CASCADE
    if target is CredentialStatus.VALID and grant.status is CredentialStatus.SUSPENDED and grant.reason == _SUSPEND_CASCADE:
        return CredentialStatus.VALID, "licence_reinstated"
    return None
