"""Fault: 1,000 concurrent revocations across several status lists (issue 6, "Faults"), on PostgreSQL.

An authority with small status lists (256 entries, so 1,000 licences span six lists) gets 1,000 licences
issued in process through the issuer service (offer, token, nonce, key proof, credential: every row,
status index and audit record real). Then ``elicence serve --workers 2`` takes the revocations through
its admin HTTP API, 32 at a time, each acknowledged with 200. Nothing may be lost: afterwards every
credential reads revoked (1) in the status list token the server serves, the audit chain verifies, and
``elicence audit reconcile`` finds credentials, status lists and audit log in agreement.

Skipped without ``ELICENCE_TEST_DATABASE_URL``. The in-process issuance turns PostgreSQL's
``synchronous_commit`` off for its own connections only (a test-setup speed-up: the server under test
keeps the default).
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import event

from credentials import jws
from credentials import status_list as sl
from elicence.app import open_issuer
from elicence.audit_cli import reconcile_database
from elicence.config import Settings
from elicence.db import make_engine, session_factory
from issuer import store
from tests.elicence.served import elicence_serve
from bench.issuer import import_synthetic_records
from tests.system.issuing import issue_licences

pytestmark = pytest.mark.postgres
SLUG = "fault-amr"
CREDENTIALS = 1000
LIST_SIZE = 256
CONCURRENCY = 32


def _fast_commits(engine) -> None:
    @event.listens_for(engine, "connect")
    def _no_fsync_wait(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
        dbapi_connection.commit()


def test_a_thousand_concurrent_revocations_are_all_in_the_served_tokens(pg_url, shared_secrets, tmp_path):
    env = {"ELICENCE_DATABASE_URL": pg_url, **shared_secrets}
    with elicence_serve(tmp_path, env, ["--workers", "2", "--no-seed"]) as served:
        engine = make_engine(pg_url, pool_size=8)
        _fast_commits(engine)
        try:
            settings = Settings.from_env({**env, "ELICENCE_PUBLIC_URL": served.base}, var_dir=tmp_path / "var")
            service = open_issuer(settings, sessions=session_factory(engine))
            service.create_authority(slug=SLUG, name_zh="故障测试局", name_en="Fault Test Bureau",
                                     types=["business-licence"], status_list_size=LIST_SIZE)
            api_key = service.create_operator(authority=SLUG, name="revoker").api_key
            issue_licences(service, SLUG, import_synthetic_records(service, CREDENTIALS, 6, slug=SLUG))
            with store.unit_of_work(session_factory(engine), read_only=True) as tx:
                rows = [(r.id, r.status_list_id, r.status_idx) for r in tx.execute(
                    store.IssuerCredential.__table__.select().where(store.IssuerCredential.authority_slug == SLUG))]
                lists = store.list_status_lists(tx, authority=SLUG)
        finally:
            engine.dispose()
        assert len(rows) == CREDENTIALS and len({(lst, idx) for _, lst, idx in rows}) == CREDENTIALS
        assert len(lists) >= 5  # the revocations span several lists

        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        with httpx.Client(base_url=served.base, timeout=120, limits=limits,
                          headers={"Authorization": f"Bearer {api_key}"}) as http:
            def revoke(credential_id: str) -> int:
                return http.post(f"/issuers/{SLUG}/admin/credentials/{credential_id}/status",
                                 json={"action": "revoke", "reason": "deregistered"}).status_code

            with ThreadPoolExecutor(CONCURRENCY) as pool:
                answers = list(pool.map(revoke, [credential_id for credential_id, _, _ in rows]))
            assert answers == [200] * CREDENTIALS

            served_lists = {}
            for lst in lists:
                token = http.get(f"/issuers/{SLUG}/status/{lst.id}", headers={"Accept": sl.MEDIA_TYPE})
                assert token.status_code == 200, token.text
                payload = jws.parse(token.text.strip()).payload
                assert payload["sub"] == lst.uri
                served_lists[lst.id] = sl.StatusList.from_json(payload["status_list"])
        not_revoked = [(c, lst, idx) for c, lst, idx in rows if served_lists[lst].get(idx) != sl.INVALID]
        assert not_revoked == []

    out = io.StringIO()
    assert reconcile_database(pg_url, out=out) == 0, out.getvalue()
    report = out.getvalue()
    assert f"{SLUG}: {CREDENTIALS} credentials in {len(lists)} status lists" in report, report
    assert report.splitlines()[0].startswith("ok, ") and report.rstrip().endswith("credentials"), report
