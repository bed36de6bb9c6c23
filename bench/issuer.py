"""Benchmark (f): the issuer service as deployed — ``elicence serve --workers 2`` on SQLite and PostgreSQL.

Measured, each database in turn, in one run with the bare signing rate it is compared with:

* **bare ES256 signing** on one core (bare ``cryptography``, the same signing input size as a licence);
* **credential endpoint throughput**: for each number in ``connections``, ``credentials`` credential
  requests (a fresh key proof each, over that many keep-alive connections from :mod:`bench.loadgen`, a
  separate process) against the server with two worker processes. Offers, access tokens, ``c_nonce``
  values and key proofs are made beforehand, outside the timed region (they belong to the token and
  nonce endpoints); what is timed is exactly what the credential endpoint does: check the proof,
  consume token and nonce, allocate a status index, sign, insert the row, append the audit record,
  commit (requests that arrive together share one transaction: ``issuer.group_commit``). Afterwards the
  database must hold exactly that many credentials with distinct status indexes, and the audit chain
  must verify; the same endpoint is also timed in process, without HTTP, one request at a time and in
  batches, with every SQL statement timed;
* **the framework floor**: the same requests refused before any database or signature work (see
  :func:`_framework_floor`): the most the credential endpoint could reach on this HTTP stack;
* **bulk issuance**: ``elicence issuer records generate`` writes ``bulk`` synthetic records, then
  ``elicence issuer issue-bulk`` (a separate process, with its progress bar) validates, imports and
  creates one offer and PIN per record; wall time and the process's peak RSS (``wait4``);
* **revocation latency to visibility**: for each of ``revocations`` credentials, the time from sending
  the admin ``POST .../status`` (revoke) to reading a served status token that shows the entry revoked
  (one GET after the acknowledgement; if it is not there, the run fails).

The PostgreSQL part runs on a fresh database ``elicence_bench`` on the server of
``ELICENCE_BENCH_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/elicence_bench``),
dropped and created anew; it is skipped, saying so, when no server answers.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bench.timing import latency_ms, measure
from credentials import openid4vci as o4
from credentials import status_list
from elicence.app import open_issuer
from elicence.config import Settings
from keys.keystore import generate_kek
from keys.jwk import b64u_encode
from keys.signer import SoftwareSigner
from schemas.synthetic import generate_business_licence

__all__ = ["run", "POSTGRES_URL_ENV", "import_synthetic_records", "redeem_offer"]

POSTGRES_URL_ENV = "ELICENCE_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/elicence_bench"
SLUG = "bench-amr"
TYPE = "business-licence"
#: Credential requests served in process for the breakdown of one request's cost: one at a time, then
#: in batches of BREAKDOWN_BATCH (the group commit).
BREAKDOWN = 320
BREAKDOWN_BATCH = 16
ROOT = Path(__file__).resolve().parents[1]
ELICENCE = [sys.executable, "-m", "elicence.cli"]


# ------------------------------------------------------------------------------------------ deployment


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fresh_postgres(url: str) -> str | None:
    """Drop and create the benchmark database; ``None`` when no PostgreSQL answers."""
    try:
        import psycopg
        from sqlalchemy.engine import make_url
    except ImportError:
        return None
    parsed = make_url(url)
    name = parsed.database or "elicence_bench"
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        return None
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _environment(workdir: Path, database_url: str, port: int) -> dict[str, str]:
    kek = workdir / "kek"
    if not kek.exists():
        kek.write_text(b64u_encode(generate_kek()))
        kek.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELICENCE_")}
    env.update({
        "ELICENCE_MODE": "demo",
        "ELICENCE_DATABASE_URL": database_url,
        "ELICENCE_KEK_FILE": str(kek),
        "ELICENCE_PORT": str(port),
        "ELICENCE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PYTHONPATH": str(ROOT),
    })
    return env


@contextmanager
def _server(env: dict[str, str], workdir: Path, workers: int) -> Iterator[str]:
    port = env["ELICENCE_PORT"]
    log = (workdir / "server.log").open("w")
    proc = subprocess.Popen([*ELICENCE, "serve", "--no-seed", "--workers", str(workers)], env=env, cwd=workdir,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited: {(workdir / 'server.log').read_text()[-2000:]}")
            try:
                # Both workers must answer: ask several times over fresh connections.
                if all(httpx.get(f"{base}/healthz", timeout=2).status_code == 200 for _ in range(4)):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# ------------------------------------------------------------------------------------------ preparation


def import_synthetic_records(service: Any, count: int, seed: int, slug: str = SLUG) -> list[str]:
    """Import ``count`` synthetic business-licence records with distinct USCCs into ``slug``; their USCCs."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < count:
        claims = generate_business_licence(rng)
        if claims["uscc"] not in seen:
            seen.add(claims["uscc"])
            rows.append((len(rows) + 1, TYPE, claims))
    service.import_records(slug, service.validate_records(slug, rows), actor="bench")
    return [claims["uscc"] for _, _, claims in rows]


