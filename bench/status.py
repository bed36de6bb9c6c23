"""Benchmark (d): a status list of 1,000,000 two-bit entries, about 1% of them set.

Timed per round, with :mod:`credentials.status_list` as an issuer and a verifier use it:

* ``build``: :class:`~credentials.status_list.StatusListBuilder` of 1,000,000 entries, 10,000 of them
  set at random (two thirds revoked, one third suspended) with ``update``, then ``freeze``;
* ``compress + sign``: :func:`~credentials.status_list.sign_status_list_token` (ZLIB at the library's
  level, 9, base64url, ES256 signature by the issuer);
* ``build + compress + sign``: the two above, summed per round;
* ``decode + look up``: :func:`~credentials.status_list.verify_status_list_token` (signature, claims,
  base64url, inflate with its size bound) and then the status of one index.

The entries set are the same every round (a seeded generator); the lookup index is one of them.
"""

from __future__ import annotations

import gc
import random
import time
from typing import Any

from bench.fixtures import NOW, Scenario
from bench.timing import measure, stats
from credentials import status_list

__all__ = ["run", "SIZE", "SET"]

SIZE = 1_000_000
SET = 10_000


def run(*, build_repeats: int = 7, lookup_repeats: int = 30) -> dict[str, Any]:
    """Run benchmark (d); returns its figures and the sizes of what was built."""
    world = Scenario().world
    rnd = random.Random(1)
    indexes = rnd.sample(range(SIZE), SET)
    entries = [(idx, status_list.INVALID if k % 3 else status_list.SUSPENDED) for k, idx in enumerate(indexes)]
    uri = world.status_uri

    def build() -> status_list.StatusList:
        builder = status_list.StatusListBuilder(SIZE, bits=2)
        builder.update(entries)
        return builder.freeze()

    def sign(lst: status_list.StatusList) -> str:
        return status_list.sign_status_list_token(
            lst, signer=world.issuer, sub=uri, iss=world.issuer_id, iat=NOW, exp=NOW + 86400, ttl=300
        )

    clock = time.perf_counter_ns
    built, signed, total = [], [], []
    token = ""
    sign(build())  # warm-up
    for _ in range(build_repeats):
        gc.collect()
        t0 = clock()
        lst = build()
        t1 = clock()
        token = sign(lst)
        t2 = clock()
        built.append(t1 - t0)
        signed.append(t2 - t1)
        total.append(t2 - t0)

    issuer_key = world.issuer.private_key.public_key()
    probe = indexes[0]
    expected = entries[0][1]

    def lookup(i: int) -> int:
        verified = status_list.verify_status_list_token(token, key=issuer_key, expected_uri=uri, now=NOW + 30)
        return verified.status(probe)

    if lookup(0) != expected:
        raise RuntimeError("the status list does not hold the value that was set")
    lookups = measure(lookup, repeats=lookup_repeats, warmup=2)
    lst = build()
    return {
        "stats": {
            "build": stats(built),
            "compress + sign": stats(signed),
            "build + compress + sign": stats(total),
            "decode + look up": lookups,
        },
        "entries": lst.size,
        "raw_bytes": len(lst.data),
        "compressed_bytes": len(lst.compress()),
        "token_chars": len(token),
        "set": SET,
    }
