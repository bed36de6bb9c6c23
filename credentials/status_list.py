"""IETF Token Status List: status lists, status list tokens, their verification and caching.

Implements **draft-ietf-oauth-status-list-18** ("Token Status List (TSL)", T. Looker, P. Bastian,
C. Bormann, 18 February 2026), the newest revision whose full text was available when this was
written. Revisions -19 (March 2026) and -20 (approved by the IESG, June 2026) exist; re-read sections
4.1, 5.1, 7 and 8.3 against them when updating. Only the JWT forms are implemented (no CWT/CBOR).

What is here, by section of the draft:

- 4.1/4.2 :class:`StatusList` (frozen) and :class:`StatusListBuilder` (mutable, for an issuer that
  flips many entries): 1, 2, 4 or 8 bits per entry, packed from the least significant bit, DEFLATE in
  the ZLIB format at the highest level, base64url in ``lst``.
- 5.1 :func:`sign_status_list_token` / :func:`verify_status_list_token` (JOSE ``typ``
  ``statuslist+jwt``; claims ``sub``, ``iat``, ``exp``, ``ttl``, ``status_list``).
- 6.2 the credential's ``status.status_list`` claim is parsed by :mod:`credentials.sd_jwt_vc`
  (``StatusReference``); :meth:`StatusListCache.check` takes it (anything with ``uri`` and ``idx``).
- 7 :func:`status_of` and :func:`check_status`: 0 VALID, 1 INVALID (revoked), 2 SUSPENDED.
- 8.3/13.7 :class:`StatusListCache`: fetch, verify, cache for ``ttl``, one fetch per list at a time.
- 12.4/12.5/13.3 :func:`allocate_indexes`: random, never reused indexes for an issuer.

Decisions the draft leaves to the implementation (each also noted where it is enforced):

- An **expired** status list token (``exp`` passed) raises ``StatusUnavailable`` (``status_unavailable``,
  a ``CannotVerify``), not an "invalid" code: s8.3 says that when a check fails "no statement about the
  status of the Referenced Token can be made", and s13.7 that after ``exp`` the list "MUST NOT be relied
  upon any longer". A stale list is missing evidence, not evidence against the credential. The
  verifier still fails closed on it.
- A list whose inflated size exceeds the bound (a zip bomb) raises ``PayloadTooLarge``
  (``payload_too_large``): it is our resource limit that was hit, the same code every other size bound
  uses, and the list is not shown to be malformed. Truncated or trailing data raises
  ``StatusListInvalid``.
- Status values other than 0, 1 and 2 (3 and 0x0C-0x0F are "application specific", the rest reserved)
  raise the base ``StatusError`` (``status_error``): eLicence assigns them no meaning, so the credential
  is not shown to be VALID and the check fails closed.
- ``ttl`` is a hard bound of the cache (DESIGN.md: a revocation must not stay invisible beyond the
  list's time-to-live); when no ``ttl`` is given, a configured maximum age applies. A refresh that
  fails after that raises ``StatusUnavailable``.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

from credentials import jws
from credentials.clock import Timestamp, seconds
from credentials.errors import (
    CredentialError,
    PayloadTooLarge,
    Revoked,
    StatusError,
    StatusListInvalid,
    StatusUnavailable,
    Suspended,
)
from keys.jwk import PublicKey, b64u_decode, b64u_encode
from keys.signer import Signer

__all__ = [
    "VALID",
    "INVALID",
    "SUSPENDED",
    "ALLOWED_BITS",
    "TYP",
    "MEDIA_TYPE",
    "DEFAULT_MAX_SIZE",
    "COMPRESSION_LEVEL",
    "StatusList",
    "StatusListBuilder",
    "StatusRef",
    "VerifiedStatusList",
    "CachedStatusList",
    "StatusListCache",
    "sign_status_list_token",
    "verify_status_list_token",
    "status_of",
    "check_status",
    "allocate_indexes",
    "mark_used",
]

#: Status Type values, s7.1 (names as registered in s14.5).
VALID = 0x00
INVALID = 0x01
SUSPENDED = 0x02

#: s4.1 step 1: "bits ... of either 1,2,4 or 8".
ALLOWED_BITS = (1, 2, 4, 8)

#: s5.1: "The JWT type MUST be statuslist+jwt."
TYP = "statuslist+jwt"
#: s8.1/s14.7: the media type a status list endpoint serves.
MEDIA_TYPE = "application/statuslist+jwt"

#: Default bound on the entries of a list we accept: 2^22 (4x the draft's 2^20 test lists; 1 MiB
#: inflated at 2 bits). The inflated size and the token size limits are derived from it.
DEFAULT_MAX_SIZE = 1 << 22

#: s4.1 step 4: "Implementations are RECOMMENDED to use the highest compression level available."
#: At 1,000,000 two-bit entries with 5-10% set, level 9 takes ~10x the time of level 6 for ~5% less
#: size; a caller may pass a lower ``level``.
COMPRESSION_LEVEL = 9



def _check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in ALLOWED_BITS:
        # s4.2: "The allowed values for bits are 1, 2, 4, and 8."
        raise StatusListInvalid(f"bits must be 1, 2, 4 or 8, not {bits!r}")
    return bits


def _check_index(idx: Any, size: int) -> int:
    if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0:
        raise StatusListInvalid(f"status index must be a non-negative integer, not {idx!r}")
    if idx >= size:
        # s8.3 step 6: "If the provided index is out of bounds of the Status List, no statement about
        # the status of the Referenced Token can be made and the Referenced Token MUST be rejected."
        raise StatusListInvalid(f"status index {idx} is out of range: the list has {size} entries")
    return idx


def _check_value(value: Any, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise StatusListInvalid(f"status value {value!r} does not fit in {bits} bit(s)")
    return value


def _byte_length(size: int, bits: int) -> int:
    return (size * bits + 7) // 8


def _get(data: bytes | bytearray, bits: int, idx: int) -> int:
    pos = idx * bits
    # s4.1 step 3: blocks are "packed into bytes from the least significant bit ("0") to the most
    # significant bit ("7")"; bytes in their natural order (s11.1).
    return (data[pos >> 3] >> (pos & 7)) & ((1 << bits) - 1)


def _set(data: bytearray, bits: int, idx: int, value: int) -> None:
    pos = idx * bits
    shift = pos & 7
    mask = ((1 << bits) - 1) << shift
    data[pos >> 3] = (data[pos >> 3] & ~mask & 0xFF) | (value << shift)


def _inflate(compressed: bytes, limit: int) -> bytes:
    """ZLIB-inflate at most ``limit`` bytes; raises PayloadTooLarge beyond it, StatusListInvalid if bad."""
    # wbits=15: the ZLIB format only (s4.1 step 4 "DEFLATE [RFC1951] with the ZLIB [RFC1950] data
    # format"), so raw DEFLATE and gzip streams are refused rather than guessed at.
    inflater = zlib.decompressobj(wbits=15)
    try:
        data = inflater.decompress(compressed, limit + 1)
    except zlib.error as exc:
        raise StatusListInvalid(f"lst is not a ZLIB stream: {exc}") from exc
    if len(data) > limit:
        raise PayloadTooLarge(f"status list inflates to more than {limit} bytes")
    if not inflater.eof:
        raise StatusListInvalid("lst is a truncated ZLIB stream")
    if inflater.unused_data:
        raise StatusListInvalid("lst has data after the end of its ZLIB stream")
    if not data:
        raise StatusListInvalid("status list is empty")
    return data


@dataclass(frozen=True, slots=True)
class StatusList:
    """A Status List (s4): ``bits`` per entry, packed into ``data``; ``size`` entries in all.

    ``size`` is always ``len(data) * 8 // bits``: the JSON form carries no separate size, so a list
    of 10 one-bit entries is a list of 16 (s13.4 RECOMMENDS whole bytes anyway).
    """

    bits: int
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_bits(self.bits)
        if not isinstance(self.data, bytes):
            object.__setattr__(self, "data", bytes(self.data))
        if not self.data:
            raise StatusListInvalid("status list is empty")

    @property
    def size(self) -> int:
        """Number of entries (indexes ``0 .. size - 1``)."""
        return len(self.data) * 8 // self.bits

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"StatusList(bits={self.bits}, size={self.size})"

    @classmethod
    def new(cls, size: int, bits: int = 2) -> StatusList:
        """A list of at least ``size`` entries, all VALID; raises ``StatusListInvalid`` for bad arguments."""
        _check_bits(bits)
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise StatusListInvalid(f"size must be a positive integer, not {size!r}")
        # s13.3: initialise with the most common value, VALID (0x00), which also hides how many
        # indexes are in use.
        return cls(bits, bytes(_byte_length(size, bits)))

    def get(self, idx: int) -> int:
        """The status value at ``idx``; raises ``StatusListInvalid`` if out of range."""
        return _get(self.data, self.bits, _check_index(idx, self.size))

    def __getitem__(self, idx: int) -> int:
        return self.get(idx)

    def with_status(self, idx: int, value: int) -> StatusList:
        """A copy with entry ``idx`` set to ``value``; raises ``StatusListInvalid`` for bad index/value."""
        _check_index(idx, self.size)
        _check_value(value, self.bits)
        data = bytearray(self.data)
        _set(data, self.bits, idx, value)
        return StatusList(self.bits, bytes(data))

    def builder(self) -> StatusListBuilder:
        """A mutable copy, for many updates before the next signature."""
        return StatusListBuilder.from_list(self)

    def compress(self, *, level: int = COMPRESSION_LEVEL) -> bytes:
        """The compressed byte array of s4.1 (ZLIB format; level 9 unless told otherwise)."""
        return zlib.compress(self.data, level)

    def lst(self, *, level: int = COMPRESSION_LEVEL) -> str:
        """The ``lst`` member: base64url of the compressed byte array (s4.2)."""
        return b64u_encode(self.compress(level=level))

    def to_json(self, *, aggregation_uri: str | None = None, level: int = COMPRESSION_LEVEL) -> dict[str, Any]:
        """The JSON Status List of s4.2: ``{"bits", "lst"}`` and optionally ``aggregation_uri``."""
        out: dict[str, Any] = {"bits": self.bits, "lst": self.lst(level=level)}
        if aggregation_uri is not None:
            out["aggregation_uri"] = aggregation_uri
        return out

    @classmethod
    def from_json(cls, obj: Any, *, max_size: int = DEFAULT_MAX_SIZE) -> StatusList:
        """Decode a JSON Status List (s4.2), inflating at most ``max_size`` entries.

        Raises ``StatusListInvalid`` (wrong shape, bits, base64url or ZLIB data) or
        ``PayloadTooLarge`` (inflates beyond ``max_size`` entries).
        """
        if not isinstance(obj, Mapping):
            raise StatusListInvalid("status_list must be a JSON object")
        bits = _check_bits(obj.get("bits"))
        lst = obj.get("lst")
        if not isinstance(lst, str):
            raise StatusListInvalid("status_list.lst must be a string")
        aggregation_uri = obj.get("aggregation_uri")
        if aggregation_uri is not None and not isinstance(aggregation_uri, str):
            raise StatusListInvalid("status_list.aggregation_uri must be a string")
        try:
            # s4.2: "The value MUST be the base64url-encoded compressed byte array".
            compressed = b64u_decode(lst)
        except ValueError as exc:
            raise StatusListInvalid("status_list.lst is not base64url") from exc
        return cls(bits, _inflate(compressed, _byte_length(max_size, bits)))


class StatusListBuilder:
    """A mutable status list over a ``bytearray``, for an issuer that changes many entries at once.

    ``freeze()`` returns the :class:`StatusList` value to sign. Not thread-safe: one writer at a time.
    """

    __slots__ = ("_bits", "_data", "_size")

    def __init__(self, size: int, bits: int = 2) -> None:
        template = StatusList.new(size, bits)
        self._bits = template.bits
        self._data = bytearray(template.data)
        self._size = template.size

    @classmethod
    def from_list(cls, status_list: StatusList) -> StatusListBuilder:
        """A builder starting from the entries of ``status_list``."""
        builder = cls.__new__(cls)
        builder._bits = status_list.bits
        builder._data = bytearray(status_list.data)
        builder._size = status_list.size
        return builder

    @property
    def bits(self) -> int:
        return self._bits

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return self._size

    def get(self, idx: int) -> int:
        """The status value at ``idx``; raises ``StatusListInvalid`` if out of range."""
        return _get(self._data, self._bits, _check_index(idx, self._size))

    __getitem__ = get

    def set(self, idx: int, value: int) -> None:
        """Set entry ``idx`` to ``value``; raises ``StatusListInvalid`` for bad index or value."""
        _set(self._data, self._bits, _check_index(idx, self._size), _check_value(value, self._bits))

    __setitem__ = set

    def update(self, entries: Iterable[tuple[int, int]] | Mapping[int, int]) -> None:
        """Set many ``(idx, value)`` entries; raises like :meth:`set` (earlier entries stay set)."""
        items = entries.items() if isinstance(entries, Mapping) else entries
        data, bits, size = self._data, self._bits, self._size
        top = 1 << bits
        for idx, value in items:
            # The checks of set(), inlined: an issuer rebuilding a list flips 10^5 entries at once.
            if type(idx) is not int or not 0 <= idx < size:
                _check_index(idx, size)
            if type(value) is not int or not 0 <= value < top:
                _check_value(value, bits)
            _set(data, bits, idx, value)

    def freeze(self) -> StatusList:
        """The current entries as an immutable :class:`StatusList`."""
        return StatusList(self._bits, bytes(self._data))


class StatusRef(Protocol):
    """A credential's ``status.status_list`` (s6.2), e.g. ``credentials.sd_jwt_vc.StatusReference``."""

    @property
    def uri(self) -> str: ...

    @property
    def idx(self) -> int: ...


