"""``elicence audit reconcile`` (elicence.audit_cli, issuer.reconcile): consistent on a healthy database, and
each kind of damage done directly in SQL is named with its code, on SQLite and PostgreSQL.

The healthy database: one authority with 8-entry status lists (a list takes new credentials while under
75 % used, so 9 licences fill one list and half of a second), its licences issued through the issuer
service; one revoked, one suspended, one suspended and reinstated.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import text

from issuer import store
from issuer.service import IssuerService
from keys.keystore import generate_kek
from tests.elicence.test_audit_cli import run
from bench.issuer import import_synthetic_records
from tests.system.issuing import issue_licences

SLUG = "sh-amr"


@dataclass(frozen=True)
class Healthy:
    url: str
    sessions: object
    valid: store.Credential
    revoked: store.Credential
    suspended: store.Credential

    def sql(self, statement: str, **params) -> None:
        with self.sessions() as s, s.begin():
            s.execute(text(statement), params)

    def rewrite_list(self, list_id: int, column: str, change) -> None:
        """Replace a list's packed ``statuses`` or ``used`` bytes with ``change(bytearray)``."""
        with self.sessions() as s, s.begin():
            data = bytearray(s.execute(text(f"SELECT {column} FROM issuer_status_list WHERE id = :i"), {"i": list_id}).scalar_one())
            change(data)
            s.execute(text(f"UPDATE issuer_status_list SET {column} = :d WHERE id = :i"), {"d": bytes(data), "i": list_id})

    def free_index(self, list_id: int) -> int:
        with self.sessions() as s:
            taken = set(s.execute(text("SELECT status_idx FROM issuer_credential WHERE status_list_id = :i"), {"i": list_id}).scalars())
        return min(set(range(8)) - taken)


@pytest.fixture
def healthy(database_url, sessions) -> Healthy:
    service = IssuerService(sessions=sessions, kek=generate_kek(), public_url="https://issuer.example.gov.cn")
    service.create_authority(slug=SLUG, name_zh="上海市市场监督管理局", name_en="Shanghai AMR",
                             types=["business-licence"], status_list_size=8)
    operator = service.create_operator(authority=SLUG, name="op").operator
    issue_licences(service, SLUG, import_synthetic_records(service, 9, 3, slug=SLUG), threads=2)
    rows = sorted(service.list_credentials(operator, limit=100).items, key=lambda c: c.id)
    service.change_status(operator, credential_id=rows[0].id, action="revoke", reason="deregistered")
    service.change_status(operator, credential_id=rows[1].id, action="suspend")
    service.change_status(operator, credential_id=rows[2].id, action="suspend")
    service.change_status(operator, credential_id=rows[2].id, action="reinstate")
    current = {c.id: c for c in service.list_credentials(operator, limit=100).items}
    return Healthy(database_url, sessions, current[rows[3].id], current[rows[0].id], current[rows[1].id])


def _set2(data: bytearray, idx: int, value: int) -> None:
    shift = (idx & 3) * 2
    data[idx >> 2] = data[idx >> 2] & ~(3 << shift) & 0xFF | value << shift


def test_a_healthy_database_is_consistent(healthy, capsys):
    code, out, err = run(["audit", "reconcile", "--database-url", healthy.url], capsys)
    lines = out.splitlines()
    assert code == 0, out + err
    assert lines[0].startswith("ok, ") and lines[0].endswith(" records in 1 chains")
    assert lines[1].startswith(f"{SLUG}: 9 credentials in 2 status lists, ") and lines[1].endswith(": consistent")
    assert lines[-1] == "consistent: 1 authorities, 9 credentials"


