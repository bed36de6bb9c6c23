"""Interop: an independent OpenID4VCI 1.0 wallet claims a credential from our issuer over real HTTP.

The wallet is the OpenWallet Foundation's ``@openid4vc/openid4vci`` client (oid4vc-ts, pinned in
``openid4vci_node/package-lock.json``), driven by ``openid4vci_node/client.mjs`` under node: the library
resolves the credential offer (by value, and by reference through ``credential_offer_uri``), fetches the
credential issuer and authorisation server metadata, makes the pre-authorised code token request with the
``tx_code``, asks the ``nonce_endpoint`` for a ``c_nonce``, builds the key proof JWT (ES256, a holder key
the script generates with node:crypto) and sends the credential request (``credential_configuration_id``,
``proofs``). Our side is the deployment's real app (``elicence.app``) under uvicorn on a free loopback
port with a throwaway SQLite database; the returned SD-JWT VC is verified with our own code against the
keys the issuer publishes (JWT VC Issuer Metadata).

Needs ``node`` (>= 20) and ``npm``; the tests are skipped, with the reason, when either is missing. The
first run installs the locked packages with ``npm ci`` into ``openid4vci_node/node_modules`` (kept for
later runs; reinstalled when the lock names other versions); a registry that cannot be reached skips the
tests with the reason, any other install failure fails them.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import uvicorn

from credentials import openid4vci as o4
from credentials.sd_jwt_vc import NEVER_DISCLOSABLE, IssuerMetadataResolver, verify_vc
from elicence.app import create_app, open_issuer, seed_demo
from elicence.config import DATABASE_URL_ENV, PORT_ENV, PUBLIC_URL_ENV, Settings
from schemas.synthetic import generate_business_licence
from verifier.sdk import http_fetch

NODE_DIR = Path(__file__).parent / "openid4vci_node"
#: The packages client.mjs imports; each must be installed at the version the lock file names.
LIBRARIES = ("@openid4vc/openid4vci", "@openid4vc/oauth2", "@openid4vc/utils")
CLIENT_TIMEOUT = 60
SLUG = "sh-amr"
CONFIGURATION = "business-licence"
VCT = "https://elicence.cn/vct/business-licence"


# --- the node client: installed once, run per test ------------------------------------------------------


@pytest.fixture(scope="module")
def node(npm_project) -> str:
    """The node executable, with the client's locked packages installed (``npm ci`` the first time)."""
    return npm_project(NODE_DIR, LIBRARIES, "the independent OpenID4VCI client")


@dataclass(frozen=True)
class ClientRun:
    returncode: int
    stdout: str
    stderr: str

    def result(self) -> dict[str, Any]:
        """The client's success output; fails the test with its error line otherwise."""
        assert self.returncode == 0, f"the node client failed (exit {self.returncode}):\n{self.stderr[-4000:]}"
        return json.loads(self.stdout)

    def error(self) -> dict[str, Any]:
        """The client's error line (the last line of stderr) after a failed run."""
        assert self.returncode == 1, (self.returncode, self.stdout[:500], self.stderr[-2000:])
        assert self.stdout == "", self.stdout[:500]
        return json.loads(self.stderr.strip().splitlines()[-1])


def run_client(node: str, offer_link: str, tx_code: str) -> ClientRun:
    # The issuer under test is http on 127.0.0.1; OpenID4VCI 1.0 s12.2.1 wants https identifiers, so the
    # library is told to accept http for this run (ELICENCE_ALLOW_HTTP -> setGlobalConfig allowInsecureUrls).
    done = subprocess.run([node, "client.mjs", offer_link, tx_code], cwd=NODE_DIR, capture_output=True,
                          text=True, timeout=CLIENT_TIMEOUT, env={**os.environ, "ELICENCE_ALLOW_HTTP": "1"})
    return ClientRun(done.returncode, done.stdout, done.stderr)


# --- our issuer: the deployment's app under uvicorn on a free loopback port -------------------------------


