"""StatusListCache: ttl (draft-ietf-oauth-status-list-18 s8.3 step 4d, s13.7), single flight, fail closed."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from credentials.errors import CredentialError
from credentials.status_list import (
    StatusList,
    StatusListCache,
    sign_status_list_token,
)
from keys.signer import SoftwareSigner



@dataclass(frozen=True)
class StatusReference:
    """Stands in for credentials.sd_jwt_vc.StatusReference: anything with idx and uri."""

    idx: int
    uri: str


URI = "https://scjgj.example.gov.cn/statuslists/7"
T0 = 1_767_225_600
SIGNER = SoftwareSigner.generate("ES256")
KEY = SIGNER.private_key.public_key()


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Publisher:
    """A status provider: serves the current token, counts fetches, can go offline."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.fetches = 0
        self.offline = False
        self.signer = SIGNER
        self.publish(StatusList.new(64, 2), ttl=300, exp_in=3600)

    def publish(self, lst: StatusList, *, ttl=300, exp_in=3600, iat=None) -> None:
        iat = self.clock.t if iat is None else iat
        self.token = sign_status_list_token(
            lst,
            signer=self.signer,
            sub=URI,
            iat=iat,
            exp=None if exp_in is None else iat + exp_in,
            ttl=ttl,
        )

    def __call__(self, uri: str) -> bytes:
        self.fetches += 1
        if self.offline:
            raise OSError("network unreachable")
        assert uri == URI
        return self.token.encode()


def _cache(clock, publisher, **kw) -> StatusListCache:
    return StatusListCache(publisher, lambda uri, header: KEY, clock=clock, **kw)


def _code(fn) -> str:
    with pytest.raises(CredentialError) as exc:
        fn()
    return exc.value.code


def test_list_is_served_from_cache_until_ttl_then_refetched():
    clock = Clock()
    pub = Publisher(clock)
    cache = _cache(clock, pub)
    first = cache.get(URI)
    assert (pub.fetches, first.refreshed, first.age) == (1, True, 0)
    clock.t += 299
    again = cache.get(URI)
    assert (pub.fetches, again.refreshed, again.age) == (1, False, 299)
    clock.t += 1  # ttl reached
    assert cache.get(URI).refreshed and pub.fetches == 2


def test_revocation_is_seen_after_ttl():
    clock = Clock()
    pub = Publisher(clock)
    cache = _cache(clock, pub)
    ref = StatusReference(9, URI)
    cache.check(ref)
    pub.publish(StatusList.new(64, 2).with_status(9, 1))
    clock.t += 100
    cache.check(ref)  # still the cached list within ttl
    clock.t += 200
    assert _code(lambda: cache.check(ref)) == "revoked"


def test_without_ttl_the_default_max_age_applies():
    clock = Clock()
    pub = Publisher(clock)
    pub.publish(StatusList.new(64, 2), ttl=None, exp_in=None)
    cache = _cache(clock, pub, max_age=120)
    assert cache.get(URI).usable_until == T0 + 120
    clock.t += 119
    cache.get(URI)
    assert pub.fetches == 1
    clock.t += 1
    cache.get(URI)
    assert pub.fetches == 2


def test_ttl_is_clamped_to_the_configured_bounds():
    clock = Clock()
    pub = Publisher(clock)
    pub.publish(StatusList.new(64, 2), ttl=86_400 * 30, exp_in=None)
    assert _cache(clock, pub, max_age=600).get(URI).usable_until == T0 + 600
    pub.publish(StatusList.new(64, 2), ttl=1, exp_in=None)
    assert _cache(clock, pub, min_ttl=30).get(URI).usable_until == T0 + 30


def test_exp_before_ttl_ends_the_cache_period():
    clock = Clock()
    pub = Publisher(clock)
    pub.publish(StatusList.new(64, 2), ttl=300, exp_in=100)
    cache = _cache(clock, pub)
    assert cache.get(URI).usable_until == T0 + 100
    clock.t += 100
    pub.publish(StatusList.new(64, 2))
    assert cache.get(URI).refreshed and pub.fetches == 2