@dataclass(frozen=True, slots=True)
class VerifiedStatusList:
    """A status list token whose signature, ``typ``, ``sub`` and times were checked at ``verified_at``."""

    status_list: StatusList
    sub: str
    iat: int | float
    exp: int | float | None
    ttl: int | float | None
    iss: str | None
    aggregation_uri: str | None
    verified_at: int | float
    token: str = field(repr=False)

    def age(self, now: Timestamp) -> float:
        """Seconds since the list was issued (``now - iat``)."""
        return seconds(now) - self.iat

    def status(self, idx: int) -> int:
        """The status value at ``idx``; raises ``StatusListInvalid`` if out of range."""
        return self.status_list.get(idx)


def sign_status_list_token(
    status_list: StatusList,
    /,
    *,
    signer: Signer,
    sub: str,
    iat: Timestamp,
    iss: str | None = None,
    exp: Timestamp | None = None,
    ttl: int | None = None,
    aggregation_uri: str | None = None,
    level: int = COMPRESSION_LEVEL,
) -> str:
    """Sign a Status List Token in JWT form (s5.1); raises ``StatusListInvalid`` for bad claims.

    ``sub`` is the URI the token is served at, the ``uri`` of the credentials' references. ``exp``
    and ``ttl`` are both RECOMMENDED (s5.1, s13.7): a service should always set them.
    """
    if not isinstance(sub, str) or not sub:
        raise StatusListInvalid("sub must be the URI of the status list token")
    claims: dict[str, Any] = {"sub": sub}
    if iss is not None:
        claims["iss"] = iss
    claims["iat"] = _numeric_date(iat)
    if exp is not None:
        claims["exp"] = _numeric_date(exp)
        if claims["exp"] <= claims["iat"]:
            raise StatusListInvalid("exp must be after iat")
    if ttl is not None:
        # s5.1: ttl "MUST be a positive number".
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
            raise StatusListInvalid(f"ttl must be a positive number of seconds, not {ttl!r}")
        claims["ttl"] = ttl
    claims["status_list"] = status_list.to_json(aggregation_uri=aggregation_uri, level=level)
    return jws.sign(claims, signer, typ=TYP)


