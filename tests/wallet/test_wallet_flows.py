"""The wallet's protocol flows end to end over HTTP, in process: receive a licence from the issuer, show it
as a QR code a verifier accepts, answer an OpenID4VP request, authorise a staff member and withdraw it,
and the usage record of each. SQLite, and PostgreSQL when configured. Real clocks, real keys."""

from __future__ import annotations

import base64
import datetime as dt
import random
import time
from typing import Any
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Request, Response
from fastapi.testclient import TestClient

from credentials import openid4vp as vp
from credentials import qr
from elicence.app import create_app
from elicence.trust_operator import TrustOperator
from issuer.service import IssuerService
from keys import x509 as kx
from keys.jwk import private_jwk
from keys.signer import SoftwareSigner
from schemas.synthetic import generate_business_licence
from verifier.sdk import Policy, StatusSource, TrustListSource, Verifier
from wallet.flows import Network, WalletFlows
from wallet.service import WalletPolicy, WalletService

PUBLIC = "http://127.0.0.1:8000"
DNS = "localhost"
VERIFIER = f"http://{DNS}:8000/test-verifier"
PASSWORD = "correct horse battery"
PIN = "260817"
FAST = WalletPolicy(scrypt_n=2**4, scrypt_r=8, scrypt_p=1)
BL = "https://elicence.cn/vct/business-licence"


