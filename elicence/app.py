"""The composition root's web application: one FastAPI app that mounts the roles (issuer and wallet now).

:func:`open_issuer` turns :class:`elicence.config.Settings` into a running :class:`IssuerService`
(engine, migrations to head, keystore KEK), :func:`open_wallet` likewise a :class:`WalletService` (same
database and KEK source, its own tables); :func:`create_app` mounts them with their routers and error
handlers; :func:`seed_demo` gives an empty demo deployment two authorities and an operator each, so
that ``make run`` starts with something to try. ``elicence serve`` runs the app under uvicorn.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Response
from sqlalchemy.orm import Session, sessionmaker

from elicence import faults, limits, pages
from elicence import portal as sample_portal
from elicence.config import DEFAULT_PURGE_INTERVAL, Settings
from elicence.housekeeping import Housekeeping
from elicence.services import database_sessions, open_issuer
from issuer import api as issuer_api
from issuer.service import IssuerService
from elicence.trust_operator import TRUST_LIST_MEDIA_TYPE, TrustOperator, operator_signer
from keys.keystore import write_secret_file
from schemas.synthetic import generate_business_licence
from credentials.errors import CannotVerify
from credentials.trust import TrustList, TrustListCache
from wallet import api as wallet_api
from wallet.flows import Network, WalletFlows
from wallet.oid4vci_client import http_client
from verifier import api as verifier_api
from verifier.sdk import StatusSource, TrustListSource
from verifier.service import RegistrarMissing, Unauthorized, VerifierService, load_catalogue
from verifier.store import NotFound
from wallet.service import WalletService

__all__ = ["DEMO_AUTHORITIES", "DEMO_DEPARTMENT", "DEMO_ENTERPRISES", "DemoOperator", "DemoStaff", "seed_demo_verifier", "seed_demo_portal", "Deployment", "open_issuer", "open_wallet", "open_trust_operator",
           "open_deployment", "open_verifier", "wallet_network", "create_app", "seed_demo", "endpoints"]

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


def open_wallet(settings: Settings, *, sessions: sessionmaker[Session] | None = None) -> WalletService:
    """The wallet service on the settings' database (created and migrated to head) and KEK."""
    return WalletService(sessions=sessions or database_sessions(settings), kek=settings.kek())


def open_trust_operator(settings: Settings, issuer: IssuerService) -> TrustOperator | None:
    """The deployment's trust list operator, or ``None`` when no operator key is configured."""
    if settings.trust_key_file is None:
        return None
    signer = operator_signer(settings.trust_key_file, create=not settings.production)
    return TrustOperator(issuer=issuer, signer=signer, operator_id=f"{settings.public_url}/trust")


def _trust_fetch(settings: Settings, http: Callable[[], httpx.Client]) -> Callable[[], str]:
    """GET this deployment's trust list over HTTP, as any relying party would."""
    url = f"{settings.public_url}/trust/list"

    def fetch() -> str:
        with http() as client:
            r = client.get(url, headers={"Accept": TRUST_LIST_MEDIA_TYPE})
            r.raise_for_status()
            return r.text

    return fetch


def wallet_network(settings: Settings, trust: TrustOperator | None, *,
                   http: Callable[[], httpx.Client] = http_client,
                   verifier_roots: Callable[[], Sequence[Any]] | Sequence[Any] = ()) -> Network:
    """The wallet's outside world: this deployment's trust list, fetched over HTTP like any relying
    party's and checked with the operator key pinned here; the verifiers' registrar roots."""
    if trust is None:
        def no_trust_list() -> TrustList:
            raise CannotVerify("this deployment publishes no trust list (ELICENCE_TRUST_OPERATOR_KEY_FILE)")
        current: Callable[[], TrustList] = no_trust_list
    else:
        cache = TrustListCache(_trust_fetch(settings, http), trust.public_jwk, clock=time.time,
                               refresh_interval=trust.refresh)
        current = lambda: cache.get().trust_list  # noqa: E731
    if callable(verifier_roots):
        roots: Callable[[], Sequence[Any]] = verifier_roots
    else:
        fixed = tuple(verifier_roots)
        roots = lambda: fixed  # noqa: E731
    return Network(http=http, trust=current, verifier_roots=roots, allow_http=not settings.production)


