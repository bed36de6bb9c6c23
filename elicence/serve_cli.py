"""``elicence serve``: run the deployment (issuer, wallet, verifier, trust list) under uvicorn.

Settings come from the environment (:mod:`elicence.config`); ``--port``, ``--host`` and ``--database-url`` override
``ELICENCE_PORT`` / ``ELICENCE_HOST`` / ``ELICENCE_DATABASE_URL``. In demo mode an empty deployment is seeded with two
authorities, an operator and 20 synthetic registered enterprises each (:func:`elicence.app.seed_demo`,
listed in ``<var>/demo-enterprises.json``), the demo department with a staff
member, and the sample portal ``/portal`` registered as its OpenID Connect client
(:func:`elicence.app.seed_demo_portal`); the start-up banner prints
where the endpoints, the API documentation (the issuer's admin API among it) and the pages are (wallet
demo page, department scan page, sample portal), with the demo operators' and staff's API keys.

The server extra (FastAPI, SQLAlchemy, uvicorn) is imported when the command runs, so the CLI's
other commands keep working in the lean (verifier SDK) install.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["add_serve_command", "serve", "app_from_env"]

EXIT_USAGE = 2


def add_serve_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to the CLI's sub-parsers."""
    serve_cmd = subparsers.add_parser(
        "serve",
        help="run the service (issuer, wallet, verifier, trust list) on the configured database",
        description="Run the eLicence service: OpenID4VCI issuer endpoints, status lists and the admin API, "
        "the wallet API and demo page under /wallet, the verifier (counter scans, OpenID4VP requests, the "
        "department page, log in with e-licence) under /verifier, the deployment's trust list under /trust, "
        "with /openapi.json and /docs. Database, KEK and public URL come from ELICENCE_* variables "
        "(embedded SQLite in var/ by default). In demo mode an empty deployment gets two authorities with "
        "a demo operator (their API keys are printed) and 20 registered enterprises each "
        "(var/demo-enterprises.json), the demo department with a staff key, and the sample portal at /portal "
        "(log in with e-licence).",
    )
    serve_cmd.add_argument("--host", help="listen address (default ELICENCE_HOST or 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, help="listen port (default ELICENCE_PORT or 8000)")
    serve_cmd.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve_cmd.add_argument("--database-url", metavar="URL",
                           help="the database (default ELICENCE_DATABASE_URL or the embedded SQLite var/elicence.db), "
                           "e.g. postgresql://user@host/elicence")
    serve_cmd.add_argument("--no-seed", action="store_true", help="do not create the demo authorities")
    serve_cmd.set_defaults(handler=serve)
    return serve_cmd


def _overrides(args: argparse.Namespace | None) -> dict[str, str]:
    """The settings the command line gives, as the variables they override."""
    from elicence.config import DATABASE_URL_ENV, HOST_ENV, PORT_ENV

    if args is None:
        return {}
    given = {PORT_ENV: args.port, HOST_ENV: args.host, DATABASE_URL_ENV: args.database_url}
    return {name: str(value) for name, value in given.items() if value is not None}


def _settings(args: argparse.Namespace | None = None) -> Any:
    from elicence.config import Settings

    return Settings.from_env({**os.environ, **_overrides(args)})


def app_from_env() -> Any:
    """The ASGI app for one worker process (uvicorn's ``--factory`` entry point)."""
    from elicence.app import create_app

    return create_app(_settings())


def serve(args: argparse.Namespace) -> int:
    """Handler of ``elicence serve``."""
    from elicence.config import ConfigError

    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"elicence: {exc.code}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.workers < 1:
        print("elicence: error: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    import uvicorn

    from elicence.app import DEMO_ENTERPRISES, endpoints, open_deployment, seed_demo, seed_demo_portal, seed_demo_verifier
    from elicence.limits import BoundedHttpToolsProtocol
    from verifier.service import CatalogueInvalid

    try:
        deployment = open_deployment(settings)
    except CatalogueInvalid as exc:  # ELICENCE_CATALOGUE_DIR names service items that do not load
        print(f"elicence: {exc.code}: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    seeding = not (args.no_seed or settings.production)
    operators = seed_demo(deployment.issuer, settings.var_dir, enterprises=DEMO_ENTERPRISES) if seeding else []
    staff = seed_demo_verifier(deployment.verifier, settings.var_dir) if seeding and deployment.verifier else []
    portal = seed_demo_portal(deployment.verifier, staff, settings.var_dir, settings.public_url) if staff else None
    _banner(settings, endpoints(deployment.issuer), operators, staff, verifier=deployment.verifier is not None,
            portal=portal is not None)
    os.environ.update(_overrides(args))  # the worker processes read their settings from the environment
    uvicorn.run("elicence.serve_cli:app_from_env", factory=True, host=settings.host, port=settings.port,
                workers=args.workers, log_level="info", proxy_headers=False,
                http=BoundedHttpToolsProtocol, loop="uvloop")
    return 0


def _banner(settings: Any, where: dict[str, Any], operators: list[Any], staff: list[Any] = (), *,
            verifier: bool = False, portal: bool = False) -> None:
    from elicence.pages import DEPARTMENT_PAGE_PATH, WALLET_PAGE_PATH
    from elicence.portal import PORTAL_PATH
    from issuer.api import admin_router

    described = settings.describe()
    url = settings.public_url
    print(f"eLicence {described['mode']} deployment: database {described['database']}, KEK {described['kek']}")
    print(f"listening on http://{settings.host}:{settings.port}  (public URL {url})")
    print(f"  OpenAPI document  {where['openapi']}")
    print(f"  API docs          {where['docs']}")
    print(f"  issuer admin docs {where['docs']}  (section \"{admin_router.tags[0]}\"; Authorize with an operator key)")
    print(f"  wallet API        {url}/wallet  (register: POST /wallet/accounts)")
    print(f"  wallet demo page  {url}{WALLET_PAGE_PATH}")
    if verifier:
        print(f"  verifier API      {url}/verifier  (service items: GET /verifier/items)")
        desk = f"{url}{DEPARTMENT_PAGE_PATH}" + (f"?department={staff[0].department}" if staff else "")
        print(f"  department page   {desk}  (窗口核验: scan a QR code; sign in with a staff key)")
    if portal:
        print(f"  sample portal     {url}{PORTAL_PATH}  (log in with e-licence; its client in {settings.var_dir}/demo-portal.json)")
    if settings.trust_key_file is not None:
        print(f"  trust list        {settings.public_url}/trust/list  (operator key: /trust/operator.jwk)")
    for slug, info in where["authorities"].items():
        print(f"  {slug}: {info['name']['zh-CN']} / {info['name']['en']}")
        print(f"    credential issuer  {info['credential_issuer']}")
        print(f"    issuer metadata    {info['metadata']}")
        print(f"    admin API          {info['admin']}")
    for op in operators:
        print(f"  demo operator of {op.authority}: Authorization: Bearer {op.api_key}")
    for member in staff:
        print(f"  demo staff of department {member.department}: Authorization: Bearer {member.api_key}")
    if (settings.var_dir / "demo-enterprises.json").is_file():
        print(f"  demo enterprises  {settings.var_dir / 'demo-enterprises.json'}  (registry records to make offers for)")
    sys.stdout.flush()
