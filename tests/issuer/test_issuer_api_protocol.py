"""The issuer's public HTTP endpoints (issuer/api.py): metadata, OpenID4VCI offer/token/nonce/credential,
status list tokens and staff authorisations, driven as a wallet and a verifier would, in process.

Every refusal asserts the HTTP status, the ``error`` code and that nothing changed in the database
(``api.snapshot()``). Runs on SQLite, and on PostgreSQL when ``ELICENCE_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from credentials import jws
from credentials import openid4vci as o4
from credentials import sd_jwt
from credentials import status_list as sl
from keys.jwk import thumbprint
from keys.signer import SoftwareSigner

BL_VCT = "https://elicence.cn/vct/business-licence"
STAFF_VCT = "https://elicence.cn/vct/staff-authorisation"


# --- metadata -----------------------------------------------------------------------------------------------


def test_issuer_metadata_names_the_issuer_its_names_configurations_and_token_endpoint(api):
    r = api.client.get("/.well-known/openid-credential-issuer/issuers/sh-amr")
    assert r.status_code == 200
    meta = r.json()
    assert meta["credential_issuer"] == api.issuer_id
    assert meta["credential_endpoint"] == f"{api.issuer_id}/credential"
    assert meta["nonce_endpoint"] == f"{api.issuer_id}/nonce"
    names = {d["locale"]: d["name"] for d in meta["display"]}
    assert names == {"zh-CN": "上海市市场监督管理局", "en": "Shanghai Administration for Market Regulation"}
    configs = meta["credential_configurations_supported"]
    assert set(configs) == {"business-licence", "staff-authorisation"}
    assert configs["business-licence"]["format"] == "dc+sd-jwt"
    assert configs["business-licence"]["vct"] == BL_VCT
    assert configs["staff-authorisation"]["vct"] == STAFF_VCT
    # The other authority publishes its own identifier and its own types.
    other = api.client.get("/.well-known/openid-credential-issuer/issuers/zj-amr").json()
    assert other["credential_issuer"] == f"{api.PUBLIC_URL}/issuers/zj-amr"
    assert "food-business-permit" in other["credential_configurations_supported"]
    r = api.client.get("/.well-known/oauth-authorization-server/issuers/sh-amr")
    assert r.status_code == 200
    assert r.json()["issuer"] == api.issuer_id
    assert r.json()["token_endpoint"] == f"{api.issuer_id}/token"


def test_jwt_vc_issuer_metadata_publishes_the_key_that_signs_credentials(api):
    r = api.client.get("/.well-known/jwt-vc-issuer/issuers/sh-amr")
    assert r.status_code == 200
    meta = r.json()
    assert meta["issuer"] == api.issuer_id
    (key,) = meta["jwks"]["keys"]
    assert key["kid"] == thumbprint({k: v for k, v in key.items() if k in ("kty", "crv", "x", "y")})
    assert "d" not in key
    credential, _, _ = api.issue(1)
    assert jws.parse(credential.split("~")[0]).header["kid"] == key["kid"]
    assert api.verify_credential(credential).issuer == api.issuer_id


def test_metadata_of_an_unknown_authority_is_not_found(api):
    for well_known in ("openid-credential-issuer", "oauth-authorization-server", "jwt-vc-issuer"):
        api.error(api.client.get(f"/.well-known/{well_known}/issuers/gd-amr"), 404, "not_found", well_known)
        # A slug outside the pattern never reaches the service.
        api.error(api.client.get(f"/.well-known/{well_known}/issuers/SH_AMR"), 400, "invalid_request", well_known)


def test_type_metadata_is_served_at_its_vct_and_an_unknown_type_is_not_found(api):
    r = api.client.get("/vct/business-licence")
    assert r.status_code == 200
    meta = r.json()
    assert meta["vct"] == BL_VCT
    assert {d["locale"] for d in meta["display"]} >= {"zh-CN", "en"}
    api.error(api.client.get("/vct/marriage-certificate"), 404, "not_found")


def test_openapi_lists_every_issuer_path(api):
    r = api.client.get("/openapi.json")
    assert r.status_code == 200
    paths = set(r.json()["paths"])
    assert {
        "/.well-known/openid-credential-issuer/issuers/{slug}",
        "/.well-known/oauth-authorization-server/issuers/{slug}",
        "/.well-known/jwt-vc-issuer/issuers/{slug}",
        "/vct/{type_slug}",
        "/issuers/{slug}/offers/{offer_id}",
        "/issuers/{slug}/token",
        "/issuers/{slug}/nonce",
        "/issuers/{slug}/credential",
        "/issuers/{slug}/status/{list_id}",
        "/issuers/{slug}/authorisations",
        "/issuers/{slug}/admin/records",
        "/issuers/{slug}/admin/offers",
        "/issuers/{slug}/admin/offers/{offer_id}/qr.png",
        "/issuers/{slug}/admin/credentials/{credential_id}/status",
        "/issuers/{slug}/admin/keys/rotate",
        "/issuers/{slug}/admin/audit/verify",
    } <= paths


# --- the whole flow -----------------------------------------------------------------------------------------


def test_pre_authorised_flow_issues_a_key_bound_licence_with_its_row_index_and_audit_record(api):
    before = api.snapshot()
    credential, holder, offer = api.issue(7)
    verified = api.verify_credential(credential)
    assert verified.vct == BL_VCT
    assert verified.claims["uscc"] == offer["uscc"]
    assert thumbprint(verified.holder_jwk) == holder.kid
    row = api.credential_row(api.credential_id(credential))
    assert (row["status"], row["holder_thumbprint"], row["uscc"]) == ("valid", holder.kid, offer["uscc"])
    assert verified.status.idx == row["status_idx"]
    assert verified.status.uri == f"{api.issuer_id}/status/{row['status_list_id']}"
    after = api.snapshot()
    assert len(after["credentials"]) == len(before["credentials"]) + 1
    assert after["lists"][0][2] == 1  # used_count
    audit = api.client.get(api.path("admin/audit"), headers=api.admin()).json()
    issued = [a for a in audit if a["action"] == "credential.issued"]
    assert [a["subject"] for a in issued] == [row["id"]]
    assert issued[0]["details"]["status_idx"] == row["status_idx"]
    state = api.client.get(api.path(f"admin/offers/{offer['offer_id']}"), headers=api.admin()).json()
    assert state["state"] == "issued"


# --- credential offer by reference ---------------------------------------------------------------------------


def test_offer_by_reference_is_served_uncached_until_redeemed(api):
    offer = api.offer(1)
    reference = offer["credential_offer_uri"].removeprefix(api.PUBLIC_URL)
    r = api.client.get(reference)
    assert "no-store" in r.headers["cache-control"]
    doc = r.json()
    assert doc["credential_issuer"] == api.issuer_id
    assert doc["credential_configuration_ids"] == ["business-licence"]
    assert doc["grants"][o4.PRE_AUTHORIZED_GRANT]["tx_code"]["length"] == 6
    r = api.token_response(offer)
    assert r.json()["token_type"] == "Bearer" and "no-store" in r.headers["cache-control"]
    assert "no-store" in api.client.post(api.path("nonce")).headers["cache-control"]
    api.error(api.client.get(reference), 404, "not_found")


def test_offer_by_reference_is_gone_once_expired_withdrawn_or_unknown(api):
    offer = api.offer(1)
    reference = offer["credential_offer_uri"].removeprefix(api.PUBLIC_URL)
    api.clock.advance(30 * 60)
    api.error(api.client.get(reference), 404, "not_found")
    second = api.offer(2)
    assert api.client.delete(api.path(f"admin/offers/{second['offer_id']}"), headers=api.admin()).status_code == 200
    api.error(api.client.get(second["credential_offer_uri"].removeprefix(api.PUBLIC_URL)), 404, "not_found")
    api.error(api.client.get(api.path("offers/00000000-0000-4000-8000-000000000000")), 404, "not_found")
    api.error(api.client.get(api.path("offers/not-a-uuid")), 404, "not_found")
    # Another authority's offer is not served under this one.
    third = api.offer(3)
    api.error(api.client.get(f"/issuers/zj-amr/offers/{third['offer_id']}"), 404, "not_found")


# --- token endpoint ----------------------------------------------------------------------------------------------


def _form(offer_code: str, tx_code: str | None = None, grant: str = o4.PRE_AUTHORIZED_GRANT) -> dict[str, str]:
    form = {"grant_type": grant, "pre-authorized_code": offer_code}
    if tx_code is not None:
        form["tx_code"] = tx_code
    return form


def _wrong(pin: str) -> str:
    return f"{(int(pin) + 1) % 10**6:06d}"


def test_token_request_must_be_a_form(api):
    offer = api.offer(1)
    code = api.pre_authorized_code(offer)
    before = api.snapshot()
    r = api.client.post(api.path("token"), json=_form(code, offer["tx_code"]))
    api.error(r, 400, "invalid_request")
    r = api.client.post(api.path("token"), content=b"grant_type=x", headers={"Content-Type": "text/plain"})
    api.error(r, 400, "invalid_request")
    r = api.client.post(api.path("token"), content=b"\xff\xfe=\x80", headers={"Content-Type": "application/x-www-form-urlencoded"})
    api.error(r, 400, "invalid_request")
    assert api.snapshot() == before
    assert api.token_response(offer).status_code == 200  # nothing was spent


def test_token_request_with_a_missing_unknown_or_repeated_parameter_is_refused(api):
    offer = api.offer(1)
    code = api.pre_authorized_code(offer)
    before = api.snapshot()
    for form, error in [
        ({"pre-authorized_code": code, "tx_code": offer["tx_code"]}, "invalid_request"),  # RFC 6749 s5.2: missing
        ({"grant_type": "", "pre-authorized_code": code, "tx_code": offer["tx_code"]}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": code}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "pre-authorized_code": code}, "unsupported_grant_type"),
        ({"grant_type": o4.PRE_AUTHORIZED_GRANT.upper(), "pre-authorized_code": code}, "unsupported_grant_type"),
        ({"grant_type": o4.PRE_AUTHORIZED_GRANT, "tx_code": offer["tx_code"]}, "invalid_request"),
        ({"grant_type": o4.PRE_AUTHORIZED_GRANT, "pre-authorized_code": code}, "invalid_request"),  # no tx_code
    ]:
        api.error(api.client.post(api.path("token"), data=form), 400, error, str(form))
    repeated = f"grant_type={o4.PRE_AUTHORIZED_GRANT}&pre-authorized_code={code}&tx_code=1&tx_code={offer['tx_code']}"
    r = api.client.post(api.path("token"), content=repeated.encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    api.error(r, 400, "invalid_request")
    assert api.snapshot() == before
    assert api.token_response(offer, code=code).status_code == 200


def test_unknown_pre_authorised_code_is_invalid_grant(api):
    offer = api.offer(1)
    before = api.snapshot()
    api.error(api.token_response(offer, code="A" * 43), 400, "invalid_grant")
    # A code is bound to its authority: the same code at another authority is unknown there.
    api.error(api.token_response(offer, slug="zj-amr"), 400, "invalid_grant")
    api.error(api.token_response(offer, slug="gd-amr"), 400, "invalid_grant")
    assert api.snapshot() == before


def test_replayed_pre_authorised_code_is_invalid_grant(api):
    offer = api.offer(1)
    code = api.pre_authorized_code(offer)
    assert api.token_response(offer, code=code).status_code == 200
    before = api.snapshot()
    api.error(api.token_response(offer, code=code), 400, "invalid_grant")
    assert api.snapshot() == before


def test_wrong_pin_is_invalid_grant_and_each_attempt_is_counted(api):
    offer = api.offer(1)
    code = api.pre_authorized_code(offer)
    state_url = api.path(f"admin/offers/{offer['offer_id']}")
    for attempt in range(1, 4):
        before = api.snapshot()
        api.error(api.token_response(offer, code=code, tx_code=_wrong(offer["tx_code"])), 400, "invalid_grant")
        assert api.client.get(state_url, headers=api.admin()).json()["pin_attempts"] == attempt
        after = api.snapshot()
        # The attempt counter is the only thing that moved.
        assert {k: v for k, v in after.items() if k != "offers"} == {k: v for k, v in before.items() if k != "offers"}
    # The right PIN still works after a few wrong ones.
    assert api.token_response(offer, code=code).status_code == 200


def test_pin_attempts_are_exhausted_after_five_wrong_pins(api):
    offer = api.offer(1)
    code = api.pre_authorized_code(offer)
    for _ in range(5):
        api.error(api.token_response(offer, code=code, tx_code=_wrong(offer["tx_code"])), 400, "invalid_grant")
    state = api.client.get(api.path(f"admin/offers/{offer['offer_id']}"), headers=api.admin()).json()
    assert state["pin_attempts"] == 5
    before = api.snapshot()
    body = api.error(api.token_response(offer, code=code), 400, "invalid_grant")  # even the right PIN
    assert "too many" in body["error_description"]
    assert api.snapshot() == before
    assert not before["tokens"]


def test_expired_offer_is_invalid_grant(api):
    offer = api.offer(1)
    code = api.pre_authorized_code(offer)
    api.clock.advance(30 * 60 + 1)
    before = api.snapshot()
    body = api.error(api.token_response(offer, code=code), 400, "invalid_grant")
    assert "expired" in body["error_description"]
    assert api.snapshot() == before


def test_withdrawn_offer_is_invalid_grant(api):
    offer = api.offer(1)
    code = api.pre_authorized_code(offer)
    assert api.client.delete(api.path(f"admin/offers/{offer['offer_id']}"), headers=api.admin()).status_code == 200
    before = api.snapshot()
    api.error(api.token_response(offer, code=code), 400, "invalid_grant")
    assert api.snapshot() == before


# --- nonce endpoint ------------------------------------------------------------------------------------------------


def test_nonce_endpoint_gives_a_fresh_nonce_each_time(api):
    assert api.nonce() != api.nonce()
    before = api.snapshot()
    api.error(api.client.post(api.path("nonce", "gd-amr")), 404, "not_found")
    assert api.snapshot() == before


# --- credential endpoint ---------------------------------------------------------------------------------------


@pytest.fixture
def ready(api):
    """A redeemed offer, a fresh nonce and a holder key: one credential request away from issuance."""
    offer = api.offer(1)
    access_token = api.token(offer)
    nonce = api.nonce()
    holder = SoftwareSigner.generate("ES256")
    return access_token, nonce, holder


def _retry_succeeds(api, access_token: str, nonce: str, holder) -> None:
    """The refused request spent nothing: the same token and nonce still get the credential."""
    r = api.credential_response(access_token, api.proof(holder, nonce))
    assert r.status_code == 200, r.text


def test_credential_request_without_a_valid_access_token_is_401_invalid_token(api, ready):
    access_token, nonce, holder = ready
    before = api.snapshot()
    body = {"credential_configuration_id": "business-licence", "proofs": {"jwt": [api.proof(holder, nonce)]}}
    for authorization in [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not a token",
                          "Bearer " + "A" * 43, f"Bearer {access_token}x", f"DPoP {access_token}"]:
        headers = {} if authorization is None else {"Authorization": authorization}
        r = api.client.post(api.path("credential"), headers=headers, json=body)
        api.error(r, 401, "invalid_token", repr(authorization))
        assert r.headers["www-authenticate"].startswith("Bearer"), authorization
    # Refused before the body is read: even a broken body gets the 401.
    r = api.client.post(api.path("credential"), content=b"{bad", headers={"Content-Type": "application/json"})
    api.error(r, 401, "invalid_token")
    assert api.snapshot() == before
    _retry_succeeds(api, access_token, nonce, holder)


def test_used_access_token_is_401_invalid_token(api, ready):
    access_token, nonce, holder = ready
    _retry_succeeds(api, access_token, nonce, holder)
    before = api.snapshot()
    r = api.credential_response(access_token, api.proof(holder, api.nonce()))
    after_nonce = api.snapshot()
    api.error(r, 401, "invalid_token")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert len(after_nonce["credentials"]) == len(before["credentials"])


def test_access_token_of_another_authority_or_expired_is_401_invalid_token(api, ready):
    access_token, _, holder = ready
    nonce = api.nonce("zj-amr")
    before = api.snapshot()
    r = api.credential_response(access_token, api.proof(holder, nonce, aud=f"{api.PUBLIC_URL}/issuers/zj-amr"),
                                slug="zj-amr")
    api.error(r, 401, "invalid_token")
    assert api.snapshot() == before
    api.clock.advance(301)
    nonce = api.nonce()
    before = api.snapshot()
    api.error(api.credential_response(access_token, api.proof(holder, nonce)), 401, "invalid_token")
    assert api.snapshot() == before


def test_stale_nonce_is_invalid_nonce(api):
    holder = SoftwareSigner.generate("ES256")
    offer = api.offer(1)
    nonce = api.nonce()
    api.clock.advance(299)
    access_token = api.token(offer)
    fresh = api.nonce()  # issued later: still good after the first one has expired
    api.clock.advance(2)
    before = api.snapshot()
    api.error(api.credential_response(access_token, api.proof(holder, nonce)), 400, "invalid_nonce")
    assert api.snapshot() == before
    _retry_succeeds(api, access_token, fresh, holder)


def test_reused_nonce_is_invalid_nonce(api, ready):
    access_token, nonce, holder = ready
    _retry_succeeds(api, access_token, nonce, holder)
    second_token = api.token(api.offer(2))
    before = api.snapshot()
    api.error(api.credential_response(second_token, api.proof(holder, nonce)), 400, "invalid_nonce")
    assert api.snapshot() == before
    _retry_succeeds(api, second_token, api.nonce(), holder)


def test_unknown_nonce_is_invalid_nonce(api, ready):
    access_token, nonce, holder = ready
    before = api.snapshot()
    api.error(api.credential_response(access_token, api.proof(holder, "never-issued")), 400, "invalid_nonce")
    assert api.snapshot() == before
    _retry_succeeds(api, access_token, nonce, holder)


def _proof_with_header_key_of(api, signer, header_key, nonce):
    payload = {"aud": api.issuer_id, "iat": api.clock.timestamp(), "nonce": nonce}
    return jws.sign(payload, signer, typ=o4.PROOF_TYP, header={"jwk": dict(header_key.public_jwk)}, include_kid=False)


def test_bad_key_proof_is_invalid_proof(api, ready):
    access_token, nonce, holder = ready
    t = api.clock.timestamp()
    claims = {"aud": api.issuer_id, "iat": t, "nonce": nonce}
    jwk = {"jwk": dict(holder.public_jwk)}
    cases = {
        "signed-by-another-key": _proof_with_header_key_of(api, SoftwareSigner.generate("ES256"), holder, nonce),
        "wrong-aud": api.proof(holder, nonce, aud=f"{api.PUBLIC_URL}/issuers/zj-amr"),
        "aud-array": jws.sign({**claims, "aud": [api.issuer_id]}, holder, typ=o4.PROOF_TYP, header=jwk, include_kid=False),
        "wrong-typ": jws.sign(claims, holder, typ="JWT", header=jwk, include_kid=False),
        "too-old": api.proof(holder, nonce, iat=t - 301),
        "future": api.proof(holder, nonce, iat=t + 120),
        "no-nonce": api.proof(holder, None),
        "iss-for-anonymous-access": api.proof(holder, nonce) and o4.make_proof(holder, audience=api.issuer_id,
                                                                                 nonce=nonce, iat=t, issuer="wallet"),
        "kid-instead-of-jwk": jws.sign(claims, holder, typ=o4.PROOF_TYP),
        "private-key-in-header": jws.sign(claims, holder, typ=o4.PROOF_TYP, include_kid=False, header={"jwk": {
            **holder.public_jwk, "d": "AAAA"}}),
        "not-a-jws": "not.a.jws",
    }
    before = api.snapshot()
    for case, proof in cases.items():
        api.error(api.credential_response(access_token, proof), 400, "invalid_proof", case)
    assert api.snapshot() == before
    _retry_succeeds(api, access_token, nonce, holder)


def test_proof_signed_with_the_issuers_own_key_is_refused(api, ready):
    """A holder key equal to the issuer's signing key: the service refuses to bind a credential to it."""
    # The issuer's private key is not reachable over HTTP, so the wallet side cannot make this proof;
    # the check is exercised through the service's keystore (same process, same database).
    access_token, nonce, holder = ready
    from issuer import store

    with store.unit_of_work(api.sessions) as tx:
        own = api.service._signer(tx, api.SLUG)
    before = api.snapshot()
    api.error(api.credential_response(access_token, api.proof(own, nonce)), 400, "invalid_proof")
    assert api.snapshot() == before