def open_verifier(settings: Settings, trust: TrustOperator | None, *,
                  sessions: sessionmaker[Session] | None = None) -> VerifierService | None:
    """The verifier service, checking credentials against this deployment's trust list (fetched over HTTP
    with the operator key pinned) and status lists, with the service items of ``ELICENCE_CATALOGUE_DIR``
    (default: the shipped catalogue); ``None`` without a trust list to check against.

    Raises ``CatalogueInvalid`` when the deployment's catalogue does not load."""
    if trust is None:
        return None
    source = TrustListSource.from_fetch(_trust_fetch(settings, http_client), anchor=trust.public_jwk,
                                        refresh_interval=trust.refresh)
    own = settings.catalogue_dir
    catalogue = None if own is None else load_catalogue(sorted(own.glob("*.json")))
    return VerifierService(sessions=sessions or database_sessions(settings), kek=settings.kek(),
                           public_url=settings.public_url, trust=source, status=StatusSource.http(),
                           demo=not settings.production, catalogue=catalogue)


@dataclass(frozen=True)
class Deployment:
    """The services of one deployment, on one database engine."""

    issuer: IssuerService
    wallet: WalletService
    trust: TrustOperator | None
    flows: WalletFlows | None = None
    verifier: VerifierService | None = None


def open_deployment(settings: Settings) -> Deployment:
    """Every role of the deployment on the settings' database (one engine, migrated once)."""
    sessions = database_sessions(settings)
    issuer = open_issuer(settings, sessions=sessions)
    wallet = open_wallet(settings, sessions=sessions)
    trust = open_trust_operator(settings, issuer)
    verifier = open_verifier(settings, trust, sessions=sessions)

    def verifier_roots() -> Sequence[Any]:
        # The wallet trusts request objects of verifiers certified by this deployment's registrar.
        if verifier is None:
            return ()
        try:
            return verifier.registrar_certificates()
        except RegistrarMissing:
            return ()

    return Deployment(issuer=issuer, wallet=wallet, trust=trust, verifier=verifier,
                      flows=WalletFlows(wallet, wallet_network(settings, trust, verifier_roots=verifier_roots)))


#: Synthetic enterprises each demo authority's register holds after ``make run``'s first start.
DEMO_ENTERPRISES = 20


def seed_demo(issuer: IssuerService, var_dir: Path, *, enterprises: int = 0) -> list[DemoOperator]:
    """Create the demo authorities and one operator each on an empty deployment; returns the operators.

    The operators' API keys are kept in ``<var>/demo-operators.json`` (mode 0600) so that a restarted
    demo shows the same keys; nothing is created when the deployment already has authorities. With
    ``enterprises``, each authority's register also gets that many synthetic business licence records
    (the same ones on every first start), listed in ``<var>/demo-enterprises.json`` (authority, USCC,
    name) so that a newcomer can make an offer for one.
    """
    path = var_dir / "demo-operators.json"
    if issuer.authorities():
        if path.is_file():
            return [DemoOperator(**item) for item in json.loads(path.read_text(encoding="utf-8"))]
        return []
    operators, listed = [], []
    for spec in DEMO_AUTHORITIES:
        issuer.create_authority(slug=spec.slug, name_zh=spec.name_zh, name_en=spec.name_en, types=spec.types,
                                region=spec.region, actor="demo")
        created = issuer.create_operator(authority=spec.slug, name="demo operator", actor="demo")
        operators.append(DemoOperator(spec.slug, created.operator.id, created.api_key))
        rng = random.Random(f"elicence demo enterprises {spec.slug}")
        rows = [(i + 1, "business-licence", generate_business_licence(rng)) for i in range(enterprises)]
        if rows:
            issuer.import_records(spec.slug, issuer.validate_records(spec.slug, rows), actor="demo")
        listed += [{"authority": spec.slug, "uscc": c["uscc"], "name": c["name"]} for _, _, c in rows]
    var_dir.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    write_secret_file(path, json.dumps([_as_dict(o) for o in operators],
                                       ensure_ascii=False, indent=2), what="demo operator keys file")
    if listed:
        (var_dir / "demo-enterprises.json").write_text(json.dumps(listed, ensure_ascii=False, indent=2),
                                                       encoding="utf-8")
    return operators


