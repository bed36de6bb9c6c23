"""The inputs every benchmark shares: one scenario world, one business licence, its presentations.

Built only from the public library (:mod:`elicence.scenario`, :mod:`credentials`, :mod:`verifier.sdk`)
at a fixed time :data:`NOW`; nothing here reads the wall clock, so figures do not depend on the date
the benchmarks run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from credentials import qr, sd_jwt
from credentials.sd_jwt import ClaimPath
from elicence.scenario import BUSINESS_LICENCE, World, build_world, issue_licence, licence_claims
from keys.jwk import b64u_encode
from schemas.registry import get_type
from verifier.sdk import MemoryReplayStore, StatusSource, TrustListSource, Verifier

__all__ = ["NOW", "STATUS_IDX", "Scenario", "three_claims"]

#: The scenario's clock: 2026-11-18T11:06:40Z. Verification runs 30 s later.
NOW = 1_795_000_000
#: The licence's index in the status list (valid).
STATUS_IDX = 4242


def three_claims(sd_paths: Sequence[ClaimPath]) -> tuple[ClaimPath, ...]:
    """The first three selectively disclosable *leaf* claims of a type, in metadata order.

    A leaf is a path no other disclosable path extends; presenting it also presents the Disclosures
    of its disclosable ancestors (RFC 9901 s7.2), so the presentation may carry more than three.
    """
    leaves = [p for p in sd_paths if not any(len(q) > len(p) and q[: len(p)] == p for q in sd_paths)]
    if len(leaves) < 3:
        raise ValueError("the business licence type has fewer than three disclosable leaf claims")
    return tuple(leaves[:3])


@dataclass
class Scenario:
    """One world (trust list, issuer, holder, 100,000-entry status list) and one issued licence."""

    seed: int = 1

    @cached_property
    def world(self) -> World:
        return build_world(now=NOW)

    @cached_property
    def claims(self) -> dict:
        return licence_claims(self.seed)

    @cached_property
    def licence_type(self):
        return get_type(BUSINESS_LICENCE)

    @cached_property
    def disclose(self) -> tuple[ClaimPath, ...]:
        return three_claims(self.licence_type.sd_paths)

    @cached_property
    def credential(self) -> str:
        return issue_licence(self.world, self.claims, idx=STATUS_IDX, now=NOW)

    def presentations(self, n: int, *, seed: int = 7, disclose: Sequence[ClaimPath] | None = None) -> list[str]:
        """``n`` offline presentations (the three claims unless ``disclose``), each with its own KB-JWT nonce."""
        rnd = random.Random(seed)
        return [
            sd_jwt.present(
                self.credential,
                disclose=self.disclose if disclose is None else disclose,
                holder_signer=self.world.holder,
                aud=qr.OFFLINE_AUDIENCE,
                nonce=b64u_encode(rnd.randbytes(12)),
                now=NOW,
            )
            for _ in range(n)
        ]

    def verifier(self) -> Verifier:
        """An offline verifier as a department runs it: pinned trust list, cached status list, replay cache.

        Its clock is fixed at ``NOW + 30``; the trust list and status list are served from memory.
        """
        world = self.world

        def clock() -> float:
            return NOW + 30

        return Verifier(
            trust=TrustListSource.from_fetch(lambda: world.trust_list, anchor=world.operator.public_jwk, clock=clock),
            status=StatusSource(lambda uri: world.status_token, clock=clock),
            replay=MemoryReplayStore(),
            clock=clock,
        )
