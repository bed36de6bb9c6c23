"""``elicence issuer ...`` (elicence.issuer_cli): authorities, operators, record files, offers, bulk issuance.

Every command runs through ``elicence.cli.main`` with the settings in ``ELICENCE_*`` variables: a
temporary SQLite database and the working directory (so the demo KEK file) in ``tmp_path``. The tests
that write a batch (the bad-line rollback and issue-bulk) also run on PostgreSQL when
``ELICENCE_TEST_DATABASE_URL`` is set (the ``empty_database_url`` fixture: a fresh, unmigrated database).
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from credentials import qr
from elicence import cli, issuer_cli
from elicence.app import open_issuer
from elicence.config import Settings
from elicence.db import make_engine
from issuer.store import StoreError
from schemas.registry import get_type
from schemas.uscc import ALPHABET

BL = "business-licence"
FOOD = "food-business-permit"


class Cli:
    """Runs ``elicence`` in one deployment (database URL, working directory)."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
        self.url = url
        self.capsys = capsys
        self.workdir = workdir

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert code == 0, err
        return out

    def authority(self, slug: str = "sh-amr", *types: str) -> None:
        args = ["issuer", "authority", "create", "--slug", slug, "--name-zh", "上海市市场监督管理局",
                "--name-en", "Shanghai Administration for Market Regulation", "--region", "310000"]
        for t in types or (BL, "staff-authorisation"):
            args += ["--type", t]
        self.ok(*args)

    def service(self) -> Any:
        return open_issuer(Settings.from_env())

    def count(self, table: str) -> int:
        engine = make_engine(self.url)
        try:
            with engine.connect() as connection:
                return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
        finally:
            engine.dispose()


def _deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> None:
    monkeypatch.chdir(tmp_path)  # var/ (the demo KEK file) lands here
    monkeypatch.setenv("ELICENCE_DATABASE_URL", url)
    for name in ("ELICENCE_MODE", "ELICENCE_KEK", "ELICENCE_KEK_FILE", "ELICENCE_PUBLIC_URL", "ELICENCE_PORT",
                 "ELICENCE_HOST"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The CLI on a temporary SQLite deployment."""
    url = f"sqlite:///{tmp_path / 'var' / 'elicence.db'}"
    _deployment(monkeypatch, tmp_path, url)
    return Cli(url, capsys, tmp_path)


@pytest.fixture
def run_any(empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Cli:
    """The CLI on a fresh database of each backend (SQLite; PostgreSQL when configured)."""
    _deployment(monkeypatch, tmp_path, empty_database_url)
    return Cli(empty_database_url, capsys, tmp_path)


def generated(count: int, seed: int, slug: str = BL) -> list[dict[str, Any]]:
    return list(issuer_cli._generate(slug, count, seed))


def stored_claims(run: Cli, slug: str, usccs: list[str], type_slug: str = BL) -> dict[str, dict[str, Any]]:
    from issuer import store
    from elicence.db import session_factory

    engine = make_engine(run.url)
    try:
        with store.unit_of_work(session_factory(engine), read_only=True) as tx:
            records = store.get_records(tx, authority=slug, vct=get_type(type_slug).vct, usccs=usccs)
        return {u: r.claims_json() for u, r in records.items()}
    finally:
        engine.dispose()


def wrong_check(uscc: str) -> str:
    return uscc[:-1] + next(c for c in ALPHABET if c != uscc[-1])


# --- help -----------------------------------------------------------------------------------------------

COMMANDS = [
    ["issuer"],
    ["issuer", "authority"],
    ["issuer", "authority", "create"],
    ["issuer", "authority", "list"],
    ["issuer", "operator"],
    ["issuer", "operator", "create"],
    ["issuer", "records"],
    ["issuer", "records", "generate"],
    ["issuer", "records", "import"],
    ["issuer", "offers"],
    ["issuer", "offers", "create"],
    ["issuer", "issue-bulk"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_every_issuer_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: elicence issuer")
    assert len(out.splitlines()) > 5


LEAN = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"sqlalchemy", "fastapi", "starlette", "alembic", "uvicorn", "httpx", "psycopg"}:
            raise ImportError(f"No module named {name!r} (blocked)")
        return None

sys.meta_path.insert(0, Block())
from elicence import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("exit", code, sorted({m.split(".")[0] for m in sys.modules} & {"sqlalchemy", "issuer", "fastapi"}))
"""


def _lean(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LEAN, *argv], capture_output=True, text=True, cwd=tmp_path, env=env,
                          check=True)


