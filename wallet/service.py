"""The enterprise wallet's logic: accounts, sessions, the wallet PIN, holder keys, enterprises and their
members, stored credentials and the usage record (用照记录).

Pure decisions over ``wallet.store`` and the shared core; no web framework here (``wallet.api``
translates HTTP to these calls) and no SQLAlchemy (the store is the wallet's only database module).
The clock and the randomness are parameters.

Accounts. A user registers with a mainland mobile number (normalised to ``+86`` and 11 digits) and a
password of at least 10 characters (NFKC-normalised, so a full-width IME input matches its ASCII
form), stored as ``scrypt$n=<N>,r=<r>,p=<p>$<salt>$<hash>``: the parameters travel with the hash, so
the policy can raise them and old hashes are upgraded at the next sign-in. Sign-in answers an opaque
access token (15 minutes) and an opaque refresh token (30 days); only their SHA-256 is stored.
Refresh tokens rotate: using one answers a new pair and retires it; presenting a retired one again
is taken as theft and revokes its whole family (the sign-in session), as OAuth 2.0 Security BCP
(RFC 9700 s4.14.2) recommends. Sign-out revokes the family.

Attempts. A failed sign-in or PIN attempt is counted and committed *before* the secret is compared
(as the issuer counts transaction-code attempts); the fifth failure in a row locks the account (or
the PIN) for 15 minutes. An unknown phone number costs the same scrypt work as a wrong password, so
timing does not tell which numbers have accounts.

PIN. A 6-digit wallet PIN, set once and changed with the old one, confirms every presentation and
every authorisation. It is stored as ``hmac-sha256$<salt>$<mac>`` under a key derived from the KEK,
not with scrypt: a PIN has only 10^6 values, so any hash of it, however slow, falls to an offline
search once the database leaks (scrypt at 100 ms: about a day on one core), while a key that is never in
the database leaves the stored values useless without it; online guessing is what the lockout bounds.
That is how payment PINs are kept (keyed PIN verification values), and it costs microseconds, not the
100 ms of scrypt on every QR code shown. Older ``scrypt$`` PIN hashes still verify and are replaced at
the next confirmation. :meth:`WalletService.confirm_pin` answers a :class:`PinConfirmation`, which
:meth:`WalletService.signer_for` demands for a presentation. A confirmation carries a MAC under a
per-process key, so code cannot make one without the PIN; it is good for a short while only.

Keys. Holder keys are generated here (ES256) and kept in the encrypted keystore (``keys.keystore``)
on the wallet's tables, under the deployment's KEK. Owner ``user:<id>`` is a user's own key (personal
credentials, staff authorisations); ``enterprise:<id>`` is an enterprise's licence key, used by its
legal representative and administrators and, holding a valid authorisation, by its staff. No
private key ever leaves this module except inside a :class:`keys.signer.Signer`.

Tenancy. Every enterprise-scoped call checks membership first. An enterprise, credential or member
the caller has no access to is ``not_found``, exactly as an unknown id: nothing tells them it exists.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
import secrets
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from keys.jwk import b64u_decode, b64u_encode
from keys.keystore import Keystore, KeyState
from keys.signer import Signer
from schemas.errors import SchemaError
from schemas.registry import get_type
from schemas.uscc import validate_uscc
from wallet import store
from wallet.errors import (
    AccountLocked,
    AccountNotFound,
    AdministratorLimit,
    AdministratorRequired,
    AlreadyMember,
    AuthorisationRequired,
    Conflict,
    CredentialExists,
    EnterpriseClaimed,
    InvalidCredentials,
    InvalidPhone,
    InvalidRefreshToken,
    InvalidToken,
    InvalidUscc,
    InvalidValue,
    LegalRepresentativeFixed,
    LegalRepresentativeRequired,
    Locked,
    NotFound,
    PhoneTaken,
    PinAlreadySet,
    PinConfirmationRequired,
    PinFormatInvalid,
    PinInvalid,
    PinLocked,
    PinNotSet,
    PinTooSimple,
    TokenExpired,
    TokenRequired,
    WeakPassword,
)
from wallet.store import (
    AttemptKind,
    Enterprise,
    Member,
    Membership,
    Page,
    Role,
    StoredCredential,
    UsageRecord,
    User,
    unit_of_work,
)

__all__ = [
    "WalletPolicy",
    "WalletService",
    "SignerPurpose",
    "Principal",
    "TokenPair",
    "PinConfirmation",
    "Profile",
    "HolderKey",
    "normalise_phone",
    "hash_secret",
    "verify_secret",
    "secret_needs_rehash",
    "credential_hash",
    "hash_pin",
    "verify_pin",
    "STAFF_AUTHORISATION_VCT",
]

#: The ``vct`` of a staff authorisation (授权), the credential that lets staff use the licence key.
STAFF_AUTHORISATION_VCT = get_type("staff-authorisation").vct

_ACCESS_PREFIX = "wat_"
_REFRESH_PREFIX = "wrt_"
_MAX_TOKEN_LENGTH = 200
_PHONE_SEPARATORS = str.maketrans("", "", " -()\u00a0")
_DIGITS = frozenset("0123456789")
# Upper bounds on parameters read back from a stored hash: a tampered row must not make a sign-in
# allocate gigabytes.
_SCRYPT_MAX = {"n": 2**20, "r": 32, "p": 16}


# --- policy and values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WalletPolicy:
    """Lifetimes (seconds), attempt limits and the scrypt cost; the defaults are the production values.

    Tests lower ``scrypt_n`` for speed; the stored hashes name their parameters, so raising the cost
    later upgrades each password at its owner's next sign-in.
    """

    scrypt_n: int = 2**15
    scrypt_r: int = 8
    scrypt_p: int = 1
    min_password_length: int = 10
    max_password_length: int = 256
    access_token_ttl: int = 15 * 60
    refresh_token_ttl: int = 30 * 86400
    max_sign_in_failures: int = 5
    sign_in_lockout: int = 15 * 60
    max_pin_failures: int = 5
    pin_lockout: int = 15 * 60
    pin_confirmation_ttl: int = 120
    max_administrators: int = 5
    holder_key_alg: str = "ES256"

    def __post_init__(self) -> None:
        n = self.scrypt_n
        if isinstance(n, bool) or not isinstance(n, int) or n < 2 or n & (n - 1) or n > _SCRYPT_MAX["n"]:
            raise ValueError("scrypt_n must be a power of 2 from 2 to 2^20")
        if not 1 <= self.scrypt_r <= _SCRYPT_MAX["r"] or not 1 <= self.scrypt_p <= _SCRYPT_MAX["p"]:
            raise ValueError("scrypt_r must be 1-32 and scrypt_p 1-16")


class SignerPurpose(enum.StrEnum):
    """What a holder key signs: an OpenID4VCI key proof (receiving), or a key-binding JWT (presenting)."""

    KEY_PROOF = "key_proof"
    PRESENTATION = "presentation"


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in caller of a request: the user and the sign-in session their token belongs to."""

    user: User
    session_id: str


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a sign-in or a refresh answers; the tokens are shown once (only their hashes are kept)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    refresh_expires_in: int
    user: User
    token_type: str = "Bearer"


