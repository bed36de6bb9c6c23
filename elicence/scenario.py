"""A complete small eLicence world in memory: the scenario behind ``elicence demo``, the SDK tests and
the benchmarks, built only from the public library functions.

A trust-list operator, one market regulation authority (issuer) with a status list, and one
enterprise holder key. Values in, values out: :func:`build_world` returns a frozen :class:`World`;
:func:`issue_licence` and :func:`set_status` return new tokens.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from credentials import sd_jwt_vc, status_list, trust
from keys.jwk import jwks
from keys.signer import SoftwareSigner
from schemas.registry import get_type, validate_claims
from schemas.synthetic import generate_business_licence

__all__ = ["World", "build_world", "issue_licence", "set_status", "licence_claims"]

ISSUER_ID = "https://amr.sh.example.gov.cn"
OPERATOR_ID = "https://trust.elicence.cn"
STATUS_URI = ISSUER_ID + "/status/1"
BUSINESS_LICENCE = "business-licence"


@dataclass(frozen=True)
class World:
    """Keys, the signed trust list and the current status list token of one scenario."""

    operator: SoftwareSigner
    issuer: SoftwareSigner
    holder: SoftwareSigner
    issuer_id: str
    status_uri: str
    trust_list: str
    statuses: status_list.StatusList
    status_token: str
    now: int


def build_world(
    *, now: int, status_size: int = 100_000, holder_alg: str = "ES256", ttl: int = 300
) -> World:
    """A fresh world at time ``now``: new keys, a 30-day trust list, an all-valid 2-bit status list."""
    operator = SoftwareSigner.generate("ES256")
    issuer = SoftwareSigner.generate("ES256")
    holder = SoftwareSigner.generate(holder_alg)
    entry = trust.TrustedIssuer(
        id=ISSUER_ID,
        name={"zh-CN": "上海市市场监督管理局", "en": "Shanghai Administration for Market Regulation"},
        region="310000",
        vcts=tuple(t.vct for t in (get_type(BUSINESS_LICENCE), get_type("food-business-permit"))),
        jwks=tuple(jwks([issuer.public_jwk])["keys"]),
    )
    trust_list = trust.create_trust_list(
        [entry], signer=operator, iss=OPERATOR_ID, iat=now, exp=now + 30 * 86400, sequence=1
    )
    statuses = status_list.StatusList.new(status_size, bits=2)
    world = World(operator, issuer, holder, ISSUER_ID, STATUS_URI, trust_list, statuses, "", now)
    return replace(world, status_token=_sign_status(world, statuses, now=now, ttl=ttl))


def _sign_status(world: World, statuses: status_list.StatusList, *, now: int, ttl: int) -> str:
    return status_list.sign_status_list_token(
        statuses, signer=world.issuer, sub=world.status_uri, iss=world.issuer_id, iat=now, exp=now + 86400, ttl=ttl
    )


def licence_claims(seed: int = 1) -> dict[str, Any]:
    """A realistic synthetic business licence (valid USCC, Chinese names), deterministic per seed."""
    return generate_business_licence(random.Random(seed), as_of=date(2026, 11, 1))


def issue_licence(
    world: World, claims: Mapping[str, Any], *, idx: int, now: int, valid_days: int = 365
) -> str:
    """Validate ``claims`` and issue a business licence SD-JWT VC bound to the world's holder key."""
    licence_type = get_type(BUSINESS_LICENCE)
    validate_claims(licence_type.vct, claims)
    return sd_jwt_vc.issue_vc(
        claims,
        vct=licence_type.vct,
        issuer=world.issuer_id,
        signer=world.issuer,
        disclosable=licence_type.disclosable_paths(claims),
        holder_jwk=world.holder.public_jwk,
        status=(idx, world.status_uri),
        iat=now,
        exp=now + valid_days * 86400,
    )


def set_status(world: World, idx: int, value: int, *, now: int, ttl: int = 300) -> World:
    """The world after setting entry ``idx`` to ``value`` and re-signing the status list token."""
    statuses = world.statuses.with_status(idx, value)
    return replace(world, statuses=statuses, status_token=_sign_status(world, statuses, now=now, ttl=ttl))
