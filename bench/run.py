"""Run every benchmark in one process and write bench/RESULTS.md: ``python -m bench.run`` (``make bench``).

The report names the machine, Python and library versions and the date, gives every figure measured
in this run (median, 10th and 90th percentile, minimum) and marks each goal MET or NOT MET with the
measured ratio. Nothing in it is copied from an earlier run. ``--quick`` runs fewer rounds (a smoke
test; its figures are noisier), ``--output`` writes elsewhere, ``--json`` also dumps the raw figures.

Benchmarks: (a)/(b) :mod:`bench.hotpath`, (c) :mod:`bench.issuance`, (d) :mod:`bench.status`,
(e) :mod:`bench.qr_codec` (sizes from :mod:`bench.qr_size`), (f) :mod:`bench.issuer` (the issuer service
under ``elicence serve --workers 2`` on SQLite and PostgreSQL, load from :mod:`bench.loadgen`), (g)
:mod:`bench.wallet` (the wallet's QR code: in process, through the service, and over HTTP), (h)
:mod:`bench.verifier` (counter scans through the verifier's HTTP API on two workers, at full and half
rate, and the online request round trip answered by the deployment's wallet), (i) :mod:`bench.system`
(issue 6 at scale on PostgreSQL: issuance end to end over HTTP, a status list of 2^20 entries published,
1,000,000 records issued in bulk with the database's size).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import hotpath, issuance, issuer, qr_codec, status, system, verifier, wallet
from bench.timing import Stats, fmt_ns

__all__ = ["main", "Goal"]

DEFAULT_OUTPUT = Path(__file__).with_name("RESULTS.md")
LIBRARIES = ("cryptography", "PyJWT", "sd-jwt", "jwcrypto", "qrcode", "pillow", "zxing-cpp", "jsonschema")


@dataclass(frozen=True)
class Goal:
    """A target: ``value`` compared with ``target`` by ``op`` (``<=``, ``>=`` or ``<``)."""

    name: str
    value: float
    op: str
    target: float
    shown: str
    unit: str = "x"

    @property
    def met(self) -> bool:
        if self.op == "<=":
            return self.value <= self.target
        if self.op == ">=":
            return self.value >= self.target
        return self.value < self.target

    def row(self) -> str:
        verdict = "**MET**" if self.met else "**NOT MET**"
        return f"| {self.name} | {self.shown} | {self.op} {self.target:g}{self.unit} | {verdict} |"


# --------------------------------------------------------------------------------------------- machine


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _openssl() -> str:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        return backend.openssl_version_text()
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    return {
        "CPU": f"{_cpu()}, {os.cpu_count()} logical CPUs",
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OpenSSL (cryptography)": _openssl(),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "Libraries": ", ".join(f"{name} {_version(name)}" for name in LIBRARIES),
    }


# ---------------------------------------------------------------------------------------------- tables


def _stats_table(rows: Sequence[tuple[str, Stats]], base: Stats | None, base_name: str = "") -> list[str]:
    head = "| operation | median | p10 | p90 | min | n |" + (f" median / {base_name} |" if base else "")
    rule = "|---|---:|---:|---:|---:|---:|" + ("---:|" if base else "")
    lines = [head, rule]
    for name, s in rows:
        line = f"| {name} | {fmt_ns(s.median)} | {fmt_ns(s.p10)} | {fmt_ns(s.p90)} | {fmt_ns(s.min)} | {s.n} |"
        if base:
            line += f" {s.median / base.median:.2f}x |"
        lines.append(line)
    return lines


def _qr_cell(entry: dict[str, Any]) -> str:
    if entry["qr_version"] is None:
        return "does not fit"
    return f"v{entry['qr_version']} ({entry['qr_modules']}×{entry['qr_modules']})"


_VARIANTS = {
    "plain_raw": "text, raw DEFLATE",
    "plain_raw_dict": "text, raw DEFLATE + dictionary",
    "packed_zlib": "packed, zlib",
    "packed_raw": "packed, raw DEFLATE",
    "packed_zlib_dict": "packed, zlib + dictionary",
    "packed_raw_dict": "packed, raw DEFLATE + dictionary (**EL1**)",
}


def _size_table(name: str, report: dict[str, Any]) -> list[str]:
    raw = report["raw_text"]
    lines = [
        f"**{name}**: {report['text_bytes']} bytes of text; {report['packing_mode']} packing, "
        f"{report['packed_bytes']} bytes; EL1 text {report['el1_chars']} characters.",
        "",
        "| variant | deflated bytes | QR text chars | QR version at M |",
        "|---|---:|---:|---|",
        f"| raw SD-JWT text (byte mode) | – | {raw['chars']} | {_qr_cell(raw)} |",
    ]
    for key, label in _VARIANTS.items():
        v = report["variants"][key]
        lines.append(f"| {label} | {v['deflated_bytes']} | {v['base45_chars']} | {_qr_cell(v)} |")
    return lines


# ---------------------------------------------------------------------------------------------- report


def _section_hotpath(r: dict[str, Any]) -> tuple[list[str], list[Goal]]:
    s = r["stats"]
    floor, sdk, core = s["floor"], s["Verifier.verify"], s["verify_vc"]
    ratio = sdk.median / floor.median
    goals = [
        Goal("(a) `Verifier.verify` / two-signature floor", ratio, "<=", 1.5, f"{ratio:.2f}x"),
        Goal("(a) stretch: `Verifier.verify` / floor", ratio, "<=", 1.25, f"{ratio:.2f}x"),
    ]
    rows = [("floor: ES256 verify + holder JWK import + ES256 verify (bare `cryptography`)", floor),
            ("`Verifier.verify` (end to end, replay store included)", sdk),
            ("`verify_vc` alone", core),
            ("`Verifier.verify`, the QR default view (USCC, name, legal representative: no Disclosure)",
             s["Verifier.verify, QR default view"])]
    lines = [
        "## (a) Verifying a three-claim offline presentation, and (b) the reference implementation",
        "",
        f"Presentation: the scenario's business licence, claims {', '.join('/'.join(p) for p in r['disclose'])} "
        f"disclosed ({r['disclosures']} Disclosures with their parent), KB-JWT for `urn:elicence:offline`; "
        f"{r['presentation_chars']} characters. Each round verifies a presentation never seen before (prepared "
        "outside the timed region), so the real `MemoryReplayStore` accepts it; status comes from the cached "
        "100,000-entry list. See `bench/hotpath.py` for exactly what each line does.",
        "",
    ]
    if "reference" in s:
        ref = s["reference"]
        rows.append(("IETF reference implementation (`sd_jwt.verifier.SDJWTVerifier`)", ref))
        speedup = ref.median / sdk.median
        goals.append(Goal("(b) reference / `Verifier.verify`", speedup, ">=", 3, f"{speedup:.2f}x faster"))
        lines += _stats_table(rows, floor, "floor")
        bound = ref.median / floor.median
        lines += [
            "",
            f"Reference / `verify_vc`: {ref.median / core.median:.2f}x. The reference's median is {bound:.2f}x the "
            "two-signature floor, so no verifier that checks both signatures can be 3x faster than it on this "
            "machine; the part above the floor is "
            f"{fmt_ns(ref.median - floor.median)} for the reference and {fmt_ns(sdk.median - floor.median)} for "
            f"`Verifier.verify` ({(ref.median - floor.median) / (sdk.median - floor.median):.1f}x less), although "
            "the reference checks less (no `typ`, validity period, trust list, status or replay).",
        ]
    else:
        lines += _stats_table(rows, floor, "floor")
        lines += ["", "The `sd-jwt` reference implementation is not installed: (b) was not measured."]
    return lines, goals


def _section_issuance(r: dict[str, Any]) -> tuple[list[str], list[Goal]]:
    s = r["stats"]
    sign = s["ES256 sign"]
    issue, present = s["issue_vc"].median / sign.median, s["present"].median / sign.median
    goals = [
        Goal("(c) issue (`issue_vc`) / one ES256 signing", issue, "<=", 4, f"{issue:.2f}x"),
        Goal("(c) present 3 claims + KB / one ES256 signing", present, "<=", 3, f"{present:.2f}x"),
    ]
    rows = [("bare ES256 sign (`cryptography`, DER)", sign),
            ("`issue_vc` (type's sd_paths, cnf, status)", s["issue_vc"]),
            ("`issue_licence` (the same + JSON Schema validation)", s["issue_licence"]),
            ("`present` (3 claims, KB-JWT)", s["present"])]
    lines = [
        "## (c) Issuing a business licence and presenting three claims",
        "",
        f"The licence has {r['disclosures_issued']} Disclosures ({r['credential_chars']} characters); the signed "
        f"input is {r['signing_input_bytes']} bytes. The goal for issuing is judged on `issue_vc` (the credential "
        "core); `issue_licence` adds the issuer's schema validation and is shown for completeness.",
        "",
        *_stats_table(rows, sign, "ES256 sign"),
    ]
    return lines, goals


def _section_status(r: dict[str, Any]) -> tuple[list[str], list[Goal]]:
    s = r["stats"]
    total, lookup = s["build + compress + sign"], s["decode + look up"]
    goals = [
        Goal("(d) status list: build + compress + sign, 10⁶ entries", total.median / 1e9, "<", 1,
             f"{fmt_ns(total.median)} ({total.median / 1e9:.3f} of the budget)", " s"),
        Goal("(d) status list: decode + look up one index", lookup.median / 1e6, "<", 50,
             f"{fmt_ns(lookup.median)} ({lookup.median / 50e6:.3f} of the budget)", " ms"),
    ]
    lines = [
        "## (d) Status list of 1,000,000 two-bit entries",
        "",
        f"{r['set']:,} entries set (two thirds revoked, one third suspended); {r['raw_bytes']:,} bytes raw, "
        f"{r['compressed_bytes']:,} bytes after ZLIB level 9, token {r['token_chars']:,} characters.",
        "",
        *_stats_table(list(s.items()), None),
    ]
    return lines, goals


def _section_qr(r: dict[str, Any]) -> tuple[list[str], list[Goal]]:
    choices = r["choices"]
    shipped = choices["nested registration, 1 digest (shipped), ES256 holder key"]["version"]
    goals = [
        Goal("(e) offline QR (USCC, name, legal representative, validity): QR version at M", shipped, "<=", 25,
             f"v{shipped}", unit=" (version)"),
        Goal("(e) stretch: offline QR version at M", shipped, "<=", 20, f"v{shipped}", unit=" (version)"),
    ]
    lines = [
        "## (e) Offline QR code",
        "",
        "The goal's view (USCC, name, legal representative; validity is the credential's `exp` and status), "
        "key-bound for `urn:elicence:offline`, under each data-model choice tried, all measured in this run "
        "(the licence's other eight fields are public register data; see schemas/README.md for the decision):",
        "",
        "| choice | QR text chars | QR data bytes | QR version at M |",
        "|---|---:|---:|---|",
        *(f"| {name} | {c['chars']} | {c['bytes']} | v{c['version']} |" for name, c in choices.items()),
        "",
        "Sizes of three presentations of the shipped licence, from `bench/qr_size.py`:",
        "",
        "Sizes of three presentations of the scenario's licence (key-bound, `urn:elicence:offline`), from "
        "`bench/qr_size.py`. ECDSA signatures are random, so deflated sizes move by a few bytes between runs.",
        "",
    ]
    for name, report in r["reports"].items():
        lines += _size_table(name, report) + [""]
    lines += [
        f"Timings for the three-claim code: EL1 text {r['el1_chars']} characters, QR version {r['qr_version']} "
        f"({r['qr_modules']}×{r['qr_modules']} modules), PNG {r['png_pixels']}×{r['png_pixels']} pixels, "
        f"{r['png_bytes']:,} bytes.",
        "",
        *_stats_table(list(r["stats"].items()), None),
        "",
        "The symbol comes from zxing-cpp's writer (libzint, in C: segments and the choice among 8 mask "
        "patterns); the rest of the PNG time is Pillow scaling and compressing the image.",
    ]
    return lines, goals


def _rate(x: float) -> str:
    return f"{x:,.0f}/s"


def _section_issuer(r: dict[str, Any]) -> tuple[list[str], list[Goal]]:
    bare = r["bare"]["per_second"]
    p = r["parameters"]
    lines = [
        "## (f) The issuer service: credential endpoint, bulk issuance, revocation",
        "",
        f"`elicence serve --workers {p['workers']}` (uvicorn, two processes) on a fresh database each; load from "
        f"`bench/loadgen.py` in its own process over {' and then '.join(map(str, p['connections']))} keep-alive "
        f"connections, {p['credentials']:,} credential requests each time, each with its own access token, `c_nonce` "
        "and key proof made beforehand through the token and nonce endpoints' code (not timed). Requests that arrive "
        "together are issued in one transaction (`issuer/group_commit.py`, `IssuerService.credential_batch`): the more "
        "wallets at once, the larger the batches; the goal is judged on the largest number of connections (a national "
        "issuer serves far more wallets at once than that). Afterwards the database is checked: exactly one credential "
        "per request, no status index twice, audit chain unbroken. Bare ES256 signing on one core in this run: "
        f"{_rate(bare)} ({fmt_ns(r['bare']['stats'].median)} per signature). The machine has {r['cpus']} logical "
        "CPUs, shared by the load generator, the two workers and the database.",
        "",
        "| database | connections | credentials/s | / bare signing | p50 | p90 | p99 | errors | generator CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    goals: list[Goal] = []
    for name, d in r["databases"].items():
        for connections, load in zip(p["connections"], d["load"]):
            lat = load["latency_ms"]
            errors = load["requests"] - load["ok"]
            lines.append(f"| {name} | {connections} | {_rate(load['per_second'])} | 1/{bare / load['per_second']:.0f} | "
                         f"{lat['p50']:.0f} ms | {lat['p90']:.0f} ms | {lat['p99']:.0f} ms | {errors} | "
                         f"{load['generator_cpu_seconds']:.1f} s of {load['seconds']:.1f} s |")
        if name == "PostgreSQL":
            load = d["load"][-1]
            goals.append(Goal(f"(f) credential endpoint on PostgreSQL, 2 workers, {p['connections'][-1]} connections / "
                              "bare ES256 signing rate", load["per_second"] / bare, ">=", 1 / 20,
                              f"{_rate(load['per_second'])} = 1/{bare / load['per_second']:.0f}", unit=f" (1/20, {_rate(bare / 20)})"))
    lines += ["", f"The framework floor: the same endpoint, {p['connections'][-1]} connections, {p['credentials']:,} "
              "requests refused before any database or signature work (an unknown credential configuration: what is "
              "left is uvicorn, the middleware, FastAPI's routing, the body read and JSON parse, the request parse and "
              "the error response). No credential endpoint on this stack and machine can answer faster.", "",
              "| database | requests refused/s | / bare signing | credential endpoint / floor |", "|---|---:|---:|---:|"]
    for name, d in r["databases"].items():
        floor = d["floor"]["per_second"]
        lines.append(f"| {name} | {_rate(floor)} | 1/{bare / floor:.0f} | {d['load'][-1]['per_second'] / floor:.2f} |")
    first = r["databases"][next(iter(r["databases"]))]["breakdown"]
    lines += ["", "Where a request's time goes: the same endpoint called in process, no HTTP, one thread "
              f"({first[0]['n']} requests one at a time, then {first[1]['n']} in batches of {first[1]['batch']}), with "
              "every SQL statement timed from the driver call to its result:", "",
              "| database | requests per transaction | credentials/s, one thread | per credential | SQL statements "
              "per credential | time in SQL |", "|---|---:|---:|---:|---:|---:|"]
    for name, d in r["databases"].items():
        for b in d["breakdown"]:
            lines.append(f"| {name} | {b['batch']} | {_rate(b['per_second'])} | {b['ms_per_credential']:.2f} ms | "
                         f"{b['statements_per_credential']:.1f} | {b['sql_ms_per_credential']:.2f} ms |")
    for name, d in r["databases"].items():
        b = d["breakdown"][-1]
        lines += ["", f"Statements of a batch of {b['batch']} on {name}, per credential (mean time each, driver call "
                  "to result):", "", "| statement | per credential | mean |", "|---|---:|---:|"]
        lines += [f"| `{s['statement']}` | {s['count']:.2f} | {s['ms'] / s['count']:.3f} ms |" for s in b["statements"]]
    lines += ["", "Bulk issuance: `elicence issuer records generate` then `elicence issuer issue-bulk` (its own process, "
              "progress bar on): validate every record, import them, create one offer and PIN per record.", "",
              "| database | records | time | records/s | / bare signing | peak RSS | progress bar |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for name, d in r["databases"].items():
        b = d["bulk"]
        if b is None:
            continue
        lines.append(f"| {name} | {b['records']:,} | {b['seconds']:.1f} s | {_rate(b['per_second'])} | "
                     f"1/{bare / b['per_second']:.0f} | {b['peak_rss_bytes'] / 2**20:.0f} MiB | "
                     f"{'shown' if b['progress_bar_seen'] else 'NOT shown'} |")
        if name == "PostgreSQL":
            goals.append(Goal(f"(f) bulk issuance of {b['records']:,} records on PostgreSQL / bare ES256 signing rate",
                              b["per_second"] / bare, ">=", 1 / 10,
                              f"{_rate(b['per_second'])} = 1/{bare / b['per_second']:.0f}", unit=f" (1/10, {_rate(bare / 10)})"))
    lines += ["", "Revocation latency to visibility: admin `POST .../credentials/{id}/status` (revoke) sent, "
              "acknowledged, then one `GET` of the status list; the served token showed the entry revoked every time "
              "(the run fails otherwise).", "",
              "| database | revocations | median | p95 | max |", "|---|---:|---:|---:|---:|"]
    for name, d in r["databases"].items():
        v = d["revocation"]
        lines.append(f"| {name} | {v['n']} | {v['p50_ms']:.1f} ms | {v['p95_ms']:.1f} ms | {v['max_ms']:.1f} ms |")
    if "postgres_skipped" in r:
        lines += ["", f"PostgreSQL was not measured: {r['postgres_skipped']}."]
    return lines, goals


def _section_wallet(r: dict[str, Any]) -> tuple[list[str], list[Goal]]:
    core, http, direct, steps = r["core"], r["http"], r["direct"], r["steps"]
    s = core["stats"]
    pin, p50, without = r["pin_ms"], http["p50_ms"], r["p50_without_pin_ms"]
    alongside = http["pin_alongside"]
    goals = [Goal("(g) show QR: request to PNG bytes, p50", p50, "<=", r["goal_p50_ms"],
                  f"{p50:.1f} ms (PIN check {pin:.1f} ms of it; without it {without:.1f} ms)", unit=" ms")]
    both = s["present_offline + render_png"]
    total = sum(x.median for x in steps.values())
    share = "the PIN check dominates the request" if r["pin_share"] > 0.5 else "the PIN check is a minor part"
    lines = [
        "## (g) The wallet shows a licence as a QR code (亮码)",
        "",
        f"The licence's default QR view ({', '.join(core['disclose'])}), key-bound for `urn:elicence:offline` with "
        f"a fresh nonce per code: EL1 text {core['el1_chars']} characters, PNG {core['png_bytes']:,} bytes, SVG "
        f"{core['svg_chars']:,} characters. **Presentation + QR rendering: {_rate(core['per_second'])}** on one core "
        f"(1 / the median of `present_offline` + `render_png`, {fmt_ns(both.median)}). See `bench/wallet.py`.",
        "",
        *_stats_table([("`qr.present_offline` (SD-JWT presentation, KB-JWT, EL1 packing)", s["present_offline"]),
                       ("`qr.render_png` of a prepared EL1 text", s["render_png"]),
                       ("`present_offline` + `render_png`", both),
                       ("`qr.render_svg` of a prepared EL1 text", s["render_svg"])], both, "present + PNG"),
        "",
        f"Over HTTP: `POST /wallet/credentials/{{id}}/qr` with the PIN against `elicence serve --workers 1` on a fresh "
        f"SQLite database, {http['n']} sequential requests over one keep-alive connection ({http['http_version']}, "
        f"answers of {http['response_bytes']:,} bytes: EL1 text and PNG in base64; SVG only on request), each timed from sending the "
        "request to the PNG bytes decoded from the JSON; every answer was a new code.",
        "",
        "| path | p50 | p90 | p99 | max | n |",
        "|---|---:|---:|---:|---:|---:|",
        f"| request → PNG bytes | {http['p50_ms']:.1f} ms | {http['p90_ms']:.1f} ms | {http['p99_ms']:.1f} ms | "
        f"{http['max_ms']:.1f} ms | {http['n']} |",
        f"| `WalletService.confirm_pin` alone, alternating with the requests | {fmt_ns(alongside.median)} | "
        f"{fmt_ns(alongside.p90)} | – | – | {alongside.n} |",
        f"| request → PNG bytes minus the PIN check (medians) | {without:.1f} ms | | | | |",
        "",
        "The same, in process without HTTP, on the same database (the deployment's own `WalletService` with the "
        "production `WalletPolicy`), and the PIN check alone:",
        "",
        *_stats_table([("`WalletFlows.show_qr`", direct["WalletFlows.show_qr"]),
                       ("`WalletService.confirm_pin` alone", direct["WalletService.confirm_pin"])],
                      direct["WalletFlows.show_qr"], "`show_qr`"),
        "",
        "Where `show_qr`'s time goes: each of its steps, in its order, timed on its own:",
        "",
        "| step | median | p90 | share of the sum of medians |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {fmt_ns(x.median)} | {fmt_ns(x.p90)} | {x.median / total:.0%} |" for name, x in steps.items()),
        "",
        f"The wallet PIN is checked against a keyed value (HMAC-SHA256 under a key derived from the KEK, never "
        f"stored; see `wallet/service.py` for why not scrypt), with its attempt counted and committed first. Timed "
        f"alone, alternating with the HTTP requests in blocks of 10 (same load), its median is {pin:.1f} ms, "
        f"{r['pin_share']:.0%} of the HTTP median: {share}. Without it the request would take about {without:.1f} ms "
        f"(HTTP p50 minus that median; derived, since the endpoint cannot skip the PIN), against the goal of "
        f"{r['goal_p50_ms']:g} ms.",
    ]
    return lines, goals


def _section_verifier(r: dict[str, Any]) -> tuple[list[str], list[Goal]]:
    full, half, trip = r["full"], r["half"], r["round_trip"]

    def row(name: str, load: dict[str, Any]) -> str:
        lat = load["latency_ms"]
        return (f"| {name} | {load['requests']:,} | {_rate(load['per_second'])} | {lat['p50']:.1f} ms | "
                f"{lat['p90']:.1f} ms | {lat['p99']:.1f} ms | {lat['max']:.0f} ms | "
                f"{load['generator_cpu_seconds']:.1f} s of {load['seconds']:.1f} s |")

    lines = [
        "## (h) The verifier service: counter scans and online requests",
        "",
        f"`elicence serve --workers {r['workers']}` on {r['database']}"
        + (f" ({r['note']})" if r["note"] else "")
        + f"; load from `bench/loadgen.py` in its own process over {r['connections']} keep-alive connections. Each "
        f"request is `POST /verifier/departments/{{slug}}/scans` with a fresh offline QR payload of a licence the "
        f"wallet received over OpenID4VCI ({', '.join(r['disclose'])}; EL1 text of {r['payload_chars']} characters), "
        "made beforehand as the wallet's \"show QR\" makes it, for the food business permit item: the full "
        "verification (trust list, signature, disclosures, validity, key binding, freshness, status, replay row), "
        "the materials exemption, a signed receipt, the verification and audit records. Every answer was a valid "
        f"card; afterwards the database held {r['consistency']['verifications']:,} valid verification records and an "
        f"unbroken audit chain. The machine has {r['cpus']} logical CPUs, shared by the generator, the workers and "
        "the database.",
        "",
        "| load | scans | verified/s | p50 | p90 | p99 | max | generator CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        row("as fast as answered", full),
        row(f"open loop at half that rate ({_rate(half['rate'])})", half),
        "",
        f"At half rate the latest send left {half['latest_send_ms']:.1f} ms after it was due (a late send would hide "
        "queueing).",
        "",
        f"Online request round trip ({trip['n']} in sequence over one connection): the staff creates a request for "
        "the item, the deployment's wallet inspects the `openid4vp://` link (fetches and checks the signed Request "
        "Object) and answers with consent and the PIN (its `direct_post` to the verifier is verified before the "
        f"wallet's answer returns), then the staff's result poll ({trip['polls']} polls in all).",
        "",
        "| round trip | p50 | p95 | max |",
        "|---|---:|---:|---:|",
        f"| create → wallet answers → result delivered | {trip['p50_ms']:.1f} ms | {trip['p95_ms']:.1f} ms | "
        f"{trip['max_ms']:.1f} ms |",
        "",
        "| step | median |",
        "|---|---:|",
        *(f"| {name} | {ms:.1f} ms |" for name, ms in trip["steps_p50_ms"].items()),
    ]
    return lines, []


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _section_system(r: dict[str, Any]) -> tuple[list[str], list[Goal]]:
    head = ["## (i) The whole system at scale, on PostgreSQL", ""]
    if "skipped" in r:
        return [*head, f"Skipped: {r['skipped']}."], []
    e2e, big, bulk = r["end_to_end"], r["big_list"], r["bulk"]
    lat, sizes = e2e["latency"], bulk["sizes"]
    consistency = e2e["consistency"]
    lines = [
        *head,
        "See `bench/system.py`. One fresh database for the three parts.",
        "",
        f"**Issuance end to end over HTTP**: `elicence serve --workers {e2e['workers']}`; for each of {e2e['flows']:,} "
        "offers a client makes the token request (pre-authorised code and PIN), the nonce request, its ES256 key "
        f"proof and the credential request, {e2e['concurrency']} flows at a time (asyncio + httpx in the benchmark's "
        f"process: {e2e['client_cpu_seconds']:.1f} s of CPU in {e2e['seconds']:.1f} s, on the same two CPUs as the "
        f"server and the database). Errors: {e2e['errors']}. Afterwards {consistency['credentials']:,} credentials "
        f"with {consistency['distinct_status_slots']:,} distinct status slots and an "
        f"{'unbroken' if consistency['audit_ok'] else 'BROKEN'} audit chain.",
        "",
        "| credentials/s | flow p50 | p95 | p99 | max |",
        "|---:|---:|---:|---:|---:|",
        f"| {_rate(e2e['per_second'])} | {lat['p50_ms']:.0f} ms | {lat['p95_ms']:.0f} ms | {lat['p99_ms']:.0f} ms | "
        f"{lat['max_ms']:.0f} ms |",
        "",
        f"**Status list publication with {big['entries']:,} entries** (one list of 2^20 two-bit entries, "
        f"`elicence serve --workers 1`): the token is {big['token_bytes']:,} bytes ({big['token_gzip_bytes']:,} "
        "gzipped) with the few credentials of this run set; a densely used list is larger (section (d) signs 10^6 "
        "random entries; docs/DEPLOYMENT.md gives sizes at 1-5 % revoked).",
        "",
        "| step | p50 | p95 | max | n |",
        "|---|---:|---:|---:|---:|",
        f"| first `GET` (pack, compress, sign, store) | {big['first_get_ms']:.1f} ms | | | 1 |",
        f"| `GET` of the stored token | {big['stored']['p50_ms']:.1f} ms | {big['stored']['p95_ms']:.1f} ms | "
        f"{big['stored']['max_ms']:.1f} ms | {big['stored']['n']} |",
        f"| revoke (acknowledged) → `GET` shows it (signed again) | {big['revocation']['p50_ms']:.1f} ms | "
        f"{big['revocation']['p95_ms']:.1f} ms | {big['revocation']['max_ms']:.1f} ms | {big['revocation']['n']} |",
        "",
        f"**Bulk issuance of {bulk['records']:,} records**: `elicence issuer records generate` then `elicence issuer "
        "issue-bulk` (its own process, progress bar "
        f"{'shown' if bulk['progress_bar_seen'] else 'NOT shown'}): validate, import, one offer and PIN each.",
        "",
        "| records | time | records/s | peak RSS | database after | records table | offers table | audit table |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {bulk['records']:,} | {bulk['seconds']:.0f} s | {_rate(bulk['per_second'])} | "
        f"{_mib(bulk['peak_rss_bytes'])} | {_mib(sizes['database'])} | {_mib(sizes['issuer_record'])} | "
        f"{_mib(sizes['issuer_offer'])} | {_mib(sizes['issuer_audit'])} |",
        "",
        "Table sizes include their indexes and TOAST (`pg_total_relation_size`).",
    ]
    return lines, []


def render(results: dict[str, Any], *, started: datetime, seconds: float, quick: bool) -> tuple[str, list[Goal]]:
    """The Markdown report and the goals it marks."""
    a, goals_a = _section_hotpath(results["hotpath"])
    c, goals_c = _section_issuance(results["issuance"])
    d, goals_d = _section_status(results["status"])
    e, goals_e = _section_qr(results["qr"])
    f, goals_f = _section_issuer(results["issuer"]) if "issuer" in results else ([], [])
    g, goals_g = _section_wallet(results["wallet"]) if "wallet" in results else ([], [])
    h, _ = _section_verifier(results["verifier"]) if "verifier" in results else ([], [])
    i, _ = _section_system(results["system"]) if "system" in results else ([], [])
    goals = goals_a + goals_c + goals_d + goals_e + goals_f + goals_g
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python -m bench.run` (`make bench`) on {started:%Y-%m-%d %H:%M} UTC in {seconds:.0f} s"
        + (" with `--quick` (fewer rounds, noisier figures)" if quick else "")
        + ". Every figure below was measured in that run.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in results["machine"].items()),
        "",
        "## Goals",
        "",
        "| goal | measured | target | verdict |",
        "|---|---|---|---|",
        *(g.row() for g in goals),
        "",
        "Ratios are of medians. Each timed call is measured on its own with `time.perf_counter_ns`, the garbage "
        "collector off while timing (as `timeit` does); functions compared with each other alternate in blocks "
        "of 50 calls so that machine load falls on all of them alike. p10/p90 are the 10th and 90th percentiles.",
        "",
        *a,
        "",
        *c,
        "",
        *d,
        "",
        *e,
        "",
        *f,
        "",
        *g,
        "",
        *h,
        "",
        *i,
        "",
    ]
    return "\n".join(lines), goals


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and write the report; exit 0 whether or not the goals are met."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke test, noisier figures")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the Markdown report")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures as JSON")
    args = parser.parse_args(argv)

    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("hotpath", lambda: hotpath.run(repeats=300 if args.quick else 4000)),
        ("issuance", lambda: issuance.run(repeats=100 if args.quick else 2000)),
        ("status", lambda: status.run(build_repeats=3 if args.quick else 15, lookup_repeats=10 if args.quick else 200)),
        ("qr", lambda: qr_codec.run(repeats=5 if args.quick else 30, codec_repeats=50 if args.quick else 500)),
        ("issuer", lambda: issuer.run(credentials=300 if args.quick else 5000, bulk=2000 if args.quick else 100_000,
                                      revocations=10 if args.quick else 100)),
        ("wallet", lambda: wallet.run(quick=args.quick)),
        ("verifier", lambda: verifier.run(quick=args.quick)),
        ("system", lambda: system.run(bulk=5000 if args.quick else 1_000_000, revocations=5 if args.quick else 20,
                                      flows=60 if args.quick else 1000)),
    ]
    results: dict[str, Any] = {"machine": machine()}
    for name, step in steps:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        results[name] = step()
        print(f"bench: {name} done in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0

    report, goals = render(results, started=started, seconds=seconds, quick=args.quick)
    args.output.write_text(report, encoding="utf-8")
    if args.json is not None:
        args.json.write_text(json.dumps(results, default=_jsonable, indent=2, ensure_ascii=False), encoding="utf-8")
    for goal in goals:
        print(f"{'MET    ' if goal.met else 'NOT MET'}  {goal.name}: {goal.shown}")
    print(f"wrote {args.output} ({seconds:.0f} s)")
    return 0


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Stats):
        return obj.to_dict()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


if __name__ == "__main__":
    sys.exit(main())
