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
