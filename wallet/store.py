"""The wallet's storage: SQLAlchemy 2.0 models of the ``wallet_*`` tables and their repository functions.

The only module of the wallet role that imports SQLAlchemy. Policy (lifetimes, attempt limits, who
may do what) is ``wallet.service``'s; what the store guarantees are the invariants a database must
hold under concurrent requests:

- a failed sign-in or PIN attempt is counted under a row lock *before* the secret is compared
  (:func:`claim_attempt`), so parallel guesses cannot exceed the limit;
- a refresh token is rotated once: the row is locked and ``used_at`` set with a conditional update;
- an enterprise has exactly one legal representative (a partial unique index) and its membership
  changes are serialised on the enterprise row (:func:`lock_enterprise`), so the administrator
  limit cannot be overrun by parallel requests;
- a USCC belongs to one enterprise, a credential is stored once (unique keys).

How to use it
-------------
As ``issuer.store``: every repository function takes an open session as its only positional argument
and everything else by keyword, returns frozen dataclasses (never ORM objects) and never commits.
Compose calls inside :func:`unit_of_work`. Lock order (no deadlocks): user row -> enterprise row.
Rows are locked ``FOR NO KEY UPDATE`` on PostgreSQL; on SQLite every read-write transaction starts
with ``BEGIN IMMEDIATE`` (``elicence.db``), which serialises writers instead.

Tables (prefix ``wallet_``): ``user``, ``session`` (a refresh-token family), ``refresh_token``,
``access_token`` (tokens only as SHA-256), ``enterprise``, ``member``, ``key`` and ``kek_check``
(the keystore, see :class:`SqlKeyRecordStore`), ``credential``, ``usage`` (用照记录). The schema is
created by ``wallet/migrations/versions`` (branch ``wallet``); a test checks it equals these models.
Errors are :mod:`wallet.errors` (``not_found``, ``conflict``, ``invalid_value``, ``locked``).
"""

from __future__ import annotations

import base64
import contextlib
import enum
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    and_,
    delete,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from keys.errors import KeyNotFound, KeystoreError
from keys.keystore import KeyRecord, KeyState
from wallet.errors import Conflict, InvalidValue, Locked, NotFound

__all__ = [
    # models
    "WalletBase",
    "Sessions",
    # values
    "Role",
    "AttemptKind",
    "CredentialStatus",
    "Channel",
    "Outcome",
    "User",
    "Attempt",
    "AccessToken",
    "RefreshToken",
    "Enterprise",
    "Member",
    "Membership",
    "StoredCredential",
    "UsageRecord",
    "Page",
    # transactions
    "unit_of_work",
    # users
    "create_user",
    "get_user",
    "get_user_by_phone",
    "set_password_hash",
    "set_pin_hash",
    "claim_attempt",
    "reset_attempts",
    # sessions and tokens
    "create_session",
    "revoke_session",
    "add_access_token",
    "find_access_token",
    "add_refresh_token",
    "lock_refresh_token",
    "mark_refresh_token_used",
    "purge_expired_tokens",
    # enterprises and members
    "create_enterprise",
    "get_enterprise",
    "get_enterprise_by_uscc",
    "lock_enterprise",
    "add_member",
    "set_member_role",
    "remove_member",
    "get_member",
    "list_members",
    "memberships_of",
    "count_role",
    # keystore
    "SqlKeyRecordStore",
    # credentials
    "add_credential",
    "get_credential",
    "list_credentials",
    "list_enterprise_credentials",
    "delete_credential",
    "set_credential_status",
    # usage records
    "record_use",
    "list_usage",
]

T = TypeVar("T")

#: What :func:`unit_of_work` takes: ``elicence.db.session_factory(engine)``.
Sessions = sessionmaker[Session]

_READ_ONLY_OPTION = "elicence_read_only"  # understood by elicence.db's SQLite engine: deferred BEGIN


# --- column types and models ---------------------------------------------------------------------------


class _UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC; naive values are refused (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidValue("times must be timezone-aware datetimes")
        utc = value.astimezone(timezone.utc)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class WalletBase(DeclarativeBase):
    """Declarative base of the wallet's tables only (roles never share a base or a table)."""

    metadata = MetaData(
        naming_convention={
            "pk": "pk_%(table_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
        }
    )
    type_annotation_map = {datetime: _UtcDateTime(), bytes: LargeBinary()}


_ID = String(36)
_HASH = String(64)


class WalletUser(WalletBase):
    __tablename__ = "wallet_user"
    __table_args__ = (
        CheckConstraint("sign_in_failures >= 0", name="sign_in_failures"),
        CheckConstraint("pin_failures >= 0", name="pin_failures"),
    )

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    phone: Mapped[str] = mapped_column(String(14), unique=True)  # +86 and 11 digits
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    sign_in_failures: Mapped[int] = mapped_column(Integer)
    sign_in_locked_until: Mapped[datetime | None]
    pin_hash: Mapped[str | None] = mapped_column(String(255))
    pin_failures: Mapped[int] = mapped_column(Integer)
    pin_locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WalletSession(WalletBase):
    """A sign-in: the family of refresh tokens rotated from it. Revoking it ends all its tokens."""

    __tablename__ = "wallet_session"

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("wallet_user.id"), index=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class WalletRefreshToken(WalletBase):
    __tablename__ = "wallet_refresh_token"

    token_hash: Mapped[str] = mapped_column(_HASH, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("wallet_session.id"), index=True)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]


