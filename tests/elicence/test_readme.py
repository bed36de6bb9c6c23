"""The README's SDK snippet runs as written, against the files the demo leaves behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from credentials import jws
from elicence import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_starts_with_the_two_commands() -> None:
    head = README.read_text(encoding="utf-8").splitlines()[:8]
    assert any(line.startswith("make run") for line in head)
    assert any(line.startswith("make test") for line in head)


def _run_snippet(capsys: pytest.CaptureFixture[str]) -> str:
    snippet = re.search(r"```python\n(from credentials.errors import.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert snippet, "README lost its SDK snippet"
    capsys.readouterr()
    exec(compile(snippet.group(1), "README.md", "exec"), {})  # noqa: S102 - our own README
    return capsys.readouterr().out


def test_readme_sdk_snippet_verifies_the_demo_qr_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["demo", "--workdir", str(tmp_path)]) == 0
    monkeypatch.chdir(tmp_path)
    # The demo ends with the licence revoked: the snippet's error branch.
    assert _run_snippet(capsys).startswith("revoked 证照已被注销或吊销。 status")
    # Reinstated, the same code verifies (a fresh Verifier: the replay cache is per verifier).
    idx = jws.parse((tmp_path / "licence.sd-jwt").read_text().split("~")[0]).payload["status"]["status_list"]["idx"]
    assert cli.main(["status-list", "set", "status-1.jwt", "--index", str(idx), "--status", "valid", "--key", "issuer.jwk"]) == 0
    out = _run_snippet(capsys)
    assert out.startswith("https://amr.sh.example.gov.cn ") and out.rstrip().endswith(" valid")
