"""The wallet's HTTP API (mounted beside the issuer by elicence.app.create_app): shapes, codes, statuses."""

from __future__ import annotations

import pytest


def test_register_sign_in_me_and_sign_out(wapi, wkit):
    created = wapi.register(1, name="张三")
    assert created["phone"] == wkit.phone(1) and created["display_name"] == "张三" and "password" not in repr(created)
    tokens = wapi.sign_in(1)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900 and tokens["user"]["id"] == created["id"]
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = wapi.client.get("/wallet/me", headers=headers)
    assert me.status_code == 200 and me.json() == {"user": created, "pin_set": False, "enterprises": []}
    assert me.headers["Cache-Control"] == "no-store"
    assert wapi.client.delete("/wallet/sessions", headers=headers).status_code == 204
    wapi.error(wapi.client.get("/wallet/me", headers=headers), 401, "invalid_token")


def test_token_responses_are_not_cached(wapi, wkit):
    wapi.register(1)
    r = wapi.client.post("/wallet/sessions", json={"phone": wkit.phone(1), "password": wkit.PASSWORD})
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"


@pytest.mark.parametrize("headers,code,challenge", [
    ({}, "token_required", 'Bearer realm="elicence-wallet"'),
    ({"Authorization": "Bearer "}, "token_required", 'Bearer realm="elicence-wallet"'),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "token_required", 'Bearer realm="elicence-wallet"'),
    ({"Authorization": "Bearer wat_forged"}, "invalid_token", 'Bearer realm="elicence-wallet", error="invalid_token"'),
])
def test_a_missing_or_bad_token_is_401_with_a_challenge(wapi, headers, code, challenge):
    for method, path in (("GET", "/wallet/me"), ("GET", "/wallet/credentials"), ("PUT", "/wallet/pin"),
                         ("POST", "/wallet/enterprises"), ("GET", "/wallet/usage"), ("DELETE", "/wallet/sessions")):
        r = wapi.client.request(method, path, headers=headers, json={})
        wapi.error(r, 401, code, (method, path))
        assert r.headers["WWW-Authenticate"] == challenge