MALFORMED_REQUESTS = [
    ({"credential_configuration_id": "marriage-certificate", "proofs": {"jwt": ["x"]}}, "unknown_credential_configuration"),
        ({"credential_configuration_id": "food-business-permit", "proofs": {"jwt": ["x"]}}, "unknown_credential_configuration"),
        ({"credential_configuration_id": 5, "proofs": {"jwt": ["x"]}}, "invalid_credential_request"),
        ({"proofs": {"jwt": ["x"]}}, "invalid_credential_request"),
        ([{"credential_configuration_id": "business-licence"}], "invalid_credential_request"),
        ("business-licence", "invalid_credential_request"),
        (None, "invalid_credential_request"),
        ({"credential_configuration_id": "business-licence"}, "invalid_proof"),
        ({"credential_configuration_id": "business-licence", "proofs": {"jwt": [5]}}, "invalid_proof"),
        ({"credential_configuration_id": "business-licence", "proofs": {"jwt": "x"}}, "invalid_proof"),
        ({"credential_configuration_id": "business-licence", "proofs": [["x"]]}, "invalid_proof"),
        ({"credential_configuration_id": "business-licence", "proofs": {"jwt": ["x", "y"]}}, "invalid_credential_request"),
        ({"credential_configuration_id": "business-licence", "proofs": {"jwt": ["x"]},
          "credential_response_encryption": {}}, "invalid_encryption_parameters"),
]


