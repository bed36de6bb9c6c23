"""OpenID4VP 1.0 online requests: create, serve the Request Object, accept one direct_post response,
verify it with the SDK, and give the verdict to the creating session only."""

from __future__ import annotations

import pytest

from credentials import dcql
from credentials import openid4vp as vp
from verifier import store
from verifier.service import (
    RequestExpired,
    ResponseAlreadyReceived,
    ResponseRejected,
    TypeNotAllowed,
    UnknownRequest,
    UnknownType,
    verify_receipt,
)

LICENCE = [{"type": "business-licence", "claims": ["uscc", "name"]}]


def create(desk, **kw):
    kw.setdefault("credentials", None if "item_id" in kw else LICENCE)
    return desk.service.create_request(desk.staff, **kw)


def result(desk, created, staff=None):
    return desk.service.result(staff or desk.staff, transaction_id=created.transaction_id, secret=created.result_secret)


def test_the_round_trip_delivers_a_valid_result_to_the_creator(desk):
    created = create(desk, purpose="核验营业执照")
    assert created.uri.startswith("openid4vp://?client_id=x509_san_dns%3Averify.example.gov.cn&request_uri=")
    assert created.qr_png.startswith(b"\x89PNG") and created.qr_svg.startswith("<")
    assert result(desk, created)["status"] == "pending"
    request = desk.wallet_request(created)
    assert request.verifier_name == "浦东新区企业服务中心" and request.purpose == "核验营业执照"
    assert request.response_uri == f"{desk.PUBLIC_URL}/verifier/oid4vp/responses/{created.transaction_id}"
    form = desk.answer(request, {"q0": [(desk.licence, [])]})
    assert desk.service.direct_post(created.transaction_id, form) == {}
    got = result(desk, created)
    assert (got["status"], got["verdict"], got["error"]) == ("complete", "valid", None)
    (card,) = got["cards"]
    assert card["claims"]["uscc"] == desk.claims["uscc"] and card["issuer"]["id"] == desk.ISSUER_ID


def test_any_worker_serves_the_request_and_takes_the_response(desk):
    created = create(desk)
    other = desk.make_service()
    reference = vp.parse_authorization_request_uri(created.uri)
    token = other.request_object(created.transaction_id)
    request = vp.verify_request_object(token, client_id=reference.client_id,
                                       trust_anchors=other.registrar_certificates(), now=desk.clock.timestamp())
    assert other.direct_post(created.transaction_id, desk.answer(request, {"q0": [(desk.licence, [])]})) == {}
    assert result(desk, created)["verdict"] == "valid"


def test_a_second_response_is_refused_with_its_code(desk):
    created = create(desk)
    request = desk.wallet_request(created)
    desk.service.direct_post(created.transaction_id, desk.answer(request, {"q0": [(desk.licence, [])]}))
    with pytest.raises(ResponseAlreadyReceived) as info:
        desk.service.direct_post(created.transaction_id, desk.answer(request, {"q0": [(desk.licence, [])]}))
    assert info.value.code == "response_already_received"
    with pytest.raises(ResponseAlreadyReceived):
        desk.service.request_object(created.transaction_id)
    assert result(desk, created)["verdict"] == "valid"


def test_an_expired_request_is_refused_and_reported_expired(desk):
    created = create(desk)
    request = desk.wallet_request(created)
    form = desk.answer(request, {"q0": [(desk.licence, [])]})
    desk.clock.advance(301)
    with pytest.raises(RequestExpired) as info:
        desk.service.direct_post(created.transaction_id, form)
    assert info.value.code == "request_expired"
    with pytest.raises(RequestExpired):
        desk.service.request_object(created.transaction_id)
    assert result(desk, created)["status"] == "expired"


def test_an_unknown_request_is_refused(desk):
    with pytest.raises(UnknownRequest) as info:
        desk.service.direct_post("nope", {"vp_token": "{}"})
    assert info.value.code == "unknown_request"
    with pytest.raises(UnknownRequest):
        desk.service.request_object("nope")


def test_a_response_carrying_another_requests_nonce_is_rejected(desk):
    first, second = create(desk), create(desk)
    other = desk.wallet_request(first)
    request = desk.wallet_request(second)
    form = desk.answer(request, {"q0": [(desk.licence, [])]}, nonce=other.nonce)
    with pytest.raises(ResponseRejected) as info:
        desk.service.direct_post(second.transaction_id, form)
    assert info.value.code == "kb_nonce_mismatch"
    got = result(desk, second)
    assert (got["verdict"], got["error"]) == ("invalid", "kb_nonce_mismatch")
    assert got["message"]["zh-CN"] and got["message"]["en"]