def redeem_offer(service: Any, slug: str, offer: Any, holder: SoftwareSigner) -> tuple[str, str]:
    """What a wallet does with an offer before the credential request, through the service itself: the
    token request (pre-authorised code from the deep link, and the PIN), a fresh ``c_nonce``, and the
    holder's key proof; returns (access token, key proof)."""
    parsed = o4.parse_offer_uri(offer.offer_uri)
    assert isinstance(parsed, o4.CredentialOffer)
    token = service.token(slug, {"grant_type": o4.PRE_AUTHORIZED_GRANT, "pre-authorized_code":
                                 parsed.pre_authorized_code, "tx_code": offer.tx_code})["access_token"]
    nonce = service.nonce(slug)["c_nonce"]
    return token, o4.make_proof(holder, audience=service.issuer_id(slug), nonce=nonce, iat=int(time.time()))


def _credential_requests(service: Any, usccs: list[str], holders: list[SoftwareSigner],
                         slug: str = SLUG) -> list[dict[str, Any]]:
    """One ready credential request per record: offer, token and nonce made through the service itself."""
    offers = service.create_offers_bulk(slug, type_name=TYPE, usccs=usccs, actor="bench")
    path = f"/issuers/{slug}/credential"
    out = []
    for i, offer in enumerate(offers):
        token, proof = redeem_offer(service, slug, offer, holders[i % len(holders)])
        body = json.dumps({"credential_configuration_id": TYPE, "proofs": {"jwt": [proof]}})
        out.append({"method": "POST", "path": path, "body": body,
                    "headers": {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}})
    return out


