"""Credentials issued in bulk through a real :class:`~issuer.service.IssuerService`, in process: the
authority's operator imports synthetic records and makes one offer per record in one transaction, then a
wallet redeems each offer over the OpenID4VCI steps of the service (token with the PIN, nonce, credential
with a fresh key proof, :func:`bench.issuer.redeem_offer`, as the benchmark prepares its requests). No HTTP: used to fill a database
quickly for the fault and reconciliation tests, with every row, status index and audit record real."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from bench.issuer import redeem_offer
from issuer.service import IssuerService, OfferCreated
from keys.signer import SoftwareSigner

LICENCE = "business-licence"


def issue_licences(service: IssuerService, slug: str, usccs: Sequence[str], *, threads: int = 8) -> list[str]:
    """Offer and issue a licence for each record, ``threads`` wallets at a time (each request waits mostly
    on the database); returns the issued credentials (SD-JWT VC texts), in the order of ``usccs``."""
    holders = [SoftwareSigner.generate("ES256") for _ in range(4)]

    def redeem(i: int, offer: OfferCreated) -> str:
        token, proof = redeem_offer(service, slug, offer, holders[i % len(holders)])
        answer = service.credential(slug, authorization=f"Bearer {token}",
                                    body={"credential_configuration_id": LICENCE, "proofs": {"jwt": [proof]}})
        return answer["credentials"][0]["credential"]

    offers = service.create_offers_bulk(slug, type_name=LICENCE, usccs=usccs, actor="test")
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(redeem, range(len(offers)), offers))
