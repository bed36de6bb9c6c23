"""The login tables: a code is redeemed once, even by racing workers (test_verifier_store.py checks that the
migrations equal the models, these tables included)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from verifier import store

NOW = datetime(2026, 9, 21, 13, 46, 40, tzinfo=timezone.utc)
BL = "https://elicence.cn/vct/business-licence"


def _login_with_code(sessions, *, code_hash: str = "c" * 64) -> store.Login:
    with store.unit_of_work(sessions) as tx:
        store.create_department(tx, slug="d1", name_zh="部门", name_en="Department", dns_name="d1.example.cn",
                                vcts=[BL], now=NOW)
        for client in ("p1", "p2"):
            store.create_portal(tx, client_id=client, department="d1", name="门户", secret_hash="s" * 64,
                                redirect_uris=["https://p.example.cn/cb"], allow_staff=False, item_id=None,
                                pairwise_salt="salt", now=NOW)
        login = store.create_login(tx, login_id="l1", client_id="p1", transaction_id="t1", browser_hash="b" * 64,
                                   redirect_uri="https://p.example.cn/cb", state=None, nonce="n", code_challenge="x" * 43,
                                   scope="openid", now=NOW, expires_at=NOW + timedelta(seconds=300))
        assert login.status is store.LoginStatus.PENDING
        return store.finish_login(tx, login_id="l1", code_hash=code_hash, code_expires_at=NOW + timedelta(seconds=60),
                                  identity={"uscc": "u", "name": "n"}, auth_time=NOW)


def _redeem(sessions, *, client: str = "p1", at: datetime = NOW, access: str = "a" * 64) -> store.Login:
    with store.unit_of_work(sessions) as tx:
        return store.redeem_code(tx, code_hash="c" * 64, client_id=client, now=at, access_hash=access,
                                 access_expires_at=at + timedelta(seconds=300))


def test_a_login_finishes_once(sessions):
    _login_with_code(sessions)
    with pytest.raises(store.Spent) as info, store.unit_of_work(sessions) as tx:
        store.finish_login(tx, login_id="l1", code_hash=None, code_expires_at=None, identity=None, auth_time=None,
                           error="access_denied")
    assert info.value.reason == "used"


@pytest.mark.parametrize(("client", "seconds", "reason"), [("p2", 0, "unknown"), ("p1", 60, "expired")])
def test_a_code_of_another_client_or_past_its_lifetime_is_not_redeemed(sessions, client, seconds, reason):
    _login_with_code(sessions)
    with pytest.raises(store.Spent) as info:
        _redeem(sessions, client=client, at=NOW + timedelta(seconds=seconds))
    assert info.value.reason == reason
    assert _redeem(sessions, at=NOW + timedelta(seconds=59)).status is store.LoginStatus.REDEEMED


def test_a_reused_code_revokes_the_login_and_its_access_token(sessions):
    _login_with_code(sessions)
    _redeem(sessions)
    with store.unit_of_work(sessions) as tx:
        assert store.get_login_by_access_token(tx, access_hash="a" * 64, now=NOW) is not None
    with store.unit_of_work(sessions) as tx:
        with pytest.raises(store.Spent) as info:
            store.redeem_code(tx, code_hash="c" * 64, client_id="p1", now=NOW, access_hash="z" * 64,
                              access_expires_at=NOW + timedelta(seconds=300))
    assert info.value.reason == "used"
    with store.unit_of_work(sessions, read_only=True) as tx:
        assert store.get_login_by_access_token(tx, access_hash="a" * 64, now=NOW) is None
        assert store.get_login(tx, login_id="l1").status is store.LoginStatus.REVOKED


def test_racing_workers_redeem_a_code_once(sessions):
    _login_with_code(sessions)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            _redeem(sessions, access=f"{i}" * 64)
            outcomes.append("redeemed")
        except store.Spent as exc:
            outcomes.append(exc.reason)
        except Exception as exc:  # SQLite may refuse a writer outright under contention: still not redeemed
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("redeemed") == 1