class TestVerifier:
    """A department's online verifier, just enough for the wallet to answer (OpenID4VP 1.0, x509_san_dns)."""

    def __init__(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = kx.make_registrar_ca(self.root_key, common_name="Test registrar", not_before=now - dt.timedelta(days=1),
                                         not_after=now + dt.timedelta(days=30))
        self.signer = SoftwareSigner.generate("ES256")
        leaf = kx.issue_access_certificate(ca_certificate=self.root, ca_key=self.root_key, dns_name=DNS,
                                           public_key=self.signer.private_key.public_key(), organization="浦东新区政务服务中心",
                                           not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=30))
        self.x5c = kx.x5c_encode([leaf])
        self.requests: dict[str, vp.VerifierRequest] = {}
        self.answers: dict[str, Any] = {}
        self.router = APIRouter()

        @self.router.get("/test-verifier/request/{rid}")
        def request_object(rid: str) -> Response:
            return Response(self.requests[rid].request_object, media_type="application/oauth-authz-req+jwt")

        @self.router.post("/test-verifier/response/{rid}")
        async def response(rid: str, request: Request) -> dict[str, Any]:
            self.answers[rid] = vp.parse_response_form(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            return {"redirect_uri": f"{VERIFIER}/done/{rid}"}

    def create(self, rid: str, claims: list[list[str]]) -> str:
        query = {"credentials": [{"id": "licence", "format": "dc+sd-jwt", "meta": {"vct_values": [BL]},
                                  "claims": [{"path": c} for c in claims]}]}
        made = vp.create_request(dns_name=DNS, signer=self.signer, x5c=self.x5c, response_uri=f"{VERIFIER}/response/{rid}",
                                 request_uri=f"{VERIFIER}/request/{rid}", dcql_query=query, now=int(time.time()),
                                 client_name="浦东新区政务服务中心", purpose="办理食品经营许可")
        self.requests[rid] = made
        return made.uri


class World:
    def __init__(self, client: TestClient, issuer: IssuerService, wallet: WalletService, trust: TrustOperator,
                 verifier: TestVerifier) -> None:
        self.client, self.issuer, self.wallet, self.trust, self.verifier = client, issuer, wallet, trust, verifier
        self.operator = issuer.create_operator(authority="sh-amr", name="窗口", actor="test").operator
        self.rng = random.Random(7)

    def error(self, r, status: int, code: str, case: str = "") -> None:
        assert r.status_code == status, (case, r.status_code, r.text)
        assert r.json()["error"] == code, r.text

    def account(self, n: int, name: str) -> dict[str, str]:
        r = self.client.post("/wallet/accounts", json={"phone": f"138{n:08d}", "password": PASSWORD, "display_name": name})
        assert r.status_code == 201, r.text
        token = self.client.post("/wallet/sessions", json={"phone": f"138{n:08d}", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert self.client.put("/wallet/pin", json={"pin": PIN}, headers=headers).status_code == 204
        return headers

    def record(self) -> dict[str, Any]:
        claims = generate_business_licence(self.rng)
        self.issuer.import_record(self.operator, type_name="business-licence", claims=claims)
        return claims

    def offer(self, claims: dict[str, Any]) -> Any:
        return self.issuer.create_offer(self.operator, type_name="business-licence", uscc=claims["uscc"])

    def licence_holder(self, n: int = 1) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        """A legal representative with the enterprise claimed and its licence received."""
        headers = self.account(n, "张三")
        claims = self.record()
        enterprise = self.client.post("/wallet/enterprises", json={"uscc": claims["uscc"], "name": claims["name"]},
                                      headers=headers).json()
        offer = self.offer(claims)
        r = self.client.post("/wallet/credentials/receive", headers=headers,
                             json={"offer": offer.offer_uri, "tx_code": offer.tx_code, "enterprise_id": enterprise["id"]})
        assert r.status_code == 201, r.text
        return headers, enterprise, r.json()

    def sdk(self) -> Verifier:
        roots = self.client.get("/trust/operator.jwk").json()
        trust = TrustListSource.from_fetch(lambda: self.client.get("/trust/list").text, anchor=roots)
        status = StatusSource(lambda uri: self.client.get(uri).text)
        return Verifier(trust=trust, status=status, policy=Policy())


@pytest.fixture
def world(sessions):
    issuer = IssuerService(sessions=sessions, kek=KEK, public_url=PUBLIC)
    issuer.create_authority(slug="sh-amr", name_zh="上海市市场监督管理局", name_en="Shanghai AMR",
                            types=("business-licence", "staff-authorisation"), region="310000", actor="test")
    wallet = WalletService(sessions=sessions, kek=KEK, policy=FAST)
    trust = TrustOperator(issuer=issuer, signer=SoftwareSigner.generate(), operator_id=f"{PUBLIC}/trust", refresh=0)
    verifier = TestVerifier()
    holder: dict[str, Any] = {}

    def current_trust():
        from credentials.trust import load_trust_list

        return load_trust_list(trust.token(), operator_key=trust.public_jwk, now=time.time())

    network = Network(http=lambda: TestClient(holder["app"], base_url=PUBLIC), trust=current_trust,
                      verifier_roots=lambda: [verifier.root], allow_http=True)
    flows = WalletFlows(wallet, network)
    app = create_app(issuer=issuer, wallet=wallet, trust=trust, flows=flows)
    app.include_router(verifier.router)
    holder["app"] = app
    with TestClient(app, base_url=PUBLIC) as client:
        yield World(client, issuer, wallet, trust, verifier)


from keys.keystore import generate_kek  # noqa: E402

KEK = generate_kek()


# --- receive --------------------------------------------------------------------------------------------


def test_the_legal_representative_receives_the_licence_into_the_enterprise_key(world):
    headers, enterprise, stored = world.licence_holder()
    assert stored["vct"] == BL and stored["enterprise_id"] == enterprise["id"] and stored["user_id"] is None
    listed = world.client.get("/wallet/credentials", headers=headers).json()
    assert [c["id"] for c in listed] == [stored["id"]]
    keys = {k["kid"]: k for k in world.client.get("/wallet/keys", headers=headers).json()}
    assert stored["holder_kid"] in keys  # bound to a key of this wallet, never exported
    assert all("d" not in k.get("jwk", {}) for k in keys.values())


def test_a_wrong_pin_receives_nothing_and_the_offer_stays_usable(world):
    headers = world.account(1, "张三")
    claims = world.record()
    enterprise = world.client.post("/wallet/enterprises", json={"uscc": claims["uscc"], "name": claims["name"]},
                                   headers=headers).json()
    offer = world.offer(claims)
    wrong = "000000" if offer.tx_code != "000000" else "111111"
    r = world.client.post("/wallet/credentials/receive", headers=headers,
                          json={"offer": offer.offer_uri, "tx_code": wrong, "enterprise_id": enterprise["id"]})
    world.error(r, 400, "tx_code_invalid")
    assert world.client.get("/wallet/credentials", headers=headers).json() == []
    r = world.client.post("/wallet/credentials/receive", headers=headers,
                          json={"offer": offer.offer_uri, "tx_code": offer.tx_code, "enterprise_id": enterprise["id"]})
    assert r.status_code == 201, r.text


def test_a_licence_of_another_enterprise_is_not_kept(world):
    headers = world.account(1, "张三")
    mine, other = world.record(), world.record()
    enterprise = world.client.post("/wallet/enterprises", json={"uscc": mine["uscc"], "name": mine["name"]},
                                   headers=headers).json()
    offer = world.offer(other)
    r = world.client.post("/wallet/credentials/receive", headers=headers,
                          json={"offer": offer.offer_uri, "tx_code": offer.tx_code, "enterprise_id": enterprise["id"]})
    world.error(r, 409, "credential_not_for_enterprise")
    assert world.client.get("/wallet/credentials", headers=headers).json() == []


def test_an_offer_from_a_qr_image_is_received(world):
    headers = world.account(1, "张三")
    claims = world.record()
    enterprise = world.client.post("/wallet/enterprises", json={"uscc": claims["uscc"], "name": claims["name"]},
                                   headers=headers).json()
    offer = world.offer(claims)
    image = base64.b64encode(qr.render_png(offer.offer_reference_uri)).decode()
    r = world.client.post("/wallet/credentials/receive", headers=headers,
                          json={"offer_image": image, "tx_code": offer.tx_code, "enterprise_id": enterprise["id"]})
    assert r.status_code == 201, r.text
    world.error(world.client.post("/wallet/credentials/receive", headers=headers,
                                  json={"offer": offer.offer_uri, "offer_image": image, "tx_code": offer.tx_code}),
                400, "invalid_value")


# --- show as a QR code ------------------------------------------------------------------------------------


def test_the_qr_code_verifies_at_a_counter_and_is_recorded(world):
    headers, enterprise, stored = world.licence_holder()
    r = world.client.post(f"/wallet/credentials/{stored['id']}/qr", headers=headers, json={"pin": PIN})
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["text"].startswith("EL1:") and shown["disclosed"] == ["uscc", "name", "legal_representative"]
    assert qr.decode_image(base64.b64decode(shown["png"])) == shown["text"]
    result = world.sdk().verify(shown["text"])
    assert result.valid, result
    assert result.credential.claims["uscc"] == world.wallet.enterprise(
        world.wallet.authenticate(headers["Authorization"][7:]).user, enterprise_id=enterprise["id"]).uscc
    again = world.client.post(f"/wallet/credentials/{stored['id']}/qr", headers=headers, json={"pin": PIN}).json()
    assert again["text"] != shown["text"]  # a new code each time
    usage = world.client.get(f"/wallet/enterprises/{enterprise['id']}/usage", headers=headers).json()["items"]
    assert [u["channel"] for u in usage] == ["qr", "qr"] and usage[0]["outcome"] == "shown"


def test_a_wrong_pin_shows_no_code_and_records_nothing(world):
    headers, enterprise, stored = world.licence_holder()
    world.error(world.client.post(f"/wallet/credentials/{stored['id']}/qr", headers=headers, json={"pin": "999999"}),
                403, "pin_invalid")
    assert world.client.get(f"/wallet/enterprises/{enterprise['id']}/usage", headers=headers).json()["items"] == []


def test_another_user_cannot_show_the_enterprise_licence(world):
    _, _, stored = world.licence_holder()
    stranger = world.account(2, "李四")
    world.error(world.client.post(f"/wallet/credentials/{stored['id']}/qr", headers=stranger, json={"pin": PIN}),
                404, "not_found")


# --- answer a presentation request ------------------------------------------------------------------------


def test_an_openid4vp_request_is_shown_then_answered_with_consent(world):
    headers, enterprise, stored = world.licence_holder()
    link = world.verifier.create("r1", [["uscc"], ["name"], ["registration", "domicile"]])
    preview = world.client.post("/wallet/requests/inspect", headers=headers, json={"request": link})
    assert preview.status_code == 200, preview.text
    p = preview.json()
    assert p["verifier_name"] == "浦东新区政务服务中心" and p["purpose"] == "办理食品经营许可" and p["satisfiable"]
    assert p["offered"]["licence"][0]["credential_id"] == stored["id"]
    assert "registration.domicile" in p["offered"]["licence"][0]["disclose"]
    r = world.client.post("/wallet/requests/respond", headers=headers, json={
        "request_object": p["request_object"], "client_id": p["client_id"], "consent": True, "pin": PIN})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "sent" and r.json()["redirect_uri"].endswith("/done/r1")
    made = world.verifier.requests["r1"]
    trusted = world.sdk()
    verified = vp.verify_response(world.verifier.answers["r1"], request=made.request, now=int(time.time()),
                                  verify_presentation=lambda pres, kb: trusted.verify(pres, nonce=kb.nonce,
                                                                                      audience=kb.aud).credential)
    claims = verified.credentials["licence"][0].claims
    assert claims["registration"]["domicile"] and "business_scope" not in claims["registration"]
    usage = world.client.get(f"/wallet/enterprises/{enterprise['id']}/usage", headers=headers).json()["items"]
    assert usage[0]["channel"] == "openid4vp" and usage[0]["outcome"] == "sent"
    assert usage[0]["verifier_client_id"] == f"x509_san_dns:{DNS}"


def test_a_refused_request_posts_access_denied_and_is_recorded(world):
    headers, enterprise, _ = world.licence_holder()
    link = world.verifier.create("r2", [["uscc"]])
    p = world.client.post("/wallet/requests/inspect", headers=headers, json={"request": link}).json()
    r = world.client.post("/wallet/requests/respond", headers=headers, json={
        "request_object": p["request_object"], "client_id": p["client_id"], "consent": False})
    assert r.status_code == 200 and r.json()["outcome"] == "refused"
    assert world.verifier.answers["r2"].error == "access_denied"


def test_a_tampered_or_foreign_request_is_refused_and_nothing_is_sent(world):
    headers, _, _ = world.licence_holder()
    link = world.verifier.create("r3", [["uscc"]])
    p = world.client.post("/wallet/requests/inspect", headers=headers, json={"request": link}).json()
    head, body, sig = p["request_object"].split(".")
    forged = f"{head}.{body}.{sig[:-4]}AAAA"
    world.error(world.client.post("/wallet/requests/respond", headers=headers, json={
        "request_object": forged, "client_id": p["client_id"], "consent": True, "pin": PIN}), 400, "invalid_request_object")
    world.error(world.client.post("/wallet/requests/inspect", headers=headers,
                                  json={"request": "openid4vp://?client_id=x509_san_dns:localhost"}), 400, "invalid_request")
    assert "r3" not in world.verifier.answers


# --- staff authorisation ----------------------------------------------------------------------------------


def test_staff_authorisation_lets_the_staff_member_show_the_licence_until_it_is_withdrawn(world):
    headers, enterprise, licence = world.licence_holder()
    staff = world.account(2, "李四")
    member = world.client.post(f"/wallet/enterprises/{enterprise['id']}/members", headers=headers,
                               json={"phone": "13800000002", "role": "staff"}).json()
    # Without an authorisation the staff member cannot present the licence.
    world.error(world.client.post(f"/wallet/credentials/{licence['id']}/qr", headers=staff, json={"pin": PIN}),
                403, "authorisation_required")
    until = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    r = world.client.post(f"/wallet/enterprises/{enterprise['id']}/authorisations", headers=headers,
                          json={"member_id": member["user_id"], "scope": {"all": True}, "valid_until": until, "pin": PIN})
    assert r.status_code == 201, r.text
    grant = r.json()
    assert grant["user_id"] == member["user_id"] and grant["enterprise_id"] == enterprise["id"]
    # Staff cannot authorise others.
    world.error(world.client.post(f"/wallet/enterprises/{enterprise['id']}/authorisations", headers=staff,
                                  json={"member_id": member["user_id"], "scope": {"all": True}, "valid_until": until,
                                        "pin": PIN}), 403, "administrator_required")
    shown = world.client.post(f"/wallet/credentials/{licence['id']}/qr", headers=staff, json={"pin": PIN})
    assert shown.status_code == 200, shown.text
    assert world.sdk().verify(shown.json()["text"]).valid
    # The staff member sees only their own presentations; the legal representative sees all.
    mine = world.client.get(f"/wallet/enterprises/{enterprise['id']}/usage", headers=staff).json()["items"]
    assert len(mine) == 1
    r = world.client.post(f"/wallet/enterprises/{enterprise['id']}/authorisations/{grant['id']}/withdraw",
                          headers=headers, json={"pin": PIN})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "invalid"
    # The issuer's status list says so too.
    checked = world.client.post(f"/wallet/credentials/{grant['id']}/status", headers=staff)
    assert checked.status_code == 200 and checked.json()["status"] == "invalid"
    world.error(world.client.post(f"/wallet/credentials/{licence['id']}/qr", headers=staff, json={"pin": PIN}),
                403, "authorisation_required")


def test_the_wallet_sees_a_revoked_licence_as_invalid(world):
    headers, _, licence = world.licence_holder()
    assert world.client.post(f"/wallet/credentials/{licence['id']}/status", headers=headers).json()["status"] == "valid"
    row = world.issuer.list_credentials(world.operator).items[0]
    world.issuer.change_status(world.operator, credential_id=row.id, action="revoke", reason="deregistered")
    assert world.client.post(f"/wallet/credentials/{licence['id']}/status", headers=headers).json()["status"] == "invalid"


def test_the_card_shows_each_claim_with_its_labels_and_the_issuer_from_the_trust_list(world):
    headers, _, licence = world.licence_holder()
    r = world.client.get(f"/wallet/credentials/{licence['id']}/card", headers=headers)
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["type_zh"] == "营业执照" and card["issuer_name"]["zh-CN"] == "上海市市场监督管理局"
    fields = {f["path"]: f for f in card["fields"]}
    assert fields["uscc"]["label_zh"] == "统一社会信用代码" and fields["uscc"]["label_en"]
    assert "registration.domicile" in fields and "cnf" not in fields and "iss" not in fields
    assert card["qr_claims"] == ["uscc", "name", "legal_representative"]
    assert card["colours"]["background_color"].startswith("#")
    assert card["credential"]["status"] == "valid"  # never checked before: the card read the status list
    stranger = world.account(2, "李四")
    world.error(world.client.get(f"/wallet/credentials/{licence['id']}/card", headers=stranger), 404, "not_found")


def _rows(world) -> dict[str, Any]:
    from wallet import store

    out = {}
    with store.unit_of_work(world.wallet._sessions, read_only=True) as tx:
        for table in store.WalletBase.metadata.sorted_tables:
            if table.name in ("wallet_access_token",):
                continue
            out[table.name] = sorted(repr(tuple(r)) for r in tx.execute(table.select()).all())
    return out


def test_every_flow_endpoint_hides_another_enterprise(world):
    headers, enterprise, licence = world.licence_holder()
    staff = world.account(2, "李四")
    member = world.client.post(f"/wallet/enterprises/{enterprise['id']}/members", headers=headers,
                               json={"phone": "13800000002", "role": "staff"}).json()
    until = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    grant = world.client.post(f"/wallet/enterprises/{enterprise['id']}/authorisations", headers=headers,
                              json={"member_id": member["user_id"], "scope": {"all": True}, "valid_until": until,
                                    "pin": PIN}).json()
    stranger = world.account(3, "王五")
    other = world.record()
    world.client.post("/wallet/enterprises", json={"uscc": other["uscc"], "name": other["name"]}, headers=stranger)
    offer = world.offer(world.record())
    calls = {
        "qr": ("POST", f"/wallet/credentials/{licence['id']}/qr", {"pin": PIN}),
        "status": ("POST", f"/wallet/credentials/{licence['id']}/status", None),
        "card": ("GET", f"/wallet/credentials/{licence['id']}/card", None),
        "staff-grant-card": ("GET", f"/wallet/credentials/{grant['id']}/card", None),
        "grant": ("POST", f"/wallet/enterprises/{enterprise['id']}/authorisations",
                  {"member_id": member["user_id"], "scope": {"all": True}, "valid_until": until, "pin": PIN}),
        "list-grants": ("GET", f"/wallet/enterprises/{enterprise['id']}/authorisations", None),
        "withdraw": ("POST", f"/wallet/enterprises/{enterprise['id']}/authorisations/{grant['id']}/withdraw", {"pin": PIN}),
        "receive-into": ("POST", "/wallet/credentials/receive",
                         {"offer": offer.offer_uri, "tx_code": offer.tx_code, "enterprise_id": enterprise["id"]}),
    }
    before = _rows(world)
    for case, (method, path, body) in calls.items():
        r = world.client.request(method, path, headers=stranger, json=body)
        world.error(r, 404, "not_found", case)
        assert _rows(world) == before, case
    # The offer the stranger tried to receive into the other enterprise was not spent.
    assert world.issuer.offer_state(world.operator, offer_id=offer.offer_id).state.value == "offered"
    # A staff member may see the grant they hold but not withdraw it or list the enterprise's grants.
    world.error(world.client.get(f"/wallet/enterprises/{enterprise['id']}/authorisations", headers=staff), 403,
                "administrator_required")
    world.error(world.client.post(f"/wallet/enterprises/{enterprise['id']}/authorisations/{grant['id']}/withdraw",
                                  headers=staff, json={"pin": PIN}), 403, "administrator_required")


def test_an_issuer_answering_garbage_to_an_authorisation_is_peer_response_invalid(world):
    headers, enterprise, _ = world.licence_holder()
    world.account(2, "李四")
    member = world.client.post(f"/wallet/enterprises/{enterprise['id']}/members", headers=headers,
                               json={"phone": "13800000002", "role": "staff"}).json()

    # The nonce endpoint answers HTML (a proxy's error page): refused with a code, nothing stored.
    original = world.client.app.router.routes
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    world.client.app.router.routes = [Route("/issuers/sh-amr/nonce", lambda request: HTMLResponse("<h1>busy</h1>"),
                                            methods=["POST"])] + list(original)
    try:
        before = _rows(world)
        until = (dt.date.today() + dt.timedelta(days=30)).isoformat()
        r = world.client.post(f"/wallet/enterprises/{enterprise['id']}/authorisations", headers=headers,
                              json={"member_id": member["user_id"], "scope": {"all": True}, "valid_until": until,
                                    "pin": PIN})
        world.error(r, 502, "peer_response_invalid")
        # Nothing kept (the PIN attempt counter of the user row is reset by the right PIN: left out).
        assert {k: v for k, v in _rows(world).items() if k != "wallet_user"} == \
            {k: v for k, v in before.items() if k != "wallet_user"}
    finally:
        world.client.app.router.routes = original