def test_an_expired_access_token_is_token_expired_and_refresh_gives_a_new_one(wapi, clock):
    wapi.register(1)
    tokens = wapi.sign_in(1)
    clock.advance(900)
    wapi.error(wapi.client.get("/wallet/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}),
               401, "token_expired")
    renewed = wapi.client.post("/wallet/sessions/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert renewed.status_code == 200, renewed.text
    assert wapi.client.get("/wallet/me", headers={"Authorization": f"Bearer {renewed.json()['access_token']}"}).status_code == 200
    again = wapi.client.post("/wallet/sessions/refresh", json={"refresh_token": tokens["refresh_token"]})
    wapi.error(again, 401, "invalid_refresh_token")
    wapi.error(wapi.client.get("/wallet/me", headers={"Authorization": f"Bearer {renewed.json()['access_token']}"}),
               401, "invalid_token")


@pytest.mark.parametrize("body,status,code", [
    ({"phone": "12345", "password": "0123456789", "display_name": "x"}, 400, "invalid_phone"),
    ({"phone": "13800000001", "password": "short", "display_name": "x"}, 400, "weak_password"),
    ({"phone": "13800000001", "password": "0123456789", "display_name": ""}, 400, "invalid_value"),
    ({"phone": "13800000001", "password": "0123456789"}, 400, "invalid_request"),
    ({"phone": "13800000001", "password": "0123456789", "display_name": "x", "admin": True}, 400, "invalid_request"),
])
def test_bad_registrations_get_codes(wapi, body, status, code):
    wapi.error(wapi.client.post("/wallet/accounts", json=body), status, code, body)


def test_registering_a_taken_number_is_409(wapi):
    wapi.register(1)
    r = wapi.client.post("/wallet/accounts", json={"phone": "+86 138 0000 0001", "password": "0123456789x",
                                                   "display_name": "x"})
    wapi.error(r, 409, "phone_taken")


def test_wrong_passwords_lock_the_account_with_retry_after(wapi, wkit):
    wapi.register(1)
    body = {"phone": wkit.phone(1), "password": "wrong password"}
    for _ in range(4):
        wapi.error(wapi.client.post("/wallet/sessions", json=body), 401, "invalid_credentials")
    locked = wapi.client.post("/wallet/sessions", json=body)
    wapi.error(locked, 429, "account_locked")
    assert locked.headers["Retry-After"] == "900"


def test_the_pin_over_http(wapi):
    headers = wapi.account(1, pin=False)
    wapi.error(wapi.client.put("/wallet/pin", json={"pin": "12345"}, headers=headers), 400, "pin_format_invalid")
    wapi.error(wapi.client.put("/wallet/pin", json={"pin": "111111"}, headers=headers), 400, "pin_too_simple")
    assert wapi.client.put("/wallet/pin", json={"pin": "260817"}, headers=headers).status_code == 204
    assert wapi.client.get("/wallet/me", headers=headers).json()["pin_set"] is True
    wapi.error(wapi.client.put("/wallet/pin", json={"pin": "135790"}, headers=headers), 409, "pin_already_set")
    wapi.error(wapi.client.put("/wallet/pin", json={"pin": "135790", "old_pin": "135791"}, headers=headers),
               403, "pin_invalid")
    assert wapi.client.put("/wallet/pin", json={"pin": "135790", "old_pin": "260817"}, headers=headers).status_code == 204


def test_enterprise_members_over_http(wapi, wkit):
    lr = wapi.account(1)
    enterprise = wapi.claim(lr, 1)
    assert enterprise["uscc"] == wkit.uscc(1)
    wapi.register(2)
    staff = wapi.account(3)
    admin = wapi.add_member(lr, enterprise["id"], 2, "administrator")
    assert admin["role"] == "administrator" and admin["phone"] == wkit.phone(2)
    wapi.add_member(lr, enterprise["id"], 3, "staff")
    listed = wapi.client.get(f"/wallet/enterprises/{enterprise['id']}/members", headers=lr).json()
    assert [m["role"] for m in listed] == ["legal_representative", "administrator", "staff"]
    me = wapi.client.get("/wallet/me", headers=staff).json()
    assert me["enterprises"] == [{"enterprise": enterprise, "role": "staff"}]
    wapi.error(wapi.client.get(f"/wallet/enterprises/{enterprise['id']}/members", headers=staff), 403,
               "administrator_required")
    wapi.error(wapi.client.post(f"/wallet/enterprises/{enterprise['id']}/members",
                                json={"phone": wkit.phone(3), "role": "administrator"}, headers=staff),
               403, "legal_representative_required")
    wapi.error(wapi.client.post(f"/wallet/enterprises/{enterprise['id']}/members",
                                json={"phone": wkit.phone(3), "role": "owner"}, headers=lr), 400, "invalid_request")
    r = wapi.client.delete(f"/wallet/enterprises/{enterprise['id']}/members/{admin['user_id']}", headers=lr)
    assert r.status_code == 204
    wapi.error(wapi.client.delete(f"/wallet/enterprises/{enterprise['id']}/members/{wapi.user_id(lr)}", headers=lr),
               409, "legal_representative_fixed")


def test_claims_over_http(wapi, wkit):
    first = wapi.account(1)
    second = wapi.account(2)
    wapi.claim(first, 1)
    wapi.error(wapi.client.post("/wallet/enterprises", json={"uscc": wkit.uscc(1), "name": "x"}, headers=second),
               409, "enterprise_claimed")
    wapi.error(wapi.client.post("/wallet/enterprises", json={"uscc": "91310000MA1FL12340", "name": "x"},
                                headers=second), 400, "uscc_invalid")


def test_credentials_and_usage_over_http(wapi, wkit):
    lr = wapi.account(1)
    enterprise = wapi.claim(lr, 1)
    user = wapi.wallet.authenticate(lr["Authorization"].split()[1]).user
    kid = next(k["kid"] for k in wapi.client.get("/wallet/keys", headers=lr).json()
               if k["owner"] == f"enterprise:{enterprise['id']}")
    stored = wapi.wallet.store_credential(user, credential="eyJ.p.s~d~", vct="https://elicence.cn/vct/business-licence",
                                          issuer="https://i.example", configuration_id="business-licence",
                                          holder_kid=kid, enterprise_id=enterprise["id"])
    listed = wapi.client.get("/wallet/credentials", headers=lr).json()
    assert [c["id"] for c in listed] == [stored.id] and "credential" not in listed[0]
    assert wapi.client.get(f"/wallet/credentials?enterprise_id={enterprise['id']}", headers=lr).json() == listed
    opened = wapi.client.get(f"/wallet/credentials/{stored.id}", headers=lr).json()
    assert opened["credential"] == "eyJ.p.s~d~" and opened["enterprise_id"] == enterprise["id"]
    wapi.wallet.record_use(user, enterprise_id=enterprise["id"], credential_ids=[stored.id], channel="qr",
                           outcome="shown", disclosed=["name"])
    usage = wapi.client.get(f"/wallet/enterprises/{enterprise['id']}/usage", headers=lr).json()
    assert [r["credential_ids"] for r in usage["items"]] == [[stored.id]] and usage["next_cursor"] is None
    assert wapi.client.get("/wallet/usage", headers=lr).json() == usage
    wapi.error(wapi.client.get("/wallet/usage?cursor=zzz", headers=lr), 400, "invalid_value")
    wapi.error(wapi.client.get("/wallet/usage?limit=0", headers=lr), 400, "invalid_request")
    assert wapi.client.delete(f"/wallet/credentials/{stored.id}", headers=lr).status_code == 204
    wapi.error(wapi.client.get(f"/wallet/credentials/{stored.id}", headers=lr), 404, "not_found")


def test_keys_are_public_halves_only(wapi):
    lr = wapi.account(1)
    wapi.claim(lr, 1)
    keys = wapi.client.get("/wallet/keys", headers=lr).json()
    assert len(keys) == 2
    for key in keys:
        assert set(key["public_jwk"]) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert '"d"' not in wapi.client.get("/wallet/keys", headers=lr).text


def test_a_body_over_the_limit_is_413_before_any_handler(wapi):
    from wallet.api import MAX_BODY_BYTES

    before = wapi.snapshot()
    big = {"phone": "13800000001", "password": "x" * MAX_BODY_BYTES, "display_name": "x"}
    wapi.error(wapi.client.post("/wallet/accounts", json=big), 413, "request_too_large")

    def chunks():
        yield b'{"phone": "13800000001", "password": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'", "display_name": "x"}'

    streamed = wapi.client.post("/wallet/accounts", content=chunks(), headers={"Content-Type": "application/json"})
    wapi.error(streamed, 413, "request_too_large")
    assert wapi.snapshot() == before


def test_ids_that_are_not_ids_are_refused_before_any_lookup(wapi):
    # Found by the OpenAPI fuzz on PostgreSQL: a NUL byte in an id reached the database (500: PostgreSQL
    # text cannot hold NUL); ids are UUIDs, so anything else is refused as it arrives.
    lr = wapi.account(1)
    for request in (("GET", "/wallet/credentials?enterprise_id=%00"), ("GET", "/wallet/credentials/a%00b"),
                    ("GET", "/wallet/enterprises/%00/members"), ("DELETE", "/wallet/enterprises/e/members/%00"),
                    ("GET", "/wallet/enterprises/a%20b/usage")):
        wapi.error(wapi.client.request(*request, headers=lr), 400, "invalid_request", request)


def test_text_with_a_nul_is_refused_before_the_database(wapi):
    # PostgreSQL text cannot hold NUL (a 500 there): names and cursors with one are invalid values.
    import base64
    import json

    wapi.error(wapi.client.post("/wallet/accounts", json={"phone": "13800000009", "password": "0123456789",
                                                          "display_name": "张\x00三"}), 400, "invalid_value")
    lr = wapi.account(1)
    cursor = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00+00:00", "a\x00b"]).encode()).decode()
    wapi.error(wapi.client.get(f"/wallet/usage?cursor={cursor.rstrip('=')}", headers=lr), 400, "invalid_value")


def test_broken_json_and_unknown_routes_keep_the_error_shape(wapi):
    wapi.error(wapi.client.post("/wallet/accounts", content=b"{", headers={"Content-Type": "application/json"}),
               400, "invalid_request")
    wapi.error(wapi.client.get("/wallet/nothing-here"), 404, "not_found")


def test_the_wallet_alone_on_an_app_has_the_same_error_shapes(wallet):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from wallet import api

    app = FastAPI()
    api.install(app, wallet)
    with TestClient(app) as client:
        r = client.post("/wallet/accounts", json={"phone": 1})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        assert client.get("/wallet/none").json()["error"] == "not_found"


def test_the_openapi_document_lists_the_wallet_endpoints_with_summaries(wapi):
    spec = wapi.client.get("/openapi.json").json()
    paths = {p for p in spec["paths"] if p.startswith("/wallet")}
    assert paths == {
        "/wallet/accounts", "/wallet/sessions", "/wallet/sessions/refresh", "/wallet/pin", "/wallet/me",
        "/wallet/keys", "/wallet/enterprises", "/wallet/enterprises/{enterprise_id}/members",
        "/wallet/enterprises/{enterprise_id}/members/{member_id}", "/wallet/enterprises/{enterprise_id}/usage",
        "/wallet/credentials", "/wallet/credentials/{credential_id}", "/wallet/usage",
    }
    for path in paths:
        for operation in spec["paths"][path].values():
            assert operation.get("summary") or operation.get("description"), path
    assert "/.well-known/jwt-vc-issuer/issuers/{slug}" in spec["paths"]  # the issuer is still mounted
