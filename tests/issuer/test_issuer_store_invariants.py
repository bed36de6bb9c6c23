"""Tests that try to break the issuer store's invariants: concurrency, atomicity, tampering.

Each runs on SQLite (writers serialise behind ``BEGIN IMMEDIATE`` and the busy timeout: no spurious
"database is locked") and on PostgreSQL (real concurrency: threads with their own connections,
released together by a barrier, racing for the same row locks).
"""

from __future__ import annotations

import hashlib
import random
from datetime import timedelta

import pytest
from sqlalchemy import text

from credentials import status_list as sl
from issuer import store
from issuer.store import RecordInput

THREADS = 50


def _tx(sessions):
    return store.unit_of_work(sessions)


# --- status indexes ---------------------------------------------------------------------------------------


def _used_bits(tx, list_id: int) -> set[int]:
    used = tx.execute(text("SELECT used FROM issuer_status_list WHERE id = :i"), {"i": list_id}).scalar_one()
    return {i for i in range(len(used) * 8) if used[i >> 3] >> (i & 7) & 1}


def test_concurrent_issuances_never_share_a_status_index(world, sessions, kit):
    uscc = kit.licence_claims(1)["uscc"]

    def issue_one(i: int) -> store.Credential:
        # Every worker draws the same "random" sequence: only the row lock and a fresh read of the
        # bitmap keep them from picking the same index (and a lost bitmap update would show below).
        with _tx(sessions) as tx:
            return kit.issue(
                tx, world, uscc=uscc, now=kit.NOW + timedelta(seconds=i), actor=f"worker-{i}", rng=random.Random(0)
            )

    results = kit.run_concurrently(THREADS, issue_one)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    indexes = [c.status_idx for c in results]
    assert len(set(indexes)) == THREADS
    with _tx(sessions) as tx:
        info = store.get_list(tx, list_id=world.list_id).info
        assert (info.used_count, info.version) == (THREADS, 1)  # allocation leaves the token unchanged
        assert _used_bits(tx, world.list_id) == set(indexes)
        stored = store.list_credentials(tx, authority=world.slug, limit=1000).items
        assert sorted(c.status_idx for c in stored) == sorted(indexes)
        # One audit record per issuance, in one unbroken chain whatever the interleaving.
        (report,) = store.verify_all_audits(tx)
        assert (report.count, report.broken) == (THREADS, None)
        subjects = {r.subject for r in store.list_audit(tx, chain=world.slug, limit=1000)}
        assert subjects == {c.id for c in results}


def test_concurrent_batch_allocations_are_disjoint(world, sessions, kit):
    def allocate(i: int) -> tuple[int, ...]:
        with _tx(sessions) as tx:
            slots = store.allocate_indexes(tx, list_id=world.list_id, count=20, now=kit.NOW, rng=random.Random(0))
            return tuple(s.idx for s in slots)

    results = kit.run_concurrently(10, allocate)
    assert not [r for r in results if isinstance(r, BaseException)]
    flat = [i for batch in results for i in batch]
    assert len(flat) == len(set(flat)) == 200
    with _tx(sessions) as tx:
        assert _used_bits(tx, world.list_id) == set(flat)
        assert store.get_list(tx, list_id=world.list_id).info.used_count == 200


def test_concurrent_callers_open_one_new_list(sessions, kit):
    w = kit.make_world(sessions, list_size=8)
    with _tx(sessions) as tx:
        store.allocate_indexes(tx, list_id=w.list_id, count=6, now=kit.NOW)  # 75 % used

    def open_list(i: int) -> int:
        with _tx(sessions) as tx:
            return store.open_status_list(tx, authority=w.slug, uri_prefix=kit.URI_PREFIX, now=kit.NOW).id

    results = kit.run_concurrently(10, open_list)
    assert not [r for r in results if isinstance(r, BaseException)]
    assert len(set(results)) == 1 and results[0] != w.list_id
    with _tx(sessions) as tx:
        assert len(store.list_status_lists(tx, authority=w.slug)) == 2


# --- atomicity ----------------------------------------------------------------------------------------------


