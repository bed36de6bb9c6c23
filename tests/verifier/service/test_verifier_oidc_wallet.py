"""Log in with e-licence with the real wallet: the issuer issues the licence over OpenID4VCI into the
enterprise's key, the legal representative authorises a staff member (the authorisation is issued to the
staff member's own key), and each logs in to the sample portal through the wallet's own inspect/respond
flow (the wallet backend's HTTP API), the deployment app hosting issuer, wallet, trust list and verifier
in process. SQLite, and PostgreSQL when configured."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from credentials.trust import load_trust_list
from elicence.app import create_app
from elicence.trust_operator import TrustOperator
from issuer.service import IssuerService
from keys.keystore import generate_kek
from keys.signer import SoftwareSigner
from tests.verifier.service.test_verifier_oidc import Browser, SamplePortal
from tests.wallet.test_wallet_flows import FAST, PIN
from tests.wallet.test_wallet_flows import World as WalletWorld
from verifier.sdk import StatusSource, TrustListSource
from verifier.service import VerifierService
from wallet.flows import Network, WalletFlows
from wallet.service import WalletService

PUBLIC = "http://127.0.0.1:8000"
VERIFIER = "http://localhost:8000"
CALLBACK = "http://127.0.0.1:9000/callback"
KEK = generate_kek()


class World:
    """Issuer, wallet, trust list and verifier in one deployment app; a department and a portal."""

    def __init__(self, sessions) -> None:
        self.issuer = IssuerService(sessions=sessions, kek=KEK, public_url=PUBLIC)
        self.issuer.create_authority(slug="sh-amr", name_zh="上海市市场监督管理局", name_en="Shanghai AMR",
                                     types=("business-licence", "staff-authorisation"), region="310000", actor="test")
        self.wallet = WalletService(sessions=sessions, kek=KEK, policy=FAST)
        self.trust = TrustOperator(issuer=self.issuer, signer=SoftwareSigner.generate(), operator_id=f"{PUBLIC}/trust",
                                   refresh=0)
        holder: dict[str, Any] = {}

        def fetch(path: str) -> str:
            return TestClient(holder["app"], base_url=PUBLIC).get(path).text

        self.verifier = VerifierService(
            sessions=sessions, kek=KEK, public_url=VERIFIER, demo=True,
            trust=TrustListSource.from_fetch(lambda: fetch("/trust/list"), anchor=self.trust.public_jwk),
            status=StatusSource(fetch),
        )
        self.verifier.create_department(slug="portal-login", name_zh="一网通办登录", name_en="One-stop portal login",
                                        dns_name="localhost", types=["business-licence", "staff-authorisation"])
        staff = self.verifier.create_staff(department="portal-login", name="管理员").staff
        created = self.verifier.register_portal(staff, name="一网通办", redirect_uris=[CALLBACK])

        def current_trust() -> Any:
            return load_trust_list(self.trust.token(), operator_key=self.trust.public_jwk, now=time.time())

        network = Network(http=lambda: TestClient(holder["app"], base_url=PUBLIC), trust=current_trust,
                          verifier_roots=self.verifier.registrar_certificates, allow_http=True)
        app = create_app(issuer=self.issuer, wallet=self.wallet, trust=self.trust,
                         flows=WalletFlows(self.wallet, network), verifier=self.verifier)
        holder["app"] = app
        self.client = TestClient(app, base_url=PUBLIC, follow_redirects=False)
        self.portal = SamplePortal(self.client, created.portal.client_id, created.client_secret, CALLBACK)
        # The wallet tests' world knows how to open accounts and receive a licence over OpenID4VCI.
        self.wallet_world = WalletWorld(self.client, self.issuer, self.wallet, self.trust, None)
        self.account = self.wallet_world.account

    def licence_holder(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        headers, enterprise, _ = self.wallet_world.licence_holder()
        return headers, enterprise, {"uscc": enterprise["uscc"], "name": enterprise["name"]}

    def staff_member(self, headers: dict[str, str], enterprise: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
        staff = self.account(2, "李四")
        member = self.client.post(f"/wallet/enterprises/{enterprise['id']}/members", headers=headers,
                                  json={"phone": "13800000002", "role": "staff"}).json()
        until = (dt.date.today() + dt.timedelta(days=30)).isoformat()
        r = self.client.post(f"/wallet/enterprises/{enterprise['id']}/authorisations", headers=headers,
                             json={"member_id": member["user_id"], "scope": {"all": True}, "valid_until": until,
                                   "pin": PIN})
        assert r.status_code == 201, r.text
        return staff, r.json()

    def log_in(self, headers: dict[str, str], *, consent: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
        """The portal sends the browser; the user answers with the wallet; the browser comes back."""
        url, session = self.portal.login_url()
        browser = Browser(self.client)
        assert browser.open(url).status_code == 200
        preview = self.client.post("/wallet/requests/inspect", headers=headers, json={"request": browser.wallet_link})
        assert preview.status_code == 200, preview.text
        p = preview.json()
        assert p["satisfiable"] and p["verifier_name"] == "一网通办登录"
        r = self.client.post("/wallet/requests/respond", headers=headers, json={
            "request_object": p["request_object"], "client_id": p["client_id"], "consent": consent, "pin": PIN})
        assert r.status_code == 200, r.text
        return browser.poll(), session


@pytest.fixture
def world(sessions) -> World:
    return World(sessions)


def test_the_legal_representative_logs_in_with_the_wallet(world):
    headers, _, claims = world.licence_holder()
    polled, session = world.log_in(headers)
    assert polled["status"] == "complete", polled
    params = world.portal.callback(polled["redirect_to"], session)
    tokens = world.portal.redeem(params["code"], session)
    assert tokens.status_code == 200, tokens.text
    id_token = world.portal.verify_id_token(tokens.json()["id_token"], session)
    assert (id_token["uscc"], id_token["enterprise_name"]) == (claims["uscc"], claims["name"])
    assert "act" not in id_token


def test_a_staff_member_logs_in_with_the_wallet_and_is_named_as_acting(world):
    headers, enterprise, claims = world.licence_holder()
    staff, _ = world.staff_member(headers, enterprise)
    polled, session = world.log_in(staff)
    assert polled["status"] == "complete", polled
    params = world.portal.callback(polled["redirect_to"], session)
    id_token = world.portal.verify_id_token(world.portal.redeem(params["code"], session).json()["id_token"], session)
    assert id_token["uscc"] == claims["uscc"]
    assert id_token["act"]["name"] == "李四" and id_token["authorisation"]["scope"] == {"all": True}


def test_declining_in_the_wallet_sends_access_denied_to_the_portal(world):
    headers, _, _ = world.licence_holder()
    polled, session = world.log_in(headers, consent=False)
    assert polled["status"] == "failed"
    assert world.portal.callback(polled["redirect_to"], session)["error"] == "access_denied"
