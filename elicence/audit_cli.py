"""``elicence audit verify``: check every audit chain of the deployment's database end to end;
``elicence audit reconcile``: the same, then the consistency of credentials, status lists and audit log.

Wired into the CLI by :func:`add_audit_commands` (``elicence.cli`` calls it with its sub-parsers).
The database comes from :class:`elicence.config.Settings` (``ELICENCE_DATABASE_URL``) unless
``--database-url`` names another. Nothing is written: the database is opened read-only in intent
and never migrated here.

SQLAlchemy is imported when the command runs, never when the CLI starts: ``elicence --help`` and the
toolbox work in the lean (verifier SDK) install.

Exit codes: 0 every chain verifies (``ok, N records in M chains``); 1 a chain is broken (its first
broken record is printed: chain, seq, reason); 2 the settings or the database cannot be used.

``reconcile`` (:func:`reconcile_database`) verifies the chains as ``verify`` does and then, per authority,
runs :func:`issuer.reconcile.reconcile` in the same snapshot (REPEATABLE READ on PostgreSQL, so a running
server causes no false finding): one summary line per authority, then the first ``--show`` findings
(``INCONSISTENT <authority>: <code>: <detail>``) and a last line ``consistent: ...`` or
``inconsistent: ...``. Exit codes: 0 the chains verify and every authority is consistent; 1 a chain is
broken or a finding was made; 2 settings, database or an unknown ``--authority``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["add_audit_commands", "audit_verify", "audit_reconcile", "verify_database", "reconcile_database"]

EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2


def _audit_tables() -> tuple:
    """The audit tables to verify, per role: (role, table, verify-all function); later roles add theirs."""
    from issuer import store

    return (("issuer", "issuer_audit", store.verify_all_audits),)


def add_audit_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``audit verify`` to the CLI's sub-parsers; returns the ``audit`` parser."""
    audit = subparsers.add_parser("audit", help="verify the hash-chained audit log", description="The audit log.")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="check every audit chain end to end",
        description="Recompute every record's hash and link in every audit chain of the database "
        "(ELICENCE_DATABASE_URL) and compare each chain with its head. Prints 'ok, N records in M "
        "chains' (exit 0) or the first broken record of each broken chain (exit 1).",
    )
    verify.add_argument("--database-url", metavar="URL", help="the database to check (default: ELICENCE_DATABASE_URL)")
    verify.set_defaults(handler=audit_verify)
    reconcile = actions.add_parser(
        "reconcile",
        help="verify the audit chains, then check credentials, status lists and audit log agree",
        description="Everything 'audit verify' does, then per issuing authority, in one snapshot of the "
        "database: every credential's (list, index) is unique, inside its list and marked used in the list's "
        "allocation bitmap; its status (valid, revoked, suspended) is its list's 2-bit entry; each list's "
        "used_count is the number of bits set; no entry is set without a credential at that index; every "
        "credential has its issuance audit record (naming its list and index) and its status is what its "
        "audit records of revocation, suspension and reinstatement leave it in; every audited issuance has "
        "its credential. Prints one line per authority and the first findings; exit 0 consistent, "
        "1 a chain is broken or something does not agree, 2 settings or database unusable.",
    )
    reconcile.add_argument("--database-url", metavar="URL", help="the database to check (default: ELICENCE_DATABASE_URL)")
    reconcile.add_argument("--authority", metavar="SLUG", action="append",
                           help="check only this authority (repeatable; default: all)")
    reconcile.add_argument("--show", metavar="N", type=int, default=10, help="print at most N findings (default 10)")
    reconcile.set_defaults(handler=audit_reconcile)
    return audit


@contextlib.contextmanager
def _snapshot(url: str) -> Iterator[tuple[Any, set[str]]]:
    """A read-only session on ``url`` in one snapshot, and the names of its tables.

    Raises ``FileNotFoundError`` for a SQLite file that does not exist (opening it would create it)
    and SQLAlchemy's errors when the database cannot be reached.
    """
    from sqlalchemy import inspect

    from elicence.db import make_engine, normalise_url, read_only, session_factory

    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).expanduser().is_file():
            raise FileNotFoundError(f"no SQLite database at {parsed.database}")
    engine = make_engine(parsed)
    try:
        present = set(inspect(engine).get_table_names())
        # A SQLite read transaction is a snapshot already; PostgreSQL's READ COMMITTED is not.
        snapshot = engine if parsed.get_backend_name() == "sqlite" else engine.execution_options(
            isolation_level="REPEATABLE READ")
        with read_only(session_factory(snapshot)) as session:
            yield session, present
    finally:
        engine.dispose()


