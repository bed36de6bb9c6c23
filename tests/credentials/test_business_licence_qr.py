"""The business licence as issued from its type (schemas/types/business-licence) with RFC 9901
recursive disclosures (s4.2.6, s6.3): one top-level digest for ``registration``, each register field
still disclosable on its own, and the size of the default offline QR code (credentials/qr.py).

The QR version is a size property of the format (issuer payload, EL1 packing, dictionary), not a
timing: it is asserted, and recorded as a junit property (run with ``-rA`` to see it).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credentials import jws, qr, sd_jwt, sd_jwt_vc
from credentials.errors import CredentialError
from keys.jwk import b64u_encode
from keys.signer import SoftwareSigner
from schemas.registry import get_type
from schemas.synthetic import generate_business_licence

NOW = 1_793_500_000
ISSUER_ID = "https://amr.sh.example.gov.cn"
STATUS_URI = ISSUER_ID + "/status/1"
LICENCE = get_type("business-licence")
VISIBLE = [("uscc",), ("name",), ("legal_representative",)]
MEMBERS = (
    "entity_type",
    "registered_capital",
    "establishment_date",
    "business_term",
    "business_scope",
    "domicile",
    "registration_authority",
    "issue_date",
)
AS_OF = dt.date(2026, 11, 1)


def _signer(alg: str, seed: int) -> SoftwareSigner:
    """A fixed key per seed (EdDSA signatures are then deterministic too)."""
    rnd = random.Random(seed)
    if alg == "EdDSA":
        return SoftwareSigner(Ed25519PrivateKey.from_private_bytes(rnd.randbytes(32)))
    return SoftwareSigner(ec.derive_private_key(rnd.randrange(1, 2**255), ec.SECP256R1()))


def _claims(seed: int = 1) -> dict[str, Any]:
    """A synthetic licence with registered capital (all eight register fields present)."""
    rng = random.Random(seed)
    while True:
        claims = generate_business_licence(rng, as_of=AS_OF)
        if "registered_capital" in claims["registration"]:
            return claims


def _issue(
    claims: Mapping[str, Any], *, alg: str = "ES256", seed: int = 1
) -> tuple[str, SoftwareSigner, SoftwareSigner]:
    """Issue as an issuer does from the type: the type's sd paths that exist in ``claims``."""
    issuer, holder = _signer(alg, seed), _signer(alg, seed + 1000)
    salts = random.Random(seed + 2000)
    credential = sd_jwt_vc.issue_vc(
        claims,
        vct=LICENCE.vct,
        issuer=ISSUER_ID,
        signer=issuer,
        disclosable=LICENCE.disclosable_paths(claims),
        holder_jwk=holder.public_jwk,
        status=(73_519, STATUS_URI),
        iat=NOW,
        exp=NOW + LICENCE.validity_days * 86400,
        salt_source=lambda: b64u_encode(salts.randbytes(16)),
    )
    return credential, issuer, holder


CLAIMS = _claims()
CREDENTIAL, ISSUER, HOLDER = _issue(CLAIMS)


def _verify(presentation: str, nonce: str = "n-1") -> sd_jwt_vc.VerifiedCredential:
    key = jws.public_key_from_jwk(ISSUER.public_jwk)
    return sd_jwt_vc.verify_vc(
        presentation,
        resolve_issuer_key=lambda iss, header, vct: key,
        now=NOW + 10,
        kb=sd_jwt.KeyBindingPolicy(nonce=nonce, aud=qr.OFFLINE_AUDIENCE),
        expected_vcts=(LICENCE.vct,),
    )


def _present(disclose: list[tuple[str, ...]], nonce: str = "n-1") -> str:
    return sd_jwt.present(
        CREDENTIAL, disclose=disclose, holder_signer=HOLDER, aud=qr.OFFLINE_AUDIENCE, nonce=nonce, now=NOW + 5
    )


