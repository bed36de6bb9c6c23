"""``elicence issuer issue-bulk --resume``: a bulk issuance killed half way is finished without duplicates.

The first test kills a real ``issue-bulk`` process (``kill -9``) while it writes offers for 3,000 records,
then runs the same command with ``--resume``. The second builds the worst moment on purpose: batches
committed whose rows never reached the offers file, and a torn last row. Afterwards, on SQLite and
PostgreSQL: one open offer per record, the file lists each record once with the PIN of that offer (a few
are redeemed at the token endpoint and issued, with distinct status indexes), the offers whose PINs were
lost are withdrawn (and audited), and the audit chain verifies.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from credentials import openid4vci as o4
from elicence import audit_cli, cli
from elicence.app import open_issuer
from elicence.config import Settings
from elicence.db import make_engine
from keys.signer import SoftwareSigner

SLUG = "sh-amr"
KILL_TIMEOUT = 600.0


class Job:
    """One deployment (database, working directory) and a record file for ``issue-bulk``."""

    def __init__(self, url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
        self.url = url
        self.workdir = workdir
        monkeypatch.chdir(workdir)  # var/ (the demo KEK) is here, for this process and the commands it starts
        for name in [k for k in os.environ if k.startswith("ELICENCE_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("ELICENCE_DATABASE_URL", url)
        self.records = workdir / "records.csv"
        self.offers = workdir / "offers.csv"
        self.main("issuer", "authority", "create", "--slug", SLUG, "--name-zh", "上海市市场监督管理局",
                  "--name-en", "Shanghai Administration for Market Regulation", "--type", "business-licence")
        self.main("issuer", "records", "generate", "--count", str(count), "--seed", "6", "--out", str(self.records))
        with open(self.records, encoding="utf-8", newline="") as fh:
            self.usccs = [row["uscc"] for row in csv.DictReader(fh)]

    @staticmethod
    def main(*argv: str) -> int:
        code = cli.main(list(argv))
        assert code == 0, argv
        return code

    def bulk_argv(self, *extra: str) -> list[str]:
        return ["issuer", "issue-bulk", str(self.records), "--authority", SLUG, "--out", str(self.offers), *extra]

    def rows(self) -> list[dict[str, str]]:
        with open(self.offers, encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))

    def query(self, sql: str) -> list[Any]:
        engine = make_engine(self.url)
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(sql)))
        finally:
            engine.dispose()

    def offers_by_state(self) -> dict[str, list[tuple[str, str]]]:
        """(USCC, offer id) of every offer, by state."""
        out: dict[str, list[tuple[str, str]]] = {}
        for row in self.query("SELECT r.uscc, o.id, o.state FROM issuer_offer o JOIN issuer_record r ON r.id = o.record_id"):
            out.setdefault(row.state, []).append((row.uscc, row.id))
        return out

    def check_finished(self) -> None:
        """One open offer per record, each in the file once with its own PIN; withdrawn ones audited; chain ok."""
        rows = self.rows()
        assert [r["uscc"] for r in rows] and Counter(r["uscc"] for r in rows) == Counter(self.usccs)
        by_state = self.offers_by_state()
        assert set(by_state) <= {"offered", "withdrawn"}
        open_offers = dict(by_state["offered"])
        assert len(open_offers) == len(by_state["offered"]) == len(self.usccs)  # one open offer per record
        assert open_offers == {r["uscc"]: r["offer_id"] for r in rows}
        withdrawn = {offer_id for _, offer_id in by_state.get("withdrawn", [])}
        audited = {row.subject for row in self.query("SELECT subject FROM issuer_audit WHERE action = 'offer.withdrawn'")}
        assert withdrawn == audited
        assert audit_cli.verify_database(self.url, out=io.StringIO()) == 0
        assert os.stat(self.offers).st_mode & 0o777 == 0o600

    def redeem(self, picks: list[dict[str, str]]) -> None:
        """Each picked row's PIN redeems its offer; the credentials issued get distinct status indexes."""
        service = open_issuer(Settings.from_env())
        holder = SoftwareSigner.generate("ES256")
        for row in picks:
            document = service.offer_document(SLUG, row["offer_id"])
            code = document["grants"][o4.PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
            token = service.token(SLUG, {"grant_type": o4.PRE_AUTHORIZED_GRANT, "pre-authorized_code": code,
                                         "tx_code": row["tx_code"]})["access_token"]
            nonce = service.nonce(SLUG)["c_nonce"]
            proof = o4.make_proof(holder, audience=service.issuer_id(SLUG), nonce=nonce, iat=int(time.time()))
            service.credential(SLUG, authorization=f"Bearer {token}",
                               body={"credential_configuration_id": "business-licence", "proofs": {"jwt": [proof]}})
        slots = self.query("SELECT status_list_id, status_idx FROM issuer_credential")
        assert len(slots) == len(picks) and len(set(slots)) == len(slots)
        assert audit_cli.reconcile_database(self.url, out=io.StringIO()) == 0


def test_a_bulk_issuance_killed_half_way_is_finished_by_resume(empty_database_url: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    job = Job(empty_database_url, tmp_path, monkeypatch, 3000)
    batch = 25
    with open(tmp_path / "bulk.log", "wb") as log:
        bulk = subprocess.Popen([str(Path(sys.prefix) / "bin" / "elicence"), *job.bulk_argv("--batch", str(batch))],
                                env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + KILL_TIMEOUT
        # Killed once a few batches are listed: mid-way through the offers, at whatever step it is in.
        while not (job.offers.exists() and job.offers.read_bytes().count(b"\n") > 1 + 4 * batch):
            assert bulk.poll() is None, (tmp_path / "bulk.log").read_text()
            assert time.monotonic() < deadline, "issue-bulk wrote no offers"
            time.sleep(0.01)
        os.kill(bulk.pid, signal.SIGKILL)
    finally:
        bulk.kill()
        bulk.wait(timeout=60)
    assert bulk.returncode == -signal.SIGKILL
    listed = job.offers.read_bytes().count(b"\n") - 1
    assert 4 * batch < listed < len(job.usccs), "killed too late to test anything"
    offered_before = len(job.offers_by_state().get("offered", []))
    assert offered_before >= listed

    code = cli.main(job.bulk_argv("--batch", str(batch), "--resume"))
    assert code == 0
    job.check_finished()
    rows = job.rows()
    withdrawn = len(job.offers_by_state().get("withdrawn", []))
    assert withdrawn == offered_before - min(listed, offered_before)  # exactly the open offers that were not listed
    # The first and last rows, the last one kept and the first one written by the resumed run.
    job.redeem([rows[0], rows[listed - 1], rows[listed], rows[-1]])


def test_resume_withdraws_offers_whose_pins_never_reached_the_file(empty_database_url: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    job = Job(empty_database_url, tmp_path, monkeypatch, 120)
    assert cli.main(job.bulk_argv("--batch", "20")) == 0
    before = job.rows()
    # The crash: the last 30 offers committed but never listed, and the row before them torn half way.
    lines = job.offers.read_text(encoding="utf-8").splitlines(keepends=True)
    kept, torn = lines[: len(lines) - 31], lines[-31]
    job.offers.write_text("".join(kept) + torn[: len(torn) // 2], encoding="utf-8")

    code = cli.main(job.bulk_argv("--batch", "20"))  # no --resume: the file is never overwritten
    assert code == 2
    assert cli.main(job.bulk_argv("--batch", "20", "--resume")) == 0
    job.check_finished()
    after = job.rows()
    assert after[: len(kept) - 1] == before[: len(kept) - 1]  # what was listed is kept as it was
    renewed = {r["uscc"] for r in after[len(kept) - 1:]}
    assert renewed == {r["uscc"] for r in before[len(kept) - 1:]} and len(renewed) == 31
    withdrawn = {offer_id for _, offer_id in job.offers_by_state()["withdrawn"]}
    assert withdrawn == {r["offer_id"] for r in before[len(kept) - 1:]}  # the lost PINs' offers, no others
    job.redeem([after[0], after[len(kept) - 1], after[-1]])

    # A resumed run of finished work changes nothing.
    assert cli.main(job.bulk_argv("--batch", "20", "--resume")) == 0
    assert job.rows() == after and len(job.offers_by_state()["withdrawn"]) == 31


def test_resume_refuses_an_offers_file_of_another_record_file(empty_database_url: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    job = Job(empty_database_url, tmp_path, monkeypatch, 10)
    stranger = "uscc,offer_id,offer_reference_uri,tx_code,expires_at\n91310000MA1K3YJ12X,x,y,123456,z\n"
    job.offers.write_text(stranger, encoding="utf-8")
    capsys.readouterr()
    assert cli.main(job.bulk_argv("--resume")) == 2
    assert "offers_file_mismatch" in capsys.readouterr().err
    assert job.offers.read_text(encoding="utf-8") == stranger
    assert job.offers_by_state() == {}
    job.offers.write_text("old PINs\n", encoding="utf-8")
    assert cli.main(job.bulk_argv("--resume")) == 2
    assert "offers_file_mismatch" in capsys.readouterr().err
    assert job.offers.read_text(encoding="utf-8") == "old PINs\n" and job.offers_by_state() == {}