def test_single_flight_many_threads_one_fetch():
    clock = Clock()
    pub = Publisher(clock)
    release = threading.Event()
    inner = pub.__call__

    def slow_fetch(uri):
        # Hold the fetch until every thread has asked; without single flight each would fetch.
        release.wait(5)
        return inner(uri)

    cache = StatusListCache(slow_fetch, lambda uri, header: KEY, clock=clock)
    results, errors = [], []

    def worker():
        try:
            results.append(cache.get(URI))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.2)  # let the threads pile up on the fetch (not a timing assertion)
    release.set()
    for t in threads:
        t.join(5)
    assert not errors
    assert len(results) == 16
    assert pub.fetches == 1
    assert sum(r.refreshed for r in results) == 1
    assert len({id(r.verified) for r in results}) == 1


def test_lists_at_different_uris_do_not_wait_for_each_other():
    clock = Clock()
    blocked = threading.Event()
    pub = Publisher(clock)
    other = "https://scjgj.example.gov.cn/statuslists/8"
    other_token = sign_status_list_token(StatusList.new(8, 1), signer=SIGNER, sub=other, iat=T0, ttl=60)

    def fetch(uri):
        if uri == URI:
            blocked.wait(5)  # a slow list ...
            return pub.token
        return other_token  # ... must not hold up another one

    cache = StatusListCache(fetch, lambda uri, header: KEY, clock=clock)
    slow = threading.Thread(target=cache.get, args=(URI,))
    slow.start()
    try:
        assert cache.get(other).verified.sub == other
    finally:
        blocked.set()
        slow.join(5)


def test_stale_and_unreachable_is_status_unavailable():
    clock = Clock()
    pub = Publisher(clock)
    cache = _cache(clock, pub)
    cache.get(URI)
    pub.offline = True
    clock.t += 299
    cache.get(URI)  # still within ttl: no fetch needed
    clock.t += 1
    with pytest.raises(CredentialError) as exc:
        cache.get(URI)
    assert exc.value.code == "status_unavailable"
    assert "300 s ago" in exc.value.detail  # the age of the copy it could not use
    assert isinstance(exc.value.__cause__, OSError)


def test_nothing_cached_and_unreachable_is_status_unavailable():
    clock = Clock()
    pub = Publisher(clock)
    pub.offline = True
    assert _code(lambda: _cache(clock, pub).get(URI)) == "status_unavailable"


def test_an_older_list_than_the_cached_one_is_refused():
    clock = Clock()
    pub = Publisher(clock)
    cache = _cache(clock, pub)
    cache.get(URI)
    clock.t += 300
    pub.publish(StatusList.new(64, 2), iat=T0 - 60)  # a stale CDN copy or a replay
    assert _code(lambda: cache.get(URI)) == "status_unavailable"


def test_a_badly_signed_refresh_raises_its_own_code():
    clock = Clock()
    pub = Publisher(clock)
    cache = _cache(clock, pub)
    cache.get(URI)
    clock.t += 300
    pub.signer = SoftwareSigner.generate("ES256")
    pub.publish(StatusList.new(64, 2))
    assert _code(lambda: cache.get(URI)) == "invalid_signature"


def test_key_resolver_is_asked_for_the_uri_and_header():
    clock = Clock()
    pub = Publisher(clock)
    asked = []

    def resolver(uri, header):
        asked.append((uri, header["kid"]))
        return KEY

    StatusListCache(pub, resolver, clock=clock).get(URI)
    assert asked == [(URI, SIGNER.kid)]


def test_check_reports_status_codes_and_out_of_range():
    clock = Clock()
    pub = Publisher(clock)
    pub.publish(StatusList.new(64, 2).with_status(1, 1).with_status(2, 2).with_status(3, 3))
    cache = _cache(clock, pub)
    assert cache.check(StatusReference(0, URI)).age == 0
    assert _code(lambda: cache.check(StatusReference(1, URI))) == "revoked"
    assert _code(lambda: cache.check(StatusReference(2, URI))) == "suspended"
    assert _code(lambda: cache.check(StatusReference(3, URI))) == "status_error"
    assert _code(lambda: cache.check(StatusReference(64, URI))) == "status_list_invalid"
