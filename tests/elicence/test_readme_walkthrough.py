"""The README's walk-through, run as written against a real ``elicence serve``: import a record, make an
offer and its QR code, receive the licence in the wallet, show it as a QR code that ``elicence verify``
accepts, authorise a staff member, read the usage record. Needs bash and curl (skipped without them)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("### Issue a licence, step by step", "### Receive it in the wallet")


def _blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    out = []
    for heading in SECTIONS:
        start = text.index(heading)
        block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
        assert block is not None, heading
        out.append(block.group(1))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("curl")), reason="needs bash and curl")
def test_the_readme_walkthrough_runs_against_make_run(tmp_path):
    port = _free_port()
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # the README calls .venv/bin/...
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELICENCE_")}
    env.update({"ELICENCE_PORT": str(port), "PYTHONPATH": str(ROOT)})
    server = subprocess.Popen([str(Path(sys.prefix) / "bin" / "elicence"), "serve"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        key = next(o["api_key"] for o in json.loads((tmp_path / "var" / "demo-operators.json").read_text())
                   if o["authority"] == "sh-amr")
        script = "set -euo pipefail\n" + "\n".join(_blocks()).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env={**env, "KEY": key}, capture_output=True,
                              text=True, timeout=120)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "VALID" in done.stdout and "上海市市场监督管理局" in done.stdout, done.stdout[-3000:]
    assert (tmp_path / "offer.png").read_bytes()[:4] == b"\x89PNG"
    scan = json.loads((tmp_path / "scan.json").read_text())
    assert scan["card"]["verdict"] == "valid", scan["card"]
    assert ("business-licence-copy", "exempt") in [(m["id"], m["status"]) for m in scan["exemption"]["materials"]]
    assert scan["receipt"].count(".") == 2  # a signed receipt for the case file
    # curl prints each answer without a newline: read the last two JSON objects back to back.
    decoder = json.JSONDecoder()
    usage, _ = decoder.raw_decode(done.stdout, done.stdout.rindex('{"items":'))
    assert [(u["channel"], u["outcome"]) for u in usage["items"]] == [("qr", "shown")]
    grant, _ = decoder.raw_decode(done.stdout, done.stdout.rindex('{"id":', 0, done.stdout.rindex('{"items":')))
    assert grant["vct"] == "https://elicence.cn/vct/staff-authorisation", grant