def test_malformed_credential_request_is_refused(api, ready):
    access_token, nonce, holder = ready
    before = api.snapshot()
    for body, code in MALFORMED_REQUESTS:
        r = api.client.post(api.path("credential"), content=json.dumps(body).encode(),
                            headers={"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"})
        api.error(r, 400, code, json.dumps(body))
    assert api.snapshot() == before
    _retry_succeeds(api, access_token, nonce, holder)


def test_broken_json_at_the_credential_endpoint_is_invalid_credential_request(api, ready):
    access_token, nonce, holder = ready
    before = api.snapshot()
    for raw in [b"{bad", b"", b'{"a": 1', b"\xff\xfe{}", b"\xed\xb3\xbf", b"{} {}",
                b'{"credential_configuration_id": "business-licence", "x": NaN}', b'{"x": Infinity}']:
        r = api.client.post(api.path("credential"), content=raw,
                            headers={"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"})
        api.error(r, 400, "invalid_credential_request", repr(raw))
    assert api.snapshot() == before
    _retry_succeeds(api, access_token, nonce, holder)


def test_access_token_for_one_configuration_cannot_get_another(api, ready):
    access_token, nonce, holder = ready
    before = api.snapshot()
    r = api.credential_response(access_token, api.proof(holder, nonce), configuration="staff-authorisation")
    api.error(r, 400, "invalid_credential_request")
    assert api.snapshot() == before
    _retry_succeeds(api, access_token, nonce, holder)


