"""Benchmark (g): the wallet shows a licence as a QR code (亮码) — presentation + rendering, and the
time from the "show QR" request to the PNG bytes.

Measured in one run:

* **In process, the credential core alone** (the scenario's licence of :mod:`bench.fixtures`, the type's
  default QR view, a fresh KB-JWT nonce per call), interleaved in blocks: ``present_offline``
  (:func:`credentials.qr.present_offline`: SD-JWT presentation, KB-JWT, EL1 packing), ``render_png``
  (:func:`credentials.qr.render_png` of a prepared EL1 text), both together (the "presentation + QR
  rendering" rate is 1 / its median) and ``render_svg``.
* **The wallet service, in process**: :meth:`wallet.flows.WalletFlows.show_qr` on a deployment opened
  from its settings (:func:`elicence.app.open_deployment`, fresh SQLite file), so with the production
  :class:`wallet.service.WalletPolicy` (the wallet PIN is a keyed HMAC value, its attempt counted and
  committed before the comparison); :meth:`WalletService.confirm_pin` is timed alone beside it, and one
  pass per round times each step ``show_qr`` takes, in its order, to show where the time goes.
* **Over HTTP**: ``POST /wallet/credentials/{id}/qr`` against ``elicence serve --workers 1`` on the
  same database, sequential requests over one keep-alive ``httpx`` connection from this process; each
  sample runs from sending the request to the PNG bytes decoded (base64) from the JSON answer. The PIN
  check alone (in this process) alternates with the requests in blocks of 10, so the figure "without
  the PIN" (HTTP median minus PIN-check median) compares two medians taken under the same load.

Set-up, not timed: the issuer service in process creates the authority, the registry record and
the offer; the account, PIN, enterprise claim and OpenID4VCI receipt go through the server's HTTP API
(the server's wallet runs OpenID4VCI against its own issuer over HTTP). One code of each kind is read
back (zxing-cpp) before timing, so the figures are of codes that scan.
"""

from __future__ import annotations

import base64
import random
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.fixtures import NOW, Scenario
from bench.issuer import _environment, _free_port, _server
from bench.timing import Stats, interleaved, stats
from credentials import qr
from elicence.app import Deployment, open_deployment
from elicence.config import Settings
from schemas.registry import get_type
from schemas.synthetic import generate_business_licence
from wallet.service import WalletPolicy
from wallet.store import Channel, Outcome

__all__ = ["run", "GOAL_P50_MS"]

#: The goal of issue 4: from "show QR" request to PNG bytes, at the median, on this machine.
GOAL_P50_MS = 30.0
TYPE = "business-licence"
SLUG = "bench-wallet"
PIN = "260817"
PASSWORD = "bench wallet password"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------ in process


def _core(repeats: int, warmup: int) -> dict[str, Any]:
    """The credential core alone: presentation, PNG, both, SVG."""
    scenario = Scenario()
    credential, holder = scenario.credential, scenario.world.holder
    disclose = [tuple(p) for p in get_type(TYPE).default_qr_claims]
    nonces = [f"bench-g-{i:06d}" for i in range(warmup + repeats)]

    def present(i: int) -> str:
        return qr.present_offline(credential, disclose=disclose, holder_signer=holder, now=NOW, nonce=nonces[i])

    texts = [present(i) for i in range(warmup + repeats)]
    png = qr.render_png(texts[0])
    if qr.decode_image(png) != texts[0]:
        raise RuntimeError("the rendered QR code does not read back as the EL1 text")
    timings = interleaved(
        {
            "present_offline": present,
            "render_png": lambda i: qr.render_png(texts[i]),
            "present_offline + render_png": lambda i: qr.render_png(present(i)),
            "render_svg": lambda i: qr.render_svg(texts[i]),
        },
        repeats=repeats,
        warmup=warmup,
        block=10,
    )
    return {"stats": timings, "disclose": [".".join(p) for p in disclose], "el1_chars": len(texts[0]),
            "png_bytes": len(png), "svg_chars": len(qr.render_svg(texts[0])),
            "per_second": 1e9 / timings["present_offline + render_png"].median}


