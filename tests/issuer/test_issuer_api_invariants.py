"""What must never happen, tried over HTTP (issuer/api.py over issuer/service.py):

- a credential leaving without its row, its status index and its audit record;
- two credentials sharing a status index (real concurrency: PostgreSQL);
- a body larger than ``MAX_BODY_BYTES`` reaching a handler, declared or streamed.

(An acknowledged revocation missing from the next status token served: test_issuer_api_protocol.py.)
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.requests import Request
from fastapi.testclient import TestClient

from credentials import openid4vci as o4
from credentials import sd_jwt_vc
from issuer import api as issuer_api
from issuer import store
from keys.signer import SoftwareSigner

ISSUANCE_ACTIONS = {"credential.issued", "authorisation.granted"}


# --- no credential without its row, status index and audit record ------------------------------------------


@pytest.mark.parametrize(("failure", "code"), [(RuntimeError("audit volume full"), "server_error"),
                                               (store.StoreError("audit table locked"), "store_error")],
                         ids=["unexpected-error", "store-error"])
def test_no_credential_leaves_when_its_audit_record_cannot_be_written(api, monkeypatch, failure, code):
    offer = api.offer(1)
    access_token = api.token(offer)
    nonce = api.nonce()
    holder = SoftwareSigner.generate("ES256")
    proof = api.proof(holder, nonce)
    before = api.snapshot()

    signed: list[str] = []
    refused: list[str] = []
    real_issue_vc, real_one, real_many = sd_jwt_vc.issue_vc, store.append_audit, store.append_audits

    def issue_vc(*args, **kwargs):  # the real signing, observed
        text = real_issue_vc(*args, **kwargs)
        signed.append(text)
        return text

    def append_audit(session, /, **kwargs):
        if kwargs.get("action") in ISSUANCE_ACTIONS:
            refused.append(kwargs["action"])
            raise failure
        return real_one(session, **kwargs)

    def append_audits(session, /, *, chain, entries):
        if any(e.action in ISSUANCE_ACTIONS for e in entries):
            refused.append("batch")
            raise failure
        return real_many(session, chain=chain, entries=entries)

    monkeypatch.setattr(sd_jwt_vc, "issue_vc", issue_vc)
    monkeypatch.setattr(store, "append_audit", append_audit)
    monkeypatch.setattr(store, "append_audits", append_audits)
    client = TestClient(api.app, raise_server_exceptions=False)
    r = client.post(api.path("credential"), json={"credential_configuration_id": "business-licence",
                                                  "proofs": {"jwt": [proof]}},
                    headers={"Authorization": f"Bearer {access_token}"})
    assert signed and refused, "the audit append must fail after the credential was signed"
    api.error(r, 500, code)
    assert "credentials" not in r.json()
    assert signed[0].split("~")[0].rsplit(".", 1)[1] not in r.text  # not even the signature of what was signed
    # No row, no index taken, no audit record, the offer still redeemed, token and nonce unused.
    assert api.snapshot() == before

    monkeypatch.undo()
    r = api.credential_response(access_token, proof)  # the wallet retries the very same request
    assert r.status_code == 200, r.text
    after = api.snapshot()
    assert len(after["credentials"]) == len(before["credentials"]) + 1
    assert after["lists"][0][2] == 1
    report = api.client.get(api.path("admin/audit/verify"), headers=api.admin()).json()
    assert report["ok"] is True


# --- concurrent issuances never share a status index ------------------------------------------------------


WAVES, PER_WAVE = 2, 25


def test_concurrent_issuances_over_http_never_share_a_status_index(api, backend):
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers (one write transaction at a time): there is no race to lose; "
                    "this runs on PostgreSQL (ELICENCE_TEST_DATABASE_URL)")
    # Two enterprises, 25 offers each, all redeemed at once.
    offers = [api.offer(1)] + [api.offer(1, imported=True) for _ in range(PER_WAVE - 1)]
    offers += [api.offer(2)] + [api.offer(2, imported=True) for _ in range(PER_WAVE - 1)]

    def wallet(offer: dict) -> str:
        client = TestClient(api.app)  # each thread its own client (and event loop)
        holder = SoftwareSigner.generate("ES256")
        document = client.get(offer["credential_offer_uri"].removeprefix(api.PUBLIC_URL)).json()
        r = client.post(api.path("token"), data={"grant_type": o4.PRE_AUTHORIZED_GRANT,
                                                 "pre-authorized_code": document["grants"][o4.PRE_AUTHORIZED_GRANT][
                                                     "pre-authorized_code"],
                                                 "tx_code": offer["tx_code"]})
        assert r.status_code == 200, r.text
        access_token = r.json()["access_token"]
        nonce = client.post(api.path("nonce")).json()["c_nonce"]
        r = client.post(api.path("credential"), headers={"Authorization": f"Bearer {access_token}"},
                        json={"credential_configuration_id": "business-licence",
                              "proofs": {"jwt": [api.proof(holder, nonce)]}})
        assert r.status_code == 200, r.text
        return r.json()["credentials"][0]["credential"]

    with ThreadPoolExecutor(max_workers=PER_WAVE) as pool:
        credentials = list(pool.map(wallet, offers))

    assert len(credentials) == WAVES * PER_WAVE
    statuses = [api.verify_credential(c).status for c in credentials]
    slots = [(status.uri, status.idx) for status in statuses]
    assert len(set(slots)) == WAVES * PER_WAVE
    after = api.snapshot()
    assert len(after["credentials"]) == WAVES * PER_WAVE
    assert sum(used for _, _, used in after["lists"]) == WAVES * PER_WAVE
    rows = api.client.get(api.path("admin/credentials?limit=500"), headers=api.admin()).json()["items"]
    assert sorted((r["status_list_id"], r["status_idx"]) for r in rows) == sorted(
        (int(uri.rsplit("/", 1)[1]), idx) for uri, idx in slots)
    report = api.client.get(api.path("admin/audit/verify"), headers=api.admin()).json()
    assert report["ok"] is True and report["broken"] is None
    audit = api.client.get(api.path("admin/audit?limit=1000"), headers=api.admin()).json()
    assert len([a for a in audit if a["action"] == "credential.issued"]) == WAVES * PER_WAVE


# --- no oversize body reaches a handler ---------------------------------------------------------------------


def _body_endpoints(api, access_token: str) -> list[tuple[str, str, dict[str, str]]]:
    admin = api.admin()
    return [
        ("POST", api.path("token"), {"Content-Type": "application/x-www-form-urlencoded"}),
        ("POST", api.path("credential"), {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}),
        ("POST", api.path("authorisations"), {"Content-Type": "application/json"}),
        ("POST", api.path("admin/records"), {**admin, "Content-Type": "application/json"}),
        ("PUT", api.path("admin/records/business-licence/913101136317066918"), {**admin, "Content-Type": "application/json"}),
        ("POST", api.path("admin/offers"), {**admin, "Content-Type": "application/json"}),
        ("POST", api.path("admin/credentials/00000000-0000-4000-8000-000000000000/status"),
         {**admin, "Content-Type": "application/json"}),
        ("POST", api.path("admin/keys/rotate"), {**admin, "Content-Type": "application/json"}),
        ("POST", api.path("admin/keys/k/compromise"), {**admin, "Content-Type": "application/json"}),
    ]


def _oversize() -> bytes:
    # Valid JSON (and a valid form value), so only its size is wrong.
    return json.dumps({"claims": {"name": "x" * issuer_api.MAX_BODY_BYTES}}).encode()


def test_oversize_bodies_are_refused_with_413_whether_declared_or_streamed(api):
    offer = api.offer(1)
    access_token = api.token(offer)
    body = _oversize()
    before = api.snapshot()
    for method, url, headers in _body_endpoints(api, access_token):
        declared = api.client.request(method, url, content=body, headers=headers)
        api.error(declared, 413, "request_too_large", f"Content-Length {method} {url}")

        def chunks():
            for i in range(0, len(body), 16 * 1024):
                yield body[i:i + 16 * 1024]

        streamed = api.client.request(method, url, content=chunks(), headers=headers)
        assert "content-length" not in {k.lower() for k in streamed.request.headers}
        api.error(streamed, 413, "request_too_large", f"chunked {method} {url}")
    assert api.snapshot() == before
    # The access token was not spent by any of that.
    r = api.credential_response(access_token, api.proof(SoftwareSigner.generate("ES256"), api.nonce()))
    assert r.status_code == 200, r.text


def test_a_body_at_the_limit_is_read(api):
    """The limit is a limit, not an off-by-one: MAX_BODY_BYTES itself reaches the handler (and fails there)."""
    pad = issuer_api.MAX_BODY_BYTES - len(json.dumps({"type": "business-licence", "claims": {}, "x": ""}).encode())
    body = json.dumps({"type": "business-licence", "claims": {}, "x": "y" * pad}).encode()
    assert len(body) == issuer_api.MAX_BODY_BYTES
    r = api.client.post(api.path("admin/records"), content=body, headers=api.admin(**{"Content-Type": "application/json"}))
    api.error(r, 400, "invalid_request")  # the extra member, not the size
    r = api.client.post(api.path("admin/records"), content=body + b" ", headers=api.admin(**{"Content-Type": "application/json"}))
    api.error(r, 413, "request_too_large")


def test_the_body_limit_guards_the_issuer_paths_only(api):
    # Another role mounted on the same app (a verifier taking photos of QR codes) sets its own limit.
    @api.app.post("/elsewhere")
    async def elsewhere(request: Request) -> dict:
        return {"read": len(await request.body())}

    body = _oversize()
    r = api.client.post("/elsewhere", content=body)
    assert r.status_code == 200 and r.json() == {"read": len(body)}
    api.error(api.client.post(api.path("admin/records"), content=body, headers=api.admin()), 413, "request_too_large")