def test_a_failure_inside_a_unit_of_work_leaves_nothing(sessions, kit):
    world = kit.make_world(sessions, list_size=16)
    with _tx(sessions) as tx:
        before = store.get_list(tx, list_id=world.list_id)
    with pytest.raises(RuntimeError, match="signing failed"):
        with _tx(sessions) as tx:
            cred = kit.issue(tx, world, uscc=kit.licence_claims(1)["uscc"])
            assert store.get_credential(tx, credential_id=cred.id) is not None
            raise RuntimeError("signing failed")  # e.g. the HSM, after the rows were written
    with _tx(sessions) as tx:
        assert store.get_credential(tx, credential_id=cred.id) is None
        assert store.list_credentials(tx, authority=world.slug).items == ()
        after = store.get_list(tx, list_id=world.list_id)
        assert after == before  # used bitmap, count and version untouched
        assert _used_bits(tx, world.list_id) == set()
        assert store.audit_head(tx, chain=world.slug) is None
        assert store.list_audit(tx, chain=world.slug) == ()
    # The index that was taken and rolled back is simply free again: nothing ever referred to it.
    with _tx(sessions) as tx:
        store.allocate_indexes(tx, list_id=world.list_id, count=16, now=kit.NOW)


def test_a_failed_status_change_leaves_row_and_list_as_they_were(world, sessions, kit):
    with _tx(sessions) as tx:
        cred = kit.issue(tx, world, uscc=kit.licence_claims(1)["uscc"])
        version = store.get_list_version(tx, list_id=world.list_id)
    with pytest.raises(store.InvalidValue):
        with _tx(sessions) as tx:
            store.set_credential_status(tx, credential_id=cred.id, status="revoked", reason="吊销", now=kit.NOW)
            store.append_audit(tx, chain=world.slug, at=kit.NOW, actor="op", action="x", subject=cred.id, details={"f": 0.5})
    with _tx(sessions) as tx:
        assert store.get_credential(tx, credential_id=cred.id).status == "valid"
        lst = store.get_list(tx, list_id=world.list_id)
        assert lst.info.version == version
        assert lst.status_list().get(cred.status_idx) == sl.VALID
        assert store.audit_head(tx, chain=world.slug).seq == 1


def test_bulk_import_with_one_bad_row_writes_nothing(world, sessions, kit):
    good = [RecordInput(kit.BL, c["uscc"], c) for c in map(kit.licence_claims, range(40))]
    with _tx(sessions) as tx:
        store.import_records(tx, authority=world.slug, records=good[:3], now=kit.NOW)
    bad_uscc = good[27].uscc[:-1] + ("0" if good[27].uscc[-1] != "0" else "1")
    cases = {
        "invalid_uscc": (27, RecordInput(kit.BL, bad_uscc, good[27].claims)),
        "unknown_type": (12, RecordInput(kit.FOOD, good[12].uscc, good[12].claims)),
        "claims_not_object": (39, RecordInput(kit.BL, good[39].uscc, ["x"])),  # type: ignore[arg-type]
        "duplicate_in_batch": (30, RecordInput(kit.BL, good[5].uscc, good[5].claims)),
    }
    for name, (position, row) in cases.items():
        batch = list(good)
        batch[position] = row
        later = kit.NOW + timedelta(days=1)
        with _tx(sessions) as tx:
            with pytest.raises(store.InvalidRow) as exc:
                store.import_records(tx, authority=world.slug, records=batch, now=later, chunk=10)
            assert (exc.value.code, exc.value.index) == ("invalid_row", position), name
            # Nothing of the batch, not even the rows before the bad one, and the old rows unchanged.
            page = store.list_records(tx, authority=world.slug, limit=1000)
            assert len(page.items) == 3 and all(r.updated_at == kit.NOW for r in page.items), name


def test_a_database_error_inside_a_batch_rolls_back_only_the_batch(world, sessions, kit):
    rows = [RecordInput(kit.BL, c["uscc"], c) for c in map(kit.licence_claims, range(10))]
    with _tx(sessions) as tx:
        store.append_audit(tx, chain=world.slug, at=kit.NOW, actor="op", action="import.started", subject="batch")
        # The CHECK constraint on the USCC length is the database's own guard: make it fire mid-batch
        # by bypassing the Python checks for one row.
        original = store._record_values

        def sneaky(authority, item, now):
            values = original(authority, item, now)
            if item.uscc == rows[6].uscc:
                values["uscc"] = values["uscc"][:17]
            return values

        store._record_values = sneaky
        try:
            with pytest.raises(store.Conflict):
                store.import_records(tx, authority=world.slug, records=rows, now=kit.NOW, chunk=3)
        finally:
            store._record_values = original
        assert store.list_records(tx, authority=world.slug).items == ()
        store.append_audit(tx, chain=world.slug, at=kit.NOW, actor="op", action="import.failed", subject="batch")
    with _tx(sessions) as tx:
        assert store.audit_head(tx, chain=world.slug).seq == 2


# --- single use under concurrency ----------------------------------------------------------------------------


