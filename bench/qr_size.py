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
input); without files, generated sample presentations are measured. ``--json`` prints the dicts.

Last results (zlib 1.2.13; the sample licence of SAMPLE_CLAIMS, issuer payload as credentials/
sd_jwt.py writes it, 8 selectively disclosable claims, ES256 unless said; ECDSA signatures are
random, so deflated sizes move by a few bytes between runs). Deflated bytes / QR version at M:

=====================================  =====  =========  ========  ==========  ===========
presentation                           text   raw text   plain     packed      EL1 (packed
                                       bytes  in QR      deflate   no dict     + dict, raw)
=====================================  =====  =========  ========  ==========  ===========
default view (0 disclosures)           1665   v34        1184 v29  1025 v26    863 v24
same, EdDSA                            1603   v33        1148 v28   991 v26    824 v23
+ entity_type, domicile disclosed      1904   v36        1352 v31  1186 v29    957 v25
everything disclosed                   2792   no fit     1889 v37  1664 v34   1179 v29
nothing selectively disclosable        2003   v38        1333 v31  1132 v28    674 v21
=====================================  =====  =========  ========  ==========  ===========

zlib framing (RFC 1950) costs 6 bytes over raw DEFLATE (2-byte header, 4-byte Adler-32) in every
case. The dictionary gives 15% on the default view; the sample's Chinese values share phrases
with the dictionary on purpose (the standard business-scope sentences), so the gain with many
disclosed values (29%) is an upper bound: measure real credentials with this script.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import zlib
from collections.abc import Sequence
from typing import Any

from credentials import jws, qr
from credentials.base45 import b45encode
from credentials.errors import PayloadTooLarge
from keys.jwk import b64u_encode
from keys.signer import SoftwareSigner

__all__ = ["size_report", "sample_presentation", "main"]

#: A sample business licence (营业执照) following schemas/types/business-licence.
SAMPLE_CLAIMS: dict[str, Any] = {
    "uscc": "91310000MA1FL7JX8Q",
    "name": "上海示例信息科技有限公司",
    "legal_representative": "张三",
    "entity_type": "有限责任公司（自然人投资或控股）",
    "registered_capital": {"amount": "100", "currency": "CNY"},
    "establishment_date": "2019-03-15",
    "business_term": {"from": "2019-03-15", "to": None, "long_term": True},
    "business_scope": "一般项目：技术服务、技术开发、技术咨询、技术交流、技术转让、技术推广；软件开发；"
    "信息系统集成服务。（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）",
    "domicile": "上海市浦东新区张江路100号5幢301室",
    "registration_authority": "上海市浦东新区市场监督管理局",
    "issue_date": "2024-06-01",
}

#: The selectively disclosable claims of the type metadata (uscc, name, legal_representative are not).
SAMPLE_DISCLOSABLE = tuple(k for k in SAMPLE_CLAIMS if k not in ("uscc", "name", "legal_representative"))

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
    alg: str = "ES256",
    disclose: Sequence[str] = (),
    selectively_disclosable: Sequence[str] = SAMPLE_DISCLOSABLE,
    seed: int = 0,
) -> str:
    """A hand-built SD-JWT+KB of :data:`SAMPLE_CLAIMS`, shaped as credentials/sd_jwt.py issues and
    presents (claims, then ``_sd``, ``_sd_alg``, ``cnf``): a stand-in to measure sizes with."""
    rnd = random.Random(seed)
    issuer, holder = SoftwareSigner.generate(alg), SoftwareSigner.generate(alg)
    disclosures = {
        name: b64u_encode(jws.dumps([b64u_encode(rnd.randbytes(16)), name, SAMPLE_CLAIMS[name]]))
        for name in selectively_disclosable
    }
    payload: dict[str, Any] = {
        "iss": "https://scjg.sh.gov.cn/elicence",
        "iat": 1767225600,
        "exp": 1798761600,
        "vct": "https://elicence.cn/vct/business-licence",
        "status": {
            "status_list": {"idx": rnd.randrange(100_000), "uri": "https://scjg.sh.gov.cn/elicence/status/7"}
        },
    }
    payload.update({k: v for k, v in SAMPLE_CLAIMS.items() if k not in disclosures})
    if disclosures:
        digests = (b64u_encode(hashlib.sha256(d.encode()).digest()) for d in disclosures.values())
        payload["_sd"] = sorted(digests)
    payload["_sd_alg"] = "sha-256"
    payload["cnf"] = {"jwk": dict(holder.public_jwk)}
    sd_jwt = jws.sign(payload, issuer, typ="dc+sd-jwt") + "~"
    sd_jwt += "".join(disclosures[n] + "~" for n in disclose)
    kb = jws.sign(
        {
            "iat": 1767229200,
            "aud": "https://window.example.gov.cn",
            "nonce": b64u_encode(rnd.randbytes(16)),
            "sd_hash": b64u_encode(hashlib.sha256(sd_jwt.encode("ascii")).digest()),
        },
        holder,
        typ="kb+jwt",
        include_kid=False,
    )
    return sd_jwt + kb


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
        inputs = [
            ("sample ES256, default view (8 digests, 0 disclosed)", sample_presentation()),
            ("sample EdDSA, default view", sample_presentation(alg="EdDSA")),
            (
                "sample ES256, + entity_type, domicile",
                sample_presentation(disclose=("entity_type", "domicile")),
            ),
            ("sample ES256, everything disclosed", sample_presentation(disclose=SAMPLE_DISCLOSABLE)),
            (
                "sample ES256, nothing selectively disclosable",
                sample_presentation(selectively_disclosable=()),
            ),
        ]
    reports = {name: size_report(text) for name, text in inputs}
    if args.json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(_table(name, r) for name, r in reports.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
