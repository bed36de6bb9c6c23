"""``elicence audit verify`` (elicence.audit_cli): ok on an intact log, names the first broken record."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from elicence import audit_cli
from issuer import store

NOW = datetime(2026, 9, 21, 13, 46, 40, tzinfo=timezone.utc)


def run(argv, capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="elicence")
    audit_cli.add_audit_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.handler(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def _fill(sessions) -> None:
    with store.unit_of_work(sessions) as tx:
        for chain, n in (("sh-amr", 4), ("bj-amr", 3)):
            for i in range(n):
                store.append_audit(
                    tx, chain=chain, at=NOW + timedelta(seconds=i), actor="op", action="credential.issued",
                    subject=f"{chain}-{i}", details={"i": i},
                )


def test_an_intact_log_verifies(database_url, sessions, capsys):
    _fill(sessions)
    code, out, _ = run(["audit", "verify", "--database-url", database_url], capsys)
    assert (code, out) == (0, "ok, 7 records in 2 chains\n")


def test_a_tampered_record_is_named_and_exits_1(database_url, sessions, capsys):
    _fill(sessions)
    with sessions() as s, s.begin():
        s.execute(text("UPDATE issuer_audit SET subject = 'forged' WHERE chain = 'bj-amr' AND seq = 2"))
    code, out, _ = run(["audit", "verify", "--database-url", database_url], capsys)
    assert code == 1
    assert "BROKEN issuer chain 'bj-amr' at seq 2: hash_mismatch" in out
    assert "1 of 2 chains broken (6 records read)" in out  # reading stops at the break


def test_the_database_comes_from_the_settings(database_url, sessions, capsys, monkeypatch):
    _fill(sessions)
    monkeypatch.setenv("ELICENCE_DATABASE_URL", database_url)
    monkeypatch.delenv("ELICENCE_MODE", raising=False)
    code, out, _ = run(["audit", "verify"], capsys)
    assert (code, out) == (0, "ok, 7 records in 2 chains\n")


def test_an_empty_or_unmigrated_database_has_no_chains(tmp_path, capsys):
    import sqlite3

    sqlite3.connect(tmp_path / "empty.db").close()
    code, out, _ = run(["audit", "verify", "--database-url", f"sqlite:///{tmp_path / 'empty.db'}"], capsys)
    assert (code, out) == (0, "ok, 0 records in 0 chains\n")


def test_a_missing_sqlite_file_is_not_created(tmp_path, capsys):
    code, _, err = run(["audit", "verify", "--database-url", f"sqlite:///{tmp_path / 'nope.db'}"], capsys)
    assert code == 2 and "database_unavailable" in err
    assert not (tmp_path / "nope.db").exists()


def test_bad_settings_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("ELICENCE_MODE", "staging")
    code, _, err = run(["audit", "verify"], capsys)
    assert code == 2 and "config_invalid" in err


@pytest.mark.parametrize("url", ["postgresql+psycopg://nobody@127.0.0.1:1/none"])
def test_an_unreachable_server_exits_2(url, capsys):
    code, _, err = run(["audit", "verify", "--database-url", url], capsys)
    assert code == 2 and "database_unavailable" in err
