"""Fixtures of the verifier service tests: a deployment with two departments, on each database backend.

Built on the shared ``sessions`` fixture (tests/conftest.py), so every test runs on SQLite and, when
``ELICENCE_TEST_DATABASE_URL`` is set, on PostgreSQL. Nothing is mocked: the trust list is signed by a
real operator key and names a real issuer key; credentials are issued with
:func:`credentials.sd_jwt_vc.issue_vc`; the status list token is signed by the issuer and served by a
fetch function the test can change (to revoke or suspend, or to make it unreachable). Time stands
still at ``NOW`` until a test moves the :class:`Clock`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from credentials import openid4vp as vp
from credentials import qr, sd_jwt_vc, status_list, trust
from credentials.errors import StatusUnavailable
from elicence.scenario import licence_claims
from keys.jwk import jwks
from keys.keystore import generate_kek
from keys.signer import SoftwareSigner
from schemas.registry import get_type
from schemas.synthetic import generate_food_permit, generate_person, generate_staff_authorisation
from verifier.sdk import StatusSource, TrustListSource
from verifier.service import VerifierService

NOW = datetime(2026, 9, 21, 13, 46, 40, tzinfo=timezone.utc)
T = int(NOW.timestamp())
DAY = 86400
ISSUER_ID = "https://amr.sh.example.gov.cn"
STATUS_URI = ISSUER_ID + "/status/1"
PUBLIC_URL = "https://verify.example.gov.cn"
FOOD_ITEM = "310000-food-permit-01"
TAX_ITEM = "310000-tax-01"
TENDER_ITEM = "310000-tender-bid-01"


class Clock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def timestamp(self) -> float:
        return self.now.timestamp()


@dataclass
class Served:
    """What the status list URL answers now: a token, or ``None`` for an unreachable server."""

    token: str | None


class Desk:
    """One deployment: issuer keys, trust list, the service, two departments and their staff."""

    PUBLIC_URL = PUBLIC_URL
    FOOD_ITEM = FOOD_ITEM
    TAX_ITEM = TAX_ITEM
    TENDER_ITEM = TENDER_ITEM
    ISSUER_ID = ISSUER_ID
    T = T

    def __init__(self, sessions) -> None:
        self.sessions = sessions
        self.clock = Clock(NOW)
        self.operator = SoftwareSigner.generate("ES256")
        self.issuer = SoftwareSigner.generate("ES256")
        self.holder = SoftwareSigner.generate("ES256")
        self.staff_key = SoftwareSigner.generate("ES256")
        self.types = {slug: get_type(slug) for slug in
                      ("business-licence", "staff-authorisation", "food-business-permit", "natural-person")}
        self.trust_token = self.trust_list([ISSUER_ID])
        self.statuses = status_list.StatusList.new(1024, bits=2)
        self.served = Served(self.sign_status(self.statuses))
        self.service = self.make_service()
        self.window = self.service.create_department(
            slug="pudong-window", name_zh="浦东新区企业服务中心", name_en="Pudong Enterprise Service Centre",
            dns_name="verify.example.gov.cn",
            types=["business-licence", "staff-authorisation", "food-business-permit", "natural-person"],
        )
        self.tax = self.service.create_department(
            slug="tax-office", name_zh="徐汇区税务局", name_en="Xuhui Tax Office", dns_name="tax.example.gov.cn",
            types=["business-licence"],
        )
        created = self.service.create_staff(department="pudong-window", name="窗口一号")
        self.staff, self.api_key = created.staff, created.api_key
        other = self.service.create_staff(department="tax-office", name="税务窗口")
        self.tax_staff, self.tax_api_key = other.staff, other.api_key
        self.claims = licence_claims(1)
        self.licence = self.issue("business-licence", self.claims, idx=7)

    # -- trust and status material ------------------------------------------------------------------

    def trust_list(self, issuers: list[str], *, exp: int = T + 30 * DAY) -> str:
        entries = [
            trust.TrustedIssuer(
                id=iss, name={"zh-CN": "上海市市场监督管理局", "en": "Shanghai Administration for Market Regulation"},
                region="310000", vcts=tuple(t.vct for t in self.types.values()),
                jwks=tuple(jwks([self.issuer.public_jwk])["keys"]),
            )
            for iss in issuers
        ]
        return trust.create_trust_list(entries, signer=self.operator, iss="https://trust.elicence.cn", iat=T, exp=exp,
                                       sequence=1)

    def sign_status(self, statuses: status_list.StatusList, *, exp: int = T + DAY) -> str:
        return status_list.sign_status_list_token(statuses, signer=self.issuer, sub=STATUS_URI, iss=ISSUER_ID, iat=T,
                                                  exp=exp, ttl=300)

    def set_status(self, idx: int, value: int) -> None:
        self.statuses = self.statuses.with_status(idx, value)
        self.served.token = self.sign_status(self.statuses)

    def _fetch_status(self, uri: str) -> str:
        if self.served.token is None or uri != STATUS_URI:
            raise StatusUnavailable(f"{uri} is unreachable")
        return self.served.token

    def make_service(self, *, trust_token: str | None = None, demo: bool = True, catalogue: Any = None) -> VerifierService:
        token = self.trust_token if trust_token is None else trust_token
        clock = self.clock.timestamp
        return VerifierService(
            sessions=self.sessions, kek=KEK, public_url=PUBLIC_URL,
            trust=TrustListSource.from_fetch(lambda: token, anchor=self.operator.public_jwk, clock=clock, initial=token),
            status=StatusSource(self._fetch_status, clock=clock),
            demo=demo, clock=self.clock, catalogue=catalogue,
        )

    # -- credentials --------------------------------------------------------------------------------

    def issue(self, type_slug: str, claims: dict[str, Any], *, idx: int, issuer_id: str = ISSUER_ID,
              exp: int | None = None) -> str:
        ctype = self.types[type_slug]
        return sd_jwt_vc.issue_vc(
            claims, vct=ctype.vct, issuer=issuer_id, signer=self.issuer, disclosable=ctype.disclosable_paths(claims),
            holder_jwk=self.holder.public_jwk, status=(idx, STATUS_URI), iat=T - DAY,
            exp=T + 365 * DAY if exp is None else exp,
        )

    def authorisation(self, *, scope: Any = None, days_left: int = 30, idx: int = 8, **changes: Any) -> str:
        person = generate_person(random.Random(3))
        claims = generate_staff_authorisation(random.Random(4), self.claims, person)
        today = NOW.date()
        claims.update(scope={"matters": [FOOD_ITEM]} if scope is None else scope,
                      valid_from=(today - timedelta(days=10)).isoformat(),
                      valid_until=(today + timedelta(days=days_left)).isoformat(), **changes)
        return self.issue("staff-authorisation", claims, idx=idx, exp=T + 400 * DAY)

    def food_permit(self, idx: int = 9) -> str:
        claims = generate_food_permit(random.Random(1), self.claims)
        return self.issue("food-business-permit", claims, idx=idx)

    def el1(self, credential: str | None = None, *, disclose: Any = None, now: int | None = None,
            holder: SoftwareSigner | None = None) -> str:
        """The offline QR text of a fresh presentation, as the wallet renders it."""
        return qr.present_offline(
            self.licence if credential is None else credential,
            disclose=[["name"], ["legal_representative"]] if disclose is None else disclose,
            holder_signer=self.holder if holder is None else holder,
            now=int(self.clock.timestamp()) if now is None else now,
            nonce=f"n{random.getrandbits(64):x}",
        )

    # -- the wallet's side of OpenID4VP ------------------------------------------------------------

    def wallet_request(self, created) -> vp.AuthorizationRequest:
        """What a wallet does with the QR link: fetch the Request Object and check it against the registrar."""
        reference = vp.parse_authorization_request_uri(created.uri)
        token = self.service.request_object(reference.request_uri.rsplit("/", 1)[1])
        return vp.verify_request_object(token, client_id=reference.client_id,
                                        trust_anchors=self.service.registrar_certificates(), now=self.clock.timestamp())

    def answer(self, request: vp.AuthorizationRequest, presentations: dict[str, list[tuple[str, Any]]], *,
               nonce: str | None = None, aud: str | None = None, holder: SoftwareSigner | None = None) -> dict[str, str]:
        """The ``direct_post`` form answering ``request`` with ``{query id: [(credential, disclose), ...]}``."""
        from credentials import sd_jwt

        out = {}
        for qid, items in presentations.items():
            out[qid] = [
                sd_jwt.present(cred, disclose=disclose, holder_signer=holder or self.holder,
                               aud=aud or request.client_id, nonce=nonce or request.nonce,
                               now=int(self.clock.timestamp()))
                for cred, disclose in items
            ]
        return vp.response_form(request, out)

    def today(self) -> date:
        return NOW.date()


#: One KEK for the whole test session (the store keeps one KEK check value per database).
KEK = generate_kek()


@pytest.fixture
def desk(sessions) -> Desk:
    return Desk(sessions)


@pytest.fixture
def bare(sessions):
    """A factory of services on an empty database (no registrar, no department): ``bare(demo=False)``."""
    operator = SoftwareSigner.generate("ES256")
    token = trust.create_trust_list([], signer=operator, iss="https://trust.elicence.cn", iat=T, exp=T + DAY, sequence=1)
    clock = Clock(NOW)

    def make(*, demo: bool = False) -> VerifierService:
        return VerifierService(
            sessions=sessions, kek=KEK, public_url=PUBLIC_URL, demo=demo, clock=clock,
            trust=TrustListSource.from_fetch(lambda: token, anchor=operator.public_jwk, clock=clock.timestamp,
                                             initial=token),
            status=StatusSource(lambda uri: b"", clock=clock.timestamp),
        )

    return make
