"""Fixtures of the issuer service tests: an :class:`~issuer.service.IssuerService` on the test's database.

Built on the shared ``sessions`` fixture (tests/conftest.py): every test runs on SQLite and, when
``ELICENCE_TEST_DATABASE_URL`` is set, on PostgreSQL. The clock stands still until a test moves it
(``desk.clock.advance``); nothing reads the wall clock. Keys, proofs, presentations and status list
tokens are real (ES256 by default): no cryptography is mocked.

The ``desk`` fixture is one deployment with two authorities, each created through
``IssuerService.create_authority`` with an operator from ``create_operator``:

- ``sh-amr`` (``desk.SLUG``) issues business licences and staff authorisations;
- ``gd-fda`` (``desk.FOOD``) issues food business permits (and business licences, so that a
  licence of another authority can be presented to ``sh-amr``).

``Desk`` carries the wallet's and operator's steps (offer, token, nonce, proof, credential) so each
test states only what it proves, and ``snapshot()``: every row a refused request must leave as it was.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text

from credentials import jws
from credentials import openid4vci as o4
from credentials import sd_jwt
from credentials import sd_jwt_vc
from credentials import status_list as sl
from issuer import store
from issuer.service import IssuerService, OfferCreated
from keys.keystore import generate_kek
from keys.signer import SoftwareSigner
from schemas.synthetic import generate_business_licence, generate_food_permit

NOW = datetime(2026, 9, 21, 5, 46, 40, tzinfo=timezone.utc)  # 13:46:40 in Beijing: one calendar day in both zones
PUBLIC_URL = "https://issuer.example.gov.cn"
BL_VCT = "https://elicence.cn/vct/business-licence"
STAFF_VCT = "https://elicence.cn/vct/staff-authorisation"
FOOD_VCT = "https://elicence.cn/vct/food-business-permit"


class Clock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def timestamp(self) -> int:
        return int(self.now.timestamp())


def licence_claims(seed: int) -> dict[str, Any]:
    """Synthetic business-licence claims (valid USCC), the same for the same seed."""
    return generate_business_licence(random.Random(seed))


def food_claims(seed: int) -> dict[str, Any]:
    """Synthetic food business permit claims for the enterprise of ``licence_claims(seed)``."""
    return generate_food_permit(random.Random(seed), licence_claims(seed))


@dataclass(frozen=True)
class Issued:
    """A credential issued through the whole pre-authorised flow."""

    text: str
    holder: SoftwareSigner
    offer: OfferCreated
    row: store.Credential


# Tables a refused request must leave exactly as they were (the audit chain included).
_SNAPSHOT = {
    "authorities": "SELECT slug, vcts FROM issuer_authority ORDER BY slug",
    "operators": "SELECT id, revoked_at IS NULL FROM issuer_operator ORDER BY id",
    "keys": "SELECT kid, state FROM issuer_key ORDER BY kid",
    "records": "SELECT id, claims, updated_at FROM issuer_record ORDER BY id",
    "lists": "SELECT id, version, used_count, statuses, used FROM issuer_status_list ORDER BY id",
    "credentials": "SELECT id, status, reason, replaced_by FROM issuer_credential ORDER BY id",
    "offers": "SELECT id, state, pin_attempts FROM issuer_offer ORDER BY id",
    "tokens": "SELECT token_hash, used_at IS NULL FROM issuer_access_token ORDER BY token_hash",
    "nonces": "SELECT value, used_at IS NULL FROM issuer_nonce ORDER BY value",
    "idempotency": "SELECT operator_id, key, response FROM issuer_idempotency ORDER BY operator_id, key",
    "audit": "SELECT chain, seq, action, hash FROM issuer_audit ORDER BY chain, seq",
}


class Desk:
    """One deployment: the service, its clock, the two authorities and their operators."""

    SLUG = "sh-amr"
    FOOD = "gd-fda"
    PUBLIC_URL = PUBLIC_URL
    BL_VCT = BL_VCT
    STAFF_VCT = STAFF_VCT
    FOOD_VCT = FOOD_VCT
    NOW = NOW
    licence_claims = staticmethod(licence_claims)
    food_claims = staticmethod(food_claims)

    def __init__(self, sessions) -> None:
        self.sessions = sessions
        self.clock = Clock(NOW)
        self.service = IssuerService(sessions=sessions, kek=generate_kek(), public_url=PUBLIC_URL, clock=self.clock)
        self.service.create_authority(slug=self.SLUG, name_zh="上海市市场监督管理局",
                                      name_en="Shanghai Administration for Market Regulation",
                                      types=["business-licence", "staff-authorisation"], region="310000")
        self.service.create_authority(slug=self.FOOD, name_zh="广东省食品药品监督管理局",
                                      name_en="Guangdong Food and Drug Administration",
                                      types=["food-business-permit", "business-licence"], region="440000")
        created = self.service.create_operator(authority=self.SLUG, name="窗口一号")
        self.api_key = created.api_key
        self.operator = created.operator
        food = self.service.create_operator(authority=self.FOOD, name="食药窗口")
        self.food_api_key = food.api_key
        self.food_operator = food.operator
        self.issuer_id = f"{PUBLIC_URL}/issuers/{self.SLUG}"

    # -- reading the database -------------------------------------------------------------------------

    def refused(self, error: type[Exception], call, *args: Any, **kwargs: Any) -> Any:
        """Run a call that must raise ``error``; check that no table changed; return the exception."""
        before = self.snapshot()
        with pytest.raises(error) as info:
            call(*args, **kwargs)
        assert self.snapshot() == before
        return info.value

    def snapshot(self) -> dict[str, list[tuple]]:
        with store.unit_of_work(self.sessions, read_only=True) as tx:
            return {name: [tuple(r) for r in tx.execute(text(sql))] for name, sql in _SNAPSHOT.items()}

    def count(self, table: str, where: str = "", **params: Any) -> int:
        sql = f"SELECT COUNT(*) FROM issuer_{table}" + (f" WHERE {where}" if where else "")
        with store.unit_of_work(self.sessions, read_only=True) as tx:
            return tx.execute(text(sql), params).scalar_one()

    def actions(self, slug: str | None = None) -> list[str]:
        """The actions of an authority's audit chain, oldest first."""
        with store.unit_of_work(self.sessions, read_only=True) as tx:
            return [r.action for r in store.iter_audit(tx, chain=slug or self.SLUG)]

    def offer_row(self, offer_id: str) -> store.Offer:
        with store.unit_of_work(self.sessions, read_only=True) as tx:
            offer = store.get_offer(tx, offer_id=offer_id)
        assert offer is not None
        return offer

    def row_of(self, credential: str) -> store.Credential:
        """The row of an issued credential, found by its hash as the service records it."""
        from issuer.service import credential_hash

        with store.unit_of_work(self.sessions, read_only=True) as tx:
            row = store.get_credential_by_hash(tx, credential_hash=credential_hash(credential))
        assert row is not None
        return row

    def list_used(self, list_id: int) -> int:
        with store.unit_of_work(self.sessions, read_only=True) as tx:
            state = store.get_list(tx, list_id=list_id)
        assert state is not None
        return state.info.used_count

    # -- an operator's steps --------------------------------------------------------------------------

    def import_licence(self, seed: int = 1, *, slug: str | None = None, **changes: Any) -> dict[str, Any]:
        claims = {**licence_claims(seed), **changes}
        operator = self.food_operator if slug == self.FOOD else self.operator
        self.service.import_record(operator, type_name="business-licence", claims=claims)
        return claims

    def offer(self, seed: int = 1, *, imported: bool = False, slug: str | None = None, **extra: Any) -> OfferCreated:
        """A fresh business-licence offer for record ``seed`` (imported first unless ``imported``)."""
        if not imported:
            self.import_licence(seed, slug=slug)
        operator = self.food_operator if slug == self.FOOD else self.operator
        return self.service.create_offer(operator, type_name="business-licence", uscc=licence_claims(seed)["uscc"],
                                         **extra)

    # -- a wallet's steps -----------------------------------------------------------------------------

    @staticmethod
    def code(offer: OfferCreated) -> str:
        """The pre-authorised code, read from the by-value deep link as a wallet scanning it would."""
        parsed = o4.parse_offer_uri(offer.offer_uri)
        assert isinstance(parsed, o4.CredentialOffer)
        return parsed.pre_authorized_code

    def token_form(self, offer: OfferCreated, **changes: Any) -> dict[str, Any]:
        form = {"grant_type": o4.PRE_AUTHORIZED_GRANT, "pre-authorized_code": self.code(offer),
                "tx_code": offer.tx_code, **changes}
        return {k: v for k, v in form.items() if v is not None}

    def token(self, offer: OfferCreated, slug: str | None = None) -> str:
        return self.service.token(slug or offer.authority, self.token_form(offer))["access_token"]

    def nonce(self, slug: str | None = None) -> str:
        return self.service.nonce(slug or self.SLUG)["c_nonce"]

    def proof(self, holder, nonce: str | None, *, aud: str | None = None, iat: int | None = None,
              slug: str | None = None) -> str:
        return o4.make_proof(holder, audience=aud or self.service.issuer_id(slug or self.SLUG), nonce=nonce,
                             iat=self.clock.timestamp() if iat is None else iat)

    def credential(self, access_token: str, proof: str, *, configuration: str = "business-licence",
                   slug: str | None = None) -> dict[str, Any]:
        return self.service.credential(
            slug or self.SLUG, authorization=f"Bearer {access_token}",
            body={"credential_configuration_id": configuration, "proofs": {"jwt": [proof]}},
        )

    def redeem(self, offer: OfferCreated, holder=None, *, configuration: str | None = None) -> Issued:
        """Token, nonce, proof and credential for ``offer``; returns the credential and its row."""
        holder = holder or SoftwareSigner.generate("ES256")
        slug = offer.authority
        access_token = self.token(offer)
        proof = self.proof(holder, self.nonce(slug), slug=slug)
        body = self.credential(access_token, proof, configuration=configuration or offer.configuration_id, slug=slug)
        credential = body["credentials"][0]["credential"]
        return Issued(credential, holder, offer, self.row_of(credential))

    def issue(self, seed: int = 1, *, holder=None, slug: str | None = None, imported: bool = False) -> Issued:
        """The whole pre-authorised flow for a business licence of record ``seed``."""
        return self.redeem(self.offer(seed, slug=slug, imported=imported), holder)

    # -- a verifier's steps ---------------------------------------------------------------------------

    def jwks(self, slug: str | None = None) -> dict[str, dict[str, Any]]:
        """The keys published in the authority's JWT VC Issuer Metadata, by kid."""
        meta = self.service.jwt_vc_issuer_metadata(slug or self.SLUG)
        assert meta["issuer"] == self.service.issuer_id(slug or self.SLUG)
        return {k["kid"]: k for k in meta["jwks"]["keys"]}

    def verify(self, credential: str, *, slug: str | None = None):
        """Verify an SD-JWT VC with the keys the issuer publishes; raises the credential core's errors."""
        keys = self.jwks(slug)
        expected = self.service.issuer_id(slug or self.SLUG)

        def resolve(iss, header, vct):
            assert iss == expected
            from credentials.errors import UnknownKey

            if header.get("kid") not in keys:
                raise UnknownKey(f"kid {header.get('kid')!r} is not published")
            return jws.public_key_from_jwk(keys[header["kid"]], alg=header["alg"])

        return sd_jwt_vc.verify_vc(credential, resolve_issuer_key=resolve, now=self.clock.timestamp())

    def status_list(self, uri: str, *, slug: str | None = None):
        """The status token of ``uri``, verified with the issuer's published key (and its ETag)."""
        slug = slug or self.SLUG
        signed = self.service.status_token(slug, int(uri.rsplit("/", 1)[1]))
        header = jws.parse(signed.token).header
        key = jws.public_key_from_jwk(self.jwks(slug)[header["kid"]], alg=header["alg"])
        verified = sl.verify_status_list_token(signed.token, key=key, expected_uri=uri, now=self.clock.timestamp())
        return verified, signed

    def status(self, credential: str, *, slug: str | None = None) -> int:
        """The credential's entry in its status list token as served now (0 valid, 1 invalid, 2 suspended)."""
        payload = jws.parse(credential.split("~", 1)[0]).payload
        ref = payload["status"]["status_list"]
        verified, _ = self.status_list(ref["uri"], slug=slug)
        return sl.status_of(verified, ref["idx"])

    # -- a legal representative's steps ---------------------------------------------------------------

    def presentation(self, licence: Issued | str, holder=None, *, nonce: str | None = None, aud: str | None = None,
                     key_bound: bool = True) -> str:
        """The licence presented with name and legal representative, key-bound to this issuer by default."""
        text_, signer = (licence.text, licence.holder) if isinstance(licence, Issued) else (licence, holder)
        if not key_bound:
            return sd_jwt.present(text_, disclose=["name", "legal_representative"])
        return sd_jwt.present(text_, disclose=["name", "legal_representative"], holder_signer=signer,
                              aud=aud or self.issuer_id, nonce=nonce or self.nonce(), now=self.clock.timestamp())

    def authorisation_body(self, licence: Issued, staff: SoftwareSigner, /, *, scope: Any = None, days: int = 90,
                           **changes: Any) -> dict[str, Any]:
        """A request body: ``changes`` replace members; the licence is presented unless one is given."""
        today = self.clock.now.date()
        body = {
            "staff": {"name": "李四", "account": "lisi@example.cn"},
            "scope": {"matters": ["310000-tax-01", "310000-social-02"]} if scope is None else scope,
            "valid_from": today.isoformat(),
            "valid_until": (today + timedelta(days=days)).isoformat(),
            "staff_jwk": dict(staff.public_jwk),
            **changes,
        }
        if "licence" not in body:
            body["licence"] = self.presentation(licence)
        return body

    def authorise(self, licence: Issued, staff: SoftwareSigner | None = None, **body: Any) -> Issued:
        """Request an authorisation with ``licence`` and redeem it with the staff key."""
        staff = staff or SoftwareSigner.generate("ES256")
        offer = self.service.request_authorisation(self.SLUG, self.authorisation_body(licence, staff, **body))
        return self.redeem(offer, staff)


@pytest.fixture
def desk(sessions) -> Desk:
    return Desk(sessions)


@pytest.fixture
def staff() -> SoftwareSigner:
    return SoftwareSigner.generate("ES256")
