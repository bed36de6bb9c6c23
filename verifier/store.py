"""The verifier service's storage: SQLAlchemy 2.0 models of the ``verifier_*`` tables and their repository functions.

Nothing here decides policy (who may verify what, what a verdict is): that is ``verifier.service``.
What the store guarantees are the invariants a database must hold under concurrent workers:

- an OpenID4VP transaction accepts one response: the ``pending -> responding`` step is a conditional
  ``UPDATE ... WHERE status = 'pending' AND expires_at > now`` with a row count check, never
  read-then-write, so two workers receiving a response each cannot both go on;
- a key-bound presentation is remembered for its freshness window in ``verifier_replay``
  (:class:`SqlReplayStore`, the SDK's ``ReplayStore`` on the database: ``INSERT ... ON CONFLICT DO
  UPDATE ... WHERE expired``, so the same presentation is accepted once whichever worker sees it);
- staff API keys, portal client secrets, authorization codes and access tokens are stored as SHA-256 only;
- an authorization code is redeemed once: ``code -> redeemed`` is a conditional update; a second
  redemption finds it ``redeemed`` and revokes the login (RFC 6749 s4.1.2);
- every action (and every verification) is appended to the department's hash-chained audit log in the
  transaction that makes the change.

How to use it
-------------
Every repository function takes an open :class:`~sqlalchemy.orm.Session` as its only positional
argument and everything else by keyword, and returns frozen dataclasses (never ORM objects). Compose
calls inside :func:`unit_of_work`, which commits at the end and rolls back on any exception.

Tables (prefix ``verifier_``): ``registrar`` (the deployment's registrar CA certificate, one row),
``department``, ``staff``, ``key`` and ``kek_check`` (the keystore, :class:`SqlKeyRecordStore`),
``transaction`` (OpenID4VP sessions), ``portal`` (OpenID Connect clients: "log in with e-licence") and
``login`` (one authorization request of a portal, its OpenID4VP transaction, code and access token, all
stored hashed), ``replay``, ``verification`` (one row per verification, no
personal data beyond the receipt's), ``audit`` and ``audit_head`` (one hash chain per department,
:mod:`credentials.audit`; its head row is locked to append and makes truncation visible). The schema is created by the Alembic
revisions in ``verifier/migrations/versions`` (branch ``verifier``); a test checks that they produce
exactly these models.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import hashlib
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from credentials import audit as audit_chain
from credentials.audit import _freeze
from credentials.errors import CredentialError
from keys.errors import KeyNotFound, KeystoreError
from keys.keystore import KeyRecord, KeyState

__all__ = [
    # errors
    "StoreError",
    "NotFound",
    "Conflict",
    "InvalidValue",
    "Spent",
    # models
    "VerifierBase",
    # values
    "TransactionStatus",
    "Registrar",
    "Department",
    "Staff",
    "NewStaff",
    "Transaction",
    "Verification",
    # transactions
    "unit_of_work",
    # registrar and departments
    "get_registrar",
    "put_registrar",
    "create_department",
    "set_department_certificate",
    "get_department",
    "list_departments",
    # staff
    "api_key_hash",
    "create_staff",
    "authenticate_staff",
    "revoke_staff",
    "list_staff",
    # keystore and replay
    "SqlKeyRecordStore",
    "SqlReplayStore",
    # transactions (OpenID4VP)
    "create_transaction",
    "get_transaction",
    "claim_transaction",
    "complete_transaction",
    "purge_expired",
    # verifications and audit
    "record_verification",
    "list_verifications",
    "append_audit",
    "list_audit",
    "verify_audit",
    # portals and logins (OpenID Connect)
    "LoginStatus",
    "Portal",
    "Login",
    "create_portal",
    "get_portal",
    "list_portals",
    "revoke_portal",
    "purge_logins",
    "create_login",
    "get_login",
    "get_login_by_transaction",
    "get_login_by_code",
    "finish_login",
    "redeem_code",
    "revoke_login",
    "get_login_by_access_token",
]

_READ_ONLY_OPTION = "elicence_read_only"  # understood by elicence.db's SQLite engine: deferred BEGIN
_API_KEY_PREFIX = "elv_"
_SLUG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


# --- errors ---------------------------------------------------------------------------------------------


class StoreError(Exception):
    """Root of the store's errors; ``code`` is stable and ``detail`` says what was wrong.

    ::

        StoreError          store_error
        ├── NotFound        not_found       no such row (department, staff, transaction, ...)
        ├── Conflict        conflict        a unique key is taken (slug, key, ...)
        ├── InvalidValue    invalid_value   an argument the schema cannot hold
        └── Spent           spent           a transaction already answered or expired (``reason``)
    """

    code: ClassVar[str] = "store_error"
    description: ClassVar[str] = "The verifier's storage refused the operation."
    http_status: ClassVar[int] = 500

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.description
        super().__init__(self.detail)

    def to_dict(self) -> dict[str, str]:
        """The OAuth-style error body."""
        return {"error": self.code, "error_description": self.detail}


class NotFound(StoreError):
    code = "not_found"
    description = "No such object."
    http_status = 404


class Conflict(StoreError):
    code = "conflict"
    description = "The object already exists."
    http_status = 409


class InvalidValue(StoreError):
    code = "invalid_value"
    description = "A value cannot be stored."
    http_status = 400


class Spent(StoreError):
    """A transaction cannot take a response: ``reason`` is ``unknown``, ``expired`` or ``used``."""

    code = "spent"
    description = "The transaction is unknown, expired or already answered."
    http_status = 400

    def __init__(self, detail: str | None = None, *, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


# --- column types and models ---------------------------------------------------------------------------


class _UtcDateTime(TypeDecorator[datetime]):
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


class VerifierBase(DeclarativeBase):
    """Declarative base of the verifier's tables only (roles never share a base or a table)."""

    metadata = MetaData(
        naming_convention={
            "pk": "pk_%(table_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
        }
    )
    type_annotation_map = {datetime: _UtcDateTime(), dict[str, Any]: JSON(), bytes: LargeBinary()}