#: The demo deployment's department: a counter of a district's enterprise service centre. Its DNS name
#: is loopback, which is what an ``x509_san_dns`` client identifier can name on one machine.
DEMO_DEPARTMENT = {"slug": "pudong-window", "name_zh": "浦东新区企业服务中心", "name_en": "Pudong Enterprise Service Centre",
                   "dns_name": "localhost", "types": ("business-licence", "food-business-permit", "staff-authorisation")}


@dataclass(frozen=True, slots=True)
class DemoStaff:
    department: str
    staff_id: str
    api_key: str


def seed_demo_verifier(verifier: VerifierService, var_dir: Path) -> list[DemoStaff]:
    """The registrar CA, the demo department and one member of its staff, on a deployment without
    departments; the staff API key is kept in ``<var>/demo-staff.json`` (mode 0600)."""
    path = var_dir / "demo-staff.json"
    if verifier.departments():
        if path.is_file():
            return [DemoStaff(**item) for item in json.loads(path.read_text(encoding="utf-8"))]
        return []
    verifier.ensure_registrar(actor="demo")
    verifier.create_department(**DEMO_DEPARTMENT, actor="demo")
    created = verifier.create_staff(department=DEMO_DEPARTMENT["slug"], name="窗口工作人员", actor="demo")
    staff = [DemoStaff(DEMO_DEPARTMENT["slug"], created.staff.id, created.api_key)]
    var_dir.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    write_secret_file(path, json.dumps([{"department": s.department, "staff_id": s.staff_id, "api_key": s.api_key}
                                        for s in staff], ensure_ascii=False, indent=2), what="demo staff keys file")
    return staff