# --- status list tokens ----------------------------------------------------------------------------------------


def _status_uri(api, credential: str) -> tuple[str, int]:
    status = api.verify_credential(credential).status
    return status.uri, status.idx


def test_status_list_token_is_served_with_its_media_type_caching_headers_and_ttl(api):
    credential, _, _ = api.issue(1)
    uri, idx = _status_uri(api, credential)
    r = api.client.get(uri.removeprefix(api.PUBLIC_URL))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/statuslist+jwt"
    assert r.headers["cache-control"] == f"public, max-age={api.service.policy.status_ttl}"
    assert r.headers["etag"].startswith('"') and r.headers["etag"].endswith('"')
    verified = api.status_list(uri, r)
    assert verified.ttl == api.service.policy.status_ttl
    assert verified.iss == api.issuer_id
    assert verified.status(idx) == sl.VALID
    assert verified.exp is not None and verified.exp > verified.iat


def test_status_list_token_answers_304_to_its_etag(api):
    credential, _, _ = api.issue(1)
    uri, _ = _status_uri(api, credential)
    path = uri.removeprefix(api.PUBLIC_URL)
    etag = api.client.get(path).headers["etag"]
    for header in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        r = api.client.get(path, headers={"If-None-Match": header})
        assert r.status_code == 304, header
        assert r.content == b""
        assert r.headers["etag"] == etag
        assert r.headers["cache-control"] == f"public, max-age={api.service.policy.status_ttl}"
    assert api.client.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200


