"""The verifier's HTTP API: routes, content types, authentication, isolation (404), size limits."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from credentials import openid4vp as vp
from credentials import qr
from verifier import api


@pytest.fixture
def client(desk) -> TestClient:
    app = FastAPI()
    api.install(app, desk.service)
    return TestClient(app, base_url=desk.PUBLIC_URL)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


BASE = "/verifier/departments/pudong-window"


def test_scan_by_text_json_and_photo(desk, client):
    r = client.post(BASE + "/scans", json={"text": desk.el1(), "item": desk.FOOD_ITEM}, headers=auth(desk.api_key))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["card"]["verdict"] == "valid" and body["exemption"]["exempt"] == 1 and body["receipt"]
    r = client.post(BASE + "/scans", content=desk.el1(), headers={**auth(desk.api_key), "Content-Type": "text/plain"})
    assert r.json()["card"]["verdict"] == "valid"
    png = qr.render_png(desk.el1())
    r = client.post(BASE + "/scans?item=" + desk.TAX_ITEM, content=png,
                    headers={**auth(desk.api_key), "Content-Type": "image/png"})
    assert r.json()["card"]["verdict"] == "valid" and r.json()["exemption"]["item"]["id"] == desk.TAX_ITEM
    r = client.post("/verifier/receipts/verify", json={"receipt": body["receipt"]})
    assert r.status_code == 200 and r.json()["claims"]["item"]["id"] == desk.FOOD_ITEM


def test_a_bad_code_is_a_red_card_not_an_http_error(desk, client):
    r = client.post(BASE + "/scans", json={"text": "EL1:garbage"}, headers=auth(desk.api_key))
    assert r.status_code == 200 and r.json()["card"]["verdict"] == "invalid"


@pytest.mark.parametrize(("headers", "status", "code"), [
    ({}, 401, "unauthorized"),
    ({"Authorization": "Basic abc"}, 401, "unauthorized"),
    ({"Authorization": "Bearer elv_wrong"}, 401, "unauthorized"),
])
def test_staff_endpoints_need_a_key(desk, client, headers, status, code):
    r = client.post(BASE + "/scans", json={"text": desk.el1()}, headers=headers)
    assert (r.status_code, r.json()["error"]) == (status, code)
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_another_departments_staff_sees_404(desk, client):
    created = client.post(BASE + "/requests", json={"credentials": [{"type": "business-licence"}]},
                          headers=auth(desk.api_key)).json()
    secret = {"X-Result-Secret": created["result_secret"]}
    for path in (f"{BASE}/requests/{created['transaction_id']}/result", f"{BASE}/verifications", f"{BASE}/audit"):
        r = client.get(path, headers={**auth(desk.tax_api_key), **secret})
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = client.get(f"/verifier/departments/tax-office/requests/{created['transaction_id']}/result",
                   headers={**auth(desk.tax_api_key), **secret})
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    assert client.get(f"{BASE}/audit", headers=auth(desk.api_key)).status_code == 200


def test_the_online_flow_over_http(desk, client):
    r = client.post(BASE + "/requests", json={"item": desk.FOOD_ITEM, "purpose": "食品经营许可"},
                    headers=auth(desk.api_key))
    assert r.status_code == 201
    created = r.json()
    assert created["qr_png"].startswith("data:image/png;base64,")
    assert base64.b64decode(created["qr_png"].split(",", 1)[1]).startswith(b"\x89PNG")
    reference = vp.parse_authorization_request_uri(created["uri"])
    fetched = client.get(reference.request_uri)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"].startswith("application/oauth-authz-req+jwt")
    request = vp.verify_request_object(fetched.text, client_id=reference.client_id,
                                       trust_anchors=desk.service.registrar_certificates(), now=desk.clock.timestamp())
    poll = {**auth(desk.api_key), "X-Result-Secret": created["result_secret"]}
    result_path = f"{BASE}/requests/{created['transaction_id']}/result"
    assert client.get(result_path, headers=poll).json()["status"] == "pending"
    form = desk.answer(request, {"business-licence-copy": [(desk.licence, [])]})
    r = client.post(request.response_uri, content=urlencode(form),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (r.status_code, r.json()) == (200, {})
    again = client.post(request.response_uri, content=urlencode(form),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (again.status_code, again.json()["error"]) == (400, "response_already_received")
    got = client.get(result_path, headers=poll).json()
    assert (got["status"], got["verdict"]) == ("complete", "valid")
    assert client.get(result_path, headers=auth(desk.api_key)).status_code == 404
    assert client.get(reference.request_uri).json()["error"] == "response_already_received"


def test_direct_post_refusals_over_http(desk, client):
    created = client.post(BASE + "/requests", json={"credentials": [{"type": "business-licence"}]},
                          headers=auth(desk.api_key)).json()
    url = f"/verifier/oid4vp/responses/{created['transaction_id']}"
    r = client.post(url, json={"vp_token": {}})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = client.post(url, content="%%%", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = client.post("/verifier/oid4vp/responses/unknown", content="vp_token=%7B%7D",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (r.status_code, r.json()["error"]) == (404, "unknown_request")


def test_oversize_bodies_are_refused_before_the_handler(desk, client):
    r = client.post(BASE + "/requests", content=b"x" * (api.MAX_BODY_BYTES + 1),
                    headers={**auth(desk.api_key), "Content-Type": "application/json"})
    assert (r.status_code, r.json()["error"]) == (413, "request_too_large")
    r = client.post(BASE + "/scans", content=b"x" * (api.MAX_SCAN_BYTES + 1),
                    headers={**auth(desk.api_key), "Content-Type": "image/png"})
    assert (r.status_code, r.json()["error"]) == (413, "request_too_large")


def test_public_descriptions(desk, client):
    items = client.get("/verifier/items").json()
    assert len(items) >= 5
    assert client.get("/verifier/registrar.pem").text.startswith("-----BEGIN CERTIFICATE-----")
    department = client.get("/verifier/departments/pudong-window").json()
    assert department["client_id"] == "x509_san_dns:verify.example.gov.cn"
    assert client.get("/verifier/departments/nowhere").json()["error"] == "not_found"
    r = client.post(BASE + "/requests", json={"credentials": [{"type": "food-business-permit"}]},
                    headers=auth(desk.tax_api_key))
    assert r.status_code == 404  # the tax office's key on the window's path
    r = client.post("/verifier/departments/tax-office/requests", json={"credentials": [{"type": "food-business-permit"}]},
                    headers=auth(desk.tax_api_key))
    assert (r.status_code, r.json()["error"]) == (403, "type_not_allowed")
    r = client.post("/verifier/departments/tax-office/requests", content="{bad", headers=auth(desk.tax_api_key))
    assert (r.status_code, r.json()["error"]) == (400, "invalid_value")


def test_the_audit_chain_can_be_checked_over_http(desk, client):
    r = client.get(BASE + "/audit/verify", headers=auth(desk.api_key))
    assert r.json() == {"valid": True, "records": 2}
    assert client.get(BASE + "/audit/verify", headers=auth(desk.tax_api_key)).status_code == 404


def test_an_invalid_receipt_is_a_coded_400(client):
    # verifier.receipts is framework-free: its error reaches the API through the verifier's handler.
    r = client.post("/verifier/receipts/verify", json={"receipt": "garbage"})
    assert (r.status_code, r.json()["error"]) == (400, "receipt_invalid")
