"""Benchmark (h): the verifier service as deployed — counter scans through the HTTP API on two worker
processes, and the round trip of an online request (OpenID4VP) answered by the deployment's wallet.

One deployment, ``elicence serve --workers 2`` on a fresh PostgreSQL database ``elicence_bench`` (the
server of ``ELICENCE_BENCH_POSTGRES_URL``, as benchmark (f)), or on SQLite when no PostgreSQL answers
(the report says which). Set-up, not timed: an authority and a registry record (issuer service, in
process); a legal representative who registers, sets the PIN, claims the enterprise and receives the
licence over OpenID4VCI through the wallet's HTTP API (:func:`bench.wallet._holder`); the registrar, a
department (``x509_san_dns`` ``localhost``, served on the loopback public URL under that name) and a staff
API key. Measured:

* **Counter-scan throughput**: ``scans`` ``POST /verifier/departments/{slug}/scans`` requests, each the
  JSON ``{"text": EL1 payload, "item": food business permit}`` a counter sends, over ``connections``
  keep-alive connections from :mod:`bench.loadgen` (its own process) as fast as they are answered.
  Every payload is a fresh offline presentation of the wallet's licence, made beforehand exactly as the
  wallet's "show QR" does (:func:`credentials.qr.present_offline` of the stored credential with the
  holder key from the wallet's keystore, the type's default QR claims, a new nonce), so each one passes
  the replay check once. What the server does per request: trust list and status list (cached over
  HTTP), signature, disclosures, validity, key binding, freshness, replay (a database row), the
  materials exemption, a signed receipt, the verification record and its audit record.
* **Latency at half that rate**: new payloads sent open-loop at half the measured throughput
  (``bench.loadgen --rate``), p50 / p90 / p99 from sending to the full answer.
* **Online request round trip**: ``round_trips`` times, sequentially over one connection: the staff
  creates a request for the item (``POST .../requests``), the wallet inspects the ``openid4vp://`` link
  (``POST /wallet/requests/inspect``: it fetches and checks the signed Request Object) and answers with
  consent and the PIN (``POST /wallet/requests/respond``: the server's wallet posts the ``vp_token`` to
  the verifier, ``direct_post``), then the staff's first ``GET .../result`` that is no longer pending;
  p50 / p95 of the whole and the median of each step.

Every answer must be a valid verdict (loadgen ``--expect``; the round trip reads it) and afterwards the
database must hold one verification record per scan and an unbroken audit chain; otherwise the run fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.issuer import (DEFAULT_POSTGRES_URL, POSTGRES_URL_ENV, _environment, _free_port, _fresh_postgres, _loadgen,
                          _server)
from bench.timing import latency_ms
from bench.wallet import PIN, _holder, _ok
from credentials import qr
from elicence.app import Deployment, open_deployment
from elicence.config import Settings
from schemas.registry import get_type
from verifier import store as verifier_store

__all__ = ["run", "ITEM"]

#: The service item every scan and request names (食品经营许可: the licence copy becomes exempt).
ITEM = "310000-food-permit-01"
DEPARTMENT = "bench-window"
VALID = '"verdict":"valid"'


# ------------------------------------------------------------------------------------------ preparation


class Holder:
    """The wallet's stored licence and its holder key, to make offline QR payloads as "show QR" does."""

    def __init__(self, deployment: Deployment, headers: dict[str, str], credential_id: str) -> None:
        wallet = deployment.wallet
        user = wallet.authenticate(headers["Authorization"].removeprefix("Bearer ")).user
        self.stored = wallet.credential(user, credential_id=credential_id)
        self.signer = wallet.signer_for(user, purpose="presentation", enterprise_id=self.stored.enterprise_id,
                                        confirmation=wallet.confirm_pin(user, PIN))
        self.disclose = [tuple(p) for p in get_type(self.stored.vct).default_qr_claims]

    def payloads(self, n: int) -> list[str]:
        now = int(time.time())
        return [qr.present_offline(self.stored.credential, disclose=self.disclose, holder_signer=self.signer, now=now,
                                   nonce=secrets.token_urlsafe(12)) for _ in range(n)]


