"""Fixtures of the issuer store tests: an authority with a signing key and a status list, on each backend.

Built on the shared ``sessions`` fixture (tests/conftest.py), so every test here runs on SQLite and,
when ``ELICENCE_TEST_DATABASE_URL`` is set, on PostgreSQL. Time is fixed (``NOW``); nothing reads the
wall clock. Test modules reach the helpers through the ``kit`` fixture (conftest modules are not
importable under ``--import-mode=importlib``).
"""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from issuer import store
from keys.keystore import Keystore, generate_kek
from schemas.synthetic import generate_business_licence

NOW = datetime(2026, 9, 21, 13, 46, 40, tzinfo=timezone.utc)
BL = "https://elicence.cn/vct/business-licence"
STAFF = "https://elicence.cn/vct/staff-authorisation"
FOOD = "https://elicence.cn/vct/food-business-permit"
SLUG = "sh-amr"
URI_PREFIX = "https://issuer.example.gov.cn/issuers/sh-amr/status/"
#: One KEK for the whole deployment (the store holds one KEK check value), random per test session.
KEK = generate_kek()


@dataclass(frozen=True)
class World:
    """One authority (``slug``) with an active key (``kid``) and an open status list (``list_id``)."""

    sessions: Any
    slug: str
    kid: str
    list_id: int
    kek: bytes


def licence_claims(seed: int) -> dict[str, Any]:
    """Synthetic business-licence claims (valid USCC), deterministic per seed."""
    return generate_business_licence(random.Random(seed))


def make_world(sessions, *, slug: str = SLUG, list_size: int | None = None, kek: bytes = KEK) -> World:
    with store.unit_of_work(sessions) as tx:
        store.create_authority(
            tx,
            slug=slug,
            issuer_id=f"https://issuer.example.gov.cn/issuers/{slug}",
            name_zh="上海市市场监督管理局",
            name_en="Shanghai Administration for Market Regulation",
            region="310000",
            vcts=[BL, STAFF],
            now=NOW,
            status_list_size=list_size or store.DEFAULT_STATUS_LIST_SIZE,
        )
        kid = Keystore(store.SqlKeyRecordStore(sessions, slug).using(tx), kek).generate("ES256", now=NOW, owner=slug)
        lst = store.create_status_list(tx, authority=slug, uri_prefix=URI_PREFIX.replace("sh-amr", slug), now=NOW)
    return World(sessions, slug, kid, lst.id, kek)


@pytest.fixture
def world(sessions) -> World:
    return make_world(sessions)


def issue(
    tx,
    world: World,
    *,
    uscc: str,
    now: datetime = NOW,
    list_id: int | None = None,
    granted_under: str | None = None,
    vct: str = BL,
    actor: str = "operator-1",
    rng: Any = None,
) -> store.Credential:
    """What the service will do to issue: allocate an index, insert the row, append the audit record."""
    slot = store.allocate_index(
        tx, list_id=list_id or world.list_id, now=now, **({"rng": rng} if rng is not None else {})
    )
    credential_id = str(uuid.uuid4())
    credential = store.insert_credential(
        tx,
        credential_id=credential_id,
        authority=world.slug,
        vct=vct,
        uscc=uscc,
        kid=world.kid,
        status_list_id=slot.list_id,
        status_idx=slot.idx,
        issued_at=now,
        expires_at=now + timedelta(days=365),
        credential_hash=hashlib.sha256(credential_id.encode()).hexdigest(),
        granted_under=granted_under,
    )
    store.append_audit(
        tx,
        chain=world.slug,
        at=now,
        actor=actor,
        action="credential.issued",
        subject=credential.id,
        details={"uscc": uscc, "status_list": slot.list_id, "idx": slot.idx},
    )
    return credential


def run_concurrently(n: int, task: Callable[[int], Any], *, timeout: float = 60.0) -> list[Any]:
    """Run ``task(i)`` for i < n in n threads released together; returns results or raised exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = task(i)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    return results


class Kit:
    """The helpers and constants above, for test modules (``kit.issue(tx, world, uscc=...)``)."""

    NOW = NOW
    BL = BL
    STAFF = STAFF
    FOOD = FOOD
    SLUG = SLUG
    URI_PREFIX = URI_PREFIX
    KEK = KEK
    World = World
    licence_claims = staticmethod(licence_claims)
    make_world = staticmethod(make_world)
    issue = staticmethod(issue)
    run_concurrently = staticmethod(run_concurrently)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


# --- the HTTP API (tests/issuer/test_issuer_api*.py) ----------------------------------------------------
#
# The deployment's FastAPI app (``elicence.app.create_app``) over an ``IssuerService`` on the test's
# database, with the demo authorities of ``seed_demo`` and a clock the test moves. The helpers speak
# only HTTP (a wallet and an operator would); ``snapshot()`` reads the tables to prove that a refused
# request changed nothing.

PUBLIC_URL = "https://issuer.example.gov.cn"


class Clock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def timestamp(self) -> int:
        return int(self.now.timestamp())


@pytest.fixture
def api(sessions, database_url, tmp_path):
    """An :class:`ApiWorld` on the test's database (SQLite; PostgreSQL too when configured)."""
    from fastapi.testclient import TestClient

    from elicence.app import create_app, seed_demo
    from issuer.service import IssuerService
    from keys.keystore import generate_kek as _kek

    clock = Clock(NOW)
    service = IssuerService(sessions=sessions, kek=_kek(), public_url=PUBLIC_URL, clock=clock)
    operators = {o.authority: o.api_key for o in seed_demo(service, tmp_path)}
    app = create_app(issuer=service)
    # One client for the test, entered: one event loop thread for all its requests (a client used
    # without ``with`` starts a new one for each request, ~10x slower).
    with TestClient(app) as client:
        yield ApiWorld(app=app, client=client, service=service, clock=clock, sessions=sessions,
                       keys=operators, database_url=database_url)