class VerifierRegistrar(VerifierBase):
    __tablename__ = "verifier_registrar"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kid: Mapped[str] = mapped_column(String(128))
    certificate: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class VerifierDepartment(VerifierBase):
    __tablename__ = "verifier_department"

    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    dns_name: Mapped[str] = mapped_column(String(253))
    vcts: Mapped[list[str]] = mapped_column(JSON)
    kid: Mapped[str | None] = mapped_column(String(128))
    certificate: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class VerifierStaff(VerifierBase):
    __tablename__ = "verifier_staff"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    department_slug: Mapped[str] = mapped_column(ForeignKey("verifier_department.slug"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class VerifierKey(VerifierBase):
    __tablename__ = "verifier_key"
    __table_args__ = (CheckConstraint("state IN ('active', 'retired', 'revoked')", name="state"),)

    kid: Mapped[str] = mapped_column(String(128), primary_key=True)
    # Not a foreign key: the registrar CA's key belongs to the deployment, not to a department.
    owner: Mapped[str] = mapped_column(String(64), index=True)
    alg: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]]
    nonce: Mapped[bytes]
    ciphertext: Mapped[bytes]
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class VerifierKekCheck(VerifierBase):
    __tablename__ = "verifier_kek_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[bytes]


class VerifierTransaction(VerifierBase):
    __tablename__ = "verifier_transaction"
    __table_args__ = (CheckConstraint("status IN ('pending', 'responding', 'complete')", name="status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    department_slug: Mapped[str] = mapped_column(ForeignKey("verifier_department.slug"), index=True)
    staff_id: Mapped[str | None] = mapped_column(String(36))
    secret_hash: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]]
    request_object: Mapped[str] = mapped_column(Text)
    item_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    responded_at: Mapped[datetime | None]
    verdict: Mapped[str | None] = mapped_column(String(32))
    code: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class VerifierReplay(VerifierBase):
    __tablename__ = "verifier_replay"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class VerifierVerification(VerifierBase):
    __tablename__ = "verifier_verification"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    department_slug: Mapped[str] = mapped_column(ForeignKey("verifier_department.slug"), index=True)
    staff_id: Mapped[str | None] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(16))
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    item_id: Mapped[str | None] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(32))
    code: Mapped[str | None] = mapped_column(String(64))
    vcts: Mapped[list[str]] = mapped_column(JSON)
    receipt_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(index=True)


class VerifierAudit(VerifierBase):
    __tablename__ = "verifier_audit"

    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class VerifierAuditHead(VerifierBase):
    __tablename__ = "verifier_audit_head"

    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class VerifierPortal(VerifierBase):
    __tablename__ = "verifier_portal"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    department_slug: Mapped[str] = mapped_column(ForeignKey("verifier_department.slug"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    allow_staff: Mapped[bool] = mapped_column(Boolean)
    item_id: Mapped[str | None] = mapped_column(String(64))
    pairwise_salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class VerifierLogin(VerifierBase):
    __tablename__ = "verifier_login"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'code', 'failed', 'redeemed', 'revoked')", name="status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("verifier_portal.client_id"), index=True)
    transaction_id: Mapped[str] = mapped_column(String(64), unique=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(String(512))
    nonce: Mapped[str] = mapped_column(String(512))
    code_challenge: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    auth_time: Mapped[datetime | None]
    identity: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(64))
    error_description: Mapped[str | None] = mapped_column(String(300))
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    code_expires_at: Mapped[datetime | None]
    redeemed_at: Mapped[datetime | None]
    access_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    access_expires_at: Mapped[datetime | None]


_REGISTRAR = VerifierRegistrar.__table__
_DEPARTMENT = VerifierDepartment.__table__
_STAFF = VerifierStaff.__table__
_KEY = VerifierKey.__table__
_KEK = VerifierKekCheck.__table__
_TX = VerifierTransaction.__table__
_REPLAY = VerifierReplay.__table__
_VERIFICATION = VerifierVerification.__table__
_AUDIT = VerifierAudit.__table__
_HEAD = VerifierAuditHead.__table__
_PORTAL = VerifierPortal.__table__
_LOGIN = VerifierLogin.__table__


# --- values ---------------------------------------------------------------------------------------------


