"""Thread safety of the verifier SDK: one replay cache and one status source shared by many threads.

No sleeps: threads are lined up with a barrier, and the status fetch waits (with a generous safety
timeout, never asserted) until every verifying thread has looked at the empty cache, so that without
the single-flight lock each of them would fetch.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from verifier.sdk import MemoryReplayStore, StatusSource

NOW = 1_790_000_000
THREADS = 8


def test_replay_store_remembers_a_key_for_exactly_one_of_concurrent_callers():
    for round_ in range(50):
        store = MemoryReplayStore()
        barrier = threading.Barrier(THREADS)

        def remember(_: int) -> bool:
            barrier.wait()
            return store.remember(f"kb-{round_}", expires_at=NOW + 420, now=NOW)

        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(remember, range(THREADS)))
        assert results.count(True) == 1, results
        assert len(store) == 1


def test_replay_store_forgets_a_key_after_it_expires_and_purges_old_keys():
    store = MemoryReplayStore(purge_every=4)
    assert store.remember("a", expires_at=NOW + 10, now=NOW)
    assert not store.remember("a", expires_at=NOW + 10, now=NOW + 9)
    assert store.remember("a", expires_at=NOW + 30, now=NOW + 10)
    for key in ("b", "c", "d"):
        assert store.remember(key, expires_at=NOW + 20, now=NOW + 10)
    # The fourth insert purged nothing yet (all unexpired); later inserts drop the expired ones.
    assert len(store) == 4
    for key in ("e", "f", "g", "h"):
        assert store.remember(key, expires_at=NOW + 100, now=NOW + 25)
    assert len(store) == 5  # a (until +30) and e-h; b, c, d expired at +20


class GatedFetch:
    """A status endpoint that holds the first fetch until every thread has consulted the cache."""

    def __init__(self, token: str, expected: int) -> None:
        self.token = token
        self.expected = expected
        self.fetches = 0
        self.readers: set[int] = set()
        self._cond = threading.Condition()

    def clock(self) -> float:
        # StatusListCache.get reads the clock once before its lock: count who got that far.
        with self._cond:
            self.readers.add(threading.get_ident())
            self._cond.notify_all()
        return float(NOW)

    def __call__(self, uri: str) -> str:
        with self._cond:
            self.fetches += 1
            self._cond.wait_for(lambda: len(self.readers) >= self.expected, timeout=30)
        return self.token


def test_status_source_fetches_each_list_once_for_concurrent_verifications(kit, clock):
    gate = GatedFetch(kit.world.status_token, THREADS)
    verifier = kit.verifier(clock=clock, status=StatusSource(gate, clock=gate.clock))
    presentations = [kit.present() for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def verify(text: str) -> str:
        barrier.wait()
        return verifier.verify(text).status

    with ThreadPoolExecutor(THREADS) as pool:
        statuses = list(pool.map(verify, presentations))
    assert statuses == ["valid"] * THREADS
    assert len(gate.readers) == THREADS  # every thread reached the cache while the fetch was held
    assert gate.fetches == 1


def test_concurrent_verifications_of_one_presentation_accept_it_once(kit):
    verifier = kit.verifier()
    text = kit.el1()
    barrier = threading.Barrier(THREADS)

    def verify(_: int) -> str:
        barrier.wait()
        try:
            return verifier.verify(text).status
        except Exception as exc:  # noqa: BLE001 - the code is what is compared
            return getattr(exc, "code", repr(exc))

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(verify, range(THREADS)))
    assert sorted(outcomes) == ["replay"] * (THREADS - 1) + ["valid"]