def test_a_presentation_for_another_audience_is_rejected(desk):
    created = create(desk)
    request = desk.wallet_request(created)
    form = desk.answer(request, {"q0": [(desk.licence, [])]}, aud="x509_san_dns:tax.example.gov.cn")
    with pytest.raises(ResponseRejected) as info:
        desk.service.direct_post(created.transaction_id, form)
    assert info.value.code == "kb_aud_mismatch"
    assert result(desk, created)["error"] == "kb_aud_mismatch"


def test_a_revoked_licence_online_is_invalid(desk):
    desk.set_status(7, 1)
    created = create(desk)
    request = desk.wallet_request(created)
    with pytest.raises(ResponseRejected) as info:
        desk.service.direct_post(created.transaction_id, desk.answer(request, {"q0": [(desk.licence, [])]}))
    assert info.value.code == "revoked"
    assert result(desk, created)["cards"][0]["verdict"] == "invalid"


def test_an_unreachable_status_list_online_is_cannot_verify(desk):
    desk.served.token = None
    created = create(desk)
    request = desk.wallet_request(created)
    with pytest.raises(ResponseRejected) as info:
        desk.service.direct_post(created.transaction_id, desk.answer(request, {"q0": [(desk.licence, [])]}))
    assert info.value.code == "status_unavailable"
    assert result(desk, created)["verdict"] == "cannot_verify"


@pytest.mark.parametrize("form", [
    {},
    {"vp_token": "not json"},
    {"vp_token": "[]"},
    {"vp_token": '{"q0": "x"}'},
    [("vp_token", "{}"), ("vp_token", "{}")],
])
def test_garbage_posted_is_invalid_request_and_leaves_the_request_answerable(desk, form):
    created = create(desk)
    request = desk.wallet_request(created)
    if isinstance(form, dict):
        form = {**form, "state": request.state}
    with pytest.raises(vp.OpenId4VpError) as info:
        desk.service.direct_post(created.transaction_id, form)
    assert info.value.code == "invalid_request"
    assert result(desk, created)["status"] == "pending"
    assert desk.service.direct_post(created.transaction_id, desk.answer(request, {"q0": [(desk.licence, [])]})) == {}


def test_a_response_with_another_state_does_not_use_up_the_request(desk):
    created = create(desk)
    request = desk.wallet_request(created)
    form = {**desk.answer(request, {"q0": [(desk.licence, [])]}), "state": "other-state"}
    with pytest.raises(vp.InvalidRequest) as info:
        desk.service.direct_post(created.transaction_id, form)
    assert info.value.reason == "state_mismatch"
    assert result(desk, created)["status"] == "pending"


def test_a_response_that_does_not_answer_the_query_is_rejected(desk):
    created = create(desk)
    request = desk.wallet_request(created)
    form = desk.answer(request, {"q0": [(desk.licence, [])]})
    form["vp_token"] = form["vp_token"].replace('"q0"', '"q9"')
    with pytest.raises(ResponseRejected) as info:
        desk.service.direct_post(created.transaction_id, form)
    assert info.value.code == "dcql_not_satisfied"


def test_a_wallet_that_declines_gives_a_refused_verdict(desk):
    created = create(desk)
    request = desk.wallet_request(created)
    assert desk.service.direct_post(created.transaction_id, vp.error_response_form(request)) == {}
    got = result(desk, created)
    assert (got["verdict"], got["error"]) == ("refused", "access_denied")


def test_the_result_goes_only_to_the_creating_session_of_the_department(desk):
    created = create(desk)
    for staff, secret in [(desk.staff, None), (desk.staff, "wrong"), (desk.tax_staff, created.result_secret)]:
        with pytest.raises(store.NotFound) as info:
            desk.service.result(staff, transaction_id=created.transaction_id, secret=secret)
        assert info.value.code == "not_found"


def test_a_type_the_department_does_not_accept_cannot_be_requested(desk):
    with pytest.raises(TypeNotAllowed) as info:
        desk.service.create_request(desk.tax_staff, credentials=[{"type": "food-business-permit"}])
    assert info.value.code == "type_not_allowed"
    with pytest.raises(UnknownType) as unknown:
        desk.service.create_request(desk.staff, credentials=[{"type": "passport"}])
    assert unknown.value.code == "unknown_credential_type"
    with pytest.raises(store.InvalidValue) as empty:
        desk.service.create_request(desk.staff, credentials=[])
    assert empty.value.code == "invalid_value"