class TransactionStatus(enum.StrEnum):
    """An OpenID4VP transaction: waiting for the wallet, verifying its response, or done."""

    PENDING = "pending"
    RESPONDING = "responding"
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class Registrar:
    """The deployment's registrar CA: its key in the keystore and its certificate (PEM)."""

    kid: str
    certificate: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Department:
    """A verifying department: its Client Identifier DNS name, request-signing key and access certificate."""

    slug: str
    name_zh: str
    name_en: str
    dns_name: str
    vcts: tuple[str, ...]
    kid: str | None
    certificate: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Staff:
    """A member of a department's staff (or a system) holding an API key scoped to that department."""

    id: str
    department: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewStaff:
    """A created staff account and its API key: shown once, only its SHA-256 is stored."""

    staff: Staff
    api_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Transaction:
    """One OpenID4VP request: the stored Request Object claims, who may read the result, and the verdict."""

    id: str
    department: str
    staff_id: str | None
    secret_hash: str = field(repr=False)
    request: Mapping[str, Any] = field(repr=False)
    request_object: str = field(repr=False)
    item_id: str | None
    status: TransactionStatus
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None
    verdict: str | None
    code: str | None
    result: Mapping[str, Any] | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class Verification:
    """One verification as the audit keeps it: who, where, which item, the verdict and its code."""

    id: str
    department: str
    staff_id: str | None
    channel: str
    transaction_id: str | None
    item_id: str | None
    verdict: str
    code: str | None
    vcts: tuple[str, ...]
    receipt_id: str | None
    at: datetime


def _registrar(r: Any) -> Registrar:
    return Registrar(r.kid, r.certificate, r.created_at)


def _department(r: Any) -> Department:
    return Department(r.slug, r.name_zh, r.name_en, r.dns_name, tuple(r.vcts), r.kid, r.certificate, r.created_at)


def _staff(r: Any) -> Staff:
    return Staff(r.id, r.department_slug, r.name, r.created_at, r.revoked_at)


def _transaction(r: Any) -> Transaction:
    return Transaction(
        id=r.id,
        department=r.department_slug,
        staff_id=r.staff_id,
        secret_hash=r.secret_hash,
        request=_freeze(r.request),
        request_object=r.request_object,
        item_id=r.item_id,
        status=TransactionStatus(r.status),
        created_at=r.created_at,
        expires_at=r.expires_at,
        responded_at=r.responded_at,
        verdict=r.verdict,
        code=r.code,
        result=None if r.result is None else _freeze(r.result),
    )


def _verification(r: Any) -> Verification:
    return Verification(r.id, r.department_slug, r.staff_id, r.channel, r.transaction_id, r.item_id, r.verdict,
                        r.code, tuple(r.vcts), r.receipt_id, r.at)


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