@dataclass(frozen=True, slots=True)
class PinConfirmation:
    """Proof that ``user_id`` entered the right wallet PIN at ``at``; made only by ``confirm_pin``."""

    user_id: str
    at: datetime
    mac: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Profile:
    """``GET /wallet/me``: the user, whether the PIN is set, and their enterprises with roles."""

    user: User
    pin_set: bool
    memberships: tuple[Membership, ...]


@dataclass(frozen=True, slots=True)
class HolderKey:
    """A holder key's public half (the private half never leaves the keystore)."""

    kid: str
    owner: str
    alg: str
    state: str
    public_jwk: Mapping[str, str]
    created_at: datetime


# --- pure helpers ---------------------------------------------------------------------------------------


def normalise_phone(text: Any) -> str:
    """``+86`` and the 11 digits of a mainland mobile number (spaces, dashes, ``+86``/``0086``/``86`` allowed).

    Raises ``InvalidPhone`` for anything else (other countries, landlines, wrong length, non-ASCII digits).
    """
    if not isinstance(text, str) or len(text) > 32:
        raise InvalidPhone()
    compact = text.strip().translate(_PHONE_SEPARATORS)
    for prefix in ("+86", "0086"):
        if compact.startswith(prefix):
            compact = compact[len(prefix):]
            break
    else:
        if len(compact) == 13 and compact.startswith("86"):
            compact = compact[2:]
    # Mainland mobile numbers: 11 digits, "1" then a second digit 3-9 (MIIT numbering plan).
    if len(compact) != 11 or not set(compact) <= _DIGITS or compact[0] != "1" or compact[1] in "012":
        raise InvalidPhone()
    return "+86" + compact


def _maxmem(n: int, r: int, p: int) -> int:
    # OpenSSL refuses unless 128*r*(N+2) + 128*r*p fits; leave room for its bookkeeping.
    return 128 * r * (n + 2 + p) + 1024 * 1024


def hash_secret(secret: str, *, salt: bytes, policy: WalletPolicy) -> str:
    """``scrypt$n=..,r=..,p=..$<salt>$<hash>`` of ``secret`` (UTF-8) with the policy's cost (RFC 7914)."""
    n, r, p = policy.scrypt_n, policy.scrypt_r, policy.scrypt_p
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_maxmem(n, r, p), dklen=32)
    return f"scrypt$n={n},r={r},p={p}${b64u_encode(salt)}${b64u_encode(digest)}"


def _parse_hash(stored: str) -> tuple[dict[str, int], bytes, bytes]:
    try:
        scheme, params, salt, digest = stored.split("$")
        values = {k: int(v) for k, v in (item.split("=") for item in params.split(","))}
        if scheme != "scrypt" or set(values) != {"n", "r", "p"}:
            raise ValueError("not scrypt")
        if any(not 1 <= values[k] <= _SCRYPT_MAX[k] for k in values):
            raise ValueError("parameters out of range")
        return values, b64u_decode(salt), b64u_decode(digest)
    except ValueError as exc:
        raise InvalidValue("the stored secret is not a scrypt hash of this wallet") from exc


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches ``stored`` (its own scrypt parameters), compared in constant time."""
    params, salt, expected = _parse_hash(stored)
    n, r, p = params["n"], params["r"], params["p"]
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_maxmem(n, r, p),
                            dklen=len(expected))
    return hmac.compare_digest(digest, expected)


def secret_needs_rehash(stored: str, policy: WalletPolicy) -> bool:
    """Whether ``stored`` was made with other scrypt parameters than the policy's."""
    params, _salt, _digest = _parse_hash(stored)
    return (params["n"], params["r"], params["p"]) != (policy.scrypt_n, policy.scrypt_r, policy.scrypt_p)


_PIN_SCHEME = "hmac-sha256"


def hash_pin(pin: str, *, salt: bytes, key: bytes) -> str:
    """``hmac-sha256$<salt>$<mac>``: HMAC-SHA256 under ``key`` of the salt and the PIN."""
    mac = hmac.new(key, salt + pin.encode("ascii"), hashlib.sha256).digest()
    return f"{_PIN_SCHEME}${b64u_encode(salt)}${b64u_encode(mac)}"


