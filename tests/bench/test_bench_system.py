"""Smoke test of benchmark (i) (``bench/system.py``) at a small scale, on PostgreSQL only (the section
measures the production shape; it says it is skipped without a server). Figures are not judged here;
what must hold: every end-to-end flow issued exactly one credential, the 2^20-entry list showed every
revocation, the bulk run wrote every offer, and the report section renders them.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy.engine import make_url

from bench import system
from bench.run import _section_system


@pytest.fixture
def bench_database():
    url = os.environ.get("ELICENCE_TEST_DATABASE_URL")
    if not url:
        pytest.skip("benchmark (i) runs on PostgreSQL (ELICENCE_TEST_DATABASE_URL)")
    name = f"elicence_bench_smoke_{uuid.uuid4().hex[:8]}"
    yield make_url(url).set(database=name).render_as_string(hide_password=False)
    import psycopg

    admin = make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_system_benchmark_runs_at_a_small_scale(bench_database):
    result = system.run(bulk=400, revocations=3, flows=24, concurrency=4, postgres_url=bench_database)
    e2e, big, bulk = result["end_to_end"], result["big_list"], result["bulk"]
    assert (e2e["credentials"], e2e["errors"]) == (24, 0)
    assert e2e["consistency"]["credentials"] == e2e["consistency"]["distinct_status_slots"]
    assert e2e["consistency"]["audit_ok"]
    assert big["entries"] == 1 << 20 and big["revocation"]["n"] == 3 and big["stored"]["n"] == 20
    assert bulk["records"] == 400 and bulk["progress_bar_seen"]
    assert bulk["sizes"]["database"] > bulk["sizes"]["issuer_record"] > 0
    text = "\n".join(_section_system(result)[0])
    assert text.startswith("## (i) The whole system at scale") and "| 400 |" in text


def test_the_section_says_when_it_was_skipped():
    lines, goals = _section_system({"skipped": "no PostgreSQL server answered"})
    assert lines[-1] == "Skipped: no PostgreSQL server answered." and goals == []
