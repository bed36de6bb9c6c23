"""Benchmarks (a) and (b): verifying a three-claim offline presentation, against its floor and the
IETF reference implementation.

What is timed, per call, on a fresh presentation each round (prepared outside the timed region):

* ``floor``: the two signatures no verifier can skip, with bare ``cryptography``: ES256 verify of the
  Issuer-signed JWT with the issuer's already imported key, import of the holder key from its JWK
  coordinates (``ec.EllipticCurvePublicNumbers(x, y, SECP256R1()).public_key()``, integers decoded
  beforehand), ES256 verify of the KB-JWT. DER signatures are prepared beforehand too, so the floor is
  a little lower than any JWS verifier can go (the raw-to-DER conversion is left out of it).
* ``Verifier.verify``: :meth:`verifier.sdk.Verifier.verify` on the SD-JWT+KB text, end to end: format,
  trust list lookup, issuer signature, Disclosure digests, validity period, key binding (signature,
  ``aud``, freshness, ``sd_hash``), status (a cached 100,000-entry list), policy and **replay**: the
  real :class:`~verifier.sdk.MemoryReplayStore` remembers every presentation, which is why each round
  gets a presentation never seen before (checked: the store holds one entry per verification).
* ``verify_vc``: :func:`credentials.sd_jwt_vc.verify_vc` alone with the trust list's resolver and the
  offline key binding policy (no status, policy or replay).
* ``reference``: the IETF reference implementation (PyPI ``sd-jwt``, ``SDJWTVerifier``) verifying the
  same presentation with the expected ``aud`` and ``nonce`` and returning the processed claims; its
  issuer key callback returns a jwcrypto key imported beforehand (as our trust list holds imported
  keys). It does less: no ``typ``, time, status, trust-list or replay checks.

The four alternate in blocks of calls (:func:`bench.timing.interleaved`), so machine load affects
them alike.

Optimisation record (2026-11-22, the machine of bench/RESULTS.md; each line adds one change to the
one above, measured with this benchmark and bench/issuance.py; medians; ratios to the floor and to
one bare ES256 signing):

===========================================  ===============  =========  ==============  ==============
state                                        Verifier.verify  verify_vc  issue_vc        present
===========================================  ===============  =========  ==============  ==============
original                                      281.7 µs 2.09x   250.8 µs  145.9 µs 6.96x  165.6 µs 7.90x
+ b64u_decode last-character check (jwk.py)   268.4 µs 1.99x   237.8 µs  143.3 µs 6.83x  150.7 µs 7.18x
+ one cached JSONDecoder (jws.loads)          250.2 µs 1.86x   220.2 µs  139.5 µs 6.67x  126.9 µs 6.06x
+ ES256 with cryptography directly (jws.py)   242.9 µs 1.80x   214.2 µs  140.7 µs 6.72x  126.3 µs 6.03x
+ one cached JSONEncoder (jws.dumps), parse   241.7 µs 1.80x   212.7 µs  131.0 µs 6.24x  124.7 µs 5.94x
+ sd_jwt.py fast paths (see below)            239.3 µs 1.77x   211.0 µs  100.2 µs 4.78x  115.0 µs 5.48x
+ issuer identifier memo (sd_jwt_vc.py)       235.9 µs 1.75x   207.3 µs   94.7 µs 4.52x  115.2 µs 5.50x
+ shared CheckResult values (sdk.py)          230.6 µs 1.71x   206.9 µs   94.7 µs 4.51x  115.5 µs 5.51x
===========================================  ===============  =========  ==============  ==============

sd_jwt.py fast paths: scalars skip the recursive call in the payload walk and in issue(); issue() imports
the cnf key through the cache verification already used and keeps only the text and digest of each
Disclosure; present() reuses the digests it computed instead of hashing every Disclosure again.

Measured and left alone: the trust list resolver closure made per verification (0.1 µs), the
:class:`~credentials.trace.CheckTrace` steps (about 2.6 µs for the 12 steps of a verification).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from bench.fixtures import NOW, STATUS_IDX, Scenario
from bench.timing import interleaved
from credentials import jws, qr
from credentials.sd_jwt import KeyBindingPolicy, SdJwt
from credentials.sd_jwt_vc import verify_vc
from keys.jwk import b64u_decode

__all__ = ["run"]

_ECDSA = ec.ECDSA(hashes.SHA256())
_P256 = ec.SECP256R1()


def _der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def _floor_inputs(presentation: str) -> tuple[bytes, bytes, bytes, bytes, int, int]:
    sd = SdJwt.parse(presentation)
    issuer_jwt, kb_jwt = jws.parse(sd.issuer_jwt), jws.parse(sd.kb_jwt or "")
    jwk = issuer_jwt.payload["cnf"]["jwk"]
    x, y = (int.from_bytes(b64u_decode(jwk[c]), "big") for c in ("x", "y"))
    return (
        issuer_jwt.signing_input,
        _der(issuer_jwt.signature),
        kb_jwt.signing_input,
        _der(kb_jwt.signature),
        x,
        y,
    )


def _reference_verifier(issuer_public_jwk: dict[str, Any]) -> Any:
    """``(presentation, nonce) -> claims`` with the reference implementation, or None if not installed."""
    try:
        from jwcrypto.jwk import JWK
        from sd_jwt.verifier import SDJWTVerifier
    except ImportError:
        return None
    issuer_key = JWK(**issuer_public_jwk)

    def get_issuer_key(iss: str, header: dict[str, Any]) -> Any:
        return issuer_key

    def verify(presentation: str, nonce: str) -> Any:
        return SDJWTVerifier(
            presentation, get_issuer_key, expected_aud=qr.OFFLINE_AUDIENCE, expected_nonce=nonce
        ).get_verified_payload()

    return verify


def run(*, repeats: int = 1500, warmup: int = 20) -> dict[str, Any]:
    """Run benchmarks (a) and (b); returns their figures and what was measured."""
    scenario = Scenario()
    rounds = warmup + repeats
    presentations = scenario.presentations(rounds + 1)
    verifier = scenario.verifier()
    probe = verifier.verify(presentations[-1])  # fills the trust and status caches
    if not (probe.status == "valid" and probe.holder_bound):
        raise RuntimeError("the benchmark presentation does not verify as valid and holder-bound")

    trusted = verifier.trust.current().trust_list
    resolver = trusted.resolver()
    issuer_key = trusted.issuer(scenario.world.issuer_id).key(scenario.world.issuer.kid)
    kb_policy = KeyBindingPolicy(nonce=None, aud=qr.OFFLINE_AUDIENCE, max_age=qr.OFFLINE_FRESHNESS, skew=60)
    moment = NOW + 30
    floors = [_floor_inputs(p) for p in presentations]
    nonces = [jws.parse(SdJwt.parse(p).kb_jwt or "").payload["nonce"] for p in presentations]

    def floor(i: int) -> None:
        m1, s1, m2, s2, x, y = floors[i]
        issuer_key.verify(s1, m1, _ECDSA)
        holder_key = ec.EllipticCurvePublicNumbers(x, y, _P256).public_key()
        holder_key.verify(s2, m2, _ECDSA)

    def sdk(i: int) -> None:
        verifier.verify(presentations[i])

    def core(i: int) -> None:
        verify_vc(presentations[i], resolve_issuer_key=resolver, now=moment, kb=kb_policy)

    # The code a counter scans most: USCC, name and legal representative, always visible, no Disclosure.
    qr_view = scenario.presentations(rounds + 1, seed=11, disclose=())
    qr_verifier = scenario.verifier()
    qr_verifier.verify(qr_view[-1])

    def sdk_qr_view(i: int) -> None:
        qr_verifier.verify(qr_view[i])

    fns = {"floor": floor, "Verifier.verify": sdk, "verify_vc": core, "Verifier.verify, QR default view": sdk_qr_view}
    reference = _reference_verifier(dict(scenario.world.issuer.public_jwk))
    if reference is not None:
        ours = verify_vc(presentations[0], resolve_issuer_key=resolver, now=moment, kb=kb_policy).claims
        if reference(presentations[0], nonces[0]) != ours:
            raise RuntimeError("the reference implementation and ours disagree on the processed claims")
        fns["reference"] = lambda i: reference(presentations[i], nonces[i])

    results = interleaved(fns, repeats=repeats, warmup=warmup)
    # Every verification passed the replay check with a presentation of its own: one entry each.
    remembered = len(verifier.replay)  # type: ignore[arg-type]
    if remembered != rounds + 1:
        raise RuntimeError(f"the replay store holds {remembered} entries, expected {rounds + 1}")

    sd = SdJwt.parse(presentations[0])
    return {
        "stats": results,
        "disclose": [list(p) for p in scenario.disclose],
        "disclosures": len(sd.disclosures),
        "presentation_chars": len(presentations[0]),
        "status_idx": STATUS_IDX,
        "reference_available": reference is not None,
    }
