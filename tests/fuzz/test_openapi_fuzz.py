"""Fuzz the deployment's OpenAPI document (schemathesis): every operation of the issuer, the wallet, the
verifier and the trust list, in process (ASGI, no network), over a fresh database with the demo seed:
SQLite, and PostgreSQL too when ``ELICENCE_TEST_DATABASE_URL`` is set (some faults show only there).

Each operation gets a bounded, derandomised budget of generated requests (schema-conforming and
schema-violating), sent with the credentials that let them reach the handlers and not only the 401s:
the demo operator API key of the authority in the path for the issuer's admin API, the access token of a
registered wallet user (with an enterprise and a PIN) for the wallet, the demo staff key for the
verifier's department endpoints; authority and department slugs are pinned to the seeded ones. Every
answer must be no server error (5xx) and conform to the document: a documented status code, its
content type, and a body matching its schema (errors: ``{"error", "error_description"}``).

What the fuzzer cannot reach: inputs that are signed tokens or links to them (the credential, token and
authorisation endpoints, a wallet's offer and presentation links, ``direct_post``, receipts, the OpenID
Connect token and UserInfo endpoints) get only their parse and signature errors from random data; the
flows behind them are the role tests' work. The sample portal (``/portal``) is a mounted Starlette app
outside the OpenAPI document, and the HTML pages (``/wallet/demo``, ``/verifier/desk``) are excluded
from it; neither is fuzzed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from elicence.app import create_app, open_issuer, open_trust_operator, open_wallet, seed_demo, seed_demo_verifier, wallet_network
from elicence.config import Settings
from elicence.db import make_engine, migrate, session_factory
from elicence.scenario import licence_claims
from tests.conftest import BACKENDS
from verifier.sdk import StatusSource, TrustListSource
from verifier.service import VerifierService
from wallet.flows import WalletFlows

#: Generated requests per operation: enough to find the crashes and undocumented answers of a handler,
#: bounded so that the module runs in CI in a few minutes.
MAX_EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
WALLET_USER = {"phone": "13800000001", "password": "correct horse battery", "display_name": "张三"}
PIN = "260817"
#: The path pattern of authority and department slugs (issuer/api.py, verifier/api.py).
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


@dataclass
class Deployment:
    """The app under fuzz and the credentials that open its doors."""

    app: FastAPI
    operator_keys: dict[str, str]
    staff_keys: dict[str, str]
    wallet: Any
    _token: str | None = None

    def wallet_token(self, *, fresh: bool = False) -> str:
        """The wallet user's access token; ``fresh`` for a request that may end its session (sign-out)."""
        if fresh or self._token is None:
            token = self.wallet.sign_in(phone=WALLET_USER["phone"], password=WALLET_USER["password"]).access_token
            if fresh:
                return token
            self._token = token
        return self._token


@pytest.fixture(scope="module", params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a throwaway PostgreSQL database when one is configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('fuzz-db') / 'elicence.db'}"
        return
    server = request.getfixturevalue("_postgres")
    url = server.create("elicence_fuzz")
    try:
        yield url
    finally:
        server.drop(url)


@pytest.fixture(scope="module")
def deployment(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    var = tmp_path_factory.mktemp("fuzz")
    settings_ = Settings.from_env({"ELICENCE_DATABASE_URL": database}, var_dir=var / "var")
    engine = make_engine(settings_.database_url)
    migrate(engine)
    sessions = session_factory(engine)
    issuer = open_issuer(settings_, sessions=sessions)
    wallet = open_wallet(settings_, sessions=sessions)
    trust = open_trust_operator(settings_, issuer)
    assert trust is not None
    holder: dict[str, FastAPI] = {}

    def client() -> TestClient:
        # The roles' calls to each other (trust list, status lists, offers) go to this very app, in process.
        return TestClient(holder["app"], base_url=settings_.public_url)

    def fetch(url: str) -> str:
        return client().get(url).text

    verifier = VerifierService(sessions=sessions, kek=settings_.kek(), public_url=settings_.public_url, demo=True,
                               trust=TrustListSource.from_fetch(lambda: fetch("/trust/list"), anchor=trust.public_jwk),
                               status=StatusSource(fetch))
    operators = seed_demo(issuer, settings_.var_dir)
    staff = seed_demo_verifier(verifier, settings_.var_dir)
    flows = WalletFlows(wallet, wallet_network(settings_, trust, http=client,
                                               verifier_roots=verifier.registrar_certificates))
    app = create_app(issuer=issuer, wallet=wallet, trust=trust, flows=flows, verifier=verifier)
    holder["app"] = app

    user = wallet.register(**WALLET_USER)
    wallet.set_pin(user, pin=PIN, old_pin=None)
    claims = licence_claims(6)
    wallet.claim_enterprise(user, uscc=claims["uscc"], name=claims["name"])
    assert client().get("/openapi.json").json() == DOCUMENT, "the fuzzed document is not the one the app serves"
    try:
        yield Deployment(app=app, operator_keys={o.authority: o.api_key for o in operators},
                         staff_keys={s.department: s.api_key for s in staff}, wallet=wallet)
    finally:
        engine.dispose()


def _document() -> dict[str, Any]:
    """The deployment's OpenAPI document. It depends on the routes alone, so an app whose services are
    stand-ins gives it at collection time, with no database; the fixture checks that the live app serves
    the same document."""
    standin = object()
    app = create_app(issuer=standin, wallet=standin, trust=standin, flows=standin, verifier=standin)  # type: ignore[arg-type]
    return app.openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# Unknown query parameters are ignored, as HTTP APIs do: not a refusal the fuzzer should expect.
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, allow_extra_parameters=False)
# A body over the size limit is refused with 413 before it is validated: a rejection too.
schema.config.checks.negative_data_rejection.expected_statuses = [
    *schema.config.checks.negative_data_rejection.expected_statuses, "413"]


def _authorise(case: Any, deployment: Deployment) -> dict[str, str]:
    """Pin the slugs to the seeded authorities and department; the credentials of the path's role."""
    path = case.operation.path
    params = case.path_parameters if case.path_parameters is not None else {}
    generated = str(params.get("slug", ""))
    if "slug" in params and SLUG.fullmatch(generated):
        # A well-formed slug names a seeded authority or department; a malformed one (a negative case)
        # is sent as generated, to be refused.
        known = sorted(deployment.staff_keys if path.startswith("/verifier/") else deployment.operator_keys)
        params["slug"] = known[len(generated) % len(known)]  # both demo authorities, deterministically
    slug = params.get("slug", "")
    if path.startswith("/issuers/{slug}/admin"):
        return {"Authorization": f"Bearer {deployment.operator_keys.get(slug, 'unknown')}"}
    if path.startswith("/verifier/departments/{slug}"):
        return {"Authorization": f"Bearer {deployment.staff_keys.get(slug, 'unknown')}"}
    if path.startswith("/wallet/") and path not in ("/wallet/accounts", "/wallet/sessions/refresh") and not (
            path == "/wallet/sessions" and case.method.upper() == "POST"):
        signs_out = path == "/wallet/sessions" and case.method.upper() == "DELETE"
        return {"Authorization": f"Bearer {deployment.wallet_token(fresh=signs_out)}"}
    return {}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=timedelta(seconds=10),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_every_operation_answers_as_documented_and_never_with_a_server_error(case: Any, deployment: Deployment) -> None:
    headers = _authorise(case, deployment)
    case.call_and_validate(app=deployment.app, headers=headers, checks=CHECKS)
