"""The README's walk-through, run as written against a real ``elicence serve``: import a record, make an
offer and its QR code, receive the licence in the wallet, show it as a QR code that ``elicence verify``
accepts, authorise a staff member, read the usage record. Needs bash and curl (skipped without them)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.elicence.served import ROOT, elicence_serve

SECTIONS = ("### Issue a licence, step by step", "### Receive it in the wallet",
            "### Scan the QR the wallet shows at a counter", "### Check a verification receipt later")


def _blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    out = []
    for heading in SECTIONS:
        start = text.index(heading)
        block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
        assert block is not None, heading
        out.append(block.group(1))
    return out


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("curl")), reason="needs bash and curl")
def test_the_readme_walkthrough_runs_against_make_run(tmp_path):
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # the README calls .venv/bin/...
    with elicence_serve(tmp_path) as served:
        key = next(o["api_key"] for o in json.loads((served.var / "demo-operators.json").read_text())
                   if o["authority"] == "sh-amr")
        script = "set -euo pipefail\n" + "\n".join(_blocks()).replace("http://127.0.0.1:8000", served.base)
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env={**served.env, "KEY": key},
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"VALID (?!verification receipt)", done.stdout), done.stdout[-3000:]  # elicence verify
    assert "上海市市场监督管理局" in done.stdout, done.stdout[-3000:]
    assert (tmp_path / "offer.png").read_bytes()[:4] == b"\x89PNG"
    scan = json.loads((tmp_path / "scan.json").read_text())
    assert scan["card"]["verdict"] == "valid", scan["card"]
    assert ("business-licence-copy", "exempt") in [(m["id"], m["status"]) for m in scan["exemption"]["materials"]]
    assert scan["receipt"].count(".") == 2  # a signed receipt for the case file
    # The counter scans: the scanner's text without an item, a photo for another item.
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["card"]["verdict"] == "valid" and "exemption" not in card, card
    photo = json.loads((tmp_path / "photo.json").read_text())
    assert photo["card"]["verdict"] == "valid" and photo["exemption"]["item"]["id"] == "310000-tax-01", photo["card"]
    # The receipt, checked later against the registrar certificate (from a file, then from its URL).
    assert "VALID verification receipt " + scan["receipt_id"] in done.stdout, done.stdout[-3000:]
    receipt = json.loads((tmp_path / "receipt.json").read_text())
    assert receipt["valid"] is True and receipt["claims"]["jti"] == scan["receipt_id"]
    # curl prints each answer without a newline: read the last two JSON objects back to back.
    decoder = json.JSONDecoder()
    usage, _ = decoder.raw_decode(done.stdout, done.stdout.rindex('{"items":'))
    assert [(u["channel"], u["outcome"]) for u in usage["items"]] == [("qr", "shown")]
    grant, _ = decoder.raw_decode(done.stdout, done.stdout.rindex('{"id":', 0, done.stdout.rindex('{"items":')))
    assert grant["vct"] == "https://elicence.cn/vct/staff-authorisation", grant
