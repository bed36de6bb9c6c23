"""The composition root's web application: one FastAPI app that mounts the roles (issuer and wallet now).

:func:`open_issuer` turns :class:`elicence.config.Settings` into a running :class:`IssuerService`
(engine, migrations to head, keystore KEK), :func:`open_wallet` likewise a :class:`WalletService` (same
database and KEK source, its own tables); :func:`create_app` mounts them with their routers and error
handlers; :func:`seed_demo` gives an empty demo deployment two authorities and an operator each, so
that ``make run`` starts with something to try. ``elicence serve`` runs the app under uvicorn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from elicence.config import Settings
from elicence.db import make_engine, migrate, session_factory
from issuer import api as issuer_api
from issuer.service import IssuerService
from keys.keystore import write_secret_file
from wallet import api as wallet_api
from wallet.service import WalletService

__all__ = ["DEMO_AUTHORITIES", "DemoOperator", "open_issuer", "open_wallet", "create_app", "seed_demo", "endpoints"]

VERSION = "0.1.0"


@dataclass(frozen=True, slots=True)
class DemoAuthority:
    slug: str
    name_zh: str
    name_en: str
    region: str
    types: tuple[str, ...]


#: The demo deployment's authorities: two bureaus of two provinces, one of them also issuing food permits.
DEMO_AUTHORITIES = (
    DemoAuthority("sh-amr", "上海市市场监督管理局", "Shanghai Administration for Market Regulation", "310000",
                  ("business-licence", "staff-authorisation")),
    DemoAuthority("zj-amr", "浙江省市场监督管理局", "Zhejiang Administration for Market Regulation", "330000",
                  ("business-licence", "food-business-permit", "staff-authorisation")),
)


@dataclass(frozen=True, slots=True)
class DemoOperator:
    authority: str
    operator_id: str
    api_key: str


def open_issuer(settings: Settings) -> IssuerService:
    """The issuer service on the settings' database (created and migrated to head) and KEK."""
    engine = make_engine(settings.database_url)
    migrate(engine)
    return IssuerService(sessions=session_factory(engine), kek=settings.kek(), public_url=settings.public_url)


def open_wallet(settings: Settings) -> WalletService:
    """The wallet service on the settings' database (created and migrated to head) and KEK."""
    engine = make_engine(settings.database_url)
    migrate(engine)
    return WalletService(sessions=session_factory(engine), kek=settings.kek())


def seed_demo(issuer: IssuerService, var_dir: Path) -> list[DemoOperator]:
    """Create the demo authorities and one operator each on an empty deployment; returns the operators.

    The operators' API keys are kept in ``<var>/demo-operators.json`` (mode 0600) so that a restarted
    demo shows the same keys; nothing is created when the deployment already has authorities.
    """
    path = var_dir / "demo-operators.json"
    if issuer.authorities():
        if path.is_file():
            return [DemoOperator(**item) for item in json.loads(path.read_text(encoding="utf-8"))]
        return []
    operators = []
    for spec in DEMO_AUTHORITIES:
        issuer.create_authority(slug=spec.slug, name_zh=spec.name_zh, name_en=spec.name_en, types=spec.types,
                                region=spec.region, actor="demo")
        created = issuer.create_operator(authority=spec.slug, name="demo operator", actor="demo")
        operators.append(DemoOperator(spec.slug, created.operator.id, created.api_key))
    var_dir.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    write_secret_file(path, json.dumps([_as_dict(o) for o in operators],
                                       ensure_ascii=False, indent=2), what="demo operator keys file")
    return operators


def _as_dict(operator: DemoOperator) -> dict[str, str]:
    return {"authority": operator.authority, "operator_id": operator.operator_id, "api_key": operator.api_key}


def endpoints(issuer: IssuerService) -> dict[str, Any]:
    """Where everything is: per authority its issuer identifier, metadata and admin base URL."""
    out: dict[str, Any] = {
        "openapi": f"{issuer.public_url}/openapi.json",
        "docs": f"{issuer.public_url}/docs",
        "authorities": {},
    }
    for auth in issuer.authorities():
        out["authorities"][auth.slug] = {
            "name": {"zh-CN": auth.name_zh, "en": auth.name_en},
            "credential_issuer": auth.issuer_id,
            "metadata": f"{issuer.public_url}/.well-known/openid-credential-issuer/issuers/{auth.slug}",
            "jwt_vc_issuer": f"{issuer.public_url}/.well-known/jwt-vc-issuer/issuers/{auth.slug}",
            "admin": f"{auth.issuer_id}/admin",
        }
    return out


def create_app(
    settings: Settings | None = None, *, issuer: IssuerService | None = None, wallet: WalletService | None = None
) -> FastAPI:
    """The eLicence web application: the issuer's public and admin endpoints, the wallet API under
    ``/wallet``, ``/openapi.json``, ``/docs``.

    Without services, both are opened from ``settings`` (default: the environment); given only an
    ``issuer``, the app serves the issuer alone.
    """
    if issuer is None:
        settings = settings if settings is not None else Settings.from_env()
        issuer = open_issuer(settings)
        if wallet is None:
            wallet = open_wallet(settings)
    app = FastAPI(
        title="eLicence",
        version=VERSION,
        description="Electronic business licences as SD-JWT verifiable credentials. Issuer: OpenID4VCI 1.0 "
        "(pre-authorised code), IETF Token Status List, admin API for licensing authorities. Wallet (under "
        "/wallet): accounts, enterprises and members, holder keys, credentials, usage record.",
    )
    issuer_api.install(app, issuer)
    if wallet is not None:
        wallet_api.install(app, wallet)

    @app.get("/", tags=["deployment"])
    def index() -> Mapping[str, Any]:
        """Where the endpoints and the API documentation are."""
        return endpoints(issuer)

    @app.get("/healthz", tags=["deployment"])
    def health() -> Mapping[str, str]:
        """Liveness: the process answers and its database is reachable."""
        issuer.authorities()
        return {"status": "ok"}

    return app
