"""``elicence demo``: the story over HTTP against a real ``elicence serve`` (SQLite, and PostgreSQL when
configured), checked from the outside as well (the department's verification records, the issuer's
credential record); a failing step is named and the exit code is 1; the banner names the pages, and each
address it prints answers."""

from __future__ import annotations

import json
import random
import re
from datetime import date
from pathlib import Path

import httpx
import pytest

from elicence import cli, story
from elicence.pages import DEPARTMENT_PAGE_PATH, WALLET_PAGE_PATH
from elicence.portal import PORTAL_PATH
from schemas.synthetic import generate_business_licence
from tests.elicence.served import SHORT_TTL, elicence_serve

STEP_LINE = re.compile(r"^([✓✗]) (\d) \S+ .*?\[([a-z-]+)\]: ", re.M)


def _steps(out: str) -> list[tuple[str, str]]:
    """(mark, step name) of each step line printed."""
    return [(mark, name) for mark, _, name in STEP_LINE.findall(out)]


def _banner_address(banner: str, label: str) -> str:
    found = re.search(rf"^  {label} +(\S+)", banner, re.M)
    assert found, f"the banner names no {label}:\n{banner}"
    return found.group(1)


def test_the_story_runs_against_a_served_deployment_whose_banner_names_its_pages(database_url, tmp_path):
    with elicence_serve(tmp_path, {"ELICENCE_DATABASE_URL": database_url, **SHORT_TTL}) as served, \
            httpx.Client(base_url=served.base, timeout=30) as http:
        banner = served.output()
        for label, path in (("issuer admin docs", "/docs"), ("wallet demo page", WALLET_PAGE_PATH),
                            ("department page", f"{DEPARTMENT_PAGE_PATH}?department=pudong-window"),
                            ("sample portal", PORTAL_PATH)):
            address = _banner_address(banner, label)
            assert address == served.base + path
            assert httpx.get(address, follow_redirects=True).status_code == 200, address
        assert 'section "issuer admin (operator API key)"' in banner
        assert "/issuers/{slug}/admin/records" in http.get("/openapi.json").text  # the section documents the admin API
        # The demo enterprises of the first start are in their authorities' registers, ready for offers.
        listed = json.loads((served.var / "demo-enterprises.json").read_text(encoding="utf-8"))
        printed = served.workdir / _banner_address(banner, "demo enterprises")  # relative to where it runs
        assert printed.resolve() == (served.var / "demo-enterprises.json").resolve()
        assert sorted({e["authority"] for e in listed}) == ["sh-amr", "zj-amr"] and len(listed) == 40
        first = next(e for e in listed if e["authority"] == story.AUTHORITY)
        record = http.get(f"/issuers/{story.AUTHORITY}/admin/records/business-licence/{first['uscc']}",
                          headers={"Authorization": f"Bearer {story.DemoKeys.read(served.var).operator_key}"})
        assert record.status_code == 200 and record.json()["claims"]["name"] == first["name"]

        said: list[str] = []
        assert story.run_story(served.base, served.var, out=said.append, seed=2026) == 0, "\n".join(said)
        out = "\n".join(said)
        assert _steps(out) == [("✓", name) for name, _, _ in story.STEPS]

        # What the story claims, seen from the outside: the licence is revoked at the issuer...
        claims = generate_business_licence(random.Random(2026), as_of=date.today())
        keys = story.DemoKeys.read(served.var)
        issued = http.get("/issuers/sh-amr/admin/credentials", params={"uscc": claims["uscc"]},
                          headers={"Authorization": f"Bearer {keys.operator_key}"}).json()["items"]
        assert sorted(c["status"] for c in issued) == ["revoked", "revoked"]  # the licence and the authorisation
        # ...and the department recorded a valid scan, then the revoked one last.
        recorded = http.get(f"/verifier/departments/{keys.department}/verifications", params={"limit": 1000},
                            headers={"Authorization": f"Bearer {keys.staff_key}"}).json()
        verdicts = [(r["channel"], r["verdict"], r["code"]) for r in recorded]  # newest first
        assert verdicts[-1] == ("scan", "valid", None) and verdicts[0] == ("scan", "invalid", "revoked"), verdicts
    assert claims["name"] in out and "revoked" in said[-2] and "证照已被注销或吊销" in said[-2]


def test_a_failing_step_is_named_and_the_exit_code_is_1(tmp_path, capsys):
    keys = tmp_path / "keys"
    keys.mkdir()
    with elicence_serve(tmp_path) as served:
        # No demo keys where --var points: the connect step says so.
        assert cli.main(["demo", "--url", served.base, "--var", str(tmp_path / "nowhere")]) == 1
        out = capsys.readouterr().out
        assert _steps(out) == [("✗", "connect")] and "no demo keys in" in out, out
        # A wrong staff key: everything up to the scan works, the scan step fails with the API's code.
        (keys / "demo-operators.json").write_text((served.var / "demo-operators.json").read_text())
        staff = json.loads((served.var / "demo-staff.json").read_text())
        staff[0]["api_key"] = "elv_not-the-staff-key"
        (keys / "demo-staff.json").write_text(json.dumps(staff))
        assert cli.main(["demo", "--url", served.base, "--var", str(keys)]) == 1
    out = capsys.readouterr().out
    assert _steps(out) == [("✓", "connect"), ("✓", "issue"), ("✓", "receive"), ("✓", "show-qr"), ("✗", "scan")], out
    assert "HTTP 401 unauthorized" in out and out.rstrip().endswith("elicence demo: step 4 'scan' failed")


def test_without_a_deployment_the_connect_step_fails_and_says_what_to_do(tmp_path, capsys):
    assert cli.main(["demo", "--url", f"http://127.0.0.1:{story.free_port()}", "--var", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert _steps(out) == [("✗", "connect")], out
    assert "make run" in out and "--start" in out


@pytest.mark.parametrize("argv", [["demo", "--offline", "--workdir"], ["demo", "--workdir"]])
def test_the_offline_scenario_is_still_there(argv, tmp_path, capsys):
    assert cli.main([*argv, str(tmp_path / "demo")]) == 0
    assert "INVALID  revoked" in capsys.readouterr().out
    assert (tmp_path / "demo" / "code-2.png").read_bytes().startswith(b"\x89PNG")


def test_the_demo_options_that_do_not_go_together_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--start", "--url", "http://127.0.0.1:8000"])
    assert exc.value.code == 2
    assert cli.main(["demo", "--start", "--workdir", "x"]) == 2 and "--workdir is for the offline" in capsys.readouterr().err
    assert story.default_url({}) == "http://127.0.0.1:8000"
    assert story.default_url({"ELICENCE_PORT": "9000"}) == "http://127.0.0.1:9000"
    assert Path("var") == Path(cli.build_parser().parse_args(["demo"]).var)