def _aware(name: str, value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidValue(f"{name} must be a timezone-aware datetime")
    return value


def _text(name: str, value: Any, *, max_len: int, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > max_len or "\x00" in value:
        raise InvalidValue(f"{name} must be a non-empty string of at most {max_len} characters, without NUL")
    return value


def _dialect_insert(session: Session, table: Any) -> Any:
    """``INSERT`` with the dialect's ``ON CONFLICT`` clauses (SQLite and PostgreSQL both have them)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"database {name!r} is not supported")  # pragma: no cover - elicence.db refuses it


@contextlib.contextmanager
def _unique(session: Session, detail: str) -> Iterator[None]:
    """Run a write in a savepoint; a unique or foreign key violation becomes ``Conflict(detail)``."""
    try:
        with session.begin_nested():
            yield
    except IntegrityError as exc:
        raise Conflict(detail) from exc


@contextlib.contextmanager
def unit_of_work(session_factory: sessionmaker[Session], *, read_only: bool = False) -> Iterator[Session]:
    """One transaction: yields a session, commits when the block ends, rolls back if it raises.

    ``read_only=True`` starts a deferred transaction on SQLite (never waits for writers) and rolls back.
    """
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


# --- registrar and departments --------------------------------------------------------------------------


def get_registrar(session: Session, /) -> Registrar | None:
    """The deployment's registrar CA, or ``None`` before one is created or imported."""
    row = session.execute(select(_REGISTRAR).where(_REGISTRAR.c.id == 1)).one_or_none()
    return None if row is None else _registrar(row)


def put_registrar(session: Session, /, *, kid: str, certificate: str, now: datetime) -> Registrar:
    """Record the registrar CA (once per deployment); raises ``Conflict`` if one exists."""
    values = {"id": 1, "kid": _text("kid", kid, max_len=128), "certificate": _text("certificate", certificate,
              max_len=64 * 1024), "created_at": _aware("now", now)}
    with _unique(session, "the deployment already has a registrar CA"):
        session.execute(insert(_REGISTRAR).values(values))
    return Registrar(kid, certificate, now)


def create_department(
    session: Session,
    /,
    *,
    slug: str,
    name_zh: str,
    name_en: str,
    dns_name: str,
    vcts: Sequence[str],
    now: datetime,
) -> Department:
    """Register a department (no key yet). Raises ``InvalidValue`` (slug: 1-64 of ``a-z 0-9 -``), ``Conflict``."""
    if not isinstance(slug, str) or not 0 < len(slug) <= 64 or not set(slug) <= _SLUG_CHARS or slug[0] == "-":
        raise InvalidValue("slug must be 1-64 characters of a-z, 0-9 and '-', not starting with '-'")
    if not isinstance(vcts, Sequence) or isinstance(vcts, str) or not all(isinstance(v, str) and v for v in vcts):
        raise InvalidValue("vcts must be a list of type URIs")
    values = {
        "slug": slug,
        "name_zh": _text("name_zh", name_zh, max_len=200),
        "name_en": _text("name_en", name_en, max_len=200),
        "dns_name": _text("dns_name", dns_name, max_len=253).lower(),
        "vcts": list(dict.fromkeys(vcts)),
        "kid": None,
        "certificate": None,
        "created_at": _aware("now", now),
    }
    with _unique(session, f"department {slug!r} exists"):
        session.execute(insert(_DEPARTMENT).values(values))
    return _department(_Row(values))


def set_department_certificate(session: Session, /, *, slug: str, kid: str, certificate: str) -> Department:
    """Set the department's request-signing key and access certificate (PEM); raises ``NotFound``."""
    result = session.execute(
        update(_DEPARTMENT).where(_DEPARTMENT.c.slug == slug).values(
            kid=_text("kid", kid, max_len=128), certificate=_text("certificate", certificate, max_len=64 * 1024)
        )
    )
    if result.rowcount != 1:
        raise NotFound(f"no department {slug!r}")
    department = get_department(session, slug=slug)
    assert department is not None
    return department


def get_department(session: Session, /, *, slug: str) -> Department | None:
    """The department ``slug``, or ``None``."""
    row = session.execute(select(_DEPARTMENT).where(_DEPARTMENT.c.slug == slug)).one_or_none()
    return None if row is None else _department(row)


def list_departments(session: Session, /) -> tuple[Department, ...]:
    """Every department, by slug."""
    return tuple(_department(r) for r in session.execute(select(_DEPARTMENT).order_by(_DEPARTMENT.c.slug)))


class _Row:
    """Attribute access over a dict of column values (to build a value from what was inserted)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


# --- staff ----------------------------------------------------------------------------------------------


def api_key_hash(api_key: str) -> str:
    """The stored form of an API key: lowercase hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def create_staff(
    session: Session,
    /,
    *,
    department: str,
    name: str,
    now: datetime,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> NewStaff:
    """A staff account of ``department`` with a fresh API key (``elv_`` + 256 random bits, base64url).

    The key is returned once; only its hash is stored. Raises ``NotFound`` for an unknown department.
    """
    if get_department(session, slug=department) is None:
        raise NotFound(f"no department {department!r}")
    api_key = _API_KEY_PREFIX + base64.urlsafe_b64encode(random_bytes(32)).decode().rstrip("=")
    values = {
        "id": str(uuid.UUID(bytes=random_bytes(16), version=4)),
        "department_slug": department,
        "name": _text("name", name, max_len=200),
        "key_hash": api_key_hash(api_key),
        "created_at": _aware("now", now),
        "revoked_at": None,
    }
    with _unique(session, "staff id or key collision"):
        session.execute(insert(_STAFF).values(values))
    return NewStaff(_staff(_Row(values)), api_key)


def authenticate_staff(session: Session, /, *, api_key: str) -> Staff | None:
    """The staff member holding ``api_key`` if not revoked, else ``None`` (wrong, unknown or revoked)."""
    if not isinstance(api_key, str) or not api_key.startswith(_API_KEY_PREFIX) or len(api_key) > 200:
        return None
    row = session.execute(
        select(_STAFF).where(_STAFF.c.key_hash == api_key_hash(api_key), _STAFF.c.revoked_at.is_(None))
    ).one_or_none()
    return None if row is None else _staff(row)


def revoke_staff(session: Session, /, *, department: str, staff_id: str, now: datetime) -> Staff:
    """Revoke a staff member's key; raises ``NotFound`` (also for another department's staff, or revoked)."""
    result = session.execute(
        update(_STAFF)
        .where(_STAFF.c.id == staff_id, _STAFF.c.department_slug == department, _STAFF.c.revoked_at.is_(None))
        .values(revoked_at=_aware("now", now))
    )
    if result.rowcount != 1:
        raise NotFound(f"no active staff member {staff_id!r} in {department!r}")
    return _staff(session.execute(select(_STAFF).where(_STAFF.c.id == staff_id)).one())


def list_staff(session: Session, /, *, department: str) -> tuple[Staff, ...]:
    """The staff of ``department``, oldest first."""
    rows = session.execute(
        select(_STAFF).where(_STAFF.c.department_slug == department).order_by(_STAFF.c.created_at, _STAFF.c.id)
    )
    return tuple(_staff(r) for r in rows)


# --- keystore and replay cache --------------------------------------------------------------------------


class SqlKeyRecordStore:
    """``keys.keystore.KeyRecordStore`` on ``verifier_key`` / ``verifier_kek_check``, scoped to one ``owner``.

    ``owner`` is a department slug, or the registrar's owner name for the deployment's CA key. Each
    call runs in its own transaction unless the store is bound to an open session with :meth:`using`.
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
            "kid": record.kid, "owner": self.owner, "alg": record.alg, "state": record.state.value,
            "public_jwk": dict(record.public_jwk), "nonce": record.nonce, "ciphertext": record.ciphertext,
            "label": record.label, "created_at": record.created_at, "retired_at": record.retired_at,
            "revoked_at": record.revoked_at,
        }
        with self._tx() as session:
            try:
                with session.begin_nested():
                    session.execute(insert(_KEY).values(values))
            except IntegrityError as exc:
                raise KeystoreError(f"a key with kid {record.kid!r} is already stored") from exc

    def list(self, *, owner: str | None = None) -> tuple[KeyRecord, ...]:
        """This owner's records, oldest first (``owner``, if given, must be this store's)."""
        if owner is not None and owner != self.owner:
            return ()
        with self._tx() as session:
            rows = session.execute(select(_KEY).where(_KEY.c.owner == self.owner).order_by(_KEY.c.created_at, _KEY.c.kid))
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
        """Store ``value`` unless a check value exists; return the stored one."""
        with self._tx() as session:
            session.execute(_dialect_insert(session, _KEK).values(id=1, value=value).on_conflict_do_nothing())
            return session.execute(select(_KEK.c.value).where(_KEK.c.id == 1)).scalar_one()


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


class SqlReplayStore:
    """The SDK's ``ReplayStore`` on ``verifier_replay``: one presentation accepted once, across workers."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def remember(self, key: str, *, expires_at: float, now: float) -> bool:
        """Record ``key`` until ``expires_at``; False if it is recorded and unexpired (one transaction)."""
        with unit_of_work(self._sessions) as session:
            statement = _dialect_insert(session, _REPLAY).values(key=key, expires_at=_at(expires_at))
            # An expired entry is overwritten; an unexpired one is left alone and the row count says so.
            statement = statement.on_conflict_do_update(
                index_elements=[_REPLAY.c.key],
                set_={"expires_at": statement.excluded.expires_at},
                where=_REPLAY.c.expires_at <= _at(now),
            )
            # RETURNING, not the row count: drivers disagree on rowcount for an upsert that did nothing.
            return session.execute(statement.returning(_REPLAY.c.key)).first() is not None


# --- OpenID4VP transactions -----------------------------------------------------------------------------


def create_transaction(
    session: Session,
    /,
    *,
    transaction_id: str,
    department: str,
    staff_id: str | None,
    secret_hash: str,
    request: Mapping[str, Any],
    request_object: str,
    item_id: str | None,
    now: datetime,
    expires_at: datetime,
) -> Transaction:
    """Store a new pending transaction; raises ``Conflict`` for a taken id, ``InvalidValue``."""
    values = {
        "id": _text("transaction_id", transaction_id, max_len=64),
        "department_slug": department,
        "staff_id": staff_id,
        "secret_hash": _text("secret_hash", secret_hash, max_len=64),
        "request": dict(request),
        "request_object": _text("request_object", request_object, max_len=64 * 1024),
        "item_id": _text("item_id", item_id, max_len=64, optional=True),
        "status": TransactionStatus.PENDING.value,
        "created_at": _aware("now", now),
        "expires_at": _aware("expires_at", expires_at),
        "responded_at": None,
        "verdict": None,
        "code": None,
        "result": None,
    }
    with _unique(session, "transaction id collision or unknown department"):
        session.execute(insert(_TX).values(values))
    return _transaction(_Row(values))


def get_transaction(session: Session, /, *, transaction_id: str) -> Transaction | None:
    """The transaction ``transaction_id``, or ``None``."""
    row = session.execute(select(_TX).where(_TX.c.id == transaction_id)).one_or_none()
    return None if row is None else _transaction(row)


def claim_transaction(session: Session, /, *, transaction_id: str, now: datetime) -> Transaction:
    """Move a pending, unexpired transaction to ``responding`` (once, whichever worker asks first).

    Raises ``Spent`` with ``reason`` ``unknown``, ``expired`` or ``used``.
    """
    result = session.execute(
        update(_TX)
        .where(_TX.c.id == transaction_id, _TX.c.status == TransactionStatus.PENDING.value,
               _TX.c.expires_at > _aware("now", now))
        .values(status=TransactionStatus.RESPONDING.value, responded_at=now)
    )
    current = get_transaction(session, transaction_id=transaction_id)
    if current is None:
        raise Spent("no such transaction", reason="unknown")
    if result.rowcount != 1:
        if current.status is not TransactionStatus.PENDING:
            raise Spent("this request was already answered", reason="used")
        raise Spent("this request has expired", reason="expired")
    return current


def complete_transaction(
    session: Session, /, *, transaction_id: str, verdict: str, code: str | None, result: Mapping[str, Any]
) -> Transaction:
    """Store the verdict of a ``responding`` transaction; raises ``NotFound`` otherwise."""
    updated = session.execute(
        update(_TX)
        .where(_TX.c.id == transaction_id, _TX.c.status == TransactionStatus.RESPONDING.value)
        .values(status=TransactionStatus.COMPLETE.value, verdict=_text("verdict", verdict, max_len=32),
                code=code, result=dict(result))
    )
    if updated.rowcount != 1:
        raise NotFound(f"no transaction {transaction_id!r} awaiting its verdict")
    current = get_transaction(session, transaction_id=transaction_id)
    assert current is not None
    return current


def purge_expired(session: Session, /, *, now: datetime, keep_results_for: float = 3600) -> int:
    """Drop results (personal data) of transactions expired ``keep_results_for`` s ago, and stale replay entries.

    Returns how many rows changed. The transaction row stays (its verdict is in the audit).
    """
    cutoff = _at(_aware("now", now).timestamp() - keep_results_for)
    cleared = session.execute(
        update(_TX).where(_TX.c.expires_at < cutoff, _TX.c.result.is_not(None)).values(result=None)
    ).rowcount
    dropped = session.execute(_REPLAY.delete().where(_REPLAY.c.expires_at <= now)).rowcount
    return int(cleared or 0) + int(dropped or 0)


# --- verifications and audit ----------------------------------------------------------------------------


def record_verification(
    session: Session,
    /,
    *,
    department: str,
    staff_id: str | None,
    channel: str,
    verdict: str,
    code: str | None,
    vcts: Sequence[str],
    at: datetime,
    transaction_id: str | None = None,
    item_id: str | None = None,
    receipt_id: str | None = None,
) -> Verification:
    """Append one verification record (no claims: the receipt is the evidence)."""
    values = {
        "id": str(uuid.uuid4()),
        "department_slug": department,
        "staff_id": staff_id,
        "channel": _text("channel", channel, max_len=16),
        "transaction_id": transaction_id,
        "item_id": _text("item_id", item_id, max_len=64, optional=True),
        "verdict": _text("verdict", verdict, max_len=32),
        "code": _text("code", code, max_len=64, optional=True),
        "vcts": list(vcts),
        "receipt_id": receipt_id,
        "at": _aware("at", at),
    }
    session.execute(insert(_VERIFICATION).values(values))
    return _verification(_Row(values))


def list_verifications(session: Session, /, *, department: str, limit: int = 100) -> tuple[Verification, ...]:
    """The newest ``limit`` verifications of ``department``, newest first."""
    rows = session.execute(
        select(_VERIFICATION).where(_VERIFICATION.c.department_slug == department)
        .order_by(_VERIFICATION.c.at.desc(), _VERIFICATION.c.id).limit(max(1, min(limit, 1000)))
    )
    return tuple(_verification(r) for r in rows)


def append_audit(
    session: Session,
    /,
    *,
    department: str,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
) -> audit_chain.AuditRecord:
    """Append one action to the hash chain of ``department`` (its slug), in the caller's transaction.

    The chain's head row is locked (created on the first append), so concurrent appends to one chain
    queue and each links to the one before. Raises ``InvalidValue`` for a field the canonical JSON
    cannot hold (floats, naive times, ...), before writing anything.
    """
    _text("department", department, max_len=64)
    _text("actor", actor, max_len=200)
    _text("action", action, max_len=100)
    _aware("at", at)
    lock = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.chain == department).with_for_update(key_share=True)
    head = session.execute(lock).one_or_none()
    if head is None:
        session.execute(
            _dialect_insert(session, _HEAD).values(chain=department, seq=0, hash=audit_chain.GENESIS).on_conflict_do_nothing()
        )
        head = session.execute(lock).one()
    try:
        record = audit_chain.next_record(audit_chain.ChainHead(department, head.seq, head.hash), chain=department, at=at,
                                         actor=actor, action=action, subject=subject[:200], details=details)
    except CredentialError as exc:
        raise InvalidValue(f"audit record: {exc.detail}") from exc
    session.execute(insert(_AUDIT).values(
        chain=department, seq=record.seq, at=record.at, actor=record.actor, action=record.action,
        subject=record.subject, details=record.details_json(), prev_hash=record.prev_hash, hash=record.hash,
    ))
    session.execute(update(_HEAD).where(_HEAD.c.chain == department).values(seq=record.seq, hash=record.hash))
    return record


def _audit_record(r: Any) -> audit_chain.AuditRecord:
    return audit_chain.AuditRecord(chain=r.chain, seq=r.seq, at=r.at, actor=r.actor, action=r.action, subject=r.subject,
                                   details=r.details, prev_hash=r.prev_hash, hash=r.hash)


def list_audit(session: Session, /, *, department: str, limit: int = 100) -> tuple[audit_chain.AuditRecord, ...]:
    """The newest ``limit`` records of ``department``'s chain, newest first."""
    rows = session.execute(
        select(_AUDIT).where(_AUDIT.c.chain == department).order_by(_AUDIT.c.seq.desc()).limit(max(1, min(limit, 1000)))
    )
    return tuple(_audit_record(r) for r in rows)


def verify_audit(session: Session, /, *, department: str) -> int:
    """Check ``department``'s chain end to end against its head; returns the number of records.

    Raises ``AuditChainBroken`` (``credentials.audit``) with the first broken ``seq`` and its reason.
    """
    head = session.execute(select(_HEAD).where(_HEAD.c.chain == department)).one_or_none()
    rows = session.execute(select(_AUDIT).where(_AUDIT.c.chain == department).order_by(_AUDIT.c.seq))
    chain_head = None if head is None else audit_chain.ChainHead(department, head.seq, head.hash)
    return audit_chain.check_chain((_audit_record(r) for r in rows), head=chain_head)


# --- portals and logins (OpenID Connect) ----------------------------------------------------------------


class LoginStatus(enum.StrEnum):
    """A login: waiting for the wallet, code issued, failed, code redeemed, or revoked (code reused)."""

    PENDING = "pending"
    CODE = "code"
    FAILED = "failed"
    REDEEMED = "redeemed"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Portal:
    """A portal registered as an OpenID Connect client of a department (the department's request is used)."""

    client_id: str
    department: str
    name: str
    secret_hash: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    allow_staff: bool
    item_id: str | None
    pairwise_salt: str = field(repr=False)
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Login:
    """One authorization request of a portal: its OpenID4VP transaction, and what became of it."""

    id: str
    client_id: str
    transaction_id: str
    browser_hash: str = field(repr=False)
    redirect_uri: str
    state: str | None
    nonce: str
    code_challenge: str
    scope: str
    status: LoginStatus
    created_at: datetime
    expires_at: datetime
    auth_time: datetime | None
    identity: Mapping[str, Any] | None = field(repr=False)
    error: str | None
    error_description: str | None
    code_hash: str | None = field(repr=False)
    code_expires_at: datetime | None
    redeemed_at: datetime | None
    access_hash: str | None = field(repr=False)
    access_expires_at: datetime | None


def _portal(r: Any) -> Portal:
    return Portal(r.client_id, r.department_slug, r.name, r.secret_hash, tuple(r.redirect_uris), bool(r.allow_staff),
                  r.item_id, r.pairwise_salt, r.created_at, r.revoked_at)


def _login(r: Any) -> Login:
    return Login(
        id=r.id, client_id=r.client_id, transaction_id=r.transaction_id, browser_hash=r.browser_hash,
        redirect_uri=r.redirect_uri, state=r.state, nonce=r.nonce, code_challenge=r.code_challenge, scope=r.scope,
        status=LoginStatus(r.status), created_at=r.created_at, expires_at=r.expires_at, auth_time=r.auth_time,
        identity=None if r.identity is None else _freeze(r.identity), error=r.error,
        error_description=r.error_description, code_hash=r.code_hash, code_expires_at=r.code_expires_at,
        redeemed_at=r.redeemed_at, access_hash=r.access_hash, access_expires_at=r.access_expires_at,
    )


def create_portal(
    session: Session,
    /,
    *,
    client_id: str,
    department: str,
    name: str,
    secret_hash: str,
    redirect_uris: Sequence[str],
    allow_staff: bool,
    item_id: str | None,
    pairwise_salt: str,
    now: datetime,
) -> Portal:
    """Register a portal; raises ``NotFound`` (department), ``Conflict`` (client id), ``InvalidValue``."""
    if get_department(session, slug=department) is None:
        raise NotFound(f"no department {department!r}")
    if (not isinstance(redirect_uris, Sequence) or isinstance(redirect_uris, str) or not redirect_uris
            or not all(isinstance(u, str) and u for u in redirect_uris)):
        raise InvalidValue("redirect_uris must be a non-empty list of URIs")
    values = {
        "client_id": _text("client_id", client_id, max_len=64),
        "department_slug": department,
        "name": _text("name", name, max_len=200),
        "secret_hash": _text("secret_hash", secret_hash, max_len=64),
        "redirect_uris": list(dict.fromkeys(redirect_uris)),
        "allow_staff": bool(allow_staff),
        "item_id": _text("item_id", item_id, max_len=64, optional=True),
        "pairwise_salt": _text("pairwise_salt", pairwise_salt, max_len=64),
        "created_at": _aware("now", now),
        "revoked_at": None,
    }
    with _unique(session, f"portal {client_id!r} exists"):
        session.execute(insert(_PORTAL).values(values))
    return _portal(_Row(values))


def get_portal(session: Session, /, *, client_id: str) -> Portal | None:
    """The portal ``client_id`` (revoked ones too), or ``None``."""
    if not isinstance(client_id, str) or len(client_id) > 64:
        return None
    row = session.execute(select(_PORTAL).where(_PORTAL.c.client_id == client_id)).one_or_none()
    return None if row is None else _portal(row)


def list_portals(session: Session, /, *, department: str) -> tuple[Portal, ...]:
    """The portals of ``department``, oldest first."""
    rows = session.execute(select(_PORTAL).where(_PORTAL.c.department_slug == department)
                           .order_by(_PORTAL.c.created_at, _PORTAL.c.client_id))
    return tuple(_portal(r) for r in rows)


def revoke_portal(session: Session, /, *, department: str, client_id: str, now: datetime) -> Portal:
    """Revoke a portal of ``department``: it can start no login and redeem no code; its access tokens die.

    Raises ``NotFound`` (unknown, another department's, or already revoked).
    """
    result = session.execute(
        update(_PORTAL).where(_PORTAL.c.client_id == client_id, _PORTAL.c.department_slug == department,
                              _PORTAL.c.revoked_at.is_(None)).values(revoked_at=_aware("now", now))
    )
    if result.rowcount != 1:
        raise NotFound(f"no active portal {client_id!r} in {department!r}")
    session.execute(update(_LOGIN).where(_LOGIN.c.client_id == client_id, _LOGIN.c.access_hash.is_not(None))
                    .values(access_hash=None, access_expires_at=None))
    portal = get_portal(session, client_id=client_id)
    assert portal is not None
    return portal


def purge_logins(session: Session, /, *, now: datetime, keep_for: float) -> int:
    """Drop the identity (personal data) of logins that ended more than ``keep_for`` s ago; returns the count.

    A login has ended when its request expired and no unexpired access token still reads the identity.
    """
    cutoff = _at(_aware("now", now).timestamp() - keep_for)
    result = session.execute(
        update(_LOGIN)
        .where(_LOGIN.c.expires_at < cutoff, _LOGIN.c.identity.is_not(None),
               (_LOGIN.c.access_expires_at.is_(None)) | (_LOGIN.c.access_expires_at < now))
        .values(identity=None)
    )
    return int(result.rowcount or 0)


def create_login(
    session: Session,
    /,
    *,
    login_id: str,
    client_id: str,
    transaction_id: str,
    browser_hash: str,
    redirect_uri: str,
    state: str | None,
    nonce: str,
    code_challenge: str,
    scope: str,
    now: datetime,
    expires_at: datetime,
) -> Login:
    """Store a pending login; raises ``Conflict`` (id or transaction taken, unknown portal), ``InvalidValue``."""
    values = {
        "id": _text("login_id", login_id, max_len=64),
        "client_id": client_id,
        "transaction_id": _text("transaction_id", transaction_id, max_len=64),
        "browser_hash": _text("browser_hash", browser_hash, max_len=64),
        "redirect_uri": _text("redirect_uri", redirect_uri, max_len=2000),
        "state": _text("state", state, max_len=512, optional=True),
        "nonce": _text("nonce", nonce, max_len=512),
        "code_challenge": _text("code_challenge", code_challenge, max_len=64),
        "scope": _text("scope", scope, max_len=200),
        "status": LoginStatus.PENDING.value,
        "created_at": _aware("now", now),
        "expires_at": _aware("expires_at", expires_at),
        "auth_time": None, "identity": None, "error": None, "error_description": None, "code_hash": None,
        "code_expires_at": None, "redeemed_at": None, "access_hash": None, "access_expires_at": None,
    }
    with _unique(session, "login id or transaction collision, or unknown portal"):
        session.execute(insert(_LOGIN).values(values))
    return _login(_Row(values))


def _login_where(session: Session, column: Any, value: str) -> Login | None:
    row = session.execute(select(_LOGIN).where(column == value)).one_or_none()
    return None if row is None else _login(row)


def get_login(session: Session, /, *, login_id: str) -> Login | None:
    """The login ``login_id``, or ``None``."""
    return _login_where(session, _LOGIN.c.id, login_id)


def get_login_by_transaction(session: Session, /, *, transaction_id: str) -> Login | None:
    """The login whose OpenID4VP transaction is ``transaction_id``, or ``None`` (a department's own request)."""
    return _login_where(session, _LOGIN.c.transaction_id, transaction_id)


def get_login_by_code(session: Session, /, *, code_hash: str) -> Login | None:
    """The login that issued the authorization code with this hash, or ``None``."""
    return _login_where(session, _LOGIN.c.code_hash, code_hash)


def finish_login(
    session: Session,
    /,
    *,
    login_id: str,
    code_hash: str | None,
    code_expires_at: datetime | None,
    identity: Mapping[str, Any] | None,
    auth_time: datetime | None,
    error: str | None = None,
    error_description: str | None = None,
) -> Login:
    """Move a pending login to ``code`` (with the code's hash and the identity) or ``failed`` (with the error).

    Once only, whichever worker asks first; raises ``Spent`` (``reason`` ``used``) if it is not pending.
    """
    if (code_hash is None) == (error is None):
        raise InvalidValue("a login finishes with a code or with an error")
    values: dict[str, Any] = {"status": (LoginStatus.FAILED if code_hash is None else LoginStatus.CODE).value,
                              "code_hash": code_hash, "identity": None if identity is None else dict(identity),
                              "auth_time": auth_time, "error": _text("error", error, max_len=64, optional=True),
                              "error_description": None if error_description is None else error_description[:300]}
    if code_expires_at is not None:
        values["code_expires_at"] = _aware("code_expires_at", code_expires_at)
    result = session.execute(
        update(_LOGIN).where(_LOGIN.c.id == login_id, _LOGIN.c.status == LoginStatus.PENDING.value).values(values)
    )
    if result.rowcount != 1:
        raise Spent("this login is already finished", reason="used")
    current = get_login(session, login_id=login_id)
    assert current is not None
    return current


def redeem_code(
    session: Session,
    /,
    *,
    code_hash: str,
    client_id: str,
    now: datetime,
    access_hash: str,
    access_expires_at: datetime,
) -> Login:
    """Redeem an authorization code of ``client_id`` once, before it expires, storing the access token's hash.

    Raises ``Spent`` with ``reason``: ``unknown`` (no such code, or another client's), ``expired``, or
    ``used`` (redeemed before: the login is then revoked with its access token, RFC 6749 s4.1.2).
    """
    result = session.execute(
        update(_LOGIN)
        .where(_LOGIN.c.code_hash == code_hash, _LOGIN.c.client_id == client_id,
               _LOGIN.c.status == LoginStatus.CODE.value, _LOGIN.c.code_expires_at > _aware("now", now))
        .values(status=LoginStatus.REDEEMED.value, redeemed_at=now, access_hash=access_hash,
                access_expires_at=_aware("access_expires_at", access_expires_at))
    )
    row = session.execute(select(_LOGIN).where(_LOGIN.c.code_hash == code_hash)).one_or_none()
    if result.rowcount == 1 and row is not None:
        return _login(row)
    if row is None or row.client_id != client_id:
        raise Spent("no such authorization code for this client", reason="unknown")
    if row.status in (LoginStatus.REDEEMED.value, LoginStatus.REVOKED.value):
        revoke_login(session, login_id=row.id)
        raise Spent("this authorization code was already used", reason="used")
    raise Spent("this authorization code has expired", reason="expired")


def revoke_login(session: Session, /, *, login_id: str) -> None:
    """Revoke a login and its access token (a reused code is evidence the code leaked)."""
    session.execute(update(_LOGIN).where(_LOGIN.c.id == login_id)
                    .values(status=LoginStatus.REVOKED.value, access_hash=None, access_expires_at=None))


def get_login_by_access_token(session: Session, /, *, access_hash: str, now: datetime) -> Login | None:
    """The redeemed login holding this unexpired access token, or ``None``."""
    row = session.execute(
        select(_LOGIN).where(_LOGIN.c.access_hash == access_hash, _LOGIN.c.status == LoginStatus.REDEEMED.value,
                             _LOGIN.c.access_expires_at > _aware("now", now))
    ).one_or_none()
    return None if row is None else _login(row)
