"""wallet.store: the invariants the database holds under concurrency, and the keystore on wallet tables."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import pytest

from keys.errors import KeyNotFound, KeystoreError, WrongKek
from keys.keystore import Keystore, KeyState, generate_kek
from wallet import errors, store


def _user(tx, n: int, now) -> store.User:
    return store.create_user(tx, user_id=str(uuid.uuid4()), phone=f"+86138{n:08d}", display_name=f"u{n}",
                             password_hash="scrypt$n=16,r=8,p=1$c2FsdA$aGFzaA", now=now)


def _run_concurrently(n: int, task):
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait(30)
            results[i] = task(i)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return results


def test_parallel_attempts_never_exceed_the_limit(sessions, wkit):
    with store.unit_of_work(sessions) as tx:
        user = _user(tx, 1, wkit.NOW)

    def attempt(_i):
        with store.unit_of_work(sessions) as tx:
            return store.claim_attempt(tx, user_id=user.id, kind="pin", max_failures=5,
                                       lockout=timedelta(minutes=15), now=wkit.NOW)

    results = _run_concurrently(12, attempt)
    counted = [r for r in results if isinstance(r, store.Attempt)]
    refused = [r for r in results if isinstance(r, errors.Locked)]
    assert len(counted) == 5 and len(refused) == 7, results
    assert sorted(a.failures for a in counted) == [1, 2, 3, 4, 5]
    assert all(r.code == "locked" and r.retry_after == 900 for r in refused)


def test_a_lockout_that_ran_out_starts_a_new_count(sessions, wkit):
    with store.unit_of_work(sessions) as tx:
        user = _user(tx, 1, wkit.NOW)
        for _ in range(2):
            store.claim_attempt(tx, user_id=user.id, kind="sign_in", max_failures=2, lockout=timedelta(seconds=10),
                                now=wkit.NOW)
        later = wkit.NOW + timedelta(seconds=10)
        again = store.claim_attempt(tx, user_id=user.id, kind="sign_in", max_failures=2,
                                    lockout=timedelta(seconds=10), now=later)
    assert (again.failures, again.locked_until) == (1, None)


def test_claiming_for_an_unknown_user_or_kind_is_refused(sessions, wkit):
    with store.unit_of_work(sessions) as tx:
        with pytest.raises(errors.NotFound):
            store.claim_attempt(tx, user_id="nobody", kind="pin", max_failures=5, lockout=timedelta(1), now=wkit.NOW)
        user = _user(tx, 1, wkit.NOW)
        with pytest.raises(errors.InvalidValue):
            store.claim_attempt(tx, user_id=user.id, kind="face", max_failures=5, lockout=timedelta(1), now=wkit.NOW)
        with pytest.raises(errors.InvalidValue):
            store.claim_attempt(tx, user_id=user.id, kind="pin", max_failures=0, lockout=timedelta(1), now=wkit.NOW)


def test_naive_times_are_refused(sessions):
    with store.unit_of_work(sessions) as tx, pytest.raises(errors.InvalidValue):
        _user(tx, 1, datetime(2026, 1, 1))


def test_a_refresh_token_is_rotated_out_once(sessions, wkit):
    with store.unit_of_work(sessions) as tx:
        user = _user(tx, 1, wkit.NOW)
        store.create_session(tx, session_id="s1", user_id=user.id, now=wkit.NOW)
        store.add_refresh_token(tx, token_hash="h" * 64, session_id="s1", issued_at=wkit.NOW,
                                expires_at=wkit.NOW + timedelta(days=1))
    results = _run_concurrently(
        6, lambda _i: _mark(sessions, wkit.NOW))
    assert sorted(results) == [False] * 5 + [True]


def _mark(sessions, now):
    with store.unit_of_work(sessions) as tx:
        assert store.lock_refresh_token(tx, token_hash="h" * 64) is not None
        return store.mark_refresh_token_used(tx, token_hash="h" * 64, now=now)


def test_an_enterprise_has_one_legal_representative_and_one_uscc(sessions, wkit):
    with store.unit_of_work(sessions) as tx:
        a, b = _user(tx, 1, wkit.NOW), _user(tx, 2, wkit.NOW)
        store.create_enterprise(tx, enterprise_id="e1", uscc=wkit.uscc(1), name="E", legal_representative=a.id,
                                now=wkit.NOW)
        with pytest.raises(errors.Conflict):
            store.add_member(tx, enterprise_id="e1", user_id=b.id, role="legal_representative", added_by=a.id,
                             now=wkit.NOW)
        store.add_member(tx, enterprise_id="e1", user_id=b.id, role="staff", added_by=a.id, now=wkit.NOW)
        with pytest.raises(errors.Conflict):  # the partial unique index, not only the service, refuses it
            store.set_member_role(tx, enterprise_id="e1", user_id=b.id, role="legal_representative")
        with pytest.raises(errors.Conflict):
            store.create_enterprise(tx, enterprise_id="e2", uscc=wkit.uscc(1), name="F", legal_representative=b.id,
                                    now=wkit.NOW)
        assert store.count_role(tx, enterprise_id="e1", role="legal_representative") == 1
        with pytest.raises(errors.InvalidValue):
            store.add_member(tx, enterprise_id="e1", user_id=b.id, role="owner", added_by=a.id, now=wkit.NOW)


def test_a_credential_needs_an_owner_and_is_stored_once(sessions, wkit):
    with store.unit_of_work(sessions) as tx:
        user = _user(tx, 1, wkit.NOW)
        kid = Keystore(store.SqlKeyRecordStore(sessions, f"user:{user.id}").using(tx), wkit.KEK).generate(
            "ES256", now=wkit.NOW, owner=f"user:{user.id}")
        common = {"holder_kid": kid, "vct": "v", "issuer": "https://i", "configuration_id": "c", "credential": "x~",
                  "credential_hash": "a" * 64, "received_at": wkit.NOW, "expires_at": None}
        with pytest.raises(errors.InvalidValue):
            store.add_credential(tx, credential_id="c0", enterprise_id=None, user_id=None, **common)
        store.add_credential(tx, credential_id="c1", enterprise_id=None, user_id=user.id, **common)
        with pytest.raises(errors.Conflict):
            store.add_credential(tx, credential_id="c2", enterprise_id=None, user_id=user.id, **common)
        with pytest.raises(errors.InvalidValue):
            store.add_credential(tx, credential_id="c3", enterprise_id=None, user_id=user.id,
                                 **{**common, "credential_hash": "b" * 64}, status_list_idx=-1)
        with pytest.raises(errors.NotFound):
            store.delete_credential(tx, credential_id="nope")


def test_usage_listing_needs_a_filter(sessions):
    with store.unit_of_work(sessions, read_only=True) as tx, pytest.raises(errors.InvalidValue):
        store.list_usage(tx)


# --- the keystore on wallet tables ----------------------------------------------------------------------


def test_a_tenants_key_store_sees_only_its_own_keys(sessions, wkit):
    alice = store.SqlKeyRecordStore(sessions, "user:alice")
    bob = store.SqlKeyRecordStore(sessions, "user:bob")
    kid = Keystore(alice, wkit.KEK).generate("ES256", now=wkit.NOW, owner="user:alice")
    assert Keystore(alice, wkit.KEK).signer(kid).kid == kid
    assert bob.get(kid) is None and bob.list() == () and alice.list(owner="user:bob") == ()
    with pytest.raises(KeyNotFound):
        Keystore(bob, wkit.KEK).signer(kid)
    with pytest.raises(KeyNotFound):
        bob.update_state(kid, KeyState.REVOKED, at=wkit.NOW)
    with pytest.raises(KeystoreError):  # a record of another owner cannot be put through this store
        bob.put(alice.get(kid))
    with pytest.raises(KeystoreError):  # nor the same kid twice
        alice.put(alice.get(kid))
    assert alice.update_state(kid, KeyState.RETIRED, at=wkit.NOW).retired_at == wkit.NOW


def test_private_keys_are_stored_encrypted_and_a_wrong_kek_cannot_open_them(sessions, wkit):
    records = store.SqlKeyRecordStore(sessions, "enterprise:e1")
    kid = Keystore(records, wkit.KEK).generate("ES256", now=wkit.NOW, owner="enterprise:e1")
    signer = Keystore(records, wkit.KEK).signer(kid)
    d = signer.private_key.private_numbers().private_value.to_bytes(32, "big")
    assert d not in repr(wkit.snapshot(sessions)).encode() and d.hex() not in repr(wkit.snapshot(sessions))
    with pytest.raises(WrongKek) as caught:
        Keystore(records, generate_kek()).signer(kid)
    assert caught.value.code == "keystore_wrong_kek"


# --- races through the service --------------------------------------------------------------------------


def test_parallel_claims_of_one_uscc_leave_one_legal_representative(wallet, wkit):
    users = [wkit.user(wallet, n) for n in range(1, 5)]
    results = _run_concurrently(4, lambda i: wkit.enterprise(wallet, users[i], 1))
    won = [r for r in results if isinstance(r, store.Enterprise)]
    lost = [r for r in results if isinstance(r, errors.EnterpriseClaimed)]
    assert len(won) == 1 and len(lost) == 3, results


def test_parallel_administrator_appointments_stop_at_the_limit(wallet, wkit):
    lr = wkit.user(wallet, 1)
    enterprise = wkit.enterprise(wallet, lr, 1)
    for n in range(2, 10):
        wkit.user(wallet, n)
    results = _run_concurrently(8, lambda i: wallet.add_member(lr, enterprise_id=enterprise.id, phone=wkit.phone(i + 2),
                                                               role="administrator"))
    assert sum(isinstance(r, store.Member) for r in results) == 5, results
    assert sum(isinstance(r, errors.AdministratorLimit) for r in results) == 3, results
    assert [m.role for m in wallet.members(lr, enterprise_id=enterprise.id)].count(store.Role.ADMINISTRATOR) == 5


def test_parallel_registrations_of_one_number_make_one_account(wallet, wkit):
    results = _run_concurrently(4, lambda i: wallet.register(phone=wkit.phone(1), password=wkit.PASSWORD,
                                                             display_name=f"n{i}"))
    assert sum(isinstance(r, store.User) for r in results) == 1, results
    assert sum(isinstance(r, errors.PhoneTaken) for r in results) == 3, results