def _subject(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The type's claims of a verified credential (the SD-JWT VC registered claims left out)."""
    return {k: v for k, v in claims.items() if k not in sd_jwt_vc.NEVER_DISCLOSABLE}


def test_issued_licence_has_exactly_one_top_level_digest() -> None:
    assert LICENCE.disclosable_paths(CLAIMS) == LICENCE.sd_paths  # every sd path of the type
    issued = sd_jwt.SdJwt.parse(CREDENTIAL)
    payload = jws.parse(issued.issuer_jwt).payload
    assert len(payload["_sd"]) == 1
    assert "registration" not in payload
    assert {k: payload[k] for k in ("uscc", "name", "legal_representative")} == {
        k: CLAIMS[k] for k in ("uscc", "name", "legal_representative")
    }
    disclosures = {d.name: d for d in map(sd_jwt.parse_disclosure, issued.disclosures)}
    assert set(disclosures) == {"registration", *MEMBERS}
    # s4.2.6: the parent's Disclosure carries the members' digests, not their values.
    registration = disclosures["registration"]
    assert payload["_sd"] == [registration.digest]
    assert set(registration.value) == {"_sd"}
    assert sorted(registration.value["_sd"]) == sorted(disclosures[m].digest for m in MEMBERS)
    # registered_capital and business_term keep their inner structure inside their own Disclosure
    assert disclosures["business_term"].value == CLAIMS["registration"]["business_term"]
    assert disclosures["registered_capital"].value == CLAIMS["registration"]["registered_capital"]


def test_default_view_discloses_nothing() -> None:
    presentation = _present(VISIBLE)
    assert sd_jwt.SdJwt.parse(presentation).disclosures == ()
    cred = _verify(presentation)
    assert _subject(cred.claims) == {k: CLAIMS[k] for k in ("uscc", "name", "legal_representative")}
    assert cred.disclosed_paths == () and cred.key_bound


def test_one_register_field_discloses_exactly_two_disclosures() -> None:
    presentation = _present(VISIBLE + [("registration", "business_scope")])
    disclosures = [sd_jwt.parse_disclosure(d) for d in sd_jwt.SdJwt.parse(presentation).disclosures]
    assert sorted(d.name for d in disclosures) == ["business_scope", "registration"]
    cred = _verify(presentation)
    assert _subject(cred.claims) == {
        "uscc": CLAIMS["uscc"],
        "name": CLAIMS["name"],
        "legal_representative": CLAIMS["legal_representative"],
        "registration": {"business_scope": CLAIMS["registration"]["business_scope"]},
    }
    assert set(cred.disclosed_paths) == {("registration",), ("registration", "business_scope")}


@pytest.mark.parametrize("member", MEMBERS)
def test_every_register_field_is_disclosable_on_its_own(member: str) -> None:
    cred = _verify(_present([("registration", member)]))
    assert cred.claims["registration"] == {member: CLAIMS["registration"][member]}


def test_disclosing_the_registration_object_alone_shows_no_member() -> None:
    """The parent Disclosure reveals only that registration exists: its members stay digests."""
    cred = _verify(_present([("registration",)]))
    assert cred.claims["registration"] == {}


def test_a_member_disclosure_without_its_parent_is_rejected() -> None:
    """A Holder who strips the registration Disclosure leaves the member unreferenced (s7.1)."""
    with_parent = sd_jwt.SdJwt.parse(
        sd_jwt.present(CREDENTIAL, disclose=[("registration", "domicile")])
    )
    orphan = tuple(d for d in with_parent.disclosures if sd_jwt.parse_disclosure(d).name == "domicile")
    text = sd_jwt.SdJwt(with_parent.issuer_jwt, orphan).serialize()
    key = jws.public_key_from_jwk(ISSUER.public_jwk)
    with pytest.raises(CredentialError) as info:
        sd_jwt_vc.verify_vc(text, resolve_issuer_key=lambda iss, header, vct: key, now=NOW + 10)
    assert info.value.code == "disclosure_unreferenced"


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_default_offline_qr_is_at_most_version_20(alg: str, record_property) -> None:
    """The key-bound QR of uscc, name and legal representative, for 20 synthetic licences (branches
    included), at error correction level M. With each register field a top-level digest it was
    version 24; ES256 signatures are random, which moves the deflated size by a few bytes only."""
    versions = []
    for seed in range(1, 21):
        claims = generate_business_licence(random.Random(seed), as_of=AS_OF)
        credential, _, holder = _issue(claims, alg=alg, seed=seed)
        text = qr.present_offline(
            credential,
            disclose=LICENCE.default_qr_claims,
            holder_signer=holder,
            now=NOW + 5,
            nonce=b64u_encode(random.Random(seed).randbytes(12)),
        )
        assert qr.decode_payload(text).count("~") == 1  # issuer JWT ~ KB-JWT: no Disclosure
        versions.append(qr.qr_info(text, "M").version)
    record_property("qr_versions_at_M", versions)
    print(f"{alg}: default offline QR versions at M {min(versions)}-{max(versions)}")
    assert max(versions) <= 20, versions