class ApiWorld:
    """The issuer API of one test, with the two demo authorities ``sh-amr`` (default) and ``zj-amr``."""

    SLUG = "sh-amr"
    OTHER = "zj-amr"
    PUBLIC_URL = PUBLIC_URL

    def __init__(self, *, app, client, service, clock, sessions, keys, database_url) -> None:
        self.app = app
        self.client = client
        self.service = service
        self.clock = clock
        self.sessions = sessions
        self.keys = keys
        self.database_url = database_url
        self.issuer_id = f"{PUBLIC_URL}/issuers/{self.SLUG}"

    # -- plumbing ---------------------------------------------------------------------------------------

    def path(self, name: str, slug: str | None = None) -> str:
        return f"/issuers/{slug or self.SLUG}/{name}"

    def admin(self, slug: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[slug or self.SLUG]}", **extra}

    @staticmethod
    def error(response, status: int, code: str, case: str = "") -> dict[str, Any]:
        """Assert an error response: its status, its ``error`` code, a description; returns the body.

        ``case`` names the input in the failure message when one test walks through several.
        """
        assert response.status_code == status, (case, response.status_code, response.text[:500])
        body = response.json()
        assert body["error"] == code, (case, body)
        assert isinstance(body.get("error_description"), str) and body["error_description"], (case, body)
        return body

    def snapshot(self) -> dict[str, Any]:
        """Everything a refused request must leave as it was: rows, states, counters, list versions."""
        from sqlalchemy import text

        q = {
            "authorities": "SELECT slug FROM issuer_authority ORDER BY slug",
            "operators": "SELECT id, revoked_at IS NULL FROM issuer_operator ORDER BY id",
            "keys": "SELECT kid, state FROM issuer_key ORDER BY kid",
            "records": "SELECT id, updated_at FROM issuer_record ORDER BY id",
            "lists": "SELECT id, version, used_count FROM issuer_status_list ORDER BY id",
            "credentials": "SELECT id, status, replaced_by FROM issuer_credential ORDER BY id",
            "offers": "SELECT id, state, pin_attempts FROM issuer_offer ORDER BY id",
            "tokens": "SELECT token_hash, used_at IS NULL FROM issuer_access_token ORDER BY token_hash",
            "nonces": "SELECT value, used_at IS NULL FROM issuer_nonce ORDER BY value",
            "idempotency": "SELECT operator_id, key FROM issuer_idempotency ORDER BY operator_id, key",
            "audit": "SELECT chain, seq, hash FROM issuer_audit ORDER BY chain, seq",
        }
        with store.unit_of_work(self.sessions, read_only=True) as tx:
            return {name: [tuple(row) for row in tx.execute(text(sql))] for name, sql in q.items()}

    # -- an operator's steps ----------------------------------------------------------------------------

    def import_record(self, seed: int = 1, *, slug: str | None = None) -> dict[str, Any]:
        claims = licence_claims(seed)
        r = self.client.post(self.path("admin/records", slug), json={"type": "business-licence", "claims": claims},
                             headers=self.admin(slug))
        assert r.status_code == 201, r.text
        return claims

    def offer(self, seed: int = 1, *, slug: str | None = None, imported: bool = False, **extra: Any) -> dict[str, Any]:
        """A fresh offer (record ``seed`` imported first unless ``imported``); the offer JSON with its PIN."""
        uscc = licence_claims(seed)["uscc"]
        if not imported:
            self.import_record(seed, slug=slug)
        r = self.client.post(self.path("admin/offers", slug), json={"type": "business-licence", "uscc": uscc, **extra},
                             headers=self.admin(slug))
        assert r.status_code == 201, r.text
        return r.json()

    def credential_row(self, credential_id: str, slug: str | None = None) -> dict[str, Any]:
        r = self.client.get(self.path(f"admin/credentials/{credential_id}", slug), headers=self.admin(slug))
        assert r.status_code == 200, r.text
        return r.json()

    def set_status(self, credential_id: str, action: str, reason: str | None = None, **headers: str):
        body = {"action": action} if reason is None else {"action": action, "reason": reason}
        return self.client.post(self.path(f"admin/credentials/{credential_id}/status"), json=body,
                                headers=self.admin(**headers))

    # -- a wallet's steps -------------------------------------------------------------------------------

    def pre_authorized_code(self, offer: dict[str, Any]) -> str:
        from credentials import openid4vci as o4

        reference = o4.parse_offer_uri(offer["offer_reference_uri"])
        assert isinstance(reference, str) and reference.startswith(PUBLIC_URL)
        r = self.client.get(reference.removeprefix(PUBLIC_URL))
        assert r.status_code == 200, r.text
        return r.json()["grants"][o4.PRE_AUTHORIZED_GRANT]["pre-authorized_code"]

    def token_response(self, offer: dict[str, Any], *, code: str | None = None, tx_code: str | None = None,
                       slug: str | None = None):
        from credentials import openid4vci as o4

        form = {"grant_type": o4.PRE_AUTHORIZED_GRANT,
                "pre-authorized_code": code or self.pre_authorized_code(offer),
                "tx_code": offer["tx_code"] if tx_code is None else tx_code}
        return self.client.post(self.path("token", slug), data=form)

    def token(self, offer: dict[str, Any], slug: str | None = None) -> str:
        r = self.token_response(offer, slug=slug)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def nonce(self, slug: str | None = None) -> str:
        r = self.client.post(self.path("nonce", slug))
        assert r.status_code == 200, r.text
        return r.json()["c_nonce"]

    def proof(self, holder, nonce: str | None, *, aud: str | None = None, iat: int | None = None) -> str:
        from credentials import openid4vci as o4

        return o4.make_proof(holder, audience=aud or self.issuer_id, nonce=nonce,
                             iat=self.clock.timestamp() if iat is None else iat)

    def credential_response(self, access_token: str, proof: str, *, configuration: str = "business-licence",
                            slug: str | None = None):
        return self.client.post(self.path("credential", slug),
                                json={"credential_configuration_id": configuration, "proofs": {"jwt": [proof]}},
                                headers={"Authorization": f"Bearer {access_token}"})

    def issue(self, seed: int = 1, *, holder=None, slug: str | None = None, imported: bool = False):
        """The whole pre-authorised flow over HTTP; returns (credential text, holder signer, offer)."""
        from keys.signer import SoftwareSigner

        holder = holder or SoftwareSigner.generate("ES256")
        offer = self.offer(seed, slug=slug, imported=imported)
        access_token = self.token(offer, slug=slug)
        nonce = self.nonce(slug)
        aud = f"{PUBLIC_URL}/issuers/{slug or self.SLUG}"
        r = self.credential_response(access_token, self.proof(holder, nonce, aud=aud), slug=slug)
        assert r.status_code == 200, r.text
        return r.json()["credentials"][0]["credential"], holder, offer

    def credential_id(self, credential: str) -> str:
        """The admin id of an issued credential (found by its hash, as the service records it)."""
        import hashlib

        digest = hashlib.sha256(credential.split("~", 1)[0].encode("ascii")).hexdigest()
        from sqlalchemy import text

        with store.unit_of_work(self.sessions, read_only=True) as tx:
            return tx.execute(text("SELECT id FROM issuer_credential WHERE credential_hash = :h"),
                              {"h": digest}).scalar_one()

    # -- a verifier's steps -----------------------------------------------------------------------------

    def jwks(self, slug: str | None = None) -> dict[str, Any]:
        r = self.client.get(f"/.well-known/jwt-vc-issuer/issuers/{slug or self.SLUG}")
        assert r.status_code == 200, r.text
        return r.json()["jwks"]

    def verify_credential(self, credential: str, slug: str | None = None):
        """Verify an issued SD-JWT VC with the keys the issuer publishes (no key binding)."""
        from credentials import jws, sd_jwt_vc

        keys = {k["kid"]: k for k in self.jwks(slug)["keys"]}

        def resolve(iss, header, vct):
            assert iss == f"{PUBLIC_URL}/issuers/{slug or self.SLUG}"
            return jws.public_key_from_jwk(keys[header["kid"]], alg=header["alg"])

        return sd_jwt_vc.verify_vc(credential, resolve_issuer_key=resolve, now=self.clock.timestamp())

    def status_list(self, uri: str, response=None):
        """GET a status list token at ``uri`` and verify it with the issuer's published key."""
        from credentials import jws
        from credentials import status_list as sl

        if response is None:
            response = self.client.get(uri.removeprefix(PUBLIC_URL))
        assert response.status_code == 200, response.text
        keys = {k["kid"]: k for k in self.jwks()["keys"]}
        header = jws.parse(response.text).header
        key = jws.public_key_from_jwk(keys[header["kid"]], alg=header["alg"])
        return sl.verify_status_list_token(response.content, key=key, expected_uri=uri, now=self.clock.timestamp())