@pytest.mark.parametrize(("action", "reason", "expected"), [("revoke", "revoked_as_penalty", sl.INVALID),
                                                             ("suspend", None, sl.SUSPENDED)])
def test_acknowledged_status_change_is_in_the_next_status_token_served(api, action, reason, expected):
    credential, _, _ = api.issue(1)
    other, _, _ = api.issue(2)
    uri, idx = _status_uri(api, credential)
    _, other_idx = _status_uri(api, other)
    path = uri.removeprefix(api.PUBLIC_URL)
    first = api.client.get(path)
    etag = first.headers["etag"]
    assert api.status_list(uri, first).status(idx) == sl.VALID
    # The same instant: a cache that lived by time alone would serve the old token now.
    r = api.set_status(api.credential_id(credential), action, reason)
    assert r.status_code == 200, r.text
    r = api.client.get(path, headers={"If-None-Match": etag})
    assert r.status_code == 200
    assert r.headers["etag"] != etag
    verified = api.status_list(uri, r)
    assert verified.status(idx) == expected
    assert verified.status(other_idx) == sl.VALID
    if action == "suspend":
        assert api.set_status(api.credential_id(credential), "reinstate").status_code == 200
        assert api.status_list(uri).status(idx) == sl.VALID


def test_every_worker_serves_the_one_kept_signing_so_a_verifiers_cache_never_goes_back(api):
    # Two workers on one database; the second's clock is 30 s ahead, so a token of its own would be
    # "newer" than the first worker's, and a verifier alternating between them would see a list go back
    # in time and refuse it (status_unavailable).
    from issuer.service import IssuerService

    credential, _, _ = api.issue(1)
    uri, idx = _status_uri(api, credential)
    path = uri.removeprefix(api.PUBLIC_URL)
    list_id = int(uri.rsplit("/", 1)[1])
    ahead = type(api.clock)(api.clock.now + timedelta(seconds=30))
    other = IssuerService(sessions=api.sessions, kek=api.service._kek, public_url=api.PUBLIC_URL, clock=ahead)
    fetches: list[str] = []

    def fetch(u: str) -> bytes:  # the workers take turns behind one address
        fetches.append(u)
        return api.client.get(path).content if len(fetches) % 2 else other.status_token(api.SLUG, list_id).token.encode()

    keys = {k["kid"]: k for k in api.jwks()["keys"]}
    cache = sl.StatusListCache(fetch, lambda iss, header: jws.public_key_from_jwk(keys[header["kid"]], alg=header["alg"]),
                               clock=ahead.timestamp, max_age=1)
    kept = other.status_token(api.SLUG, list_id)
    served = api.client.get(path)
    assert served.text == kept.token and served.headers["etag"] == kept.etag
    for _ in range(4):  # a worker each time: the cache must accept every token it is given
        assert cache.get(uri).status(idx) == sl.VALID
        ahead.advance(2)
        api.clock.advance(2)
    assert len(fetches) == 4
    # A change made through one worker is in the next token of every worker, signed once.
    assert api.set_status(api.credential_id(credential), "suspend").status_code == 200
    changed = api.client.get(path)
    assert api.status_list(uri, changed).status(idx) == sl.SUSPENDED
    assert other.status_token(api.SLUG, list_id).token == changed.text
    assert cache.get(uri).status(idx) == sl.SUSPENDED


