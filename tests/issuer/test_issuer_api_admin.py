"""The issuer's admin HTTP API (issuer/api.py, ``/issuers/{slug}/admin``): operator authentication,
records, offers and their QR, credentials and status changes, idempotency, keys and the audit log.

Every refusal asserts the HTTP status, the ``error`` code and that nothing changed in the database
(``api.snapshot()``). Runs on SQLite, and on PostgreSQL when ``ELICENCE_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.routing import APIRoute

from credentials import jws, qr
from credentials import status_list as sl
from issuer.api import admin_router

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def _admin_requests(api) -> list[tuple[str, str, dict | None]]:
    """One request per admin route (every route of the router: a new one is covered without an edit here)."""
    params = {"slug": api.SLUG, "offer_id": UNKNOWN_ID, "credential_id": UNKNOWN_ID, "kid": "k",
              "type_name": "business-licence", "uscc": "913101136317066918"}
    bodies = {
        ("POST", "/records"): {"type": "business-licence", "claims": {}},
        ("PUT", "/records/{type_name}/{uscc}"): {"claims": {"uscc": "913101136317066918"}},
        ("POST", "/offers"): {"type": "business-licence", "uscc": "913101136317066918"},
        ("POST", "/credentials/{credential_id}/status"): {"action": "revoke", "reason": "deregistered"},
        ("POST", "/keys/rotate"): {},
        ("POST", "/keys/{kid}/compromise"): {"reason": "leaked"},
    }
    out = []
    prefix = admin_router.prefix
    for route in admin_router.routes:
        assert isinstance(route, APIRoute)
        for method in route.methods:
            suffix = route.path.removeprefix(prefix)
            out.append((method, route.path.format(**params), bodies.get((method, suffix))))
    assert len(out) >= 15
    return out


def _send(api, method: str, url: str, body, headers: dict[str, str]):
    return api.client.request(method, url, json=body, headers=headers) if body is not None else \
        api.client.request(method, url, headers=headers)


# --- authentication -----------------------------------------------------------------------------------------


def test_every_admin_endpoint_refuses_a_request_without_an_api_key(api):
    api.import_record(1)
    before = api.snapshot()
    for method, url, body in _admin_requests(api):
        r = _send(api, method, url, body, {})
        api.error(r, 401, "unauthorized", f"{method} {url}")
        assert r.headers["www-authenticate"].startswith("Bearer"), url
    assert api.snapshot() == before


def test_every_admin_endpoint_refuses_an_unknown_or_malformed_api_key(api):
    before = api.snapshot()
    requests = _admin_requests(api)
    for authorization in ("Bearer", "Bearer nonsense", f"Basic {api.keys['sh-amr']}", f"Bearer {api.keys['sh-amr']}x",
                          api.keys["sh-amr"]):
        for method, url, body in requests:
            r = _send(api, method, url, body, {"Authorization": authorization})
            api.error(r, 401, "unauthorized", f"{authorization[:12]} {method} {url}")
    assert api.snapshot() == before


def test_every_admin_endpoint_forbids_the_key_of_another_authority(api):
    api.import_record(1)
    before = api.snapshot()
    for method, url, body in _admin_requests(api):
        api.error(_send(api, method, url, body, api.admin("zj-amr")), 403, "forbidden", f"{method} {url}")
    assert api.snapshot() == before


def test_a_withdrawn_operator_key_is_refused(api):
    operator = api.service.authenticate(api.keys["sh-amr"], authority="sh-amr")
    other = api.service.create_operator(authority="sh-amr", name="second desk")
    api.service.revoke_operator(operator, operator_id=other.operator.id)
    before = api.snapshot()
    r = api.client.get(api.path("admin/credentials"), headers={"Authorization": f"Bearer {other.api_key}"})
    api.error(r, 401, "unauthorized")
    assert api.snapshot() == before


# --- records ----------------------------------------------------------------------------------------------------


def test_record_is_imported_and_read_back(api):
    claims = api.import_record(4)
    r = api.client.get(api.path(f"admin/records/business-licence/{claims['uscc']}"), headers=api.admin())
    assert r.status_code == 200
    assert r.json()["claims"] == claims
    assert r.json()["vct"] == "https://elicence.cn/vct/business-licence"
    # Re-importing replaces, it does not duplicate.
    changed = {**claims, "name": "上海新名字有限公司"}
    r = api.client.post(api.path("admin/records"), json={"type": "business-licence", "claims": changed}, headers=api.admin())
    assert r.status_code == 201
    assert len(api.snapshot()["records"]) == 1
    api.error(api.client.get(api.path("admin/records/business-licence/91310113631706691X"), headers=api.admin()),
              404, "not_found")


def _bad_uscc(uscc: str) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    return uscc[:-1] + alphabet[(alphabet.index(uscc[-1]) + 1) % 31]


def test_record_with_an_invalid_uscc_is_record_invalid_with_the_field_list(api):
    claims = api.import_record(1)
    before = api.snapshot()
    for uscc in (_bad_uscc(claims["uscc"]), "91310113631706691I", "123", ""):
        r = api.client.post(api.path("admin/records"), headers=api.admin(),
                            json={"type": "business-licence", "claims": {**claims, "uscc": uscc}})
        body = api.error(r, 400, "record_invalid", uscc)
        assert [f["path"] for f in body["fields"]] == ["uscc"], body
        assert body["fields"][0]["zh-CN"] and body["fields"][0]["en"]
    # Several bad fields: each is named.
    bad = {**claims, "uscc": _bad_uscc(claims["uscc"]), "name": ""}
    body = api.error(api.client.post(api.path("admin/records"), headers=api.admin(),
                                     json={"type": "business-licence", "claims": bad}), 400, "record_invalid")
    assert {"uscc", "name"} <= {f["path"] for f in body["fields"]}
    assert api.snapshot() == before


def test_record_of_a_type_the_authority_does_not_import_is_unknown_credential_type(api):
    claims = api.import_record(1)
    before = api.snapshot()
    for type_name in ("marriage-certificate", "food-business-permit", "staff-authorisation", ""):
        r = api.client.post(api.path("admin/records"), json={"type": type_name, "claims": claims}, headers=api.admin())
        api.error(r, 400, "unknown_credential_type", type_name)
    api.error(api.client.get(api.path(f"admin/records/marriage-certificate/{claims['uscc']}"), headers=api.admin()),
              400, "unknown_credential_type")
    assert api.snapshot() == before


def test_admin_bodies_of_the_wrong_shape_are_invalid_request(api):
    claims = api.import_record(1)
    credential, _, _ = api.issue(2)
    cid = api.credential_id(credential)
    uscc = claims["uscc"]
    endpoints = {
        ("POST", "admin/records"): [b"{bad", b"[]", b'"x"', b"null", json.dumps({"type": 5, "claims": claims}).encode(),
                                    json.dumps({"type": "business-licence", "claims": [claims]}).encode(),
                                    json.dumps({"type": "business-licence"}).encode(),
                                    json.dumps({"type": "business-licence", "claims": claims, "extra": 1}).encode()],
        ("PUT", f"admin/records/business-licence/{uscc}"): [b"{bad", b"[]", json.dumps({"claims": "x"}).encode(),
                                                            json.dumps({"claims": claims, "expires_in": "soon"}).encode()],
        ("POST", "admin/offers"): [b"{bad", b"[]", json.dumps({"type": "business-licence", "uscc": 913101136317066918}).encode(),
                                   json.dumps({"type": "business-licence", "uscc": uscc + "0"}).encode(),
                                   json.dumps({"type": "business-licence", "uscc": uscc, "expires_in": [60]}).encode(),
                                   json.dumps({"type": "business-licence"}).encode()],
        ("POST", f"admin/credentials/{cid}/status"): [b"{bad", b"[]", json.dumps({"action": 1}).encode(),
                                                     json.dumps({"action": "revoke", "reason": ["x"]}).encode(),
                                                     json.dumps({"action": "revoke", "reason": "x" * 501}).encode(),
                                                     json.dumps({"action": "revoke", "reason": "other", "by": 1}).encode()],
        ("POST", "admin/keys/rotate"): [b"{bad", b"[]", json.dumps({"alg": 256}).encode(), json.dumps({"x": 1}).encode()],
        ("POST", "admin/keys/k/compromise"): [b"{bad", b"[]", json.dumps({"reason": 1}).encode()],
    }
    before = api.snapshot()
    for (method, path), bodies in endpoints.items():
        for raw in bodies:
            r = api.client.request(method, api.path(path), content=raw,
                                   headers=api.admin(**{"Content-Type": "application/json"}))
            api.error(r, 400, "invalid_request", f"{method} {path} {raw[:60]!r}")
    assert api.snapshot() == before
    # Query parameters too.
    for query in ("limit=0", "limit=501", "limit=x", "issued_from=yesterday", "issued_from=2026-09-21T00:00:00"):
        code = "invalid_value" if query.endswith("T00:00:00") else "invalid_request"
        api.error(api.client.get(api.path(f"admin/credentials?{query}"), headers=api.admin()), 400, code, query)
    api.error(api.client.get(api.path("admin/audit?after_seq=-1"), headers=api.admin()), 400, "invalid_request")
    api.error(api.client.get(api.path("admin/credentials?type=marriage-certificate"), headers=api.admin()), 400,
              "unknown_credential_type")
    assert api.snapshot() == before


# --- offers --------------------------------------------------------------------------------------------------------


def test_offer_for_a_missing_record_or_type_is_refused(api):
    claims = api.import_record(1)
    before = api.snapshot()
    r = api.client.post(api.path("admin/offers"), json={"type": "business-licence", "uscc": _bad_uscc(claims["uscc"])},
                        headers=api.admin())
    api.error(r, 404, "not_found")
    r = api.client.post(api.path("admin/offers"), json={"type": "food-business-permit", "uscc": claims["uscc"]},
                        headers=api.admin())
    api.error(r, 400, "unknown_credential_type")
    # The record exists at sh-amr, not at zj-amr.
    r = api.client.post(api.path("admin/offers", "zj-amr"), json={"type": "business-licence", "uscc": claims["uscc"]},
                        headers=api.admin("zj-amr"))
    api.error(r, 404, "not_found")
    for expires_in in (0, 59, 30 * 86400 + 1, -1, True):
        r = api.client.post(api.path("admin/offers"), headers=api.admin(),
                            json={"type": "business-licence", "uscc": claims["uscc"], "expires_in": expires_in})
        api.error(r, 400, "invalid_value", str(expires_in))
    assert api.snapshot() == before


def test_offer_qr_png_decodes_to_the_offer_reference_uri(api):
    offer = api.offer(1)
    r = api.client.get(api.path(f"admin/offers/{offer['offer_id']}/qr.png"), headers=api.admin())
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "no-store"
    assert r.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert qr.decode_image(r.content) == offer["offer_reference_uri"]
    api.error(api.client.get(api.path(f"admin/offers/{UNKNOWN_ID}/qr.png"), headers=api.admin()), 404, "not_found")
    api.error(api.client.get(api.path(f"admin/offers/{offer['offer_id']}/qr.png", "zj-amr"), headers=api.admin("zj-amr")),
              404, "not_found")


def test_offer_state_follows_the_offer_and_withdrawal_is_refused_once_issued(api):
    offer = api.offer(1)
    url = api.path(f"admin/offers/{offer['offer_id']}")
    state = api.client.get(url, headers=api.admin()).json()
    assert (state["state"], state["pin_attempts"]) == ("offered", 0)
    api.issue(1, imported=True)
    _, _, issued = api.issue(2)
    assert api.client.get(api.path(f"admin/offers/{issued['offer_id']}"), headers=api.admin()).json()["state"] == "issued"
    r = api.client.delete(url, headers=api.admin())
    assert r.status_code == 200 and r.json()["state"] == "withdrawn"
    before = api.snapshot()
    api.error(api.client.delete(url, headers=api.admin()), 409, "invalid_transition")
    api.error(api.client.delete(api.path(f"admin/offers/{issued['offer_id']}"), headers=api.admin()), 409,
              "invalid_transition")
    api.error(api.client.delete(api.path(f"admin/offers/{UNKNOWN_ID}"), headers=api.admin()), 404, "not_found")
    api.error(api.client.get(api.path("admin/offers/not-a-uuid"), headers=api.admin()), 404, "not_found")
    assert api.snapshot() == before


# --- idempotency ------------------------------------------------------------------------------------------------


def test_offer_retried_with_the_same_idempotency_key_is_created_once(api):
    claims = api.import_record(1)
    body = {"type": "business-licence", "uscc": claims["uscc"]}
    first = api.client.post(api.path("admin/offers"), json=body, headers=api.admin(**{"Idempotency-Key": "offer-1"}))
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    before = api.snapshot()
    again = api.client.post(api.path("admin/offers"), json=body, headers=api.admin(**{"Idempotency-Key": "offer-1"}))
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert api.snapshot() == before
    assert len(before["offers"]) == 1
    # The replayed answer is a working offer: its PIN redeems it.
    assert api.token_response(again.json()).status_code == 200
    # The stored outcome keeps that PIN sealed: the database alone does not show it.
    from sqlalchemy import text

    with api.sessions() as session:
        stored = session.execute(text("SELECT response FROM issuer_idempotency")).scalar_one()
    assert first.json()["tx_code"] not in str(stored) and first.json()["offer_id"] not in str(stored)


def test_idempotency_key_reused_for_another_request_is_409(api):
    claims = api.import_record(1)
    other = api.import_record(2)
    key = api.admin(**{"Idempotency-Key": "offer-1"})
    assert api.client.post(api.path("admin/offers"), json={"type": "business-licence", "uscc": claims["uscc"]},
                           headers=key).status_code == 201
    before = api.snapshot()
    for body in ({"type": "business-licence", "uscc": other["uscc"]},
                 {"type": "business-licence", "uscc": claims["uscc"], "expires_in": 600}):
        r = api.client.post(api.path("admin/offers"), json=body, headers=key)
        api.error(r, 409, "idempotency_key_reused", json.dumps(body))
    assert api.snapshot() == before
    # Keys belong to the operator: another authority's operator may use the same key for its own request.
    zj = api.import_record(3, slug="zj-amr")
    r = api.client.post(api.path("admin/offers", "zj-amr"), json={"type": "business-licence", "uscc": zj["uscc"]},
                        headers=api.admin("zj-amr", **{"Idempotency-Key": "offer-1"}))
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers


def test_invalid_idempotency_key_is_refused(api):
    claims = api.import_record(1)
    before = api.snapshot()
    for key, code in (("x" * 256, "invalid_request"), ("", "invalid_value")):
        r = api.client.post(api.path("admin/offers"), json={"type": "business-licence", "uscc": claims["uscc"]},
                            headers=api.admin(**{"Idempotency-Key": key}))
        api.error(r, 400, code, key[:8])
    assert api.snapshot() == before


def test_status_change_retried_with_the_same_key_is_one_audit_record(api):
    credential, _, _ = api.issue(1)
    cid = api.credential_id(credential)
    first = api.set_status(cid, "revoke", "deregistered", **{"Idempotency-Key": "revoke-1"})
    assert first.status_code == 200
    before = api.snapshot()
    again = api.set_status(cid, "revoke", "deregistered", **{"Idempotency-Key": "revoke-1"})
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert api.snapshot() == before
    audit = api.client.get(api.path("admin/audit"), headers=api.admin()).json()
    assert [a["subject"] for a in audit if a["action"] == "credential.revoked"] == [cid]
    # Without the key, the retry is a second request: revoking a revoked credential is refused.
    api.error(api.set_status(cid, "revoke", "deregistered"), 409, "invalid_transition")
    assert api.snapshot() == before


def test_change_of_registration_retried_with_the_same_key_changes_once(api):
    credential, _, _ = api.issue(1)
    claims = api.client.get(api.path(f"admin/records/business-licence/{api.credential_row(api.credential_id(credential))['uscc']}"),
                            headers=api.admin()).json()["claims"]
    changed = {**claims, "name": "上海变更后有限公司"}
    url = api.path(f"admin/records/business-licence/{claims['uscc']}")
    headers = api.admin(**{"Idempotency-Key": "change-1"})
    first = api.client.put(url, json={"claims": changed}, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["revoked"] == [api.credential_id(credential)]
    before = api.snapshot()
    again = api.client.put(url, json={"claims": changed}, headers=headers)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert api.snapshot() == before
    # The new offer issues the changed claims, and the old credential is marked replaced.
    new_credential_text = _redeem(api, first.json()["offer"])
    assert api.verify_credential(new_credential_text).claims["name"] == "上海变更后有限公司"
    old = api.credential_row(api.credential_id(credential))
    assert (old["status"], old["reason"], old["replaced_by"]) == ("revoked", "changed", api.credential_id(new_credential_text))


def _redeem(api, offer) -> str:
    from keys.signer import SoftwareSigner

    holder = SoftwareSigner.generate("ES256")
    r = api.credential_response(api.token(offer), api.proof(holder, api.nonce()))
    assert r.status_code == 200, r.text
    return r.json()["credentials"][0]["credential"]


def test_change_of_registration_is_refused_for_a_mismatched_or_unknown_record(api):
    claims = api.import_record(1)
    other = api.import_record(2)
    before = api.snapshot()
    r = api.client.put(api.path(f"admin/records/business-licence/{claims['uscc']}"), json={"claims": other},
                       headers=api.admin())
    api.error(r, 400, "invalid_value")
    unknown = {**claims, "uscc": _fresh_uscc()}
    r = api.client.put(api.path(f"admin/records/business-licence/{unknown['uscc']}"), json={"claims": unknown},
                       headers=api.admin())
    api.error(r, 404, "not_found")
    bad = {**claims, "name": ""}
    r = api.client.put(api.path(f"admin/records/business-licence/{claims['uscc']}"), json={"claims": bad},
                       headers=api.admin())
    api.error(r, 400, "record_invalid")
    assert api.snapshot() == before


def _fresh_uscc() -> str:
    import random

    from schemas.synthetic import generate_business_licence

    return generate_business_licence(random.Random(999))["uscc"]


# --- credentials and status changes ---------------------------------------------------------------------------


def test_unknown_credential_is_not_found(api):
    credential, _, _ = api.issue(1)
    cid = api.credential_id(credential)
    before = api.snapshot()
    for bad in (UNKNOWN_ID, "not-a-uuid", cid.upper(), str(uuid.uuid4())):
        api.error(api.client.get(api.path(f"admin/credentials/{bad}"), headers=api.admin()), 404, "not_found", bad)
        api.error(api.set_status(bad, "revoke", "deregistered"), 404, "not_found", bad)
    # Another authority's operator cannot see or touch it.
    api.error(api.client.get(api.path(f"admin/credentials/{cid}", "zj-amr"), headers=api.admin("zj-amr")), 404, "not_found")
    r = api.client.post(api.path(f"admin/credentials/{cid}/status", "zj-amr"), headers=api.admin("zj-amr"),
                        json={"action": "revoke", "reason": "deregistered"})
    api.error(r, 404, "not_found")
    assert api.snapshot() == before


def test_invalid_status_transitions_are_409(api):
    credential, _, _ = api.issue(1)
    cid = api.credential_id(credential)
    before = api.snapshot()
    api.error(api.set_status(cid, "reinstate"), 409, "invalid_transition")
    assert api.snapshot() == before
    assert api.set_status(cid, "suspend").status_code == 200
    before = api.snapshot()
    api.error(api.set_status(cid, "suspend"), 409, "invalid_transition")
    assert api.snapshot() == before
    assert api.set_status(cid, "revoke", "revoked_as_penalty").status_code == 200
    before = api.snapshot()
    for action, reason in (("reinstate", None), ("suspend", None), ("revoke", "other")):
        api.error(api.set_status(cid, action, reason), 409, "invalid_transition", action)
    assert api.snapshot() == before
    assert api.credential_row(cid)["status"] == "revoked"


def test_revocation_without_a_known_reason_and_unknown_actions_are_invalid_value(api):
    credential, _, _ = api.issue(1)
    cid = api.credential_id(credential)
    before = api.snapshot()
    for action, reason in (("revoke", None), ("revoke", ""), ("revoke", "because"), ("delete", None), ("", None),
                           ("REVOKE", "deregistered")):
        api.error(api.set_status(cid, action, reason), 400, "invalid_value", f"{action}/{reason}")
    assert api.snapshot() == before


def test_credentials_are_listed_with_filters_and_pages(api):
    ids = [api.credential_id(api.issue(seed)[0]) for seed in (1, 2, 3)]
    assert api.set_status(ids[0], "revoke", "deregistered").status_code == 200
    listed = api.client.get(api.path("admin/credentials"), headers=api.admin()).json()
    assert {c["id"] for c in listed["items"]} == set(ids)
    revoked = api.client.get(api.path("admin/credentials?status=revoked"), headers=api.admin()).json()["items"]
    assert [c["id"] for c in revoked] == [ids[0]]
    uscc = api.credential_row(ids[1])["uscc"]
    by_uscc = api.client.get(api.path(f"admin/credentials?uscc={uscc}&type=business-licence"), headers=api.admin()).json()
    assert [c["id"] for c in by_uscc["items"]] == [ids[1]]
    page = api.client.get(api.path("admin/credentials?limit=2"), headers=api.admin()).json()
    rest = api.client.get(api.path(f"admin/credentials?limit=2&cursor={page['next_cursor']}"), headers=api.admin()).json()
    assert {c["id"] for c in page["items"] + rest["items"]} == set(ids) and rest["next_cursor"] is None
    # Nothing of another authority's.
    assert api.client.get(api.path("admin/credentials", "zj-amr"), headers=api.admin("zj-amr")).json()["items"] == []


def test_issue_date_filters_take_iso_8601_times_and_refuse_numbers(api):
    # Found by the OpenAPI fuzz: a number was read as a Unix time (0.5: since 1970) and listed everything.
    cid = api.credential_id(api.issue(1)[0])
    for query in ("issued_from=0.5", "issued_from=1700000000", "issued_before=0"):
        api.error(api.client.get(api.path(f"admin/credentials?{query}"), headers=api.admin()), 400, "invalid_request",
                  query)
    listed = api.client.get(api.path("admin/credentials"), params={"issued_from": "2000-01-01T00:00:00+08:00",
                                                                   "issued_before": "2999-01-01T00:00:00Z"},
                            headers=api.admin())
    assert listed.status_code == 200 and [c["id"] for c in listed.json()["items"]] == [cid]


# --- keys -------------------------------------------------------------------------------------------------------


def test_key_rotation_publishes_the_new_key_and_keeps_the_old_one_while_its_credentials_live(api):
    old_credential, _, _ = api.issue(1)
    old_kid = jws.parse(old_credential.split("~")[0]).header["kid"]
    uri = api.verify_credential(old_credential).status.uri
    etag = api.client.get(uri.removeprefix(api.PUBLIC_URL)).headers["etag"]
    r = api.client.post(api.path("admin/keys/rotate"), headers=api.admin())
    assert r.status_code == 200 and r.json()["retired"] == [old_kid]
    new_kid = r.json()["kid"]
    assert {k["kid"] for k in api.jwks()["keys"]} == {old_kid, new_kid}
    states = {k["kid"]: k["state"] for k in api.client.get(api.path("admin/keys"), headers=api.admin()).json()}
    assert states == {old_kid: "retired", new_kid: "active"}
    new_credential, _, _ = api.issue(2)
    assert jws.parse(new_credential.split("~")[0]).header["kid"] == new_kid
    assert api.verify_credential(old_credential).claims  # still verifies with the published old key
    token = api.client.get(uri.removeprefix(api.PUBLIC_URL))
    assert token.headers["etag"] != etag
    assert jws.parse(token.text).header["kid"] == new_kid
    api.error(api.client.post(api.path("admin/keys/rotate"), json={"alg": "HS256"}, headers=api.admin()), 400,
              "invalid_value")


def test_key_compromise_revokes_its_credentials_in_the_status_list(api):
    credential, _, _ = api.issue(1)
    kid = jws.parse(credential.split("~")[0]).header["kid"]
    status = api.verify_credential(credential).status
    r = api.client.post(api.path(f"admin/keys/{kid}/compromise"), json={"reason": "HSM stolen"}, headers=api.admin())
    assert r.status_code == 200, r.text
    assert r.json()["revoked_credentials"] == 1 and r.json()["new_kid"]
    assert kid not in {k["kid"] for k in api.jwks()["keys"]}
    assert api.status_list(status.uri).status(status.idx) == sl.INVALID
    assert api.credential_row(api.credential_id(credential))["reason"] == "key_compromised"
    before = api.snapshot()
    api.error(api.client.post(api.path(f"admin/keys/{kid}/compromise"), headers=api.admin()), 409, "invalid_transition")
    api.error(api.client.post(api.path("admin/keys/nokey/compromise"), headers=api.admin()), 404, "not_found")
    # Another authority's key is unknown here.
    zj_kid = api.jwks("zj-amr")["keys"][0]["kid"]
    api.error(api.client.post(api.path(f"admin/keys/{zj_kid}/compromise"), headers=api.admin()), 404, "not_found")
    assert api.snapshot() == before


# --- audit ------------------------------------------------------------------------------------------------------


def test_audit_log_records_each_act_and_its_chain_verifies(api):
    credential, _, offer = api.issue(1)
    cid = api.credential_id(credential)
    assert api.set_status(cid, "suspend").status_code == 200
    records = api.client.get(api.path("admin/audit"), headers=api.admin()).json()
    actions = [r["action"] for r in records]
    assert actions[:2] == ["authority.created", "key.generated"]
    assert actions[-3:] == ["offer.created", "credential.issued", "credential.suspended"]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    later = api.client.get(api.path(f"admin/audit?after_seq={records[-2]['seq']}"), headers=api.admin()).json()
    assert [r["seq"] for r in later] == [records[-1]["seq"]]
    report = api.client.get(api.path("admin/audit/verify"), headers=api.admin()).json()
    assert report == {"chain": "sh-amr", "records": len(records), "ok": True, "broken": None}
    # The other authority's chain is its own.
    other = api.client.get(api.path("admin/audit", "zj-amr"), headers=api.admin("zj-amr")).json()
    assert all(r["subject"] != cid for r in other)
