"""The verifier SDK: a department's integration in a few lines, online or offline.

No web framework, no database: this module and everything it imports install with the lean base
package (``pip install elicence``). One :class:`Verifier` holds a trust list source, a status list
source, a replay store and a :class:`Policy`, and verifies a QR image, a compact ``EL1:`` payload or
an SD-JWT presentation::

    verifier = Verifier(trust=TrustListSource.from_file("trust.jwt", anchor="operator.jwk"),
                        status=StatusSource.from_files(["list-1.jwt"]))
    result = verifier.verify(png_bytes)

:meth:`Verifier.verify` returns a :class:`VerificationResult` or raises a
:class:`~credentials.errors.CredentialError` whose ``code`` says why; the error's ``check`` and
``passed`` attributes, and :func:`failure_report`, say which checks ran. Trust or status material
that is stale or unreachable gives ``cannot_verify`` / ``status_unavailable``, never "valid".
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from credentials import jws, qr
from credentials.errors import CredentialError, Malformed, StatusUnavailable
from credentials.sd_jwt import KeyBindingPolicy
from credentials.sd_jwt_vc import NEVER_DISCLOSABLE, StatusReference, VerifiedCredential, check_url, verify_vc
from credentials.status_list import MEDIA_TYPE as STATUS_LIST_MEDIA_TYPE
from credentials.status_list import CachedStatusList, StatusListCache
from credentials.trace import CheckTrace
from credentials.trust import CachedTrustList, TrustListCache
from keys.jwk import PublicKey
from verifier.checks import CHECKS, ReplayStore, check_policy, check_replay, check_status

__all__ = [
    "Policy",
    "TrustListSource",
    "StatusSource",
    "MemoryReplayStore",
    "CheckResult",
    "VerificationResult",
    "Verifier",
    "decode_input",
    "failure_report",
    "http_fetch",
]

#: The subject claims of a result leave out the registered claims a department has no use for.
_REGISTERED = NEVER_DISCLOSABLE | {"_sd_alg"}
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF")
_MAX_FETCH_BYTES = 8 * 1024 * 1024

Input = Union[str, bytes, bytearray, Any]  # text, bytes of text or of an image, or a PIL image
Clock = Callable[[], float]


def _check_fetch_url(url: str) -> None:
    # One URL rule for the whole core (credentials.sd_jwt_vc.check_url: https, or http on a loopback
    # host); a ValueError here is what the caches turn into status_unavailable / cannot_verify.
    try:
        check_url(url, what="fetch URL")
    except Malformed as exc:
        raise ValueError(f"refusing to fetch: {exc.detail}") from exc


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Applies the rule of :func:`http_fetch` to every redirect, not only to the first URL."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        try:
            _check_fetch_url(newurl)
        except ValueError:
            fp.close()
            raise
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_CheckedRedirects)


def http_fetch(url: str, *, timeout: float = 5.0, max_bytes: int = _MAX_FETCH_BYTES, accept: str = "*/*") -> bytes:
    """GET ``url`` over HTTPS (or HTTP on loopback, for tests and local demos) with a size bound.

    Redirects are followed only to URLs that satisfy the same rule. Raises ``OSError``/``ValueError``
    subclasses on any failure; the caches turn those into ``status_unavailable`` / ``cannot_verify``.
    """
    _check_fetch_url(url)
    request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "elicence-verifier"})
    with _OPENER.open(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
        body = response.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise ValueError(f"{url} answered more than {max_bytes} bytes")
    return body


@dataclass(frozen=True, slots=True)
class Policy:
    """What this verifier accepts.

    ``audience`` and ``nonce`` are those the KB-JWT must carry: the defaults are the offline QR
    profile (audience ``urn:elicence:offline``, no verifier nonce, freshness window instead). An
    online verifier passes its client identifier and the request's nonce per call. ``freshness`` is
    the oldest KB-JWT ``iat`` accepted (seconds), ``skew`` the clock tolerance.
    """

    accepted_vcts: frozenset[str] | None = None
    required_claims: Mapping[str, tuple[str, ...]] | tuple[str, ...] = ()
    require_key_binding: bool = True
    require_status: bool = True
    audience: str | frozenset[str] = qr.OFFLINE_AUDIENCE
    freshness: int = qr.OFFLINE_FRESHNESS
    skew: int = 60


class TrustListSource:
    """The pinned trust list: refreshed from its source, last good copy kept while unexpired."""

    def __init__(self, cache: TrustListCache) -> None:
        self._cache = cache

    @classmethod
    def from_file(
        cls, path: str | Path, *, anchor: Any, clock: Clock = time.time, refresh_interval: float = 60
    ) -> TrustListSource:
        """A list read from ``path`` (re-read every ``refresh_interval`` s), signed by ``anchor``.

        ``anchor`` is the operator's public key: a key object, a JWK mapping, or a JWK file path.
        Raises the errors of :func:`credentials.trust.load_trust_list` for the first copy.
        """
        file = Path(path)
        return cls.from_fetch(
            file.read_bytes, anchor=anchor, clock=clock, refresh_interval=refresh_interval, initial=file.read_bytes()
        )

    @classmethod
    def from_url(
        cls, url: str, *, anchor: Any, clock: Clock = time.time, fetch: Callable[[str], bytes] = http_fetch, **kw: Any
    ) -> TrustListSource:
        """A list fetched from ``url`` (HTTPS) and refreshed periodically."""
        return cls.from_fetch(lambda: fetch(url), anchor=anchor, clock=clock, **kw)

    @classmethod
    def from_fetch(
        cls, fetch: Callable[[], bytes | str], *, anchor: Any, clock: Clock = time.time, **kw: Any
    ) -> TrustListSource:
        """A list obtained by ``fetch()`` (any transport), with :class:`TrustListCache` options."""
        return cls(TrustListCache(fetch, _anchor_key(anchor), clock=clock, **kw))

    def current(self) -> CachedTrustList:
        """The list to use now; raises ``cannot_verify`` when no unexpired copy exists."""
        return self._cache.get()


def _anchor_key(anchor: Any) -> Any:
    if isinstance(anchor, (str, Path)):
        try:
            anchor = json.loads(Path(anchor).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise Malformed(f"cannot read the trust anchor {anchor}: {exc}") from exc
    if isinstance(anchor, Mapping):
        return jws.public_key_from_jwk({k: v for k, v in anchor.items() if k not in ("kid", "alg", "use")})
    return anchor


class StatusSource:
    """Status list tokens by URI: fetched over HTTPS with a ``ttl`` cache, or pinned files offline.

    One cache per issuer: a status list is accepted for a credential only when signed by that
    credential's issuer (a key of that issuer on the trust list).
    """

    def __init__(self, fetch: Callable[[str], bytes | str], *, clock: Clock = time.time, max_age: float = 3600) -> None:
        self._fetch = fetch
        self._clock = clock
        self._max_age = max_age
        self._caches: dict[str, StatusListCache] = {}
        self._lock = threading.Lock()

    @classmethod
    def http(cls, *, clock: Clock = time.time, timeout: float = 5.0, max_age: float = 3600) -> StatusSource:
        """Fetch each list from the URI in the credential (HTTPS), caching it for its ``ttl``."""
        return cls(lambda uri: http_fetch(uri, timeout=timeout, accept=STATUS_LIST_MEDIA_TYPE), clock=clock, max_age=max_age)

    @classmethod
    def from_files(cls, paths: Iterable[str | Path], *, clock: Clock = time.time, max_age: float = 3600) -> StatusSource:
        """Pinned tokens for fully offline use, found by their ``sub`` (the URI credentials name).

        The files are re-read when a cached copy expires, so replacing a file refreshes the list.
        Raises ``malformed`` for a file that is not a status list token.
        """
        by_uri: dict[str, Path] = {}
        for path in paths:
            file = Path(path)
            try:
                text = file.read_text(encoding="ascii").strip()
            except UnicodeDecodeError as exc:
                raise Malformed(f"{file} is not a status list token (not ASCII)") from exc
            by_uri[_token_sub(text)] = file

        def fetch(uri: str) -> bytes:
            if uri not in by_uri:
                raise StatusUnavailable(f"no pinned status list for {uri}")
            return by_uri[uri].read_bytes().strip()

        return cls(fetch, clock=clock, max_age=max_age)

    def lookup(self, reference: StatusReference, issuer: str, keys: Callable[[str, Mapping[str, Any]], PublicKey]) -> CachedStatusList:
        """Apply the list at ``reference.uri`` (signed by ``issuer``) to ``reference.idx``."""
        with self._lock:
            cache = self._caches.get(issuer)
            if cache is None:
                cache = StatusListCache(
                    self._fetch,
                    lambda uri, header, _iss=issuer: keys(_iss, header),
                    clock=self._clock,
                    max_age=self._max_age,
                )
                self._caches[issuer] = cache
        return cache.check(reference)


def _token_sub(token: str) -> str:
    sub = jws.parse(token).payload.get("sub")
    if not isinstance(sub, str):
        raise Malformed("status list token has no sub")
    return sub


class MemoryReplayStore:
    """A thread-safe in-process replay cache (one verifier process; services use the database)."""

    def __init__(self, *, purge_every: int = 1024) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._purge_every = purge_every
        self._inserts = 0

    def remember(self, key: str, *, expires_at: float, now: float) -> bool:
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and seen > now:
                return False
            self._seen[key] = expires_at
            self._inserts += 1
            if self._inserts % self._purge_every == 0:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
            return True

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One named check: whether it passed, and the error code when it failed."""

    name: str
    passed: bool
    code: str | None = None


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """A verified presentation: who issued what, which claims were shown, and how fresh the evidence was.

    ``claims`` holds only the disclosed subject claims (registered claims are in their own fields).
    ``trust_list_age`` / ``status_list_age`` are seconds since the trust list was issued and since the
    status list was fetched; ``trust_list_stale`` is true when the last trust list refresh failed.
    """

    issuer: str
    issuer_name: Mapping[str, str]
    region: str | None
    vct: str
    claims: Mapping[str, Any]
    issued_at: int | float | None
    expires_at: int | float
    status: str
    holder_bound: bool
    presented_at: int | float | None
    checks: tuple[CheckResult, ...]
    trust_list_age: float
    trust_list_stale: bool
    status_list_age: float | None
    credential: VerifiedCredential = field(repr=False, compare=False)

    @property
    def valid(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the CLI's ``--json`` and the services' responses)."""
        return {
            "verdict": "valid",
            "issuer": self.issuer,
            "issuer_name": dict(self.issuer_name),
            "region": self.region,
            "vct": self.vct,
            "claims": _plain(self.claims),
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "status": self.status,
            "holder_bound": self.holder_bound,
            "presented_at": self.presented_at,
            "trust_list_age_s": round(self.trust_list_age, 1),
            "trust_list_stale": self.trust_list_stale,
            "status_list_age_s": None if self.status_list_age is None else round(self.status_list_age, 1),
            "checks": [{"name": c.name, "passed": c.passed, "code": c.code} for c in self.checks],
        }


# CheckResult values are immutable: one per check name, reused by every result (about 4 µs a result).
_PASSED: dict[str, CheckResult] = {}


def _passed(names: Iterable[str]) -> tuple[CheckResult, ...]:
    out = []
    for name in names:
        result = _PASSED.get(name)
        if result is None:
            result = _PASSED.setdefault(name, CheckResult(name, True))
        out.append(result)
    return tuple(out)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _claimed(presentation: str) -> dict[str, str]:
    """The issuer and type a presentation claims, read without verification (for display on failure)."""
    try:
        payload = jws.parse(presentation.split("~", 1)[0]).payload
    except CredentialError:
        return {}
    return {k: payload[k] for k in ("iss", "vct") if isinstance(payload.get(k), str)}


def failure_report(error: CredentialError) -> dict[str, Any]:
    """The JSON-ready view of a failed verification: code, messages, and the checks that ran.

    ``claimed_issuer`` / ``claimed_vct`` are what the presentation says of itself, unverified: shown so
    a counter can tell the holder which credential failed, never as a statement of fact.
    """
    checks = [{"name": name, "passed": True, "code": None} for name in error.passed]
    if error.check is not None:
        checks.append({"name": error.check, "passed": False, "code": error.code})
    return {
        "verdict": "invalid",
        "error": error.code,
        "error_description": error.detail,
        "message_en": error.description,
        "message_zh": error.description_zh,
        "failed_check": error.check,
        "checks": checks,
        "claimed_issuer": error.claimed.get("iss"),
        "claimed_vct": error.claimed.get("vct"),
    }


def decode_input(data: Input) -> str:
    """The SD-JWT presentation in ``data``: a QR image (bytes or PIL image), an ``EL1:`` payload, or the text.

    Raises ``malformed`` / ``payload_too_large`` for anything else.
    """
    if isinstance(data, (bytes, bytearray)):
        raw = bytes(data)
        if raw.startswith(_IMAGE_MAGIC):
            data = qr.decode_image(raw)
        else:
            try:
                data = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Malformed("input is neither an image nor UTF-8 text") from exc
    elif not isinstance(data, str):
        data = qr.decode_image(data)
    text = data.strip()
    if qr.is_compact_payload(text):
        return qr.decode_payload(text)
    if "~" not in text:
        raise Malformed("input is not a QR image, an EL1: payload or an SD-JWT presentation")
    return text


class Verifier:
    """Verifies eLicence presentations against a pinned trust list and status lists."""

    def __init__(
        self,
        *,
        trust: TrustListSource,
        status: StatusSource | None = None,
        policy: Policy = Policy(),
        replay: ReplayStore | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.trust = trust
        self.status = status if status is not None else StatusSource.http(clock=clock)
        self.policy = policy
        self.replay = replay if replay is not None else MemoryReplayStore()
        self._clock = clock

    def verify(
        self,
        data: Input,
        *,
        nonce: str | None = None,
        audience: str | None = None,
        now: float | None = None,
    ) -> VerificationResult:
        """Run every check in order and return the result, or raise the first failure's coded error.

        ``nonce``/``audience`` override the policy for an online request (OpenID4VP) whose nonce
        the verifier chose. The error carries ``.check`` (the failed check) and ``.passed``.
        """
        moment = self._clock() if now is None else now
        trace = CheckTrace()
        with trace.step("decode"):
            presentation = decode_input(data)
        policy = self.policy
        kb = None
        if policy.require_key_binding:
            kb = KeyBindingPolicy(
                nonce=nonce,
                aud=audience if audience is not None else policy.audience,
                max_age=policy.freshness,
                skew=policy.skew,
            )
        used_trust: list[CachedTrustList] = []

        def resolve(iss: str, header: Mapping[str, Any], vct: str) -> PublicKey:
            # Runs inside the trusted_issuer check: no usable trust list fails there (cannot_verify).
            trusted = self.trust.current()
            used_trust.append(trusted)
            return trusted.trust_list.resolver()(iss, header, vct)

        try:
            credential = verify_vc(
                presentation,
                resolve_issuer_key=resolve,
                now=int(moment),
                skew=policy.skew,
                kb=kb,
                trace=trace,
            )
            with trace.step("status"):
                used = check_status(credential, self._lookup_status, required=policy.require_status)
            with trace.step("policy"):
                check_policy(credential, accepted_vcts=policy.accepted_vcts, required_claims=policy.required_claims)
            with trace.step("replay"):
                check_replay(credential, self.replay, window=policy.freshness + 2 * policy.skew, now=moment)
        except CredentialError as exc:
            exc.claimed = _claimed(presentation)
            raise
        trusted = used_trust[0]
        issuer = trusted.trust_list.issuer(credential.issuer)
        return VerificationResult(
            issuer=credential.issuer,
            issuer_name=issuer.name,
            region=issuer.region,
            vct=credential.vct,
            claims={k: v for k, v in credential.claims.items() if k not in _REGISTERED},
            issued_at=credential.iat,
            expires_at=credential.exp,
            status="valid" if used is not None else "not_checked",
            holder_bound=credential.key_bound,
            presented_at=None if credential.kb_payload is None else credential.kb_payload.get("iat"),
            checks=_passed(trace.passed),
            trust_list_age=trusted.trust_list.age(moment),
            trust_list_stale=trusted.stale,
            status_list_age=None if used is None else used.age,
            credential=credential,
        )

    def _lookup_status(self, reference: StatusReference, issuer: str) -> CachedStatusList:
        return self.status.lookup(reference, issuer, self._issuer_key)

    def _issuer_key(self, issuer: str, header: Mapping[str, Any]) -> PublicKey:
        # The issuer may have left the trust list since the credential was checked: untrusted_issuer.
        return self.trust.current().trust_list.issuer(issuer).key(header.get("kid"))

    @staticmethod
    def check_names() -> tuple[str, ...]:
        """The names of all checks, in the order they run."""
        return tuple(c.name for c in CHECKS)
