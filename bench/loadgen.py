"""A small HTTP/1.1 load generator, run as its own process: ``python -m bench.loadgen REQUESTS.jsonl``.

Each line of the requests file is ``{"method", "path", "headers", "body"}`` (body text or absent).
``--connections`` keep-alive connections to ``--host``/``--port`` take requests from the file in
order, one at a time each, until none is left; every request is sent once (no retries: a failure
counts). With ``--rate R`` the load is open-loop: request *i* is due at *i*/R seconds after the start and
is not sent before then, so the server sees R requests per second whatever its latency (enough
connections must be free for that; the summary says how late the latest send was). With
``--expect TEXT``, a 2xx answer whose body lacks TEXT counts as unexpected (a cheap byte search, e.g.
for a verdict). The summary on standard output is JSON: requests, statuses, wall time from the first
request sent to the last response read, throughput, latency percentiles, and the generator's own
CPU time (so a report can tell how much of the machine the load itself took).

Why not httpx or aiohttp: on a 2-core machine the generator competes with the server it measures.
Requests are encoded before the clock starts and responses are only framed (status line and
``Content-Length``), never parsed, which keeps the generator's share of the CPU to a few per cent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["encode", "run", "main"]


def encode(request: dict[str, Any], *, host: str, port: int) -> bytes:
    """One request line (a dict from the requests file) as the bytes sent on the wire."""
    body = (request.get("body") or "").encode("utf-8")
    headers = {"Host": f"{host}:{port}", "Content-Length": str(len(body)), **request.get("headers", {})}
    head = f"{request['method']} {request['path']} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise ValueError("response without Content-Length")
    body = await reader.readexactly(length)
    return status, body


async def _worker(host: str, port: int, queue: list[tuple[int, bytes]], out: dict[str, Any],
                  rate: float | None, expect: bytes | None) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while queue:
            index, wire = queue.pop()
            t0 = time.perf_counter()
            if rate is not None:
                due = out["start"] + index / rate
                if due > t0:
                    await asyncio.sleep(due - t0)
                t0 = time.perf_counter()
                out["late"] = max(out["late"], t0 - due)
            writer.write(wire)
            try:
                status, body = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
                out["statuses"][f"connection error ({type(exc).__name__})"] += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            out["latencies"].append(time.perf_counter() - t0)
            out["statuses"][str(status)] += 1
            unexpected = expect is not None and status < 400 and expect not in body
            out["unexpected"] += unexpected
            if (status >= 400 or unexpected) and len(out["errors"]) < 5:
                out["errors"].append({"index": index, "status": status, "body": body[:300].decode("utf-8", "replace")})
    finally:
        writer.close()


async def _run(host: str, port: int, wires: list[bytes], connections: int, rate: float | None,
               expect: bytes | None) -> dict[str, Any]:
    queue = list(reversed(list(enumerate(wires))))
    out: dict[str, Any] = {"statuses": Counter(), "latencies": [], "errors": [], "late": 0.0, "unexpected": 0}
    t0 = time.perf_counter()
    out["start"] = t0 + 0.05  # the connections are open by then
    await asyncio.gather(*(_worker(host, port, queue, out, rate, expect) for _ in range(connections)))
    out["seconds"] = time.perf_counter() - t0
    return out


def run(requests: list[dict[str, Any]], *, host: str, port: int, connections: int,
        rate: float | None = None, expect: str | None = None) -> dict[str, Any]:
    """Send every request once over ``connections`` keep-alive connections (at ``rate`` per second, open
    loop, when given; checking that each 2xx body holds ``expect``, when given); the summary described above."""
    wires = [encode(r, host=host, port=port) for r in requests]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    out = asyncio.run(_run(host, port, wires, connections, rate, None if expect is None else expect.encode("utf-8")))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    lat = sorted(out["latencies"])
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) >= 2 else [0.0] * 99
    ok = sum(n for s, n in out["statuses"].items() if s.isdigit() and int(s) < 400)
    return {
        "requests": len(wires),
        "ok": ok,
        "statuses": dict(out["statuses"]),
        "errors": out["errors"],
        "seconds": out["seconds"],
        "per_second": ok / out["seconds"] if out["seconds"] else 0.0,
        "latency_ms": {"p50": q[49] * 1e3, "p90": q[89] * 1e3, "p99": q[98] * 1e3, "max": (lat[-1] if lat else 0) * 1e3},
        "generator_cpu_seconds": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "connections": connections,
        "rate": rate,
        "unexpected": out["unexpected"],
        "latest_send_ms": out["late"] * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("requests", type=Path, help="JSON lines: method, path, headers, body")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=None, help="requests per second, open loop (default: as fast as "
                        "the connections go)")
    parser.add_argument("--expect", default=None, help="text every 2xx answer must contain (else: unexpected)")
    args = parser.parse_args(argv)
    requests = [json.loads(line) for line in args.requests.read_text(encoding="utf-8").splitlines() if line]
    json.dump(run(requests, host=args.host, port=args.port, connections=args.connections, rate=args.rate,
                  expect=args.expect), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