def _damage(h: Healthy, kind: str) -> None:
    r, v = h.revoked, h.valid
    if kind == "status_bit_flipped":  # the revoked credential's entry reads valid again
        h.rewrite_list(r.status_list_id, "statuses", lambda d: _set2(d, r.status_idx, 0))
    elif kind == "used_bit_cleared":
        h.rewrite_list(v.status_list_id, "used", lambda d: d.__setitem__(v.status_idx >> 3, d[v.status_idx >> 3] & ~(1 << (v.status_idx & 7)) & 0xFF))
    elif kind == "used_count_changed":
        h.sql("UPDATE issuer_status_list SET used_count = used_count + 1 WHERE id = :i", i=v.status_list_id)
    elif kind == "entry_without_credential":
        idx = h.free_index(v.status_list_id)
        h.rewrite_list(v.status_list_id, "statuses", lambda d: _set2(d, idx, 1))
    elif kind == "credential_status_changed":  # the row says valid, the list and the log say revoked
        h.sql("UPDATE issuer_credential SET status = 'valid' WHERE id = :i", i=r.id)
    elif kind == "credential_moved":  # to an index nobody allocated
        h.sql("UPDATE issuer_credential SET status_idx = :x WHERE id = :i", x=h.free_index(v.status_list_id), i=v.id)
    elif kind == "credential_deleted":
        h.sql("DELETE FROM issuer_credential WHERE id = :i", i=v.id)
    elif kind == "issuance_audit_deleted":
        h.sql("DELETE FROM issuer_audit WHERE subject = :i AND action = 'credential.issued'", i=v.id)
    elif kind == "revocation_audit_deleted":
        h.sql("DELETE FROM issuer_audit WHERE subject = :i AND action = 'credential.revoked'", i=r.id)
    else:  # pragma: no cover
        raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "codes", "chain_broken"), [
    ("status_bit_flipped", {"status_mismatch"}, False),
    ("used_bit_cleared", {"index_not_allocated", "used_count_mismatch"}, False),
    ("used_count_changed", {"used_count_mismatch"}, False),
    ("entry_without_credential", {"entry_without_credential"}, False),
    ("credential_status_changed", {"status_mismatch", "status_change_unaudited"}, False),
    ("credential_moved", {"index_not_allocated", "issuance_audit_mismatch"}, False),
    ("credential_deleted", {"audited_credential_missing"}, False),
    # Deleting an audit record also breaks the hash chain: both are reported.
    ("issuance_audit_deleted", {"issuance_unaudited"}, True),
    ("revocation_audit_deleted", {"status_change_unaudited"}, True),
])
def test_each_kind_of_damage_is_named(healthy, capsys, kind, codes, chain_broken):
    _damage(healthy, kind)
    code, out, _ = run(["audit", "reconcile", "--database-url", healthy.url], capsys)
    assert code == 1, out
    found = {line.split(": ")[1] for line in out.splitlines() if line.startswith("INCONSISTENT ")}
    assert found == codes, out
    summary = next(line for line in out.splitlines() if line.startswith(f"{SLUG}: "))
    assert f"{len(codes)} inconsistencies (" in summary and all(c in summary for c in codes), summary
    assert out.splitlines()[-1].startswith(f"inconsistent: {len(codes)} findings in 1 of 1 authorities"), out
    assert out.startswith(f"BROKEN issuer chain '{SLUG}' at seq ") is chain_broken, out
    assert (f"INCONSISTENT {SLUG}: " in out) and ("credential " in out or "list " in out)


def test_a_broken_chain_alone_fails_the_reconciliation(healthy, capsys):
    healthy.sql("UPDATE issuer_audit SET actor = 'forged' WHERE chain = :c AND seq = 1", c=SLUG)
    code, out, _ = run(["audit", "reconcile", "--database-url", healthy.url], capsys)
    assert code == 1
    assert "BROKEN issuer chain 'sh-amr' at seq 1: hash_mismatch" in out
    assert out.splitlines()[-1] == "inconsistent: the audit log is broken (1 authorities otherwise consistent)"


def test_show_limits_the_findings_printed_not_the_count(healthy, capsys):
    _damage(healthy, "used_bit_cleared")
    code, out, _ = run(["audit", "reconcile", "--database-url", healthy.url, "--show", "1"], capsys)
    assert code == 1
    assert sum(line.startswith("INCONSISTENT ") for line in out.splitlines()) == 1
    assert out.splitlines()[-1] == "inconsistent: 2 findings in 1 of 1 authorities (first 1 shown)"


def test_an_authority_can_be_named_and_an_unknown_one_exits_2(healthy, capsys):
    code, out, _ = run(["audit", "reconcile", "--database-url", healthy.url, "--authority", SLUG], capsys)
    assert code == 0 and f"{SLUG}: 9 credentials" in out
    code, _, err = run(["audit", "reconcile", "--database-url", healthy.url, "--authority", "nope"], capsys)
    assert code == 2 and "not_found: no authority 'nope'" in err


def test_usage_and_database_errors_exit_2(tmp_path, capsys, monkeypatch):
    code, _, err = run(["audit", "reconcile", "--database-url", f"sqlite:///{tmp_path / 'nope.db'}"], capsys)
    assert code == 2 and "database_unavailable" in err and not (tmp_path / "nope.db").exists()
    code, _, err = run(["audit", "reconcile", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--show", "-1"], capsys)
    assert code == 2 and "--show" in err
    monkeypatch.setenv("ELICENCE_MODE", "staging")
    code, _, err = run(["audit", "reconcile"], capsys)
    assert code == 2 and "config_invalid" in err
