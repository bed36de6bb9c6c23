"""The issuer's storage: SQLAlchemy 2.0 models of the ``issuer_*`` tables and their repository functions.

Nothing here decides policy (who may issue what, lifetimes, PIN checks): that is ``issuer.service``.
What the store guarantees are the invariants a database must hold even under concurrent requests:

- a status index is handed out once, ever (the list row is locked while its ``used`` bitmap changes,
  and ``UNIQUE (status_list_id, status_idx)`` backs it up);
- a pre-authorised code, access token and nonce are consumed once (conditional ``UPDATE ... WHERE
  used_at IS NULL`` / ``WHERE state = 'offered'`` and a row count check, never read-then-write);
- a credential's ``status`` and its entry in its status list change together (one function);
- audit records are appended to a hash chain (:mod:`credentials.audit`) with the chain's head locked,
  in the caller's transaction, so the record commits or rolls back with the change it records;
- a batch of registry records is imported whole or not at all.

How to use it
-------------
Every repository function takes an open :class:`~sqlalchemy.orm.Session` as its only positional
argument and everything else by keyword, and returns frozen dataclasses (never ORM objects). The
session *is* the transaction: compose calls inside :func:`unit_of_work`, which commits at the end
and rolls back on any exception::

    with unit_of_work(sessions) as tx:
        slot = allocate_index(tx, list_id=lst.id, now=now)
        cred = insert_credential(tx, credential_id=..., status_list_id=slot.list_id, status_idx=slot.idx, ...)
        append_audit(tx, chain=authority, at=now, actor=operator, action="credential.issued", subject=cred.id)

Functions never commit. Lock order, to keep transactions free of deadlocks: authority row ->
credential row -> status list row -> audit chain head. Locks are held until the transaction ends, so
issuances that share a status list (and appends to one chain) serialise: keep those transactions
short (check proofs and build claims before the unit of work; inside it, allocate, sign, insert,
audit), and use the batch forms (:func:`allocate_indexes`, :func:`insert_credentials`, :func:`append_audits`)
for bulk issuance. Errors are :class:`StoreError` subclasses with
a stable ``code``; a database failure not listed (connection lost, ...) propagates as SQLAlchemy's.

Tables (prefix ``issuer_``): ``authority``, ``operator``, ``key`` and ``kek_check`` (the keystore,
see :class:`SqlKeyRecordStore`), ``record``, ``status_list``, ``credential``, ``offer``,
``access_token``, ``nonce``, ``idempotency``, ``audit`` and ``audit_head`` (one row per chain: its
newest seq and hash, the row that is locked to append and the anchor that makes truncation visible).
The schema is created by the Alembic revisions in ``issuer/migrations/versions`` (branch ``issuer``);
a test checks that they produce exactly these models.

On SQLite (``elicence.db``) every read-write transaction begins with ``BEGIN IMMEDIATE``, so writers
are serialised and ``with_for_update()`` (a no-op there) is not needed; on PostgreSQL the row locks do
the work under READ COMMITTED. Rows are locked ``FOR NO KEY UPDATE`` (``key_share=True``), never
``FOR UPDATE``: that still excludes every other locker, but not the ``KEY SHARE`` locks that foreign
key checks take, so revoking a licence while an authorisation under it is inserted cannot deadlock.
The bulk writes of registry records and offers (:func:`import_records`, :func:`insert_offers`) use
``COPY`` on PostgreSQL (records through a temporary table and one upsert), storing exactly what the
statements store on SQLite.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import enum
import hashlib
import json
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType, SimpleNamespace
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    column,
    delete,
    insert,
    or_,
    select,
    table,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from credentials import audit as audit_chain
from credentials import status_list as sl
from credentials.errors import CredentialError, StatusListInvalid
from keys.errors import KeyNotFound, KeystoreError
from keys.keystore import KeyRecord, KeyState
from schemas.errors import SchemaError
from schemas.uscc import validate_uscc

__all__ = [
    # errors
    "StoreError",
    "NotFound",
    "Conflict",
    "InvalidValue",
    "InvalidRow",
    "InvalidTransition",
    "Spent",
    "ListFull",
    # models
    "IssuerBase",
    "UtcDateTime",
    # values
    "DEFAULT_STATUS_LIST_SIZE",
    "CredentialStatus",
    "OfferState",
    "Authority",
    "Operator",
    "NewOperator",
    "Record",
    "RecordInput",
    "StatusListInfo",
    "StatusListState",
    "Allocation",
    "Credential",
    "Offer",
    "AccessToken",
    "Nonce",
    "IdempotencyRecord",
    "ChainReport",
    "Page",
    # transactions
    "unit_of_work",
    "joined",
    # authorities and operators
    "create_authority",
    "get_authority",
    "get_authority_by_issuer_id",
    "list_authorities",
    "lock_authority",
    "plain_json",
    "create_operator",
    "authenticate_operator",
    "get_operator",
    "list_operators",
    "revoke_operator",
    "api_key_hash",
    # keystore
    "SqlKeyRecordStore",
    # registry records
    "upsert_record",
    "import_records",
    "get_record",
    "get_record_by_id",
    "get_records",
    "record_ids",
    "refresh_record_statistics",
    "list_records",
    # status lists
    "create_status_list",
    "open_status_list",
    "allocate_index",
    "allocate_indexes",
    "allocate_in_open_list",
    "set_status",
    "get_list",
    "get_list_version",
    "SignedStatusToken",
    "ListHead",
    "get_list_head",
    "save_status_token",
    "list_status_lists",
    # credentials
    "NewCredential",
    "insert_credential",
    "insert_credentials",
    "get_credential",
    "get_credential_by_hash",
    "lock_credential",
    "live_credentials_of_record",
    "key_has_unexpired_credentials",
    "live_authorisations_under_key",
    "revoke_credentials_of_key",
    "list_credentials",
    "set_credential_status",
    "mark_replaced",
    "list_authorisations",
    # offers, tokens, nonces
    "create_offer",
    "NewOffer",
    "insert_offers",
    "get_offer",
    "open_offers_of_record",
    "open_offers_of_records",
    "find_offer_by_code",
    "claim_pin_attempt",
    "redeem_offer",
    "set_offer_state",
    "create_access_token",
    "get_access_token",
    "consume_access_token",
    "create_nonce",
    "consume_nonce",
    "purge_expired",
    "spend_access_tokens",
    "unspend_access_tokens",
    "spend_nonces",
    "unspend_nonces",
    "issue_record_offers",
    "get_records_by_ids",
    # idempotency
    "get_idempotency",
    "put_idempotency",
    # audit
    "AuditEntry",
    "append_audit",
    "append_audits",
    "list_audit",
    "iter_audit",
    "audit_head",
    "audit_chains",
    "verify_audit",
    "verify_all_audits",
]

#: Entries of a new status list when the authority does not say (2^17; the draft's lists of >= 100,000).
DEFAULT_STATUS_LIST_SIZE = 131072
#: Largest list the store accepts (the bound ``credentials.status_list`` verifies against).
MAX_STATUS_LIST_SIZE = sl.DEFAULT_MAX_SIZE
#: A new list is opened once this share of the current one is used (the plan: 75 %).
DEFAULT_FILL_LIMIT = 0.75
_SYSTEM_RANDOM = secrets.SystemRandom()
_READ_ONLY_OPTION = "elicence_read_only"  # understood by elicence.db's SQLite engine: deferred BEGIN


# --- errors ---------------------------------------------------------------------------------------------


class StoreError(Exception):
    """Root of the store's errors; ``code`` is stable and ``detail`` says what was wrong.

    ::

        StoreError          store_error
        ├── NotFound        not_found            no such row (authority, list, credential, offer, ...)
        ├── Conflict        conflict             a unique key is taken (slug, issuer id, index, ...)
        ├── InvalidValue    invalid_value        an argument the schema cannot hold
        │   └── InvalidRow  invalid_row          one row of a batch (``index``: 0-based position)
        ├── InvalidTransition invalid_transition a status or state change that is not allowed
        ├── Spent           spent                a single-use value is unknown, expired or used
        └── ListFull        status_list_full     no free index left in a status list
    """

    code: ClassVar[str] = "store_error"
    description: ClassVar[str] = "The issuer's storage refused the operation."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.description
        super().__init__(self.detail)

    def to_dict(self) -> dict[str, str]:
        """The OAuth-style error body."""
        return {"error": self.code, "error_description": self.detail}


class NotFound(StoreError):
    code = "not_found"
    description = "No such object."


class Conflict(StoreError):
    code = "conflict"
    description = "The object already exists."


class InvalidValue(StoreError):
    code = "invalid_value"
    description = "A value cannot be stored."


class InvalidRow(InvalidValue):
    """A row of a batch is refused; ``index`` is its 0-based position, ``reason`` why."""

    code = "invalid_row"
    description = "A row of the batch is invalid; nothing was written."

    def __init__(self, detail: str | None = None, *, index: int, reason: str) -> None:
        super().__init__(detail or f"row {index}: {reason}")
        self.index = index
        self.reason = reason


class InvalidTransition(StoreError):
    code = "invalid_transition"
    description = "This status change is not allowed."


class Spent(StoreError):
    """A single-use value cannot be used: ``reason`` is ``unknown``, ``expired``, ``used`` or ``exhausted``."""

    code = "spent"
    description = "The value is unknown, expired or already used."

    def __init__(self, detail: str | None = None, *, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


class ListFull(StoreError):
    code = "status_list_full"
    description = "The status list has no free index left."


# --- column types and models ---------------------------------------------------------------------------


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC; naive values are refused (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidValue("times must be timezone-aware datetimes")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


_NAMING = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class IssuerBase(DeclarativeBase):
    """Declarative base of the issuer's tables only (roles never share a base or a table)."""

    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON(), bytes: LargeBinary()}


_SLUG = String(64)
_ID = String(36)
_HEX64 = String(64)


class IssuerAuthority(IssuerBase):
    __tablename__ = "issuer_authority"

    slug: Mapped[str] = mapped_column(_SLUG, primary_key=True)
    issuer_id: Mapped[str] = mapped_column(String(512), unique=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(32))
    vcts: Mapped[list[str]] = mapped_column(JSON)
    status_list_size: Mapped[int] = mapped_column(Integer, default=DEFAULT_STATUS_LIST_SIZE)
    created_at: Mapped[datetime]