def _breakdown(service: Any, requests: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    """One thread, in process, no HTTP: the credential endpoint's own cost and its SQL round trips, one
    request at a time (``batch`` 1, :meth:`IssuerService.credential`) or ``batch`` requests per transaction
    (:meth:`IssuerService.credential_batch`, what the endpoint does under load)."""
    from sqlalchemy import event

    engine = service._sessions.kw["bind"]
    spent: dict[str, list[float]] = {}
    begun: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        begun[id(conn)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split()
        key = " ".join(words[:3] if words[0] in ("UPDATE", "INSERT") else [words[0], *words[words.index("FROM") + 1:][:1]]
                       if "FROM" in words else words[:2])
        spent.setdefault(key, []).append(time.perf_counter() - begun.pop(id(conn)))

    def call(r: dict[str, Any]) -> tuple[str, Any]:
        return r["headers"]["Authorization"], json.loads(r["body"])

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        t0 = time.perf_counter()
        if batch == 1:
            for r in requests:
                authorization, body = call(r)
                service.credential(SLUG, authorization=authorization, body=body)
        else:
            for start in range(0, len(requests), batch):
                prepared = [service.prepare_credential(SLUG, authorization=a, body=b)
                            for a, b in map(call, requests[start : start + batch])]
                failed = [o for o in service.credential_batch(prepared) if isinstance(o, Exception)]
                if failed:
                    raise RuntimeError(f"a batch refused {len(failed)} requests: {failed[0]!r}")
        seconds = time.perf_counter() - t0
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    n = len(requests)
    statements = sorted(((k, len(v) / n, sum(v) / n) for k, v in spent.items()), key=lambda t: -t[2])
    return {"n": n, "batch": batch, "ms_per_credential": seconds / n * 1e3, "per_second": n / seconds,
            "statements_per_credential": sum(c for _, c, _ in statements),
            "sql_ms_per_credential": sum(t for _, _, t in statements) * 1e3,
            "statements": [{"statement": k, "count": c, "ms": t * 1e3} for k, c, t in statements]}


def _framework_floor(requests: list[dict[str, Any]], port: int, connections: int, workdir: Path) -> dict[str, Any]:
    """The credential endpoint's HTTP path with no issuance behind it: the same requests, refused before
    any database or signature work (an unknown credential configuration), so what is left is uvicorn,
    the middleware, FastAPI's routing, the body read and JSON parse, our request parse and the error
    response. Its rate is the most the endpoint could reach on this stack and machine."""
    body = json.dumps({"credential_configuration_id": "bench-no-such-configuration", "proofs": {"jwt": ["x"]}})
    load = _loadgen([{**r, "body": body} for r in requests], port, connections, workdir)
    refused = load["statuses"].get("400", 0)
    if refused != len(requests):
        raise RuntimeError(f"the floor requests were not all refused with 400: {load['statuses']}")
    load["per_second"] = refused / load["seconds"]
    return load


def _loadgen(requests: list[dict[str, Any]], port: int, connections: int, workdir: Path, *,
             rate: float | None = None, expect: str | None = None) -> dict[str, Any]:
    path = workdir / "requests.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in requests), encoding="utf-8")
    options = [*(["--rate", str(rate)] if rate else []), *(["--expect", expect] if expect else [])]
    done = subprocess.run([sys.executable, "-m", "bench.loadgen", str(path), "--port", str(port),
                           "--connections", str(connections), *options], capture_output=True, text=True, cwd=ROOT,
                          check=True)
    return json.loads(done.stdout)


# ------------------------------------------------------------------------------------------ measurements


def _bare_signing(repeats: int) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    data = os.urandom(827)  # the size of a licence's JWS signing input (benchmark (c))
    algorithm = ec.ECDSA(hashes.SHA256())
    stats = measure(lambda i: key.sign(data, algorithm), repeats=repeats, warmup=50)
    return {"stats": stats, "per_second": 1e9 / stats.median}


def _revocation_latency(base: str, service: Any, api_key: str, count: int) -> dict[str, Any]:
    operator = service.authenticate(api_key, authority=SLUG)
    rows = service.list_credentials(operator, limit=count).items
    if len(rows) < count:
        raise RuntimeError(f"only {len(rows)} credentials to revoke")
    samples = []
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base, timeout=30) as client:
        for row in rows[:count]:
            list_path = f"/issuers/{SLUG}/status/{row.status_list_id}"
            client.get(list_path)  # the previous version is cached (as a verifier would have it)
            t0 = time.perf_counter()
            ack = client.post(f"/issuers/{SLUG}/admin/credentials/{row.id}/status", headers=headers,
                              json={"action": "revoke", "reason": "deregistered"})
            ack.raise_for_status()
            served = client.get(list_path)
            elapsed = time.perf_counter() - t0
            served.raise_for_status()
            value = _served_status(served.text, row.status_idx)
            if value != 1:
                raise RuntimeError(f"revocation of {row.id} not visible in the served token (status {value})")
            samples.append(elapsed)
    return latency_ms(samples)


def _served_status(token: str, idx: int) -> int:
    from credentials import jws

    payload = jws.parse(token).payload
    return status_list.StatusList.from_json(payload["status_list"]).get(idx)


def _peak_rss_run(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[float, int, str]:
    """Run a command; (wall seconds, its peak RSS in bytes, its standard output)."""
    t0 = time.perf_counter()
    with log.open("w") as err:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[2:])} failed: {log.read_text()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024, out


def _bulk(env: dict[str, str], workdir: Path, count: int) -> dict[str, Any]:
    records = workdir / "records.csv"
    gen_s, _, _ = _peak_rss_run([*ELICENCE, "issuer", "records", "generate", "--count", str(count), "--seed", "7",
                                 "--out", str(records)], env, workdir, workdir / "generate.log")
    offers = workdir / "offers.csv"
    seconds, rss, out = _peak_rss_run([*ELICENCE, "issuer", "issue-bulk", str(records), "--authority", SLUG,
                                       "--out", str(offers), "--progress"], env, workdir, workdir / "bulk.log")
    lines = sum(1 for _ in offers.open(encoding="utf-8")) - 1
    if lines != count:
        raise RuntimeError(f"issue-bulk wrote {lines} offers for {count} records")
    progress = (workdir / "bulk.log").read_text(encoding="utf-8", errors="replace")
    return {"records": count, "seconds": seconds, "per_second": count / seconds, "peak_rss_bytes": rss,
            "generate_seconds": gen_s, "summary": out.strip().splitlines(),
            "progress_bar_seen": "offering" in progress}


def _all_credentials(service: Any, operator: Any) -> list[Any]:
    rows, cursor = [], None
    while True:
        page = service.list_credentials(operator, limit=200, cursor=cursor)
        rows.extend(page.items)
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def _check_consistency(service: Any, api_key: str, expected: int) -> dict[str, Any]:
    """Exactly ``expected`` credentials, no status slot twice, and an unbroken audit chain."""
    operator = service.authenticate(api_key, authority=SLUG)
    rows = _all_credentials(service, operator)
    slots = {(c.status_list_id, c.status_idx) for c in rows}
    report = service.verify_audit(operator)
    result = {"credentials": len(rows), "distinct_status_slots": len(slots), "audit_ok": report.broken is None,
              "audit_records": report.count}
    if len(rows) != expected or len(slots) != expected or report.broken is not None:
        raise RuntimeError(f"inconsistent after the load: {result}")
    return result


def _one_database(kind: str, database_url: str, *, credentials: int, connections: tuple[int, ...], workers: int,
                  bulk: int, revocations: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"elicence-bench-{kind}-"))
    try:
        port = _free_port()
        env = _environment(workdir, database_url, port)
        service = open_issuer(Settings.from_env(env, var_dir=workdir))
        service.create_authority(slug=SLUG, name_zh="基准测试市场监督管理局", name_en="Benchmark AMR",
                                 types=(TYPE,), region="310000", actor="bench")
        api_key = service.create_operator(authority=SLUG, name="bench", actor="bench").api_key
        t0 = time.perf_counter()
        loads = len(connections) * credentials
        usccs = import_synthetic_records(service, loads + 2 * BREAKDOWN, seed=11)
        holders = [SoftwareSigner.generate() for _ in range(64)]
        requests = _credential_requests(service, usccs, holders)
        prepare_s = time.perf_counter() - t0
        breakdown = [_breakdown(service, requests[loads:loads + BREAKDOWN], 1),
                     _breakdown(service, requests[loads + BREAKDOWN:], BREAKDOWN_BATCH)]
        with _server(env, workdir, workers) as base:
            load = [_loadgen(requests[i * credentials:(i + 1) * credentials], port, n, workdir)
                    for i, n in enumerate(connections)]
            floor = _framework_floor(requests[:credentials], port, connections[-1], workdir)
            consistency = _check_consistency(service, api_key, loads + 2 * BREAKDOWN)
            latency = _revocation_latency(base, service, api_key, revocations)
        bulk_result = _bulk(env, workdir, bulk) if bulk else None
        return {"database": kind, "workers": workers, "prepare_seconds": prepare_s, "load": load, "floor": floor,
                "breakdown": breakdown,
                "consistency": consistency, "revocation": latency, "bulk": bulk_result}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(*, credentials: int = 5000, connections: tuple[int, ...] = (16, 64), workers: int = 2, bulk: int = 100_000,
        revocations: int = 50) -> dict[str, Any]:
    """Run benchmark (f) on SQLite and, when it answers, PostgreSQL; returns the figures."""
    out: dict[str, Any] = {"bare": _bare_signing(2000), "databases": {}, "cpus": os.cpu_count(),
                           "parameters": {"credentials": credentials, "connections": connections, "workers": workers,
                                          "bulk": bulk, "revocations": revocations}}
    sqlite_dir = Path(tempfile.mkdtemp(prefix="elicence-bench-db-"))
    try:
        out["databases"]["SQLite"] = _one_database(
            "sqlite", f"sqlite:///{sqlite_dir / 'bench.db'}", credentials=credentials, connections=connections,
            workers=workers, bulk=bulk, revocations=revocations)
    finally:
        shutil.rmtree(sqlite_dir, ignore_errors=True)
    pg = _fresh_postgres(os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL))
    if pg is None:
        out["postgres_skipped"] = "no PostgreSQL server answered"
    else:
        out["databases"]["PostgreSQL"] = _one_database(
            "postgresql", pg, credentials=credentials, connections=connections, workers=workers, bulk=bulk,
            revocations=revocations)
    return out


if __name__ == "__main__":  # a quick look without the whole report: python -m bench.issuer
    print(json.dumps(run(credentials=600, bulk=2000, revocations=10), default=str, indent=2))
