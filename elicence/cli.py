"""The ``elicence`` command line: the toolbox for developers and testers, and the demo scenario.

Exit codes: 0 success (for ``verify``: the credential is valid), 1 a verification or processing
failure (the error code is printed), 2 a usage error (bad arguments, unreadable files).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from elicence import commands, demo
from elicence.audit_cli import add_audit_commands
from elicence.issuer_cli import add_issuer_commands
from elicence.receipt_cli import add_receipt_commands
from elicence.serve_cli import add_serve_command

__all__ = ["main", "build_parser"]


def _add_key_commands(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="generate keys and show public keys", description="Key material.")
    ks = keys.add_subparsers(dest="action", required=True, metavar="ACTION")

    gen = ks.add_parser(
        "generate",
        help="generate a private key",
        description="Generate an ES256 (P-256) or EdDSA (Ed25519) private key. The private JWK is written "
        "to --out with 0600 permissions, or into the encrypted keystore (--keystore; the key-encryption "
        "key comes from ELICENCE_KEK or ELICENCE_KEK_FILE). Prints the kid (RFC 7638 thumbprint).",
    )
    gen.add_argument("--alg", choices=["ES256", "EdDSA"], default="ES256", help="algorithm (default ES256)")
    dest = gen.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", metavar="FILE", help="write the private JWK to FILE (mode 0600; refuses to overwrite)")
    dest.add_argument("--keystore", metavar="FILE", help="store the key encrypted in this keystore file")
    gen.add_argument("--label", default="", help="label of the key in the keystore")
    gen.set_defaults(handler=commands.keys_generate)

    pub = ks.add_parser(
        "public",
        help="print a public JWK or JWKS",
        description="Print the public JWK (with kid) of a private or public JWK file, or the JWKS of a "
        "keystore (active and retired keys).",
    )
    src = pub.add_mutually_exclusive_group(required=True)
    src.add_argument("--key", metavar="FILE", help="a JWK file (private or public)")
    src.add_argument("--keystore", metavar="FILE", help="a keystore file")
    pub.add_argument("--jwks", action="store_true", help="print a JWK Set rather than a single JWK")
    pub.set_defaults(handler=commands.keys_public)


def _add_credential_commands(sub: argparse._SubParsersAction) -> None:
    cred = sub.add_parser("credential", help="issue and present SD-JWT VCs", description="Credentials.")
    cs = cred.add_subparsers(dest="action", required=True, metavar="ACTION")

    issue = cs.add_parser(
        "issue",
        help="issue an SD-JWT VC from a claims file",
        description="Validate a claims file (JSON) against its credential type and issue an SD-JWT VC "
        "(application/dc+sd-jwt) on stdout. Which claims are selectively disclosable comes from the "
        "type's metadata.",
    )
    issue.add_argument("--type", required=True, metavar="TYPE", help="credential type slug or vct, e.g. business-licence")
    issue.add_argument("--claims", required=True, metavar="FILE", help="claims JSON file ('-' for stdin)")
    issue.add_argument("--issuer-key", required=True, metavar="FILE", help="issuer private JWK file")
    issue.add_argument("--issuer", required=True, metavar="URL", help="issuer identifier (https URL)")
    issue.add_argument("--holder-key", metavar="FILE", help="holder JWK (public or private) to bind the credential to")
    issue.add_argument("--status-uri", metavar="URI", help="status list URI the credential points at")
    issue.add_argument("--status-idx", type=int, metavar="N", help="index in that status list")
    issue.add_argument("--valid-days", type=int, default=365, metavar="N", help="validity in days (default 365)")
    issue.add_argument("--out", metavar="FILE", help="write the credential to FILE instead of stdout")
    issue.set_defaults(handler=commands.credential_issue)

    present = cs.add_parser(
        "present",
        help="present chosen claims with key binding",
        description="Create a presentation of an SD-JWT VC disclosing only the chosen claims, with a key "
        "binding JWT signed by the holder key (audience and nonce as given).",
    )
    present.add_argument("credential", metavar="CREDENTIAL", help="file with the SD-JWT VC ('-' for stdin)")
    present.add_argument("--disclose", default="", metavar="CLAIMS", help="comma-separated claim names or paths (a.b)")
    present.add_argument("--holder-key", metavar="FILE", help="holder private JWK (omit: no key binding)")
    present.add_argument("--aud", default="urn:elicence:offline", help="audience of the key binding JWT (default: the offline QR audience)")
    present.add_argument("--nonce", help="nonce of the key binding JWT (default: random)")
    present.add_argument("--qr", action="store_true", help="output the compact EL1: QR payload instead of the SD-JWT text")
    present.add_argument("--out", metavar="FILE", help="write the presentation to FILE instead of stdout")
    present.set_defaults(handler=commands.credential_present)


def _add_list_commands(sub: argparse._SubParsersAction) -> None:
    trust = sub.add_parser("trust-list", help="create a signed trust list", description="Trust lists.")
    ts = trust.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = ts.add_parser(
        "create",
        help="sign a trust list",
        description="Sign a trust list naming the accepted issuers. --issuers is a JSON file: a list of "
        '{"id": URL, "name": {"zh-CN": .., "en": ..}, "region": .., "vcts": [..], "keys": [JWK file '
        "paths or JWK objects]}.",
    )
    create.add_argument("--issuers", required=True, metavar="FILE", help="issuers JSON file")
    create.add_argument("--operator-key", required=True, metavar="FILE", help="trust list operator private JWK")
    create.add_argument("--operator", default="https://trust.elicence.cn", metavar="URL", help="operator identifier")
    create.add_argument("--valid-days", type=int, default=30, metavar="N", help="validity in days (default 30)")
    create.add_argument("--sequence", type=int, default=1, metavar="N", help="sequence number (rollback protection)")
    create.add_argument("--out", required=True, metavar="FILE", help="where to write the signed list")
    create.set_defaults(handler=commands.trust_list_create)

    status = sub.add_parser("status-list", help="create, change and show status lists", description="Token Status Lists.")
    ss = status.add_subparsers(dest="action", required=True, metavar="ACTION")
    sc = ss.add_parser(
        "create",
        help="create a signed status list token",
        description="Create a status list of SIZE entries (all valid) and write its signed statuslist+jwt.",
    )
    sc.add_argument("--uri", required=True, metavar="URI", help="the URI the list is served at (its 'sub')")
    sc.add_argument("--size", type=int, default=100_000, metavar="N", help="entries (default 100000)")
    sc.add_argument("--bits", type=int, choices=[1, 2, 4, 8], default=2, help="bits per entry (default 2)")
    sc.add_argument("--key", required=True, metavar="FILE", help="issuer private JWK that signs the list")
    sc.add_argument("--ttl", type=int, default=300, metavar="SECONDS", help="cache time-to-live (default 300)")
    sc.add_argument("--valid-days", type=int, default=1, metavar="N", help="token validity in days (default 1)")
    sc.add_argument("--out", required=True, metavar="FILE", help="where to write the token")
    sc.set_defaults(handler=commands.status_list_create)

    st = ss.add_parser(
        "set",
        help="set the status of one index and re-sign",
        description="Verify the token with the key, set entry INDEX to STATUS and re-sign it in place.",
    )
    st.add_argument("token", metavar="FILE", help="status list token file")
    st.add_argument("--index", type=int, required=True, metavar="N")
    st.add_argument("--status", required=True, help="valid, revoked, suspended, or a number")
    st.add_argument("--key", required=True, metavar="FILE", help="issuer private JWK")
    st.add_argument("--ttl", type=int, default=300, metavar="SECONDS")
    st.add_argument("--valid-days", type=int, default=1, metavar="N")
    st.set_defaults(handler=commands.status_list_set)

    sh = ss.add_parser("show", help="show a status list", description="Show a status list token's header, size and counts.")
    sh.add_argument("token", metavar="FILE", help="status list token file")
    sh.add_argument("--index", type=int, metavar="N", help="show only this entry")
    sh.set_defaults(handler=commands.status_list_show)


def _add_qr_commands(sub: argparse._SubParsersAction) -> None:
    qr = sub.add_parser("qr", help="encode and decode offline QR codes", description="Offline QR codes.")
    qs = qr.add_subparsers(dest="action", required=True, metavar="ACTION")
    enc = qs.add_parser(
        "encode",
        help="render a presentation as a QR code",
        description="Pack a presentation (SD-JWT text, or an EL1: payload) into the compact offline payload "
        "and render it as PNG, SVG or terminal text. Prints the QR version and size on stderr.",
    )
    enc.add_argument("input", metavar="INPUT", help="file with the presentation ('-' for stdin)")
    enc.add_argument("--format", choices=["png", "svg", "terminal"], default="png")
    enc.add_argument("--out", metavar="FILE", help="output file (required for png and svg)")
    enc.add_argument("--scale", type=int, default=6, metavar="PX", help="pixels per module (default 6)")
    enc.set_defaults(handler=commands.qr_encode)

    dec = qs.add_parser(
        "decode",
        help="read a QR code from an image",
        description="Decode the QR code in a PNG/JPEG photo or screenshot and print its text; with --expand, "
        "print the SD-JWT presentation inside an EL1: payload.",
    )
    dec.add_argument("image", metavar="IMAGE", help="image file")
    dec.add_argument("--expand", action="store_true", help="unpack the EL1: payload to the SD-JWT text")
    dec.set_defaults(handler=commands.qr_decode)


def _add_verify_command(sub: argparse._SubParsersAction) -> None:
    ver = sub.add_parser(
        "verify",
        help="verify a QR image, compact payload or presentation",
        description="Verify INPUT (a QR image file, a file or text with an EL1: payload, or an SD-JWT "
        "presentation) against a trust list and status lists. Exit 0 when valid, 1 when not, 2 on usage "
        "errors.",
    )
    ver.add_argument("input", metavar="INPUT", help="image file, text file, or the payload itself ('-' for stdin)")
    ver.add_argument("--trust-list", required=True, metavar="FILE", help="signed trust list file")
    ver.add_argument("--trust-anchor", required=True, metavar="FILE", help="the trust list operator's public JWK")
    ver.add_argument(
        "--status-list",
        action="append",
        default=[],
        metavar="FILE_OR_URL",
        help="status list token file or http(s) URL (repeatable); without it, status is fetched from the "
        "URI in the credential",
    )
    ver.add_argument("--aud", help="expected audience of the key binding JWT (default: the offline audience)")
    ver.add_argument("--nonce", help="expected nonce (online presentations)")
    ver.add_argument("--freshness", type=int, default=300, metavar="SECONDS", help="max age of an offline presentation")
    ver.add_argument("--type", action="append", default=[], metavar="TYPE", help="accepted credential type (repeatable)")
    ver.add_argument("--no-key-binding", action="store_true", help="accept a credential without key binding")
    ver.add_argument("--json", action="store_true", help="print the full result as JSON")
    ver.set_defaults(handler=commands.verify)


def build_parser() -> argparse.ArgumentParser:
    """The ``elicence`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="elicence",
        description="eLicence: electronic business licences as SD-JWT verifiable credentials. "
        "Toolbox for keys, credentials, trust and status lists, offline QR codes and verification.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_key_commands(sub)
    _add_credential_commands(sub)
    _add_list_commands(sub)
    _add_qr_commands(sub)
    _add_verify_command(sub)
    add_audit_commands(sub)
    add_receipt_commands(sub)
    add_issuer_commands(sub)
    add_serve_command(sub)
    demo_cmd = sub.add_parser(
        "demo",
        help="tell the whole story to a running deployment (or, --offline, to the toolbox)",
        description="Drive a running 'elicence serve' (make run) end to end over HTTP: issue a licence, receive "
        "it in a wallet, show it as a QR code, scan it at the demo department (materials exempt), log in to the "
        "sample portal, authorise a staff member, revoke the licence, scan again and see 'revoked'. One line per "
        "step; exit 1 naming the step that failed. The demo keys are read from --var as 'elicence serve' wrote "
        "them. With --offline: the command-line scenario of the credential core (keys, trust and status lists, "
        "issue, QR image, verify, revoke), no server, files left in --workdir.",
    )
    where = demo_cmd.add_mutually_exclusive_group()
    where.add_argument("--url", metavar="URL", help="the deployment (default ELICENCE_PUBLIC_URL, else "
                       "http://127.0.0.1:<ELICENCE_PORT or 8000>, where make run listens)")
    demo_cmd.add_argument("--var", default="var", metavar="DIR", help="where that deployment keeps "
                          "demo-operators.json and demo-staff.json (default var)")
    where.add_argument("--start", action="store_true", help="start an 'elicence serve' of its own (demo mode, "
                       "SQLite, ELICENCE_* variables ignored) in a temporary directory, and stop it at the end")
    where.add_argument("--offline", action="store_true", help="the offline command-line scenario instead")
    demo_cmd.add_argument("--workdir", metavar="DIR", help="where the offline scenario writes its files (default "
                          "var/demo; implies --offline)")
    demo_cmd.set_defaults(handler=demo.run_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return commands.run(args.handler, args, parser)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
