"""Keystore: signing keys whose private halves are encrypted at rest with AES-256-GCM (NIST SP 800-38D).

Each private key is stored as the AES-GCM encryption of its private JWK under a 32-byte key-encryption
key (KEK). The KEK comes from the environment (``ELICENCE_KEK``, base64url) or from a file named by
``ELICENCE_KEK_FILE``; it is never written beside the keys (DESIGN.md, security model).

Integrity, so that nothing here ever returns garbage:

* every record's ciphertext is bound to its ``kid``, ``alg`` and ``owner`` through AES-GCM associated
  data, so a ciphertext moved to another record (or a key moved to another owner) fails its tag;
* ``kid`` is the RFC 7638 thumbprint of the stored public JWK, so the public half cannot be swapped
  without changing the bound ``kid``;
* the store's header holds a KEK check value (an AES-GCM encryption of a fixed label), so a wrong KEK
  (``keystore_wrong_kek``) is told apart from a tampered record (``keystore_tampered``).

Key states: ``active`` signs and verifies; ``retired`` only verifies (stays in the JWKS until the
credentials it signed expire); ``revoked`` is never published again. Transitions go one way:
active -> retired -> revoked, or active -> revoked.

Storage is a :class:`KeyRecordStore`: a JSON file (:class:`FileKeyRecordStore`) or memory
(:class:`InMemoryKeyRecordStore`) here; the service roles implement the protocol on their tables.
The AES-GCM nonces are drawn from the OS inside this module on purpose: a nonce that callers could
choose is a nonce that can repeat, and a repeated nonce under one KEK breaks GCM.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import tempfile
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import (
    InvalidKeyMaterial,
    KeyNotFound,
    KeyStateError,
    KeystoreError,
    KeystoreTampered,
    WrongKek,
)
from keys.jwk import (
    PrivateKey,
    alg_for_key,
    b64u_decode,
    b64u_encode,
    generate_private_key,
    jwks as make_jwks,
    load_private_jwk,
    private_jwk,
    public_jwk as public_jwk_of,
    thumbprint,
)
from keys.signer import SoftwareSigner

try:  # POSIX advisory locks keep concurrent writers of one keystore file from losing updates.
    import fcntl
except ImportError:  # pragma: no cover - Windows: the SDK must still import; file writes stay atomic
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "KEK_ENV",
    "KEK_FILE_ENV",
    "KEK_BYTES",
    "KekMissing",
    "KekInvalid",
    "KeyState",
    "KeyRecord",
    "KeyRecordStore",
    "InMemoryKeyRecordStore",
    "FileKeyRecordStore",
    "Keystore",
    "load_kek",
    "generate_kek",
    "write_kek_file",
    "write_secret_file",
]

KEK_ENV = "ELICENCE_KEK"
KEK_FILE_ENV = "ELICENCE_KEK_FILE"
KEK_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # SP 800-38D s8.2: 96-bit IVs, drawn at random (s8.2.2)
_KEK_CHECK_LABEL = b"elicence keystore KEK check v1"
_RECORD_AAD_LABEL = "elicence-keystore-record-v1"
_FILE_FORMAT = "elicence-keystore"
_FILE_VERSION = 1


class KekMissing(KeystoreError):
    code = "keystore_kek_missing"
    description = f"No key-encryption key: set {KEK_ENV} (base64url) or {KEK_FILE_ENV} (a file path)."


class KekInvalid(KeystoreError):
    code = "keystore_kek_invalid"
    description = f"The key-encryption key must be {KEK_BYTES} random bytes in base64url without padding."


class KeyState(enum.StrEnum):
    """Life cycle of a signing key."""

    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


# One-way transitions; anything else (including a repeat) is refused so each key event happens once.
_TRANSITIONS = {
    KeyState.RETIRED: frozenset({KeyState.ACTIVE}),
    KeyState.REVOKED: frozenset({KeyState.ACTIVE, KeyState.RETIRED}),
}


def _require_aware(now: datetime) -> datetime:
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One stored key: public JWK in clear, private JWK as AES-GCM ``ciphertext`` under ``nonce``."""

    kid: str
    alg: str
    state: KeyState
    public_jwk: Mapping[str, str]
    nonce: bytes
    ciphertext: bytes
    created_at: datetime
    retired_at: datetime | None = None
    revoked_at: datetime | None = None
    label: str = ""
    owner: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", KeyState(self.state))
        object.__setattr__(self, "public_jwk", MappingProxyType(dict(self.public_jwk)))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (bytes as base64url, times as ISO 8601)."""
        return {
            "kid": self.kid,
            "alg": self.alg,
            "state": self.state.value,
            "public_jwk": dict(self.public_jwk),
            "nonce": b64u_encode(self.nonce),
            "ciphertext": b64u_encode(self.ciphertext),
            "created_at": self.created_at.isoformat(),
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "label": self.label,
            "owner": self.owner,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyRecord:
        """Inverse of :meth:`to_json`; raises ``KeystoreTampered`` if a field is missing or mistyped."""
        try:
            return cls(
                kid=_str(data["kid"]),
                alg=_str(data["alg"]),
                state=KeyState(data["state"]),
                public_jwk=_str_map(data["public_jwk"]),
                nonce=b64u_decode(data["nonce"]),
                ciphertext=b64u_decode(data["ciphertext"]),
                created_at=_time(data["created_at"]),
                retired_at=_opt_time(data.get("retired_at")),
                revoked_at=_opt_time(data.get("revoked_at")),
                label=_str(data.get("label", "")),
                owner=None if data.get("owner") is None else _str(data["owner"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeystoreTampered(f"keystore record is not well-formed: {exc}") from exc


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return {_str(k): _str(v) for k, v in value.items()}


def _time(value: Any) -> datetime:
    return _require_aware(datetime.fromisoformat(_str(value)))


def _opt_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


@runtime_checkable
class KeyRecordStore(Protocol):
    """Where key records live. The roles implement this on their own tables."""

    def get(self, kid: str) -> KeyRecord | None:
        """The record with this ``kid``, or ``None``."""
        ...

    def put(self, record: KeyRecord) -> None:
        """Insert a new record; raises ``KeystoreError`` if the ``kid`` already exists."""
        ...

    def list(self, *, owner: str | None = None) -> tuple[KeyRecord, ...]:
        """All records (of ``owner`` when given), oldest first."""
        ...

    def update_state(self, kid: str, state: KeyState, *, at: datetime) -> KeyRecord:
        """Set the state and its timestamp; raises ``KeyNotFound``. Returns the updated record."""
        ...

    def kek_check(self) -> bytes | None:
        """The KEK check value from the store's header, or ``None`` for a new store."""
        ...

    def init_kek_check(self, value: bytes) -> bytes:
        """Store ``value`` as KEK check unless one exists (atomically); return the stored value."""
        ...


