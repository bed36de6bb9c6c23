"""``elicence demo``: the whole story, told over HTTP to a running deployment (``make run``).

Nine steps against the deployment's public APIs only (httpx), each printing one line in Chinese and
English with what it proved:

0. connect       the deployment answers ``/healthz``; the demo keys ``make run`` wrote are read from ``var/``
1. issue         the demo authority's admin API imports a registry record and makes a credential offer
2. receive       a legal representative signs up, sets the PIN, claims the enterprise, receives the licence
3. show-qr       the wallet shows it as a QR code (a fresh key-bound presentation; the PNG reads back)
4. scan          the demo department scans the code for a service item: valid, the licence copy exempt
5. portal-login  the sample portal's OpenID Connect login, answered by the wallet; the portal shows the enterprise
6. authorise     the legal representative authorises a staff member (the issuer grants it on the licence)
7. revoke        the authority revokes the licence (注销); its authorisations follow
8. scan-again    a fresh code of the same licence scans ``revoked`` once the department's copy of the status
                 list is older than its ``ttl`` (the story waits for that, and says how long)

A step that does not end as it should raises :class:`StepFailed`; :func:`run_story` prints the step's
name and why, and returns 1. The HTTP flows are functions of their own so that the tests (the browser
test included) drive a deployment the same way. :func:`serving` runs ``elicence serve`` in a directory
of its own (``elicence demo --start``, and the tests' servers).
"""

from __future__ import annotations

import base64
import html
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from credentials import jws, qr
from elicence.portal import PORTAL_PATH
from schemas.synthetic import generate_business_licence

__all__ = ["StepFailed", "DemoKeys", "Issued", "Holder", "STEPS", "ITEM", "LICENCE_COPY", "PIN", "PASSWORD", "expect",
           "issue_licence", "sign_up", "receive", "show_qr", "scan", "wallet_answers", "portal_login",
           "authorise_staff", "revoke", "status_ttl", "run_story", "run_started", "Served", "serving", "free_port",
           "default_url"]

#: The steps in their order: (name, zh, en).
STEPS = (("connect", "连接", "connect"), ("issue", "签发", "issue"), ("receive", "领照", "receive"),
         ("show-qr", "亮码", "show QR"), ("scan", "扫码", "scan"), ("portal-login", "登录", "portal login"),
         ("authorise", "授权", "authorise"), ("revoke", "注销", "revoke"), ("scan-again", "再扫", "scan again"))
AUTHORITY = "sh-amr"
LICENCE = "business-licence"
#: The service item the department handles (食品经营许可证核发): the licence copy is exempt from submission.
ITEM = "310000-food-permit-01"
LICENCE_COPY = "business-licence-copy"
PIN = "260817"
PASSWORD = "correct horse battery"
TIMEOUT = 30.0
LOGIN_WAIT = 30.0


class StepFailed(Exception):
    """A step did not end as the story expects; the message says what happened."""


def expect(r: httpx.Response, status: int, what: str) -> Any:
    """The JSON answer of ``r`` (``None`` when empty) when its status is ``status``.

    Raises :class:`StepFailed` naming ``what``, the HTTP status and the API's error code otherwise."""
    if r.status_code != status:
        try:
            body = r.json()
            reason = f"{body.get('error')}: {body.get('error_description')}" if isinstance(body, dict) else r.text
        except ValueError:
            reason = r.text
        raise StepFailed(f"{what}: HTTP {r.status_code} {reason[:300]}")
    return r.json() if r.content else None


# --- the deployment ----------------------------------------------------------------------------------------


def default_url(env: Mapping[str, str] = os.environ) -> str:
    """Where ``make run`` listens: ``ELICENCE_PUBLIC_URL``, else ``http://127.0.0.1:<ELICENCE_PORT or 8000>``."""
    return env.get("ELICENCE_PUBLIC_URL") or f"http://127.0.0.1:{env.get('ELICENCE_PORT') or 8000}"


@dataclass(frozen=True)
class DemoKeys:
    """What ``elicence serve`` wrote to ``var/`` on first start: an operator key of the authority, the
    department's staff key."""

    operator_key: str
    department: str
    staff_key: str

    @classmethod
    def read(cls, var: Path) -> DemoKeys:
        """Read ``demo-operators.json`` and ``demo-staff.json``; raises :class:`StepFailed` when they are not there."""
        try:
            operators = json.loads((var / "demo-operators.json").read_text(encoding="utf-8"))
            staff = json.loads((var / "demo-staff.json").read_text(encoding="utf-8"))[0]
            operator = next(o["api_key"] for o in operators if o["authority"] == AUTHORITY)
            return cls(operator, staff["department"], staff["api_key"])
        except (OSError, ValueError, LookupError, StopIteration, TypeError) as exc:
            raise StepFailed(f"no demo keys in {var}/ (demo-operators.json with {AUTHORITY}, demo-staff.json): "
                             f"{type(exc).__name__} {exc}; run 'make run' from this directory first, or pass --var "
                             "or --start") from exc