def _numeric_date(t: Timestamp) -> int:
    return int(seconds(t))


def _number(payload: Mapping[str, Any], name: str) -> int | float | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StatusListInvalid(f"claim {name!r} must be a number")
    return value


def _token_limit(max_size: int) -> int:
    # Incompressible worst case at 8 bits: the raw bytes plus DEFLATE's stored-block overhead, in
    # base64url inside base64url JSON, plus room for header, claims and signature.
    raw = max_size + max_size // 1000 + 64
    return (raw * 4 // 3 + 4) * 4 // 3 + 8192


def verify_status_list_token(
    token: str | bytes,
    *,
    key: jws.KeyResolver,
    expected_uri: str,
    now: Timestamp,
    max_size: int = DEFAULT_MAX_SIZE,
    max_age: float | None = None,
    leeway: float = 60,
) -> VerifiedStatusList:
    """Verify a Status List Token (s5.1, s8.3 steps 3-5) fetched from ``expected_uri``.

    ``key`` is the public key or a resolver from the protected header to the key. Raises the JOSE
    codes of :func:`credentials.jws.verify` (``invalid_typ``, ``invalid_signature``, ...),
    ``StatusListInvalid`` (``sub`` is not ``expected_uri``, bad or missing claims, bad list),
    ``PayloadTooLarge`` (token or inflated list too large), and ``StatusUnavailable`` when the token
    has expired, is not yet valid, or is older than ``max_age`` seconds: no statement about status can
    be made from it (s8.3), but it is not evidence against the credential.
    """
    if isinstance(token, (bytes, bytearray)):
        try:
            token = bytes(token).decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise StatusListInvalid("status list token is not ASCII") from exc
    t = seconds(now)
    # s5.1 rule 2: "Relying Parties MUST reject JWTs with an invalid signature"; jws.verify also
    # refuses 'none' and every MAC (our allow-list is ES256 and EdDSA).
    verified = jws.verify(token, key, typ=TYP, max_bytes=_token_limit(max_size))
    payload = verified.payload

    sub = payload.get("sub")
    if not isinstance(sub, str):
        raise StatusListInvalid("status list token has no 'sub' claim")
    # s8.3 step 4a: "The subject claim (sub or 2) of the Status List Token MUST be equal to the uri
    # claim in the status_list object of the Referenced Token" (simple string comparison).
    if sub != expected_uri:
        raise StatusListInvalid(f"status list token is for {sub!r}, not {expected_uri!r}")
    iat = _number(payload, "iat")
    if iat is None:
        raise StatusListInvalid("status list token has no 'iat' claim")  # s5.1: iat REQUIRED
    exp = _number(payload, "exp")
    nbf = _number(payload, "nbf")
    ttl = _number(payload, "ttl")
    if iat > t + leeway:
        raise StatusListInvalid(f"status list token is issued in the future (iat {iat}, now {t:.0f})")
    if exp is not None:
        if exp <= iat:
            raise StatusListInvalid("status list token's exp is not after its iat")
        # s8.3 step 4c: "If the expiration time is defined ..., it MUST be checked if the Status List
        # Token is expired"; s13.7: after exp it "MUST NOT be relied upon any longer". No leeway here:
        # a fast clock makes us refetch early, never trust a stale list late.
        if t >= exp:
            raise StatusUnavailable(
                f"status list {sub} expired at {exp} ({t - exp:.0f} s ago); a fresh copy is needed"
            )
    if nbf is not None and t + leeway < nbf:
        # s5.1 rule 3: "MUST reject JWTs that are not valid in all other respects per [RFC7519]".
        raise StatusUnavailable(f"status list {sub} is not valid before {nbf}")
    # s8.3 step 4b: local freshness policy on iat.
    if max_age is not None and t - iat > max_age:
        raise StatusUnavailable(f"status list {sub} was issued {t - iat:.0f} s ago, more than {max_age} s")
    if ttl is not None and ttl <= 0:
        # s5.1: ttl "MUST be a positive number encoded in JSON as a number".
        raise StatusListInvalid("ttl must be a positive number")
    iss = payload.get("iss")
    if iss is not None and not isinstance(iss, str):
        raise StatusListInvalid("claim 'iss' must be a string")
    claim = payload.get("status_list")
    if claim is None:
        raise StatusListInvalid("status list token has no 'status_list' claim")
    status_list = StatusList.from_json(claim, max_size=max_size)
    return VerifiedStatusList(
        status_list=status_list,
        sub=sub,
        iat=iat,
        exp=exp,
        ttl=ttl,
        iss=iss,
        aggregation_uri=claim.get("aggregation_uri"),
        verified_at=t,
        token=token,
    )


def status_of(status_list: VerifiedStatusList | StatusList, idx: int) -> int:
    """The status value at ``idx`` (s8.3 step 6); raises ``StatusListInvalid`` if out of range."""
    lst = status_list.status_list if isinstance(status_list, VerifiedStatusList) else status_list
    return lst.get(idx)


def check_status(value: int) -> None:
    """Accept VALID, raise ``Revoked`` (INVALID), ``Suspended`` (SUSPENDED) or ``StatusError`` (any other)."""
    if value == VALID:
        return
    if value == INVALID:
        raise Revoked()
    if value == SUSPENDED:
        raise Suspended()
    # s7.1: 0x03 and 0x0C-0x0F are "application specific", the rest reserved. eLicence defines none of
    # them, so the credential is not shown to be valid: fail closed with the generic status code.
    raise StatusError(f"status value {value:#04x} has no meaning in eLicence; the credential is not VALID")


# --- caching (s8.3 step 4d, s11.5, s13.7) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CachedStatusList:
    """The list a :class:`StatusListCache` answered with, and how old it was at that moment."""

    verified: VerifiedStatusList
    fetched_at: float
    usable_until: float
    age: float
    refreshed: bool

    def status(self, idx: int) -> int:
        """The status value at ``idx``; raises ``StatusListInvalid`` if out of range."""
        return self.verified.status_list.get(idx)


#: Fetches the body of a status list token from its URI (HTTP GET with Accept: MEDIA_TYPE).
Fetch = Callable[[str], Union[bytes, str]]
#: Returns the key that must have signed the list at ``uri``, given the token's protected header.
StatusKeyResolver = Callable[[str, Mapping[str, Any]], PublicKey]


class StatusListCache:
    """Fetches, verifies and caches status list tokens, one fetch per list at a time.

    A list is used for ``ttl`` seconds after it was fetched (clamped to ``[min_ttl, max_age]``;
    ``max_age`` when the token has no ``ttl``) and never after its ``exp``. After that it is refetched;
    if the refetch fails, ``StatusUnavailable`` is raised (fail closed). Lists whose ``iat`` is older
    than the cached copy's are refused as stale (a CDN serving an old copy, or a replay).
    """

    def __init__(
        self,
        fetch: Fetch,
        key_resolver: StatusKeyResolver,
        *,
        clock: Callable[[], float],
        max_age: float = 3600,
        min_ttl: float = 0,
        max_size: int = DEFAULT_MAX_SIZE,
        leeway: float = 60,
    ) -> None:
        if max_age <= 0 or min_ttl < 0 or min_ttl > max_age:
            raise ValueError("need 0 <= min_ttl <= max_age and max_age > 0")
        self._fetch = fetch
        self._key_resolver = key_resolver
        self._clock = clock
        self._max_age = max_age
        self._min_ttl = min_ttl
        self._max_size = max_size
        self._leeway = leeway
        self._entries: dict[str, CachedStatusList] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, uri: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uri, threading.Lock())

    def _view(self, entry: CachedStatusList, now: float, refreshed: bool) -> CachedStatusList:
        return CachedStatusList(entry.verified, entry.fetched_at, entry.usable_until, now - entry.fetched_at, refreshed)

    def get(self, uri: str) -> CachedStatusList:
        """The verified list at ``uri``, from cache while usable, else freshly fetched.

        Raises ``StatusUnavailable`` when it cannot be fetched and no usable copy exists, and the codes
        of :func:`verify_status_list_token` when the fetched token is bad.
        """
        now = float(seconds(self._clock()))
        entry = self._entries.get(uri)
        if entry is not None and now < entry.usable_until:
            return self._view(entry, now, False)
        # Single flight: whoever holds the lock fetches; the others wait, then find the fresh copy.
        with self._lock(uri):
            now = float(seconds(self._clock()))
            entry = self._entries.get(uri)
            if entry is not None and now < entry.usable_until:
                return self._view(entry, now, False)
            fresh = self._refresh(uri, now, entry)
            self._entries[uri] = fresh
            return fresh

    def check(self, reference: StatusRef) -> CachedStatusList:
        """Look up ``reference`` and apply :func:`check_status`; returns the list used (for its age).

        Raises ``Revoked``, ``Suspended``, ``StatusError``, ``StatusListInvalid`` (index out of
        range) or the errors of :meth:`get`.
        """
        cached = self.get(reference.uri)
        check_status(cached.status(reference.idx))
        return cached

    def _unavailable(self, uri: str, now: float, entry: CachedStatusList | None, cause: str) -> StatusUnavailable:
        if entry is None:
            return StatusUnavailable(f"status list {uri} could not be fetched ({cause}) and none is cached")
        return StatusUnavailable(
            f"status list {uri} could not be refreshed ({cause}); the cached copy fetched "
            f"{now - entry.fetched_at:.0f} s ago stopped being usable {now - entry.usable_until:.0f} s ago"
        )

    def _refresh(self, uri: str, now: float, entry: CachedStatusList | None) -> CachedStatusList:
        try:
            body = self._fetch(uri)
        except CredentialError:
            raise
        except Exception as exc:  # the fetcher is pluggable: any transport failure means "unavailable"
            raise self._unavailable(uri, now, entry, f"{type(exc).__name__}: {exc}") from exc
        verified = verify_status_list_token(
            body,
            key=lambda header: self._key_resolver(uri, header),
            expected_uri=uri,
            now=now,
            max_size=self._max_size,
            leeway=self._leeway,
        )
        if entry is not None and verified.iat < entry.verified.iat:
            raise self._unavailable(
                uri, now, entry, f"the served list (iat {verified.iat}) is older than the cached one"
            )
        ttl = self._max_age if verified.ttl is None else min(max(verified.ttl, self._min_ttl), self._max_age)
        usable_until = now + ttl
        if verified.exp is not None:
            usable_until = min(usable_until, float(verified.exp))
        return CachedStatusList(verified, now, usable_until, 0.0, True)