def test_a_nonce_consumed_concurrently_succeeds_once(world, sessions, kit):
    with _tx(sessions) as tx:
        store.create_nonce(tx, value="c_nonce-1", expires_at=kit.NOW + timedelta(minutes=5))

    def consume(i: int):
        with _tx(sessions) as tx:
            return store.consume_nonce(tx, value="c_nonce-1", now=kit.NOW)

    results = kit.run_concurrently(20, consume)
    assert sum(isinstance(r, store.Nonce) for r in results) == 1
    assert all(r.reason == "used" for r in results if isinstance(r, store.Spent))
    assert sum(isinstance(r, store.Spent) for r in results) == 19


def test_a_pre_authorised_code_redeemed_concurrently_succeeds_once(world, sessions, kit):
    code_hash = hashlib.sha256(b"pre-authorized code").hexdigest()
    with _tx(sessions) as tx:
        store.create_offer(
            tx, offer_id="offer-1", authority=world.slug, configuration_id="business_licence", code_hash=code_hash,
            expires_at=kit.NOW + timedelta(minutes=10), now=kit.NOW,
        )

    def redeem(i: int):
        with _tx(sessions) as tx:
            offer = store.find_offer_by_code(tx, code_hash=code_hash)
            redeemed = store.redeem_offer(tx, offer_id=offer.id, now=kit.NOW)
            store.create_access_token(
                tx, token_hash=hashlib.sha256(f"token-{i}".encode()).hexdigest(), offer_id=offer.id,
                expires_at=kit.NOW + timedelta(minutes=5),
            )
            return redeemed

    results = kit.run_concurrently(20, redeem)
    assert sum(isinstance(r, store.Offer) for r in results) == 1
    assert sum(isinstance(r, store.Spent) and r.reason == "used" for r in results) == 19
    with _tx(sessions) as tx:
        assert tx.execute(text("SELECT count(*) FROM issuer_access_token")).scalar_one() == 1


def test_an_access_token_used_concurrently_succeeds_once(world, sessions, kit):
    with _tx(sessions) as tx:
        store.create_offer(
            tx, offer_id="offer-1", authority=world.slug, configuration_id="business_licence", code_hash="c" * 64,
            expires_at=kit.NOW + timedelta(minutes=10), now=kit.NOW,
        )
        store.create_access_token(tx, token_hash="t" * 64, offer_id="offer-1", expires_at=kit.NOW + timedelta(minutes=5))

    def use(i: int):
        with _tx(sessions) as tx:
            return store.consume_access_token(tx, token_hash="t" * 64, now=kit.NOW)

    results = kit.run_concurrently(20, use)
    assert sum(isinstance(r, store.AccessToken) for r in results) == 1


def test_parallel_pin_guesses_cannot_exceed_the_limit(world, sessions, kit):
    with _tx(sessions) as tx:
        store.create_offer(
            tx, offer_id="offer-1", authority=world.slug, configuration_id="business_licence", code_hash="c" * 64,
            expires_at=kit.NOW + timedelta(minutes=10), now=kit.NOW, pin_salt=b"s", pin_hash=b"h",
        )

    def guess(i: int):
        with _tx(sessions) as tx:
            return store.claim_pin_attempt(tx, offer_id="offer-1", max_attempts=5, now=kit.NOW)

    results = kit.run_concurrently(25, guess)
    granted = sorted(r.pin_attempts for r in results if isinstance(r, store.Offer))
    assert granted == [1, 2, 3, 4, 5]
    assert sum(isinstance(r, store.Spent) and r.reason == "exhausted" for r in results) == 20


def test_one_idempotency_key_stores_one_outcome_under_concurrency(world, sessions, kit):
    with _tx(sessions) as tx:
        op = store.create_operator(tx, authority=world.slug, name="op", now=kit.NOW).operator

    def put(i: int):
        with _tx(sessions) as tx:
            return store.put_idempotency(
                tx, operator_id=op.id, key="issue-42", request_hash="a" * 64, status_code=201,
                response={"worker": i}, now=kit.NOW,
            )

    results = kit.run_concurrently(10, put)
    assert not [r for r in results if isinstance(r, BaseException)]
    assert sum(created for _, created in results) == 1
    assert len({record.response["worker"] for record, _ in results}) == 1


# --- audit chain ---------------------------------------------------------------------------------------------


def test_concurrent_appends_form_one_chain(world, sessions, kit):
    def append(i: int):
        with _tx(sessions) as tx:
            return store.append_audit(tx, chain=world.slug, at=kit.NOW, actor=f"w{i}", action="x", subject=str(i))

    results = kit.run_concurrently(THREADS, append)
    assert sorted(r.seq for r in results) == list(range(1, THREADS + 1))
    with _tx(sessions) as tx:
        report = store.verify_audit(tx, chain=world.slug)
    assert (report.count, report.broken) == (THREADS, None)


