"""The verifier SDK runs without the server extras (DESIGN.md: "installs and runs without FastAPI or a
database"): a fresh interpreter in which FastAPI, Starlette, SQLAlchemy, Alembic, Uvicorn and HTTPX
cannot be imported builds a world, presents a licence and verifies it end to end.

The static import rule is tests/test_architecture.py; this test catches what a walk of the imports
cannot (an import by a dependency, or at run time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "httpx")

SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import json
    import sys

    BLOCKED = frozenset(sys.argv[1].split(","))


    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: the SDK must not need it")
            return None


    sys.meta_path.insert(0, Block())
    blocked_works = []
    for name in sorted(BLOCKED):
        try:
            __import__(name)
        except ImportError:
            blocked_works.append(name)

    import verifier.sdk
    from credentials import qr
    from elicence.scenario import build_world, issue_licence, licence_claims, set_status
    from verifier.sdk import Policy, StatusSource, TrustListSource, Verifier, failure_report

    NOW = 1_790_000_000
    world = build_world(now=NOW, status_size=1024)
    credential = issue_licence(world, licence_claims(3), idx=5, now=NOW)
    clock = lambda: NOW
    verifier = Verifier(
        trust=TrustListSource.from_fetch(
            lambda: world.trust_list, anchor=world.operator.public_jwk, clock=clock, initial=world.trust_list
        ),
        status=StatusSource(lambda uri: world.status_token, clock=clock),
        clock=clock,
    )
    code = qr.present_offline(credential, disclose=[], holder_signer=world.holder, now=NOW, nonce="lean-1")
    result = verifier.verify(qr.render_png(code)).to_dict()

    revoked = set_status(world, 5, 1, now=NOW)
    strict = Verifier(
        trust=TrustListSource.from_fetch(
            lambda: world.trust_list, anchor=world.operator.public_jwk, clock=clock, initial=world.trust_list
        ),
        status=StatusSource(lambda uri: revoked.status_token, clock=clock),
        clock=clock,
    )
    try:
        strict.verify(qr.present_offline(credential, disclose=[], holder_signer=world.holder, now=NOW, nonce="lean-2"))
        failure = None
    except Exception as exc:
        failure = failure_report(exc)

    print(json.dumps({
        "blocked": blocked_works,
        "loaded": sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED),
        "verdict": result["verdict"],
        "status": result["status"],
        "failure": failure["error"] if failure else None,
        "failed_check": failure["failed_check"] if failure else None,
    }))
    """
)


def test_sdk_verifies_end_to_end_without_server_packages(tmp_path):
    script = tmp_path / "lean_verify.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(ROOT)
    completed = subprocess.run(
        [sys.executable, "-B", str(script), ",".join(BLOCKED)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    # The blocker really blocks (in the dev environment every one of them is installed, so an import
    # would otherwise succeed), and none of them was loaded.
    assert report["blocked"] == sorted(BLOCKED)
    assert report["loaded"] == []
    assert (report["verdict"], report["status"]) == ("valid", "valid")
    assert (report["failure"], report["failed_check"]) == ("revoked", "status")
