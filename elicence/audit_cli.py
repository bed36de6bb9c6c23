"""``elicence audit verify``: check every audit chain of the deployment's database end to end.

Wired into the CLI by :func:`add_audit_commands` (``elicence.cli`` calls it with its sub-parsers).
The database comes from :class:`elicence.config.Settings` (``ELICENCE_DATABASE_URL``) unless
``--database-url`` names another. Nothing is written: the database is opened read-only in intent
and never migrated here.

SQLAlchemy is imported when the command runs, never when the CLI starts: ``elicence --help`` and the
toolbox work in the lean (verifier SDK) install.

Exit codes: 0 every chain verifies (``ok, N records in M chains``); 1 a chain is broken (its first
broken record is printed: chain, seq, reason); 2 the settings or the database cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

__all__ = ["add_audit_commands", "audit_verify", "verify_database"]

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
    return audit


def verify_database(url: str, *, out: TextIO | None = None) -> int:
    """Verify every audit chain in the database at ``url``; prints the outcome, returns the exit code.

    Raises ``FileNotFoundError`` for a SQLite file that does not exist (opening it would create it)
    and SQLAlchemy's errors when the database cannot be reached.
    """
    from sqlalchemy import inspect

    from elicence.db import make_engine, normalise_url, read_only, session_factory

    out = sys.stdout if out is None else out
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).expanduser().is_file():
            raise FileNotFoundError(f"no SQLite database at {parsed.database}")
    engine = make_engine(parsed)
    try:
        present = set(inspect(engine).get_table_names())
        records = chains = 0
        broken = []
        sessions = session_factory(engine)
        for role, table, verify_all in _audit_tables():
            if table not in present:
                continue  # this role never ran against this database
            with read_only(sessions) as session:
                for report in verify_all(session):
                    records += report.count
                    chains += 1
                    if report.broken is not None:
                        broken.append((role, report))
    finally:
        engine.dispose()
    for role, report in broken:
        b = report.broken
        print(f"BROKEN {role} chain {b.chain!r} at seq {b.seq}: {b.reason}: {b.detail}", file=out)
    if broken:
        print(f"{len(broken)} of {chains} chains broken ({records} records read)", file=out)
        return EXIT_BROKEN
    print(f"ok, {records} records in {chains} chains", file=out)
    return EXIT_OK


def audit_verify(args: argparse.Namespace) -> int:
    """Handler of ``elicence audit verify``."""
    # The server extra (SQLAlchemy) is imported here, not at module level, so that the CLI's other
    # commands keep working in the lean install.
    from sqlalchemy.exc import SQLAlchemyError

    from elicence.config import ConfigError, Settings

    url = getattr(args, "database_url", None)
    if not url:
        try:
            url = Settings.from_env().database_url
        except ConfigError as exc:
            print(f"elicence: {exc.code}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        return verify_database(url)
    except FileNotFoundError as exc:
        print(f"elicence: database_unavailable: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SQLAlchemyError, ModuleNotFoundError) as exc:
        print(f"elicence: database_unavailable: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