LOG_NAME = "serve.log"
START_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Served:
    """A running ``elicence serve``: its public URL, working directory (its ``var/`` is there) and environment."""

    base: str
    workdir: Path
    env: dict[str, str]

    @property
    def var(self) -> Path:
        return self.workdir / "var"

    def output(self) -> str:
        """What the server printed so far (the banner, then uvicorn's log)."""
        return (self.workdir / LOG_NAME).read_text(encoding="utf-8", errors="replace")


@contextmanager
def serving(workdir: Path, env: Mapping[str, str] | None = None, args: Sequence[str] = ()) -> Iterator[Served]:
    """Run ``elicence serve [args]`` in ``workdir`` on a free loopback port (also its public URL, as under
    ``make run``, unless ``env`` names another) until the block ends, then stop its process group. No
    ``ELICENCE_*`` variable of this process leaks in, only those of ``env``; its output goes to
    ``workdir/serve.log``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ELICENCE_")}
    clean.update({"ELICENCE_PORT": str(port), "ELICENCE_PUBLIC_URL": base, **(env or {})})
    served = Served(base, workdir, clean)
    # To a file, not a pipe: a pipe nobody reads would block the server once its log fills the buffer.
    with open(workdir / LOG_NAME, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "elicence.cli", "serve", *args], cwd=workdir, env=clean,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise RuntimeError(f"elicence serve exited {server.returncode}:\n{served.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"elicence serve did not answer within {START_TIMEOUT:.0f} s")
            time.sleep(0.2)
        yield served
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


# --- the flows, one function each ------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    """A registry record's claims and the offer of its licence (``offer_uri``, ``tx_code``, ...)."""

    claims: dict[str, Any]
    offer: dict[str, Any]


@dataclass(frozen=True)
class Holder:
    """A wallet account: its ``Authorization`` header, its phone number and name."""

    headers: dict[str, str]
    phone: str
    name: str


