"""Timing helpers for the benchmarks: ``time.perf_counter_ns`` around single calls, many repeats.

Every timed call is measured on its own (one ``perf_counter_ns`` pair per call, about 0.1 µs of
overhead, negligible against the ≥ 20 µs operations timed here), so a figure is a distribution, not
a mean of a loop: :class:`Stats` keeps the median, the 10th and 90th percentiles and the minimum.
The garbage collector is disabled while timing (as :mod:`timeit` does) and run between blocks.

:func:`interleaved` times several operations in turn, in blocks of calls, so that load from other
processes on the machine falls on all of them alike and the ratios of their medians stay meaningful
on a busy machine.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Stats", "stats", "latency_ms", "measure", "interleaved", "fmt_ns"]


@dataclass(frozen=True, slots=True)
class Stats:
    """A timing distribution in nanoseconds."""

    n: int
    median: float
    p10: float
    p90: float
    min: float

    def to_dict(self) -> dict[str, float]:
        return {"n": self.n, "median_ns": self.median, "p10_ns": self.p10, "p90_ns": self.p90, "min_ns": self.min}


def stats(samples: list[int]) -> Stats:
    """The :class:`Stats` of a list of durations (ns); needs at least two samples."""
    if len(samples) < 2:
        raise ValueError("need at least two samples")
    deciles = statistics.quantiles(samples, n=10, method="inclusive")
    return Stats(len(samples), float(statistics.median(samples)), deciles[0], deciles[-1], float(min(samples)))


def latency_ms(seconds: list[float]) -> dict[str, float]:
    """Latencies measured in seconds, summarised in milliseconds: ``n``, ``p50_ms``, ``p95_ms``,
    ``p99_ms`` (inclusive percentiles) and ``max_ms``."""
    if not seconds:
        raise ValueError("need at least one sample")
    q = statistics.quantiles(seconds, n=100, method="inclusive") if len(seconds) > 1 else [seconds[0]] * 99
    return {"n": len(seconds), "p50_ms": statistics.median(seconds) * 1e3, "p95_ms": q[94] * 1e3,
            "p99_ms": q[98] * 1e3, "max_ms": max(seconds) * 1e3}


def measure(fn: Callable[[int], Any], *, repeats: int, warmup: int = 3) -> Stats:
    """Time ``fn(i)`` once per round, each call on its own (see :func:`interleaved`)."""
    return interleaved({"_": fn}, repeats=repeats, warmup=warmup)["_"]


def interleaved(
    fns: Mapping[str, Callable[[int], Any]], *, repeats: int, warmup: int = 3, block: int = 50
) -> dict[str, Stats]:
    """Time ``repeats`` calls of each ``fn(i)``, alternating between the functions every ``block`` calls.

    Rounds ``0 .. warmup - 1`` are untimed warm-up, rounds ``warmup .. warmup + repeats - 1`` are
    timed: ``i`` lets a function take a fresh input per call (a new presentation, prepared
    beforehand outside the timed region), so ``warmup + repeats`` inputs are needed. Alternating in
    blocks (a few milliseconds each) spreads machine load over all functions alike, while each
    function runs with warm caches as a steady stream of verifications would; alternating on every
    call instead charges each function for the cache lines the previous one evicted.
    """
    clock = time.perf_counter_ns
    samples: dict[str, list[int]] = {name: [] for name in fns}
    for i in range(warmup):
        for fn in fns.values():
            fn(i)
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for start in range(warmup, warmup + repeats, block):
            rounds = range(start, min(start + block, warmup + repeats))
            for name, fn in fns.items():
                out = samples[name]
                for i in rounds:
                    t0 = clock()
                    fn(i)
                    out.append(clock() - t0)
            gc.enable()
            gc.collect()
            gc.disable()
    finally:
        if enabled:
            gc.enable()
    return {name: stats(s) for name, s in samples.items()}


def fmt_ns(ns: float) -> str:
    """A duration for a table, in µs below 1 ms, in ms below 1 s, else in s."""
    if ns < 1_000_000:
        return f"{ns / 1e3:.1f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"