def test_help_and_generate_work_without_the_server_extra(tmp_path: Path) -> None:
    done = _lean(tmp_path, "issuer", "issue-bulk", "--help")
    assert done.stdout.strip().splitlines()[-1] == "exit 0 []"
    done = _lean(tmp_path, "issuer", "records", "generate", "--count", "3", "--seed", "1", "--out", "r.csv")
    assert done.stdout.strip().splitlines()[-1] == "exit 0 []"
    assert len((tmp_path / "r.csv").read_text(encoding="utf-8").splitlines()) == 4
    done = _lean(tmp_path, "issuer", "authority", "list")
    assert done.stdout.strip().splitlines()[-1].startswith("exit 2 ")
    assert done.stderr.startswith("elicence: server_extra_missing: ")


# --- authorities and operators --------------------------------------------------------------------------


def test_an_authority_is_created_listed_and_refused_twice(run: Cli) -> None:
    run.authority("sh-amr", BL, FOOD)
    out = run.ok("issuer", "authority", "list")
    assert "sh-amr" in out and "http://127.0.0.1:8000/issuers/sh-amr" in out
    assert "business-licence, food-business-permit" in out
    code, _, err = run("issuer", "authority", "create", "--slug", "sh-amr", "--name-zh", "x", "--name-en", "x",
                       "--type", BL)
    assert code == 1 and err.startswith("elicence: conflict: ")
    code, _, err = run("issuer", "authority", "create", "--slug", "Bad Slug", "--name-zh", "x", "--name-en", "x",
                       "--type", BL)
    assert code == 1 and err.startswith("elicence: invalid_value: ")


def test_an_operator_is_created_and_its_api_key_authenticates(run: Cli) -> None:
    run.authority()
    out = run.ok("issuer", "operator", "create", "--authority", "sh-amr", "--name", "registry clerk")
    operator_id = out.split()[1]
    api_key = out.strip().rsplit(" ", 1)[-1]
    operator = run.service().authenticate(api_key, authority="sh-amr")
    assert operator.id == operator_id and operator.name == "registry clerk"
    code, _, err = run("issuer", "operator", "create", "--authority", "nowhere", "--name", "x")
    assert code == 1 and err.startswith("elicence: not_found: ")


