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
