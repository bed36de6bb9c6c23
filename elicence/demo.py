"""``elicence demo``: the story over HTTP against a running deployment (:mod:`elicence.story`), or, with
``--offline``, the scenario of the credential core told through the real CLI commands.

Offline, each step prints the command line it runs and runs it through :func:`elicence.cli.main`, so
the demo is also a check that the toolbox does what the README says. Files are left in the work
directory (``--workdir``, which implies ``--offline``; default ``var/demo``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import shlex
import shutil
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from schemas.synthetic import generate_business_licence

__all__ = ["run_demo", "run_offline", "OFFLINE_WORKDIR"]

OFFLINE_WORKDIR = "var/demo"

ISSUER = "https://amr.sh.example.gov.cn"
STATUS_URI = ISSUER + "/status/1"
QR_CLAIMS = "uscc,name,legal_representative"


class DemoFailed(Exception):
    """A step did not end as the scenario expects."""


def _say(title: str) -> None:
    print(f"\n== {title}")


def _run(argv: Sequence[str], *, expect: int = 0, capture: bool = False) -> str:
    from elicence.cli import main  # the CLI imports this module for its handler

    print("$ elicence " + shlex.join(argv))
    out = io.StringIO()
    with contextlib.redirect_stdout(out) if capture else contextlib.nullcontext():
        code = main(list(argv))
    if code != expect:
        raise DemoFailed(f"'elicence {shlex.join(argv)}' exited {code}, expected {expect}")
    return out.getvalue()


def run_demo(args: argparse.Namespace) -> int:
    """Handler of ``elicence demo``: the HTTP story (against ``--url``, or a server of its own with
    ``--start``), or the offline scenario (``--offline`` or ``--workdir``); 0 when every step behaved."""
    if args.workdir is not None and (args.start or args.url):
        print("elicence demo: error: --workdir is for the offline scenario, not with --start or --url", file=sys.stderr)
        return 2
    if args.offline or args.workdir is not None:
        return run_offline(Path(args.workdir or OFFLINE_WORKDIR))
    from elicence import story  # needs the server extra (httpx); the offline scenario does not

    if args.start:
        try:
            return story.run_started()
        except RuntimeError as exc:  # the server did not start
            print(f"elicence demo: {exc}", file=sys.stderr)
            return 1
    return story.run_story(args.url or story.default_url(), Path(args.var))


def run_offline(work: Path) -> int:
    """Run the offline scenario in ``work`` (emptied first); returns 0 when every step behaved."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    f = {name: str(work / name) for name in (
        "operator.jwk", "operator.pub.jwk", "issuer.jwk", "holder.jwk", "issuers.json", "trust-list.jwt",
        "status-1.jwt", "licence.json", "licence.sd-jwt", "code-1.txt", "code-1.png", "code-2.txt", "code-2.png",
    )}
    try:
        _say("1. Keys: a trust-list operator, the market regulation bureau (issuer), the enterprise wallet (holder)")
        for name in ("operator.jwk", "issuer.jwk", "holder.jwk"):
            _run(["keys", "generate", "--out", f[name]])
        Path(f["operator.pub.jwk"]).write_text(_run(["keys", "public", "--key", f["operator.jwk"]], capture=True))

        _say("2. Trust list naming the bureau and the types it may issue; an empty status list")
        Path(f["issuers.json"]).write_text(json.dumps([{
            "id": ISSUER,
            "name": {"zh-CN": "上海市市场监督管理局", "en": "Shanghai Administration for Market Regulation"},
            "region": "310000",
            "vcts": ["business-licence", "food-business-permit"],
            "keys": ["issuer.jwk"],
        }], ensure_ascii=False, indent=2))
        _run(["trust-list", "create", "--issuers", f["issuers.json"], "--operator-key", f["operator.jwk"],
              "--out", f["trust-list.jwt"]])
        _run(["status-list", "create", "--uri", STATUS_URI, "--key", f["issuer.jwk"], "--out", f["status-1.jwt"]])

        _say("3. Issue the business licence (营业执照) of a synthetic enterprise, bound to the wallet's key")
        claims = generate_business_licence(random.Random(2026), as_of=date.today())
        Path(f["licence.json"]).write_text(json.dumps(claims, ensure_ascii=False, indent=2))
        print(f"   enterprise: {claims['name']}  USCC {claims['uscc']}  legal representative {claims['legal_representative']}")
        idx = str(random.SystemRandom().randrange(100_000))
        _run(["credential", "issue", "--type", "business-licence", "--claims", f["licence.json"],
              "--issuer-key", f["issuer.jwk"], "--issuer", ISSUER, "--holder-key", f["holder.jwk"],
              "--status-uri", STATUS_URI, "--status-idx", idx, "--out", f["licence.sd-jwt"]])

        verify = ["verify", "--trust-list", f["trust-list.jwt"], "--trust-anchor", f["operator.pub.jwk"],
                  "--status-list", f["status-1.jwt"]]

        _say("4. The holder shows three claims as an offline QR code (亮码); the counter decodes and verifies it")
        _show_code(f["licence.sd-jwt"], f["holder.jwk"], f["code-1.txt"], f["code-1.png"])
        print(_run(["qr", "decode", f["code-1.png"]], capture=True).strip()[:72] + " ...")
        _run([*verify[:1], f["code-1.png"], *verify[1:]])

        _say("5. The bureau revokes the licence (吊销) and re-signs the status list")
        _run(["status-list", "set", f["status-1.jwt"], "--index", idx, "--status", "revoked", "--key", f["issuer.jwk"]])

        _say("6. A fresh code from the same licence now fails: revoked")
        _show_code(f["licence.sd-jwt"], f["holder.jwk"], f["code-2.txt"], f["code-2.png"])
        _run([*verify[:1], f["code-2.png"], *verify[1:]], expect=1)
    except DemoFailed as exc:
        print(f"\nDEMO FAILED: {exc}")
        return 1
    print(f"\nScenario complete. Every file is in {work}/ (QR images: code-1.png, code-2.png).")
    return 0


def _show_code(licence: str, holder: str, text_out: str, png_out: str) -> None:
    _run(["credential", "present", licence, "--disclose", QR_CLAIMS, "--holder-key", holder, "--qr", "--out", text_out])
    _run(["qr", "encode", text_out, "--format", "png", "--out", png_out])
