"""Tenant isolation: every wallet endpoint that takes an identifier, called with another enterprise's ids.

The answer must be exactly the answer for an id that does not exist (404, same body), and nothing may
change. The walk is checked against the OpenAPI document, so a new endpoint with an identifier fails
here until it is added to the walk.
"""

from __future__ import annotations

import uuid

import pytest

from wallet import errors


@pytest.fixture
def tenants(wapi, wkit):
    """Enterprise A (LR 1, administrator 2, staff 3) with a licence, a personal credential of its LR and a
    usage record; enterprise B (LR 4, administrator 5, staff 6)."""
    a_lr, a_admin, a_staff = wapi.account(1), wapi.account(2, pin=False), wapi.account(3, pin=False)
    b_lr, b_admin, b_staff = wapi.account(4), wapi.account(5, pin=False), wapi.account(6, pin=False)
    a, b = wapi.claim(a_lr, 1), wapi.claim(b_lr, 2)
    a_admin_member = wapi.add_member(a_lr, a["id"], 2, "administrator")
    a_staff_member = wapi.add_member(a_lr, a["id"], 3, "staff")
    wapi.add_member(b_lr, b["id"], 5, "administrator")
    wapi.add_member(b_lr, b["id"], 6, "staff")
    lr_user = wapi.wallet.authenticate(a_lr["Authorization"].split()[1]).user
    keys = {k["owner"]: k["kid"] for k in wapi.client.get("/wallet/keys", headers=a_lr).json()}
    licence = wapi.wallet.store_credential(
        lr_user, credential="eyJ.licence.s~d~", vct="https://elicence.cn/vct/business-licence", issuer="https://i",
        configuration_id="business-licence", holder_kid=keys[f"enterprise:{a['id']}"], enterprise_id=a["id"])
    personal = wapi.wallet.store_credential(
        lr_user, credential="eyJ.person.s~d~", vct="https://elicence.cn/vct/natural-person", issuer="https://i",
        configuration_id="natural-person", holder_kid=keys[f"user:{lr_user.id}"])
    wapi.wallet.record_use(lr_user, enterprise_id=a["id"], credential_ids=[licence.id], channel="qr", outcome="shown")
    return {
        "a": a, "b": b, "a_lr": a_lr, "a_admin": a_admin, "a_staff": a_staff,
        "strangers": {"b_lr": b_lr, "b_admin": b_admin, "b_staff": b_staff},
        "a_admin_id": a_admin_member["user_id"], "a_staff_id": a_staff_member["user_id"],
        "licence": licence.id, "personal": personal.id, "b_lr_phone": wkit.phone(4),
    }


def _calls(t, enterprise: str, credential: str, member: str):
    """Every endpoint taking an identifier, aimed at the given ids: (method, path, json body)."""
    return [
        ("GET", f"/wallet/enterprises/{enterprise}/members", None),
        ("POST", f"/wallet/enterprises/{enterprise}/members", {"phone": t["b_lr_phone"], "role": "staff"}),
        ("POST", f"/wallet/enterprises/{enterprise}/members", {"phone": t["b_lr_phone"], "role": "administrator"}),
        ("DELETE", f"/wallet/enterprises/{enterprise}/members/{member}", None),
        ("GET", f"/wallet/enterprises/{enterprise}/usage", None),
        ("GET", f"/wallet/credentials?enterprise_id={enterprise}", None),
        ("GET", f"/wallet/credentials/{credential}", None),
        ("DELETE", f"/wallet/credentials/{credential}", None),
    ]


_TEMPLATES = {
    "/wallet/enterprises/{enterprise_id}/members",
    "/wallet/enterprises/{enterprise_id}/members/{member_id}",
    "/wallet/enterprises/{enterprise_id}/usage",
    "/wallet/credentials/{credential_id}",
}


def test_the_walk_covers_every_wallet_endpoint_with_an_identifier(wapi):
    spec = wapi.client.get("/openapi.json").json()
    with_ids = {p for p in spec["paths"] if p.startswith("/wallet") and "{" in p}
    assert with_ids == _TEMPLATES
    with_id_queries = {
        (p, m) for p, ops in spec["paths"].items() if p.startswith("/wallet")
        for m, op in ops.items() for param in op.get("parameters", []) if param["name"].endswith("_id")
        and param["in"] == "query"
    }
    assert with_id_queries == {("/wallet/credentials", "get")}


