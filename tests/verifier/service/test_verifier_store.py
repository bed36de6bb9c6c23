"""The verifier's tables: migrations equal the models, and the store's once-only guarantees hold."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from elicence.db import make_engine, migrate
from verifier import store
from verifier.store import VerifierBase

NOW = datetime(2026, 9, 21, 13, 46, 40, tzinfo=timezone.utc)
TABLES = {"verifier_registrar", "verifier_department", "verifier_staff", "verifier_key", "verifier_kek_check",
          "verifier_transaction", "verifier_replay", "verifier_verification", "verifier_audit", "verifier_audit_head",
          "verifier_portal", "verifier_login"}


def test_migrated_schema_equals_the_models(empty_database_url):
    engine = make_engine(empty_database_url)
    try:
        assert "verifier_0002" in migrate(engine)
        assert {t for t in inspect(engine).get_table_names() if t.startswith("verifier_")} == TABLES
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "compare_type": True,
                "include_name": lambda name, type_, parent: type_ != "table" or name.startswith("verifier_"),
            })
            assert compare_metadata(context, VerifierBase.metadata) == []
    finally:
        engine.dispose()


def test_the_replay_store_accepts_a_key_once_until_it_expires(sessions):
    replay = store.SqlReplayStore(sessions)
    t = NOW.timestamp()
    assert replay.remember("k1", expires_at=t + 300, now=t) is True
    assert replay.remember("k1", expires_at=t + 600, now=t + 299) is False
    assert replay.remember("k2", expires_at=t + 300, now=t) is True
    assert replay.remember("k1", expires_at=t + 900, now=t + 300) is True  # expired: remembered afresh
    assert replay.remember("k1", expires_at=t + 900, now=t + 301) is False


def _department_and_transaction(sessions):
    with store.unit_of_work(sessions) as tx:
        store.create_department(tx, slug="d1", name_zh="部门", name_en="Department", dns_name="d1.example.cn",
                                vcts=["https://elicence.cn/vct/business-licence"], now=NOW)
        store.create_transaction(tx, transaction_id="t1", department="d1", staff_id=None, secret_hash="0" * 64,
                                 request={"x": 1}, request_object="a.b.c", item_id=None, now=NOW,
                                 expires_at=NOW + timedelta(seconds=300))


def test_a_transaction_is_claimed_once_under_concurrency(sessions, backend):
    _department_and_transaction(sessions)
    n = 6
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def worker() -> None:
        barrier.wait()
        try:
            with store.unit_of_work(sessions) as tx:
                store.claim_transaction(tx, transaction_id="t1", now=NOW)
            outcomes.append("claimed")
        except store.Spent as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["claimed"] + ["used"] * (n - 1)


@pytest.mark.parametrize(("transaction_id", "now", "reason"), [
    ("t1", NOW + timedelta(seconds=300), "expired"),
    ("nope", NOW, "unknown"),
])
def test_an_expired_or_unknown_transaction_cannot_be_claimed(sessions, transaction_id, now, reason):
    _department_and_transaction(sessions)
    with pytest.raises(store.Spent) as info:
        with store.unit_of_work(sessions) as tx:
            store.claim_transaction(tx, transaction_id=transaction_id, now=now)
    assert (info.value.code, info.value.reason) == ("spent", reason)


def test_purge_drops_old_results_and_stale_replay_entries(sessions):
    _department_and_transaction(sessions)
    with store.unit_of_work(sessions) as tx:
        store.claim_transaction(tx, transaction_id="t1", now=NOW)
        store.complete_transaction(tx, transaction_id="t1", verdict="valid", code=None, result={"claims": {"a": 1}})
    store.SqlReplayStore(sessions).remember("k", expires_at=NOW.timestamp() + 10, now=NOW.timestamp())
    with store.unit_of_work(sessions) as tx:
        assert store.purge_expired(tx, now=NOW + timedelta(seconds=60), keep_results_for=3600) == 1
        assert store.purge_expired(tx, now=NOW + timedelta(hours=2), keep_results_for=3600) == 1
        found = store.get_transaction(tx, transaction_id="t1")
    assert found.result is None and found.verdict == "valid"


def test_naive_times_are_refused(sessions):
    with pytest.raises(store.InvalidValue) as info:
        with store.unit_of_work(sessions) as tx:
            store.create_department(tx, slug="d2", name_zh="部门", name_en="D", dns_name="d2.example.cn",
                                    vcts=["x"], now=datetime(2026, 1, 1))
    assert info.value.code == "invalid_value"