def _with_state(record: KeyRecord, state: KeyState, at: datetime) -> KeyRecord:
    stamp = {KeyState.RETIRED: "retired_at", KeyState.REVOKED: "revoked_at"}.get(state)
    changes: dict[str, Any] = {"state": state}
    if stamp:
        changes[stamp] = at
    return dataclasses.replace(record, **changes)


def _owned(records: Iterable[KeyRecord], owner: str | None) -> tuple[KeyRecord, ...]:
    chosen = [r for r in records if owner is None or r.owner == owner]
    return tuple(sorted(chosen, key=lambda r: (r.created_at, r.kid)))


class InMemoryKeyRecordStore:
    """A :class:`KeyRecordStore` in process memory, for tests and throw-away demos."""

    def __init__(self) -> None:
        self._records: dict[str, KeyRecord] = {}
        self._check: bytes | None = None
        self._lock = threading.Lock()

    def get(self, kid: str) -> KeyRecord | None:
        return self._records.get(kid)

    def put(self, record: KeyRecord) -> None:
        with self._lock:
            if record.kid in self._records:
                raise KeystoreError(f"a key with kid {record.kid!r} is already stored")
            self._records[record.kid] = record

    def list(self, *, owner: str | None = None) -> tuple[KeyRecord, ...]:
        return _owned(self._records.values(), owner)

    def update_state(self, kid: str, state: KeyState, *, at: datetime) -> KeyRecord:
        with self._lock:
            record = self._records.get(kid)
            if record is None:
                raise KeyNotFound(f"no key {kid!r}")
            self._records[kid] = _with_state(record, state, at)
            return self._records[kid]

    def kek_check(self) -> bytes | None:
        return self._check

    def init_kek_check(self, value: bytes) -> bytes:
        with self._lock:
            if self._check is None:
                self._check = value
            return self._check