def _steps(deployment: Deployment, user: Any, credential_id: str, rounds: int) -> dict[str, Stats]:
    """Each step of ``WalletFlows.show_qr``, in its order, timed on its own (``rounds`` passes)."""
    wallet = deployment.wallet
    clock = time.perf_counter_ns
    samples: dict[str, list[int]] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = clock()
        out = fn()
        samples.setdefault(name, []).append(clock() - t0)
        return out

    for _ in range(rounds):
        stored = timed("read the credential", lambda: wallet.credential(user, credential_id=credential_id))
        chosen = [tuple(p) for p in get_type(stored.vct).default_qr_claims]
        confirmation = timed("confirm_pin", lambda: wallet.confirm_pin(user, PIN))
        signer = timed("signer_for (holder key from the keystore)", lambda: wallet.signer_for(
            user, purpose="presentation", enterprise_id=stored.enterprise_id, confirmation=confirmation))
        text = timed("present_offline", lambda: qr.present_offline(
            stored.credential, disclose=chosen, holder_signer=signer, now=int(time.time()),
            nonce=secrets.token_urlsafe(12)))
        timed("record_use (usage record write)", lambda: wallet.record_use(
            user, channel=Channel.QR, outcome=Outcome.SHOWN, credential_ids=[stored.id],
            enterprise_id=stored.enterprise_id, disclosed=[".".join(p) for p in chosen]))
        timed("render_png", lambda: qr.render_png(text))
    return {name: stats(s) for name, s in samples.items()}


# ------------------------------------------------------------------------------------------ deployment


def _ok(r: httpx.Response, status: int, what: str) -> Any:
    if r.status_code != status:
        raise RuntimeError(f"{what}: HTTP {r.status_code} {r.text[:500]}")
    return r.json() if r.content else None


def _holder(client: httpx.Client, deployment: Deployment) -> tuple[dict[str, str], str]:
    """A legal representative with the enterprise claimed and its licence received; (headers, credential id)."""
    issuer = deployment.issuer
    issuer.create_authority(slug=SLUG, name_zh="基准测试市场监督管理局", name_en="Benchmark AMR", types=(TYPE,),
                            region="310000", actor="bench")
    operator = issuer.create_operator(authority=SLUG, name="bench", actor="bench").operator
    claims = generate_business_licence(random.Random(4))
    issuer.import_record(operator, type_name=TYPE, claims=claims)
    offer = issuer.create_offer(operator, type_name=TYPE, uscc=claims["uscc"])
    phone = "13800004444"
    _ok(client.post("/wallet/accounts", json={"phone": phone, "password": PASSWORD, "display_name": "张三"}), 201,
        "register")
    tokens = _ok(client.post("/wallet/sessions", json={"phone": phone, "password": PASSWORD}), 200, "sign in")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    _ok(client.put("/wallet/pin", json={"pin": PIN}, headers=headers), 204, "set the PIN")
    enterprise = _ok(client.post("/wallet/enterprises", json={"uscc": claims["uscc"], "name": claims["name"]},
                                 headers=headers), 201, "claim the enterprise")
    stored = _ok(client.post("/wallet/credentials/receive", headers=headers,
                             json={"offer": offer.offer_uri, "tx_code": offer.tx_code, "enterprise_id": enterprise["id"]}),
                 201, "receive the licence")
    return headers, stored["id"]


