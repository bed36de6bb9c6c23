"""elicence.housekeeping: expired single-use values of every role are deleted while the deployment serves."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from elicence.app import create_app, open_deployment
from elicence.config import Settings
from elicence.housekeeping import Housekeeping

WAIT = 10  # seconds a test waits for the thread (never a timing assertion)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def _count(sessions, table: str) -> int:
    with sessions() as session:
        return session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


@pytest.fixture
def deployment(tmp_path, empty_database_url):
    settings = Settings.from_env({"ELICENCE_DATABASE_URL": empty_database_url, "ELICENCE_PURGE_INTERVAL": "1"},
                                 var_dir=tmp_path)
    return settings, open_deployment(settings)


def test_expired_issuer_nonces_and_tokens_go_and_live_ones_stay(deployment):
    settings, d = deployment
    clock = Clock()
    d.issuer._clock = clock  # the service's clock parameter, moved as a test moves it
    d.issuer.create_authority(slug="sh-amr", name_zh="上海市市场监督管理局", name_en="Shanghai AMR",
                              types=["business-licence"], region="310000")
    old = d.issuer.nonce("sh-amr")["c_nonce"]
    clock.now += timedelta(seconds=d.issuer.policy.nonce_ttl + 1)
    fresh = d.issuer.nonce("sh-amr")["c_nonce"]
    sessions = d.issuer._sessions
    assert _count(sessions, "issuer_nonce") == 2

    gone = Housekeeping([("issuer", d.issuer.purge_expired)], interval=0).run_once()

    assert gone == {"issuer": 1}
    with sessions() as session:
        left = [r[0] for r in session.execute(text("SELECT value FROM issuer_nonce"))]
    assert left == [fresh] and old not in left


def test_a_failing_purge_is_logged_and_the_others_still_run(caplog):
    def broken() -> int:
        raise RuntimeError("database gone")

    with caplog.at_level(logging.WARNING, logger="elicence.housekeeping"):
        gone = Housekeeping([("issuer", broken), ("wallet", lambda: 3)], interval=60).run_once()
    assert gone == {"issuer": None, "wallet": 3}
    assert "housekeeping: issuer failed" in caplog.text


def test_the_served_app_purges_every_interval_while_it_runs(deployment):
    settings, d = deployment
    app = create_app(settings, issuer=d.issuer, wallet=d.wallet, trust=d.trust, flows=d.flows, verifier=d.verifier)
    housekeeping = app.state.housekeeping
    assert [name for name, _ in housekeeping.jobs] == ["issuer", "wallet", "verifier"]
    assert housekeeping.interval == 1
    with TestClient(app):
        deadline = time.monotonic() + WAIT
        while housekeeping.runs < 1:
            assert time.monotonic() < deadline, "no purge ran while the app served"
            time.sleep(0.05)
    runs = housekeeping.runs
    time.sleep(1.5)
    assert housekeeping.runs == runs  # stopped with the app


def test_interval_zero_never_starts_a_thread():
    calls: list[int] = []
    housekeeping = Housekeeping([("issuer", lambda: calls.append(1) or 0)], interval=0)
    housekeeping.start()
    assert housekeeping._thread is None
    housekeeping.stop()
    with pytest.raises(ValueError):
        Housekeeping([], interval=-1)