# --- index allocation (s12.4, s12.5, s13.3) -----------------------------------------------------------


class RandomSource(Protocol):
    """What :func:`allocate_indexes` needs from ``random.Random`` / ``secrets.SystemRandom``."""

    def randrange(self, stop: int, /) -> int: ...

    def sample(self, population: Any, k: int) -> list[Any]: ...


Used = Union[bytes, bytearray, memoryview, Container[int]]


def _is_used_fn(used: Used, size: int) -> tuple[Callable[[int], bool], int]:
    """A membership test over ``used`` and the number of used indexes below ``size``."""
    if isinstance(used, (bytes, bytearray, memoryview)):
        bitmap = bytes(used)
        if len(bitmap) * 8 < size:
            raise ValueError(f"bitmap of {len(bitmap)} bytes cannot cover {size} indexes")
        total = int.from_bytes(bitmap, "little")
        taken = (total & ((1 << size) - 1)).bit_count()
        return (lambda i: bool(bitmap[i >> 3] >> (i & 7) & 1)), taken
    taken = sum(1 for i in used if isinstance(i, int) and 0 <= i < size)  # type: ignore[attr-defined]
    return used.__contains__, taken


def allocate_indexes(used: Used, count: int, size: int, *, rng: RandomSource) -> list[int]:
    """Pick ``count`` distinct random indexes in ``[0, size)`` that are not in ``used``.

    ``used`` is a bitmap (bit ``i`` of byte ``i // 8``, least significant bit first, as in a one-bit
    status list) or any container of ints (a set). Nothing is mutated: the caller records the result
    (:func:`mark_used`) in the same transaction as the credentials. Pass ``secrets.SystemRandom()``
    in production. Raises ``ValueError`` when fewer than ``count`` indexes are free, like
    ``random.sample``.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be a non-negative integer, not {count!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive integer, not {size!r}")
    is_used, taken = _is_used_fn(used, size)
    free = size - taken
    if count > free:
        raise ValueError(f"only {free} of {size} indexes are free, {count} requested: start a new list")
    if count == 0:
        return []
    # s12.5.1: Status Issuers are RECOMMENDED to "choose non-sequential, pseudo-random or random
    # indices"; s13.3: "The Status Issuer MUST prevent any unintended double allocation."
    if free * 4 >= size:
        # Mostly empty list: rejection sampling needs fewer than 4 draws per index on average.
        chosen: list[int] = []
        seen: set[int] = set()
        while len(chosen) < count:
            i = rng.randrange(size)
            if i not in seen and not is_used(i):
                seen.add(i)
                chosen.append(i)
        return chosen
    return list(rng.sample([i for i in range(size) if not is_used(i)], count))


def mark_used(bitmap: bytes | bytearray | None, indexes: Iterable[int], size: int) -> bytes:
    """A copy of ``bitmap`` (or an empty one) with ``indexes`` set; raises ``ValueError`` on reuse."""
    out = bytearray(bitmap) if bitmap is not None else bytearray(_byte_length(size, 1))
    if len(out) * 8 < size:
        raise ValueError(f"bitmap of {len(out)} bytes cannot cover {size} indexes")
    for i in indexes:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < size:
            raise ValueError(f"index {i!r} is outside [0, {size})")
        if out[i >> 3] >> (i & 7) & 1:
            # s13.3: "The Status Issuer MUST prevent any unintended double allocation."
            raise ValueError(f"index {i} is already allocated")
        out[i >> 3] |= 1 << (i & 7)
    return bytes(out)