def _http(client: httpx.Client, headers: dict[str, str], credential_id: str, pin: Callable[[], Any], requests: int,
          warmup: int) -> dict[str, Any]:
    """Sequential ``POST .../qr`` requests over one connection, request sent to PNG bytes decoded, and
    ``pin()`` (the PIN check alone) alternating with them in blocks, so that both see the same load."""
    path = f"/wallet/credentials/{credential_id}/qr"
    first = _ok(client.post(path, json={"pin": PIN}, headers=headers), 200, "show QR")
    if qr.decode_image(base64.b64decode(first["png"])) != first["text"]:
        raise RuntimeError("the served PNG does not read back as the served EL1 text")
    clock = time.perf_counter_ns
    samples: list[int] = []
    texts: set[str] = set()
    last: list[httpx.Response] = []

    def show(i: int) -> None:
        t0 = clock()
        r = client.post(path, json={"pin": PIN}, headers=headers)
        if r.status_code != 200:
            raise RuntimeError(f"show QR: HTTP {r.status_code} {r.text[:500]}")
        body = r.json()
        png = base64.b64decode(body["png"])
        elapsed = clock() - t0
        if not png.startswith(PNG_SIGNATURE):
            raise RuntimeError("show QR answered no PNG")
        texts.add(body["text"])
        last[:] = [r]
        if i >= warmup:
            samples.append(elapsed)

    alongside = interleaved({"http": show, "pin": lambda i: pin()}, repeats=requests, warmup=warmup, block=10)
    if len(texts) != warmup + requests:
        raise RuntimeError("show QR answered the same code twice")  # "a new code each time"
    centiles = statistics.quantiles(samples, n=100, method="inclusive")
    return {"stats": stats(samples), "n": len(samples), "p50_ms": statistics.median(samples) / 1e6,
            "p90_ms": centiles[89] / 1e6, "p99_ms": centiles[98] / 1e6, "max_ms": max(samples) / 1e6,
            "response_bytes": len(last[0].content), "http_version": last[0].http_version,
            "pin_alongside": alongside["pin"]}


def _service(*, http_requests: int, service_repeats: int, step_rounds: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="elicence-bench-wallet-"))
    try:
        port = _free_port()
        env = _environment(workdir, f"sqlite:///{workdir / 'wallet.db'}", port)
        # The server runs in workdir, whose var/ holds the demo trust list operator key it shares with us.
        deployment = open_deployment(Settings.from_env(env, var_dir=workdir / "var"))
        policy = deployment.wallet.policy
        if policy != WalletPolicy():
            raise RuntimeError("the deployment's wallet does not use the production WalletPolicy")
        assert deployment.flows is not None
        with _server(env, workdir, workers=1) as base, httpx.Client(base_url=base, timeout=30) as client:
            headers, credential_id = _holder(client, deployment)
            user = deployment.wallet.authenticate(headers["Authorization"].removeprefix("Bearer ")).user
            http = _http(client, headers, credential_id, lambda: deployment.wallet.confirm_pin(user, PIN),
                         http_requests, warmup=3)
            flows = deployment.flows
            direct = interleaved(
                {"WalletFlows.show_qr": lambda i: flows.show_qr(user, credential_id=credential_id, pin=PIN),
                 "WalletService.confirm_pin": lambda i: deployment.wallet.confirm_pin(user, PIN)},
                repeats=service_repeats, warmup=2, block=5)
            steps = _steps(deployment, user, credential_id, step_rounds)
        return {"http": http, "direct": direct, "steps": steps}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(*, quick: bool = False, repeats: int | None = None, http_requests: int | None = None,
        service_repeats: int | None = None) -> dict[str, Any]:
    """Run benchmark (g); returns its figures (``quick``: fewer rounds, noisier)."""
    repeats = repeats or (30 if quick else 300)
    http_requests = http_requests or (40 if quick else 300)
    service_repeats = service_repeats or (10 if quick else 60)
    core = _core(repeats, warmup=3)
    service = _service(http_requests=http_requests, service_repeats=service_repeats, step_rounds=service_repeats)
    # The PIN check timed in the same window as the HTTP requests (alternating with them), so that the
    # difference of the two medians is not an artefact of the machine's load changing between phases.
    pin = service["http"]["pin_alongside"].median / 1e6
    p50 = service["http"]["p50_ms"]
    return {"core": core, **service, "goal_p50_ms": GOAL_P50_MS, "pin_ms": pin, "p50_without_pin_ms": p50 - pin,
            "pin_share": pin / p50}