def test_unknown_status_list_is_not_found(api):
    credential, _, _ = api.issue(1)
    uri, _ = _status_uri(api, credential)
    list_id = int(uri.rsplit("/", 1)[1])
    api.error(api.client.get(api.path(f"status/{list_id + 1}")), 404, "not_found")
    # A list is served only under the authority that owns it.
    api.error(api.client.get(api.path(f"status/{list_id}", "zj-amr")), 404, "not_found")
    api.error(api.client.get(api.path(f"status/{list_id}", "gd-amr")), 404, "not_found")
    for bad in ("0", "-1", "x", "99999999999"):
        api.error(api.client.get(api.path(f"status/{bad}")), 400, "invalid_request")
    # Found by the OpenAPI fuzz on PostgreSQL: 2**31 passed validation and overflowed INTEGER (500).
    api.error(api.client.get(api.path(f"status/{2**31}")), 400, "invalid_request")
    api.error(api.client.get(api.path(f"status/{2**31 - 1}")), 404, "not_found")


# --- staff authorisation (授权) ---------------------------------------------------------------------------------


def _authorisation_body(api, licence: str, legal_rep, staff, *, nonce: str | None = None, aud: str | None = None,
                        valid_days: int = 90) -> dict:
    presentation = sd_jwt.present(licence, disclose=["name", "legal_representative"], holder_signer=legal_rep,
                                  aud=aud or api.issuer_id, nonce=nonce or api.nonce(), now=api.clock.timestamp())
    today = api.clock.now.date()
    return {
        "licence": presentation,
        "staff": {"name": "李四", "account": "lisi@example.cn"},
        "scope": {"matters": ["310000-tax-01"]},
        "valid_from": today.isoformat(),
        "valid_until": (today + timedelta(days=valid_days)).isoformat(),
        "staff_jwk": dict(staff.public_jwk),
    }


