"""Fixtures of the wallet tests: a ``WalletService`` on each backend, and the deployment's app over it.

Built on the shared ``sessions`` fixture (tests/conftest.py): every test here runs on SQLite and, when
``ELICENCE_TEST_DATABASE_URL`` is set, on PostgreSQL. Time stands still until a test moves the clock;
scrypt runs with a tiny cost (``FAST``, a real :class:`WalletPolicy`) so that a test can sign in many
times. Test modules reach the helpers through the ``wkit`` fixture (conftest modules are not importable
under ``--import-mode=importlib``).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from keys.keystore import generate_kek
from schemas.synthetic import generate_business_licence
from wallet import store
from wallet.service import WalletPolicy, WalletService

NOW = datetime(2026, 11, 3, 2, 0, 0, tzinfo=timezone.utc)
KEK = generate_kek()
FAST = WalletPolicy(scrypt_n=2**4, scrypt_r=8, scrypt_p=1)
PASSWORD = "correct horse battery"
PIN = "260817"
PUBLIC_URL = "https://elicence.example.gov.cn"


def uscc(seed: int) -> str:
    """A valid USCC (GB 32100-2015), deterministic per seed."""
    return generate_business_licence(random.Random(seed))["uscc"]


def phone(n: int) -> str:
    """The n-th test mobile number, normalised (+86 138 0000 nnnn)."""
    return f"+86138{n:08d}"


class Clock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def wallet(sessions, clock) -> WalletService:
    """The wallet service on the test's database, with the fast policy and the test clock."""
    return WalletService(sessions=sessions, kek=KEK, policy=FAST, clock=clock)


def snapshot(sessions) -> dict[str, Any]:
    """Every row of the wallet's tables, for proving a refused request changed nothing."""
    out = {}
    with store.unit_of_work(sessions, read_only=True) as tx:
        for table in store.WalletBase.metadata.sorted_tables:
            rows = tx.execute(table.select()).all()
            out[table.name] = sorted(repr(tuple(r)) for r in rows)
    return out


class Kit:
    """Constants and helpers for the test modules."""

    NOW = NOW
    KEK = KEK
    FAST = FAST
    PASSWORD = PASSWORD
    PIN = PIN
    uscc = staticmethod(uscc)
    phone = staticmethod(phone)
    snapshot = staticmethod(snapshot)

    @staticmethod
    def user(wallet: WalletService, n: int, *, pin: bool = False, name: str | None = None) -> store.User:
        """Register account ``n`` (and set its PIN if asked)."""
        user = wallet.register(phone=phone(n), password=PASSWORD, display_name=name or f"用户{n}")
        if pin:
            wallet.set_pin(user, pin=PIN)
        return user

    @staticmethod
    def enterprise(wallet: WalletService, user: store.User, seed: int) -> store.Enterprise:
        return wallet.claim_enterprise(user, uscc=uscc(seed), name=f"企业{seed}有限公司")


@pytest.fixture
def wkit() -> type[Kit]:
    return Kit


# --- HTTP -----------------------------------------------------------------------------------------------


class Api:
    """The deployment's app (issuer and wallet mounted together) over the test's wallet service."""

    def __init__(self, client, wallet: WalletService, sessions, clock: Clock) -> None:
        self.client = client
        self.wallet = wallet
        self.sessions = sessions
        self.clock = clock

    @staticmethod
    def error(response, status: int, code: str, case: Any = "") -> dict[str, Any]:
        """Assert an error response: status, ``error`` code, a description; returns the body."""
        assert response.status_code == status, (case, response.status_code, response.text[:500])
        body = response.json()
        assert body["error"] == code, (case, body)
        assert isinstance(body.get("error_description"), str) and body["error_description"], (case, body)
        return body

    def register(self, n: int, *, name: str | None = None) -> dict[str, Any]:
        r = self.client.post("/wallet/accounts", json={"phone": phone(n)[3:], "password": PASSWORD,
                                                       "display_name": name or f"用户{n}"})
        assert r.status_code == 201, r.text
        return r.json()

    def sign_in(self, n: int) -> dict[str, Any]:
        r = self.client.post("/wallet/sessions", json={"phone": phone(n), "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r.json()

    def account(self, n: int, *, pin: bool = True) -> dict[str, str]:
        """Register account ``n``, sign in, set the PIN; returns its Authorization header."""
        self.register(n)
        headers = {"Authorization": f"Bearer {self.sign_in(n)['access_token']}"}
        if pin:
            r = self.client.put("/wallet/pin", json={"pin": PIN}, headers=headers)
            assert r.status_code == 204, r.text
        return headers

    def claim(self, headers: dict[str, str], seed: int) -> dict[str, Any]:
        r = self.client.post("/wallet/enterprises", json={"uscc": uscc(seed), "name": f"企业{seed}有限公司"},
                             headers=headers)
        assert r.status_code == 201, r.text
        return r.json()

    def add_member(self, headers: dict[str, str], enterprise_id: str, n: int, role: str) -> dict[str, Any]:
        r = self.client.post(f"/wallet/enterprises/{enterprise_id}/members", json={"phone": phone(n), "role": role},
                             headers=headers)
        assert r.status_code == 201, r.text
        return r.json()

    def user_id(self, headers: dict[str, str]) -> str:
        return self.client.get("/wallet/me", headers=headers).json()["user"]["id"]

    def snapshot(self) -> dict[str, Any]:
        return snapshot(self.sessions)


@pytest.fixture
def wapi(wallet, sessions, clock):
    """An :class:`Api` on the test's database (SQLite; PostgreSQL too when configured)."""
    from fastapi.testclient import TestClient

    from elicence.app import create_app
    from issuer.service import IssuerService

    issuer = IssuerService(sessions=sessions, kek=KEK, public_url=PUBLIC_URL, clock=clock)
    with TestClient(create_app(issuer=issuer, wallet=wallet)) as client:
        yield Api(client, wallet, sessions, clock)
