"""The ``elicence`` CLI: every command's --help, exit codes 0/1/2, files it writes, and the demo."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from credentials import jws, qr
from elicence import cli
from elicence.scenario import licence_claims
from keys.jwk import b64u_encode, thumbprint
from keys.keystore import generate_kek

COMMANDS = [
    [],
    ["keys"],
    ["keys", "generate"],
    ["keys", "public"],
    ["credential"],
    ["credential", "issue"],
    ["credential", "present"],
    ["trust-list"],
    ["trust-list", "create"],
    ["status-list"],
    ["status-list", "create"],
    ["status-list", "set"],
    ["status-list", "show"],
    ["qr"],
    ["qr", "encode"],
    ["qr", "decode"],
    ["verify"],
    ["demo"],
]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a) or "elicence")
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: elicence")
    assert len(out.splitlines()) > 3


def test_missing_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["credential", "issue"])
    assert exc.value.code == 2


@pytest.fixture()
def world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """Keys, a trust list, a status list and an issued licence made through the CLI itself."""
    f = {n: str(tmp_path / n) for n in ("op.jwk", "op.pub", "iss.jwk", "holder.jwk", "issuers.json", "trust.jwt",
                                         "status.jwt", "claims.json", "licence.txt", "code.txt", "code.png")}
    for name in ("op.jwk", "iss.jwk", "holder.jwk"):
        assert run(["keys", "generate", "--out", f[name]], capsys)[0] == 0
    code, out, _ = run(["keys", "public", "--key", f["op.jwk"]], capsys)
    Path(f["op.pub"]).write_text(out)
    Path(f["issuers.json"]).write_text(json.dumps([{
        "id": "https://amr.example.gov.cn", "name": {"zh-CN": "市场监督管理局", "en": "AMR"}, "region": "310000",
        "vcts": ["business-licence"], "keys": ["iss.jwk"]}]))
    assert run(["trust-list", "create", "--issuers", f["issuers.json"], "--operator-key", f["op.jwk"],
                "--out", f["trust.jwt"]], capsys)[0] == 0
    assert run(["status-list", "create", "--uri", "https://amr.example.gov.cn/status/7", "--size", "1000",
                "--key", f["iss.jwk"], "--out", f["status.jwt"]], capsys)[0] == 0
    Path(f["claims.json"]).write_text(json.dumps(licence_claims(7), ensure_ascii=False))
    assert run(["credential", "issue", "--type", "business-licence", "--claims", f["claims.json"],
                "--issuer-key", f["iss.jwk"], "--issuer", "https://amr.example.gov.cn", "--holder-key",
                f["holder.jwk"], "--status-uri", "https://amr.example.gov.cn/status/7", "--status-idx", "42",
                "--out", f["licence.txt"]], capsys)[0] == 0
    return f


def _verify_args(f: dict[str, str], target: str) -> list[str]:
    return ["verify", target, "--trust-list", f["trust.jwt"], "--trust-anchor", f["op.pub"], "--status-list", f["status.jwt"]]


def test_private_key_file_is_0600_and_never_overwritten(world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert stat.S_IMODE(os.stat(world["iss.jwk"]).st_mode) == 0o600
    code, _, err = run(["keys", "generate", "--out", world["iss.jwk"]], capsys)
    assert code == 2 and "refusing to overwrite" in err


def test_keys_public_kid_is_the_rfc7638_thumbprint(world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["keys", "public", "--key", world["iss.jwk"], "--jwks"], capsys)
    key = json.loads(out)["keys"][0]
    assert code == 0 and "d" not in key
    assert key["kid"] == thumbprint(key)


def test_keys_generate_into_keystore_needs_a_kek(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELICENCE_KEK", raising=False)
    monkeypatch.delenv("ELICENCE_KEK_FILE", raising=False)
    code, _, err = run(["keys", "generate", "--keystore", str(tmp_path / "ks.json")], capsys)
    assert code == 1 and "keystore_kek_missing" in err
    monkeypatch.setenv("ELICENCE_KEK", b64u_encode(generate_kek()))
    code, out, _ = run(["keys", "generate", "--alg", "EdDSA", "--keystore", str(tmp_path / "ks.json")], capsys)
    assert code == 0
    code, out2, _ = run(["keys", "public", "--keystore", str(tmp_path / "ks.json")], capsys)
    assert json.loads(out2)["keys"][0]["kid"] == out.strip()


def test_issue_rejects_invalid_claims_with_schema_invalid(world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    claims = licence_claims(7)
    claims["uscc"] = claims["uscc"][:-1] + ("0" if claims["uscc"][-1] != "0" else "1")
    Path(world["claims.json"]).write_text(json.dumps(claims, ensure_ascii=False))
    code, out, err = run(["credential", "issue", "--type", "business-licence", "--claims", world["claims.json"],
                          "--issuer-key", world["iss.jwk"], "--issuer", "https://amr.example.gov.cn"], capsys)
    assert code == 1 and out == ""
    assert "schema_invalid" in err and "uscc" in err


def test_present_qr_encode_decode_verify_valid_then_revoked(world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    f = world
    assert run(["credential", "present", f["licence.txt"], "--disclose", "uscc,name", "--holder-key", f["holder.jwk"],
                "--qr", "--out", f["code.txt"]], capsys)[0] == 0
    assert Path(f["code.txt"]).read_text().startswith(qr.PREFIX)
    code, _, err = run(["qr", "encode", f["code.txt"], "--format", "png", "--out", f["code.png"]], capsys)
    assert code == 0 and "QR version" in err
    code, out, _ = run(["qr", "decode", f["code.png"]], capsys)
    assert out.strip() == Path(f["code.txt"]).read_text().strip()

    code, out, _ = run([*_verify_args(f, f["code.png"]), "--json"], capsys)
    result = json.loads(out)
    assert code == 0 and result["verdict"] == "valid"
    # uscc, name and legal_representative are always visible (public register data, sd "never").
    assert set(result["claims"]) == {"uscc", "name", "legal_representative"}
    assert [c["name"] for c in result["checks"]][-3:] == ["status", "policy", "replay"]

    assert run(["status-list", "set", f["status.jwt"], "--index", "42", "--status", "revoked", "--key", f["iss.jwk"]], capsys)[0] == 0
    code, out, _ = run(["status-list", "show", f["status.jwt"], "--index", "42"], capsys)
    assert out.strip() == "42: 1 (revoked)"
    code, out, _ = run([*_verify_args(f, f["code.txt"]), "--json"], capsys)
    report = json.loads(out)
    assert code == 1
    assert report["error"] == "revoked" and report["failed_check"] == "status"


def test_verify_raw_presentation_with_online_nonce(world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    f = world
    code, presentation, _ = run(["credential", "present", f["licence.txt"], "--disclose", "registration.domicile",
                                 "--holder-key", f["holder.jwk"], "--aud", "https://dept.example", "--nonce", "n-123"], capsys)
    # Recursive disclosure: the registration object's disclosure, then the domicile disclosure, then the KB-JWT.
    assert code == 0 and presentation.count("~") == 3
    args = [*_verify_args(f, presentation.strip()), "--aud", "https://dept.example"]
    code, out, _ = run([*args, "--nonce", "n-123", "--json"], capsys)
    assert code == 0 and set(json.loads(out)["claims"]["registration"]) == {"domicile"}
    code, out, _ = run([*args, "--nonce", "other", "--json"], capsys)
    assert code == 1 and json.loads(out)["error"] == "kb_nonce_mismatch"


def test_verify_with_wrong_trust_anchor_fails_closed(world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    f = world
    run(["credential", "present", f["licence.txt"], "--holder-key", f["holder.jwk"], "--qr", "--out", f["code.txt"]], capsys)
    code, out, err = run(["verify", f["code.txt"], "--trust-list", f["trust.jwt"], "--trust-anchor", f["claims.json"],
                          "--status-list", f["status.jwt"]], capsys)
    assert code == 1 and "invalid_key" in err


def test_verify_usage_errors_exit_2(world: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(["verify", "x~", "--trust-list", str(tmp_path / "missing.jwt"), "--trust-anchor", world["op.pub"]], capsys)
    assert code == 2 and "trust list" in err
    code, _, _ = run(["qr", "encode", world["licence.txt"], "--format", "png"], capsys)
    assert code == 2


def test_status_list_show_summarises_counts(world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    f = world
    for idx, status in (("3", "suspended"), ("9", "revoked"), ("10", "revoked")):
        assert run(["status-list", "set", f["status.jwt"], "--index", idx, "--status", status, "--key", f["iss.jwk"]], capsys)[0] == 0
    code, out, _ = run(["status-list", "show", f["status.jwt"]], capsys)
    shown = json.loads(out)
    assert shown["size"] == 1000 and shown["non_valid_entries"] == {"1": 2, "2": 1}
    assert jws.parse(Path(f["status.jwt"]).read_text().strip()).header["typ"] == "statuslist+jwt"


def test_status_list_set_refuses_another_issuers_key(world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["status-list", "set", world["status.jwt"], "--index", "1", "--status", "revoked",
                        "--key", world["holder.jwk"]], capsys)
    assert code == 1 and "invalid_signature" in err


def test_demo_runs_the_whole_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["demo", "--workdir", str(tmp_path / "demo")], capsys)
    assert code == 0, out
    assert "VALID" in out and "INVALID  revoked" in out
    assert (tmp_path / "demo" / "code-1.png").read_bytes().startswith(b"\x89PNG")
