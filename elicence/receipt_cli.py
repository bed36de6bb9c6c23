"""``elicence receipt verify``: check a verification receipt from a case file, later and anywhere.

Wired into the CLI by :func:`add_receipt_commands` (``elicence.cli`` calls it with its sub-parsers).
The receipt is checked by :func:`verifier.receipts.verify_receipt` (no web framework, no database: the
service is not loaded) against the registrar CA certificate, the trust anchor of the departments'
access certificates: a PEM file (``--registrar-cert``) or the URL that serves it
(``--registrar-url``, e.g. ``https://verify.example.gov.cn/verifier/registrar.pem``; HTTPS, or HTTP on
loopback). Take that certificate from a source you trust: a receipt can only be as trustworthy as the
anchor it is checked against.

Exit codes: 0 the receipt is valid (the department, item, what was verified and when are printed);
1 it is not (``receipt_invalid`` and the failed check's code: ``malformed``, ``invalid_typ``,
``certificate_untrusted``, ``certificate_expired``, ``invalid_signature``, ...); 2 the command cannot
run (unreadable files, a bad ``--at``, no registrar certificate to be had).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from cryptography import x509

from elicence.commands import UsageError, read_text
from keys.errors import KeyMaterialError
from keys.x509 import load_pem_certificates
from schemas.errors import UnknownCredentialType
from schemas.registry import get_type
from verifier.receipts import Receipt, ReceiptInvalid, verify_receipt
from verifier.sdk import http_fetch

__all__ = ["add_receipt_commands", "receipt_verify"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def add_receipt_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``receipt verify`` to the CLI's sub-parsers; returns the ``receipt`` parser."""
    receipt = subparsers.add_parser("receipt", help="check verification receipts", description="Verification receipts.")
    actions = receipt.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="check a department's verification receipt",
        description="Check a verification receipt (the signed record a department keeps in the case file "
        "in place of a paper copy) against the registrar CA certificate: its type, the department's "
        "access certificate chain in x5c, valid at --at, and the signature. Prints the department "
        "(certified DNS name, organisation), the service item, what was verified (types, issuers, "
        "materials exempt) and when. Exit 0 when valid, 1 when not (receipt_invalid and the reason "
        "code), 2 when the inputs cannot be read or no registrar certificate can be had.",
    )
    verify.add_argument("receipt", metavar="RECEIPT", help="file with the receipt (a compact JWS; '-' for stdin)")
    anchor = verify.add_mutually_exclusive_group(required=True)
    anchor.add_argument("--registrar-cert", metavar="PEM_FILE",
                        help="the registrar CA certificate(s), PEM (as GET /verifier/registrar.pem serves it)")
    anchor.add_argument("--registrar-url", metavar="URL",
                        help="fetch the registrar certificate from URL (https, or http on loopback)")
    verify.add_argument("--at", metavar="ISO_TIME",
                        help="check the certificates as of this time, with its zone (e.g. 2026-09-21T13:46:40Z; "
                        "default: now)")
    verify.add_argument("--json", action="store_true", help="print the result (claims or error) as JSON")
    verify.set_defaults(handler=receipt_verify)
    return receipt


def _anchors(args: argparse.Namespace) -> tuple[x509.Certificate, ...]:
    if args.registrar_cert is not None:
        pem: str | bytes = read_text(args.registrar_cert)
        where = args.registrar_cert
    else:
        try:
            pem = http_fetch(args.registrar_url, accept="application/x-pem-file")
        except (OSError, ValueError) as exc:
            raise UsageError(f"registrar_unavailable: cannot fetch {args.registrar_url}: {exc}") from exc
        where = args.registrar_url
    try:
        return load_pem_certificates(pem)
    except KeyMaterialError as exc:
        raise UsageError(f"{where}: {exc.code}: {exc.detail}") from exc


def _at(value: str | None) -> datetime:
    if value is None:
        return datetime.fromtimestamp(time.time(), timezone.utc)
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"--at {value!r} is not an ISO 8601 time") from exc
    if at.tzinfo is None:
        raise UsageError(f"--at {value!r} has no time zone (add Z or +08:00)")
    return at


def _iso(seconds: Any) -> str:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return "?"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _type_name(vct: Any, *, with_vct: bool = True) -> str:
    try:
        ctype = get_type(vct)
    except UnknownCredentialType:
        return str(vct)
    return f"{ctype.slug} ({ctype.vct})" if with_vct else ctype.slug


def _names(value: Any) -> str:
    if not isinstance(value, Mapping):
        return ""
    return " / ".join(str(value[k]) for k in ("zh-CN", "en") if value.get(k))


def _rows(items: Any) -> Sequence[Mapping[str, Any]]:
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def describe(receipt: Receipt, *, at: datetime) -> list[str]:
    """The lines ``receipt verify`` prints for a valid receipt."""
    c = receipt.claims
    department, item, enterprise = c.get("department") or {}, c.get("item") or {}, c.get("enterprise")
    lines = [
        f"VALID verification receipt {c.get('jti', '?')}",
        f"  department    {department.get('id', '?')}  {_names(department.get('name'))}",
        f"  certified     {receipt.dns_name} (organisation: {receipt.organization or 'not named'})",
        f"  service item  {item.get('id', '?')}  {_names(item.get('name'))}",
        f"  channel       {c.get('channel', '?')}",
        f"  verified at   {_iso(c.get('iat'))}",
    ]
    if isinstance(enterprise, Mapping):
        lines.append(f"  enterprise    {enterprise.get('uscc')}  {enterprise.get('name')}")
    for v in _rows(c.get("verifications")):
        outcome = v.get("verdict") if v.get("code") is None else f"{v.get('verdict')} ({v.get('code')})"
        lines.append(f"  verified      {_type_name(v.get('vct'))} from {v.get('issuer')}: {outcome}, "
                     f"status {v.get('status')}")
    materials = _rows(c.get("materials"))
    exempt = [f"{m.get('id')} (by {_type_name(m.get('vct'), with_vct=False)})"
              for m in materials if m.get("status") == "exempt"]
    to_submit = [str(m.get("id")) for m in materials if m.get("status") != "exempt"]
    lines.append(f"  exempt        {', '.join(exempt) or 'none'}")
    lines.append(f"  to submit     {', '.join(to_submit) or 'none'}")
    lines.append(f"  checked at    {at.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ} against the registrar certificate")
    return lines


def receipt_verify(args: argparse.Namespace) -> int:
    """Handler of ``elicence receipt verify``."""
    token = read_text(args.receipt)
    anchors = _anchors(args)
    at = _at(args.at)
    try:
        receipt = verify_receipt(token, trust_anchors=anchors, now=at)
    except ReceiptInvalid as exc:
        if args.json:
            print(json.dumps({"valid": False, **exc.to_dict(), "reason": exc.reason}, ensure_ascii=False))
        print(f"elicence: {exc.code}: {exc.reason}: {exc.detail}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        checked = at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(json.dumps({**receipt.to_json(), "checked_at": checked}, ensure_ascii=False, indent=2))
    else:
        print("\n".join(describe(receipt, at=at)))
    return EXIT_OK
