"""Two ``elicence serve`` processes on two ports, one PostgreSQL database: every flow completes with its
requests alternating between them (issue 6, "Production shape"). Skipped without ``ELICENCE_TEST_DATABASE_URL``.

One deployment, one public URL. Both processes share the database, the key-encryption key file and the
trust list operator's key file (``shared_secrets``), and both run with ``ELICENCE_PUBLIC_URL`` = server A:
the public URL is not an address of one process but the deployment's name, behind which a load balancer
spreads requests over the workers. It prefixes every issuer identifier (``<public URL>/issuers/<slug>``,
stored with the authority and signed into every credential's ``iss`` and status list ``uri``) and the
verifier's request and response URIs, so two public URLs would make two deployments whose credentials
disagree about who issued them. The test plays the load balancer: it sends each request to A or B
explicitly, with the same paths, alternating at every step of a flow, so that a step that needs state
left by the previous one (an offer, a pre-authorised code, an access token, a ``c_nonce``, a wallet
session, the replay cache, a verifier transaction, a status list's signed token) finds it only if that
state is in the database. Where a server calls the public URL itself (the wallet fetching an offer or a
request object, verifiers fetching trust and status lists) the call goes to A, as it would go to the
load balancer; the OpenID4VP request object is fetched from B by rewriting the port of its
``request_uri`` before the wallet reads the link.
"""

from __future__ import annotations

import io
import random
import time
from urllib.parse import quote

import httpx
import pytest

from credentials import jws
from credentials import openid4vci as o4
from credentials import status_list as sl
from elicence.audit_cli import reconcile_database
from elicence.story import AUTHORITY, LICENCE, PASSWORD, PIN, DemoKeys, Holder, expect, issue_licence, receive, revoke, \
    scan, show_qr
from keys.jwk import thumbprint
from keys.signer import SoftwareSigner
from tests.elicence.served import elicence_serve

pytestmark = pytest.mark.postgres
ISSUER = f"/issuers/{AUTHORITY}"


@pytest.fixture
def servers(pg_url, shared_secrets, tmp_path):
    """Server A (seeds the demo deployment), then server B on the same database with A's public URL: A
    takes the database from ELICENCE_DATABASE_URL, B from ``--database-url`` and runs two workers."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with elicence_serve(tmp_path / "a", {"ELICENCE_DATABASE_URL": pg_url, **shared_secrets}) as a, \
            elicence_serve(tmp_path / "b", {**shared_secrets, "ELICENCE_PUBLIC_URL": a.base},
                           ["--database-url", pg_url, "--workers", "2"]) as b, \
            httpx.Client(base_url=a.base, timeout=60) as A, httpx.Client(base_url=b.base, timeout=60) as B:
        yield a, b, A, B


def _path(url: str) -> str:
    """The path of an absolute URL: the same request, to whichever server is asked."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def _status_entry(http: httpx.Client, uri: str, idx: int) -> tuple[str, int]:
    """The status list token this server serves for ``uri``, and its entry ``idx``."""
    token = http.get(_path(uri), headers={"Accept": sl.MEDIA_TYPE})
    assert token.status_code == 200, token.text
    payload = jws.parse(token.text.strip()).payload
    return token.text, sl.StatusList.from_json(payload["status_list"]).get(idx)


