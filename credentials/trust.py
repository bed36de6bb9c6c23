"""The signed trust list: which issuers a verifier accepts, with their keys and credential types.

No IETF, ISO or OpenID format exists for a list of trusted SD-JWT VC issuers (the SD-JWT VC draft
leaves trust in an issuer's keys to the ecosystem), so this is **eLicence's own format**, a JWT. It is
modelled on **ETSI TS 119 612** (Trusted Lists) and the **EU List of Trusted Lists (LOTL)**: a scheme
operator signs a list of trusted entities with their keys; a sequence number that only grows
(``TSLSequenceNumber``, TS 119 612 clause 5.3.2, at least 1) lets a relying party refuse a rollback to
an older list; the issue time (``ListIssueDateTime``) and next update (``NextUpdate``) bound how long
a copy may be relied upon; relying parties pin the operator's key. Cross-region recognition
(跨地区互认) is one list naming the issuers of every region.

Wire form: a compact JWS with JOSE ``typ`` ``trustlist+jwt``, signed by the trust list operator::

    {
      "iss": "https://trust.example.gov.cn",       operator (scheme operator)
      "iat": 1767225600,                           ListIssueDateTime
      "exp": 1767830400,                           NextUpdate: not relied upon after this
      "sequence": 42,                              TSLSequenceNumber: >= 1, never decreases
      "issuers": [{
        "id": "https://scjgj.sh.gov.cn",           HTTPS issuer identifier (the credentials' iss)
        "name": {"zh-CN": "上海市市场监督管理局", "en": "Shanghai Administration for Market Regulation"},
        "region": "310000",                        administrative division code (GB/T 2260) or name
        "vcts": ["https://elicence.example/vct/business-licence"],   types it may issue
        "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "...", "y": "...", "kid": "..."}]}
      }]
    }

Verification fails closed: unsigned, ``alg`` ``none`` or another key -> the JOSE codes
(``unsupported_alg``, ``invalid_signature``); wrong ``typ`` -> ``invalid_typ``; expired -> ``cannot_verify``
(stale trust material is not evidence against a credential, but nothing can be verified with it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Union

from credentials import jws
from credentials.clock import Timestamp, seconds
from credentials.sd_jwt_vc import check_url
from credentials.errors import (
    CannotVerify,
    CredentialError,
    IatInFuture,
    InvalidKey,
    InvalidSignature,
    IssuerNotAuthorizedForType,
    Malformed,
    MissingClaim,
    UnknownKey,
    UntrustedIssuer,
)
from keys.errors import KeyMaterialError
from keys.jwk import PublicKey, thumbprint
from keys.signer import Signer

__all__ = [
    "TYP",
    "TrustedIssuer",
    "TrustList",
    "CachedTrustList",
    "TrustListCache",
    "IssuerKeyResolver",
    "create_trust_list",
    "load_trust_list",
]

#: JOSE ``typ`` of a trust list (our own media type, ``application/trustlist+jwt``).
TYP = "trustlist+jwt"

#: ``(iss, protected header, vct) -> public key``, as the SD-JWT VC verification resolves issuer keys.
IssuerKeyResolver = Callable[[str, Mapping[str, Any], str], PublicKey]

OperatorKey = Union[PublicKey, Mapping[str, Any], Sequence[Union[PublicKey, Mapping[str, Any]]]]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest % 60} s"


def _https_identifier(value: Any, what: str) -> str:
    # The same URL rule as credential issuers (https; http only on loopback for local development).
    return check_url(value, what=what)


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """One accepted issuer: identifier, display names, region, allowed ``vct`` values and public keys.

    Construction validates every member and imports every key; raises ``Malformed`` or ``InvalidKey``.
    """

    id: str
    name: Mapping[str, str]
    region: str
    vcts: tuple[str, ...]
    jwks: tuple[Mapping[str, Any], ...]
    _keys: Mapping[str, PublicKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _https_identifier(self.id, "issuer id")
        if (
            not isinstance(self.name, Mapping)
            or not self.name
            or not all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in self.name.items())
        ):
            raise Malformed(f"issuer {self.id}: name must map language tags to non-empty strings")
        object.__setattr__(self, "name", MappingProxyType(dict(self.name)))
        if not isinstance(self.region, str) or not self.region:
            raise Malformed(f"issuer {self.id}: region must be a non-empty string")
        vcts = tuple(self.vcts) if not isinstance(self.vcts, str) else None
        if not vcts or not all(isinstance(v, str) and v for v in vcts) or len(set(vcts)) != len(vcts):
            raise Malformed(f"issuer {self.id}: vcts must be a non-empty list of distinct strings")
        object.__setattr__(self, "vcts", vcts)
        jwks = tuple(self.jwks) if not isinstance(self.jwks, (str, Mapping)) else None
        if not jwks:
            raise Malformed(f"issuer {self.id}: needs at least one key")
        keys: dict[str, PublicKey] = {}
        frozen = []
        for jwk in jwks:
            if not isinstance(jwk, Mapping):
                raise Malformed(f"issuer {self.id}: every key must be a JWK object")
            try:
                # Import now, once: a list carrying a bad key is refused as a whole, and the hot path
                # (resolving a credential's key) is a dictionary lookup.
                key = jws.public_key_from_jwk(jwk)
                kid = jwk.get("kid", thumbprint(jwk))
            except KeyMaterialError as exc:
                raise InvalidKey(f"issuer {self.id}: {exc.detail}") from exc
            except InvalidKey as exc:
                raise InvalidKey(f"issuer {self.id}: {exc.detail}") from exc
            if not isinstance(kid, str) or not kid:
                raise Malformed(f"issuer {self.id}: kid must be a non-empty string")
            if kid in keys:
                raise Malformed(f"issuer {self.id}: duplicate kid {kid!r}")
            keys[kid] = key
            frozen.append(MappingProxyType({**jwk, "kid": kid}))
        object.__setattr__(self, "jwks", tuple(frozen))
        object.__setattr__(self, "_keys", MappingProxyType(keys))

    @classmethod
    def from_json(cls, obj: Any) -> TrustedIssuer:
        """Read one entry of ``issuers``; raises ``Malformed``/``MissingClaim``/``InvalidKey``."""
        if not isinstance(obj, Mapping):
            raise Malformed("each issuer must be a JSON object")
        for member in ("id", "name", "region", "vcts", "jwks"):
            if member not in obj:
                raise MissingClaim(f"issuer entry lacks {member!r}")
        jwks = obj["jwks"]
        if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
            raise Malformed(f"issuer {obj['id']!r}: jwks must be a JWK Set {{\"keys\": [...]}}")
        vcts = obj["vcts"]
        if not isinstance(vcts, list):
            raise Malformed(f"issuer {obj['id']!r}: vcts must be an array")
        return cls(id=obj["id"], name=obj["name"], region=obj["region"], vcts=tuple(vcts), jwks=tuple(jwks["keys"]))

    def to_json(self) -> dict[str, Any]:
        """The entry as it appears in the signed ``issuers`` array."""
        return {
            "id": self.id,
            "name": dict(self.name),
            "region": self.region,
            "vcts": list(self.vcts),
            "jwks": {"keys": [dict(k) for k in self.jwks]},
        }

    def key(self, kid: Any) -> PublicKey:
        """The public key with this ``kid``; raises ``UnknownKey``."""
        if not isinstance(kid, str):
            raise UnknownKey(f"the credential names no key (kid) of issuer {self.id}")
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKey(f"issuer {self.id} has no key {kid!r} on the trust list") from None


@dataclass(frozen=True, slots=True)
class TrustList:
    """A verified trust list: operator, times, sequence number and the trusted issuers."""

    iss: str
    iat: int | float
    exp: int | float
    sequence: int
    issuers: tuple[TrustedIssuer, ...]
    token: str | None = field(default=None, repr=False, compare=False)
    _by_id: Mapping[str, TrustedIssuer] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, TrustedIssuer] = {}
        for issuer in self.issuers:
            if issuer.id in by_id:
                raise Malformed(f"issuer {issuer.id} is listed twice")
            by_id[issuer.id] = issuer
        object.__setattr__(self, "issuers", tuple(self.issuers))
        object.__setattr__(self, "_by_id", MappingProxyType(by_id))

    def issuer(self, iss: str) -> TrustedIssuer:
        """The entry for issuer identifier ``iss`` (exact string match); raises ``UntrustedIssuer``."""
        try:
            return self._by_id[iss]
        except (KeyError, TypeError):
            raise UntrustedIssuer(f"issuer {iss!r} is not on the trust list (sequence {self.sequence})") from None

    def age(self, now: Timestamp) -> float:
        """Seconds since the list was issued."""
        return seconds(now) - self.iat

    def is_expired(self, now: Timestamp) -> bool:
        """Whether ``now`` is at or after ``exp`` (the list must not be relied upon any more)."""
        return seconds(now) >= self.exp

    def resolver(self) -> IssuerKeyResolver:
        """A ``(iss, header, vct) -> key`` function for SD-JWT VC verification.

        It raises ``UntrustedIssuer`` (issuer not listed), ``IssuerNotAuthorizedForType`` (``vct`` not
        allowed for it) and ``UnknownKey`` (``kid`` not among its keys), in that order.
        """

        def resolve(iss: str, header: Mapping[str, Any], vct: str) -> PublicKey:
            issuer = self.issuer(iss)
            if vct not in issuer.vcts:
                raise IssuerNotAuthorizedForType(f"issuer {iss} is not authorised to issue {vct!r}")
            return issuer.key(header.get("kid"))

        return resolve

    def to_payload(self) -> dict[str, Any]:
        """The JWT claims set of this list."""
        return {
            "iss": self.iss,
            "iat": self.iat,
            "exp": self.exp,
            "sequence": self.sequence,
            "issuers": [i.to_json() for i in self.issuers],
        }


def create_trust_list(
    issuers: Iterable[TrustedIssuer | Mapping[str, Any]],
    *,
    signer: Signer,
    iss: str,
    iat: Timestamp,
    exp: Timestamp,
    sequence: int,
) -> str:
    """Sign a trust list as the operator ``iss``; raises ``Malformed`` for bad entries or claims."""
    entries = tuple(i if isinstance(i, TrustedIssuer) else TrustedIssuer.from_json(i) for i in issuers)
    trust_list = TrustList(
        iss=_https_identifier(iss, "trust list operator (iss)"),
        iat=int(seconds(iat)),
        exp=int(seconds(exp)),
        sequence=_sequence(sequence),
        issuers=entries,
    )
    if trust_list.exp <= trust_list.iat:
        raise Malformed("exp must be after iat")
    return jws.sign(trust_list.to_payload(), signer, typ=TYP)


def _sequence(value: Any) -> int:
    # ETSI TS 119 612 clause 5.3.2 (TSLSequenceNumber) starts at 1 and grows with every new list.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Malformed(f"sequence must be an integer >= 1, not {value!r}")
    return value


def _operator_keys(operator_key: OperatorKey) -> list[PublicKey]:
    if isinstance(operator_key, Mapping):
        candidates: Sequence[Any] = [operator_key]
    elif isinstance(operator_key, Sequence) and not isinstance(operator_key, (str, bytes)):
        candidates = operator_key
    else:
        candidates = [operator_key]
    keys = [jws.public_key_from_jwk(k) if isinstance(k, Mapping) else k for k in candidates]
    if not keys:
        raise InvalidKey("no trust list operator key is pinned")
    return keys


def _claim_number(payload: Mapping[str, Any], name: str) -> int | float:
    value = payload.get(name)
    if value is None:
        raise MissingClaim(f"trust list has no {name!r} claim")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Malformed(f"trust list claim {name!r} must be a number")
    return value


def load_trust_list(
    token: str | bytes,
    *,
    operator_key: OperatorKey,
    now: Timestamp,
    max_age: float | None = None,
    leeway: float = 60,
) -> TrustList:
    """Verify a trust list against the pinned operator key(s) and return it.

    ``operator_key`` is one public key (or public JWK), or several during an operator key rollover.
    Raises ``Malformed``/``MissingClaim`` (structure), ``UnsupportedAlg`` (``none`` or unsigned),
    ``InvalidTyp``, ``InvalidSignature`` (not signed by a pinned key), ``IatInFuture``, and
    ``CannotVerify`` when expired or older than ``max_age`` seconds.
    """
    if isinstance(token, (bytes, bytearray)):
        try:
            token = bytes(token).decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise Malformed("trust list is not ASCII") from exc
    t = seconds(now)
    parsed = jws.parse(token)
    verified = None
    failure: CredentialError | None = None
    for key in _operator_keys(operator_key):
        try:
            verified = jws.verify_parsed(parsed, key, typ=TYP)
            break
        except (InvalidSignature, InvalidKey) as exc:
            # A key of another type or another key of the same type: either way, not the pinned
            # operator's signature. Algorithm, typ and crit failures are raised as they are.
            failure = exc
    if verified is None:
        raise InvalidSignature("the trust list is not signed by the pinned operator key") from failure

    payload = verified.payload
    operator = payload.get("iss")
    if operator is None:
        raise MissingClaim("trust list has no 'iss' claim")
    iat = _claim_number(payload, "iat")
    exp = _claim_number(payload, "exp")
    if "sequence" not in payload:
        raise MissingClaim("trust list has no 'sequence' claim")
    issuers = payload.get("issuers")
    if not isinstance(issuers, list):
        raise MissingClaim("trust list has no 'issuers' array")
    trust_list = TrustList(
        iss=_https_identifier(operator, "trust list operator (iss)"),
        iat=iat,
        exp=exp,
        sequence=_sequence(payload["sequence"]),
        issuers=tuple(TrustedIssuer.from_json(i) for i in issuers),
        token=token,
    )
    if exp <= iat:
        raise Malformed("trust list exp is not after its iat")
    if iat > t + leeway:
        raise IatInFuture(f"trust list is issued in the future ({_iso(iat)}); check the clock")
    if t >= exp:
        # Fail closed: an expired list must not be relied upon (ETSI TS 119 612 NextUpdate).
        raise CannotVerify(
            f"trust list (sequence {trust_list.sequence}) expired at {_iso(exp)}, {_duration(t - exp)} ago; "
            "a fresh trust list is needed"
        )
    if max_age is not None and t - iat > max_age:
        raise CannotVerify(
            f"trust list (sequence {trust_list.sequence}) was issued at {_iso(iat)}, "
            f"{_duration(t - iat)} ago, more than the allowed {_duration(max_age)}"
        )
    return trust_list


@dataclass(frozen=True, slots=True)
class CachedTrustList:
    """The trust list a :class:`TrustListCache` answered with.

    ``age`` is seconds since the list was issued; ``stale`` is true when the last refresh failed and
    this is the last good copy (``last_error`` says why), which verifiers should show to people.
    """

    trust_list: TrustList
    fetched_at: float
    age: float
    stale: bool
    last_error: CredentialError | None


#: Fetches the current trust list token (HTTP GET, a file, a USB stick for an offline counter ...).
FetchTrustList = Callable[[], Union[str, bytes]]


class TrustListCache:
    """Keeps the last good trust list, refreshing it every ``refresh_interval`` seconds.

    When a refresh fails (network down, bad signature, rollback to a lower ``sequence``), the last
    good copy is kept while it is unexpired, and reported as stale with its age. Once it has expired,
    :meth:`get` raises ``CannotVerify``. Failed refreshes are retried at most every
    ``retry_interval`` seconds, so an offline verifier does not wait on the network for each check.
    """

    def __init__(
        self,
        fetch: FetchTrustList,
        operator_key: OperatorKey,
        *,
        clock: Callable[[], float],
        refresh_interval: float = 3600,
        retry_interval: float = 60,
        max_age: float | None = None,
        min_sequence: int = 0,
        initial: str | bytes | None = None,
        leeway: float = 60,
    ) -> None:
        self._fetch = fetch
        self._operator_key = operator_key
        self._clock = clock
        self._refresh_interval = refresh_interval
        self._retry_interval = retry_interval
        self._max_age = max_age
        self._leeway = leeway
        self._min_sequence = min_sequence
        self._current: TrustList | None = None
        self._fetched_at = 0.0
        self._last_attempt: float | None = None
        self._last_error: CredentialError | None = None
        self._lock = threading.Lock()
        if initial is not None:
            # A copy shipped with the verifier or persisted on disk: checked like any other.
            now = float(seconds(clock()))
            self._current = self._load(initial, now)
            self._fetched_at = now

    @property
    def sequence(self) -> int:
        """The highest sequence number accepted so far (persist it to survive restarts)."""
        return self._current.sequence if self._current is not None else self._min_sequence

    def _load(self, token: str | bytes, now: float) -> TrustList:
        trust_list = load_trust_list(
            token, operator_key=self._operator_key, now=now, max_age=self._max_age, leeway=self._leeway
        )
        if trust_list.sequence < self.sequence:
            raise CannotVerify(
                f"trust list sequence {trust_list.sequence} is lower than the pinned {self.sequence}: "
                "rollback refused"
            )
        return trust_list

    def _answer(self, now: float) -> CachedTrustList:
        current = self._current
        if current is None:
            cause = f": {self._last_error.detail}" if self._last_error else ""
            raise CannotVerify(f"no trust list is available{cause}") from self._last_error
        if current.is_expired(now):
            cause = f"; the last refresh failed: {self._last_error.detail}" if self._last_error else ""
            raise CannotVerify(
                f"the last good trust list (sequence {current.sequence}) expired at {_iso(current.exp)}, "
                f"{_duration(now - current.exp)} ago{cause}"
            ) from self._last_error
        if self._max_age is not None and now - current.iat > self._max_age:
            raise CannotVerify(
                f"the last good trust list (sequence {current.sequence}) is {_duration(now - current.iat)} "
                f"old, more than the allowed {_duration(self._max_age)}"
            ) from self._last_error
        return CachedTrustList(
            trust_list=current,
            fetched_at=self._fetched_at,
            age=now - current.iat,
            stale=self._last_error is not None,
            last_error=self._last_error,
        )

    def _due(self, now: float) -> bool:
        if self._last_error is not None and self._last_attempt is not None:
            if now - self._last_attempt < self._retry_interval:
                # The last attempt failed: do not try the network again before retry_interval.
                return False
        current = self._current
        return current is None or current.is_expired(now) or now - self._fetched_at >= self._refresh_interval

    def get(self) -> CachedTrustList:
        """The current trust list, refreshed when due; raises ``CannotVerify`` if none is usable."""
        now = float(seconds(self._clock()))
        if not self._due(now):
            return self._answer(now)
        with self._lock:
            now = float(seconds(self._clock()))
            if self._due(now):
                self._refresh(now)
            return self._answer(now)

    def _refresh(self, now: float) -> None:
        self._last_attempt = now
        try:
            token = self._fetch()
            trust_list = self._load(token, now)
        except CredentialError as exc:
            self._last_error = exc
            return
        except Exception as exc:  # the fetcher is pluggable: any transport failure
            self._last_error = CannotVerify(f"trust list could not be fetched: {type(exc).__name__}: {exc}")
            self._last_error.__cause__ = exc
            return
        self._current = trust_list
        self._fetched_at = now
        self._last_error = None

    def resolver(self) -> IssuerKeyResolver:
        """A ``(iss, header, vct) -> key`` resolver that always uses the current list (see :meth:`get`)."""

        def resolve(iss: str, header: Mapping[str, Any], vct: str) -> PublicKey:
            return self.get().trust_list.resolver()(iss, header, vct)

        return resolve
