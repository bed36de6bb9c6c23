"""Benchmark (e): the offline QR code of a real business licence presentation.

* Sizes: :func:`bench.qr_size.size_report` (raw text, plain and packed DEFLATE with and without the
  EL1 dictionary, Base45 characters, QR version at level M) for three presentations of the licence
  issued by :mod:`elicence.scenario`, all key-bound for the offline audience: the three claims of
  benchmark (a), the default view (no Disclosure) and every disclosable claim.
* Times, for the three-claim presentation: ``EL1 encode`` (:func:`credentials.qr.encode_payload`),
  ``render PNG`` (:func:`credentials.qr.render_png`, 8 pixels per module, 4 modules of quiet zone,
  level M), ``decode PNG`` (:func:`credentials.qr.decode_image`: PNG decoding by Pillow and QR
  reading by zxing-cpp) and ``EL1 decode`` (:func:`credentials.qr.decode_payload`).
"""

from __future__ import annotations

from typing import Any

from bench.fixtures import NOW, STATUS_IDX, Scenario
from bench.qr_size import size_report
from bench.timing import measure
from credentials import qr, sd_jwt, sd_jwt_vc
from keys.signer import SoftwareSigner

#: The claims the offline QR goal names: USCC, name, legal representative (validity is exp + status).
QR_GOAL_CLAIMS = ("uscc", "name", "legal_representative")


def _model_choices(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """The QR goal's view under each data-model choice tried, measured in this run.

    ``flat``: the eight register fields as top-level selectively disclosable claims (8 digests in
    every code); ``nested``: the shipped model, one recursive ``registration`` Disclosure (1 digest);
    ``nothing disclosable``: every claim in the clear (no digests, but the whole register in every
    code). Each with an ES256 and an EdDSA holder key.
    """
    world, claims = scenario.world, scenario.claims
    flat = {k: v for k, v in claims.items() if k != "registration"} | dict(claims["registration"])
    models = {
        "flat, 8 top-level digests": (flat, [(k,) for k in claims["registration"]]),
        "nested registration, 1 digest (shipped)": (claims, scenario.licence_type.disclosable_paths(claims)),
        "nothing selectively disclosable": (claims, []),
    }
    holders = {"ES256": world.holder, "EdDSA": SoftwareSigner.generate("EdDSA")}
    out: dict[str, dict[str, Any]] = {}
    for model, (model_claims, paths) in models.items():
        for alg, holder in holders.items():
            credential = sd_jwt_vc.issue_vc(
                model_claims, vct=scenario.licence_type.vct, issuer=world.issuer_id, signer=world.issuer,
                disclosable=paths, holder_jwk=holder.public_jwk, status=(STATUS_IDX, world.status_uri),
                iat=NOW, exp=NOW + 365 * 86400,
            )
            el1 = qr.present_offline(credential, disclose=QR_GOAL_CLAIMS, holder_signer=holder, now=NOW, nonce="bench-qr-12")
            info = qr.qr_info(el1, "M")
            out[f"{model}, {alg} holder key"] = {"chars": info.chars, "bytes": info.bytes, "version": info.version}
    return out

__all__ = ["run"]


def run(*, repeats: int = 15, codec_repeats: int = 300) -> dict[str, Any]:
    """Run benchmark (e); returns the size reports and the timings."""
    scenario = Scenario()
    credential, holder = scenario.credential, scenario.world.holder

    def presentation(disclose: Any) -> str:
        return sd_jwt.present(
            credential, disclose=disclose, holder_signer=holder, aud=qr.OFFLINE_AUDIENCE, nonce="bench-qr", now=NOW
        )

    three = presentation(scenario.disclose)
    reports = {
        "three claims (benchmark a)": size_report(three),
        "default view (no Disclosure)": size_report(presentation(())),
        "every disclosable claim": size_report(presentation(scenario.licence_type.sd_paths)),
    }
    el1 = qr.encode_payload(three)
    png = qr.render_png(el1)
    if qr.decode_image(png) != el1 or qr.decode_payload(el1) != three:
        raise RuntimeError("the rendered QR code does not read back as the presentation")
    info = qr.qr_info(el1, "M")
    timings = {
        "EL1 encode": measure(lambda i: qr.encode_payload(three), repeats=codec_repeats),
        "render PNG": measure(lambda i: qr.render_png(el1), repeats=repeats, warmup=1),
        "decode PNG (zxing-cpp)": measure(lambda i: qr.decode_image(png), repeats=repeats, warmup=1),
        "EL1 decode": measure(lambda i: qr.decode_payload(el1), repeats=codec_repeats),
    }
    return {
        "choices": _model_choices(scenario),
        "reports": reports,
        "stats": timings,
        "el1_chars": len(el1),
        "qr_version": info.version,
        "qr_modules": info.modules,
        "png_bytes": len(png),
        "png_pixels": (info.modules + 8) * 8,
    }
