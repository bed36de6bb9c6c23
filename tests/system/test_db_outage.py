"""The database goes away during issuance and comes back (issue 6, "Faults").

A real ``elicence serve`` process talks to PostgreSQL through a TCP proxy of the test
(tests/system/tcp_proxy.py), which cuts every connection and refuses new ones at chosen moments:

- in an admin offer creation with an ``Idempotency-Key``, just before the stored outcome reaches the
  database (the worst moment if the offer and the outcome were two transactions), and just after its
  ``COMMIT`` was sent (the database has it, the server never hears back);
- in OpenID4VCI credential requests, before the credential row is written, and after the ``COMMIT``.

Each request fails with ``503 temporarily_unavailable`` and ``Retry-After``; so does every role while
the database is away. After the proxy is restored the service recovers by itself (no restart); the
retry with the same key gives exactly one offer; a retried credential request succeeds unless the
credential was committed (its access token is then spent). Finally nothing was lost: every credential
the client received has its row, every row its status index (none shared) and its audit record, and
``elicence audit reconcile`` (the chains verified, then credentials, status lists and audit log
compared) passes.

PostgreSQL only (``ELICENCE_TEST_DATABASE_URL``); the test creates and drops its own database.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from credentials import openid4vci as o4
from elicence.db import make_engine
from keys.signer import SoftwareSigner
from schemas.synthetic import generate_business_licence
from tests.elicence.served import ROOT, elicence_serve
from tests.system.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres

SLUG = "sh-amr"
IDEMPOTENCY_INSERT = b"INSERT INTO issuer_idempotency"
CREDENTIAL_INSERT = b"INSERT INTO issuer_credential"
COMMIT = b"COMMIT"


class Outage:
    """The served deployment behind the proxy, and what a test needs to drive and inspect it."""

    def __init__(self, served: Any, proxy: TcpProxy, direct_url: str) -> None:
        self.base = served.base
        self.proxy = proxy
        self.direct_url = direct_url
        self.issuer_id = f"{served.base}/issuers/{SLUG}"
        keys = json.loads((served.var / "demo-operators.json").read_text(encoding="utf-8"))
        self.admin = {"Authorization": f"Bearer {next(k['api_key'] for k in keys if k['authority'] == SLUG)}"}
        self.http = httpx.Client(base_url=served.base, timeout=60)

    def path(self, name: str) -> str:
        return f"/issuers/{SLUG}/{name}"

    def record(self, seed: int) -> str:
        claims = generate_business_licence(random.Random(seed))
        r = self.http.post(self.path("admin/records"), json={"type": "business-licence", "claims": claims},
                           headers=self.admin)
        assert r.status_code == 201, r.text
        return claims["uscc"]

    def create_offer(self, uscc: str, key: str | None = None) -> httpx.Response:
        headers = dict(self.admin, **({"Idempotency-Key": key} if key else {}))
        return self.http.post(self.path("admin/offers"), json={"type": "business-licence", "uscc": uscc},
                              headers=headers)

    def access_token(self, offer: dict[str, Any]) -> str:
        reference = o4.parse_offer_uri(offer["offer_reference_uri"])
        document = self.http.get(reference.removeprefix(self.base)).json()
        code = document["grants"][o4.PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
        r = self.http.post(self.path("token"), data={"grant_type": o4.PRE_AUTHORIZED_GRANT,
                                                     "pre-authorized_code": code, "tx_code": offer["tx_code"]})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def credential_request(self, access_token: str, holder: SoftwareSigner) -> httpx.Response:
        nonce = self.http.post(self.path("nonce"))
        assert nonce.status_code == 200, nonce.text
        proof = o4.make_proof(holder, audience=self.issuer_id, nonce=nonce.json()["c_nonce"], iat=int(time.time()))
        return self.http.post(self.path("credential"),
                              json={"credential_configuration_id": "business-licence", "proofs": {"jwt": [proof]}},
                              headers={"Authorization": f"Bearer {access_token}"})

    def query(self, sql: str, **params: Any) -> list[Any]:
        engine = make_engine(self.direct_url)
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(sql), params))
        finally:
            engine.dispose()

    def offers_of(self, uscc: str) -> list[Any]:
        return self.query("SELECT o.id, o.state FROM issuer_offer o JOIN issuer_record r ON r.id = o.record_id "
                          "WHERE r.uscc = :uscc", uscc=uscc)


def unavailable(r: httpx.Response, case: str) -> None:
    """The outage answer: 503, a retry hint, the stable error code."""
    assert r.status_code == 503, (case, r.status_code, r.text[:300])
    assert int(r.headers["Retry-After"]) > 0, case
    body = r.json()
    assert body["error"] == "temporarily_unavailable" and body["error_description"], (case, body)


@pytest.fixture
def outage(pg_url: str, tmp_path: Path):
    direct = pg_url  # tests/system/conftest.py: a fresh database, skipped without PostgreSQL
    target = make_url(direct)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).start()
    # TLS off between the server and the proxy, so that the proxy can see where a transaction is.
    via_proxy = target.set(host="127.0.0.1", port=proxy.port, query={"sslmode": "disable"})
    try:
        with elicence_serve(tmp_path, {"ELICENCE_DATABASE_URL": via_proxy.render_as_string(hide_password=False)}) as served:
            world = Outage(served, proxy, direct)
            try:
                yield world
            finally:
                world.http.close()
    finally:
        proxy.close()


def test_a_database_outage_answers_503_and_loses_nothing(outage: Outage) -> None:
    o = outage
    usccs = [o.record(seed) for seed in range(1, 5)]
    holder = SoftwareSigner.generate("ES256")
    received: list[str] = []

    # (i-a) The offer is written, then the connection goes before its stored outcome is sent.
    o.proxy.arm(IDEMPOTENCY_INSERT)
    unavailable(o.create_offer(usccs[0], key="offer-1"), "offer, cut before the outcome is stored")
    assert o.proxy.tripped.is_set()
    # While it is away, every role answers 503 (new connections are refused).
    unavailable(o.http.get("/healthz"), "healthz")
    unavailable(o.http.post("/wallet/sessions", json={"phone": "13800138000", "password": "x" * 12}), "wallet")
    unavailable(o.http.get("/verifier/departments/pudong-window"), "verifier")
    unavailable(o.create_offer(usccs[0], key="offer-1"), "offer retried during the outage")
    o.proxy.restore()
    assert o.http.get("/healthz").status_code == 200  # recovered without a restart
    first = o.create_offer(usccs[0], key="offer-1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers, first.text
    again = o.create_offer(usccs[0], key="offer-1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["offer_id"] == first.json()["offer_id"]
    assert [row.id for row in o.offers_of(usccs[0])] == [first.json()["offer_id"]]

    # (i-b) The COMMIT reaches the database, its answer never comes back: the retry replays the outcome.
    o.proxy.arm(IDEMPOTENCY_INSERT, COMMIT, forward=True)
    unavailable(o.create_offer(usccs[1], key="offer-2"), "offer, cut after COMMIT")
    assert o.proxy.tripped.is_set()
    o.proxy.restore()
    second = o.create_offer(usccs[1], key="offer-2")
    assert second.status_code == 201, second.text
    assert [row.id for row in o.offers_of(usccs[1])] == [second.json()["offer_id"]]

    # (ii-a) A credential request loses its connection before the credential row is written: nothing
    # was committed, so the same access token (and a fresh nonce) gets the credential on retry.
    token = o.access_token(first.json())
    o.proxy.arm(CREDENTIAL_INSERT)
    unavailable(o.credential_request(token, holder), "credential, cut before the row")
    assert o.proxy.tripped.is_set()
    o.proxy.restore()
    r = o.credential_request(token, holder)
    assert r.status_code == 200, r.text
    received.append(r.json()["credentials"][0]["credential"])

    # (ii-b) Cut after the COMMIT of an issuance: the credential exists but was never delivered; the
    # token is spent, so the retry is refused and nothing is issued twice.
    token = o.access_token(second.json())
    o.proxy.arm(CREDENTIAL_INSERT, COMMIT, forward=True)
    unavailable(o.credential_request(token, holder), "credential, cut after COMMIT")
    assert o.proxy.tripped.is_set()
    o.proxy.restore()
    r = o.credential_request(token, holder)
    if r.status_code == 200:  # the COMMIT did not take: issued now, once
        received.append(r.json()["credentials"][0]["credential"])
    else:
        assert r.status_code in (400, 401) and r.json()["error"] == "invalid_token", r.text

    # Business as usual afterwards.
    offer = o.create_offer(usccs[2])
    assert offer.status_code == 201, offer.text
    r = o.credential_request(o.access_token(offer.json()), holder)
    assert r.status_code == 200, r.text
    received.append(r.json()["credentials"][0]["credential"])

    # Nothing lost: what the client holds has its row; every row its status index (unshared) and audit record.
    rows = o.query("SELECT id, credential_hash, status_list_id, status_idx FROM issuer_credential")
    hashes = {row.credential_hash for row in rows}
    for credential in received:
        assert hashlib.sha256(credential.split("~", 1)[0].encode("ascii")).hexdigest() in hashes
    assert len(rows) in (len(received), len(received) + 1)  # + the one issued in (ii-b) if its COMMIT took
    assert all(row.status_list_id is not None and row.status_idx is not None for row in rows)
    assert len({(row.status_list_id, row.status_idx) for row in rows}) == len(rows)
    audited = {row.subject for row in o.query("SELECT subject FROM issuer_audit WHERE action = 'credential.issued'")}
    assert {row.id for row in rows} == audited
    for uscc in usccs[:2]:  # one offer per idempotent request, though each was sent several times
        assert len(o.offers_of(uscc)) == 1
    # The reconciliation command: audit chains verified, credentials, status lists and audit log in agreement.
    check = subprocess.run([str(Path(sys.prefix) / "bin" / "elicence"), "audit", "reconcile", "--database-url",
                            o.direct_url], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
