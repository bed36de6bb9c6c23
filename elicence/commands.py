"""Handlers of the ``elicence`` CLI: each takes the parsed arguments and returns an exit code.

Handlers read files and call the libraries; they hold no logic of their own beyond wiring. Coded
errors (``credentials.errors``, ``keys.errors``, ``schemas.errors``) become exit 1 with the code on
stderr; unreadable input files and bad argument values become exit 2.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from credentials import jws, qr, sd_jwt, sd_jwt_vc, status_list, trust
from credentials.errors import CredentialError
from credentials.errors import StatusUnavailable as CannotVerifyStatus
from keys.errors import KeyMaterialError
from keys.jwk import jwks, load_private_jwk, load_public_jwk, private_jwk, public_jwk, thumbprint
from keys.keystore import FileKeyRecordStore, KeystoreError, Keystore, load_kek, write_secret_file
from keys.signer import SoftwareSigner
from schemas.errors import SchemaError
from schemas.registry import get_type, validate_claims
from verifier.sdk import Policy, StatusSource, TrustListSource, VerificationResult, Verifier, failure_report, http_fetch

__all__ = ["UsageError", "run"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
STATUS_NAMES = {"valid": status_list.VALID, "revoked": status_list.INVALID, "suspended": status_list.SUSPENDED}


class UsageError(Exception):
    """A problem with the command line or its input files (exit 2)."""


def run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Call ``handler`` and map errors to exit codes and one line on stderr."""
    try:
        return handler(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"elicence: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CredentialError, KeyMaterialError, SchemaError) as exc:
        print(f"elicence: {exc.code}: {exc}", file=sys.stderr)
        return EXIT_INVALID


# --- file helpers -------------------------------------------------------------------------------


def read_text(path: str) -> str:
    """The text of ``path`` ('-' for stdin), stripped; raises ``UsageError`` when unreadable."""
    if path == "-":
        return sys.stdin.read().strip()
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc


def read_json(path: str) -> Any:
    """JSON from ``path`` ('-' for stdin); raises ``UsageError`` when unreadable or not JSON."""
    text = read_text(path)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from exc


def write_secret(path: str, text: str) -> None:
    """Create ``path`` with mode 0600 (never overwriting) and write ``text``."""
    try:
        write_secret_file(path, text)
    except KeystoreError as exc:
        raise UsageError(f"{exc.detail}; refusing to overwrite a key file") from exc


def write_file(path: str, data: str | bytes) -> None:
    """Write ``data`` to ``path``, creating parent folders."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc}") from exc


def load_signer(path: str) -> SoftwareSigner:
    """A signer over the private JWK in ``path``."""
    jwk = read_json(path)
    return SoftwareSigner(load_private_jwk(jwk))


def load_any_public(path: str) -> dict[str, str]:
    """The public JWK of a private or public JWK file."""
    jwk = read_json(path)
    if not isinstance(jwk, dict):
        raise UsageError(f"{path} is not a JWK object")
    if "d" in jwk:
        return public_jwk(load_private_jwk(jwk))
    return public_jwk(load_public_jwk(jwk))


def open_keystore(path: str) -> Keystore:
    """The keystore in ``path`` opened with the KEK from the environment."""
    return Keystore(FileKeyRecordStore(Path(path)), load_kek())


def emit(obj: Any) -> None:
    """Print JSON, readable and with Chinese kept as is."""
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def now() -> int:
    return int(time.time())


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def output(text: str, path: str | None) -> None:
    """Write ``text`` to ``path``, or print it."""
    if path:
        write_file(path, text + "\n")
    else:
        print(text)


# --- keys ---------------------------------------------------------------------------------------


def keys_generate(args: argparse.Namespace) -> int:
    if args.keystore:
        kid = open_keystore(args.keystore).generate(args.alg, label=args.label, owner="cli", now=utcnow())
    else:
        signer = SoftwareSigner.generate(args.alg)
        write_secret(args.out, json.dumps(private_jwk(signer.private_key)) + "\n")
        kid = signer.kid
    print(kid)
    return EXIT_OK


def keys_public(args: argparse.Namespace) -> int:
    if args.keystore:
        emit(open_keystore(args.keystore).jwks())
        return EXIT_OK
    pub = load_any_public(args.key)
    emit(jwks([pub]) if args.jwks else {**pub, "kid": thumbprint(pub)})
    return EXIT_OK


# --- credentials --------------------------------------------------------------------------------


def credential_issue(args: argparse.Namespace) -> int:
    ctype = get_type(args.type)
    claims = read_json(args.claims)
    if not isinstance(claims, dict):
        raise UsageError(f"{args.claims} must hold a JSON object of claims")
    validate_claims(ctype.vct, claims)
    if (args.status_uri is None) != (args.status_idx is None):
        raise UsageError("--status-uri and --status-idx go together")
    if args.valid_days <= 0:
        raise UsageError("--valid-days must be positive")
    issued_at = now()
    credential = sd_jwt_vc.issue_vc(
        claims,
        vct=ctype.vct,
        issuer=args.issuer,
        signer=load_signer(args.issuer_key),
        disclosable=ctype.disclosable_paths(claims),
        holder_jwk=load_any_public(args.holder_key) if args.holder_key else None,
        status=(args.status_idx, args.status_uri) if args.status_uri else None,
        iat=issued_at,
        exp=issued_at + args.valid_days * 86400,
    )
    output(credential, args.out)
    return EXIT_OK


def _claim_path(text: str) -> tuple[str | int, ...]:
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


def credential_present(args: argparse.Namespace) -> int:
    credential = read_text(args.credential)
    disclose = [_claim_path(c.strip()) for c in args.disclose.split(",") if c.strip()]
    holder = load_signer(args.holder_key) if args.holder_key else None
    nonce = args.nonce or secrets.token_urlsafe(12)
    if args.qr and holder is not None and args.aud == qr.OFFLINE_AUDIENCE:
        output(qr.present_offline(credential, disclose=disclose, holder_signer=holder, now=now(), nonce=nonce), args.out)
        return EXIT_OK
    presentation = sd_jwt.present(
        credential,
        disclose=disclose,
        holder_signer=holder,
        aud=args.aud if holder else None,
        nonce=nonce if holder else None,
        now=now() if holder else None,
    )
    output(qr.encode_payload(presentation) if args.qr else presentation, args.out)
    return EXIT_OK


# --- trust and status lists ---------------------------------------------------------------------


def _issuer_entry(entry: Any, base: Path) -> trust.TrustedIssuer:
    if not isinstance(entry, dict):
        raise UsageError("each issuer must be a JSON object")
    keys = []
    for key in entry.get("keys", []):
        if isinstance(key, str):
            keys.append(load_any_public(str(base / key)))
        elif isinstance(key, dict):
            keys.append(public_jwk(load_public_jwk({k: v for k, v in key.items() if k not in ("kid", "alg", "use")})))
        else:
            raise UsageError("issuer keys must be JWK file paths or JWK objects")
    if not keys:
        raise UsageError(f"issuer {entry.get('id')!r} lists no keys")
    return trust.TrustedIssuer(
        id=entry.get("id"),
        name=entry.get("name"),
        region=entry.get("region"),
        vcts=tuple(get_type(v).vct for v in entry.get("vcts", [])),
        jwks=tuple(jwks(keys)["keys"]),
    )


def trust_list_create(args: argparse.Namespace) -> int:
    issuers = read_json(args.issuers)
    if not isinstance(issuers, list) or not issuers:
        raise UsageError(f"{args.issuers} must hold a non-empty JSON list of issuers")
    base = Path(args.issuers).parent
    entries = [_issuer_entry(e, base) for e in issuers]
    issued_at = now()
    token = trust.create_trust_list(
        entries,
        signer=load_signer(args.operator_key),
        iss=args.operator,
        iat=issued_at,
        exp=issued_at + args.valid_days * 86400,
        sequence=args.sequence,
    )
    write_file(args.out, token + "\n")
    print(f"trust list with {len(entries)} issuer(s), sequence {args.sequence}, written to {args.out}", file=sys.stderr)
    return EXIT_OK


def _sign_list(statuses: status_list.StatusList, args: argparse.Namespace, signer: SoftwareSigner, uri: str, iss: str | None) -> str:
    issued_at = now()
    return status_list.sign_status_list_token(
        statuses, signer=signer, sub=uri, iss=iss, iat=issued_at, exp=issued_at + args.valid_days * 86400, ttl=args.ttl
    )


def status_list_create(args: argparse.Namespace) -> int:
    signer = load_signer(args.key)
    token = _sign_list(status_list.StatusList.new(args.size, bits=args.bits), args, signer, args.uri, None)
    write_file(args.out, token + "\n")
    print(f"status list of {args.size} entries ({args.bits} bits) for {args.uri} written to {args.out}", file=sys.stderr)
    return EXIT_OK


def _parse_status_value(text: str) -> int:
    if text in STATUS_NAMES:
        return STATUS_NAMES[text]
    try:
        return int(text)
    except ValueError as exc:
        raise UsageError(f"--status must be one of {', '.join(STATUS_NAMES)} or a number") from exc


def status_list_set(args: argparse.Namespace) -> int:
    signer = load_signer(args.key)
    token = read_text(args.token)
    sub = jws.parse(token).payload.get("sub")
    verified = status_list.verify_status_list_token(token, key=load_public_jwk(signer.public_jwk), expected_uri=sub, now=now())
    try:
        statuses = verified.status_list.with_status(args.index, _parse_status_value(args.status))
    except (ValueError, IndexError) as exc:
        raise UsageError(str(exc)) from exc
    write_file(args.token, _sign_list(statuses, args, signer, verified.sub, verified.iss) + "\n")
    print(f"entry {args.index} of {verified.sub} set to {args.status}; list re-signed", file=sys.stderr)
    return EXIT_OK


def status_list_show(args: argparse.Namespace) -> int:
    parsed = jws.parse(read_text(args.token))
    payload = parsed.payload
    statuses = status_list.StatusList.from_json(payload.get("status_list"))
    if args.index is not None:
        try:
            value = statuses.get(args.index)
        except (ValueError, IndexError) as exc:
            raise UsageError(str(exc)) from exc
        names = {v: k for k, v in STATUS_NAMES.items()}
        print(f"{args.index}: {value} ({names.get(value, 'other')})")
        return EXIT_OK
    counts: dict[int, int] = {}
    for i in range(statuses.size):
        value = statuses.get(i)
        if value:
            counts[value] = counts.get(value, 0) + 1
    emit(
        {
            "header": dict(parsed.header),
            "sub": payload.get("sub"),
            "iss": payload.get("iss"),
            "iat": payload.get("iat"),
            "exp": payload.get("exp"),
            "ttl": payload.get("ttl"),
            "bits": statuses.bits,
            "size": statuses.size,
            "non_valid_entries": {str(k): v for k, v in sorted(counts.items())},
            "signature": "not verified (use the issuer's key: status-list set, or verify)",
        }
    )
    return EXIT_OK


# --- QR -----------------------------------------------------------------------------------------


def qr_encode(args: argparse.Namespace) -> int:
    text = read_text(args.input)
    payload = text if qr.is_compact_payload(text) else qr.encode_payload(text)
    info = qr.qr_info(payload)
    if args.format in ("png", "svg") and not args.out:
        raise UsageError(f"--out is required for --format {args.format}")
    if args.format == "png":
        write_file(args.out, qr.render_png(payload, scale=args.scale))
    elif args.format == "svg":
        write_file(args.out, qr.render_svg(payload, scale=args.scale))
    else:
        output(qr.render_terminal(payload), args.out)
    print(f"QR version {info.version} ({info.modules}x{info.modules} modules), {info.chars} characters, level M", file=sys.stderr)
    return EXIT_OK


def qr_decode(args: argparse.Namespace) -> int:
    try:
        image = Path(args.image).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.image}: {exc}") from exc
    text = qr.decode_image(image)
    print(qr.decode_payload(text) if args.expand and qr.is_compact_payload(text) else text)
    return EXIT_OK


# --- verify -------------------------------------------------------------------------------------


def _read_input(value: str) -> bytes | str:
    if value == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(value).read_bytes()
    except FileNotFoundError:
        return value  # not a file: the payload or presentation itself
    except OSError as exc:
        if len(value) > 255 or "~" in value or value.startswith(qr.PREFIX):
            return value  # too long to be a file name (ENAMETOOLONG): the text itself
        raise UsageError(f"cannot read {value}: {exc}") from exc


def _status_source(locations: list[str]) -> StatusSource:
    if not locations:
        return StatusSource.http()
    by_uri: dict[str, Callable[[], bytes]] = {}
    for location in locations:
        if location.startswith(("https://", "http://")):
            body = http_fetch(location, accept=status_list.MEDIA_TYPE)
            loader: Callable[[], bytes] = lambda url=location: http_fetch(url, accept=status_list.MEDIA_TYPE)
        else:
            try:
                body = Path(location).read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read status list {location}: {exc}") from exc
            loader = lambda path=location: Path(path).read_bytes()
        sub = jws.parse(body.decode("ascii", "replace").strip()).payload.get("sub")
        if not isinstance(sub, str):
            raise UsageError(f"{location} is not a status list token (no sub)")
        by_uri[sub] = loader

    def fetch(uri: str) -> bytes:
        if uri not in by_uri:
            raise CannotVerifyStatus(f"no status list given for {uri}")
        return by_uri[uri]().strip()

    return StatusSource(fetch)


def verify(args: argparse.Namespace) -> int:
    data = _read_input(args.input)
    try:
        trust_source = TrustListSource.from_file(args.trust_list, anchor=args.trust_anchor)
    except OSError as exc:
        raise UsageError(f"cannot read the trust list: {exc}") from exc
    policy = Policy(
        accepted_vcts=frozenset(get_type(t).vct for t in args.type) or None,
        require_key_binding=not args.no_key_binding,
        audience=args.aud or qr.OFFLINE_AUDIENCE,
        freshness=args.freshness,
    )
    verifier = Verifier(trust=trust_source, status=_status_source(args.status_list), policy=policy)
    try:
        result = verifier.verify(data, nonce=args.nonce)
    except CredentialError as exc:
        report = failure_report(exc)
        if args.json:
            emit(report)
        else:
            print(f"INVALID  {exc.code}: {exc.detail}")
            print(f"         {exc.description_zh}")
            if exc.check:
                print(f"         failed check: {exc.check} (passed: {', '.join(exc.passed) or 'none'})")
        return EXIT_INVALID
    if args.json:
        emit(result.to_dict())
    else:
        print_result(result)
    return EXIT_OK


def print_result(result: VerificationResult) -> None:
    """A human summary of a valid result, with labels from the credential type."""
    labels = {}
    try:
        ctype = get_type(result.vct)
        labels = {p[0]: ctype.label(p, "zh-CN") for p in ctype.claim_paths if len(p) == 1}
        type_name = f"{ctype.display_name('zh-CN')} / {ctype.display_name('en')}"
    except SchemaError:
        type_name = result.vct
    print(f"VALID    {type_name}")
    print(f"  issuer   {result.issuer_name.get('zh-CN', '')} {result.issuer} ({result.region})")
    for name, value in result.claims.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        print(f"  {labels.get(name, name)}: {shown}")
    print(f"  status   {result.status}; holder bound: {result.holder_bound}")
    status_age = "n/a" if result.status_list_age is None else f"{result.status_list_age:.0f} s"
    print(f"  evidence trust list issued {result.trust_list_age:.0f} s ago; status list fetched {status_age} ago")
    print(f"  checks   {', '.join(c.name for c in result.checks)}")