def seed_demo_portal(verifier: VerifierService, staff: Sequence[DemoStaff], var_dir: Path,
                     public_url: str) -> sample_portal.PortalSettings | None:
    """Register the sample portal (``/portal``) as an OpenID Connect client of the demo department, with the
    redirect URI ``<public_url>/portal/callback``; ``None`` without a demo staff member to register it
    (none given, or their key is unknown to this database or revoked).

    Its client id and secret, with the key of its session cookie, are kept in ``<var>/demo-portal.json``
    (mode 0600) and reused on restart while the department still has that client for this redirect URI;
    otherwise (another port or public URL, another database) it is registered afresh.
    """
    if not staff:
        return None
    path = var_dir / sample_portal.DEMO_PORTAL_FILE
    try:
        member = verifier.authenticate(staff[0].api_key, department=staff[0].department)
    except (Unauthorized, NotFound):
        return None
    redirect_uri = f"{public_url}{sample_portal.PORTAL_PATH}/callback"
    kept = sample_portal.PortalSettings.load(path)
    if kept is not None:
        live = [p["client_id"] for p in verifier.portals(member) if p["revoked_at"] is None]
        if kept.client_id in live and kept.redirect_uri == redirect_uri:
            return kept
        if kept.client_id in live:
            verifier.revoke_portal(member, client_id=kept.client_id)
    created = verifier.register_portal(member, name=sample_portal.PORTAL_NAME, redirect_uris=[redirect_uri],
                                       actor="demo")
    settings = sample_portal.PortalSettings(
        client_id=created.portal.client_id, client_secret=created.client_secret, redirect_uri=redirect_uri,
        discovery_url=f"{verifier.oidc_issuer}/.well-known/openid-configuration",
        session_key=secrets.token_urlsafe(32))
    var_dir.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    write_secret_file(path, settings.to_json(), what="sample portal settings file")
    return settings


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
    settings: Settings | None = None,
    *,
    issuer: IssuerService | None = None,
    wallet: WalletService | None = None,
    trust: TrustOperator | None = None,
    flows: WalletFlows | None = None,
    verifier: VerifierService | None = None,
    portal: sample_portal.PortalSettings | None = None,
) -> FastAPI:
    """The eLicence web application: the issuer's public and admin endpoints, the wallet API under
    ``/wallet``, the deployment's trust list under ``/trust``, ``/openapi.json``, ``/docs``.

    The sample portal (a "log in with e-licence" Relying Party) is mounted at ``/portal`` when ``portal``
    gives its settings, or in a demo deployment once :func:`seed_demo_portal` has registered it.

    Without services, all are opened from ``settings`` (default: the environment); given services,
    the app serves those alone.
    """
    if issuer is None:
        settings = settings if settings is not None else Settings.from_env()
        deployment = open_deployment(settings)
        issuer, wallet, trust, flows = deployment.issuer, deployment.wallet, deployment.trust, deployment.flows
        verifier = deployment.verifier
        if portal is None and verifier is not None and not settings.production:
            portal = sample_portal.PortalSettings.load(settings.var_dir / sample_portal.DEMO_PORTAL_FILE)
    # Looked up when they run: an app built only for its OpenAPI document may stand in placeholder services.
    housekeeping = Housekeeping(
        [("issuer", lambda: issuer.purge_expired())]
        + ([("wallet", lambda: wallet.purge_expired())] if wallet is not None else [])
        + ([("verifier", lambda: verifier.purge())] if verifier is not None else []),
        interval=settings.purge_interval if settings is not None else DEFAULT_PURGE_INTERVAL)
    app = FastAPI(
        lifespan=housekeeping.lifespan,
        title="eLicence",
        version=VERSION,
        description="Electronic business licences as SD-JWT verifiable credentials. Issuer: OpenID4VCI 1.0 "
        "(pre-authorised code), IETF Token Status List, admin API for licensing authorities. Wallet (under "
        "/wallet): accounts, enterprises and members, holder keys, credentials, usage record. Trust (under "
        "/trust): the signed list of this deployment's issuers.",
    )
    issuer_api.install(app, issuer)
    pages.install(app)  # the wallet demo page at /wallet/demo
    faults.install(app)  # a database outage: 503 + Retry-After, for every role
    limits.install(app)  # request headers above 16 KiB: 431, for every role
    if wallet is not None:
        wallet_api.install(app, wallet, flows)
    if trust is not None:
        _install_trust(app, trust)
    if verifier is not None:
        verifier_api.install(app, verifier)
    if portal is not None:
        sample_portal.install(app, portal)
    app.state.housekeeping = housekeeping
    _no_validation_422(app)

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


def _no_validation_422(app: FastAPI) -> None:
    """Every role answers a request that fails validation with 400 ``invalid_request`` in the error body,
    never with FastAPI's 422 ``HTTPValidationError``: the OpenAPI document must not promise one."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()  # cached by FastAPI as app.openapi_schema
            for item in document.get("paths", {}).values():
                for operation in item.values():
                    if "HTTPValidationError" in json.dumps(operation.get("responses", {}).get("422", "")):
                        del operation["responses"]["422"]
            for name in ("HTTPValidationError", "ValidationError"):
                document.get("components", {}).get("schemas", {}).pop(name, None)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _install_trust(app: FastAPI, operator: TrustOperator) -> None:
    @app.get("/trust/list", tags=["trust"], response_class=Response,
             responses={200: {"content": {TRUST_LIST_MEDIA_TYPE: {}}}})
    def trust_list() -> Response:
        """The signed trust list (``trustlist+jwt``) naming this deployment's issuers and their keys."""
        return Response(operator.token(), media_type=TRUST_LIST_MEDIA_TYPE,
                        headers={"Cache-Control": f"public, max-age={operator.refresh}"})

    @app.get("/trust/operator.jwk", tags=["trust"])
    def operator_key() -> Mapping[str, Any]:
        """The trust list operator's public key. Pin it from a source you trust, not from this answer."""
        return operator.public_jwk