def _scan_requests(payloads: list[str], api_key: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    return [{"method": "POST", "path": f"/verifier/departments/{DEPARTMENT}/scans", "headers": headers,
             "body": json.dumps({"text": text, "item": ITEM})} for text in payloads]


def _checked(load: dict[str, Any], what: str) -> dict[str, Any]:
    if load["ok"] != load["requests"] or load["unexpected"]:
        raise RuntimeError(f"{what}: {load['requests'] - load['ok']} failed, {load['unexpected']} not valid: "
                           f"{load['errors']}")
    return load


def _recorded(deployment: Deployment) -> dict[str, int]:
    assert deployment.verifier is not None
    table = verifier_store.VerifierVerification.__table__
    with deployment.verifier._sessions() as session:
        rows = session.execute(select(table.c.verdict, func.count()).where(table.c.department_slug == DEPARTMENT)
                               .group_by(table.c.verdict))
        return {verdict: count for verdict, count in rows}


# ------------------------------------------------------------------------------------------ measurements


def _round_trips(client: httpx.Client, wallet_headers: dict[str, str], api_key: str, n: int) -> dict[str, Any]:
    staff = {"Authorization": f"Bearer {api_key}"}
    base = f"/verifier/departments/{DEPARTMENT}/requests"
    steps: dict[str, list[float]] = {"create request": [], "wallet inspects": [], "wallet answers": [],
                                     "result delivered": []}
    totals, polls = [], 0
    for i in range(n):
        t0 = time.perf_counter()
        created = _ok(client.post(base, headers=staff, json={"item": ITEM, "purpose": "bench"}), 201, "create request")
        t1 = time.perf_counter()
        preview = _ok(client.post("/wallet/requests/inspect", headers=wallet_headers, json={"request": created["uri"]}),
                      200, "inspect")
        t2 = time.perf_counter()
        answered = _ok(client.post("/wallet/requests/respond", headers=wallet_headers, json={
            "request_object": preview["request_object"], "client_id": preview["client_id"], "consent": True,
            "pin": PIN}), 200, "respond")
        t3 = time.perf_counter()
        while True:
            polls += 1
            result = _ok(client.get(f"{base}/{created['transaction_id']}/result",
                                    headers={**staff, "X-Result-Secret": created["result_secret"]}), 200, "result")
            if result["status"] != "pending":
                break
        t4 = time.perf_counter()
        if answered["outcome"] != "sent" or result.get("verdict") != "valid":
            raise RuntimeError(f"round trip {i}: {answered['outcome']}, {result.get('status')} {result.get('verdict')} "
                               f"{result.get('code')}")
        for name, (a, b) in zip(steps, ((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
            steps[name].append(b - a)
        totals.append(t4 - t0)
    return {**latency_ms(totals), "polls": polls,
            "steps_p50_ms": {k: statistics.median(v) * 1e3 for k, v in steps.items()}}


def _database(database_url: str | None) -> tuple[str, str, str | None]:
    """(kind, URL, note): the given URL, else a fresh ``elicence_bench`` on PostgreSQL, else SQLite."""
    if database_url is not None:
        return ("PostgreSQL" if database_url.startswith("postgresql") else "SQLite"), database_url, None
    pg = _fresh_postgres(os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL))
    if pg is not None:
        return "PostgreSQL", pg, None
    return "SQLite", "", "no PostgreSQL server answered: measured on SQLite"


def run(*, quick: bool = False, scans: int | None = None, round_trips: int | None = None, connections: int = 16,
        workers: int = 2, database_url: str | None = None) -> dict[str, Any]:
    """Run benchmark (h); returns its figures (``quick``: a few hundred requests, for a smoke test)."""
    scans = scans or (120 if quick else 3000)
    round_trips = round_trips or (5 if quick else 100)
    workdir = Path(tempfile.mkdtemp(prefix="elicence-bench-verifier-"))
    try:
        kind, url, note = _database(database_url)
        url = url or f"sqlite:///{workdir / 'verifier.db'}"
        port = _free_port()
        env = _environment(workdir, url, port)
        deployment = open_deployment(Settings.from_env(env, var_dir=workdir / "var"))
        verifier = deployment.verifier
        assert verifier is not None, "the deployment has no verifier (no trust list operator key)"
        verifier.ensure_registrar(actor="bench")
        verifier.create_department(slug=DEPARTMENT, name_zh="基准测试窗口", name_en="Benchmark counter",
                                   dns_name="localhost", types=("business-licence",), actor="bench")
        api_key = verifier.create_staff(department=DEPARTMENT, name="bench", actor="bench").api_key
        with _server(env, workdir, workers) as base, httpx.Client(base_url=base, timeout=60) as client:
            wallet_headers, credential_id = _holder(client, deployment)
            holder = Holder(deployment, wallet_headers, credential_id)
            # Warm-up: every worker fetches and caches the trust list and the status list.
            _checked(_loadgen(_scan_requests(holder.payloads(8 * workers), api_key), port, workers, workdir,
                              expect=VALID), "warm-up")
            full = _checked(_loadgen(_scan_requests(holder.payloads(scans), api_key), port, connections, workdir,
                                     expect=VALID), "scans")
            rate = full["per_second"] / 2
            half_n = max(20, min(scans, int(rate * (5 if quick else 30))))
            half = _checked(_loadgen(_scan_requests(holder.payloads(half_n), api_key), port, connections, workdir,
                                     rate=rate, expect=VALID), "scans at half rate")
            trips = _round_trips(client, wallet_headers, api_key, round_trips)
        recorded = _recorded(deployment)
        expected = 8 * workers + scans + half_n + round_trips
        staff = verifier.authenticate(api_key, department=DEPARTMENT)
        audit = verifier.verify_audit(staff)
        if recorded != {"valid": expected} or not audit["valid"]:
            raise RuntimeError(f"inconsistent after the load: {recorded} for {expected} valid scans, audit {audit}")
        return {"database": kind, "note": note, "workers": workers, "connections": connections, "cpus": os.cpu_count(),
                "payload_chars": len(holder.payloads(1)[0]), "disclose": [".".join(p) for p in holder.disclose],
                "full": full, "half": half, "round_trip": trips,
                "consistency": {"verifications": expected, "audit_records": audit["records"]}}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":  # a quick look without the whole report: python -m bench.verifier
    print(json.dumps(run(quick=True), default=str, indent=2))