def test_another_enterprises_ids_answer_exactly_like_unknown_ids_and_change_nothing(wapi, tenants):
    t = tenants
    before = wapi.snapshot()
    unknown = str(uuid.uuid4())
    for name, headers in t["strangers"].items():
        theirs = _calls(t, t["a"]["id"], t["licence"], t["a_staff_id"])
        nobody = _calls(t, unknown, unknown, unknown)
        for (method, path, body), (_m, unknown_path, _b) in zip(theirs, nobody):
            r = wapi.client.request(method, path, json=body, headers=headers)
            wapi.error(r, 404, "not_found", (name, method, path))
            missing = wapi.client.request(method, unknown_path, json=body, headers=headers)
            assert r.json() == missing.json(), (name, method, path)
        for method in ("GET", "DELETE"):  # the personal credential of A's legal representative
            wapi.error(wapi.client.request(method, f"/wallet/credentials/{t['personal']}", headers=headers), 404,
                       "not_found", (name, method))
        listed = wapi.client.get("/wallet/credentials", headers=headers).json()
        assert not {c["id"] for c in listed} & {t["licence"], t["personal"]}
        assert wapi.client.get("/wallet/usage", headers=headers).json()["items"] == []
    # B's legal representative aiming at A's member through B's own enterprise: no such member
    r = wapi.client.delete(f"/wallet/enterprises/{t['b']['id']}/members/{t['a_staff_id']}", headers=t["strangers"]["b_lr"])
    wapi.error(r, 404, "not_found")
    assert wapi.snapshot() == before


def test_inside_an_enterprise_a_personal_credential_stays_its_owners(wapi, tenants):
    t = tenants
    before = wapi.snapshot()
    for headers in (t["a_admin"], t["a_staff"]):
        for method in ("GET", "DELETE"):
            wapi.error(wapi.client.request(method, f"/wallet/credentials/{t['personal']}", headers=headers), 404,
                       "not_found")
        assert [c["id"] for c in wapi.client.get("/wallet/credentials", headers=headers).json()] == [t["licence"]]
    assert wapi.snapshot() == before


def test_inside_an_enterprise_roles_are_403_and_change_nothing(wapi, tenants):
    t = tenants
    a = t["a"]["id"]
    before = wapi.snapshot()
    staff = t["a_staff"]
    wapi.error(wapi.client.get(f"/wallet/enterprises/{a}/members", headers=staff), 403, "administrator_required")
    wapi.error(wapi.client.post(f"/wallet/enterprises/{a}/members", json={"phone": t["b_lr_phone"], "role": "staff"},
                                headers=staff), 403, "administrator_required")
    wapi.error(wapi.client.delete(f"/wallet/enterprises/{a}/members/{t['a_admin_id']}", headers=staff), 403,
               "legal_representative_required")
    wapi.error(wapi.client.delete(f"/wallet/credentials/{t['licence']}", headers=staff), 403, "administrator_required")
    wapi.error(wapi.client.post(f"/wallet/enterprises/{a}/members", json={"phone": t["b_lr_phone"],
                                                                          "role": "administrator"},
                                headers=t["a_admin"]), 403, "legal_representative_required")
    assert wapi.client.get(f"/wallet/enterprises/{a}/usage", headers=staff).json()["items"] == []  # none of their own
    assert wapi.snapshot() == before


def test_the_service_refuses_another_enterprises_ids_as_not_found(wallet, wkit, sessions):
    a_lr, b_lr = wkit.user(wallet, 1, pin=True), wkit.user(wallet, 2, pin=True)
    a = wkit.enterprise(wallet, a_lr, 1)
    wkit.enterprise(wallet, b_lr, 2)
    a_kid = next(k.kid for k in wallet.holder_keys(a_lr) if k.owner == f"enterprise:{a.id}")
    confirmation = wallet.confirm_pin(b_lr, wkit.PIN)
    before = wkit.snapshot(sessions)
    calls = [
        lambda: wallet.signer_for(b_lr, purpose="key_proof", enterprise_id=a.id),
        lambda: wallet.signer_for(b_lr, purpose="presentation", enterprise_id=a.id, confirmation=confirmation),
        lambda: wallet.store_credential(b_lr, credential="eyJ.x.s~", vct="v", issuer="https://i", configuration_id="c",
                                        holder_kid=a_kid, enterprise_id=a.id),
        lambda: wallet.record_use(b_lr, enterprise_id=a.id, credential_ids=[], channel="qr", outcome="shown"),
        lambda: wallet.usage(b_lr, enterprise_id=a.id),
        lambda: wallet.members(b_lr, enterprise_id=a.id),
        lambda: wallet.credentials(b_lr, enterprise_id=a.id),
        lambda: wallet.add_member(b_lr, enterprise_id=a.id, phone=wkit.phone(2), role="staff"),
        lambda: wallet.remove_member(b_lr, enterprise_id=a.id, member_id=a_lr.id),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(errors.NotFound) as caught:
            call()
        assert caught.value.code == "not_found", i
    assert a_kid not in {k.kid for k in wallet.holder_keys(b_lr)}
    assert wkit.snapshot(sessions) == before