class WalletAccessToken(WalletBase):
    __tablename__ = "wallet_access_token"

    token_hash: Mapped[str] = mapped_column(_HASH, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("wallet_session.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class WalletEnterprise(WalletBase):
    __tablename__ = "wallet_enterprise"

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class WalletMember(WalletBase):
    __tablename__ = "wallet_member"
    __table_args__ = (
        CheckConstraint("role IN ('legal_representative', 'administrator', 'staff')", name="role"),
        # Exactly one 法定代表人 per enterprise: at most one by this index, at least one because the
        # enterprise is created with them and that row can be neither removed nor demoted.
        Index(
            "ix_wallet_member_one_legal_representative",
            "enterprise_id",
            unique=True,
            sqlite_where=text("role = 'legal_representative'"),
            postgresql_where=text("role = 'legal_representative'"),
        ),
    )

    enterprise_id: Mapped[str] = mapped_column(ForeignKey("wallet_enterprise.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("wallet_user.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(32))
    added_by: Mapped[str | None] = mapped_column(ForeignKey("wallet_user.id"))
    added_at: Mapped[datetime]


class WalletKey(WalletBase):
    __tablename__ = "wallet_key"
    __table_args__ = (CheckConstraint("state IN ('active', 'retired', 'revoked')", name="state"),)

    kid: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)  # "user:<id>" or "enterprise:<id>"
    alg: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    nonce: Mapped[bytes]
    ciphertext: Mapped[bytes]
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class WalletKekCheck(WalletBase):
    __tablename__ = "wallet_kek_check"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[bytes]


class WalletCredential(WalletBase):
    __tablename__ = "wallet_credential"
    __table_args__ = (
        CheckConstraint("enterprise_id IS NOT NULL OR user_id IS NOT NULL", name="owner"),
        CheckConstraint("status IS NULL OR status IN ('valid', 'invalid', 'suspended')", name="status"),
    )

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    # enterprise only: the enterprise's (licence); user only: personal; both: the user's credential
    # concerning the enterprise (a staff authorisation, 授权).
    enterprise_id: Mapped[str | None] = mapped_column(ForeignKey("wallet_enterprise.id"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("wallet_user.id"), index=True)
    holder_kid: Mapped[str] = mapped_column(ForeignKey("wallet_key.kid"), index=True)
    vct: Mapped[str] = mapped_column(String(512))
    issuer: Mapped[str] = mapped_column(String(512))
    configuration_id: Mapped[str] = mapped_column(String(200))
    credential: Mapped[str] = mapped_column(Text)
    credential_hash: Mapped[str] = mapped_column(_HASH, unique=True)
    received_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    status_list_uri: Mapped[str | None] = mapped_column(String(512))
    status_list_idx: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str | None] = mapped_column(String(16))
    status_checked_at: Mapped[datetime | None]


class WalletUsage(WalletBase):
    __tablename__ = "wallet_usage"
    __table_args__ = (
        CheckConstraint("channel IN ('qr', 'openid4vp')", name="channel"),
        CheckConstraint("outcome IN ('shown', 'sent', 'refused', 'failed')", name="outcome"),
        Index(None, "enterprise_id", "at"),
        Index(None, "user_id", "at"),
    )

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    enterprise_id: Mapped[str | None] = mapped_column(ForeignKey("wallet_enterprise.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("wallet_user.id"))
    credential_ids: Mapped[list[str]] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(16))
    verifier_client_id: Mapped[str | None] = mapped_column(String(512))
    verifier_name: Mapped[str | None] = mapped_column(String(200))
    purpose: Mapped[str | None] = mapped_column(String(500))
    disclosed: Mapped[list[str]] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(200))
    nonce: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]


_USER = WalletUser.__table__
_SESSION = WalletSession.__table__
_REFRESH = WalletRefreshToken.__table__
_ACCESS = WalletAccessToken.__table__
_ENTERPRISE = WalletEnterprise.__table__
_MEMBER = WalletMember.__table__
_KEY = WalletKey.__table__
_KEK = WalletKekCheck.__table__
_CRED = WalletCredential.__table__
_USAGE = WalletUsage.__table__


# --- values ---------------------------------------------------------------------------------------------


class Role(enum.StrEnum):
    """A member's role in an enterprise."""

    LEGAL_REPRESENTATIVE = "legal_representative"  # 法定代表人: exactly one
    ADMINISTRATOR = "administrator"  # licence administrator, named by the legal representative
    STAFF = "staff"  # 经办人


class AttemptKind(enum.StrEnum):
    """Which secret an attempt is counted against."""

    SIGN_IN = "sign_in"
    PIN = "pin"


class CredentialStatus(enum.StrEnum):
    """The last status the wallet read from the credential's status list (Token Status List s7.1)."""

    VALID = "valid"
    INVALID = "invalid"
    SUSPENDED = "suspended"


class Channel(enum.StrEnum):
    """How a presentation left the wallet: an offline QR code (亮码) or OpenID4VP (扫码)."""

    QR = "qr"
    OPENID4VP = "openid4vp"


class Outcome(enum.StrEnum):
    """shown (QR displayed), sent (vp_token posted), refused (by the user), failed (an error)."""

    SHOWN = "shown"
    SENT = "sent"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class User:
    """A wallet account; the secrets are hashes in ``wallet.service``'s format."""

    id: str
    phone: str
    display_name: str
    password_hash: str = field(repr=False)
    sign_in_failures: int
    sign_in_locked_until: datetime | None
    pin_hash: str | None = field(repr=False)
    pin_failures: int
    pin_locked_until: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """A counted attempt: ``failures`` includes it; ``locked_until`` is set when it was the last one allowed."""

    user: User
    failures: int
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An access token's row with its session (the service decides expiry)."""

    token_hash: str
    session_id: str
    user_id: str
    expires_at: datetime
    session_revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A refresh token's row with its session."""

    token_hash: str
    session_id: str
    user_id: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None
    session_revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Enterprise:
    """An enterprise whose licence this wallet keeps."""

    id: str
    uscc: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Member:
    """A user's membership of an enterprise, with the user's phone and name for listings."""

    enterprise_id: str
    user_id: str
    role: Role
    phone: str
    display_name: str
    added_by: str | None
    added_at: datetime


@dataclass(frozen=True, slots=True)
class Membership:
    """An enterprise and the user's role in it."""

    enterprise: Enterprise
    role: Role


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """A credential in the wallet (``credential`` is the SD-JWT VC text with all its disclosures)."""

    id: str
    enterprise_id: str | None
    user_id: str | None
    holder_kid: str
    vct: str
    issuer: str
    configuration_id: str
    credential: str = field(repr=False)
    credential_hash: str
    received_at: datetime
    expires_at: datetime | None
    status_list_uri: str | None
    status_list_idx: int | None
    status: CredentialStatus | None
    status_checked_at: datetime | None


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One presentation the wallet made (用照记录)."""

    id: str
    enterprise_id: str | None
    user_id: str
    credential_ids: tuple[str, ...]
    channel: Channel
    verifier_client_id: str | None
    verifier_name: str | None
    purpose: str | None
    disclosed: tuple[str, ...]
    request_id: str | None
    nonce: str | None
    outcome: Outcome
    at: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_cursor`` back for the next page (``None``: last page)."""

    items: tuple[T, ...]
    next_cursor: str | None


def _user(r: Any) -> User:
    return User(r.id, r.phone, r.display_name, r.password_hash, r.sign_in_failures, r.sign_in_locked_until,
                r.pin_hash, r.pin_failures, r.pin_locked_until, r.created_at, r.updated_at)


def _enterprise(r: Any) -> Enterprise:
    return Enterprise(r.id, r.uscc, r.name, r.created_at)


def _stored(r: Any) -> StoredCredential:
    return StoredCredential(
        id=r.id, enterprise_id=r.enterprise_id, user_id=r.user_id, holder_kid=r.holder_kid, vct=r.vct,
        issuer=r.issuer, configuration_id=r.configuration_id, credential=r.credential,
        credential_hash=r.credential_hash, received_at=r.received_at, expires_at=r.expires_at,
        status_list_uri=r.status_list_uri, status_list_idx=r.status_list_idx,
        status=None if r.status is None else CredentialStatus(r.status), status_checked_at=r.status_checked_at,
    )


def _usage(r: Any) -> UsageRecord:
    return UsageRecord(
        id=r.id, enterprise_id=r.enterprise_id, user_id=r.user_id, credential_ids=tuple(r.credential_ids),
        channel=Channel(r.channel), verifier_client_id=r.verifier_client_id, verifier_name=r.verifier_name,
        purpose=r.purpose, disclosed=tuple(r.disclosed), request_id=r.request_id, nonce=r.nonce,
        outcome=Outcome(r.outcome), at=r.at,
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


def _strings(name: str, values: Any, *, max_items: int, max_len: int) -> list[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) > max_items:
        raise InvalidValue(f"{name} must be a list of at most {max_items} strings")
    return [_text(f"{name}[]", v, max_len=max_len) for v in values]


def _enum(kind: type[enum.StrEnum], name: str, value: Any) -> Any:
    try:
        return kind(value)
    except ValueError as exc:
        raise InvalidValue(f"{name} must be one of {[m.value for m in kind]}") from exc


@contextlib.contextmanager
def _unique(session: Session, error: Exception) -> Iterator[None]:
    """Run a write in a savepoint; a unique or foreign key violation raises ``error`` instead."""
    try:
        with session.begin_nested():
            yield
    except IntegrityError as exc:
        raise error from exc


def _locked(query: Any) -> Any:
    # FOR NO KEY UPDATE: excludes every other locker but not the KEY SHARE locks foreign key checks take.
    return query.with_for_update(key_share=True)


def _dialect_insert(session: Session, table: Any) -> Any:
    return (postgresql if session.get_bind().dialect.name == "postgresql" else sqlite).insert(table)


def _cursor(at: datetime, ident: str) -> str:
    raw = json.dumps([at.astimezone(timezone.utc).isoformat(), ident], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[datetime, str]:
    try:
        at, ident = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None or not isinstance(ident, str) or "\x00" in ident:
            raise ValueError("naive time, or an id that is not a string without NUL")
        return parsed, ident
    except (ValueError, TypeError) as exc:
        raise InvalidValue("cursor is not one this wallet handed out") from exc


# --- transactions ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def unit_of_work(session_factory: Sessions, *, read_only: bool = False) -> Iterator[Session]:
    """One transaction: yields a session, commits when the block ends, rolls back if it raises.

    ``read_only=True`` starts a deferred transaction on SQLite (no write lock) and rolls back at the end.
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


# --- users ----------------------------------------------------------------------------------------------


def create_user(
    session: Session, /, *, user_id: str, phone: str, display_name: str, password_hash: str, now: datetime
) -> User:
    """Insert an account. Raises ``Conflict`` if the phone number (or id) is taken, ``InvalidValue``."""
    values = {
        "id": _text("user_id", user_id, max_len=36),
        "phone": _text("phone", phone, max_len=14),
        "display_name": _text("display_name", display_name, max_len=100),
        "password_hash": _text("password_hash", password_hash, max_len=255),
        "sign_in_failures": 0,
        "sign_in_locked_until": None,
        "pin_hash": None,
        "pin_failures": 0,
        "pin_locked_until": None,
        "created_at": _aware("now", now),
        "updated_at": now,
    }
    with _unique(session, Conflict(f"an account with phone {phone} exists")):
        session.execute(insert(_USER).values(values))
    return _user(_Row(values))


class _Row:
    """Attribute access over a dict of column values (what an insert wrote)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


def get_user(session: Session, /, *, user_id: str) -> User | None:
    """The account ``user_id``, or ``None``."""
    row = session.execute(select(_USER).where(_USER.c.id == user_id)).one_or_none()
    return None if row is None else _user(row)


def get_user_by_phone(session: Session, /, *, phone: str) -> User | None:
    """The account with this (normalised) phone number, or ``None``."""
    row = session.execute(select(_USER).where(_USER.c.phone == phone)).one_or_none()
    return None if row is None else _user(row)


def _lock_user(session: Session, user_id: str) -> User:
    row = session.execute(_locked(select(_USER).where(_USER.c.id == user_id))).one_or_none()
    if row is None:
        raise NotFound(f"no account {user_id!r}")
    return _user(row)


def set_password_hash(session: Session, /, *, user_id: str, password_hash: str, now: datetime) -> None:
    """Replace the stored password hash (a rehash with stronger parameters). Raises ``NotFound``."""
    _set_user(session, user_id, now, password_hash=_text("password_hash", password_hash, max_len=255))


def set_pin_hash(
    session: Session, /, *, user_id: str, pin_hash: str, now: datetime, only_if_unset: bool = False
) -> bool:
    """Store a new wallet PIN hash and clear the PIN failure count; with ``only_if_unset``, only if no
    PIN is set (conditional ``UPDATE``), answering whether it was stored. Raises ``NotFound``."""
    values = {"pin_hash": _text("pin_hash", pin_hash, max_len=255), "pin_failures": 0, "pin_locked_until": None}
    if not only_if_unset:
        _set_user(session, user_id, now, **values)
        return True
    if get_user(session, user_id=user_id) is None:
        raise NotFound(f"no account {user_id!r}")
    result = session.execute(
        update(_USER).where(_USER.c.id == user_id, _USER.c.pin_hash.is_(None))
        .values(updated_at=_aware("now", now), **values)
    )
    return result.rowcount == 1


def _set_user(session: Session, user_id: str, now: datetime, **values: Any) -> None:
    result = session.execute(update(_USER).where(_USER.c.id == user_id).values(updated_at=_aware("now", now), **values))
    if result.rowcount != 1:
        raise NotFound(f"no account {user_id!r}")


_ATTEMPT_COLUMNS = {
    AttemptKind.SIGN_IN: ("sign_in_failures", "sign_in_locked_until"),
    AttemptKind.PIN: ("pin_failures", "pin_locked_until"),
}


def claim_attempt(
    session: Session, /, *, user_id: str, kind: AttemptKind | str, max_failures: int, lockout: timedelta,
    now: datetime,
) -> Attempt:
    """Count one attempt at a secret *before* it is compared; commit it in its own transaction.

    The user row is locked, then: a lock still running raises ``Locked`` (``retry_after`` seconds);
    a lock that ran out starts a new count; the attempt is counted as a failure, and when it is the
    ``max_failures``-th the lock is set at once (lifted again by :func:`reset_attempts` if the secret
    turns out right). So parallel guesses never get more than ``max_failures`` comparisons per lockout.
    Raises ``NotFound``, ``InvalidValue``.
    """
    kind = _enum(AttemptKind, "kind", kind)
    _aware("now", now)
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 1:
        raise InvalidValue("max_failures must be a positive integer")
    count_col, until_col = _ATTEMPT_COLUMNS[kind]
    user = _lock_user(session, user_id)
    failures, until = getattr(user, count_col), getattr(user, until_col)
    if until is not None and until > now:
        raise Locked(f"{kind.value} is locked", retry_after=math.ceil((until - now).total_seconds()))
    if until is not None:  # the lockout ran out: a fresh series of attempts
        failures = 0
    failures += 1
    until = now + lockout if failures >= max_failures else None
    _set_user(session, user_id, now, **{count_col: failures, until_col: until})
    return Attempt(_lock_user(session, user_id), failures, until)


def reset_attempts(session: Session, /, *, user_id: str, kind: AttemptKind | str, now: datetime) -> None:
    """The secret was right: clear the failure count and any lock it set. Raises ``NotFound``."""
    count_col, until_col = _ATTEMPT_COLUMNS[_enum(AttemptKind, "kind", kind)]
    _set_user(session, user_id, now, **{count_col: 0, until_col: None})


# --- sessions and tokens --------------------------------------------------------------------------------


def create_session(session: Session, /, *, session_id: str, user_id: str, now: datetime) -> None:
    """Open a sign-in session (a refresh-token family). Raises ``Conflict`` (id taken, no such user)."""
    values = {"id": _text("session_id", session_id, max_len=36), "user_id": user_id,
              "created_at": _aware("now", now), "revoked_at": None, "revoked_reason": None}
    with _unique(session, Conflict("session id taken or no such user")):
        session.execute(insert(_SESSION).values(values))


def revoke_session(session: Session, /, *, session_id: str, reason: str, now: datetime) -> bool:
    """Revoke a session and so every token of its family; ``False`` if it was already revoked."""
    result = session.execute(
        update(_SESSION)
        .where(_SESSION.c.id == session_id, _SESSION.c.revoked_at.is_(None))
        .values(revoked_at=_aware("now", now), revoked_reason=_text("reason", reason, max_len=32))
    )
    return result.rowcount == 1


def add_access_token(session: Session, /, *, token_hash: str, session_id: str, expires_at: datetime) -> None:
    """Store an access token's SHA-256. Raises ``Conflict`` (hash taken, no such session)."""
    values = {"token_hash": _text("token_hash", token_hash, max_len=64), "session_id": session_id,
              "expires_at": _aware("expires_at", expires_at)}
    with _unique(session, Conflict("access token hash taken or no such session")):
        session.execute(insert(_ACCESS).values(values))


def find_access_token(session: Session, /, *, token_hash: str) -> AccessToken | None:
    """The access token with this hash, with its session's user and revocation, or ``None``."""
    row = session.execute(
        select(_ACCESS, _SESSION.c.user_id, _SESSION.c.revoked_at)
        .join(_SESSION, _SESSION.c.id == _ACCESS.c.session_id)
        .where(_ACCESS.c.token_hash == token_hash)
    ).one_or_none()
    if row is None:
        return None
    return AccessToken(row.token_hash, row.session_id, row.user_id, row.expires_at, row.revoked_at)


def add_refresh_token(
    session: Session, /, *, token_hash: str, session_id: str, issued_at: datetime, expires_at: datetime
) -> None:
    """Store a refresh token's SHA-256 in its family. Raises ``Conflict`` (hash taken, no such session)."""
    values = {"token_hash": _text("token_hash", token_hash, max_len=64), "session_id": session_id,
              "issued_at": _aware("issued_at", issued_at), "expires_at": _aware("expires_at", expires_at),
              "used_at": None}
    with _unique(session, Conflict("refresh token hash taken or no such session")):
        session.execute(insert(_REFRESH).values(values))


def lock_refresh_token(session: Session, /, *, token_hash: str) -> RefreshToken | None:
    """The refresh token with this hash, its row locked until the transaction ends, or ``None``."""
    row = session.execute(
        _locked(
            select(_REFRESH, _SESSION.c.user_id, _SESSION.c.revoked_at)
            .join(_SESSION, _SESSION.c.id == _REFRESH.c.session_id)
            .where(_REFRESH.c.token_hash == token_hash)
        )
    ).one_or_none()
    if row is None:
        return None
    return RefreshToken(row.token_hash, row.session_id, row.user_id, row.issued_at, row.expires_at, row.used_at,
                        row.revoked_at)


def mark_refresh_token_used(session: Session, /, *, token_hash: str, now: datetime) -> bool:
    """Rotate a refresh token out (``used_at``), once; ``False`` if it was used already."""
    result = session.execute(
        update(_REFRESH)
        .where(_REFRESH.c.token_hash == token_hash, _REFRESH.c.used_at.is_(None))
        .values(used_at=_aware("now", now))
    )
    return result.rowcount == 1


def purge_expired_tokens(session: Session, /, *, now: datetime) -> int:
    """Delete access tokens that expired before ``now``; returns how many went.

    Refresh tokens stay until their family is gone: a used one must still be recognised when replayed.
    """
    return session.execute(delete(_ACCESS).where(_ACCESS.c.expires_at <= _aware("now", now))).rowcount


# --- enterprises and members ----------------------------------------------------------------------------


def create_enterprise(
    session: Session, /, *, enterprise_id: str, uscc: str, name: str, legal_representative: str, now: datetime
) -> Enterprise:
    """Insert an enterprise with its legal representative as first member, in one step.

    Raises ``Conflict`` (USCC or id taken, no such user), ``InvalidValue``.
    """
    values = {"id": _text("enterprise_id", enterprise_id, max_len=36), "uscc": _text("uscc", uscc, max_len=18),
              "name": _text("name", name, max_len=200), "created_at": _aware("now", now)}
    with _unique(session, Conflict(f"an enterprise with USCC {uscc} exists")):
        session.execute(insert(_ENTERPRISE).values(values))
    add_member(session, enterprise_id=enterprise_id, user_id=legal_representative, role=Role.LEGAL_REPRESENTATIVE,
               added_by=None, now=now)
    return _enterprise(_Row(values))


def get_enterprise(session: Session, /, *, enterprise_id: str) -> Enterprise | None:
    """The enterprise ``enterprise_id``, or ``None``."""
    row = session.execute(select(_ENTERPRISE).where(_ENTERPRISE.c.id == enterprise_id)).one_or_none()
    return None if row is None else _enterprise(row)


def get_enterprise_by_uscc(session: Session, /, *, uscc: str) -> Enterprise | None:
    """The enterprise with this USCC, or ``None``."""
    row = session.execute(select(_ENTERPRISE).where(_ENTERPRISE.c.uscc == uscc)).one_or_none()
    return None if row is None else _enterprise(row)


def lock_enterprise(session: Session, /, *, enterprise_id: str) -> Enterprise:
    """Lock the enterprise row until the transaction ends (serialises membership changes); ``NotFound``."""
    row = session.execute(_locked(select(_ENTERPRISE).where(_ENTERPRISE.c.id == enterprise_id))).one_or_none()
    if row is None:
        raise NotFound(f"no enterprise {enterprise_id!r}")
    return _enterprise(row)


def add_member(
    session: Session, /, *, enterprise_id: str, user_id: str, role: Role | str, added_by: str | None, now: datetime
) -> Member:
    """Add ``user_id`` to the enterprise in ``role``. Raises ``Conflict`` (already a member, a second
    legal representative, no such user or enterprise), ``InvalidValue``."""
    values = {"enterprise_id": enterprise_id, "user_id": user_id, "role": _enum(Role, "role", role).value,
              "added_by": added_by, "added_at": _aware("now", now)}
    with _unique(session, Conflict("already a member, a second legal representative, or no such user")):
        session.execute(insert(_MEMBER).values(values))
    member = get_member(session, enterprise_id=enterprise_id, user_id=user_id)
    assert member is not None
    return member


def set_member_role(session: Session, /, *, enterprise_id: str, user_id: str, role: Role | str) -> Member:
    """Change a member's role. Raises ``NotFound`` (not a member), ``Conflict``, ``InvalidValue``."""
    target = _enum(Role, "role", role)
    with _unique(session, Conflict("the enterprise has a legal representative")):
        result = session.execute(
            update(_MEMBER)
            .where(_MEMBER.c.enterprise_id == enterprise_id, _MEMBER.c.user_id == user_id)
            .values(role=target.value)
        )
    if result.rowcount != 1:
        raise NotFound("no such member")
    member = get_member(session, enterprise_id=enterprise_id, user_id=user_id)
    assert member is not None
    return member


def remove_member(session: Session, /, *, enterprise_id: str, user_id: str) -> None:
    """Remove a membership. Raises ``NotFound`` if there is none."""
    result = session.execute(
        delete(_MEMBER).where(_MEMBER.c.enterprise_id == enterprise_id, _MEMBER.c.user_id == user_id)
    )
    if result.rowcount != 1:
        raise NotFound("no such member")


def _member_query() -> Any:
    return select(_MEMBER, _USER.c.phone, _USER.c.display_name).join(_USER, _USER.c.id == _MEMBER.c.user_id)


def _member(r: Any) -> Member:
    return Member(r.enterprise_id, r.user_id, Role(r.role), r.phone, r.display_name, r.added_by, r.added_at)


def get_member(session: Session, /, *, enterprise_id: str, user_id: str) -> Member | None:
    """``user_id``'s membership of the enterprise, or ``None``."""
    row = session.execute(
        _member_query().where(_MEMBER.c.enterprise_id == enterprise_id, _MEMBER.c.user_id == user_id)
    ).one_or_none()
    return None if row is None else _member(row)


_ROLE_ORDER = {Role.LEGAL_REPRESENTATIVE: 0, Role.ADMINISTRATOR: 1, Role.STAFF: 2}


def list_members(session: Session, /, *, enterprise_id: str) -> tuple[Member, ...]:
    """The enterprise's members: legal representative, administrators, staff; oldest first in each."""
    rows = session.execute(_member_query().where(_MEMBER.c.enterprise_id == enterprise_id))
    members = [_member(r) for r in rows]
    return tuple(sorted(members, key=lambda m: (_ROLE_ORDER[m.role], m.added_at, m.user_id)))


def count_role(session: Session, /, *, enterprise_id: str, role: Role | str) -> int:
    """How many members of the enterprise have ``role``."""
    rows = session.execute(
        select(_MEMBER.c.user_id).where(_MEMBER.c.enterprise_id == enterprise_id,
                                        _MEMBER.c.role == _enum(Role, "role", role).value)
    )
    return len(rows.all())


def memberships_of(session: Session, /, *, user_id: str) -> tuple[Membership, ...]:
    """Every enterprise ``user_id`` belongs to, with the role, by enterprise name."""
    rows = session.execute(
        select(_ENTERPRISE, _MEMBER.c.role)
        .join(_MEMBER, _MEMBER.c.enterprise_id == _ENTERPRISE.c.id)
        .where(_MEMBER.c.user_id == user_id)
        .order_by(_ENTERPRISE.c.name, _ENTERPRISE.c.id)
    )
    return tuple(Membership(_enterprise(r), Role(r.role)) for r in rows)


# --- keystore -------------------------------------------------------------------------------------------


class SqlKeyRecordStore:
    """``keys.keystore.KeyRecordStore`` on ``wallet_key`` / ``wallet_kek_check``, scoped to one ``owner``.

    Owners are ``"user:<id>"`` (a user's holder key) and ``"enterprise:<id>"`` (an enterprise's licence
    key). Each call runs in its own transaction unless the store is bound to an open session with
    :meth:`using`; then it joins that transaction (a key made with its enterprise commits with it).
    Only records of ``owner`` are visible, and ``put`` refuses a record of another owner, so one
    tenant's store can never hand out another's key. One KEK check value serves the whole wallet.
    """

    def __init__(self, session_factory: Sessions, owner: str, *, session: Session | None = None) -> None:
        self._sessions = session_factory
        self.owner = owner
        self._session = session

    def __repr__(self) -> str:
        return f"wallet.SqlKeyRecordStore(owner={self.owner!r}{', bound' if self._session is not None else ''})"

    def using(self, session: Session) -> SqlKeyRecordStore:
        """The same store, working inside ``session``'s transaction (no commit of its own)."""
        return SqlKeyRecordStore(self._sessions, self.owner, session=session)

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Session]:
        if self._session is None:
            with unit_of_work(self._sessions) as session:
                yield session
        else:
            yield self._session

    def _mine(self) -> Any:
        return select(_KEY).where(_KEY.c.owner == self.owner)

    def get(self, kid: str) -> KeyRecord | None:
        """The record with this ``kid`` of this owner, or ``None``."""
        with self._tx() as session:
            row = session.execute(self._mine().where(_KEY.c.kid == kid)).one_or_none()
        return None if row is None else _key_record(row)

    def put(self, record: KeyRecord) -> None:
        """Insert a new record; raises ``KeystoreError`` if the ``kid`` exists or the owner differs."""
        if record.owner != self.owner:
            raise KeystoreError(f"this store holds keys of {self.owner!r}, not {record.owner!r}")
        values = {field_: getattr(record, field_) for field_ in
                  ("kid", "alg", "nonce", "ciphertext", "label", "created_at", "retired_at", "revoked_at")}
        values.update(owner=self.owner, state=record.state.value, public_jwk=dict(record.public_jwk))
        with self._tx() as session, _unique(session, KeystoreError(f"a key with kid {record.kid!r} is stored")):
            session.execute(insert(_KEY).values(values))

    def list(self, *, owner: str | None = None) -> tuple[KeyRecord, ...]:
        """This owner's records, oldest first (``owner``, if given, must be this store's)."""
        if owner not in (None, self.owner):
            return ()
        with self._tx() as session:
            rows = session.execute(self._mine().order_by(_KEY.c.created_at, _KEY.c.kid)).all()
        return tuple(_key_record(r) for r in rows)

    def update_state(self, kid: str, state: KeyState, *, at: datetime) -> KeyRecord:
        """Set the state and its timestamp; raises ``KeyNotFound``. Returns the updated record."""
        state = KeyState(state)
        stamp = {KeyState.RETIRED: "retired_at", KeyState.REVOKED: "revoked_at"}.get(state)
        values: dict[str, Any] = {"state": state.value, **({stamp: at} if stamp else {})}
        with self._tx() as session:
            changed = session.execute(update(_KEY).where(_KEY.c.kid == kid, _KEY.c.owner == self.owner).values(values))
            if changed.rowcount != 1:
                raise KeyNotFound(f"no key {kid!r}")
            return _key_record(session.execute(self._mine().where(_KEY.c.kid == kid)).one())

    def kek_check(self) -> bytes | None:
        """The wallet's KEK check value, or ``None`` before its first key."""
        with self._tx() as session:
            return session.execute(select(_KEK.c.value).where(_KEK.c.id == 1)).scalar_one_or_none()

    def init_kek_check(self, value: bytes) -> bytes:
        """Store ``value`` unless a check value exists (``ON CONFLICT DO NOTHING``); return the stored one."""
        with self._tx() as session:
            session.execute(_dialect_insert(session, _KEK).values(id=1, value=value).on_conflict_do_nothing())
            return session.execute(select(_KEK.c.value).where(_KEK.c.id == 1)).scalar_one()


def _key_record(r: Any) -> KeyRecord:
    return KeyRecord(kid=r.kid, alg=r.alg, state=KeyState(r.state), public_jwk=r.public_jwk, nonce=r.nonce,
                     ciphertext=r.ciphertext, created_at=r.created_at, retired_at=r.retired_at,
                     revoked_at=r.revoked_at, label=r.label, owner=r.owner)


# --- credentials ----------------------------------------------------------------------------------------


def add_credential(
    session: Session,
    /,
    *,
    credential_id: str,
    enterprise_id: str | None,
    user_id: str | None,
    holder_kid: str,
    vct: str,
    issuer: str,
    configuration_id: str,
    credential: str,
    credential_hash: str,
    received_at: datetime,
    expires_at: datetime | None,
    status_list_uri: str | None = None,
    status_list_idx: int | None = None,
) -> StoredCredential:
    """Store a received credential (already validated by the caller).

    Raises ``Conflict`` (the same credential is stored, no such owner or key), ``InvalidValue``.
    """
    if enterprise_id is None and user_id is None:
        raise InvalidValue("a credential belongs to an enterprise, a user, or both")
    if status_list_idx is not None and (isinstance(status_list_idx, bool) or not isinstance(status_list_idx, int)
                                        or status_list_idx < 0):
        raise InvalidValue("status_list_idx must be a non-negative integer")
    values = {
        "id": _text("credential_id", credential_id, max_len=36),
        "enterprise_id": enterprise_id,
        "user_id": user_id,
        "holder_kid": _text("holder_kid", holder_kid, max_len=128),
        "vct": _text("vct", vct, max_len=512),
        "issuer": _text("issuer", issuer, max_len=512),
        "configuration_id": _text("configuration_id", configuration_id, max_len=200),
        "credential": _text("credential", credential, max_len=1_000_000),
        "credential_hash": _text("credential_hash", credential_hash, max_len=64),
        "received_at": _aware("received_at", received_at),
        "expires_at": None if expires_at is None else _aware("expires_at", expires_at),
        "status_list_uri": _text("status_list_uri", status_list_uri, max_len=512, optional=True),
        "status_list_idx": status_list_idx,
        "status": None,
        "status_checked_at": None,
    }
    with _unique(session, Conflict("this credential is stored already (or no such owner or key)")):
        session.execute(insert(_CRED).values(values))
    return _stored(_Row(values))


def get_credential(session: Session, /, *, credential_id: str) -> StoredCredential | None:
    """The stored credential ``credential_id``, or ``None``."""
    row = session.execute(select(_CRED).where(_CRED.c.id == credential_id)).one_or_none()
    return None if row is None else _stored(row)


def list_credentials(
    session: Session, /, *, user_id: str, enterprise_ids: Sequence[str] = (), vct: str | None = None
) -> tuple[StoredCredential, ...]:
    """What ``user_id`` may see: their own credentials, and the enterprise-held ones (no user) of
    ``enterprise_ids``; newest first."""
    mine = _CRED.c.user_id == user_id
    held = and_(_CRED.c.user_id.is_(None), _CRED.c.enterprise_id.in_(list(enterprise_ids)))
    query = select(_CRED).where(or_(mine, held) if enterprise_ids else mine)
    if vct is not None:
        query = query.where(_CRED.c.vct == vct)
    rows = session.execute(query.order_by(_CRED.c.received_at.desc(), _CRED.c.id.desc()))
    return tuple(_stored(r) for r in rows)


def list_enterprise_credentials(session: Session, /, *, enterprise_id: str, vct: str | None = None
                                ) -> tuple[StoredCredential, ...]:
    """Every credential concerning ``enterprise_id``, held by it or by one of its members; newest first."""
    query = select(_CRED).where(_CRED.c.enterprise_id == enterprise_id)
    if vct is not None:
        query = query.where(_CRED.c.vct == vct)
    rows = session.execute(query.order_by(_CRED.c.received_at.desc(), _CRED.c.id.desc()))
    return tuple(_stored(r) for r in rows)


def delete_credential(session: Session, /, *, credential_id: str) -> None:
    """Delete a stored credential (usage records keep its id). Raises ``NotFound``."""
    if session.execute(delete(_CRED).where(_CRED.c.id == credential_id)).rowcount != 1:
        raise NotFound(f"no credential {credential_id!r}")


def set_credential_status(
    session: Session, /, *, credential_id: str, status: CredentialStatus | str, checked_at: datetime
) -> StoredCredential:
    """Record the status last read from the credential's status list. Raises ``NotFound``, ``InvalidValue``."""
    value = _enum(CredentialStatus, "status", status).value
    result = session.execute(
        update(_CRED).where(_CRED.c.id == credential_id)
        .values(status=value, status_checked_at=_aware("checked_at", checked_at))
    )
    if result.rowcount != 1:
        raise NotFound(f"no credential {credential_id!r}")
    stored = get_credential(session, credential_id=credential_id)
    assert stored is not None
    return stored


# --- usage records --------------------------------------------------------------------------------------


def record_use(
    session: Session,
    /,
    *,
    record_id: str,
    enterprise_id: str | None,
    user_id: str,
    credential_ids: Sequence[str],
    channel: Channel | str,
    outcome: Outcome | str,
    at: datetime,
    verifier_client_id: str | None = None,
    verifier_name: str | None = None,
    purpose: str | None = None,
    disclosed: Sequence[str] = (),
    request_id: str | None = None,
    nonce: str | None = None,
) -> UsageRecord:
    """Append a usage record (用照记录). Raises ``InvalidValue``, ``Conflict`` (no such user or enterprise)."""
    values = {
        "id": _text("record_id", record_id, max_len=36),
        "enterprise_id": enterprise_id,
        "user_id": user_id,
        "credential_ids": _strings("credential_ids", credential_ids, max_items=20, max_len=36),
        "channel": _enum(Channel, "channel", channel).value,
        "verifier_client_id": _text("verifier_client_id", verifier_client_id, max_len=512, optional=True),
        "verifier_name": _text("verifier_name", verifier_name, max_len=200, optional=True),
        "purpose": _text("purpose", purpose, max_len=500, optional=True),
        "disclosed": _strings("disclosed", disclosed, max_items=200, max_len=200),
        "request_id": _text("request_id", request_id, max_len=200, optional=True),
        "nonce": _text("nonce", nonce, max_len=200, optional=True),
        "outcome": _enum(Outcome, "outcome", outcome).value,
        "at": _aware("at", at),
    }
    with _unique(session, Conflict("usage record id taken, or no such user or enterprise")):
        session.execute(insert(_USAGE).values(values))
    return _usage(_Row(values))


def list_usage(
    session: Session,
    /,
    *,
    enterprise_id: str | None = None,
    user_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[UsageRecord]:
    """Usage records, newest first: of an enterprise, of a user, or of a user within an enterprise.

    At least one filter is required. Raises ``InvalidValue`` (no filter, limit not 1-500, bad cursor).
    """
    if enterprise_id is None and user_id is None:
        raise InvalidValue("list usage records of an enterprise or of a user")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
        raise InvalidValue("limit must be an integer from 1 to 500")
    query = select(_USAGE)
    if enterprise_id is not None:
        query = query.where(_USAGE.c.enterprise_id == enterprise_id)
    if user_id is not None:
        query = query.where(_USAGE.c.user_id == user_id)
    if cursor is not None:
        at, ident = _after(cursor)
        query = query.where(or_(_USAGE.c.at < at, and_(_USAGE.c.at == at, _USAGE.c.id < ident)))
    rows = session.execute(query.order_by(_USAGE.c.at.desc(), _USAGE.c.id.desc()).limit(limit + 1)).all()
    items = tuple(_usage(r) for r in rows[:limit])
    return Page(items, _cursor(items[-1].at, items[-1].id) if len(rows) > limit else None)