class FileKeyRecordStore:
    """A :class:`KeyRecordStore` in one JSON file (mode 0600), rewritten atomically on every change.

    Layout: ``{"format": "elicence-keystore", "version": 1, "kek_check": ..., "keys": {kid: record}}``.
    Each change is read-modify-write under an advisory lock on ``<path>.lock``, written to a temporary
    file in the same directory, flushed, and moved into place with ``os.replace``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def get(self, kid: str) -> KeyRecord | None:
        raw = self._read()["keys"].get(kid)
        return None if raw is None else KeyRecord.from_json(raw)

    def put(self, record: KeyRecord) -> None:
        with self._locked() as doc:
            if record.kid in doc["keys"]:
                raise KeystoreError(f"a key with kid {record.kid!r} is already stored")
            doc["keys"][record.kid] = record.to_json()

    def list(self, *, owner: str | None = None) -> tuple[KeyRecord, ...]:
        return _owned([KeyRecord.from_json(r) for r in self._read()["keys"].values()], owner)

    def update_state(self, kid: str, state: KeyState, *, at: datetime) -> KeyRecord:
        with self._locked() as doc:
            raw = doc["keys"].get(kid)
            if raw is None:
                raise KeyNotFound(f"no key {kid!r}")
            record = _with_state(KeyRecord.from_json(raw), state, at)
            doc["keys"][kid] = record.to_json()
            return record

    def kek_check(self) -> bytes | None:
        value = self._read()["kek_check"]
        return None if value is None else _b64u_field(value, "kek_check")

    def init_kek_check(self, value: bytes) -> bytes:
        with self._locked() as doc:
            if doc["kek_check"] is None:
                doc["kek_check"] = b64u_encode(value)
            return _b64u_field(doc["kek_check"], "kek_check")

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"format": _FILE_FORMAT, "version": _FILE_VERSION, "kek_check": None, "keys": {}}
        except OSError as exc:
            raise KeystoreError(f"cannot read keystore file {self.path}: {exc.strerror}") from exc
        return _parse_document(text)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with _file_lock(self.path.with_name(self.path.name + ".lock")):
            doc = self._read()
            yield doc
            _atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def _b64u_field(value: Any, name: str) -> bytes:
    try:
        return b64u_decode(value)
    except ValueError as exc:
        raise KeystoreTampered(f"keystore field {name!r} is not base64url") from exc


def _parse_document(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise KeystoreTampered("keystore file is not valid JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != _FILE_FORMAT:
        raise KeystoreTampered("file is not an eLicence keystore")
    if doc.get("version") != _FILE_VERSION:
        raise KeystoreError(f"keystore version {doc.get('version')!r} is not supported")
    if not isinstance(doc.get("keys"), dict) or not isinstance(doc.get("kek_check"), (str, type(None))):
        raise KeystoreTampered("keystore file lacks its header or key table")
    return doc


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise KeystoreError(f"cannot lock keystore file: {exc.strerror}") from exc
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600: temp file in the same directory, fsync, os.replace."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise KeystoreError(f"cannot write keystore file: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(fd, 0o600)  # mkstemp already uses 0600; said again so a umask can never widen it
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/filesystem can fsync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- the key-encryption key ------------------------------------------------------------------------


def generate_kek() -> bytes:
    """A fresh random 32-byte KEK from the operating system's CSPRNG."""
    return os.urandom(KEK_BYTES)