def verify_pin(pin: str, stored: str, *, key: bytes) -> bool:
    """Whether ``pin`` matches ``stored`` (keyed, or an older scrypt hash), compared in constant time."""
    if stored.startswith("scrypt$"):
        return verify_secret(pin, stored)
    try:
        scheme, salt, mac = stored.split("$")
        if scheme != _PIN_SCHEME:
            raise ValueError(scheme)
        salt_bytes = b64u_decode(salt)
    except ValueError as exc:
        raise InvalidValue("the stored PIN is not a PIN value of this wallet") from exc
    return hmac.compare_digest(hash_pin(pin, salt=salt_bytes, key=key), stored)


def credential_hash(text: str) -> str:
    """SHA-256 (hex) of a credential's issuer-signed JWT, the part before the first ``~``: the same for
    the credential and for any presentation of it."""
    return hashlib.sha256(text.split("~", 1)[0].encode("utf-8")).hexdigest()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_pin_format(pin: Any) -> str:
    if not isinstance(pin, str) or len(pin) != 6 or not set(pin) <= _DIGITS:
        raise PinFormatInvalid()
    return pin


def _check_new_pin(pin: Any) -> str:
    pin = _check_pin_format(pin)
    steps = {int(b) - int(a) for a, b in zip(pin, pin[1:])}
    # 000000, 123456, 987654: the first PINs anyone tries.
    if len(steps) == 1 and steps <= {-1, 0, 1}:
        raise PinTooSimple()
    return pin