def test_a_request_for_an_item_asks_for_its_materials_and_reports_the_exemption(desk):
    created = create(desk, item_id=desk.FOOD_ITEM)
    request = desk.wallet_request(created)
    ids = [q.id for q in request.dcql_query.credentials]
    assert ids == ["business-licence-copy", "agent-authorisation"]
    assert [s.required for s in request.dcql_query.credential_sets] == [True, False]
    form = desk.answer(request, {"business-licence-copy": [(desk.licence, [])],
                                 "agent-authorisation": [(desk.authorisation(), ["scope", "valid_until"])]})
    assert desk.service.direct_post(created.transaction_id, form) == {}
    got = result(desk, created)
    assert got["verdict"] == "valid" and len(got["cards"]) == 2
    status = {m["id"]: m["status"] for m in got["exemption"]["materials"]}
    assert status == {"business-licence-copy": "exempt", "application-form": "to_submit", "premises-layout": "to_submit",
                      "food-safety-rules": "to_submit", "agent-authorisation": "exempt"}
    receipt = verify_receipt(got["receipt"], trust_anchors=desk.service.registrar_certificates(), now=desk.clock())
    assert receipt.claims["channel"] == "online" and receipt.claims["item"]["id"] == desk.FOOD_ITEM


def test_the_dcql_query_is_well_formed(desk):
    created = create(desk, item_id=desk.TENDER_ITEM)
    request = desk.wallet_request(created)
    assert isinstance(request.dcql_query, dcql.DcqlQuery)
    assert {q.vct_values[0] for q in request.dcql_query.credentials} == {
        "https://elicence.cn/vct/business-licence", "https://elicence.cn/vct/food-business-permit",
        "https://elicence.cn/vct/staff-authorisation"}


def test_each_online_verification_and_request_is_recorded(desk):
    created = create(desk)
    request = desk.wallet_request(created)
    desk.service.direct_post(created.transaction_id, desk.answer(request, {"q0": [(desk.licence, [])]}))
    (row,) = desk.service.verifications(desk.staff)
    assert (row["channel"], row["verdict"], row["transaction_id"], row["staff_id"]) == (
        "online", "valid", created.transaction_id, desk.staff.id)
    actions = [a["action"] for a in desk.service.audit(desk.staff)]
    assert "request.created" in actions and "department.created" in actions
    assert all(a["action"] != "request.created" for a in desk.service.audit(desk.tax_staff))


def test_a_fault_after_the_response_was_taken_fails_closed(desk):
    from verifier.service import Catalogue, UnknownItem

    created = create(desk, item_id=desk.FOOD_ITEM)
    request = desk.wallet_request(created)
    # Another worker whose catalogue no longer has the item (a deployment mid-update).
    other = desk.make_service(catalogue=Catalogue({}))
    with pytest.raises(UnknownItem):
        other.direct_post(created.transaction_id, desk.answer(request, {"business-licence-copy": [(desk.licence, [])]}))
    got = result(desk, created)
    assert (got["status"], got["verdict"], got["error"]) == ("complete", "cannot_verify", "server_error")


def test_every_code_the_service_shows_has_messages_in_both_languages(desk):
    from verifier.service import _MESSAGES, messages

    for code in [*_MESSAGES, "revoked", "replay", "untrusted_issuer", "cannot_verify", "no-such-code"]:
        shown = messages(code)
        assert set(shown) == {"zh-CN", "en"} and all(shown.values())
    assert messages("revoked")["zh-CN"] != messages("suspended")["zh-CN"]


@pytest.mark.parametrize(("public_url", "dns_name", "origin"), [
    ("https://verify.example.gov.cn", "verify.example.gov.cn", "https://verify.example.gov.cn"),
    ("https://gateway.example.gov.cn", "verify.example.gov.cn", "https://verify.example.gov.cn"),
    # make run: the deployment on a loopback address serves its "localhost" department on its own port.
    ("http://127.0.0.1:8000", "localhost", "http://localhost:8000"),
    ("http://[::1]:8123/base", "localhost", "http://localhost:8123/base"),
    ("http://localhost:8000", "localhost", "http://localhost:8000"),
    # A loopback deployment does not lend its scheme to a department on another name.
    ("http://127.0.0.1:8000", "verify.example.gov.cn", "https://verify.example.gov.cn"),
])
def test_the_response_uri_is_on_the_departments_certified_host(public_url, dns_name, origin):
    from types import SimpleNamespace

    from verifier.service import VerifierService

    assert VerifierService._origin(SimpleNamespace(public_url=public_url), SimpleNamespace(dns_name=dns_name)) == origin