def test_staff_authorisation_over_http_gives_an_offer_only_the_staff_key_redeems(api):
    licence, legal_rep, offer = api.issue(1)
    staff = SoftwareSigner.generate("ES256")
    r = api.client.post(api.path("authorisations"), json=_authorisation_body(api, licence, legal_rep, staff))
    assert r.status_code == 201, r.text
    grant = r.json()
    assert grant["credential_configuration_id"] == "staff-authorisation"
    assert grant["uscc"] == offer["uscc"]
    access_token = api.token(grant)
    # Another key (the legal representative's own) cannot take the staff member's authorisation.
    nonce = api.nonce()
    before = api.snapshot()
    api.error(api.credential_response(access_token, api.proof(legal_rep, nonce), configuration="staff-authorisation"),
              400, "invalid_proof")
    assert api.snapshot() == before
    r = api.credential_response(access_token, api.proof(staff, nonce), configuration="staff-authorisation")
    assert r.status_code == 200, r.text
    verified = api.verify_credential(r.json()["credentials"][0]["credential"])
    assert verified.vct == STAFF_VCT
    assert thumbprint(verified.holder_jwk) == staff.kid
    row = api.credential_row(api.credential_id(r.json()["credentials"][0]["credential"]))
    assert row["granted_under"] == api.credential_id(licence)
    # Revoking the licence takes the authorisation with it, in the same status token.
    r = api.set_status(api.credential_id(licence), "revoke", "deregistered")
    assert [a["id"] for a in r.json()["authorisations"]] == [row["id"]]
    assert api.status_list(verified.status.uri).status(verified.status.idx) == sl.INVALID