def test_every_flow_completes_with_requests_alternating_between_two_servers(servers, pg_url):
    a, b, A, B = servers
    assert a.base != b.base
    assert A.get("/").json() == B.get("/").json()  # one deployment: the same issuer identifiers on both
    keys = DemoKeys.read(a.var)  # A seeded the deployment; B found it seeded
    staff = {"Authorization": f"Bearer {keys.staff_key}"}
    rng = random.Random(2026)
    issuer_id = f"{a.base}{ISSUER}"

    # -- OpenID4VCI, by hand: offer on A, token on B, nonce on A, credential on B ---------------------------
    issued = issue_licence(A, keys.operator_key, rng)
    offer = o4.parse_offer_uri(issued.offer["offer_uri"])
    assert isinstance(offer, o4.CredentialOffer) and offer.credential_issuer == issuer_id
    form = {"grant_type": o4.PRE_AUTHORIZED_GRANT, "pre-authorized_code": offer.pre_authorized_code,
            "tx_code": issued.offer["tx_code"]}
    token = expect(B.post(f"{ISSUER}/token", data=form), 200, "token on B")["access_token"]
    again = A.post(f"{ISSUER}/token", data=form)  # the code was spent on B
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    nonce = expect(A.post(f"{ISSUER}/nonce"), 200, "nonce on A")["c_nonce"]
    holder_key = SoftwareSigner.generate("ES256")
    proof = o4.make_proof(holder_key, audience=issuer_id, nonce=nonce, iat=int(time.time()))
    body = {"credential_configuration_id": LICENCE, "proofs": {"jwt": [proof]}}
    bearer = {"Authorization": f"Bearer {token}"}
    credential = expect(B.post(f"{ISSUER}/credential", headers=bearer, json=body), 200,
                        "credential on B")["credentials"][0]["credential"]
    claims = jws.parse(credential.split("~", 1)[0]).payload
    assert claims["iss"] == issuer_id and thumbprint(claims["cnf"]["jwk"]) == thumbprint(holder_key.public_jwk)
    replayed = A.post(f"{ISSUER}/credential", headers=bearer, json=body)  # token and nonce were used on B
    assert replayed.status_code in (400, 401) and replayed.json()["error"] in ("invalid_token", "invalid_nonce")

    # -- the wallet: register on A, sign in on B, PIN on A, receive on B, show the QR via A ---------------
    phone = "13900000001"
    expect(A.post("/wallet/accounts", json={"phone": phone, "password": PASSWORD, "display_name": "张三"}), 201,
           "register on A")
    session = expect(B.post("/wallet/sessions", json={"phone": phone, "password": PASSWORD}), 200, "sign in on B")
    holder = Holder({"Authorization": f"Bearer {session['access_token']}"}, phone, "张三")
    expect(A.put("/wallet/pin", headers=holder.headers, json={"pin": PIN}), 204, "set the PIN on A")
    licence = issue_licence(B, keys.operator_key, rng)  # this offer is made on B
    _, stored = receive(B, holder, licence)
    shown = show_qr(A, holder, stored["id"])
    assert expect(B.get(f"/wallet/credentials/{stored['id']}/card", headers=holder.headers), 200, "card on B")

    # -- a counter scans on B the code shown via A; the same code on A is a replay -------------------------
    card = scan(B, keys, shown["text"])["card"]
    assert card["verdict"] == "valid", card
    card = scan(A, keys, shown["text"], item=None)["card"]
    assert (card["verdict"], card["error"]) == ("invalid", "replay"), card

    # -- OpenID4VP: request created on A, its request object served by B, answered by the wallet on B ------
    created = expect(A.post(f"/verifier/departments/{keys.department}/requests", headers=staff, json={
        "credentials": [{"type": LICENCE, "claims": ["uscc", "name"]}], "purpose": "办理食品经营许可"}), 201,
        "create the request on A")
    port_a, port_b = a.base.rsplit(":", 1)[1], b.base.rsplit(":", 1)[1]
    via_b = created["uri"].replace(quote(f"localhost:{port_a}", safe=""), quote(f"localhost:{port_b}", safe=""))
    assert via_b != created["uri"]
    preview = expect(A.post("/wallet/requests/inspect", headers=holder.headers, json={"request": via_b}), 200,
                     "inspect on A (request object from B)")
    assert preview["satisfiable"], preview
    answered = expect(B.post("/wallet/requests/respond", headers=holder.headers, json={
        "request_object": preview["request_object"], "client_id": preview["client_id"], "consent": True,
        "pin": PIN}), 200, "answer on B")
    assert answered["outcome"] == "sent"
    poll = {**staff, "X-Result-Secret": created["result_secret"]}
    path = f"/verifier/departments/{keys.department}/requests/{created['transaction_id']}/result"
    result = expect(A.get(path, headers=poll), 200, "poll on A")
    assert (result["status"], result["verdict"]) == ("complete", "valid"), result
    assert expect(B.get(path, headers=poll), 200, "poll on B") == result

    # -- a revocation on B is in the status list token served by A (and B serves the same signing) ----------
    uri, idx = stored["status_list_uri"], stored["status_list_idx"]
    assert uri.startswith(f"{issuer_id}/status/")
    before, value = _status_entry(A, uri, idx)
    assert value == sl.VALID
    revoked = revoke(B, keys.operator_key, licence.claims["uscc"])
    assert revoked["credential"]["status"] == "revoked"
    served_a, value = _status_entry(A, uri, idx)
    assert value == sl.INVALID and served_a != before
    served_b, _ = _status_entry(B, uri, idx)
    assert served_b == served_a

    # -- nothing lost: the audit chains verify and credentials, status lists and audit log agree -----------
    out = io.StringIO()
    assert reconcile_database(pg_url, out=out) == 0, out.getvalue()