def _verify_chains(session: Any, present: set[str], out: TextIO) -> bool:
    """Verify every audit chain present; prints the outcome, returns whether all verify."""
    records = chains = 0
    broken = []
    for role, table, verify_all in _audit_tables():
        if table not in present:
            continue  # this role never ran against this database
        for report in verify_all(session):
            records += report.count
            chains += 1
            if report.broken is not None:
                broken.append((role, report))
    for role, report in broken:
        b = report.broken
        print(f"BROKEN {role} chain {b.chain!r} at seq {b.seq}: {b.reason}: {b.detail}", file=out)
    if broken:
        print(f"{len(broken)} of {chains} chains broken ({records} records read)", file=out)
        return False
    print(f"ok, {records} records in {chains} chains", file=out)
    return True


def verify_database(url: str, *, out: TextIO | None = None) -> int:
    """Verify every audit chain in the database at ``url``; prints the outcome, returns the exit code.

    Raises ``FileNotFoundError`` for a SQLite file that does not exist (opening it would create it)
    and SQLAlchemy's errors when the database cannot be reached.
    """
    out = sys.stdout if out is None else out
    with _snapshot(url) as (session, present):
        return EXIT_OK if _verify_chains(session, present, out) else EXIT_BROKEN


def reconcile_database(url: str, *, authorities: Sequence[str] | None = None, show: int = 10,
                       out: TextIO | None = None) -> int:
    """Verify the audit chains, then reconcile credentials, status lists and audit log per authority
    (:func:`issuer.reconcile.reconcile`); prints the outcome, returns the exit code.

    Raises ``FileNotFoundError`` (no SQLite file), ``issuer.store.NotFound`` (an unknown authority) and
    SQLAlchemy's errors when the database cannot be reached.
    """
    from issuer.reconcile import reconcile

    out = sys.stdout if out is None else out
    with _snapshot(url) as (session, present):
        chains_ok = _verify_chains(session, present, out)
        if not {"issuer_authority", "issuer_credential", "issuer_status_list"} <= present:
            if authorities:
                from issuer.store import NotFound
                raise NotFound(f"no authority {authorities[0]!r} (no issuer tables)")
            reports = []
        else:
            reports = reconcile(session, authorities=authorities, keep=max(show, 0))
    for r in reports:
        verdict = "consistent" if r.consistent else f"{r.total} inconsistencies (" + ", ".join(
            f"{code} {n}" for code, n in sorted(r.counts.items())) + ")"
        print(f"{r.authority}: {r.credentials} credentials in {r.lists} status lists, {r.audit_records} audit records: "
              f"{verdict}", file=out)
    findings = [f for r in reports for f in r.findings][:max(show, 0)]
    for finding in findings:
        print(f"INCONSISTENT {finding}", file=out)
    bad = [r for r in reports if not r.consistent]
    credentials = sum(r.credentials for r in reports)
    if bad:
        total = sum(r.total for r in bad)
        print(f"inconsistent: {total} findings in {len(bad)} of {len(reports)} authorities "
              f"(first {len(findings)} shown)", file=out)
    elif chains_ok:
        print(f"consistent: {len(reports)} authorities, {credentials} credentials", file=out)
    else:
        print(f"inconsistent: the audit log is broken ({len(reports)} authorities otherwise consistent)", file=out)
    return EXIT_OK if chains_ok and not bad else EXIT_BROKEN


def _database_url(args: argparse.Namespace) -> str | None:
    """``--database-url`` or the settings' database; ``None`` (the reason printed) when unusable."""
    from elicence.config import ConfigError, Settings

    url = getattr(args, "database_url", None)
    if url:
        return url
    try:
        return Settings.from_env().database_url
    except ConfigError as exc:
        print(f"elicence: {exc.code}: {exc}", file=sys.stderr)
        return None


def _run(args: argparse.Namespace, check: Any) -> int:
    # The server extra (SQLAlchemy) is imported here, not at module level, so that the CLI's other
    # commands keep working in the lean install.
    from sqlalchemy.exc import SQLAlchemyError

    url = _database_url(args)
    if url is None:
        return EXIT_USAGE
    try:
        return check(url)
    except FileNotFoundError as exc:
        print(f"elicence: database_unavailable: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SQLAlchemyError, ModuleNotFoundError) as exc:
        print(f"elicence: database_unavailable: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE


def audit_verify(args: argparse.Namespace) -> int:
    """Handler of ``elicence audit verify``."""
    return _run(args, verify_database)


def audit_reconcile(args: argparse.Namespace) -> int:
    """Handler of ``elicence audit reconcile``."""
    if args.show < 0:
        print("elicence: error: --show must be 0 or more", file=sys.stderr)
        return EXIT_USAGE

    def check(url: str) -> int:
        from issuer.store import NotFound

        try:
            return reconcile_database(url, authorities=args.authority, show=args.show)
        except NotFound as exc:
            print(f"elicence: {exc.code}: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return _run(args, check)