def _text(name: str, value: Any, *, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > max_len:
        raise InvalidValue(f"{name} must be 1-{max_len} characters")
    return value.strip()


def _system_now() -> datetime:
    return datetime.now(timezone.utc)


def _user_owner(user_id: str) -> str:
    return f"user:{user_id}"


def _enterprise_owner(enterprise_id: str) -> str:
    return f"enterprise:{enterprise_id}"


_MANAGERS = frozenset({Role.LEGAL_REPRESENTATIVE, Role.ADMINISTRATOR})


# --- the service ----------------------------------------------------------------------------------------


class WalletService:
    """The wallet role over one database; thread-safe (state lives in the database).

    ``kek`` opens the keystore of holder keys (the same KEK source as the issuer's). ``policy``,
    ``clock`` and ``random_bytes`` are parameters for tests.
    """

    def __init__(
        self,
        *,
        sessions: store.Sessions,
        kek: bytes,
        policy: WalletPolicy = WalletPolicy(),
        clock: Callable[[], datetime] = _system_now,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._sessions = sessions
        self._kek = kek
        self.policy = policy
        self._clock = clock
        self._random = random_bytes
        # Signs PIN confirmations; per process, since a confirmation lives within one request.
        self._confirmation_key = secrets.token_bytes(32)
        # Keys the stored PIN values (see the module docstring); derived from the KEK, never stored.
        self._pin_key = hmac.new(kek, b"elicence wallet PIN v1", hashlib.sha256).digest()
        self._dummy_hash: str | None = None

    def now(self) -> datetime:
        """The service clock's time (timezone-aware)."""
        value = self._clock()
        if value.tzinfo is None:
            raise ValueError("the clock must return an aware datetime")
        return value

    def purge_expired(self) -> int:
        """Delete the access tokens that have expired (refresh tokens stay, see
        :func:`wallet.store.purge_expired_tokens`); how many rows went."""
        with unit_of_work(self._sessions) as tx:
            return store.purge_expired_tokens(tx, now=self.now())

    def _id(self) -> str:
        return str(uuid.UUID(bytes=self._random(16), version=4))

    def _secret(self, secret: str) -> str:
        return hash_secret(secret, salt=self._random(16), policy=self.policy)

    # -- accounts ----------------------------------------------------------------------------------------

    def _password(self, password: Any) -> str:
        if not isinstance(password, str):
            raise WeakPassword("the password must be a string")
        password = unicodedata.normalize("NFKC", password)
        if not self.policy.min_password_length <= len(password) <= self.policy.max_password_length:
            raise WeakPassword(f"the password must be {self.policy.min_password_length}-"
                               f"{self.policy.max_password_length} characters")
        return password

    def register(self, *, phone: str, password: str, display_name: str) -> User:
        """Create an account with its own holder key. Raises ``InvalidPhone``, ``WeakPassword``,
        ``InvalidValue`` (display name), ``PhoneTaken``."""
        phone = normalise_phone(phone)
        password = self._password(password)
        display_name = _text("display_name", display_name, max_len=100)
        password_hash = self._secret(password)  # slow on purpose: outside the transaction
        now = self.now()
        user_id = self._id()
        try:
            with unit_of_work(self._sessions) as tx:
                if store.get_user_by_phone(tx, phone=phone) is not None:
                    raise PhoneTaken()
                user = store.create_user(tx, user_id=user_id, phone=phone, display_name=display_name,
                                         password_hash=password_hash, now=now)
                self._keystore(_user_owner(user_id), tx).generate(self.policy.holder_key_alg, now=now,
                                                                  label="holder", owner=_user_owner(user_id))
        except PhoneTaken:
            raise
        except Conflict as exc:  # a parallel registration of the same number won
            raise PhoneTaken() from exc
        return user

    def _claim(self, user_id: str, kind: AttemptKind, locked: type[Locked]) -> store.Attempt:
        """Count an attempt in its own committed transaction; ``locked`` if a lockout is running."""
        max_failures, lockout = (
            (self.policy.max_sign_in_failures, self.policy.sign_in_lockout) if kind is AttemptKind.SIGN_IN
            else (self.policy.max_pin_failures, self.policy.pin_lockout)
        )
        try:
            with unit_of_work(self._sessions) as tx:
                return store.claim_attempt(tx, user_id=user_id, kind=kind, max_failures=max_failures,
                                           lockout=timedelta(seconds=lockout), now=self.now())
        except Locked as exc:
            raise locked(retry_after=exc.retry_after) from exc

    def _failed(self, attempt: store.Attempt, max_failures: int, locked: type[Locked],
                wrong: type[InvalidCredentials] | type[PinInvalid]) -> Exception:
        """The error of a wrong secret: the lockout when this was the last attempt allowed."""
        if attempt.locked_until is not None:
            return locked(retry_after=math.ceil((attempt.locked_until - self.now()).total_seconds()))
        left = max_failures - attempt.failures
        return wrong(f"{wrong.description} {left} attempt{'s' if left != 1 else ''} left.")

    def sign_in(self, *, phone: str, password: str) -> TokenPair:
        """Check the password and open a session. Raises ``InvalidPhone``, ``InvalidCredentials``,
        ``AccountLocked`` (with ``retry_after``)."""
        phone = normalise_phone(phone)
        with unit_of_work(self._sessions, read_only=True) as tx:
            user = store.get_user_by_phone(tx, phone=phone)
        candidate = unicodedata.normalize("NFKC", password) if isinstance(password, str) else ""
        if user is None:
            verify_secret(candidate, self._dummy())  # same cost as a wrong password: no account oracle
            raise InvalidCredentials()
        # Counted and committed before the comparison: a guess costs an attempt even if this request dies.
        attempt = self._claim(user.id, AttemptKind.SIGN_IN, AccountLocked)
        if not verify_secret(candidate, user.password_hash):
            raise self._failed(attempt, self.policy.max_sign_in_failures, AccountLocked, InvalidCredentials)
        now = self.now()
        session_id = self._id()
        with unit_of_work(self._sessions) as tx:
            store.reset_attempts(tx, user_id=user.id, kind=AttemptKind.SIGN_IN, now=now)
            if secret_needs_rehash(user.password_hash, self.policy):
                store.set_password_hash(tx, user_id=user.id, password_hash=self._secret(candidate), now=now)
            store.create_session(tx, session_id=session_id, user_id=user.id, now=now)
            pair = self._issue(tx, user, session_id, now)
        return pair

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = hash_secret("no such account", salt=bytes(16), policy=self.policy)
        return self._dummy_hash

    def _issue(self, tx: Any, user: User, session_id: str, now: datetime) -> TokenPair:
        access = _ACCESS_PREFIX + b64u_encode(self._random(32))
        refresh = _REFRESH_PREFIX + b64u_encode(self._random(32))
        store.add_access_token(tx, token_hash=_token_hash(access), session_id=session_id,
                               expires_at=now + timedelta(seconds=self.policy.access_token_ttl))
        store.add_refresh_token(tx, token_hash=_token_hash(refresh), session_id=session_id, issued_at=now,
                                expires_at=now + timedelta(seconds=self.policy.refresh_token_ttl))
        return TokenPair(access, refresh, self.policy.access_token_ttl, self.policy.refresh_token_ttl, user)

    def refresh(self, *, refresh_token: str) -> TokenPair:
        """Rotate a refresh token: a new pair, the old token retired. Raises ``InvalidRefreshToken``;
        a retired token presented again revokes its whole session first."""
        if (not isinstance(refresh_token, str) or not refresh_token.startswith(_REFRESH_PREFIX)
                or len(refresh_token) > _MAX_TOKEN_LENGTH):
            raise InvalidRefreshToken()
        now = self.now()
        reused = False
        with unit_of_work(self._sessions) as tx:
            row = store.lock_refresh_token(tx, token_hash=_token_hash(refresh_token))
            if row is None or row.session_revoked_at is not None:
                raise InvalidRefreshToken()
            if row.used_at is not None:
                # RFC 9700 s4.14.2: a rotated-out token used again means two parties hold the family.
                store.revoke_session(tx, session_id=row.session_id, reason="refresh_reuse", now=now)
                reused = True
            elif row.expires_at <= now:
                raise InvalidRefreshToken("the refresh token has expired; sign in again")
            else:
                store.mark_refresh_token_used(tx, token_hash=row.token_hash, now=now)
                user = store.get_user(tx, user_id=row.user_id)
                assert user is not None
                pair = self._issue(tx, user, row.session_id, now)
        if reused:  # raised after the commit, so that the revocation stays
            raise InvalidRefreshToken("the refresh token was already used; every session token is revoked")
        return pair

    def sign_out(self, principal: Principal) -> None:
        """Revoke the caller's session: its access tokens and its refresh token family."""
        with unit_of_work(self._sessions) as tx:
            store.revoke_session(tx, session_id=principal.session_id, reason="sign_out", now=self.now())

    def authenticate(self, access_token: str | None) -> Principal:
        """The caller of a bearer access token. Raises ``TokenRequired``, ``InvalidToken``, ``TokenExpired``."""
        if access_token is None or access_token == "":
            raise TokenRequired()
        if not access_token.startswith(_ACCESS_PREFIX) or len(access_token) > _MAX_TOKEN_LENGTH:
            raise InvalidToken()
        with unit_of_work(self._sessions, read_only=True) as tx:
            row = store.find_access_token(tx, token_hash=_token_hash(access_token))
            if row is None or row.session_revoked_at is not None:
                raise InvalidToken()
            if row.expires_at <= self.now():
                raise TokenExpired()
            user = store.get_user(tx, user_id=row.user_id)
        if user is None:  # pragma: no cover - the foreign key keeps the user
            raise InvalidToken()
        return Principal(user, row.session_id)

    def me(self, user: User) -> Profile:
        """The user as stored now, whether their PIN is set, and their enterprises with roles."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            current = store.get_user(tx, user_id=user.id)
            memberships = store.memberships_of(tx, user_id=user.id)
        if current is None:
            raise NotFound("no such account")
        return Profile(current, current.pin_hash is not None, memberships)

    # -- the wallet PIN ----------------------------------------------------------------------------------

    def set_pin(self, user: User, *, pin: str, old_pin: str | None = None) -> None:
        """Set the wallet PIN (first time) or change it (``old_pin`` confirms). Raises ``PinFormatInvalid``,
        ``PinTooSimple``, ``PinAlreadySet`` (set, no ``old_pin``), and what :meth:`confirm_pin` raises."""
        pin = _check_new_pin(pin)
        pin_hash = hash_pin(pin, salt=self._random(16), key=self._pin_key)
        if old_pin is not None:
            self.confirm_pin(user, old_pin)
            with unit_of_work(self._sessions) as tx:
                store.set_pin_hash(tx, user_id=user.id, pin_hash=pin_hash, now=self.now())
            return
        with unit_of_work(self._sessions) as tx:
            # Conditional: of two first settings racing, one wins and the other is told the PIN is set.
            if not store.set_pin_hash(tx, user_id=user.id, pin_hash=pin_hash, now=self.now(), only_if_unset=True):
                raise PinAlreadySet()

    def confirm_pin(self, user: User, pin: str) -> PinConfirmation:
        """Check the wallet PIN before a presentation or an authorisation. Raises ``PinFormatInvalid``,
        ``PinNotSet``, ``PinInvalid``, ``PinLocked`` (with ``retry_after``)."""
        pin = _check_pin_format(pin)
        with unit_of_work(self._sessions, read_only=True) as tx:
            current = store.get_user(tx, user_id=user.id)
        if current is None:
            raise NotFound("no such account")
        if current.pin_hash is None:
            raise PinNotSet()
        attempt = self._claim(user.id, AttemptKind.PIN, PinLocked)
        if not verify_pin(pin, current.pin_hash, key=self._pin_key):
            raise self._failed(attempt, self.policy.max_pin_failures, PinLocked, PinInvalid)
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            store.reset_attempts(tx, user_id=user.id, kind=AttemptKind.PIN, now=now)
            if not current.pin_hash.startswith(_PIN_SCHEME):
                store.set_pin_hash(tx, user_id=user.id, pin_hash=hash_pin(pin, salt=self._random(16), key=self._pin_key),
                                   now=now)
        return PinConfirmation(user.id, now, self._confirmation_mac(user.id, now))

    def _confirmation_mac(self, user_id: str, at: datetime) -> bytes:
        message = f"{user_id}|{at.astimezone(timezone.utc).isoformat()}".encode()
        return hmac.new(self._confirmation_key, message, hashlib.sha256).digest()

    def _check_confirmation(self, user: User, confirmation: PinConfirmation | None) -> None:
        if (
            not isinstance(confirmation, PinConfirmation)
            or confirmation.user_id != user.id
            or not hmac.compare_digest(confirmation.mac, self._confirmation_mac(user.id, confirmation.at))
        ):
            raise PinConfirmationRequired()
        age = (self.now() - confirmation.at).total_seconds()
        if not 0 <= age <= self.policy.pin_confirmation_ttl:
            raise PinConfirmationRequired("the PIN confirmation has expired; enter the PIN again")

    # -- enterprises and members -------------------------------------------------------------------------

    def _membership(self, tx: Any, user: User, enterprise_id: str) -> Member:
        member = store.get_member(tx, enterprise_id=enterprise_id, user_id=user.id) if isinstance(enterprise_id, str) else None
        if member is None:
            # Another enterprise's id answers exactly as an unknown one.
            raise NotFound("no such enterprise")
        return member

    def enterprise(self, user: User, *, enterprise_id: str) -> Enterprise:
        """An enterprise the user is a member of. Raises ``NotFound``."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            self._membership(tx, user, enterprise_id)
            found = store.get_enterprise(tx, enterprise_id=enterprise_id)
        if found is None:  # pragma: no cover - a membership implies its enterprise (foreign key)
            raise NotFound("no such enterprise")
        return found

    def staff_key(self, user: User, *, enterprise_id: str, member_id: str) -> tuple[User, Signer]:
        """A staff member of the enterprise and the signer of their own key, for the key proof that
        receives the authorisation granted to them (the custodial wallet acts for them in that one step).

        Only the legal representative or an administrator. Raises ``NotFound`` (not a member, or not
        staff of this enterprise), ``AdministratorRequired``.
        """
        with unit_of_work(self._sessions, read_only=True) as tx:
            actor = self._membership(tx, user, enterprise_id)
            if actor.role not in _MANAGERS:
                raise AdministratorRequired("only the legal representative or an administrator authorises staff")
            member = store.get_member(tx, enterprise_id=enterprise_id, user_id=member_id) if isinstance(member_id, str) else None
            if member is None or member.role is not Role.STAFF:
                raise NotFound("no such staff member of this enterprise")
            staff = store.get_user(tx, user_id=member_id)
        assert staff is not None
        return staff, self.signer_for(staff, purpose=SignerPurpose.KEY_PROOF)

    def enterprise_authorisation(self, user: User, *, enterprise_id: str, credential_id: str) -> StoredCredential:
        """A staff authorisation granted under the enterprise (held by a staff member), for its legal
        representative or an administrator. Raises ``NotFound``, ``AdministratorRequired``."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            actor = self._membership(tx, user, enterprise_id)
            if actor.role not in _MANAGERS:
                raise AdministratorRequired("only the legal representative or an administrator withdraws authorisations")
            found = store.get_credential(tx, credential_id=credential_id) if isinstance(credential_id, str) else None
        if found is None or found.enterprise_id != enterprise_id or found.vct != STAFF_AUTHORISATION_VCT:
            raise NotFound("no such authorisation of this enterprise")
        return found

    def enterprise_authorisations(self, user: User, *, enterprise_id: str) -> tuple[StoredCredential, ...]:
        """Every staff authorisation of the enterprise in this wallet (legal representative, administrators)."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            actor = self._membership(tx, user, enterprise_id)
            if actor.role not in _MANAGERS:
                raise AdministratorRequired("only the legal representative or an administrator sees authorisations")
            return store.list_enterprise_credentials(tx, enterprise_id=enterprise_id, vct=STAFF_AUTHORISATION_VCT)

    def claim_enterprise(self, user: User, *, uscc: str, name: str) -> Enterprise:
        """Create the enterprise with ``user`` as its legal representative, and its licence key.

        Claiming again as its legal representative answers the same enterprise. Raises ``InvalidUscc``,
        ``InvalidValue`` (name), ``EnterpriseClaimed`` (the USCC is another user's).
        """
        try:
            validate_uscc(uscc)
        except SchemaError as exc:
            raise InvalidUscc(str(exc)) from exc
        name = _text("name", name, max_len=200)
        now = self.now()
        enterprise_id = self._id()
        try:
            with unit_of_work(self._sessions) as tx:
                existing = store.get_enterprise_by_uscc(tx, uscc=uscc)
                if existing is not None:
                    member = store.get_member(tx, enterprise_id=existing.id, user_id=user.id)
                    if member is not None and member.role is Role.LEGAL_REPRESENTATIVE:
                        return existing
                    raise EnterpriseClaimed()
                enterprise = store.create_enterprise(tx, enterprise_id=enterprise_id, uscc=uscc, name=name,
                                                     legal_representative=user.id, now=now)
                owner = _enterprise_owner(enterprise_id)
                self._keystore(owner, tx).generate(self.policy.holder_key_alg, now=now, label="licence", owner=owner)
        except EnterpriseClaimed:
            raise
        except Conflict as exc:  # a parallel claim of the same USCC won
            raise EnterpriseClaimed() from exc
        return enterprise

    def members(self, user: User, *, enterprise_id: str) -> tuple[Member, ...]:
        """The enterprise's members. Raises ``NotFound`` (not a member), ``AdministratorRequired`` (staff)."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            if self._membership(tx, user, enterprise_id).role not in _MANAGERS:
                raise AdministratorRequired()
            return store.list_members(tx, enterprise_id=enterprise_id)

    def add_member(self, user: User, *, enterprise_id: str, phone: str, role: Role | str) -> Member:
        """Add the account with ``phone`` as ``administrator`` (legal representative only; at most
        ``max_administrators``) or ``staff`` (legal representative or administrator), or change an existing
        member to that role. Raises ``NotFound``, ``InvalidValue``, ``InvalidPhone``, ``AccountNotFound``,
        ``LegalRepresentativeRequired``, ``AdministratorRequired``, ``AlreadyMember``, ``AdministratorLimit``,
        ``LegalRepresentativeFixed``."""
        try:
            target_role = Role(role)
        except ValueError:
            target_role = None
        if target_role not in (Role.ADMINISTRATOR, Role.STAFF):
            raise InvalidValue("role must be 'administrator' or 'staff'")
        phone = normalise_phone(phone)
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            actor = self._membership(tx, user, enterprise_id)
            store.lock_enterprise(tx, enterprise_id=enterprise_id)
            self._require_manager(actor, target_role)
            target = store.get_user_by_phone(tx, phone=phone)
            if target is None:
                raise AccountNotFound()
            existing = store.get_member(tx, enterprise_id=enterprise_id, user_id=target.id)
            if existing is not None:
                if existing.role is Role.LEGAL_REPRESENTATIVE:
                    raise LegalRepresentativeFixed()
                if existing.role is target_role:
                    raise AlreadyMember()
                self._require_manager(actor, existing.role)  # demoting an administrator is the LR's call
            if target_role is Role.ADMINISTRATOR and (
                store.count_role(tx, enterprise_id=enterprise_id, role=Role.ADMINISTRATOR) >= self.policy.max_administrators
            ):
                raise AdministratorLimit()
            if existing is not None:
                return store.set_member_role(tx, enterprise_id=enterprise_id, user_id=target.id, role=target_role)
            return store.add_member(tx, enterprise_id=enterprise_id, user_id=target.id, role=target_role,
                                    added_by=user.id, now=now)

    @staticmethod
    def _require_manager(actor: Member, role: Role) -> None:
        """Administrators are managed by the legal representative; staff by them or an administrator."""
        if role is Role.ADMINISTRATOR and actor.role is not Role.LEGAL_REPRESENTATIVE:
            raise LegalRepresentativeRequired()
        if actor.role not in _MANAGERS:
            raise AdministratorRequired()

    def remove_member(self, user: User, *, enterprise_id: str, member_id: str) -> None:
        """Remove a member (anyone but the legal representative may also leave). Raises ``NotFound``
        (not a member, no such member), ``LegalRepresentativeFixed``, ``LegalRepresentativeRequired``,
        ``AdministratorRequired``."""
        with unit_of_work(self._sessions) as tx:
            actor = self._membership(tx, user, enterprise_id)
            store.lock_enterprise(tx, enterprise_id=enterprise_id)
            target = store.get_member(tx, enterprise_id=enterprise_id, user_id=member_id) if isinstance(member_id, str) else None
            if target is None:
                raise NotFound("no such member")
            if target.role is Role.LEGAL_REPRESENTATIVE:
                raise LegalRepresentativeFixed()
            if target.user_id != user.id:
                self._require_manager(actor, target.role)
            store.remove_member(tx, enterprise_id=enterprise_id, user_id=target.user_id)

    # -- holder keys -------------------------------------------------------------------------------------

    def _keystore(self, owner: str, tx: Any = None) -> Keystore:
        records = store.SqlKeyRecordStore(self._sessions, owner)
        return Keystore(records if tx is None else records.using(tx), self._kek)

    def holder_keys(self, user: User) -> tuple[HolderKey, ...]:
        """The public halves of the user's own key and of the licence keys of their enterprises."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            owners = [_user_owner(user.id)] + [
                _enterprise_owner(m.enterprise.id) for m in store.memberships_of(tx, user_id=user.id)
            ]
            out = []
            for owner in owners:
                keystore = self._keystore(owner, tx)
                for record in keystore.list(owner=owner, states=(KeyState.ACTIVE, KeyState.RETIRED)):
                    out.append(HolderKey(record.kid, owner, record.alg, record.state.value,
                                         keystore.public_jwk(record.kid), record.created_at))
        return tuple(out)

    def signer_for(
        self,
        user: User,
        *,
        purpose: SignerPurpose | str,
        enterprise_id: str | None = None,
        confirmation: PinConfirmation | None = None,
    ) -> Signer:
        """The signer of the holder key ``user`` may use: their own (no ``enterprise_id``) or the
        enterprise's licence key.

        A ``presentation`` needs a fresh :class:`PinConfirmation` of ``user``. On the licence key, the
        legal representative and administrators may sign anything; staff only presentations, and only
        while they hold a valid staff authorisation of that enterprise. Raises ``InvalidValue``,
        ``PinConfirmationRequired``, ``NotFound`` (not a member), ``AdministratorRequired``,
        ``AuthorisationRequired``.
        """
        try:
            purpose = SignerPurpose(purpose)
        except ValueError as exc:
            raise InvalidValue(f"purpose must be one of {[p.value for p in SignerPurpose]}") from exc
        if purpose is SignerPurpose.PRESENTATION:
            self._check_confirmation(user, confirmation)
        now = self.now()
        # Read-only: presenting must not queue behind the database's writers (SQLite has one at a time).
        with unit_of_work(self._sessions, read_only=True) as tx:
            if enterprise_id is None:
                owner = _user_owner(user.id)
            else:
                member = self._membership(tx, user, enterprise_id)
                if member.role is Role.STAFF:
                    if purpose is SignerPurpose.KEY_PROOF:
                        raise AdministratorRequired("staff cannot receive credentials into the licence key")
                    if not self._authorised(tx, user, enterprise_id, now):
                        raise AuthorisationRequired()
                owner = _enterprise_owner(enterprise_id)
            keystore = self._keystore(owner, tx)
            active = keystore.list(owner=owner, states=(KeyState.ACTIVE,))
            if active:
                return keystore.signer(max(active, key=lambda r: (r.created_at, r.kid)).kid)
        with unit_of_work(self._sessions) as tx:  # an account or enterprise made before its key: make it now
            keystore = self._keystore(owner, tx)
            return keystore.signer(keystore.generate(self.policy.holder_key_alg, now=now, label="holder", owner=owner))

    @staticmethod
    def _authorised(tx: Any, user: User, enterprise_id: str, now: datetime) -> bool:
        for c in store.list_credentials(tx, user_id=user.id, vct=STAFF_AUTHORISATION_VCT):
            if (c.enterprise_id == enterprise_id and c.status in (None, store.CredentialStatus.VALID)
                    and (c.expires_at is None or c.expires_at > now)):
                return True
        return False

    # -- credentials -------------------------------------------------------------------------------------

    def store_credential(
        self,
        user: User,
        *,
        credential: str,
        vct: str,
        issuer: str,
        configuration_id: str,
        holder_kid: str,
        enterprise_id: str | None = None,
        expires_at: datetime | int | float | None = None,
        status_list_uri: str | None = None,
        status_list_idx: int | None = None,
    ) -> StoredCredential:
        """Keep a credential the receive flow has validated (signature, trusted issuer, type, key binding).

        Who holds it follows from the key it is bound to: ``holder_kid`` of the enterprise's licence key
        (legal representative or administrator only) makes it the enterprise's; the user's own key makes
        it the user's (concerning ``enterprise_id`` when given, e.g. a staff authorisation). ``expires_at``
        may be the credential's ``exp`` (seconds since the epoch). Raises
        ``NotFound`` (not a member, not a key of that owner), ``AdministratorRequired``, ``InvalidValue``,
        ``CredentialExists``.
        """
        if not isinstance(credential, str) or not credential:
            raise InvalidValue("credential must be the SD-JWT VC text")
        if isinstance(expires_at, (int, float)) and not isinstance(expires_at, bool):
            expires_at = datetime.fromtimestamp(expires_at, tz=timezone.utc)
        now = self.now()
        with unit_of_work(self._sessions) as tx:
            owner_user: str | None = user.id
            if enterprise_id is not None:
                member = self._membership(tx, user, enterprise_id)
                if self._holds(tx, _enterprise_owner(enterprise_id), holder_kid):
                    if member.role not in _MANAGERS:
                        raise AdministratorRequired("only the legal representative or an administrator keeps the licence")
                    owner_user = None
            if owner_user is not None and not self._holds(tx, _user_owner(user.id), holder_kid):
                raise NotFound("no such holder key")
            try:
                return store.add_credential(
                    tx, credential_id=self._id(), enterprise_id=enterprise_id, user_id=owner_user,
                    holder_kid=holder_kid, vct=vct, issuer=issuer, configuration_id=configuration_id,
                    credential=credential, credential_hash=credential_hash(credential), received_at=now,
                    expires_at=expires_at, status_list_uri=status_list_uri, status_list_idx=status_list_idx,
                )
            except Conflict as exc:
                raise CredentialExists() from exc

    def _holds(self, tx: Any, owner: str, kid: Any) -> bool:
        return isinstance(kid, str) and store.SqlKeyRecordStore(self._sessions, owner).using(tx).get(kid) is not None

    def _roles(self, tx: Any, user: User) -> dict[str, Role]:
        return {m.enterprise.id: m.role for m in store.memberships_of(tx, user_id=user.id)}

    def credentials(self, user: User, *, enterprise_id: str | None = None) -> tuple[StoredCredential, ...]:
        """What the user may see (own credentials, their enterprises' licences), newest first; with
        ``enterprise_id``, only those concerning that enterprise. Raises ``NotFound`` (not a member)."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            roles = self._roles(tx, user)
            if enterprise_id is not None:
                self._membership(tx, user, enterprise_id)
                items = store.list_credentials(tx, user_id=user.id, enterprise_ids=[enterprise_id])
                return tuple(c for c in items if c.enterprise_id == enterprise_id)
            return store.list_credentials(tx, user_id=user.id, enterprise_ids=sorted(roles))

    def _visible(self, tx: Any, user: User, credential_id: str) -> tuple[StoredCredential, Role | None]:
        """The credential and the user's role over it (``None``: their own); ``NotFound`` otherwise."""
        found = store.get_credential(tx, credential_id=credential_id) if isinstance(credential_id, str) else None
        if found is not None:
            if found.user_id is not None:
                if found.user_id == user.id:
                    return found, None
            else:
                member = store.get_member(tx, enterprise_id=found.enterprise_id, user_id=user.id)
                if member is not None:
                    return found, member.role
        raise NotFound("no such credential")

    def credential(self, user: User, *, credential_id: str) -> StoredCredential:
        """One credential the user may see. Raises ``NotFound``."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            return self._visible(tx, user, credential_id)[0]

    def delete_credential(self, user: User, *, credential_id: str) -> None:
        """Remove a credential from the wallet (an enterprise's: legal representative or administrator).
        Raises ``NotFound``, ``AdministratorRequired``."""
        with unit_of_work(self._sessions) as tx:
            found, role = self._visible(tx, user, credential_id)
            if found.user_id is None and role not in _MANAGERS:
                raise AdministratorRequired()
            store.delete_credential(tx, credential_id=found.id)

    def record_status(self, credential_id: str, *, status: store.CredentialStatus | str) -> StoredCredential:
        """Keep the status just read from a credential's status list (for the status checker). Raises
        ``NotFound``, ``InvalidValue``."""
        with unit_of_work(self._sessions) as tx:
            return store.set_credential_status(tx, credential_id=credential_id, status=status, checked_at=self.now())

    # -- usage record (用照记录) --------------------------------------------------------------------------

    def record_use(
        self,
        user: User,
        *,
        channel: store.Channel | str,
        outcome: store.Outcome | str,
        credential_ids: Sequence[str],
        enterprise_id: str | None = None,
        verifier_client_id: str | None = None,
        verifier_name: str | None = None,
        purpose: str | None = None,
        disclosed: Sequence[str] = (),
        request_id: str | None = None,
        nonce: str | None = None,
    ) -> UsageRecord:
        """Append a usage record of a presentation ``user`` made. Every credential must be one they may
        see. Raises ``NotFound`` (not a member, unknown credential), ``InvalidValue``."""
        with unit_of_work(self._sessions) as tx:
            if enterprise_id is not None:
                self._membership(tx, user, enterprise_id)
            if isinstance(credential_ids, (str, bytes)):
                raise InvalidValue("credential_ids must be a list")
            for credential_id in credential_ids:
                self._visible(tx, user, credential_id)
            return store.record_use(
                tx, record_id=self._id(), enterprise_id=enterprise_id, user_id=user.id,
                credential_ids=list(credential_ids), channel=channel, outcome=outcome, at=self.now(),
                verifier_client_id=verifier_client_id, verifier_name=verifier_name, purpose=purpose,
                disclosed=list(disclosed), request_id=request_id, nonce=nonce,
            )

    def usage(
        self, user: User, *, enterprise_id: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[UsageRecord]:
        """Usage records, newest first: of the enterprise (all of them for its legal representative and
        administrators, their own for staff), or without ``enterprise_id`` the user's own. Raises
        ``NotFound``, ``InvalidValue`` (limit, cursor)."""
        with unit_of_work(self._sessions, read_only=True) as tx:
            if enterprise_id is None:
                return store.list_usage(tx, user_id=user.id, limit=limit, cursor=cursor)
            member = self._membership(tx, user, enterprise_id)
            own = None if member.role in _MANAGERS else user.id
            return store.list_usage(tx, enterprise_id=enterprise_id, user_id=own, limit=limit, cursor=cursor)
