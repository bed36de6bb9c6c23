"""Size study of the offline QR payload (credentials/qr.py, format ``EL1:``).

For a presentation (an SD-JWT+KB, RFC 9901) :func:`size_report` gives the raw text size, and for
each way of compressing it the DEFLATE output in bytes, the Base45 characters of the QR text (prefix
included) and the QR version and modules per side at error correction level M:

* ``raw_text``           the SD-JWT text as it is, in a byte-mode QR (no compression at all);
* ``plain_raw``          the text deflated (raw DEFLATE, no dictionary), Base45;
* ``plain_raw_dict``     the same with the EL1 preset dictionary;
* ``packed_zlib``        the binary packing, zlib stream (RFC 1950 header + Adler-32), no dictionary;
* ``packed_raw``         the binary packing, raw DEFLATE, no dictionary;
* ``packed_zlib_dict``   the binary packing, zlib stream, with the dictionary;
* ``packed_raw_dict``    the binary packing, raw DEFLATE, with the dictionary: this is ``EL1:``.

Run ``python -m bench.qr_size [FILE ...]``: each FILE holds one presentation (``-`` for standard
input); without files, real presentations are measured: a synthetic licence (``licence_claims(1)``)
issued by :func:`elicence.scenario.issue_licence` from the business licence type, presented with
:func:`credentials.qr.present_offline` (key-bound, ``uscc``, ``name``, ``legal_representative``
shown, plus the claims named). ``--json`` prints the dicts.

Last results (zlib 1.2.13, ES256 issuer; ECDSA signatures are random, so deflated sizes move by a
few bytes between runs). The register fields are members of ``registration``, one top-level digest
with a recursive Disclosure per member (schemas/README.md). Deflated bytes / QR version at M:

=========================================  =====  ========  ========  ========  ===========
presentation                               text   raw text  plain     packed    EL1 (packed
                                           bytes  in QR     deflate   no dict   + dict, raw)
=========================================  =====  ========  ========  ========  ===========
default view (0 disclosures)               1216   v29       841 v24   757 v23   554 v19
same, EdDSA holder key                     1153   v28       810 v23   732 v22   508 v18
+ registration.business_scope (2 discl.)   2155   v39      1463 v32  1331 v31  1017 v26
+ registration.entity_type, .domicile (3)  2028   v38      1402 v31  1264 v30  1010 v26
everything disclosed (9 disclosures)       2930   no fit   1925 v37  1726 v35  1279 v30
nothing selectively disclosable            2032   v38      1313 v30  1132 v28   724 v22
=========================================  =====  ========  ========  ========  ===========

Before the nesting, with the eight register fields as top-level digests, the same default view was
v24 (838 bytes median over 40 synthetic licences; 869 bytes in the measurement that led to the
change); it is now v18-v19 (545 median). Disclosing a register field costs about 70 bytes more than
before (the ``registration`` Disclosure with its eight digests): business scope 960 -> 1026 median,
v25 -> v26-v27. zlib framing (RFC 1950) costs 6 bytes over raw DEFLATE in every case. The
dictionary gives 27% on the default view (757 -> 554): the signed payload's JSON is mostly fixed
text; on the plain (base64url) text it gives nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import zlib
from collections.abc import Sequence
from typing import Any

from credentials import qr, sd_jwt_vc
from credentials.base45 import b45encode
from credentials.errors import PayloadTooLarge
from elicence.scenario import BUSINESS_LICENCE, build_world, issue_licence, licence_claims
from keys.jwk import b64u_encode
from schemas.registry import get_type

__all__ = ["size_report", "sample_presentation", "main"]

#: The scenario's clock (no wall clock: figures do not depend on the day the script runs).
NOW = 1_795_000_000
#: Claim paths always shown (the type's default QR view) and the views measured besides it.
DEFAULT_VIEW: tuple[tuple[str, ...], ...] = (("uscc",), ("name",), ("legal_representative",))
_R = "registration"
VIEWS: dict[str, tuple[tuple[str, ...], ...]] = {
    "default view (0 disclosures)": (),
    "+ registration.business_scope": ((_R, "business_scope"),),
    "+ registration.entity_type, .domicile": ((_R, "entity_type"), (_R, "domicile")),
    "everything disclosed": tuple(
        (_R, m) for m in ("entity_type", "registered_capital", "establishment_date", "business_term",
                          "business_scope", "domicile", "registration_authority", "issue_date")
    ),
}


def _deflate(data: bytes, *, wbits: int, zdict: bytes | None) -> bytes:
    if zdict is None:
        c = zlib.compressobj(9, zlib.DEFLATED, wbits, 9)
    else:
        c = zlib.compressobj(9, zlib.DEFLATED, wbits, 9, zlib.Z_DEFAULT_STRATEGY, zdict)
    return c.compress(data) + c.flush()


def _qr_size(text: str) -> dict[str, int | None]:
    """QR version and modules at level M; None for both when no QR code holds the text."""
    try:
        info = qr.qr_info(text, "M")
    except PayloadTooLarge:
        return {"qr_version": None, "qr_modules": None}
    return {"qr_version": info.version, "qr_modules": info.modules}


def _variant(deflated: bytes) -> dict[str, int | None]:
    text = qr.PREFIX + b45encode(deflated)
    return {"deflated_bytes": len(deflated), "base45_chars": len(text), **_qr_size(text)}


def size_report(presentation: str) -> dict[str, Any]:
    """Sizes of ``presentation`` under each compression variant (see the module docstring)."""
    text = presentation.encode("utf-8")
    plain = bytes([0]) + text
    packed = qr._pack(presentation)
    el1 = qr.encode_payload(presentation)
    assert qr.decode_payload(el1) == presentation
    variants = {
        "plain_raw": _variant(_deflate(plain, wbits=-15, zdict=None)),
        "plain_raw_dict": _variant(_deflate(plain, wbits=-15, zdict=qr.DICTIONARY)),
        "packed_zlib": _variant(_deflate(packed, wbits=15, zdict=None)),
        "packed_raw": _variant(_deflate(packed, wbits=-15, zdict=None)),
        "packed_zlib_dict": _variant(_deflate(packed, wbits=15, zdict=qr.DICTIONARY)),
        "packed_raw_dict": _variant(_deflate(packed, wbits=-15, zdict=qr.DICTIONARY)),
    }
    return {
        "text_bytes": len(text),
        "packing_mode": "packed" if packed[0] != 0 else "plain",
        "packed_bytes": len(packed),
        "el1_chars": len(el1),
        "raw_text": {"chars": len(presentation), **_qr_size(presentation)},
        "variants": variants,
    }


def sample_presentation(
    *,
    holder_alg: str = "ES256",
    disclose: Sequence[Sequence[str]] = (),
    seed: int = 1,
    selectively_disclosable: bool = True,
) -> str:
    """A real offline presentation: a synthetic licence issued as :mod:`elicence.scenario` issues it,
    presented with :func:`credentials.qr.present_offline` showing the default view plus ``disclose``.

    With ``selectively_disclosable=False`` the same claims are issued with no Disclosure at all (a
    reference point: every claim in the signed payload).
    """
    world = build_world(now=NOW, status_size=1000, holder_alg=holder_alg)
    claims = licence_claims(seed)
    if selectively_disclosable:
        credential = issue_licence(world, claims, idx=737, now=NOW)
    else:
        credential = sd_jwt_vc.issue_vc(
            claims, vct=get_type(BUSINESS_LICENCE).vct, issuer=world.issuer_id, signer=world.issuer,
            holder_jwk=world.holder.public_jwk, status=(737, world.status_uri), iat=NOW, exp=NOW + 365 * 86400,
        )
    nonce = b64u_encode(random.Random(seed).randbytes(12))
    text = qr.present_offline(
        credential, disclose=DEFAULT_VIEW + tuple(map(tuple, disclose)), holder_signer=world.holder,
        now=NOW + 5, nonce=nonce,
    )
    return qr.decode_payload(text)


def _qr_cell(entry: dict[str, Any]) -> str:
    if entry["qr_version"] is None:
        return "none fits"
    return "v%d %d" % (entry["qr_version"], entry["qr_modules"])


def _table(name: str, report: dict[str, Any]) -> str:
    raw = report["raw_text"]
    lines = [
        f"{name}: {report['text_bytes']} bytes of text, "
        f"{report['packing_mode']} packing {report['packed_bytes']} bytes",
        f"  {'variant':<18} {'deflated':>8} {'chars':>6} {'QR (M)':>9}",
        f"  {'raw_text':<18} {'-':>8} {raw['chars']:>6} {_qr_cell(raw):>9}",
    ]
    for key, v in report["variants"].items():
        lines.append(f"  {key:<18} {v['deflated_bytes']:>8} {v['base45_chars']:>6} {_qr_cell(v):>9}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the size study for the presentations in the files given, or for samples."""
    parser = argparse.ArgumentParser(prog="python -m bench.qr_size", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="files holding one presentation each ('-' for stdin)")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    args = parser.parse_args(argv)
    inputs: list[tuple[str, str]] = []
    for path in args.files:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        inputs.append((path, text.strip()))
    if not inputs:
        inputs = [(f"{name}, ES256", sample_presentation(disclose=view)) for name, view in VIEWS.items()]
        inputs.insert(1, ("default view, EdDSA holder key", sample_presentation(holder_alg="EdDSA")))
        inputs.append(("nothing selectively disclosable", sample_presentation(selectively_disclosable=False)))
    reports = {name: size_report(text) for name, text in inputs}
    if args.json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(_table(name, r) for name, r in reports.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