@dataclass(frozen=True)
class Issuer:
    public_url: str
    api_key: str

    @property
    def issuer_id(self) -> str:
        return f"{self.public_url}/issuers/{SLUG}"

    def admin(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(f"{self.issuer_id}/admin/{path}", json=body, timeout=30,
                       headers={"Authorization": f"Bearer {self.api_key}"})
        assert r.status_code == 201, (r.status_code, r.text[:500])
        return r.json()

    def offer(self, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Import record ``seed`` and create an offer for it over the admin API: (record claims, offer)."""
        claims = generate_business_licence(random.Random(seed))
        self.admin("records", {"type": CONFIGURATION, "claims": claims})
        return claims, self.admin("offers", {"type": CONFIGURATION, "uscc": claims["uscc"]})


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    var = tmp_path_factory.mktemp("openid4vci-node")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))  # bound here and handed to uvicorn: no race for the port
    port = listener.getsockname()[1]
    public_url = f"http://127.0.0.1:{port}"
    settings = Settings.from_env({DATABASE_URL_ENV: f"sqlite:///{var / 'elicence.db'}", PORT_ENV: str(port),
                                  PUBLIC_URL_ENV: public_url}, var_dir=var)
    service = open_issuer(settings)
    api_key = next(o.api_key for o in seed_demo(service, var) if o.authority == SLUG)
    server = uvicorn.Server(uvicorn.Config(create_app(issuer=service), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        for _ in range(400):  # up to 20 s for the server to start
            if server.started or not thread.is_alive():
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield Issuer(public_url, api_key)
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


# --- checks -----------------------------------------------------------------------------------------------


def assert_credential_issued_to_the_node_holder(result: dict[str, Any], issuer: Issuer, claims: dict[str, Any]) -> None:
    """Verify the credential the node client received with our code, against the issuer's published keys."""
    resolver = IssuerMetadataResolver(http_fetch)  # JWT VC Issuer Metadata -> jwks, fetched over HTTP
    verified = verify_vc(result["credential"], resolve_issuer_key=resolver, now=int(time.time()),
                         expected_vcts={VCT})
    assert verified.issuer == issuer.issuer_id
    assert verified.vct == VCT
    subject = {k: v for k, v in verified.claims.items() if k not in NEVER_DISCLOSABLE and k != "_sd_alg"}
    assert subject == claims
    # cnf.jwk is the key the node client generated and proved possession of, nothing else.
    assert verified.holder_jwk == result["holder_jwk"]
    assert result["holder_jwk"]["kty"] == "EC" and result["holder_jwk"]["crv"] == "P-256"
    assert "d" not in result["holder_jwk"]


def assert_final_1_0_requests(result: dict[str, Any], issuer: Issuer, tx_code: str) -> None:
    """The library took our metadata for OpenID4VCI 1.0 and spoke 1.0 to our endpoints."""
    assert result["version"] == "V1"  # the library's reading of our issuer metadata
    assert result["credential_issuer"] == issuer.issuer_id
    assert result["authorization_server"] == issuer.issuer_id
    calls = {(e["method"], e["url"]): e for e in result["exchanges"]}
    assert all(e["status"] == 200 for e in result["exchanges"]), result["exchanges"]
    for path in (f"/.well-known/openid-credential-issuer/issuers/{SLUG}",
                 f"/.well-known/oauth-authorization-server/issuers/{SLUG}"):
        assert ("GET", f"{issuer.public_url}{path}") in calls
    token = calls[("POST", f"{issuer.issuer_id}/token")]
    form = parse_qs(token["body"])
    assert token["content_type"] == "application/x-www-form-urlencoded"
    assert form["grant_type"] == [o4.PRE_AUTHORIZED_GRANT] and form["tx_code"] == [tx_code]
    assert ("POST", f"{issuer.issuer_id}/nonce") in calls
    credential = calls[("POST", f"{issuer.issuer_id}/credential")]
    body = json.loads(credential["body"])
    assert credential["authorization_scheme"] == "Bearer"
    assert body["credential_configuration_id"] == CONFIGURATION
    assert len(body["proofs"]["jwt"]) == 1 and "proof" not in body and "format" not in body


# --- tests ------------------------------------------------------------------------------------------------


def test_node_openid4vci_client_claims_a_credential_from_an_offer_by_value(node: str, issuer: Issuer) -> None:
    claims, offer = issuer.offer(seed=101)
    assert o4.parse_offer_uri(offer["offer_uri"]).credential_issuer == issuer.issuer_id  # by value

    result = run_client(node, offer["offer_uri"], offer["tx_code"]).result()

    assert not any("/offers/" in e["url"] for e in result["exchanges"])  # nothing to fetch: the offer was inline
    assert_final_1_0_requests(result, issuer, offer["tx_code"])
    assert_credential_issued_to_the_node_holder(result, issuer, claims)


def test_node_openid4vci_client_claims_a_credential_from_an_offer_by_reference(node: str, issuer: Issuer) -> None:
    claims, offer = issuer.offer(seed=102)
    reference = o4.parse_offer_uri(offer["offer_reference_uri"])
    assert isinstance(reference, str) and reference.startswith(issuer.issuer_id)

    result = run_client(node, offer["offer_reference_uri"], offer["tx_code"]).result()

    assert result["exchanges"][0]["method"] == "GET" and result["exchanges"][0]["url"] == reference
    assert_final_1_0_requests(result, issuer, offer["tx_code"])
    assert_credential_issued_to_the_node_holder(result, issuer, claims)


def test_node_openid4vci_client_with_a_wrong_tx_code_gets_invalid_grant(node: str, issuer: Issuer) -> None:
    claims, offer = issuer.offer(seed=103)
    pin = offer["tx_code"]
    wrong = "".join(str((int(c) + 1) % 10) for c in pin)

    error = run_client(node, offer["offer_uri"], wrong).error()

    # The library parsed our token error response (RFC 6749 s5.2) and surfaced its code.
    assert error["error"] == "invalid_grant", error
    assert error["status"] == 400 and error["step"] == "token", error
    assert not any(e["url"].endswith("/credential") for e in error["exchanges"])
    # The same offer with the right PIN still works: the refusal was the PIN's, not the client's.
    assert_credential_issued_to_the_node_holder(run_client(node, offer["offer_uri"], pin).result(), issuer, claims)