def test_bad_settings_exit_2(run: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELICENCE_MODE", "staging")
    code, _, err = run("issuer", "authority", "list")
    assert code == 2 and err.startswith("elicence: config_invalid: ")


def test_an_unreachable_database_exits_2(run: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELICENCE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    code, _, err = run("issuer", "authority", "list")
    assert code == 2 and err.startswith("elicence: database_unavailable: ")


# --- generate and import --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_generated_records_import_unchanged(run: Cli, fmt: str) -> None:
    run.authority()
    path = run.workdir / f"records.{fmt}"
    run.ok("issuer", "records", "generate", "--count", "60", "--seed", "11", "--out", str(path))
    expected = generated(60, 11)
    # The file holds the cases a flat file must get right: a long-term licence (to = null), a fixed
    # term, and a branch without registered capital.
    assert any(r["registration"]["business_term"]["long_term"] for r in expected)
    assert any(not r["registration"]["business_term"]["long_term"] for r in expected)
    assert any("registered_capital" not in r["registration"] for r in expected)
    out = run.ok("issuer", "records", "import", str(path), "--authority", "sh-amr", "--batch", "25")
    assert out.startswith("imported 60 business-licence records into sh-amr")
    stored = stored_claims(run, "sh-amr", [r["uscc"] for r in expected])
    assert stored == {r["uscc"]: r for r in expected}


def test_food_permits_round_trip_through_csv_with_an_array_column(run: Cli) -> None:
    run.authority("zj-amr", BL, FOOD)
    path = run.workdir / "permits.csv"
    run.ok("issuer", "records", "generate", "--type", FOOD, "--count", "20", "--seed", "4", "--out", str(path))
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert "business_items" in header
    run.ok("issuer", "records", "import", str(path), "--authority", "zj-amr", "--type", FOOD)
    expected = generated(20, 4, FOOD)
    assert stored_claims(run, "zj-amr", [r["uscc"] for r in expected], FOOD) == {r["uscc"]: r for r in expected}


def test_the_same_seed_gives_the_same_file_and_usccs_are_unique(run: Cli) -> None:
    a, b = run.workdir / "a.jsonl", run.workdir / "b.jsonl"
    run.ok("issuer", "records", "generate", "--count", "200", "--seed", "9", "--out", str(a))
    run.ok("issuer", "records", "generate", "--count", "200", "--seed", "9", "--out", str(b))
    assert a.read_bytes() == b.read_bytes()
    usccs = [json.loads(line)["uscc"] for line in a.read_text(encoding="utf-8").splitlines()]
    assert len(usccs) == len(set(usccs)) == 200
    code, _, err = run("issuer", "records", "generate", "--count", "1", "--out", str(a))
    assert code == 2 and err.startswith("elicence: file_exists: ")


def _corrupt(path: Path, fmt: str, place: int) -> str:
    """Give the record at ``place`` (CSV/JSONL line, JSON element) a USCC with a wrong check character."""
    if fmt == "json":
        records = json.loads(path.read_text(encoding="utf-8"))
        records[place - 1]["uscc"] = wrong_check(records[place - 1]["uscc"])
        path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
        return records[place - 1]["uscc"]
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if fmt == "csv":
        bad = wrong_check(lines[place - 1].split(",", 1)[0])
        lines[place - 1] = bad + "," + lines[place - 1].split(",", 1)[1]
    else:
        record = json.loads(lines[place - 1])
        bad = record["uscc"] = wrong_check(record["uscc"])
        lines[place - 1] = json.dumps(record, ensure_ascii=False) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    return bad


@pytest.mark.parametrize("fmt,where", [("csv", "line 57"), ("json", "element 57"), ("jsonl", "line 57")])
def test_a_bad_uscc_on_line_57_is_named_and_nothing_is_written(run_any: Cli, fmt: str, where: str) -> None:
    run = run_any
    run.authority()
    path = run.workdir / f"records.{fmt}"
    run.ok("issuer", "records", "generate", "--count", "80", "--seed", "3", "--out", str(path))
    bad = _corrupt(path, fmt, 57)
    # Batches of 20: the bad record is in the third; the two before it must not be written either.
    code, _, err = run("issuer", "records", "import", str(path), "--authority", "sh-amr", "--batch", "20")
    assert code == 1
    assert err.startswith(f"elicence: record_invalid: {where}: ")
    assert "(uscc): check character is wrong" in err and f"not '{bad[-1]}'" in err
    assert run.count("issuer_record") == 0


def test_the_csv_line_is_the_physical_line_of_the_file(run: Cli) -> None:
    run.authority()
    path = run.workdir / "records.csv"
    run.ok("issuer", "records", "generate", "--count", "10", "--seed", "8", "--out", str(path))
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    scope = rows[0].index("registration.business_scope")
    rows[2][scope] = rows[2][scope] + "\n（第二行）\n（第三行）"  # a quoted cell over three lines
    rows[6][0] = wrong_check(rows[6][0])  # record 6: line 7 before the cell above, line 9 with it
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path.write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"))  # with a BOM, CRLF lines
    code, _, err = run("issuer", "records", "import", str(path), "--authority", "sh-amr")
    assert code == 1 and err.startswith("elicence: record_invalid: line 9: ")


def test_a_csv_with_bom_crlf_and_multiline_cells_imports(run: Cli) -> None:
    run.authority()
    records = generated(5, 21)
    records[1]["registration"]["business_scope"] += "\n补充说明"
    buf = io.StringIO()
    for _ in issuer_cli.write_flat_csv(buf, get_type(BL), records):
        pass
    path = run.workdir / "records.csv"
    path.write_bytes(b"\xef\xbb\xbf" + buf.getvalue().replace("\n", "\r\n").replace("明\r\n补", "明\n补").encode())
    run.ok("issuer", "records", "import", str(path), "--authority", "sh-amr")
    stored = stored_claims(run, "sh-amr", [r["uscc"] for r in records])
    assert stored[records[1]["uscc"]]["registration"]["business_scope"].endswith("\n补充说明")
    assert len(stored) == 5


def test_a_uscc_twice_in_a_file_is_refused_naming_both_lines(run: Cli) -> None:
    run.authority()
    path = run.workdir / "records.jsonl"
    run.ok("issuer", "records", "generate", "--count", "30", "--seed", "2", "--out", str(path))
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    first = json.loads(lines[4])
    other = json.loads(lines[24])
    other["uscc"] = first["uscc"]
    lines[24] = json.dumps(other, ensure_ascii=False) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    code, _, err = run("issuer", "records", "import", str(path), "--authority", "sh-amr", "--batch", "7")
    assert code == 1
    assert err.startswith(f"elicence: duplicate_record: line 25: USCC {first['uscc']} is already on line 5")
    assert run.count("issuer_record") == 0


def test_booleans_must_be_true_or_false(run: Cli) -> None:
    run.authority()
    path = run.workdir / "records.csv"
    run.ok("issuer", "records", "generate", "--count", "5", "--seed", "1", "--out", str(path))
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    col = rows[0].index("registration.business_term.long_term")
    rows[4][col] = "yes"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    code, _, err = run("issuer", "records", "import", str(path), "--authority", "sh-amr")
    assert code == 1 and err.startswith("elicence: record_invalid: line 5: ")
    assert "registration.business_term.long_term" in err


def test_an_unknown_type_is_a_usage_error_and_an_unissued_type_is_refused(run: Cli) -> None:
    run.authority()  # business licences and staff authorisations only
    path = run.workdir / "records.csv"
    run.ok("issuer", "records", "generate", "--count", "3", "--seed", "1", "--out", str(path))
    code, _, err = run("issuer", "records", "import", str(path), "--authority", "sh-amr", "--type", "no-such-type")
    assert code == 2 and err.startswith("elicence: unknown_credential_type: no credential type 'no-such-type'")
    code, _, err = run("issuer", "records", "import", str(path), "--authority", "sh-amr", "--type", FOOD)
    assert code == 1 and err.startswith("elicence: unknown_credential_type: 'sh-amr' does not issue")
    code, _, err = run("issuer", "records", "import", str(path), "--authority", "sh-amr", "--type",
                       "staff-authorisation")
    assert code == 1 and err.startswith("elicence: unknown_credential_type: staff authorisations")
    code, _, err = run("issuer", "records", "generate", "--count", "3", "--type", "nope", "--out", "x.csv")
    assert code == 2 and err.startswith("elicence: unknown_credential_type: ")
    code, _, err = run("issuer", "records", "import", str(path), "--authority", "nowhere")
    assert code == 1 and err.startswith("elicence: not_found: ")
    assert run.count("issuer_record") == 0


def _write(run: Cli, name: str, data: str | bytes) -> str:
    path = run.workdir / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def _good_csv(count: int = 4) -> str:
    buf = io.StringIO()
    for _ in issuer_cli.write_flat_csv(buf, get_type(BL), generated(count, 5)):
        pass
    return buf.getvalue()


@pytest.mark.parametrize(
    "name,make,where,why",
    [
        ("unclosed.csv", lambda good: good + '91310000,"never closed\n', "line 6", "not valid CSV"),
        ("short.csv", lambda good: good.replace("\n", "\nonly,three,cells\n", 1), "line 2",
         "3 cells, but the header has"),
        ("header.csv", lambda good: good.replace("registration.domicile", "registration.address", 1), "line 1",
         "'registration.address' is not a claim path of business-licence"),
        ("twice.csv", lambda good: good.replace("name,", "uscc,", 1), "line 1", "appears twice"),
        ("latin1.csv", lambda good: good.encode("utf-8") + "91,é\n".encode("latin-1"), "line 6", "not UTF-8"),
        ("empty.csv", lambda good: "", "line 1", "the file is empty"),
    ],
)
def test_a_broken_csv_is_refused_with_its_line(run: Cli, name: str, make: Any, where: str, why: str) -> None:
    run.authority()
    path = _write(run, name, make(_good_csv()))
    code, _, err = run("issuer", "records", "import", path, "--authority", "sh-amr")
    assert code == 1
    assert err.startswith(f"elicence: file_malformed: {where}: "), err
    assert why in err
    assert run.count("issuer_record") == 0


def _nth(text: str, sub: str, n: int) -> int:
    at = -1
    for _ in range(n):
        at = text.index(sub, at + 1)
    return at


def _replace_nth(text: str, old: str, new: str, n: int) -> str:
    parts = text.split(old)
    return old.join(parts[:n]) + new + old.join(parts[n:])


def _good_json(count: int = 4) -> str:
    return "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in generated(count, 5)) + "\n]\n"


@pytest.mark.parametrize(
    "name,make,where,why",
    [
        ("truncated.json", lambda good: good[: _nth(good, "},\n{", 2) + 60], "element 3", "not valid JSON"),
        ("cut.json", lambda good: good[: _nth(good, "},\n{", 2) + 3], "element 3", "no closing ']'"),
        ("comma.json", lambda good: good.replace("\n]", ",\n]"), "element 5", "trailing comma"),
        ("object.json", lambda good: '{"records": []}', "the array", "expected '['"),
        ("element.json", lambda good: _replace_nth(good, "},\n{", '},\n{"uscc": ,', 2), "element 3",
         "not valid JSON"),
        ("after.json", lambda good: good + "[]", "element 5", "more text after the closing ']'"),
        ("unclosed.json", lambda good: good.rstrip().rstrip("]"), "element 5", "no closing ']'"),
        ("line.jsonl", lambda good: "\n".join(json.dumps(r, ensure_ascii=False) for r in generated(4, 5)) +
         '\n{"uscc": "9131\n', "line 5", "not valid JSON"),
    ],
)
def test_broken_json_is_refused_with_its_element(run: Cli, name: str, make: Any, where: str, why: str) -> None:
    run.authority()
    path = _write(run, name, make(_good_json()))
    code, _, err = run("issuer", "records", "import", path, "--authority", "sh-amr")
    assert code == 1
    assert err.startswith(f"elicence: file_malformed: {where}: "), err
    assert why in err
    assert run.count("issuer_record") == 0


def test_json_elements_larger_than_a_read_chunk_stream(run: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(issuer_cli, "_READ_CHUNK", 97)  # every element crosses several chunk boundaries
    records = generated(12, 6)
    path = _write(run, "records.json", json.dumps(records, ensure_ascii=False, indent=2))
    got = [(n, claims) for n, claims, _ in issuer_cli.read_records(path, "json", get_type(BL))]
    assert got == list(enumerate(records, 1))


def _validated(run: Cli, count: int, batch: int) -> tuple[Any, Any, str, Any]:
    """A deployment with ``count`` good records in a CSV file, validated in batches of ``batch``:
    (service, type, path, what _validate_file returned)."""
    run.authority()
    path = _write(run, "records.csv", _good_csv(count))
    service, ctype = run.service(), get_type(BL)
    return service, ctype, path, issuer_cli._validate_file(service, "sh-amr", ctype, path, "csv", batch, False)


def test_a_file_changed_after_validation_is_not_written(run: Cli) -> None:
    service, ctype, path, checked = _validated(run, 6, 4)
    assert checked.count == 6
    Path(path).write_text(_good_csv(6).replace("CNY", "USD", 1), encoding="utf-8")
    written = [0]
    with pytest.raises(issuer_cli._Failure) as exc:
        issuer_cli._write_file(service, "sh-amr", ctype, path, "csv", 4, checked, False, written)
    assert (exc.value.code, exc.value.exit_code, written) == ("file_changed", 1, [0])
    assert run.count("issuer_record") == 0


def test_a_file_changed_after_its_first_batch_keeps_the_batch_written_before_it(run: Cli) -> None:
    # The second batch is read while the first is being written: the first still commits, and is counted.
    service, ctype, path, checked = _validated(run, 8, 4)
    lines = _good_csv(8).splitlines(keepends=True)
    lines[-1] = lines[-1].replace("CNY", "USD", 1)
    Path(path).write_text("".join(lines), encoding="utf-8")
    written = [0]
    with pytest.raises(issuer_cli._Failure) as exc:
        issuer_cli._write_file(service, "sh-amr", ctype, path, "csv", 4, checked, False, written)
    assert (exc.value.code, written) == ("file_changed", [4])
    assert "(batch 2); 4 records were written before it" in str(exc.value)
    assert run.count("issuer_record") == 4


def test_batches_are_written_one_at_a_time_in_file_order_and_a_failed_one_stops_the_rest(
        run: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    service, ctype, path, checked = _validated(run, 10, 3)
    real, calls, busy = service.import_records, [], []

    def import_records(authority, records, *, actor):
        assert not busy, "two batches written at once"
        busy.append(1)
        try:
            calls.append([r.uscc for r in records])
            if len(calls) == 3:
                raise StoreError("the disk is full")
            return real(authority, records, actor=actor)
        finally:
            busy.pop()

    monkeypatch.setattr(service, "import_records", import_records)
    written = [0]
    with pytest.raises(StoreError):
        issuer_cli._write_file(service, "sh-amr", ctype, path, "csv", 3, checked, False, written)
    assert calls == [[r["uscc"] for r in generated(10, 5)[i:i + 3]] for i in (0, 3, 6)]
    assert written == [6] and run.count("issuer_record") == 6


def test_the_format_comes_from_the_extension_or_option(run: Cli) -> None:
    run.authority()
    path = _write(run, "records.txt", _good_json(3))
    code, _, err = run("issuer", "records", "import", path, "--authority", "sh-amr")
    assert code == 2 and err.startswith("elicence: usage_error: cannot tell the format")
    run.ok("issuer", "records", "import", path, "--authority", "sh-amr", "--format", "json")
    assert run.count("issuer_record") == 3
    code, _, err = run("issuer", "records", "import", "missing.csv", "--authority", "sh-amr")
    assert code == 2 and err.startswith("elicence: file_unreadable: ")


# --- offers ---------------------------------------------------------------------------------------------


def test_an_offer_qr_png_decodes_to_its_deep_link(run: Cli) -> None:
    run.authority()
    path = _write(run, "records.csv", _good_csv(3))
    run.ok("issuer", "records", "import", path, "--authority", "sh-amr")
    uscc = generated(3, 5)[1]["uscc"]
    png, svg = run.workdir / "offer.png", run.workdir / "offer.svg"
    out = run.ok("issuer", "offers", "create", "--authority", "sh-amr", "--uscc", uscc, "--qr", str(png),
                 "--expires-in", "600", "--terminal")
    offer_id = _field(out, "offer")
    by_reference = _field(out, "by reference")
    by_value = _field(out, "by value")
    assert by_reference == f"openid-credential-offer://?credential_offer_uri=http%3A%2F%2F127.0.0.1%3A8000%2Fissuers%2Fsh-amr%2Foffers%2F{offer_id}"
    assert by_value.startswith("openid-credential-offer://?credential_offer=%7B")
    assert qr.decode_image(str(png)) == by_reference
    assert "\u2588" in out  # the terminal rendering
    pin = _field(out, "PIN").split()[0]
    assert len(pin) == 6 and pin.isdigit()
    # The PIN printed is the offer's: the token endpoint accepts it with the offer's code.
    service = run.service()
    code = service.offer_document("sh-amr", offer_id)["grants"]["urn:ietf:params:oauth:grant-type:pre-authorized_code"]["pre-authorized_code"]
    token = service.token("sh-amr", {"grant_type": "urn:ietf:params:oauth:grant-type:pre-authorized_code",
                                     "pre-authorized_code": code, "tx_code": pin})
    assert token["access_token"]
    run.ok("issuer", "offers", "create", "--authority", "sh-amr", "--uscc", uscc, "--qr", str(svg))
    assert svg.read_text(encoding="utf-8").startswith("<svg ")


def _field(out: str, label: str) -> str:
    line = next(line for line in out.splitlines() if line.startswith(label + " "))
    return line[len(label):].strip()


def test_offer_refusals(run: Cli) -> None:
    run.authority()
    uscc = generated(1, 5)[0]["uscc"]
    code, _, err = run("issuer", "offers", "create", "--authority", "sh-amr", "--uscc", uscc)
    assert code == 1 and err.startswith("elicence: not_found: no business-licence record for")
    code, _, err = run("issuer", "offers", "create", "--authority", "sh-amr", "--uscc", uscc, "--qr", "offer.gif")
    assert code == 2 and err.startswith("elicence: usage_error: --qr offer.gif")
    code, _, err = run("issuer", "offers", "create", "--authority", "sh-amr", "--uscc", uscc, "--expires-in", "5")
    assert code == 2 and "--expires-in must be from 60" in err
    assert run.count("issuer_offer") == 0


# --- bulk issuance --------------------------------------------------------------------------------------


def test_issue_bulk_writes_one_offer_per_record_in_a_0600_file(run_any: Cli) -> None:
    run = run_any
    run.authority()
    records = run.workdir / "records.jsonl"
    offers = run.workdir / "offers.csv"
    run.ok("issuer", "records", "generate", "--count", "300", "--seed", "17", "--out", str(records))
    code, out, err = run("issuer", "issue-bulk", str(records), "--authority", "sh-amr", "--out", str(offers),
                         "--batch", "128", "--progress")
    assert code == 0, err
    assert out.startswith("issued 300 business-licence offers for sh-amr in ")
    assert "300/300" in err and "offering" in err  # the progress bar, forced on
    assert stat.S_IMODE(os.stat(offers).st_mode) == 0o600
    with open(offers, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(issuer_cli.OFFER_COLUMNS)
    expected = [r["uscc"] for r in generated(300, 17)]
    assert [r["uscc"] for r in rows] == expected
    assert len({r["offer_id"] for r in rows}) == 300
    assert all(r["tx_code"].isdigit() and len(r["tx_code"]) == 6 for r in rows)
    assert run.count("issuer_record") == 300 and run.count("issuer_offer") == 300
    # A row's PIN redeems its own offer (and the expiry is the 30-day default for mailed PINs).
    row = rows[123]
    service = run.service()
    assert row["offer_reference_uri"].endswith(f"%2Foffers%2F{row['offer_id']}")
    document = service.offer_document("sh-amr", row["offer_id"])
    code_ = document["grants"]["urn:ietf:params:oauth:grant-type:pre-authorized_code"]["pre-authorized_code"]
    assert service.token("sh-amr", {"grant_type": "urn:ietf:params:oauth:grant-type:pre-authorized_code",
                                    "pre-authorized_code": code_, "tx_code": row["tx_code"]})["access_token"]
    offer = service.offer_state(_operator(service), offer_id=row["offer_id"])
    assert 29 * 86400 < (offer.expires_at - offer.created_at).total_seconds() <= 30 * 86400


def _planner_rows(run: Cli) -> int | None:
    """How many rows the query planner believes ``issuer_record`` has (``None``: never analysed)."""
    engine = make_engine(run.url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                rows = connection.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'issuer_record'")).scalar_one()
                return None if rows < 0 else int(rows)
            if not connection.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first():
                return None
            stat = connection.execute(text("SELECT stat FROM sqlite_stat1 WHERE tbl = 'issuer_record'")).first()
            return None if stat is None else int(stat[0].split()[0])
    finally:
        engine.dispose()


def test_a_bulk_import_leaves_the_planner_statistics_up_to_date(run_any: Cli) -> None:
    # Stale statistics make the offers of a large file quadratic on PostgreSQL (bench (f)).
    run = run_any
    run.authority()
    records = run.workdir / "records.csv"
    run.ok("issuer", "records", "generate", "--count", "240", "--seed", "5", "--out", str(records))
    assert _planner_rows(run) in (None, 0)
    run.ok("issuer", "records", "import", str(records), "--authority", "sh-amr", "--batch", "100")
    assert _planner_rows(run) == 240


def _operator(service: Any) -> Any:
    return service.authenticate(service.create_operator(authority="sh-amr", name="t").api_key, authority="sh-amr")


def test_issue_bulk_with_a_bad_record_writes_nothing_and_no_offers_file(run: Cli) -> None:
    run.authority()
    records = run.workdir / "records.csv"
    offers = run.workdir / "offers.csv"
    run.ok("issuer", "records", "generate", "--count", "50", "--seed", "5", "--out", str(records))
    _corrupt(records, "csv", 40)
    code, _, err = run("issuer", "issue-bulk", str(records), "--authority", "sh-amr", "--out", str(offers),
                       "--batch", "10")
    assert code == 1 and err.startswith("elicence: record_invalid: line 40: ")
    assert not offers.exists()
    assert run.count("issuer_record") == 0 and run.count("issuer_offer") == 0


def test_issue_bulk_never_overwrites_an_offers_file(run: Cli) -> None:
    run.authority()
    records = _write(run, "records.csv", _good_csv(3))
    offers = _write(run, "offers.csv", "old PINs\n")
    code, _, err = run("issuer", "issue-bulk", records, "--authority", "sh-amr", "--out", offers)
    assert code == 2 and err.startswith("elicence: file_exists: ")
    assert Path(offers).read_text() == "old PINs\n"
    assert run.count("issuer_record") == 0


# --- pieces ---------------------------------------------------------------------------------------------


def test_the_progress_bar_redraws_at_most_ten_times_a_second() -> None:
    now = [0.0]
    stream = io.StringIO()
    bar = issuer_cli.Progress("importing", total=1000, stream=stream, clock=lambda: now[0])
    for _ in range(1000):
        now[0] += 0.001  # 1000 records/s for one second
        bar.advance()
    bar.close()
    draws = stream.getvalue().count("\r")
    assert 9 <= draws <= 12
    assert stream.getvalue().endswith("\n")
    now[0] = 0.5
    half = issuer_cli.Progress("x", total=100, clock=lambda: now[0], enabled=False)
    half._start = 0.0
    half.advance(50)
    assert half.line(1.0) == "x [############............] 50/100  50% 50/s ETA 0:01"
    assert stream.getvalue().rstrip().endswith("1,000/1,000 100% 1,000/s in 0:01")


def test_the_flat_csv_writer_refuses_a_claim_without_a_column() -> None:
    record = generated(1, 1)[0]
    record["registration"]["colour"] = "red"
    with pytest.raises(ValueError, match="registration.colour"):
        list(issuer_cli.write_flat_csv(io.StringIO(), get_type(BL), [record]))


@pytest.mark.parametrize(
    "argv,message",
    [
        (["records", "import", "r.csv", "--authority", "sh-amr", "--batch", "0"], "--batch must be at least 1"),
        (["issue-bulk", "r.csv", "--authority", "sh-amr", "--out", "o.csv", "--batch", "0"], "--batch must be at least 1"),
        (["issue-bulk", "r.csv", "--authority", "sh-amr", "--out", "o.csv", "--expires-in", "59"], "--expires-in must be"),
        (["records", "generate", "--count", "-1", "--out", "x.csv"], "--count must not be negative"),
        (["records", "generate", "--count", "1", "--type", "natural-person", "--out", "x.csv"],
         "records generate makes business-licence and food-business-permit records"),
        (["authority", "create", "--slug", "x", "--name-zh", "x", "--name-en", "x", "--type", BL,
          "--status-list-size", "0"], "--status-list-size must be at least 1"),
    ],
)
def test_bad_arguments_exit_2_before_anything_is_written(run: Cli, argv: list[str], message: str) -> None:
    run.authority()
    _write(run, "r.csv", _good_csv(2))
    code, _, err = run("issuer", *argv)
    assert code == 2 and err.startswith(f"elicence: usage_error: {message}"), err
    assert run.count("issuer_record") == 0 and run.count("issuer_offer") == 0
    assert not (run.workdir / "o.csv").exists() and not (run.workdir / "x.csv").exists()


def test_a_wrong_kek_exits_2(run: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from keys.jwk import b64u_encode
    from keys.keystore import generate_kek

    run.authority()  # the keystore now belongs to the demo KEK in var/kek
    monkeypatch.setenv("ELICENCE_KEK", b64u_encode(generate_kek()))
    code, _, err = run("issuer", "authority", "create", "--slug", "zj-amr", "--name-zh", "x", "--name-en", "x",
                       "--type", BL)
    assert code == 2 and err.startswith("elicence: keystore_wrong_kek: "), err
