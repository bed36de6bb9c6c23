"""Benchmark (c): issuing one business licence and presenting three of its claims with key binding,
each as a ratio to one bare ES256 signature.

Timed per call, interleaved in blocks:

* ``ES256 sign``: ``private_key.sign(data, ECDSA(SHA256()))`` with bare ``cryptography`` over the
  signing input of an issued licence (about the size the issuer signs), DER output as it comes;
* ``issue_vc``: :func:`credentials.sd_jwt_vc.issue_vc` with the business licence type's ``sd_paths``,
  the holder's ``cnf.jwk``, a status reference, fresh 128-bit salts from the OS; one ES256 signature;
* ``issue_licence``: :func:`elicence.scenario.issue_licence`, the same plus JSON Schema validation of
  the claims (:func:`schemas.registry.validate_claims`);
* ``present``: :func:`credentials.sd_jwt.present` revealing the same three claims as benchmark (a)
  with a KB-JWT (``aud``, ``nonce``, ``sd_hash``), one ES256 signature by the holder.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bench.fixtures import NOW, STATUS_IDX, Scenario
from bench.timing import interleaved
from credentials import jws, qr, sd_jwt, sd_jwt_vc
from credentials.sd_jwt import SdJwt
from elicence.scenario import issue_licence

__all__ = ["run"]


def run(*, repeats: int = 600, warmup: int = 10) -> dict[str, Any]:
    """Run benchmark (c); returns its figures."""
    scenario = Scenario()
    world, claims, licence_type = scenario.world, scenario.claims, scenario.licence_type
    credential = scenario.credential
    signing_input = jws.parse(SdJwt.parse(credential).issuer_jwt).signing_input
    issuer_key = world.issuer.private_key
    ecdsa = ec.ECDSA(hashes.SHA256())
    holder_jwk = world.holder.public_jwk
    nonces = [f"n{i:08d}" for i in range(warmup + repeats)]

    def sign(i: int) -> None:
        issuer_key.sign(signing_input, ecdsa)  # type: ignore[call-arg]

    def issue(i: int) -> None:
        sd_jwt_vc.issue_vc(
            claims,
            vct=licence_type.vct,
            issuer=world.issuer_id,
            signer=world.issuer,
            disclosable=licence_type.sd_paths,
            holder_jwk=holder_jwk,
            status=(STATUS_IDX, world.status_uri),
            iat=NOW,
            exp=NOW + 365 * 86400,
        )

    def issue_validated(i: int) -> None:
        issue_licence(world, claims, idx=STATUS_IDX, now=NOW)

    def present(i: int) -> None:
        sd_jwt.present(
            credential,
            disclose=scenario.disclose,
            holder_signer=world.holder,
            aud=qr.OFFLINE_AUDIENCE,
            nonce=nonces[i],
            now=NOW,
        )

    results = interleaved(
        {"ES256 sign": sign, "issue_vc": issue, "issue_licence": issue_validated, "present": present},
        repeats=repeats,
        warmup=warmup,
    )
    issued = SdJwt.parse(credential)
    return {
        "stats": results,
        "disclosures_issued": len(issued.disclosures),
        "credential_chars": len(credential),
        "signing_input_bytes": len(signing_input),
    }