class IssuerOperator(IssuerBase):
    __tablename__ = "issuer_operator"

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    authority_slug: Mapped[str] = mapped_column(ForeignKey("issuer_authority.slug"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(_HEX64, unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class IssuerKey(IssuerBase):
    __tablename__ = "issuer_key"
    __table_args__ = (CheckConstraint("state IN ('active', 'retired', 'revoked')", name="state"),)

    kid: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(ForeignKey("issuer_authority.slug"), index=True)
    alg: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]]
    nonce: Mapped[bytes]
    ciphertext: Mapped[bytes]
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class IssuerKekCheck(IssuerBase):
    __tablename__ = "issuer_kek_check"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[bytes]


class IssuerRecord(IssuerBase):
    __tablename__ = "issuer_record"
    __table_args__ = (
        UniqueConstraint("authority_slug", "vct", "uscc"),
        CheckConstraint("length(uscc) = 18", name="uscc_length"),
    )

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    authority_slug: Mapped[str] = mapped_column(ForeignKey("issuer_authority.slug"))
    vct: Mapped[str] = mapped_column(String(512))
    uscc: Mapped[str] = mapped_column(String(18), index=True)
    claims: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class IssuerStatusList(IssuerBase):
    __tablename__ = "issuer_status_list"
    __table_args__ = (
        CheckConstraint("bits IN (1, 2, 4, 8)", name="bits"),
        CheckConstraint("used_count >= 0 AND used_count <= size", name="used_count"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    authority_slug: Mapped[str] = mapped_column(ForeignKey("issuer_authority.slug"), index=True)
    uri: Mapped[str] = mapped_column(String(512), unique=True)
    bits: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    statuses: Mapped[bytes]  # the packed list, s4.1 of the Token Status List draft
    used: Mapped[bytes]  # 1 bit per index, set at allocation and never cleared
    used_count: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class IssuerStatusToken(IssuerBase):
    """The list's last signed ``statuslist+jwt``, shared by every worker: a verifier's cache refuses a token
    signed before the one it holds, so two workers must never serve two signings of one list."""

    __tablename__ = "issuer_status_token"

    list_id: Mapped[int] = mapped_column(ForeignKey("issuer_status_list.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)  # the list version it shows
    kid: Mapped[str] = mapped_column(String(128))
    signed_at: Mapped[int] = mapped_column(BigInteger)  # its iat
    token: Mapped[str] = mapped_column(Text)


class IssuerCredential(IssuerBase):
    __tablename__ = "issuer_credential"
    __table_args__ = (
        UniqueConstraint("status_list_id", "status_idx"),
        CheckConstraint("status IN ('valid', 'suspended', 'revoked')", name="status"),
        Index(None, "authority_slug", "issued_at"),
    )

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    authority_slug: Mapped[str] = mapped_column(ForeignKey("issuer_authority.slug"))
    record_id: Mapped[str | None] = mapped_column(ForeignKey("issuer_record.id"), index=True)
    vct: Mapped[str] = mapped_column(String(512))
    uscc: Mapped[str] = mapped_column(String(18), index=True)
    holder_thumbprint: Mapped[str | None] = mapped_column(String(128))
    kid: Mapped[str] = mapped_column(ForeignKey("issuer_key.kid"), index=True)
    status_list_id: Mapped[int] = mapped_column(ForeignKey("issuer_status_list.id"))
    status_idx: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(String(500))
    status_changed_at: Mapped[datetime | None]
    issued_at: Mapped[datetime] = mapped_column(index=True)
    expires_at: Mapped[datetime | None]
    replaced_by: Mapped[str | None] = mapped_column(ForeignKey("issuer_credential.id"))
    granted_under: Mapped[str | None] = mapped_column(ForeignKey("issuer_credential.id"), index=True)
    credential_hash: Mapped[str] = mapped_column(_HEX64, index=True)


class IssuerOffer(IssuerBase):
    __tablename__ = "issuer_offer"
    __table_args__ = (
        CheckConstraint("state IN ('offered', 'redeemed', 'issued', 'expired', 'withdrawn')", name="state"),
        CheckConstraint("pin_attempts >= 0", name="pin_attempts"),
    )

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    authority_slug: Mapped[str] = mapped_column(ForeignKey("issuer_authority.slug"), index=True)
    record_id: Mapped[str | None] = mapped_column(ForeignKey("issuer_record.id"), index=True)
    configuration_id: Mapped[str] = mapped_column(String(200))
    code_hash: Mapped[str] = mapped_column(_HEX64, unique=True)
    pin_salt: Mapped[bytes | None]
    pin_hash: Mapped[bytes | None]
    pin_attempts: Mapped[int] = mapped_column(Integer, default=0)
    claims: Mapped[dict[str, Any] | None]  # for offers not backed by a registry record (授权)
    granted_under: Mapped[str | None] = mapped_column(ForeignKey("issuer_credential.id"))
    expires_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class IssuerAccessToken(IssuerBase):
    __tablename__ = "issuer_access_token"

    token_hash: Mapped[str] = mapped_column(_HEX64, primary_key=True)
    offer_id: Mapped[str] = mapped_column(ForeignKey("issuer_offer.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]


class IssuerNonce(IssuerBase):
    __tablename__ = "issuer_nonce"

    value: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]


class IssuerIdempotency(IssuerBase):
    __tablename__ = "issuer_idempotency"

    operator_id: Mapped[str] = mapped_column(ForeignKey("issuer_operator.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(_HEX64)
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(index=True)


class IssuerAudit(IssuerBase):
    __tablename__ = "issuer_audit"

    chain: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(_HEX64)
    hash: Mapped[str] = mapped_column(_HEX64)


class IssuerAuditHead(IssuerBase):
    __tablename__ = "issuer_audit_head"

    chain: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(_HEX64)


_AUTHORITY = IssuerAuthority.__table__
_OPERATOR = IssuerOperator.__table__
_KEY = IssuerKey.__table__
_KEK = IssuerKekCheck.__table__
_RECORD = IssuerRecord.__table__
_LIST = IssuerStatusList.__table__
_LIST_TOKEN = IssuerStatusToken.__table__
_CRED = IssuerCredential.__table__
_OFFER = IssuerOffer.__table__
_TOKEN = IssuerAccessToken.__table__
_NONCE = IssuerNonce.__table__
_IDEM = IssuerIdempotency.__table__
_AUDIT = IssuerAudit.__table__
_HEAD = IssuerAuditHead.__table__


# --- values ---------------------------------------------------------------------------------------------


def _frozen_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen_json(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen_json(v) for v in value)
    return value


def _plain_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(v) for v in value]
    return value


class CredentialStatus(enum.StrEnum):
    """A credential's status and the Token Status List value that publishes it (s7.1)."""

    VALID = "valid"
    SUSPENDED = "suspended"
    REVOKED = "revoked"

    @property
    def list_value(self) -> int:
        """0 VALID, 1 INVALID (revoked), 2 SUSPENDED."""
        return {"valid": sl.VALID, "suspended": sl.SUSPENDED, "revoked": sl.INVALID}[self.value]


#: Allowed status changes: revocation (注销, 吊销) is final; suspension can be lifted.
_STATUS_FROM = {
    CredentialStatus.SUSPENDED: (CredentialStatus.VALID,),
    CredentialStatus.VALID: (CredentialStatus.SUSPENDED,),
    CredentialStatus.REVOKED: (CredentialStatus.VALID, CredentialStatus.SUSPENDED),
}


class OfferState(enum.StrEnum):
    """offered -> redeemed (token issued) -> issued (credential issued); offered/redeemed -> expired/withdrawn."""

    OFFERED = "offered"
    REDEEMED = "redeemed"
    ISSUED = "issued"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


_OFFER_FROM = {
    OfferState.REDEEMED: (OfferState.OFFERED,),
    OfferState.ISSUED: (OfferState.REDEEMED,),
    OfferState.EXPIRED: (OfferState.OFFERED, OfferState.REDEEMED),
    OfferState.WITHDRAWN: (OfferState.OFFERED, OfferState.REDEEMED),
}


@dataclass(frozen=True, slots=True)
class Authority:
    """An issuing authority hosted by this deployment."""

    slug: str
    issuer_id: str
    name_zh: str
    name_en: str
    region: str
    vcts: tuple[str, ...]
    status_list_size: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Operator:
    """A member of staff (or a system) allowed to use one authority's admin API."""

    id: str
    authority: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewOperator:
    """A created operator and its API key: shown once, only its SHA-256 is stored."""

    operator: Operator
    api_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Record:
    """A registry record (the claims a credential of ``vct`` is issued from)."""

    id: str
    authority: str
    vct: str
    uscc: str
    claims: Mapping[str, Any] = field(repr=False)
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "claims", _frozen_json(self.claims))

    def claims_json(self) -> dict[str, Any]:
        """A plain, mutable copy of ``claims``."""
        return _plain_json(self.claims)


@dataclass(frozen=True, slots=True)
class RecordInput:
    """One row of :func:`import_records`."""

    vct: str
    uscc: str
    claims: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class StatusListInfo:
    """A status list without its bits: what listing and ETag checks need."""

    id: int
    authority: str
    uri: str
    bits: int
    size: int
    used_count: int
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StatusListState:
    """A status list with its packed statuses, ready to be signed (``status_list()``)."""

    info: StatusListInfo
    statuses: bytes = field(repr=False)

    def status_list(self) -> sl.StatusList:
        """The ``credentials.status_list.StatusList`` value of these bits."""
        return sl.StatusList(self.info.bits, self.statuses)


@dataclass(frozen=True, slots=True)
class Allocation:
    """A status index reserved for one credential (``uri`` and ``idx`` go into its ``status`` claim)."""

    list_id: int
    uri: str
    idx: int


@dataclass(frozen=True, slots=True)
class Credential:
    """An issued credential's row (its text is not stored: ``credential_hash`` is its SHA-256)."""

    id: str
    authority: str
    record_id: str | None
    vct: str
    uscc: str
    holder_thumbprint: str | None
    kid: str
    status_list_id: int
    status_idx: int
    status: CredentialStatus
    reason: str | None
    status_changed_at: datetime | None
    issued_at: datetime
    expires_at: datetime | None
    replaced_by: str | None
    granted_under: str | None
    credential_hash: str


@dataclass(frozen=True, slots=True)
class Offer:
    """A credential offer (pre-authorised code flow); the code and PIN are stored as hashes."""

    id: str
    authority: str
    record_id: str | None
    configuration_id: str
    code_hash: str
    pin_salt: bytes | None = field(repr=False)
    pin_hash: bytes | None = field(repr=False)
    pin_attempts: int
    claims: Mapping[str, Any] | None = field(repr=False)
    granted_under: str | None
    expires_at: datetime
    state: OfferState
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        if self.claims is not None:
            object.__setattr__(self, "claims", _frozen_json(self.claims))


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An access token (stored as its hash), bound to one offer."""

    token_hash: str
    offer_id: str
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class Nonce:
    """A ``c_nonce`` for key proofs; single use."""

    value: str
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The stored outcome of an admin request made with an ``Idempotency-Key``."""

    operator_id: str
    key: str
    request_hash: str
    status_code: int
    response: Mapping[str, Any] = field(repr=False)
    created_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "response", _frozen_json(self.response))


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Outcome of verifying one audit chain: ``broken`` is ``None`` when it verifies."""

    chain: str
    count: int
    broken: audit_chain.ChainBreak | None


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_cursor`` back for the next page (``None``: last page)."""

    items: tuple[T, ...]
    next_cursor: str | None


# --- row conversion -------------------------------------------------------------------------------------


def _authority(r: Any) -> Authority:
    return Authority(r.slug, r.issuer_id, r.name_zh, r.name_en, r.region, tuple(r.vcts), r.status_list_size, r.created_at)


def _operator(r: Any) -> Operator:
    return Operator(r.id, r.authority_slug, r.name, r.created_at, r.revoked_at)


def _record(r: Any) -> Record:
    return Record(r.id, r.authority_slug, r.vct, r.uscc, r.claims, r.created_at, r.updated_at)


def _list_info(r: Any) -> StatusListInfo:
    return StatusListInfo(r.id, r.authority_slug, r.uri, r.bits, r.size, r.used_count, r.version, r.created_at, r.updated_at)


def _credential(r: Any) -> Credential:
    return Credential(
        id=r.id,
        authority=r.authority_slug,
        record_id=r.record_id,
        vct=r.vct,
        uscc=r.uscc,
        holder_thumbprint=r.holder_thumbprint,
        kid=r.kid,
        status_list_id=r.status_list_id,
        status_idx=r.status_idx,
        status=CredentialStatus(r.status),
        reason=r.reason,
        status_changed_at=r.status_changed_at,
        issued_at=r.issued_at,
        expires_at=r.expires_at,
        replaced_by=r.replaced_by,
        granted_under=r.granted_under,
        credential_hash=r.credential_hash,
    )


def _offer(r: Any) -> Offer:
    return Offer(
        id=r.id,
        authority=r.authority_slug,
        record_id=r.record_id,
        configuration_id=r.configuration_id,
        code_hash=r.code_hash,
        pin_salt=r.pin_salt,
        pin_hash=r.pin_hash,
        pin_attempts=r.pin_attempts,
        claims=r.claims,
        granted_under=r.granted_under,
        expires_at=r.expires_at,
        state=OfferState(r.state),
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _audit_record(r: Any) -> audit_chain.AuditRecord:
    return audit_chain.AuditRecord(
        chain=r.chain,
        seq=r.seq,
        at=r.at,
        actor=r.actor,
        action=r.action,
        subject=r.subject,
        details=r.details,
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


def _key_record(r: Any) -> KeyRecord:
    return KeyRecord(
        kid=r.kid,
        alg=r.alg,
        state=KeyState(r.state),
        public_jwk=r.public_jwk,
        nonce=r.nonce,
        ciphertext=r.ciphertext,
        created_at=r.created_at,
        retired_at=r.retired_at,
        revoked_at=r.revoked_at,
        label=r.label,
        owner=r.owner,
    )


# --- helpers --------------------------------------------------------------------------------------------


def _new_id() -> str:
    return str(uuid.uuid4())


def _require_aware(name: str, value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidValue(f"{name} must be a timezone-aware datetime")
    return value


def _require_str(name: str, value: Any, *, max_len: int, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value) or len(value) > max_len or "\x00" in value:
        raise InvalidValue(f"{name} must be a{'' if empty else ' non-empty'} string of at most {max_len} characters, "
                           "without NUL")
    return value


def _json_object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"{name} must be a JSON object")
    plain = value  # plain JSON (claims parsed from a file or a request) is stored as it is
    try:
        try:
            json.dumps(plain, allow_nan=False)
        except TypeError:  # frozen mappings (values read from the store) become plain ones
            plain = _plain_json(value)
            json.dumps(plain, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"{name} is not JSON: {exc}") from exc
    return plain


def _dialect_insert(session: Session, table: Any) -> Any:
    """``INSERT`` with the dialect's ``ON CONFLICT`` clauses (SQLite and PostgreSQL both have them)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"database {name!r} is not supported")  # pragma: no cover - elicence.db refuses it


def _copy_in(session: Session, target: str, columns: Sequence[Any], rows: Iterable[Mapping[str, Any]]) -> None:
    """PostgreSQL: ``COPY target (columns) FROM STDIN`` of ``rows`` (by column name) in the session's
    transaction.

    A bulk write without a statement per row: it took half the time of an ``executemany`` of the
    same ``INSERT`` for 100,000 offers, whose parameters SQLAlchemy and the driver process row by row.
    The driver adapts the values as it adapts query parameters; a JSON column gets ``json.dumps`` of
    its value, ``None`` included (JSON ``null``), as SQLAlchemy's ``JSON`` type writes it. Driver
    errors are raised as SQLAlchemy's, as a statement's would be (``IntegrityError`` for a violated
    constraint).
    """
    names = [c.name for c in columns]
    encoders = [json.dumps if isinstance(c.type, JSON) else None for c in columns]
    connection = session.connection()
    dialect = connection.dialect
    statement = f"COPY {target} ({', '.join(names)}) FROM STDIN"
    try:
        with connection.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[n] if encode is None else encode(row[n]) for n, encode in zip(names, encoders)])
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc


@contextlib.contextmanager
def _savepoint(session: Session, conflict: str) -> Iterator[None]:
    """Run a write in a savepoint; a unique or foreign key violation becomes ``Conflict(conflict)``."""
    try:
        with session.begin_nested():
            yield
    except IntegrityError as exc:
        raise Conflict(conflict) from exc


def _encode_cursor(at: datetime, ident: str) -> str:
    raw = json.dumps([at.astimezone(timezone.utc).isoformat(), ident], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, ident = json.loads(raw)
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None or not isinstance(ident, str):
            raise ValueError("bad cursor")
        return parsed, ident
    except (ValueError, TypeError) as exc:
        raise InvalidValue("cursor is not one this store handed out") from exc


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidValue("limit must be an integer from 1 to 1000")
    return limit


# --- transactions ---------------------------------------------------------------------------------------


_JOINED: contextvars.ContextVar[tuple[Any, Session] | None] = contextvars.ContextVar("issuer_joined", default=None)


@contextlib.contextmanager
def joined(session_factory: sessionmaker[Session], session: Session) -> Iterator[None]:
    """Inside the block, every :func:`unit_of_work` on ``session_factory`` (in this thread or task) runs
    in ``session``'s transaction: work written as several units commits or fails as one (an
    idempotent request's work together with its stored outcome)."""
    token = _JOINED.set((session_factory, session))
    try:
        yield
    finally:
        _JOINED.reset(token)


@contextlib.contextmanager
def unit_of_work(session_factory: sessionmaker[Session], *, read_only: bool = False) -> Iterator[Session]:
    """One transaction: yields a session, commits when the block ends, rolls back if it raises.

    Compose repository calls inside it so that they commit together. ``read_only=True`` starts a
    deferred transaction on SQLite (no write lock, never waits for writers) and rolls back at the end.
    Inside :func:`joined` on the same factory it is the joined transaction instead, which the
    caller of :func:`joined` commits or rolls back.
    """
    outer = _JOINED.get()
    if outer is not None and outer[0] is session_factory:
        yield outer[1]
        return
    with session_factory() as session:
        if read_only:
            session.connection(execution_options={_READ_ONLY_OPTION: True})
            try:
                yield session
            finally:
                session.rollback()
            return
        with session.begin():
            yield session


# --- authorities ----------------------------------------------------------------------------------------

_SLUG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def create_authority(
    session: Session,
    /,
    *,
    slug: str,
    issuer_id: str,
    name_zh: str,
    name_en: str,
    region: str,
    vcts: Sequence[str],
    now: datetime,
    status_list_size: int = DEFAULT_STATUS_LIST_SIZE,
) -> Authority:
    """Register an authority. Raises ``InvalidValue`` (slug: 1-64 of ``a-z 0-9 -``; list size a multiple
    of 8 up to 2^22), ``Conflict`` if the slug or issuer identifier is taken."""
    if not isinstance(slug, str) or not 1 <= len(slug) <= 64 or not set(slug) <= _SLUG_CHARS or slug[0] == "-":
        raise InvalidValue("slug must be 1-64 characters of a-z, 0-9 and '-' (not first)")
    _require_str("issuer_id", issuer_id, max_len=512)
    if isinstance(vcts, str) or not all(isinstance(v, str) and v for v in vcts):
        raise InvalidValue("vcts must be a list of credential type URIs")
    if (
        isinstance(status_list_size, bool)
        or not isinstance(status_list_size, int)
        or not 8 <= status_list_size <= MAX_STATUS_LIST_SIZE
        or status_list_size % 8
    ):
        raise InvalidValue(f"status_list_size must be a multiple of 8 from 8 to {MAX_STATUS_LIST_SIZE}")
    values = {
        "slug": slug,
        "issuer_id": issuer_id,
        "name_zh": _require_str("name_zh", name_zh, max_len=200),
        "name_en": _require_str("name_en", name_en, max_len=200),
        "region": _require_str("region", region, max_len=32, empty=True),
        "vcts": list(vcts),
        "status_list_size": status_list_size,
        "created_at": _require_aware("now", now),
    }
    with _savepoint(session, f"an authority {slug!r} or issuer {issuer_id!r} exists"):
        session.execute(insert(_AUTHORITY).values(values))
    return _authority(SimpleNamespace(**values))


def get_authority(session: Session, /, *, slug: str) -> Authority | None:
    """The authority ``slug``, or ``None``."""
    row = session.execute(select(_AUTHORITY).where(_AUTHORITY.c.slug == slug)).one_or_none()
    return None if row is None else _authority(row)


def get_authority_by_issuer_id(session: Session, /, *, issuer_id: str) -> Authority | None:
    """The authority whose issuer identifier is ``issuer_id``, or ``None``."""
    row = session.execute(select(_AUTHORITY).where(_AUTHORITY.c.issuer_id == issuer_id)).one_or_none()
    return None if row is None else _authority(row)


def list_authorities(session: Session, /) -> tuple[Authority, ...]:
    """Every authority, by slug."""
    return tuple(_authority(r) for r in session.execute(select(_AUTHORITY).order_by(_AUTHORITY.c.slug)))


def lock_authority(session: Session, /, *, slug: str) -> Authority:
    """Lock the authority's row until the transaction ends (serialises key events); raises ``NotFound``."""
    return _authority(_lock_authority(session, slug))


def plain_json(value: Any) -> Any:
    """A plain, mutable copy of a value read from the store (frozen mappings become dicts)."""
    return _plain_json(value)


def _lock_authority(session: Session, slug: str) -> Any:
    row = session.execute(
        select(_AUTHORITY).where(_AUTHORITY.c.slug == slug).with_for_update(key_share=True)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no authority {slug!r}")
    return row


# --- operators ------------------------------------------------------------------------------------------

_API_KEY_PREFIX = "elk_"


def api_key_hash(api_key: str) -> str:
    """The stored form of an API key: lowercase hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def create_operator(
    session: Session,
    /,
    *,
    authority: str,
    name: str,
    now: datetime,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> NewOperator:
    """Create an operator of ``authority`` with a fresh API key (``elk_`` + 256 random bits, base64url).

    The key is returned once in :class:`NewOperator`; only its hash is stored. Raises ``NotFound`` for
    an unknown authority, ``InvalidValue`` for an empty name.
    """
    if get_authority(session, slug=authority) is None:
        raise NotFound(f"no authority {authority!r}")
    secret = random_bytes(32)
    if len(secret) != 32:
        raise InvalidValue("random_bytes must return the number of bytes asked for")
    api_key = _API_KEY_PREFIX + base64.urlsafe_b64encode(secret).decode().rstrip("=")
    values = {
        "id": str(uuid.UUID(bytes=random_bytes(16), version=4)),
        "authority_slug": authority,
        "name": _require_str("name", name, max_len=200),
        "key_hash": api_key_hash(api_key),
        "created_at": _require_aware("now", now),
        "revoked_at": None,
    }
    with _savepoint(session, "operator id or key collision"):
        session.execute(insert(_OPERATOR).values(values))
    return NewOperator(_operator(SimpleNamespace(**values)), api_key)


def authenticate_operator(session: Session, /, *, api_key: str) -> Operator | None:
    """The operator holding ``api_key`` if it is not revoked, else ``None`` (wrong, unknown or revoked)."""
    if not isinstance(api_key, str) or not api_key.startswith(_API_KEY_PREFIX) or len(api_key) > 200:
        return None
    row = session.execute(
        select(_OPERATOR).where(_OPERATOR.c.key_hash == api_key_hash(api_key), _OPERATOR.c.revoked_at.is_(None))
    ).one_or_none()
    return None if row is None else _operator(row)


def get_operator(session: Session, /, *, operator_id: str) -> Operator | None:
    """The operator ``operator_id`` (revoked or not), or ``None``."""
    row = session.execute(select(_OPERATOR).where(_OPERATOR.c.id == operator_id)).one_or_none()
    return None if row is None else _operator(row)


def list_operators(session: Session, /, *, authority: str) -> tuple[Operator, ...]:
    """The operators of ``authority``, oldest first."""
    rows = session.execute(
        select(_OPERATOR).where(_OPERATOR.c.authority_slug == authority).order_by(_OPERATOR.c.created_at, _OPERATOR.c.id)
    )
    return tuple(_operator(r) for r in rows)


def revoke_operator(session: Session, /, *, operator_id: str, now: datetime) -> Operator:
    """Revoke an operator's key (once). Raises ``NotFound``, ``InvalidTransition`` if already revoked."""
    _require_aware("now", now)
    result = session.execute(
        update(_OPERATOR)
        .where(_OPERATOR.c.id == operator_id, _OPERATOR.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    operator = get_operator(session, operator_id=operator_id)
    if operator is None:
        raise NotFound(f"no operator {operator_id!r}")
    if result.rowcount != 1:
        raise InvalidTransition(f"operator {operator_id!r} is already revoked")
    return operator


# --- keystore -------------------------------------------------------------------------------------------


class SqlKeyRecordStore:
    """``keys.keystore.KeyRecordStore`` on ``issuer_key`` / ``issuer_kek_check``, scoped to one ``owner``.

    Each call runs in its own transaction, unless the store is bound to an open session with
    :meth:`using` — then writes join that transaction (so a key event and its audit record commit
    together)::

        with unit_of_work(sessions) as tx:
            kid = Keystore(key_records.using(tx), kek).generate("ES256", now=now, owner=slug)
            append_audit(tx, chain=slug, at=now, actor=op, action="key.generated", subject=kid)

    Only records of ``owner`` are visible; ``put`` refuses a record of another owner. The KEK check
    value is one row for the whole deployment (one KEK encrypts every authority's keys).
    """

    def __init__(self, session_factory: sessionmaker[Session], owner: str, *, session: Session | None = None) -> None:
        self._sessions = session_factory
        self.owner = owner
        self._session = session

    def __repr__(self) -> str:
        return f"SqlKeyRecordStore(owner={self.owner!r}{', bound' if self._session is not None else ''})"

    def using(self, session: Session) -> SqlKeyRecordStore:
        """The same store, working inside ``session``'s transaction (no commit of its own)."""
        return SqlKeyRecordStore(self._sessions, self.owner, session=session)

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Session]:
        if self._session is not None:
            yield self._session
        else:
            with unit_of_work(self._sessions) as session:
                yield session

    def get(self, kid: str) -> KeyRecord | None:
        """The record with this ``kid`` of this owner, or ``None``."""
        with self._tx() as session:
            row = session.execute(select(_KEY).where(_KEY.c.kid == kid, _KEY.c.owner == self.owner)).one_or_none()
            return None if row is None else _key_record(row)

    def put(self, record: KeyRecord) -> None:
        """Insert a new record; raises ``KeystoreError`` if the ``kid`` exists or the owner differs."""
        if record.owner != self.owner:
            raise KeystoreError(f"this store holds keys of {self.owner!r}, not {record.owner!r}")
        values = {
            "kid": record.kid,
            "owner": self.owner,
            "alg": record.alg,
            "state": record.state.value,
            "public_jwk": dict(record.public_jwk),
            "nonce": record.nonce,
            "ciphertext": record.ciphertext,
            "label": record.label,
            "created_at": record.created_at,
            "retired_at": record.retired_at,
            "revoked_at": record.revoked_at,
        }
        with self._tx() as session:
            try:
                with session.begin_nested():
                    session.execute(insert(_KEY).values(values))
            except IntegrityError as exc:
                raise KeystoreError(f"a key with kid {record.kid!r} is already stored (or no authority {self.owner!r})") from exc

    def list(self, *, owner: str | None = None) -> tuple[KeyRecord, ...]:
        """This owner's records, oldest first (``owner``, if given, must be this store's)."""
        if owner is not None and owner != self.owner:
            return ()
        with self._tx() as session:
            rows = session.execute(
                select(_KEY).where(_KEY.c.owner == self.owner).order_by(_KEY.c.created_at, _KEY.c.kid)
            )
            return tuple(_key_record(r) for r in rows)

    def update_state(self, kid: str, state: KeyState, *, at: datetime) -> KeyRecord:
        """Set the state and its timestamp; raises ``KeyNotFound``. Returns the updated record."""
        state = KeyState(state)
        values: dict[str, Any] = {"state": state.value}
        if state is KeyState.RETIRED:
            values["retired_at"] = at
        elif state is KeyState.REVOKED:
            values["revoked_at"] = at
        with self._tx() as session:
            result = session.execute(update(_KEY).where(_KEY.c.kid == kid, _KEY.c.owner == self.owner).values(values))
            if result.rowcount != 1:
                raise KeyNotFound(f"no key {kid!r}")
            return _key_record(session.execute(select(_KEY).where(_KEY.c.kid == kid)).one())

    def kek_check(self) -> bytes | None:
        """The deployment's KEK check value, or ``None`` before the first key."""
        with self._tx() as session:
            return session.execute(select(_KEK.c.value).where(_KEK.c.id == 1)).scalar_one_or_none()

    def init_kek_check(self, value: bytes) -> bytes:
        """Store ``value`` unless a check value exists (``INSERT ... ON CONFLICT DO NOTHING``); return the stored one."""
        with self._tx() as session:
            session.execute(_dialect_insert(session, _KEK).values(id=1, value=value).on_conflict_do_nothing())
            return session.execute(select(_KEK.c.value).where(_KEK.c.id == 1)).scalar_one()


# --- registry records -----------------------------------------------------------------------------------


def _record_values(authority: Authority, item: Any, now: datetime) -> dict[str, Any]:
    """Checks of one record row; raises ``InvalidValue`` (the caller adds the row number)."""
    if not isinstance(item.vct, str) or item.vct not in authority.vcts:
        raise InvalidValue(f"authority {authority.slug!r} does not issue {item.vct!r}")
    try:
        validate_uscc(item.uscc)
    except SchemaError as exc:
        raise InvalidValue(f"uscc: {exc}") from exc
    return {
        "id": _new_id(),
        "authority_slug": authority.slug,
        "vct": item.vct,
        "uscc": item.uscc,
        "claims": _json_object("claims", item.claims),
        "created_at": now,
        "updated_at": now,
    }


def _record_upsert(session: Session, rows_from: Any = None) -> Any:
    """Insert or replace records: the statement's parameters, or the rows of the ``rows_from`` select."""
    stmt = _dialect_insert(session, _RECORD)
    if rows_from is not None:
        stmt = stmt.from_select([c.name for c in _RECORD.columns], rows_from)
    return stmt.on_conflict_do_update(
        index_elements=[_RECORD.c.authority_slug, _RECORD.c.vct, _RECORD.c.uscc],
        set_={"claims": stmt.excluded.claims, "updated_at": stmt.excluded.updated_at},
    )


def upsert_record(
    session: Session, /, *, authority: str, vct: str, uscc: str, claims: Mapping[str, Any], now: datetime
) -> Record:
    """Insert or replace the record (``authority``, ``vct``, ``uscc``); keeps its id and ``created_at``.

    Raises ``NotFound`` (authority), ``InvalidValue`` (vct not issued by the authority, invalid USCC
    (GB 32100 check), claims not a JSON object).
    """
    _require_aware("now", now)
    auth = get_authority(session, slug=authority)
    if auth is None:
        raise NotFound(f"no authority {authority!r}")
    values = _record_values(auth, RecordInput(vct, uscc, claims), now)
    session.execute(_record_upsert(session), [values])
    record = get_record(session, authority=authority, vct=vct, uscc=uscc)
    assert record is not None
    return record


def import_records(
    session: Session, /, *, authority: str, records: Sequence[RecordInput], now: datetime, chunk: int = 1000
) -> int:
    """Insert or replace a batch of records, all or nothing; returns how many rows were written.

    Every row is checked first (as in :func:`upsert_record`, plus no (vct, uscc) twice in the batch);
    the first bad row raises ``InvalidRow`` (``index`` = its 0-based position) before anything is
    written. The writes run in a savepoint, so a database error also leaves nothing of the batch and
    the caller's transaction usable. Raises ``NotFound`` for an unknown authority.
    """
    _require_aware("now", now)
    auth = get_authority(session, slug=authority)
    if auth is None:
        raise NotFound(f"no authority {authority!r}")
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(records):
        if not isinstance(item, RecordInput):
            raise InvalidRow(index=index, reason="not a RecordInput")
        try:
            values = _record_values(auth, item, now)
        except InvalidValue as exc:
            raise InvalidRow(index=index, reason=exc.detail) from exc
        key = (item.vct, item.uscc)
        if key in seen:
            raise InvalidRow(index=index, reason=f"same vct and uscc as row {seen[key]}")
        seen[key] = index
        rows.append(values)
    if not rows:
        return 0
    with _savepoint(session, "the batch conflicts with stored data; nothing was written"):
        if session.get_bind().dialect.name == "postgresql":
            # COPY into a session-private stage, then one upsert from it.
            session.execute(text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {_RECORD_STAGE.name} "
                                 f"(LIKE {_RECORD.name}) ON COMMIT DELETE ROWS"))
            _copy_in(session, _RECORD_STAGE.name, _RECORD.columns, rows)
            session.execute(_record_upsert(session, select(_RECORD_STAGE)))
            session.execute(delete(_RECORD_STAGE))
        else:
            stmt = _record_upsert(session)
            for start in range(0, len(rows), chunk):
                session.execute(stmt, rows[start : start + chunk])
    return len(rows)


#: PostgreSQL: the temporary table :func:`import_records` copies a batch into before its upsert.
_RECORD_STAGE = table("issuer_record_stage", *(column(c.name) for c in _RECORD.columns))


def get_record(session: Session, /, *, authority: str, vct: str, uscc: str) -> Record | None:
    """The record of (``authority``, ``vct``, ``uscc``), or ``None``."""
    row = session.execute(
        select(_RECORD).where(_RECORD.c.authority_slug == authority, _RECORD.c.vct == vct, _RECORD.c.uscc == uscc)
    ).one_or_none()
    return None if row is None else _record(row)


def get_record_by_id(session: Session, /, *, record_id: str) -> Record | None:
    """The record ``record_id``, or ``None``."""
    row = session.execute(select(_RECORD).where(_RECORD.c.id == record_id)).one_or_none()
    return None if row is None else _record(row)


def get_records(
    session: Session, /, *, authority: str, vct: str, usccs: Sequence[str], chunk: int = 500
) -> dict[str, Record]:
    """The records (``authority``, ``vct``) with these USCCs, by USCC (missing ones are absent)."""
    out: dict[str, Record] = {}
    wanted = list(dict.fromkeys(usccs))
    for start in range(0, len(wanted), chunk):
        rows = session.execute(
            select(_RECORD).where(
                _RECORD.c.authority_slug == authority,
                _RECORD.c.vct == vct,
                _RECORD.c.uscc.in_(wanted[start : start + chunk]),
            )
        )
        for r in rows:
            record = _record(r)
            out[record.uscc] = record
    return out


def record_ids(
    session: Session, /, *, authority: str, vct: str, usccs: Sequence[str], chunk: int = 500
) -> dict[str, str]:
    """The ids of the records (``authority``, ``vct``) with these USCCs, by USCC (missing ones are absent);
    what bulk offers need, without reading and decoding every record's claims."""
    out: dict[str, str] = {}
    wanted = list(dict.fromkeys(usccs))
    for start in range(0, len(wanted), chunk):
        rows = session.execute(
            select(_RECORD.c.uscc, _RECORD.c.id).where(
                _RECORD.c.authority_slug == authority,
                _RECORD.c.vct == vct,
                _RECORD.c.uscc.in_(wanted[start : start + chunk]),
            )
        )
        out.update({r.uscc: r.id for r in rows})
    return out


def refresh_record_statistics(session: Session, /) -> None:
    """Let the query planner see the record table as it now is (``ANALYZE``; PostgreSQL and SQLite).

    After a bulk import the statistics describe the table as it was: PostgreSQL then filters each
    lookup of a batch of USCCs row by row through the unique index instead of using the USCC index,
    which makes offering for a whole import file quadratic in its size (measured: 22 ms against 4 ms a
    batch of 500 at 20,000 records). Autovacuum would catch up, but not before the offers are made."""
    session.execute(text(f"ANALYZE {_RECORD.name}"))


def list_records(
    session: Session,
    /,
    *,
    authority: str,
    vct: str | None = None,
    uscc: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Record]:
    """Records of ``authority`` (optionally of one ``vct`` / ``uscc``), oldest first, a page at a time.

    Raises ``InvalidValue`` for a bad ``limit`` (1-1000) or ``cursor``.
    """
    query = select(_RECORD).where(_RECORD.c.authority_slug == authority)
    if vct is not None:
        query = query.where(_RECORD.c.vct == vct)
    if uscc is not None:
        query = query.where(_RECORD.c.uscc == uscc)
    return _page(session, query, _RECORD.c.created_at, _RECORD.c.id, _record, limit, cursor, descending=False)


def _page(
    session: Session,
    query: Any,
    at_col: Any,
    id_col: Any,
    convert: Callable[[Any], T],
    limit: int,
    cursor: str | None,
    *,
    descending: bool,
) -> Page[T]:
    limit = _check_limit(limit)
    if cursor is not None:
        at, ident = _decode_cursor(cursor)
        if descending:
            query = query.where(or_(at_col < at, and_(at_col == at, id_col < ident)))
        else:
            query = query.where(or_(at_col > at, and_(at_col == at, id_col > ident)))
    order = (at_col.desc(), id_col.desc()) if descending else (at_col, id_col)
    rows = session.execute(query.order_by(*order).limit(limit + 1)).all()
    items = tuple(convert(r) for r in rows[:limit])
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return Page(items, _encode_cursor(last._mapping[at_col.name], last._mapping[id_col.name]) if last is not None else None)


# --- status lists ---------------------------------------------------------------------------------------


def create_status_list(
    session: Session, /, *, authority: str, uri_prefix: str, now: datetime, size: int | None = None, bits: int = 2
) -> StatusListInfo:
    """Open a new, empty list for ``authority``; its URI is ``uri_prefix`` + its id.

    ``size`` defaults to the authority's ``status_list_size``. Raises ``NotFound`` (authority),
    ``InvalidValue`` (size not a multiple of 8 up to 2^22, bits not 1/2/4/8).
    """
    _require_aware("now", now)
    auth = get_authority(session, slug=authority)
    if auth is None:
        raise NotFound(f"no authority {authority!r}")
    size = auth.status_list_size if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= MAX_STATUS_LIST_SIZE or size % 8:
        raise InvalidValue(f"size must be a multiple of 8 from 8 to {MAX_STATUS_LIST_SIZE}")
    if bits not in sl.ALLOWED_BITS or isinstance(bits, bool):
        raise InvalidValue("bits must be 1, 2, 4 or 8")
    _require_str("uri_prefix", uri_prefix, max_len=400)
    values = {
        "authority_slug": authority,
        "uri": f"{uri_prefix}#pending-{_new_id()}",  # the final URI needs the id the insert assigns
        "bits": bits,
        "size": size,
        "statuses": sl.StatusList.new(size, bits).data,
        "used": bytes(size // 8),
        "used_count": 0,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    list_id = session.execute(insert(_LIST).values(values).returning(_LIST.c.id)).scalar_one()
    with _savepoint(session, f"status list URI {uri_prefix}{list_id} is taken"):
        session.execute(update(_LIST).where(_LIST.c.id == list_id).values(uri=f"{uri_prefix}{list_id}"))
    return _list_info(session.execute(_info_query().where(_LIST.c.id == list_id)).one())


def _info_query() -> Any:
    return select(*(c for c in _LIST.c if c.name not in ("statuses", "used")))


def open_status_list(
    session: Session,
    /,
    *,
    authority: str,
    uri_prefix: str,
    now: datetime,
    fill_limit: float = DEFAULT_FILL_LIMIT,
) -> StatusListInfo:
    """The list new credentials of ``authority`` should use: the newest one used below ``fill_limit``,
    or a new one (:func:`create_status_list`). The authority row is locked, so concurrent callers open
    one new list, not several. Raises ``NotFound`` for an unknown authority."""
    _lock_authority(session, authority)
    row = session.execute(
        _info_query()
        .where(_LIST.c.authority_slug == authority, _LIST.c.used_count < _LIST.c.size * fill_limit)
        .order_by(_LIST.c.id.desc())
        .limit(1)
    ).one_or_none()
    if row is not None:
        return _list_info(row)
    return create_status_list(session, authority=authority, uri_prefix=uri_prefix, now=now)


# Built once: the issuance hot path should not rebuild (and re-key for the cache) its statements.
_LOCK_LIST_FOR_ALLOCATION = (
    select(_LIST.c.uri, _LIST.c.size, _LIST.c.used, _LIST.c.used_count)
    .where(_LIST.c.id == bindparam("list_id"))
    .with_for_update(key_share=True)
)
_MARK_ALLOCATED = (
    update(_LIST)
    .where(_LIST.c.id == bindparam("b_id"))
    .values(
        used=bindparam("b_used"),
        used_count=_LIST.c.used_count + bindparam("b_count"),
        updated_at=bindparam("b_now"),
    )
)


def allocate_indexes(
    session: Session, /, *, list_id: int, count: int, now: datetime, rng: sl.RandomSource = _SYSTEM_RANDOM
) -> tuple[Allocation, ...]:
    """Reserve ``count`` random unused indexes of list ``list_id`` in the caller's transaction.

    The list row is locked (``SELECT ... FOR UPDATE``) while its ``used`` bitmap is read and written,
    so concurrent transactions never receive the same index. An index taken by a committed transaction
    is never handed out again; a rolled-back transaction's indexes go back to the pool (nothing can
    refer to them). The ``version`` stays: a fresh index reads VALID, as every unused entry does, so
    the signed token does not change. Raises ``NotFound``, ``ListFull`` (fewer than ``count`` free),
    ``InvalidValue``.
    """
    _require_aware("now", now)
    _require_count(count)
    row = session.execute(_LOCK_LIST_FOR_ALLOCATION, {"list_id": list_id}).one_or_none()
    if row is None:
        raise NotFound(f"no status list {list_id}")
    return _allocate(session, list_id, row, count, now, rng)


def _require_count(count: Any) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidValue("count must be a positive integer")


def _allocate(session: Session, list_id: int, row: Any, count: int, now: datetime,
              rng: sl.RandomSource) -> tuple[Allocation, ...]:
    """Take ``count`` random unused indexes of the locked list ``row`` (uri, size, used, used_count)."""
    if count > row.size - row.used_count:
        raise ListFull(f"status list {list_id} has {row.size - row.used_count} free indexes, {count} wanted")
    # s12.5.1 (draft-ietf-oauth-status-list): indexes are chosen at random among the unused ones.
    chosen = sl.allocate_indexes(row.used, count, row.size, rng=rng)
    # s13.3: "The Status Issuer MUST prevent any unintended double allocation." (mark_used refuses reuse)
    used = sl.mark_used(row.used, chosen, row.size)
    session.execute(_MARK_ALLOCATED, {"b_id": list_id, "b_used": used, "b_count": count, "b_now": now})
    return tuple(Allocation(list_id, row.uri, idx) for idx in chosen)


_LOCK_OPEN_LIST = (
    select(_LIST.c.id, _LIST.c.uri, _LIST.c.size, _LIST.c.used, _LIST.c.used_count)
    # Float, explicitly: next to an integer column the parameter would be bound as an integer (0.75 -> 1).
    .where(_LIST.c.authority_slug == bindparam("authority"),
           _LIST.c.used_count < _LIST.c.size * bindparam("fill_limit", type_=Float()))
    .order_by(_LIST.c.id.desc())
    .limit(1)
    .with_for_update(key_share=True)
)


def allocate_in_open_list(
    session: Session,
    /,
    *,
    authority: str,
    uri_prefix: str,
    count: int,
    now: datetime,
    fill_limit: float = DEFAULT_FILL_LIMIT,
    rng: sl.RandomSource = _SYSTEM_RANDOM,
) -> tuple[Allocation, ...]:
    """:func:`open_status_list` and :func:`allocate_indexes` together, in two statements when the
    authority's newest list has room (that list's row locked and written); otherwise as those two
    functions (the authority row locked, a new list opened). Raises ``NotFound``, ``ListFull``,
    ``InvalidValue``."""
    _require_aware("now", now)
    _require_count(count)
    row = session.execute(_LOCK_OPEN_LIST, {"authority": authority, "fill_limit": fill_limit}).one_or_none()
    if row is not None:
        return _allocate(session, row.id, row, count, now, rng)
    lst = open_status_list(session, authority=authority, uri_prefix=uri_prefix, now=now, fill_limit=fill_limit)
    return allocate_indexes(session, list_id=lst.id, count=count, now=now, rng=rng)


def allocate_index(
    session: Session, /, *, list_id: int, now: datetime, rng: sl.RandomSource = _SYSTEM_RANDOM
) -> Allocation:
    """Reserve one random unused index (see :func:`allocate_indexes`); raises ``NotFound``, ``ListFull``."""
    return allocate_indexes(session, list_id=list_id, count=1, now=now, rng=rng)[0]


def set_status(session: Session, /, *, list_id: int, idx: int, value: int, now: datetime) -> int:
    """Set entry ``idx`` of list ``list_id`` to ``value`` and bump the version; returns the new version.

    Prefer :func:`set_credential_status`, which keeps the credential row in step. Raises ``NotFound``
    (list), ``InvalidValue`` (index out of range or never allocated, value too wide for ``bits``).
    """
    _require_aware("now", now)
    row = session.execute(
        select(_LIST.c.bits, _LIST.c.size, _LIST.c.statuses, _LIST.c.used, _LIST.c.version)
        .where(_LIST.c.id == list_id)
        .with_for_update(key_share=True)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no status list {list_id}")
    if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < row.size:
        raise InvalidValue(f"index {idx!r} is outside status list {list_id}")
    if not row.used[idx >> 3] >> (idx & 7) & 1:
        raise InvalidValue(f"index {idx} of status list {list_id} was never allocated")
    try:
        statuses = sl.StatusList(row.bits, row.statuses).with_status(idx, value).data
    except StatusListInvalid as exc:
        raise InvalidValue(exc.detail) from exc
    version = row.version + 1
    session.execute(update(_LIST).where(_LIST.c.id == list_id).values(statuses=statuses, version=version, updated_at=now))
    return version


def get_list(session: Session, /, *, list_id: int) -> StatusListState | None:
    """The list with its packed statuses (to sign a status list token), or ``None``."""
    row = session.execute(select(_LIST).where(_LIST.c.id == list_id)).one_or_none()
    return None if row is None else StatusListState(_list_info(row), row.statuses)


def get_list_version(session: Session, /, *, list_id: int) -> int | None:
    """Only the list's ``version`` (cheap: for ETag and signed-token cache checks), or ``None``."""
    return session.execute(select(_LIST.c.version).where(_LIST.c.id == list_id)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class SignedStatusToken:
    """A signed ``statuslist+jwt`` of list ``list_id`` at ``version``, signed at ``signed_at`` (its iat) by ``kid``."""

    list_id: int
    version: int
    kid: str
    signed_at: int
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ListHead:
    """A list's owner and current version, and the token stored for it (perhaps of an older version)."""

    authority: str
    version: int
    token: SignedStatusToken | None


def get_list_head(session: Session, /, *, list_id: int) -> ListHead | None:
    """The list's owner, version and stored token in one round trip, or ``None`` (no such list)."""
    row = session.execute(
        select(_LIST.c.authority_slug, _LIST.c.version, _LIST_TOKEN.c.version.label("token_version"),
               _LIST_TOKEN.c.kid, _LIST_TOKEN.c.signed_at, _LIST_TOKEN.c.token)
        .select_from(_LIST.outerjoin(_LIST_TOKEN, _LIST_TOKEN.c.list_id == _LIST.c.id))
        .where(_LIST.c.id == list_id)
    ).one_or_none()
    if row is None:
        return None
    token = None if row.token is None else SignedStatusToken(list_id, row.token_version, row.kid, row.signed_at,
                                                              row.token)
    return ListHead(row.authority_slug, row.version, token)


def save_status_token(session: Session, /, token: SignedStatusToken) -> SignedStatusToken:
    """Keep ``token`` as the list's token unless it would take the kept one back; returns the one kept.

    It replaces the kept token only if it shows the same or a later version, was signed at the same
    time or later, and differs in version, signing time or key: what every worker serves afterwards
    never goes back in version or in ``iat``, so a verifier's cache never sees an older token after a
    newer one."""
    values = {"list_id": token.list_id, "version": token.version, "kid": _require_str("kid", token.kid, max_len=128),
              "signed_at": token.signed_at, "token": token.token}
    stmt = _dialect_insert(session, _LIST_TOKEN).values(values)
    kept, ours = _LIST_TOKEN.c, stmt.excluded
    later = and_(kept.version <= ours.version, kept.signed_at <= ours.signed_at,
                 or_(kept.version < ours.version, kept.signed_at < ours.signed_at, kept.kid != ours.kid))
    session.execute(stmt.on_conflict_do_update(
        index_elements=[_LIST_TOKEN.c.list_id],
        set_={c: getattr(ours, c) for c in ("version", "kid", "signed_at", "token")},
        where=later,
    ))
    row = session.execute(select(_LIST_TOKEN).where(_LIST_TOKEN.c.list_id == token.list_id)).one()
    return SignedStatusToken(row.list_id, row.version, row.kid, row.signed_at, row.token)


def list_status_lists(session: Session, /, *, authority: str) -> tuple[StatusListInfo, ...]:
    """The lists of ``authority``, oldest first, without their bits."""
    rows = session.execute(_info_query().where(_LIST.c.authority_slug == authority).order_by(_LIST.c.id))
    return tuple(_list_info(r) for r in rows)


# --- credentials ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewCredential:
    """One credential to record with :func:`insert_credentials` (the arguments of :func:`insert_credential`)."""

    credential_id: str
    authority: str
    vct: str
    uscc: str
    kid: str
    status_list_id: int
    status_idx: int
    issued_at: datetime
    expires_at: datetime | None
    credential_hash: str
    record_id: str | None = None
    holder_thumbprint: str | None = None
    granted_under: str | None = None


_INSERT_CREDENTIAL = insert(_CRED)


def _credential_values(c: NewCredential) -> dict[str, Any]:
    return {
        "id": _require_str("credential_id", c.credential_id, max_len=36),
        "authority_slug": c.authority,
        "record_id": c.record_id,
        "vct": _require_str("vct", c.vct, max_len=512),
        "uscc": _require_str("uscc", c.uscc, max_len=18),
        "holder_thumbprint": c.holder_thumbprint,
        "kid": c.kid,
        "status_list_id": c.status_list_id,
        "status_idx": c.status_idx,
        "status": CredentialStatus.VALID.value,
        "reason": None,
        "status_changed_at": None,
        "issued_at": _require_aware("issued_at", c.issued_at),
        "expires_at": None if c.expires_at is None else _require_aware("expires_at", c.expires_at),
        "replaced_by": None,
        "granted_under": c.granted_under,
        "credential_hash": _require_str("credential_hash", c.credential_hash, max_len=64),
    }


def insert_credentials(session: Session, /, *, credentials: Sequence[NewCredential]) -> tuple[Credential, ...]:
    """Record issued credentials (status ``valid``) in one statement; call after :func:`allocate_indexes`
    in the same transaction.

    Raises ``InvalidValue`` before writing anything, and ``Conflict`` when the database refuses a row
    (an id or status index already used, an unknown authority / key / list / record / licence). The
    batch runs in a savepoint: after ``Conflict`` nothing of it is written and the transaction is
    still usable (roll it back all the same: the issuance it belonged to has failed).
    """
    rows = [_credential_values(c) for c in credentials]
    if not rows:
        return ()
    with _savepoint(session, "a credential conflicts (id, status index or a missing reference)"):
        session.execute(_INSERT_CREDENTIAL, rows)
    return tuple(_credential(SimpleNamespace(**r)) for r in rows)


def insert_credential(
    session: Session,
    /,
    *,
    credential_id: str,
    authority: str,
    vct: str,
    uscc: str,
    kid: str,
    status_list_id: int,
    status_idx: int,
    issued_at: datetime,
    expires_at: datetime | None,
    credential_hash: str,
    record_id: str | None = None,
    holder_thumbprint: str | None = None,
    granted_under: str | None = None,
) -> Credential:
    """Record one issued credential (status ``valid``); see :func:`insert_credentials`.

    Raises ``Conflict`` (id or status index taken, unknown reference) and ``InvalidValue``.
    """
    new = NewCredential(
        credential_id=credential_id,
        authority=authority,
        vct=vct,
        uscc=uscc,
        kid=kid,
        status_list_id=status_list_id,
        status_idx=status_idx,
        issued_at=issued_at,
        expires_at=expires_at,
        credential_hash=credential_hash,
        record_id=record_id,
        holder_thumbprint=holder_thumbprint,
        granted_under=granted_under,
    )
    return insert_credentials(session, credentials=[new])[0]


def get_credential(session: Session, /, *, credential_id: str) -> Credential | None:
    """The credential ``credential_id``, or ``None``."""
    row = session.execute(select(_CRED).where(_CRED.c.id == credential_id)).one_or_none()
    return None if row is None else _credential(row)


def get_credential_by_hash(session: Session, /, *, credential_hash: str) -> Credential | None:
    """The credential whose issuer-signed JWT hashes to ``credential_hash``, or ``None``."""
    row = session.execute(select(_CRED).where(_CRED.c.credential_hash == credential_hash).limit(1)).one_or_none()
    return None if row is None else _credential(row)


def lock_credential(session: Session, /, *, credential_id: str) -> Credential | None:
    """The credential ``credential_id`` with its row locked until the transaction ends, or ``None``.

    Its status cannot change meanwhile: what is decided on it (an authorisation issued under a
    licence) commits before, or is seen by, the status change that would have cascaded to it.
    """
    row = session.execute(
        select(_CRED).where(_CRED.c.id == credential_id).with_for_update(key_share=True)
    ).one_or_none()
    return None if row is None else _credential(row)


def live_credentials_of_record(session: Session, /, *, record_id: str) -> tuple[Credential, ...]:
    """The credentials issued from ``record_id`` that are not revoked, oldest first."""
    rows = session.execute(
        select(_CRED)
        .where(_CRED.c.record_id == record_id, _CRED.c.status != CredentialStatus.REVOKED.value)
        .order_by(_CRED.c.issued_at, _CRED.c.id)
    )
    return tuple(_credential(r) for r in rows)


def key_has_unexpired_credentials(session: Session, /, *, kid: str, now: datetime) -> bool:
    """Whether a credential signed by ``kid`` has not expired yet (a retired key stays published until then)."""
    _require_aware("now", now)
    row = session.execute(
        select(_CRED.c.id)
        .where(_CRED.c.kid == kid, or_(_CRED.c.expires_at.is_(None), _CRED.c.expires_at > now))
        .limit(1)
    ).first()
    return row is not None


def revoke_credentials_of_key(
    session: Session, /, *, kid: str, reason: str, now: datetime
) -> tuple[Credential, ...]:
    """Revoke every credential signed by ``kid`` that is not revoked yet (key compromise), rows and
    status list entries together, one list update per list. Returns the revoked credentials."""
    _require_aware("now", now)
    _require_str("reason", reason, max_len=500)
    rows = session.execute(
        select(_CRED)
        .where(_CRED.c.kid == kid, _CRED.c.status != CredentialStatus.REVOKED.value)
        .order_by(_CRED.c.status_list_id, _CRED.c.id)
        .with_for_update(key_share=True)
    ).all()
    if not rows:
        return ()
    by_list: dict[int, list[int]] = {}
    for r in rows:
        by_list.setdefault(r.status_list_id, []).append(r.status_idx)
    for list_id, indexes in sorted(by_list.items()):
        row = session.execute(
            select(_LIST.c.bits, _LIST.c.statuses, _LIST.c.version).where(_LIST.c.id == list_id).with_for_update(key_share=True)
        ).one()
        statuses = sl.StatusList(row.bits, row.statuses)
        for idx in indexes:
            statuses = statuses.with_status(idx, sl.INVALID)
        session.execute(
            update(_LIST).where(_LIST.c.id == list_id).values(statuses=statuses.data, version=row.version + 1, updated_at=now)
        )
    ids = [r.id for r in rows]
    for start in range(0, len(ids), 500):
        session.execute(
            update(_CRED)
            .where(_CRED.c.id.in_(ids[start : start + 500]))
            .values(status=CredentialStatus.REVOKED.value, reason=reason, status_changed_at=now)
        )
    return tuple(
        _credential(SimpleNamespace(**{**r._mapping, "status": CredentialStatus.REVOKED.value, "reason": reason,
                                       "status_changed_at": now}))
        for r in rows
    )


def live_authorisations_under_key(session: Session, /, *, kid: str) -> tuple[Credential, ...]:
    """Authorisations not revoked whose licence was signed by ``kid`` (key compromise), oldest first."""
    licence = _CRED.alias("licence")
    rows = session.execute(
        select(_CRED)
        .join(licence, _CRED.c.granted_under == licence.c.id)
        .where(licence.c.kid == kid, _CRED.c.status != CredentialStatus.REVOKED.value)
        .order_by(_CRED.c.issued_at, _CRED.c.id)
    )
    return tuple(_credential(r) for r in rows)


def list_credentials(
    session: Session,
    /,
    *,
    authority: str,
    uscc: str | None = None,
    status: CredentialStatus | str | None = None,
    vct: str | None = None,
    kid: str | None = None,
    issued_from: datetime | None = None,
    issued_before: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Credential]:
    """Credentials of ``authority``, newest first, filtered by USCC, status, type, signing key and an
    issue-time range ``[issued_from, issued_before)``. Raises ``InvalidValue`` (limit, cursor, status)."""
    query = select(_CRED).where(_CRED.c.authority_slug == authority)
    if uscc is not None:
        query = query.where(_CRED.c.uscc == uscc)
    if status is not None:
        try:
            query = query.where(_CRED.c.status == CredentialStatus(status).value)
        except ValueError as exc:
            raise InvalidValue(f"status must be one of {[s.value for s in CredentialStatus]}") from exc
    if vct is not None:
        query = query.where(_CRED.c.vct == vct)
    if kid is not None:
        query = query.where(_CRED.c.kid == kid)
    if issued_from is not None:
        query = query.where(_CRED.c.issued_at >= _require_aware("issued_from", issued_from))
    if issued_before is not None:
        query = query.where(_CRED.c.issued_at < _require_aware("issued_before", issued_before))
    return _page(session, query, _CRED.c.issued_at, _CRED.c.id, _credential, limit, cursor, descending=True)


def set_credential_status(
    session: Session, /, *, credential_id: str, status: CredentialStatus | str, reason: str | None, now: datetime
) -> Credential:
    """Change a credential's status and its status list entry together; returns the updated row.

    valid -> suspended -> valid; valid or suspended -> revoked (final). Raises ``NotFound``,
    ``InvalidTransition`` (including a change to the current status), ``InvalidValue``.
    """
    _require_aware("now", now)
    try:
        target = CredentialStatus(status)
    except ValueError as exc:
        raise InvalidValue(f"status must be one of {[s.value for s in CredentialStatus]}") from exc
    if reason is not None:
        _require_str("reason", reason, max_len=500, empty=True)
    row = session.execute(
        select(_CRED).where(_CRED.c.id == credential_id).with_for_update(key_share=True)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no credential {credential_id!r}")
    if CredentialStatus(row.status) not in _STATUS_FROM[target]:
        raise InvalidTransition(f"credential {credential_id!r} is {row.status}; it cannot become {target.value}")
    session.execute(
        update(_CRED).where(_CRED.c.id == credential_id).values(status=target.value, reason=reason, status_changed_at=now)
    )
    set_status(session, list_id=row.status_list_id, idx=row.status_idx, value=target.list_value, now=now)
    return _credential(session.execute(select(_CRED).where(_CRED.c.id == credential_id)).one())


def mark_replaced(session: Session, /, *, credential_id: str, replaced_by: str) -> Credential:
    """Record that ``credential_id`` was replaced (变更) by ``replaced_by`` (once).

    Raises ``NotFound``, ``InvalidTransition`` if it was already replaced, ``Conflict`` if
    ``replaced_by`` is not a credential.
    """
    if replaced_by == credential_id:
        raise InvalidValue("a credential cannot replace itself")
    with _savepoint(session, f"no credential {replaced_by!r} to point at"):
        result = session.execute(
            update(_CRED)
            .where(_CRED.c.id == credential_id, _CRED.c.replaced_by.is_(None))
            .values(replaced_by=replaced_by)
        )
    credential = get_credential(session, credential_id=credential_id)
    if credential is None:
        raise NotFound(f"no credential {credential_id!r}")
    if result.rowcount != 1:
        raise InvalidTransition(f"credential {credential_id!r} was already replaced by {credential.replaced_by!r}")
    return credential


def list_authorisations(
    session: Session, /, *, licence_id: str, status: CredentialStatus | str | None = None
) -> tuple[Credential, ...]:
    """The staff authorisations (授权) granted under the licence ``licence_id``, oldest first.

    Raises ``InvalidValue`` for an unknown ``status``.
    """
    query = select(_CRED).where(_CRED.c.granted_under == licence_id)
    if status is not None:
        try:
            query = query.where(_CRED.c.status == CredentialStatus(status).value)
        except ValueError as exc:
            raise InvalidValue(f"status must be one of {[s.value for s in CredentialStatus]}") from exc
    return tuple(_credential(r) for r in session.execute(query.order_by(_CRED.c.issued_at, _CRED.c.id)))


# --- offers, access tokens, nonces ----------------------------------------------------------------------


def create_offer(
    session: Session,
    /,
    *,
    offer_id: str,
    authority: str,
    configuration_id: str,
    code_hash: str,
    expires_at: datetime,
    now: datetime,
    record_id: str | None = None,
    pin_salt: bytes | None = None,
    pin_hash: bytes | None = None,
    claims: Mapping[str, Any] | None = None,
    granted_under: str | None = None,
) -> Offer:
    """Store a new offer in state ``offered``. Raises ``Conflict`` (id or code hash taken, unknown
    authority / record / licence) and ``InvalidValue``."""
    if (pin_salt is None) != (pin_hash is None):
        raise InvalidValue("pin_salt and pin_hash go together")
    values = {
        "id": _require_str("offer_id", offer_id, max_len=36),
        "authority_slug": authority,
        "record_id": record_id,
        "configuration_id": _require_str("configuration_id", configuration_id, max_len=200),
        "code_hash": _require_str("code_hash", code_hash, max_len=64),
        "pin_salt": pin_salt,
        "pin_hash": pin_hash,
        "pin_attempts": 0,
        "claims": None if claims is None else _json_object("claims", claims),
        "granted_under": granted_under,
        "expires_at": _require_aware("expires_at", expires_at),
        "state": OfferState.OFFERED.value,
        "created_at": _require_aware("now", now),
        "updated_at": now,
    }
    with _savepoint(session, f"offer {offer_id!r} conflicts (id, code, or a missing reference)"):
        session.execute(insert(_OFFER).values(values))
    return _offer(SimpleNamespace(**values))


@dataclass(frozen=True, slots=True)
class NewOffer:
    """One offer for :func:`insert_offers` (a registry record's offer with a PIN)."""

    offer_id: str
    authority: str
    configuration_id: str
    code_hash: str
    expires_at: datetime
    record_id: str | None
    pin_salt: bytes | None = field(repr=False)
    pin_hash: bytes | None = field(repr=False)


def insert_offers(session: Session, /, *, offers: Sequence[NewOffer], now: datetime, chunk: int = 1000) -> int:
    """Store many offers in state ``offered`` (bulk issuance); all or nothing. Raises ``Conflict``, ``InvalidValue``."""
    _require_aware("now", now)
    rows = []
    for o in offers:
        if (o.pin_salt is None) != (o.pin_hash is None):
            raise InvalidValue("pin_salt and pin_hash go together")
        rows.append({
            "id": _require_str("offer_id", o.offer_id, max_len=36),
            "authority_slug": o.authority,
            "record_id": o.record_id,
            "configuration_id": _require_str("configuration_id", o.configuration_id, max_len=200),
            "code_hash": _require_str("code_hash", o.code_hash, max_len=64),
            "pin_salt": o.pin_salt,
            "pin_hash": o.pin_hash,
            "pin_attempts": 0,
            "claims": None,
            "granted_under": None,
            "expires_at": _require_aware("expires_at", o.expires_at),
            "state": OfferState.OFFERED.value,
            "created_at": now,
            "updated_at": now,
        })
    with _savepoint(session, "an offer conflicts (id, code, or a missing reference)"):
        if session.get_bind().dialect.name == "postgresql":
            _copy_in(session, _OFFER.name, _OFFER.columns, rows)
        else:
            for start in range(0, len(rows), chunk):
                session.execute(insert(_OFFER), rows[start : start + chunk])
    return len(rows)


def get_offer(session: Session, /, *, offer_id: str) -> Offer | None:
    """The offer ``offer_id``, or ``None``."""
    row = session.execute(select(_OFFER).where(_OFFER.c.id == offer_id)).one_or_none()
    return None if row is None else _offer(row)


def open_offers_of_record(session: Session, /, *, record_id: str) -> tuple[Offer, ...]:
    """The offers of ``record_id`` still open (``offered`` or ``redeemed``, expired or not), oldest first."""
    rows = session.execute(
        select(_OFFER)
        .where(_OFFER.c.record_id == record_id,
               _OFFER.c.state.in_([OfferState.OFFERED.value, OfferState.REDEEMED.value]))
        .order_by(_OFFER.c.created_at, _OFFER.c.id)
    )
    return tuple(_offer(r) for r in rows)


def open_offers_of_records(session: Session, /, *, record_ids: Sequence[str], chunk: int = 500) -> tuple[Offer, ...]:
    """The open offers (as :func:`open_offers_of_record`) of any of ``record_ids``, by record then age."""
    out: list[Offer] = []
    wanted = list(dict.fromkeys(record_ids))
    for start in range(0, len(wanted), chunk):
        rows = session.execute(
            select(_OFFER)
            .where(_OFFER.c.record_id.in_(wanted[start : start + chunk]),
                   _OFFER.c.state.in_([OfferState.OFFERED.value, OfferState.REDEEMED.value]))
            .order_by(_OFFER.c.record_id, _OFFER.c.created_at, _OFFER.c.id)
        )
        out.extend(_offer(r) for r in rows)
    return tuple(out)


def find_offer_by_code(session: Session, /, *, code_hash: str) -> Offer | None:
    """The offer whose pre-authorised code hashes to ``code_hash``, or ``None``."""
    row = session.execute(select(_OFFER).where(_OFFER.c.code_hash == code_hash)).one_or_none()
    return None if row is None else _offer(row)


def _offer_failure(session: Session, offer_id: str, now: datetime) -> Spent:
    offer = get_offer(session, offer_id=offer_id)
    if offer is None:
        return Spent(f"no offer {offer_id!r}", reason="unknown")
    if offer.state is OfferState.OFFERED and offer.expires_at <= now:
        return Spent(f"offer {offer_id!r} expired", reason="expired")
    if offer.state is OfferState.OFFERED:
        return Spent(f"offer {offer_id!r} has no PIN attempts left", reason="exhausted")
    return Spent(f"offer {offer_id!r} is {offer.state.value}", reason="used")


def claim_pin_attempt(session: Session, /, *, offer_id: str, max_attempts: int, now: datetime) -> Offer:
    """Count one PIN attempt *before* the PIN is checked; returns the offer with the new count.

    Atomic (``UPDATE ... SET pin_attempts = pin_attempts + 1 WHERE pin_attempts < max``), so parallel
    guesses cannot exceed ``max_attempts`` in all. Commit it in its own transaction, so that an attempt
    counts even when the request then fails. Raises ``Spent`` (``unknown``, ``expired``, ``used``,
    ``exhausted``).
    """
    _require_aware("now", now)
    result = session.execute(
        update(_OFFER)
        .where(
            _OFFER.c.id == offer_id,
            _OFFER.c.state == OfferState.OFFERED.value,
            _OFFER.c.expires_at > now,
            _OFFER.c.pin_attempts < max_attempts,
        )
        .values(pin_attempts=_OFFER.c.pin_attempts + 1, updated_at=now)
    )
    if result.rowcount != 1:
        raise _offer_failure(session, offer_id, now)
    offer = get_offer(session, offer_id=offer_id)
    assert offer is not None
    return offer


def redeem_offer(session: Session, /, *, offer_id: str, now: datetime) -> Offer:
    """offered -> redeemed, once, if not expired (conditional ``UPDATE``; a second caller gets ``Spent``)."""
    _require_aware("now", now)
    result = session.execute(
        update(_OFFER)
        .where(_OFFER.c.id == offer_id, _OFFER.c.state == OfferState.OFFERED.value, _OFFER.c.expires_at > now)
        .values(state=OfferState.REDEEMED.value, updated_at=now)
    )
    if result.rowcount != 1:
        raise _offer_failure(session, offer_id, now)
    offer = get_offer(session, offer_id=offer_id)
    assert offer is not None
    return offer


def set_offer_state(session: Session, /, *, offer_id: str, state: OfferState | str, now: datetime) -> Offer:
    """Move an offer to ``state`` (redeemed -> issued; offered/redeemed -> expired/withdrawn), atomically.

    Raises ``NotFound``, ``InvalidTransition``, ``InvalidValue``.
    """
    _require_aware("now", now)
    try:
        target = OfferState(state)
    except ValueError as exc:
        raise InvalidValue(f"state must be one of {[s.value for s in OfferState]}") from exc
    sources = _OFFER_FROM.get(target, ())
    moved = session.execute(
        update(_OFFER)
        .where(_OFFER.c.id == offer_id, _OFFER.c.state.in_([s.value for s in sources]))
        .values(state=target.value, updated_at=now)
        .returning(*_OFFER.c)
    ).one_or_none()
    if moved is not None:
        return _offer(moved)
    offer = get_offer(session, offer_id=offer_id)
    if offer is None:
        raise NotFound(f"no offer {offer_id!r}")
    raise InvalidTransition(f"offer {offer_id!r} is {offer.state.value}; it cannot become {target.value}")


def create_access_token(session: Session, /, *, token_hash: str, offer_id: str, expires_at: datetime) -> AccessToken:
    """Store an access token's hash, bound to ``offer_id``. Raises ``Conflict`` (hash taken, no offer)."""
    values = {
        "token_hash": _require_str("token_hash", token_hash, max_len=64),
        "offer_id": offer_id,
        "expires_at": _require_aware("expires_at", expires_at),
        "used_at": None,
    }
    with _savepoint(session, "access token conflicts (hash taken or no such offer)"):
        session.execute(insert(_TOKEN).values(values))
    return AccessToken(**values)


def get_access_token(session: Session, /, *, token_hash: str) -> AccessToken | None:
    """The access token with this hash (used, expired or not), or ``None``."""
    row = session.execute(select(_TOKEN).where(_TOKEN.c.token_hash == token_hash)).one_or_none()
    return None if row is None else AccessToken(row.token_hash, row.offer_id, row.expires_at, row.used_at)


def consume_access_token(session: Session, /, *, token_hash: str, now: datetime) -> AccessToken:
    """Use an access token once (conditional ``UPDATE ... WHERE used_at IS NULL``).

    Raises ``Spent`` (``unknown``, ``expired``, ``used``); under concurrency exactly one caller succeeds.
    """
    return _consume(session, _TOKEN, _TOKEN.c.token_hash, token_hash, now, lambda r: AccessToken(
        r.token_hash, r.offer_id, r.expires_at, r.used_at
    ))


def create_nonce(session: Session, /, *, value: str, expires_at: datetime) -> Nonce:
    """Store a fresh ``c_nonce``. Raises ``Conflict`` if the value exists, ``InvalidValue``."""
    values = {"value": _require_str("value", value, max_len=128), "expires_at": _require_aware("expires_at", expires_at), "used_at": None}
    with _savepoint(session, "nonce exists"):
        session.execute(insert(_NONCE).values(values))
    return Nonce(**values)


def consume_nonce(session: Session, /, *, value: str, now: datetime) -> Nonce:
    """Use a nonce once; raises ``Spent`` (``unknown``, ``expired``, ``used``)."""
    return _consume(session, _NONCE, _NONCE.c.value, value, now, lambda r: Nonce(r.value, r.expires_at, r.used_at))


def _consume(session: Session, table: Any, key_col: Any, key: str, now: datetime, convert: Callable[[Any], T]) -> T:
    _require_aware("now", now)
    if not isinstance(key, str):
        raise Spent("not a string", reason="unknown")
    # One round trip when the value is good (UPDATE ... RETURNING, SQLite >= 3.35 and PostgreSQL);
    # the row is read again only to say why it was refused.
    used = session.execute(
        update(table)
        .where(key_col == key, table.c.used_at.is_(None), table.c.expires_at > now)
        .values(used_at=now)
        .returning(*table.c)
    ).one_or_none()
    if used is not None:
        return convert(used)
    row = session.execute(select(table).where(key_col == key)).one_or_none()
    if row is None:
        raise Spent("unknown value", reason="unknown")
    if row.used_at is not None:
        raise Spent("already used", reason="used")
    raise Spent("expired", reason="expired")


# --- the credential endpoint's group commit: many requests, one statement per table -------------------------


def _spend_many(session: Session, table: Any, key_col: Any, keys: Sequence[str], now: datetime) -> list[Any]:
    _require_aware("now", now)
    # Sorted, so that two transactions spending overlapping sets lock the rows in the same order.
    wanted = sorted(set(keys))
    rows: list[Any] = []
    for start in range(0, len(wanted), 500):
        rows.extend(session.execute(
            update(table)
            .where(key_col.in_(wanted[start : start + 500]), table.c.used_at.is_(None), table.c.expires_at > now)
            .values(used_at=now)
            .returning(*table.c)
        ))
    return rows


def _unspend(session: Session, table: Any, key_col: Any, keys: Sequence[str]) -> None:
    wanted = sorted(set(keys))
    for start in range(0, len(wanted), 500):
        session.execute(update(table).where(key_col.in_(wanted[start : start + 500])).values(used_at=None))


def spend_access_tokens(session: Session, /, *, token_hashes: Sequence[str], now: datetime) -> dict[str, AccessToken]:
    """Use each of these access tokens that is unused and unexpired (conditional ``UPDATE ... RETURNING``,
    as :func:`consume_access_token` for one); those used now, by hash. The others are untouched; the
    used ones stay locked until the transaction ends."""
    return {r.token_hash: AccessToken(r.token_hash, r.offer_id, r.expires_at, r.used_at)
            for r in _spend_many(session, _TOKEN, _TOKEN.c.token_hash, token_hashes, now)}


def unspend_access_tokens(session: Session, /, *, token_hashes: Sequence[str]) -> None:
    """Give back, in the same transaction, tokens :func:`spend_access_tokens` used that the caller will
    not use after all (they were unused before it: ``used_at`` is NULL again)."""
    _unspend(session, _TOKEN, _TOKEN.c.token_hash, token_hashes)


def spend_nonces(session: Session, /, *, values: Sequence[str], now: datetime) -> dict[str, Nonce]:
    """Use each of these nonces that is unused and unexpired; those used now, by value (see
    :func:`spend_access_tokens`)."""
    return {r.value: Nonce(r.value, r.expires_at, r.used_at)
            for r in _spend_many(session, _NONCE, _NONCE.c.value, values, now)}


def unspend_nonces(session: Session, /, *, values: Sequence[str]) -> None:
    """Give back nonces :func:`spend_nonces` used in this transaction (see :func:`unspend_access_tokens`)."""
    _unspend(session, _NONCE, _NONCE.c.value, values)


def issue_record_offers(
    session: Session, /, *, authority: str, configuration_id: str, offer_ids: Sequence[str], now: datetime
) -> dict[str, Offer]:
    """redeemed -> issued, in one conditional ``UPDATE ... RETURNING``, for each of these offers that is
    redeemed, of ``authority`` and ``configuration_id``, for a registry record and with no licence it was
    granted under; those moved, by id. The others are untouched."""
    _require_aware("now", now)
    wanted = sorted(set(offer_ids))
    out: dict[str, Offer] = {}
    for start in range(0, len(wanted), 500):
        for r in session.execute(
            update(_OFFER)
            .where(_OFFER.c.id.in_(wanted[start : start + 500]), _OFFER.c.state == OfferState.REDEEMED.value,
                   _OFFER.c.authority_slug == authority, _OFFER.c.configuration_id == configuration_id,
                   _OFFER.c.record_id.is_not(None), _OFFER.c.granted_under.is_(None))
            .values(state=OfferState.ISSUED.value, updated_at=now)
            .returning(*_OFFER.c)
        ):
            out[r.id] = _offer(r)
    return out


def get_records_by_ids(session: Session, /, *, record_ids: Sequence[str], chunk: int = 500) -> dict[str, Record]:
    """The records with these ids, by id (missing ones are absent)."""
    wanted = sorted(set(record_ids))
    out: dict[str, Record] = {}
    for start in range(0, len(wanted), chunk):
        for r in session.execute(select(_RECORD).where(_RECORD.c.id.in_(wanted[start : start + chunk]))):
            out[r.id] = _record(r)
    return out


def purge_expired(session: Session, /, *, now: datetime) -> int:
    """Delete nonces and access tokens that expired before ``now``; returns how many rows went."""
    _require_aware("now", now)
    gone = session.execute(delete(_NONCE).where(_NONCE.c.expires_at <= now)).rowcount
    gone += session.execute(delete(_TOKEN).where(_TOKEN.c.expires_at <= now)).rowcount
    return gone


# --- idempotency ----------------------------------------------------------------------------------------


def _idempotency(r: Any) -> IdempotencyRecord:
    return IdempotencyRecord(r.operator_id, r.key, r.request_hash, r.status_code, r.response, r.created_at)


def get_idempotency(session: Session, /, *, operator_id: str, key: str) -> IdempotencyRecord | None:
    """The stored outcome of ``operator_id``'s request with ``Idempotency-Key: key``, or ``None``."""
    row = session.execute(
        select(_IDEM).where(_IDEM.c.operator_id == operator_id, _IDEM.c.key == key)
    ).one_or_none()
    return None if row is None else _idempotency(row)


def put_idempotency(
    session: Session,
    /,
    *,
    operator_id: str,
    key: str,
    request_hash: str,
    status_code: int,
    response: Mapping[str, Any],
    now: datetime,
) -> tuple[IdempotencyRecord, bool]:
    """Store an outcome unless one exists; returns (the stored record, whether this call stored it).

    Put it in the same transaction as the work it describes. When it returns ``False`` another
    request with the same key committed first (on PostgreSQL this call waits for it): roll back your
    work and answer with the stored record (or a conflict, if its ``request_hash`` differs).
    """
    values = {
        "operator_id": operator_id,
        "key": _require_str("key", key, max_len=255),
        "request_hash": _require_str("request_hash", request_hash, max_len=64),
        "status_code": status_code,
        "response": _json_object("response", response),
        "created_at": _require_aware("now", now),
    }
    # RETURNING says whether this statement inserted (rowcount of INSERT is not reliable on every driver).
    inserted = session.execute(
        _dialect_insert(session, _IDEM).values(values).on_conflict_do_nothing().returning(_IDEM.c.key)
    ).scalar_one_or_none()
    stored = get_idempotency(session, operator_id=operator_id, key=key)
    if stored is None:
        raise NotFound(f"no operator {operator_id!r}")  # pragma: no cover - FK violations raise first
    return stored, inserted is not None


# --- audit ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event to append with :func:`append_audits`."""

    at: datetime
    actor: str
    action: str
    subject: str
    details: Mapping[str, Any] | None = None


_INSERT_AUDIT = insert(_AUDIT)
_LOCK_HEAD = (
    select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.chain == bindparam("chain")).with_for_update(key_share=True)
)
_UPDATE_HEAD = (
    update(_HEAD).where(_HEAD.c.chain == bindparam("b_chain")).values(seq=bindparam("b_seq"), hash=bindparam("b_hash"))
)


def append_audits(
    session: Session, /, *, chain: str, entries: Sequence[AuditEntry]
) -> tuple[audit_chain.AuditRecord, ...]:
    """Append ``entries`` to ``chain`` (one chain per authority: its slug) in the caller's transaction.

    The chain's head row is locked (``SELECT ... FOR UPDATE``; created on the first append), so
    concurrent appends to one chain queue and each links to the one before; it stays locked until the
    transaction ends, which serialises the transactions that append to one chain. Raises
    ``InvalidValue`` for a field the canonical JSON cannot hold (floats, naive times, ...), before
    writing anything.
    """
    _require_str("chain", chain, max_len=128)
    for e in entries:
        _require_str("actor", e.actor, max_len=200, empty=True)
        _require_str("action", e.action, max_len=100)
        _require_str("subject", e.subject, max_len=200, empty=True)
        _require_aware("at", e.at)
    if not entries:
        return ()
    head = session.execute(_LOCK_HEAD, {"chain": chain}).one_or_none()
    if head is None:
        session.execute(
            _dialect_insert(session, _HEAD).values(chain=chain, seq=0, hash=audit_chain.GENESIS).on_conflict_do_nothing()
        )
        head = session.execute(_LOCK_HEAD, {"chain": chain}).one()
    prev: audit_chain.AuditRecord | audit_chain.ChainHead = audit_chain.ChainHead(chain, head.seq, head.hash)
    records = []
    try:
        for e in entries:
            prev = audit_chain.next_record(
                prev, chain=chain, at=e.at, actor=e.actor, action=e.action, subject=e.subject, details=e.details
            )
            records.append(prev)
    except CredentialError as exc:
        raise InvalidValue(f"audit record: {exc.detail}") from exc
    session.execute(
        _INSERT_AUDIT,
        [
            {
                "chain": chain,
                "seq": r.seq,
                "at": r.at,
                "actor": r.actor,
                "action": r.action,
                "subject": r.subject,
                "details": r.details_json(),
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            }
            for r in records
        ],
    )
    session.execute(_UPDATE_HEAD, {"b_chain": chain, "b_seq": records[-1].seq, "b_hash": records[-1].hash})
    return tuple(records)


def append_audit(
    session: Session,
    /,
    *,
    chain: str,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
) -> audit_chain.AuditRecord:
    """Append one record to ``chain`` in the caller's transaction; see :func:`append_audits`.

    Raises ``InvalidValue`` for a field the canonical JSON cannot hold.
    """
    return append_audits(session, chain=chain, entries=[AuditEntry(at, actor, action, subject, details)])[0]


def list_audit(
    session: Session, /, *, chain: str, after_seq: int = 0, limit: int = 100
) -> tuple[audit_chain.AuditRecord, ...]:
    """Records of ``chain`` with ``seq > after_seq``, in order (at most ``limit``, 1-1000)."""
    rows = session.execute(
        select(_AUDIT)
        .where(_AUDIT.c.chain == chain, _AUDIT.c.seq > after_seq)
        .order_by(_AUDIT.c.seq)
        .limit(_check_limit(limit))
    )
    return tuple(_audit_record(r) for r in rows)


def iter_audit(session: Session, /, *, chain: str, batch: int = 1000) -> Iterator[audit_chain.AuditRecord]:
    """Every record of ``chain`` in ``seq`` order, read ``batch`` rows at a time."""
    after = 0
    while True:
        page = list_audit(session, chain=chain, after_seq=after, limit=batch)
        yield from page
        if len(page) < batch:
            return
        after = page[-1].seq


def audit_head(session: Session, /, *, chain: str) -> audit_chain.ChainHead | None:
    """The chain's head (newest seq and hash as last appended), or ``None`` for an unknown chain."""
    row = session.execute(select(_HEAD).where(_HEAD.c.chain == chain)).one_or_none()
    return None if row is None else audit_chain.ChainHead(row.chain, row.seq, row.hash)


def audit_chains(session: Session, /) -> tuple[str, ...]:
    """Every chain that has a head or a record, sorted."""
    heads = session.execute(select(_HEAD.c.chain)).scalars()
    records = session.execute(select(_AUDIT.c.chain).distinct()).scalars()
    return tuple(sorted(set(heads) | set(records)))


def verify_audit(session: Session, /, *, chain: str) -> ChainReport:
    """Check ``chain`` end to end against its head; ``broken`` names the first bad record, if any."""
    count = 0

    def counted() -> Iterator[audit_chain.AuditRecord]:
        nonlocal count
        for record in iter_audit(session, chain=chain):
            count += 1
            yield record

    head = audit_head(session, chain=chain)
    if head is None:
        head = audit_chain.ChainHead(chain, 0, audit_chain.GENESIS)  # records without a head were planted
    broken = audit_chain.find_break(counted(), head=head)
    return ChainReport(chain, count, broken)


def verify_all_audits(session: Session, /) -> tuple[ChainReport, ...]:
    """:func:`verify_audit` for every chain."""
    return tuple(verify_audit(session, chain=c) for c in audit_chains(session))
