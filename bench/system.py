"""Benchmark (i): the whole system at the scale of issue 6, on PostgreSQL.

* **Bulk issuance of 1,000,000 records**: ``elicence issuer records generate`` then ``elicence issuer
  issue-bulk`` (its own process, progress bar on), as in (f) but ten times larger: wall time, records
  per second, the process's peak RSS, and the database's size afterwards (``pg_database_size`` and the
  record, offer and audit tables with their indexes).
* **Status list publication with 1,048,576 entries**: an authority whose lists hold 2^20 entries issues a
  few credentials through the credential endpoint's code; then, against ``elicence serve``: the first
  ``GET`` of the list (signing 2^20 entries: pack, compress, ES256, store), the stored token served again,
  and revocations to visibility (admin ``POST .../status`` acknowledged, then one ``GET`` that must show
  the entry revoked; the token is signed again for the new version). Token size on the wire.
* **Issuance end to end over HTTP**: ``elicence serve --workers 2``; for each credential a client makes
  the token request (pre-authorised code and PIN), the nonce request, its key proof (ES256, in the
  client) and the credential request, ``concurrency`` flows at a time (asyncio + httpx in this process,
  sharing the two CPUs with the server and the database). Credentials per second and the flow's
  latency; afterwards exactly one credential per flow, no status index twice, audit chain unbroken.

The database is ``elicence_bench_system`` on the server of ``ELICENCE_BENCH_POSTGRES_URL`` (as (f)),
dropped and created anew; the section is skipped, saying so, when no PostgreSQL answers.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bench import issuer as fbench
from bench.timing import latency_ms
from credentials import openid4vci as o4
from credentials import status_list as sl
from elicence.app import open_issuer
from elicence.config import Settings
from keys.signer import SoftwareSigner

__all__ = ["run"]

DATABASE = "elicence_bench_system"
BIG = "bench-big"
BIG_LIST = 1 << 20


def _sizes(service: Any) -> dict[str, int]:
    engine = service._sessions.kw["bind"]
    with engine.connect() as connection:
        out = {"database": connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()}
        for table in ("issuer_record", "issuer_offer", "issuer_audit"):
            out[table] = connection.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar_one()
    return out


def _bulk(service: Any, env: dict[str, str], workdir: Path, count: int) -> dict[str, Any]:
    result = fbench._bulk(env, workdir, count)
    result["sizes"] = _sizes(service)
    return result


def _big_list(service: Any, env: dict[str, str], workdir: Path, revocations: int) -> dict[str, Any]:
    service.create_authority(slug=BIG, name_zh="大名单基准测试局", name_en="Big list benchmark AMR",
                             types=(fbench.TYPE,), region="310000", status_list_size=BIG_LIST, actor="bench")
    api_key = service.create_operator(authority=BIG, name="bench", actor="bench").api_key
    operator = service.authenticate(api_key, authority=BIG)
    usccs = fbench.import_synthetic_records(service, revocations + 2, seed=23, slug=BIG)
    for r in fbench._credential_requests(service, usccs, [SoftwareSigner.generate()], slug=BIG):
        service.credential(BIG, authorization=r["headers"]["Authorization"], body=json.loads(r["body"]))
    rows = service.list_credentials(operator, limit=revocations + 2).items
    list_path = f"/issuers/{BIG}/status/{rows[0].status_list_id}"
    headers = {"Authorization": f"Bearer {api_key}"}
    with fbench._server(env, workdir, 1) as base, httpx.Client(base_url=base, timeout=120) as client:
        t0 = time.perf_counter()
        first = client.get(list_path)
        first_s = time.perf_counter() - t0
        first.raise_for_status()
        stored = []
        for _ in range(20):
            t0 = time.perf_counter()
            client.get(list_path).raise_for_status()
            stored.append(time.perf_counter() - t0)
        visible = []
        for row in rows[:revocations]:
            t0 = time.perf_counter()
            client.post(f"/issuers/{BIG}/admin/credentials/{row.id}/status", headers=headers,
                        json={"action": "revoke", "reason": "deregistered"}).raise_for_status()
            served = client.get(list_path)
            visible.append(time.perf_counter() - t0)
            served.raise_for_status()
            if fbench._served_status(served.text, row.status_idx) != sl.INVALID:
                raise RuntimeError(f"revocation of {row.id} not visible in the 2^20-entry list")
    gzip_bytes = len(gzip.compress(first.content))
    return {"entries": BIG_LIST, "token_bytes": len(first.content), "token_gzip_bytes": gzip_bytes,
            "first_get_ms": first_s * 1e3, "stored": latency_ms(stored), "revocation": latency_ms(visible)}


async def _flows(base: str, offers: list[Any], issuer_id: str, concurrency: int) -> tuple[list[float], int]:
    holder = SoftwareSigner.generate()
    slug = fbench.SLUG
    queue = list(offers)
    samples: list[float] = []
    errors = 0

    async def one(client: httpx.AsyncClient, offer: Any) -> None:
        nonlocal errors
        parsed = o4.parse_offer_uri(offer.offer_uri)
        t0 = time.perf_counter()
        token = await client.post(f"/issuers/{slug}/token", data={
            "grant_type": o4.PRE_AUTHORIZED_GRANT, "pre-authorized_code": parsed.pre_authorized_code,
            "tx_code": offer.tx_code})
        nonce = await client.post(f"/issuers/{slug}/nonce")
        if token.status_code != 200 or nonce.status_code != 200:
            errors += 1
            return
        proof = o4.make_proof(holder, audience=issuer_id, nonce=nonce.json()["c_nonce"], iat=int(time.time()))
        answer = await client.post(f"/issuers/{slug}/credential",
                                   headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                                   json={"credential_configuration_id": fbench.TYPE, "proofs": {"jwt": [proof]}})
        if answer.status_code != 200:
            errors += 1
            return
        samples.append(time.perf_counter() - t0)

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            while queue:
                await one(client, queue.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples, errors


def _end_to_end(service: Any, env: dict[str, str], workdir: Path, count: int, concurrency: int,
                workers: int) -> dict[str, Any]:
    api_key = service.create_operator(authority=fbench.SLUG, name="bench-e2e", actor="bench").api_key
    usccs = fbench.import_synthetic_records(service, count, seed=31)
    offers = service.create_offers_bulk(fbench.SLUG, type_name=fbench.TYPE, usccs=usccs, actor="bench")
    before = len(fbench._all_credentials(service, service.authenticate(api_key, authority=fbench.SLUG)))
    with fbench._server(env, workdir, workers) as base:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        samples, errors = asyncio.run(_flows(base, offers, service.issuer_id(fbench.SLUG), concurrency))
        seconds = time.perf_counter() - t0
        client_cpu = time.process_time() - cpu0
    consistency = fbench._check_consistency(service, api_key, before + len(samples))
    return {"flows": count, "credentials": len(samples), "errors": errors, "seconds": seconds,
            "per_second": len(samples) / seconds, "latency": latency_ms(samples), "client_cpu_seconds": client_cpu,
            "concurrency": concurrency, "workers": workers, "consistency": consistency}


def run(*, bulk: int = 1_000_000, revocations: int = 20, flows: int = 1000, concurrency: int = 16,
        workers: int = 2, postgres_url: str | None = None) -> dict[str, Any]:
    """Run benchmark (i) on a fresh PostgreSQL database (``postgres_url``'s database, dropped and created
    anew; by default ``elicence_bench_system``); returns the figures (or why it was skipped)."""
    url = postgres_url or os.environ.get(fbench.POSTGRES_URL_ENV, fbench.DEFAULT_POSTGRES_URL).replace(
        "elicence_bench", DATABASE)
    database_url = fbench._fresh_postgres(url)
    if database_url is None:
        return {"skipped": "no PostgreSQL server answered"}
    workdir = Path(tempfile.mkdtemp(prefix="elicence-bench-system-"))
    try:
        env = fbench._environment(workdir, database_url, fbench._free_port())
        service = open_issuer(Settings.from_env(env, var_dir=workdir))
        service.create_authority(slug=fbench.SLUG, name_zh="基准测试市场监督管理局", name_en="Benchmark AMR",
                                 types=(fbench.TYPE,), region="310000", actor="bench")
        out: dict[str, Any] = {"parameters": {"bulk": bulk, "revocations": revocations, "flows": flows,
                                              "concurrency": concurrency, "workers": workers}}
        out["end_to_end"] = _end_to_end(service, env, workdir, flows, concurrency, workers)
        out["big_list"] = _big_list(service, env, workdir, revocations)
        out["bulk"] = _bulk(service, env, workdir, bulk)
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":  # a quick look: python -m bench.system
    print(json.dumps(run(bulk=5000, revocations=5, flows=60), default=str, indent=2))