def _admin(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def issue_licence(http: httpx.Client, operator_key: str, rng: random.Random) -> Issued:
    """The authority's admin API: import the record of a synthetic enterprise, make an offer of its licence."""
    claims = generate_business_licence(rng, as_of=date.today())
    base = f"/issuers/{AUTHORITY}/admin"
    expect(http.post(f"{base}/records", headers=_admin(operator_key), json={"type": LICENCE, "claims": claims}), 201,
           "import the registry record")
    offer = expect(http.post(f"{base}/offers", headers=_admin(operator_key),
                             json={"type": LICENCE, "uscc": claims["uscc"]}), 201, "create the offer")
    return Issued(claims, offer)


def sign_up(http: httpx.Client, phone: str, name: str, *, pin: str | None = PIN) -> Holder:
    """A wallet account: register, sign in, and set the wallet PIN (unless ``pin`` is None)."""
    expect(http.post("/wallet/accounts", json={"phone": phone, "password": PASSWORD, "display_name": name}), 201,
           f"register {name}")
    token = expect(http.post("/wallet/sessions", json={"phone": phone, "password": PASSWORD}), 200, f"sign in {name}")
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    if pin is not None:
        expect(http.put("/wallet/pin", headers=headers, json={"pin": pin}), 204, "set the wallet PIN")
    return Holder(headers, phone, name)


def receive(http: httpx.Client, holder: Holder, issued: Issued) -> tuple[str, dict[str, Any]]:
    """Claim the enterprise, then receive its licence with the offer link and PIN; (enterprise id, credential)."""
    claims = issued.claims
    enterprise = expect(http.post("/wallet/enterprises", headers=holder.headers,
                                  json={"uscc": claims["uscc"], "name": claims["name"]}), 201, "claim the enterprise")
    credential = expect(http.post("/wallet/credentials/receive", headers=holder.headers, json={
        "offer": issued.offer["offer_uri"], "tx_code": issued.offer["tx_code"], "enterprise_id": enterprise["id"]}),
        201, "receive the licence")
    return enterprise["id"], credential


def show_qr(http: httpx.Client, holder: Holder, credential_id: str) -> dict[str, Any]:
    """A new QR code of the credential (亮码): ``text`` (``EL1:...``) and ``png`` (bytes)."""
    shown = expect(http.post(f"/wallet/credentials/{credential_id}/qr", headers=holder.headers, json={"pin": PIN}),
                   200, "show the QR code")
    return {**shown, "png": base64.b64decode(shown["png"])}


def scan(http: httpx.Client, keys: DemoKeys, text: str, *, item: str | None = ITEM) -> dict[str, Any]:
    """The department's counter scans a code (the scanner's text) for ``item``; the answer (``card``, ...)."""
    body = {"text": text, **({"item": item} if item else {})}
    path = f"/verifier/departments/{keys.department}/scans"
    return expect(http.post(path, headers=_admin(keys.staff_key), json=body), 200, f"scan at {keys.department}")


def _login_page(page: str) -> tuple[str, str]:
    """The ``openid4vp://`` link and the status URL the provider's login page shows and polls."""
    link = re.search(r'id="wallet-link" href="(openid4vp://[^"]+)"', page)
    status = re.search(r"var statusUrl = (\"[^\"]+\");", page)
    if link is None or status is None:
        raise StepFailed("the login page shows no openid4vp:// link or status URL")
    return html.unescape(link.group(1)), json.loads(status.group(1))


def wallet_answers(http: httpx.Client, holder: Holder, link: str, *, consent: bool = True) -> dict[str, Any]:
    """The wallet reads an ``openid4vp://`` request (who asks, for what), then answers with consent and the PIN."""
    preview = expect(http.post("/wallet/requests/inspect", headers=holder.headers, json={"request": link}), 200,
                     "the wallet inspects the request")
    if not preview["satisfiable"]:
        raise StepFailed(f"the wallet holds nothing that answers {preview['requested']}")
    answered = expect(http.post("/wallet/requests/respond", headers=holder.headers, json={
        "request_object": preview["request_object"], "client_id": preview["client_id"], "consent": consent,
        "pin": PIN}), 200, "the wallet answers")
    if answered["outcome"] != ("sent" if consent else "refused"):
        raise StepFailed(f"the wallet's answer: {answered['outcome']}")
    return preview


def portal_login(http: httpx.Client, holder: Holder) -> str:
    """Log in to the sample portal as a browser would (its own cookie jar), the wallet answering the login
    page's request; returns the portal's page after the login."""
    with httpx.Client(base_url=str(http.base_url), timeout=TIMEOUT) as browser:
        start = browser.get(f"{PORTAL_PATH}/login")
        if start.status_code != 302 or "/verifier/oidc/authorize" not in start.headers.get("location", ""):
            raise StepFailed(f"the portal's login button: HTTP {start.status_code}, not a redirect to the provider")
        page = browser.get(start.headers["location"], headers={"Accept": "text/html"})
        if page.status_code != 200:
            raise StepFailed(f"the provider's login page: HTTP {page.status_code} {page.text[:200]}")
        link, status_url = _login_page(page.text)
        wallet_answers(http, holder, link)
        deadline = time.monotonic() + LOGIN_WAIT
        while True:
            polled = browser.get(status_url, headers={"Accept": "application/json"})
            status = expect(polled, 200, "the login page's poll")
            if status.get("redirect_to"):
                break
            if status.get("status") != "pending" or time.monotonic() > deadline:
                raise StepFailed(f"the login ended without a way back to the portal: {status}")
            time.sleep(0.5)
        back = browser.get(status["redirect_to"])
        if back.status_code != 303:
            raise StepFailed(f"the portal's callback: HTTP {back.status_code} {back.text[:300]}")
        home = browser.get(f"{PORTAL_PATH}/")
        if home.status_code != 200:
            raise StepFailed(f"the portal's page: HTTP {home.status_code}")
        return home.text


def authorise_staff(http: httpx.Client, holder: Holder, enterprise_id: str, staff: Holder, *,
                    days: int = 30) -> dict[str, Any]:
    """Make ``staff`` a member of the enterprise and authorise them for all service items for ``days`` days."""
    member = expect(http.post(f"/wallet/enterprises/{enterprise_id}/members", headers=holder.headers,
                              json={"phone": staff.phone, "role": "staff"}), 201, "add the staff member")
    until = (date.today() + timedelta(days=days)).isoformat()
    return expect(http.post(f"/wallet/enterprises/{enterprise_id}/authorisations", headers=holder.headers, json={
        "member_id": member["user_id"], "scope": {"all": True}, "valid_until": until, "pin": PIN}), 201,
        "authorise the staff member")


def revoke(http: httpx.Client, operator_key: str, uscc: str, *, reason: str = "deregistered") -> dict[str, Any]:
    """The authority revokes the enterprise's valid licence; its answer (``credential``, ``authorisations``)."""
    base = f"/issuers/{AUTHORITY}/admin/credentials"
    query = {"uscc": uscc, "type": LICENCE, "status": "valid"}
    found = expect(http.get(base, headers=_admin(operator_key), params=query), 200, "find the licence")["items"]
    if len(found) != 1:
        raise StepFailed(f"{len(found)} valid licences of {uscc} at {AUTHORITY}, expected one")
    return expect(http.post(f"{base}/{found[0]['id']}/status", headers=_admin(operator_key),
                            json={"action": "revoke", "reason": reason}), 200, "revoke the licence")


def status_ttl(http: httpx.Client, uri: str) -> int:
    """The ``ttl`` of the status list token at ``uri``: how long a verifier may keep its copy."""
    r = http.get(uri, headers={"Accept": "application/statuslist+jwt"})
    if r.status_code != 200:
        raise StepFailed(f"the status list {uri}: HTTP {r.status_code}")
    ttl = jws.parse(r.text.strip()).payload.get("ttl")
    return ttl if isinstance(ttl, int) and ttl >= 0 else 0


# --- the story ---------------------------------------------------------------------------------------------


def _materials(exemption: dict[str, Any]) -> str:
    exempt = [m for m in exemption["materials"] if m["status"] == "exempt"]
    return "、".join(m["name"]["zh-CN"] for m in exempt) + " / " + ", ".join(m["name"]["en"] for m in exempt)


class Story:
    """The steps, in order, against one deployment; :meth:`run` prints a line per step."""

    def __init__(self, http: httpx.Client, var: Path, out: Callable[[str], None], rng: random.Random) -> None:
        self.http, self.var, self.out, self.rng = http, var, out, rng
        self.waited = 0.0

    def _phone(self) -> str:
        return "139" + "".join(str(self.rng.randrange(10)) for _ in range(8))

    def connect(self) -> str:
        try:
            health = self.http.get("/healthz")
        except httpx.HTTPError as exc:
            raise StepFailed(f"nothing answers at {self.http.base_url} ({type(exc).__name__}): start it with "
                             "'make run' in another shell, or run 'elicence demo --start'") from exc
        expect(health, 200, "GET /healthz")
        self.keys = DemoKeys.read(self.var)
        return (f"{self.http.base_url} 在线，演示密钥取自 {self.var}/ / the deployment answers; demo keys read "
                f"from {self.var}/")

    def issue(self) -> str:
        self.issued = issue_licence(self.http, self.keys.operator_key, self.rng)
        c = self.issued.claims
        return (f"{AUTHORITY} 导入登记记录并签发要约 {c['name']}（{c['uscc']}）/ the authority imported the registry "
                f"record and made an offer of its licence (link + PIN {self.issued.offer['tx_code']})")

    def receive(self) -> str:
        c = self.issued.claims
        self.holder = sign_up(self.http, self._phone(), c["legal_representative"])
        self.enterprise_id, self.credential = receive(self.http, self.holder, self.issued)
        return (f"法定代表人 {self.holder.name}（{self.holder.phone}）注册、设 PIN、认领企业并领取营业执照 / the legal "
                f"representative signed up, set the PIN, claimed the enterprise, and the wallet verified and stored "
                f"the licence (OpenID4VCI, credential {self.credential['id']})")

    def show_qr(self) -> str:
        shown = show_qr(self.http, self.holder, self.credential["id"])
        if qr.decode_image(shown["png"]) != shown["text"]:
            raise StepFailed("the QR image does not read back as the code's text")
        self.code = shown["text"]
        return (f"钱包出示新的密钥绑定二维码（披露 {', '.join(shown['disclosed'])}）/ the wallet showed a fresh "
                f"key-bound QR code ({len(shown['text'])} characters, its PNG reads back)")

    def scan(self) -> str:
        answer = scan(self.http, self.keys, self.code)
        card = answer["card"]
        if card["verdict"] != "valid":
            raise StepFailed(f"the department sees {card['verdict']} {card.get('error')}, not valid")
        materials = {m["id"]: m["status"] for m in answer["exemption"]["materials"]}
        if materials.get(LICENCE_COPY) != "exempt":
            raise StepFailed(f"the licence copy is {materials.get(LICENCE_COPY)}, not exempt, for {ITEM}")
        self.scanned_at, self.status_age = time.monotonic(), card["freshness"]["status_list_age_s"] or 0.0
        item = answer["exemption"]["item"]["name"]
        return (f"{self.keys.department} 核验有效，{item['zh-CN']} 免提交 {_materials(answer['exemption'])} / valid at "
                f"the department ({card['issuer']['name']['en']}); for \"{item['en']}\" exempt from submission; "
                f"receipt {answer['receipt_id']}")

    def portal_login(self) -> str:
        page = portal_login(self.http, self.holder)
        c = self.issued.claims
        for field, value in (("enterprise-name", c["name"]), ("uscc", c["uscc"])):
            if f'<dd id="{field}">{html.escape(value)}</dd>' not in page:
                raise StepFailed(f"the portal's page does not show {field} {value}")
        return (f"示例门户显示已登录企业 {c['name']}（{c['uscc']}）/ the sample portal shows the enterprise logged "
                "in (OpenID Connect code flow, the wallet answered the login page's OpenID4VP request)")

    def authorise(self) -> str:
        self.staff = sign_up(self.http, self._phone(), "李四", pin=None)
        grant = authorise_staff(self.http, self.holder, self.enterprise_id, self.staff)
        if not grant["vct"].endswith("/staff-authorisation"):
            raise StepFailed(f"the grant is a {grant['vct']}")
        return (f"经办人 {self.staff.name}（{self.staff.phone}）获授权（全部事项，至 {str(grant['expires_at'])[:10]}）/ the "
                "staff member holds an authorisation credential the issuer granted on the licence")

    def revoke(self) -> str:
        changed = revoke(self.http, self.keys.operator_key, self.issued.claims["uscc"])
        followed = [a for a in changed["authorisations"] if a["status"] == "revoked"]
        if changed["credential"]["status"] != "revoked" or not followed:
            raise StepFailed(f"after the revocation: licence {changed['credential']['status']}, "
                             f"{len(followed)} authorisation(s) revoked")
        return (f"营业执照已注销，{len(followed)} 份授权随之失效 / the authority revoked the licence (deregistered); "
                f"{len(followed)} authorisation(s) followed it")

    def scan_again(self) -> str:
        ttl = status_ttl(self.http, self.credential["status_list_uri"])
        # The department keeps its copy of the status list for the list's ttl: wait until it is due.
        due = self.scanned_at - self.status_age + ttl + 1
        start, give_up = time.monotonic(), due + ttl + 10
        while True:
            time.sleep(max(0.0, due - time.monotonic()))
            card = scan(self.http, self.keys, show_qr(self.http, self.holder, self.credential["id"])["text"])["card"]
            if card["verdict"] != "valid" or time.monotonic() > give_up:
                break
            due = time.monotonic() + 3  # the copy was refreshed after the first scan (by the portal login)
        self.waited = time.monotonic() - start
        if (card["verdict"], card["error"]) != ("invalid", "revoked"):
            raise StepFailed(f"a fresh code of the revoked licence scans {card['verdict']} {card['error']}")
        return (f"再次扫码：{card['message']['zh-CN']} / a fresh code now scans revoked: {card['message']['en']} (after "
                f"{self.waited:.0f} s: the department keeps its status list copy for its ttl of {ttl} s)")

    def run(self) -> int:
        steps = [self.connect, self.issue, self.receive, self.show_qr, self.scan, self.portal_login, self.authorise,
                 self.revoke, self.scan_again]
        for number, ((name, zh, en), step) in enumerate(zip(STEPS, steps)):
            label = f"{number} {zh} {en} [{name}]"
            try:
                said = step()
            # Besides StepFailed: no answer at all, or an answer not of the API's shape.
            except (StepFailed, httpx.HTTPError, LookupError, TypeError, ValueError) as exc:
                why = str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"
                self.out(f"✗ {label}: 失败 failed: {why}")
                self.out(f"elicence demo: step {number} '{name}' failed")
                return 1
            self.out(f"✓ {label}: {said}")
        self.out("故事完整 / the whole story ran: issue, receive, show, scan (exempt), portal login, authorise, revoke, "
                 "scan again (revoked)")
        return 0


def run_story(url: str, var: Path, *, out: Callable[[str], None] = print, seed: int | None = None) -> int:
    """Tell the story to the deployment at ``url`` with the demo keys in ``var``; 0 when every step did what it
    should, 1 when one did not (named in the output)."""
    rng = random.Random(secrets.randbits(64) if seed is None else seed)
    with httpx.Client(base_url=url.rstrip("/"), timeout=TIMEOUT) as http:
        return Story(http, var, out, rng).run()


def run_started(*, out: Callable[[str], None] = print) -> int:
    """Start ``elicence serve`` (demo mode, embedded SQLite) in a temporary directory, tell it the story, stop it."""
    with tempfile.TemporaryDirectory(prefix="elicence-demo-") as workdir:
        out(f"elicence serve starting in {workdir} ...")
        with serving(Path(workdir)) as served:
            return run_story(served.base, served.var, out=out)