def _chain(sessions, kit, world, n: int = 6) -> None:
    with _tx(sessions) as tx:
        for i in range(n):
            store.append_audit(
                tx, chain=world.slug, at=kit.NOW + timedelta(seconds=i), actor="op", action="credential.issued",
                subject=f"c{i}", details={"idx": i, "reason": "吊销"},
            )


TAMPER_SQL = {
    "actor": ("UPDATE issuer_audit SET actor = 'intruder' WHERE seq = 3", 3, "hash_mismatch"),
    "details": ("UPDATE issuer_audit SET details = :d WHERE seq = 3", 3, "hash_mismatch"),
    "at": ("UPDATE issuer_audit SET at = :t WHERE seq = 3", 3, "hash_mismatch"),
    "hash": ("UPDATE issuer_audit SET hash = :h WHERE seq = 3", 3, "hash_mismatch"),
    "delete_middle": ("DELETE FROM issuer_audit WHERE seq = 3", 4, "seq_gap"),
    "delete_last": ("DELETE FROM issuer_audit WHERE seq = 6", 6, "truncated"),
    "delete_head": ("DELETE FROM issuer_audit_head", 1, "beyond_head"),
    "renumber": ("UPDATE issuer_audit SET seq = 100 WHERE seq = 2", 3, "seq_gap"),
}


@pytest.mark.parametrize("case", sorted(TAMPER_SQL))
def test_tampering_in_sql_is_found_with_its_seq(world, sessions, kit, case):
    _chain(sessions, kit, world)
    sql, seq, reason = TAMPER_SQL[case]
    params = {"d": '{"idx": 2, "reason": "注销"}', "t": kit.NOW + timedelta(hours=1), "h": "f" * 64}
    with sessions() as session, session.begin():
        session.execute(text(sql), {k: v for k, v in params.items() if f":{k}" in sql})
    with _tx(sessions) as tx:
        report = store.verify_audit(tx, chain=world.slug)
    assert report.broken is not None
    assert (report.broken.seq, report.broken.reason) == (seq, reason)


def test_a_fully_rewritten_chain_with_its_head_passes_which_is_the_documented_limit(world, sessions, kit):
    # Someone who can rewrite every row *and* the head can forge a consistent chain: the hash chain
    # detects partial tampering; anchoring heads elsewhere is what would catch this.
    _chain(sessions, kit, world, n=2)
    from credentials import audit

    with _tx(sessions) as tx:
        records = store.list_audit(tx, chain=world.slug)
        forged = audit.next_record(None, chain=world.slug, at=records[0].at, actor="intruder", action="x", subject="s")
        tx.execute(text("DELETE FROM issuer_audit"))
        tx.execute(text("UPDATE issuer_audit_head SET seq = 0"))
    with _tx(sessions) as tx:
        store.append_audit(tx, chain=world.slug, at=forged.at, actor="intruder", action="x", subject="s")
        assert store.verify_audit(tx, chain=world.slug).broken is None


# --- lock modes ---------------------------------------------------------------------------------------------


def test_a_status_change_in_progress_does_not_block_an_authorisation_under_the_licence(world, sessions, kit, backend):
    if backend == "sqlite":
        pytest.skip("SQLite serialises every writer: there is no row lock to be compatible with")
    with _tx(sessions) as tx:
        licence = kit.issue(tx, world, uscc=kit.licence_claims(1)["uscc"])
        other_list = store.create_status_list(tx, authority=world.slug, uri_prefix=kit.URI_PREFIX, now=kit.NOW).id

    def authorise(i: int) -> store.Credential:
        with _tx(sessions) as tx:
            # Fail rather than wait: a FOR UPDATE lock on the licence would block the foreign key check.
            tx.execute(text("SET LOCAL lock_timeout = '5s'"))
            slot = store.allocate_index(tx, list_id=other_list, now=kit.NOW)
            return store.insert_credential(
                tx, credential_id="staff-1", authority=world.slug, vct=kit.STAFF, uscc=licence.uscc, kid=world.kid,
                status_list_id=slot.list_id, status_idx=slot.idx, issued_at=kit.NOW, expires_at=None,
                credential_hash="0" * 64, granted_under=licence.id,
            )

    with _tx(sessions) as tx:
        store.set_credential_status(tx, credential_id=licence.id, status="revoked", reason="吊销", now=kit.NOW)
        (result,) = kit.run_concurrently(1, authorise)  # while the revocation is not yet committed
    assert isinstance(result, store.Credential), result
