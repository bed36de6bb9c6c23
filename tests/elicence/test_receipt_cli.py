"""``elicence receipt verify``: a receipt the verifier service signed after a real counter scan verifies
against the registrar's certificate; tampered, re-signed, checked against another registrar, expired or
malformed, it fails with ``receipt_invalid`` and the failed check's code; and the command loads neither
the verifier service nor a web framework or database layer.

The receipt comes from a real :class:`verifier.service.VerifierService` on the test database (SQLite,
and PostgreSQL when configured): a licence issued in the scenario world, shown as an offline QR
presentation, scanned for a service item by a department certified by the deployment's registrar.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from credentials import jws, qr
from elicence import cli
from elicence.scenario import build_world, issue_licence, licence_claims
from keys.jwk import b64u_decode, b64u_encode
from keys.keystore import generate_kek
from keys.signer import SoftwareSigner
from keys.x509 import certificate_pem, make_registrar_ca
from verifier.receipts import RECEIPT_TYP
from verifier.sdk import StatusSource, TrustListSource
from verifier.service import VerifierService

T = 1_795_000_000
SCANNED = datetime.fromtimestamp(T + 30, timezone.utc)
FOOD_ITEM = "310000-food-permit-01"
ROOT = Path(__file__).resolve().parents[2]


class Case:
    """A deployment's verifier with one department, the receipt of one scan, and its registrar's PEM."""

    def __init__(self, sessions, tmp_path: Path) -> None:
        world = build_world(now=T)
        self.claims = licence_claims(3)
        licence = issue_licence(world, self.claims, idx=11, now=T)
        clock = lambda: T + 30  # noqa: E731
        self.service = VerifierService(
            sessions=sessions, kek=generate_kek(), public_url="https://verify.example.gov.cn",
            trust=TrustListSource.from_fetch(lambda: world.trust_list, anchor=world.operator.public_jwk, clock=clock,
                                             initial=world.trust_list),
            status=StatusSource(lambda uri: world.status_token, clock=clock), demo=True, clock=lambda: SCANNED,
        )
        self.service.ensure_registrar(actor="test")
        self.service.create_department(slug="pudong-window", name_zh="浦东新区企业服务中心",
                                       name_en="Pudong Enterprise Service Centre", dns_name="verify.example.gov.cn",
                                       types=["business-licence"], actor="test")
        staff = self.service.create_staff(department="pudong-window", name="窗口一号", actor="test").staff
        code = qr.present_offline(licence, disclose=[["name"], ["legal_representative"]], holder_signer=world.holder,
                                  now=T + 30, nonce="receipt-cli-test")
        scanned = self.service.scan(staff, data=code, item_id=FOOD_ITEM)
        assert scanned["card"]["verdict"] == "valid", scanned["card"]
        self.token = scanned["receipt"]
        self.dir = tmp_path
        self.registrar = self.write("registrar.pem", "".join(certificate_pem(c)
                                                             for c in self.service.registrar_certificates()))

    def write(self, name: str, text: str) -> str:
        path = self.dir / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    def run(self, token: str, *extra: str, anchor: str | None = None) -> int:
        receipt = self.write("receipt.jwt", token)
        return cli.main(["receipt", "verify", receipt, "--registrar-cert", anchor or self.registrar,
                         "--at", "2026-11-18T11:07:10Z", *extra])


@pytest.fixture
def case(sessions, tmp_path) -> Case:
    return Case(sessions, tmp_path)


def _parts(token: str) -> tuple[dict, dict, str]:
    header, payload, signature = token.split(".")
    return json.loads(b64u_decode(header)), json.loads(b64u_decode(payload)), signature


def _encode(header: dict, payload: dict, signature: str) -> str:
    return ".".join([b64u_encode(json.dumps(header).encode()), b64u_encode(json.dumps(payload).encode()), signature])


def test_a_receipt_from_a_counter_scan_verifies_and_says_what_was_verified(case, capsys):
    assert case.run(case.token) == 0
    out = capsys.readouterr().out
    assert out.startswith("VALID verification receipt ")
    assert "pudong-window  浦东新区企业服务中心 / Pudong Enterprise Service Centre" in out
    assert "verify.example.gov.cn (organisation: 浦东新区企业服务中心)" in out
    assert f"service item  {FOOD_ITEM}  " in out
    assert "verified at   2026-11-18T11:07:10Z" in out
    assert (f"verified      business-licence (https://elicence.cn/vct/business-licence) from "
            f"https://amr.sh.example.gov.cn: valid, status valid") in out
    assert "exempt        business-licence-copy (by business-licence)\n" in out
    assert "application-form" in out.split("to submit", 1)[1]
    assert f"enterprise    {case.claims['uscc']}  {case.claims['name']}" in out


def test_json_output_carries_the_receipt_claims(case, capsys):
    assert case.run(case.token, "--json") == 0
    body = json.loads(capsys.readouterr().out)
    assert body["valid"] is True and body["department_dns_name"] == "verify.example.gov.cn"
    assert body["claims"]["item"]["id"] == FOOD_ITEM and body["checked_at"] == "2026-11-18T11:07:10Z"
    assert {m["id"]: m["status"] for m in body["claims"]["materials"]}["business-licence-copy"] == "exempt"


def test_the_registrar_certificate_can_come_from_its_url(case, capsys):
    pem = Path(case.registrar).read_bytes()

    class Registrar(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.send_response(200 if self.path == "/verifier/registrar.pem" else 404)
            self.send_header("Content-Type", "application/x-pem-file")
            self.end_headers()
            self.wfile.write(pem if self.path == "/verifier/registrar.pem" else b"")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Registrar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/verifier/registrar.pem"
        receipt = case.write("receipt.jwt", case.token)
        assert cli.main(["receipt", "verify", receipt, "--registrar-url", url, "--at", "2026-11-18T11:07:10Z"]) == 0
        assert capsys.readouterr().out.startswith("VALID ")
        assert cli.main(["receipt", "verify", receipt, "--registrar-url", url.replace(".pem", ".txt")]) == 2
        assert "registrar_unavailable" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()


def _fails_with(case: Case, capsys, token: str, reason: str, **kwargs) -> None:
    assert case.run(token, **kwargs) == 1
    err = capsys.readouterr().err
    assert f"elicence: receipt_invalid: {reason}: " in err, err


def test_a_tampered_receipt_fails_its_signature(case, capsys):
    header, payload, signature = _parts(case.token)
    payload["materials"] = [dict(m, status="exempt") for m in payload["materials"]]
    _fails_with(case, capsys, _encode(header, payload, signature), "invalid_signature")


def test_a_receipt_signed_by_another_key_fails_its_signature(case, capsys):
    header, payload, _ = _parts(case.token)
    forged = jws.sign(payload, SoftwareSigner.generate("ES256"), typ=RECEIPT_TYP, header={"x5c": header["x5c"]},
                      include_kid=False)
    _fails_with(case, capsys, forged, "invalid_signature")


def test_a_receipt_checked_against_another_registrar_is_untrusted(case, capsys):
    key = SoftwareSigner.generate("ES256").private_key
    other = make_registrar_ca(key, common_name="another registrar", not_before=SCANNED - timedelta(days=1),
                              not_after=SCANNED + timedelta(days=9))
    anchor = case.write("other.pem", certificate_pem(other))
    _fails_with(case, capsys, case.token, "certificate_untrusted", anchor=anchor)


def test_a_receipt_checked_after_the_certificate_expired_says_so(case, capsys):
    receipt = case.write("receipt.jwt", case.token)
    assert cli.main(["receipt", "verify", receipt, "--registrar-cert", case.registrar,
                     "--at", "2031-01-01T00:00:00+08:00", "--json"]) == 1
    body = json.loads(capsys.readouterr().out)
    assert (body["valid"], body["error"], body["reason"]) == (False, "receipt_invalid", "certificate_expired")


@pytest.mark.parametrize(("token", "reason"), [
    ("garbage", "malformed"),
    ("", "malformed"),
    ("a.b.c", "malformed"),
])
def test_malformed_input_is_not_a_receipt(case, capsys, token, reason):
    _fails_with(case, capsys, token, reason)


def test_a_token_of_another_type_is_not_a_receipt(case, capsys):
    header, payload, signature = _parts(case.token)
    _fails_with(case, capsys, _encode({**header, "typ": "JWT"}, payload, signature), "invalid_typ")


@pytest.mark.parametrize("argv", [
    ["--at", "2026-11-18T11:07:10"],           # no time zone
    ["--at", "yesterday"],
])
def test_bad_arguments_are_usage_errors(case, capsys, argv):
    receipt = case.write("receipt.jwt", case.token)
    assert cli.main(["receipt", "verify", receipt, "--registrar-cert", case.registrar, *argv]) == 2
    assert "--at" in capsys.readouterr().err


def test_unreadable_files_are_usage_errors(case, capsys):
    receipt = case.write("receipt.jwt", case.token)
    assert cli.main(["receipt", "verify", str(case.dir / "missing.jwt"), "--registrar-cert", case.registrar]) == 2
    assert cli.main(["receipt", "verify", receipt, "--registrar-cert", case.write("bad.pem", "not a certificate")]) == 2
    assert "certificate" in capsys.readouterr().err


def test_the_command_loads_neither_the_service_nor_a_framework(case):
    receipt = case.write("receipt.jwt", case.token)
    code = (
        "import sys\n"
        "from elicence import cli\n"
        f"rc = cli.main(['receipt', 'verify', {receipt!r}, '--registrar-cert', {case.registrar!r}, "
        "'--at', '2026-11-18T11:07:10Z'])\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'fastapi', 'starlette', 'alembic')"
        " or m in ('verifier.service', 'verifier.store', 'verifier.api'))\n"
        "print(rc, loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