BAD_AUTHORISATIONS = {
    "no-licence": (lambda body: body.pop("licence"), 400, "invalid_value"),
    "staff-not-object": (lambda body: body.update(staff="李四"), 400, "invalid_value"),
    "licence-number": (lambda body: body.update(licence=5), 400, "invalid_value"),
    "bad-staff-key": (lambda body: body.update(staff_jwk={"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}), 400,
                      "invalid_value"),
    "no-staff-key": (lambda body: body.pop("staff_jwk"), 400, "invalid_value"),
    "private-staff-key": (lambda body: body["staff_jwk"].update(d="AAAA"), 400, "invalid_value"),
    "bad-scope": (lambda body: body.update(scope={"all": True, "matters": ["x"]}), 400, "record_invalid"),
    "staff-name-number": (lambda body: body["staff"].update(name=5), 400, "record_invalid"),
    "valid-until-past": (lambda body: body.update(valid_from="2020-01-01", valid_until="2020-02-01"), 400, "invalid_value"),
    "valid-until-too-far": (lambda body: body.update(valid_until="2036-01-01"), 400, "invalid_value"),
    "valid-until-not-a-date": (lambda body: body.update(valid_until="2026-02-30"), 400, "record_invalid"),
}


def test_bad_authorisation_request_is_refused(api):
    licence, legal_rep, _ = api.issue(1)
    staff = SoftwareSigner.generate("ES256")
    for case, (mutate, status, code) in BAD_AUTHORISATIONS.items():
        body = _authorisation_body(api, licence, legal_rep, staff)
        mutate(body)
        before = api.snapshot()
        api.error(api.client.post(api.path("authorisations"), json=body), status, code, case)
        assert api.snapshot() == before, case
    # None of those spent the legal representative's chance: a good request still gets its offer.
    r = api.client.post(api.path("authorisations"), json=_authorisation_body(api, licence, legal_rep, staff))
    assert r.status_code == 201, r.text


def test_authorisation_request_that_is_not_a_json_object_is_refused(api):
    before = api.snapshot()
    for raw in (b"{bad", b"[]", b'"licence"', b"", b"\xff"):
        r = api.client.post(api.path("authorisations"), content=raw, headers={"Content-Type": "application/json"})
        api.error(r, 400, "invalid_value", repr(raw))
    assert api.snapshot() == before


def test_authorisation_with_a_replayed_or_misaddressed_presentation_is_refused(api):
    licence, legal_rep, _ = api.issue(1)
    staff = SoftwareSigner.generate("ES256")
    elsewhere = _authorisation_body(api, licence, legal_rep, staff, aud=f"{api.PUBLIC_URL}/issuers/zj-amr")
    before = api.snapshot()
    api.error(api.client.post(api.path("authorisations"), json=elsewhere), 400, "kb_aud_mismatch")
    unbound = {**elsewhere, "licence": sd_jwt.present(licence, disclose=["name", "legal_representative"])}
    api.error(api.client.post(api.path("authorisations"), json=unbound), 400, "kb_missing")
    assert api.snapshot() == before
    body = _authorisation_body(api, licence, legal_rep, staff)
    assert api.client.post(api.path("authorisations"), json=body).status_code == 201
    before = api.snapshot()
    api.error(api.client.post(api.path("authorisations"), json=body), 403, "authorisation_refused")
    assert api.snapshot() == before


def test_authorisation_under_a_revoked_licence_is_refused(api):
    licence, legal_rep, _ = api.issue(1)
    assert api.set_status(api.credential_id(licence), "revoke", "deregistered").status_code == 200
    body = _authorisation_body(api, licence, legal_rep, SoftwareSigner.generate("ES256"))
    before = api.snapshot()
    api.error(api.client.post(api.path("authorisations"), json=body), 403, "authorisation_refused")
    assert api.snapshot() == before


def _granted(api, licence, legal_rep):
    """A staff authorisation granted under ``licence`` and received by a new staff key: (text, its row)."""
    staff = SoftwareSigner.generate("ES256")
    r = api.client.post(api.path("authorisations"), json=_authorisation_body(api, licence, legal_rep, staff))
    assert r.status_code == 201, r.text
    r = api.credential_response(api.token(r.json()), api.proof(staff, api.nonce()), configuration="staff-authorisation")
    assert r.status_code == 200, r.text
    text = r.json()["credentials"][0]["credential"]
    return text, api.credential_row(api.credential_id(text))


def _withdrawal(api, licence, legal_rep, grant: str, **kw) -> dict:
    presentation = sd_jwt.present(licence, disclose=["name"], holder_signer=legal_rep, aud=kw.get("aud", api.issuer_id),
                                  nonce=kw.get("nonce") or api.nonce(), now=api.clock.timestamp())
    return {"licence": presentation, "authorisation": grant}


def test_the_enterprise_withdraws_an_authorisation_and_the_next_status_token_shows_it(api):
    licence, legal_rep, _ = api.issue(1)
    grant, row = _granted(api, licence, legal_rep)
    verified = api.verify_credential(grant)
    assert api.status_list(verified.status.uri).status(verified.status.idx) == sl.VALID
    r = api.client.post(api.path("authorisations/withdraw"), json=_withdrawal(api, licence, legal_rep, grant))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == row["id"] and r.json()["status"] == "revoked" and r.json()["reason"] == "withdrawn"
    assert api.status_list(verified.status.uri).status(verified.status.idx) == sl.INVALID
    assert api.credential_row(api.credential_id(licence))["status"] == "valid"  # the licence stays
    # Withdrawing again changes nothing and says how it stands.
    before = api.snapshot()
    r = api.client.post(api.path("authorisations/withdraw"), json=_withdrawal(api, licence, legal_rep, grant))
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    after = api.snapshot()
    assert {k: v for k, v in after.items() if k != "nonces"} == {k: v for k, v in before.items() if k != "nonces"}


def test_withdrawing_an_authorisation_needs_the_licence_it_was_granted_under(api):
    licence, legal_rep, _ = api.issue(1)
    other, other_rep, _ = api.issue(2)
    grant, _ = _granted(api, licence, legal_rep)
    cases = {
        "another-enterprise": (_withdrawal(api, other, other_rep, grant), 403, "authorisation_refused"),
        "unknown-authorisation": (_withdrawal(api, licence, legal_rep, "eyJ.eyJ.sig~"), 404, "not_found"),
        "no-authorisation": ({"licence": _withdrawal(api, licence, legal_rep, grant)["licence"]}, 400, "invalid_value"),
        "licence-not-text": ({"licence": 5, "authorisation": grant}, 400, "invalid_value"),
        "misaddressed": (_withdrawal(api, licence, legal_rep, grant, aud=f"{api.PUBLIC_URL}/issuers/zj-amr"), 400,
                         "kb_aud_mismatch"),
        "unknown-nonce": (_withdrawal(api, licence, legal_rep, grant, nonce="never-issued"), 403, "authorisation_refused"),
        "not-an-object": ([grant], 400, "invalid_value"),
    }
    for case, (body, status, code) in cases.items():
        before = api.snapshot()
        api.error(api.client.post(api.path("authorisations/withdraw"), json=body), status, code, case)
        assert api.snapshot() == before, case
    # A presentation is good once: the second use of the same nonce is refused.
    body = _withdrawal(api, licence, legal_rep, grant)
    assert api.client.post(api.path("authorisations/withdraw"), json=body).status_code == 200
    api.error(api.client.post(api.path("authorisations/withdraw"), json=body), 403, "authorisation_refused")


# --- the framework's own refusals --------------------------------------------------------------------------------


def test_unknown_routes_and_methods_answer_in_the_error_shape(api):
    api.error(api.client.get("/issuers/sh-amr/nowhere"), 404, "not_found")
    r = api.client.get(api.path("nonce"))
    api.error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"
    api.error(api.client.delete(api.path("token")), 405, "method_not_allowed")


def test_the_offer_pin_is_kept_as_a_value_keyed_outside_the_database(api):
    import hashlib

    from issuer import store as istore
    from issuer.service import IssuerService

    offer = api.offer(1)
    with istore.unit_of_work(api.sessions, read_only=True) as tx:
        row = istore.get_offer(tx, offer_id=offer["offer_id"])
    # Not an unkeyed hash a leaked database could be searched against (10^6 PINs) ...
    assert row.pin_hash != hashlib.sha256(row.pin_salt + offer["tx_code"].encode()).digest()
    # ... and a deployment with another KEK cannot redeem the offer even with the right PIN.
    other = IssuerService(sessions=api.sessions, kek=b"\1" * 32, public_url=api.service.public_url, clock=api.clock)
    code = o4.parse_offer_uri(offer["offer_uri"]).pre_authorized_code
    with pytest.raises(o4.OpenId4VciError) as err:
        other.token("sh-amr", {"grant_type": o4.PRE_AUTHORIZED_GRANT, "pre-authorized_code": code,
                               "tx_code": offer["tx_code"]})
    assert err.value.code == "invalid_grant"
    assert api.token(offer)  # with its own KEK the same PIN works