def _parse_kek(text: str, source: str) -> bytes:
    try:
        kek = b64u_decode(text.strip())
    except ValueError as exc:
        raise KekInvalid(f"{source} is not base64url (no padding, '-' and '_' alphabet)") from exc
    if len(kek) != KEK_BYTES:
        raise KekInvalid(f"{source} decodes to {len(kek)} bytes; a KEK is exactly {KEK_BYTES}")
    if len(set(kek)) < 4:
        # A random 32-byte key with fewer than 4 distinct bytes has probability < 2^-190: a placeholder.
        raise KekInvalid(f"{source} looks like a placeholder, not a random key")
    return kek


def load_kek(*, env: Mapping[str, str] = os.environ) -> bytes:
    """The KEK from ``ELICENCE_KEK`` or the file named by ``ELICENCE_KEK_FILE`` (exactly one of them).

    Raises ``KekMissing`` (``keystore_kek_missing``) when neither is set or the file does not exist,
    ``KekInvalid`` (``keystore_kek_invalid``) when both are set or the value is not 32 base64url bytes.
    """
    value, path = env.get(KEK_ENV), env.get(KEK_FILE_ENV)
    if value and path:
        raise KekInvalid(f"set only one of {KEK_ENV} and {KEK_FILE_ENV}")
    if value:
        return _parse_kek(value, KEK_ENV)
    if not path:
        raise KekMissing()
    try:
        text = Path(path).read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise KekMissing(f"{KEK_FILE_ENV} names {path}, which does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise KekInvalid(f"cannot read the KEK file named by {KEK_FILE_ENV}") from exc
    return _parse_kek(text, f"the file named by {KEK_FILE_ENV}")


def write_kek_file(path: str | os.PathLike[str], kek: bytes | None = None) -> bytes:
    """Write a (new, unless given) KEK to ``path`` as base64url, mode 0600; returns the KEK.

    Never overwrites: losing a KEK loses every key encrypted under it. Raises ``KeystoreError`` if the
    file exists, ``KekInvalid`` if ``kek`` is not 32 bytes.
    """
    kek = generate_kek() if kek is None else kek
    if not isinstance(kek, bytes) or len(kek) != KEK_BYTES:
        raise KekInvalid()
    write_secret_file(path, b64u_encode(kek) + "\n", what="KEK file")
    return kek


def write_secret_file(path: str | os.PathLike[str], text: str, *, what: str = "key file") -> None:
    """Create ``path`` with mode 0600 and write ``text`` durably; never overwrites an existing file.

    Raises ``KeystoreError`` when the file exists or cannot be created. The one way key material is
    written to disk here (KEK files, private JWK files of the CLI).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeystoreError(f"{path} exists; a {what} is never overwritten") from exc
    except OSError as exc:
        raise KeystoreError(f"cannot create {what}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(fd, 0o600)  # the umask may have narrowed, never widened, 0600; make it exact
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


# --- the keystore ----------------------------------------------------------------------------------


def _record_aad(kid: str, alg: str, owner: str | None) -> bytes:
    # A JSON array of fixed shape is an unambiguous encoding of the bound fields.
    return json.dumps([_RECORD_AAD_LABEL, kid, alg, owner], separators=(",", ":")).encode("utf-8")


class Keystore:
    """Signing keys of one store, opened with one KEK. Only ``active`` keys sign."""

    __slots__ = ("_store", "_aead", "_kek_checked")

    def __init__(self, store: KeyRecordStore, kek: bytes) -> None:
        if not isinstance(kek, bytes) or len(kek) != KEK_BYTES:
            raise KekInvalid()
        self._store = store
        self._aead = AESGCM(kek)
        self._kek_checked = False

    def __repr__(self) -> str:
        return f"Keystore(store={self._store!r})"

    # lifecycle ------------------------------------------------------------------------------------

    def generate(
        self, alg: str = "ES256", *, now: datetime, label: str = "", owner: str | None = None
    ) -> str:
        """Generate a key for ``alg`` (``ES256`` or ``EdDSA``), store it active; returns its ``kid``.

        Raises ``InvalidKeyMaterial`` for another ``alg``, ``WrongKek`` if the KEK does not open the store.
        """
        return self._add(generate_private_key(alg), now=now, label=label, owner=owner)

    def import_private_jwk(
        self, jwk: Mapping[str, Any], *, now: datetime, label: str = "", owner: str | None = None
    ) -> str:
        """Store an existing private JWK (ES256 or EdDSA) as an active key; returns its ``kid``.

        Raises ``InvalidKeyMaterial`` for a weak, malformed or inconsistent JWK, or one whose ``kid``
        is not its RFC 7638 thumbprint; ``KeystoreError`` if the key is already stored.
        """
        key = load_private_jwk(jwk)
        given = jwk.get("kid")
        if given is not None and given != thumbprint(public_jwk_of(key)):
            raise InvalidKeyMaterial("JWK 'kid' is not its RFC 7638 thumbprint; kids here are thumbprints")
        return self._add(key, now=now, label=label, owner=owner)

    def retire(self, kid: str, *, now: datetime) -> KeyRecord:
        """Stop signing with ``kid``; it stays in the JWKS. Raises ``KeyNotFound``, ``KeyStateError``."""
        return self._transition(kid, KeyState.RETIRED, now)

    def revoke(self, kid: str, *, now: datetime) -> KeyRecord:
        """Withdraw ``kid`` entirely (never published again). Raises ``KeyNotFound``, ``KeyStateError``."""
        return self._transition(kid, KeyState.REVOKED, now)

    # use ------------------------------------------------------------------------------------------

    def signer(self, kid: str) -> SoftwareSigner:
        """A signer over the decrypted key ``kid``.

        Raises ``KeyNotFound``; ``KeyStateError`` unless the key is active; ``WrongKek``;
        ``KeystoreTampered`` if the record fails its integrity checks.
        """
        record = self.record(kid)
        if record.state is not KeyState.ACTIVE:
            raise KeyStateError(f"key {kid!r} is {record.state.value}; only active keys sign")
        return SoftwareSigner(self._decrypt(record))

    def record(self, kid: str) -> KeyRecord:
        """The stored record of ``kid`` (no secret in clear); raises ``KeyNotFound``."""
        record = self._store.get(kid)
        if record is None:
            raise KeyNotFound(f"no key {kid!r} in the keystore")
        return record

    def public_jwk(self, kid: str) -> dict[str, Any]:
        """The public JWK of ``kid`` with ``kid``, ``alg`` and ``use``.

        Raises ``KeyNotFound``; ``KeyStateError`` for a revoked key; ``WrongKek``; ``KeystoreTampered``.
        """
        record = self.record(kid)
        if record.state is KeyState.REVOKED:
            raise KeyStateError(f"key {kid!r} is revoked")
        self._open(record)
        return make_jwks([record.public_jwk])["keys"][0]

    def jwks(self, *, owner: str | None = None, include_retired: bool = True) -> dict[str, Any]:
        """The JWK Set to publish: active keys (and retired ones, by default), never revoked ones.

        Every record is authenticated first, so a key planted in the store without the KEK is never
        published; raises ``WrongKek`` or ``KeystoreTampered``.
        """
        states = {KeyState.ACTIVE, KeyState.RETIRED} if include_retired else {KeyState.ACTIVE}
        records = [r for r in self._store.list(owner=owner) if r.state in states]
        # Active keys first (newest first), then retired ones: the order a resolver should try them.
        records.sort(key=lambda r: (r.state is not KeyState.ACTIVE, -r.created_at.timestamp()))
        for record in records:
            self._open(record)
        return make_jwks(r.public_jwk for r in records)

    def list(
        self, *, owner: str | None = None, states: Collection[KeyState] | None = None
    ) -> tuple[KeyRecord, ...]:
        """Records of ``owner`` (all owners if ``None``) in ``states`` (all if ``None``), oldest first."""
        return tuple(r for r in self._store.list(owner=owner) if states is None or r.state in states)

    # internals ------------------------------------------------------------------------------------

    def _add(self, key: PrivateKey, *, now: datetime, label: str, owner: str | None) -> str:
        _require_aware(now)
        self._check_kek(initialise=True)
        public = public_jwk_of(key)
        kid, alg = thumbprint(public), alg_for_key(key)
        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps(private_jwk(key), separators=(",", ":")).encode("utf-8")
        ciphertext = self._aead.encrypt(nonce, plaintext, _record_aad(kid, alg, owner))
        self._store.put(
            KeyRecord(
                kid=kid,
                alg=alg,
                state=KeyState.ACTIVE,
                public_jwk=public,
                nonce=nonce,
                ciphertext=ciphertext,
                created_at=now,
                label=label,
                owner=owner,
            )
        )
        return kid

    def _transition(self, kid: str, state: KeyState, now: datetime) -> KeyRecord:
        _require_aware(now)
        record = self.record(kid)
        if record.state not in _TRANSITIONS[state]:
            raise KeyStateError(f"key {kid!r} is {record.state.value}; it cannot become {state.value}")
        return self._store.update_state(kid, state, at=now)

    def _check_kek(self, *, initialise: bool = False) -> None:
        """Compare the KEK with the store's check value; raises ``WrongKek`` or ``KeystoreTampered``."""
        if self._kek_checked:
            return
        stored = self._store.kek_check()
        if stored is None:
            if not initialise:
                if self._store.list():
                    raise KeystoreTampered("the keystore holds keys but no KEK check value")
                return
            nonce = os.urandom(_NONCE_BYTES)
            stored = self._store.init_kek_check(nonce + self._aead.encrypt(nonce, _KEK_CHECK_LABEL, None))
        try:
            opened = self._aead.decrypt(stored[:_NONCE_BYTES], stored[_NONCE_BYTES:], None)
        except InvalidTag as exc:
            raise WrongKek() from exc
        if opened != _KEK_CHECK_LABEL:
            raise WrongKek("the KEK check value does not hold the expected label")
        self._kek_checked = True

    def _open(self, record: KeyRecord) -> bytes:
        """Decrypt a record's private JWK; raises ``WrongKek`` or ``KeystoreTampered``."""
        self._check_kek()
        if thumbprint(record.public_jwk) != record.kid:
            raise KeystoreTampered(f"record {record.kid!r}: public key does not match its kid")
        try:
            return self._aead.decrypt(
                record.nonce, record.ciphertext, _record_aad(record.kid, record.alg, record.owner)
            )
        except (InvalidTag, ValueError) as exc:
            raise KeystoreTampered(f"record {record.kid!r} fails its authentication tag") from exc

    def _decrypt(self, record: KeyRecord) -> PrivateKey:
        plaintext = self._open(record)
        try:
            key = load_private_jwk(json.loads(plaintext))
        except (ValueError, InvalidKeyMaterial) as exc:
            # Only a holder of the KEK can get here: never hand back what the record holds.
            raise KeystoreTampered(f"record {record.kid!r} does not hold a valid key") from exc
        if public_jwk_of(key) != dict(record.public_jwk) or alg_for_key(key) != record.alg:
            raise KeystoreTampered(f"record {record.kid!r}: private key does not match the record")
        return key
