"""The verifier mounted beside the issuer on one app (as elicence.app will): each keeps its own errors."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from issuer import api as issuer_api
from issuer.service import IssuerService
from keys.keystore import generate_kek
from verifier import api as verifier_api


def test_the_verifier_and_the_issuer_share_an_app(desk):
    app = FastAPI()
    issuer_api.install(app, IssuerService(sessions=desk.sessions, kek=generate_kek(), public_url=desk.PUBLIC_URL,
                                          clock=desk.clock))
    verifier_api.install(app, desk.service)
    client = TestClient(app, base_url=desk.PUBLIC_URL, raise_server_exceptions=False)
    r = client.post("/verifier/departments/pudong-window/scans", json={"text": desk.el1()})
    assert (r.status_code, r.json()["error"]) == (401, "unauthorized")
    r = client.get("/verifier/oid4vp/requests/unknown")
    assert (r.status_code, r.json()["error"]) == (404, "unknown_request")
    r = client.post("/verifier/departments/pudong-window/scans", json={"text": desk.el1()},
                    headers={"Authorization": f"Bearer {desk.api_key}"})
    assert r.json()["card"]["verdict"] == "valid"
    r = client.get("/.well-known/openid-credential-issuer/issuers/none")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = client.get("/no/such/route")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")


def test_the_verifier_openapi_operations_have_unique_ids_and_document_their_errors(desk):
    # Found by the OpenAPI fuzz: the GET and POST routes of /oidc/authorize and /oidc/userinfo (one route
    # with two methods) shared one operationId, which OpenAPI 3.1 s4.8.10 requires to be unique.
    app = FastAPI()
    verifier_api.install(app, desk.service)
    operations = [(path, method, op) for path, item in app.openapi()["paths"].items() for method, op in item.items()]
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids))
    assert {m for p, m, _ in operations if p == "/verifier/oidc/authorize"} == {"get", "post"}
    for path, method, op in operations:
        error = op["responses"]["400"]["content"]["application/json"]["schema"]
        assert error["required"] == ["error", "error_description"], (method, path)
    authorize = app.openapi()["paths"]["/verifier/oidc/authorize"]["get"]["responses"]
    assert {"303", "400"} <= set(authorize) and "text/html" in authorize["400"]["content"]
    client = TestClient(app, base_url=desk.PUBLIC_URL)
    for method in ("GET", "POST"):  # both methods still answer (no client_id: an error page, as JSON here)
        r = client.request(method, "/verifier/oidc/authorize", headers={"Accept": "application/json"})
        assert (r.status_code, r.json()["error"]) == (400, "invalid_client")
