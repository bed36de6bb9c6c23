"""IssuerService administration: operators and API keys, idempotent requests, bulk offers and record import."""

from __future__ import annotations

import pytest

from credentials import openid4vci as o4
from credentials import status_list as sl
from issuer import service as service_module
from issuer.service import Forbidden, IdempotencyConflict, Unauthorized, UnknownType
from issuer.store import Conflict, InvalidRow, InvalidTransition, InvalidValue, NotFound, OfferState
from schemas.registry import get_type



# --- operators ------------------------------------------------------------------------------------------------


def test_operator_authenticates_with_its_api_key(desk):
    operator = desk.service.authenticate(desk.api_key, authority=desk.SLUG)
    assert operator == desk.operator
    assert desk.api_key.startswith("elk_")


@pytest.mark.parametrize("api_key", [None, "", "elk_unknown", "not-even-the-prefix"])
def test_missing_or_unknown_api_key_is_unauthorized(desk, api_key):
    assert desk.refused(Unauthorized, desk.service.authenticate, api_key, authority=desk.SLUG).code == "unauthorized"


def test_operator_of_another_authority_is_forbidden(desk):
    error = desk.refused(Forbidden, desk.service.authenticate, desk.food_api_key, authority=desk.SLUG)
    assert error.code == "forbidden"


def test_revoked_operator_is_unauthorized(desk):
    second = desk.service.create_operator(authority=desk.SLUG, name="窗口二号")
    desk.service.revoke_operator(desk.operator, operator_id=second.operator.id)
    error = desk.refused(Unauthorized, desk.service.authenticate, second.api_key, authority=desk.SLUG)
    assert error.code == "unauthorized"
    assert desk.actions()[-1] == "operator.revoked"


def test_operator_of_another_authority_cannot_be_revoked(desk):
    error = desk.refused(NotFound, desk.service.revoke_operator, desk.operator, operator_id=desk.food_operator.id)
    assert error.code == "not_found"
    assert desk.service.authenticate(desk.food_api_key, authority=desk.FOOD) == desk.food_operator


def test_operator_cannot_be_revoked_twice(desk):
    second = desk.service.create_operator(authority=desk.SLUG, name="窗口二号")
    desk.service.revoke_operator(desk.operator, operator_id=second.operator.id)
    error = desk.refused(InvalidTransition, desk.service.revoke_operator, desk.operator,
                    operator_id=second.operator.id)
    assert error.code == "invalid_transition"


def test_operator_for_an_unknown_authority_is_not_found(desk):
    assert desk.refused(NotFound, desk.service.create_operator, authority="xx-amr", name="x").code == "not_found"


def test_authority_slug_taken_is_conflict(desk):
    error = desk.refused(Conflict, desk.service.create_authority, slug=desk.SLUG, name_zh="重复", name_en="Duplicate",
                    types=["business-licence"])
    assert error.code == "conflict"


def test_authority_with_an_unknown_type_is_unknown_credential_type(desk):
    error = desk.refused(UnknownType, desk.service.create_authority, slug="bj-amr", name_zh="北京", name_en="Beijing",
                    types=["driving-licence"])
    assert error.code == "unknown_credential_type"


# --- idempotency ----------------------------------------------------------------------------------------------


class Work:
    """A request handler that counts its runs and does real work: one offer per run."""

    def __init__(self, desk, seed=1):
        self.desk, self.seed, self.runs = desk, seed, 0
        desk.import_licence(seed)

    def __call__(self):
        self.runs += 1
        offer = self.desk.offer(self.seed, imported=True)
        return 201, offer.to_json()


def test_same_key_and_request_returns_the_stored_outcome_without_running_twice(desk):
    work = Work(desk)
    request = {"type": "business-licence", "uscc": desk.licence_claims(1)["uscc"]}
    first = desk.service.idempotent(desk.operator, key="k-1", request=request, run=work)
    offers = desk.count("offer")
    again = desk.service.idempotent(desk.operator, key="k-1", request=dict(reversed(request.items())), run=work)
    assert first[2] is False and again[2] is True
    assert again[:2] == first[:2] and again[0] == 201
    assert work.runs == 1 and desk.count("offer") == offers == 1


def test_same_key_with_another_request_is_idempotency_key_reused(desk):
    work = Work(desk)
    desk.service.idempotent(desk.operator, key="k-1", request={"uscc": "a"}, run=work)
    error = desk.refused(IdempotencyConflict, desk.service.idempotent, desk.operator, key="k-1",
                    request={"uscc": "b"}, run=work)
    assert error.code == "idempotency_key_reused" and error.http_status == 409
    assert work.runs == 1


def test_idempotency_keys_belong_to_their_operator(desk):
    second = desk.service.create_operator(authority=desk.SLUG, name="窗口二号").operator
    work = Work(desk)
    desk.service.idempotent(desk.operator, key="k-1", request={"a": 1}, run=work)
    _, _, replayed = desk.service.idempotent(second, key="k-1", request={"a": 1}, run=work)
    assert replayed is False and work.runs == 2


def test_request_without_a_key_runs_every_time(desk):
    work = Work(desk)
    for _ in range(2):
        assert desk.service.idempotent(desk.operator, key=None, request={"a": 1}, run=work)[2] is False
    assert work.runs == 2 and desk.count("idempotency") == 0


def test_failed_request_is_not_stored_and_can_be_retried(desk):
    calls = []

    def fails():
        calls.append(1)
        raise InvalidValue("bad")

    for _ in range(2):
        with pytest.raises(InvalidValue):
            desk.service.idempotent(desk.operator, key="k-1", request={"a": 1}, run=fails)
    assert len(calls) == 2 and desk.count("idempotency") == 0


@pytest.mark.parametrize("key", ["", "x" * 256, "line\nbreak", 7])
def test_malformed_idempotency_key_is_invalid_value(desk, key):
    work = Work(desk)
    error = desk.refused(InvalidValue, desk.service.idempotent, desk.operator, key=key, request={}, run=work)
    assert error.code == "invalid_value" and work.runs == 0


# --- bulk offers and batch import -----------------------------------------------------------------------------


def import_batch(desk, seeds):
    rows = [(line, "business-licence", desk.licence_claims(seed)) for line, seed in enumerate(seeds, start=1)]
    checked = desk.service.validate_records(desk.SLUG, rows)
    return desk.service.import_records(desk.SLUG, checked)


def test_batch_import_stores_every_record_and_audits_the_batch(desk):
    assert import_batch(desk, range(1, 41)) == 40
    assert desk.count("record") == 40
    assert desk.actions()[-1] == "records.imported"


def test_batch_with_one_bad_row_names_its_line_and_imports_nothing(desk):
    rows = [(line, "business-licence", desk.licence_claims(line)) for line in range(1, 6)]
    rows[3] = (4, "business-licence", {**desk.licence_claims(4), "uscc": "913101136317066910"})
    error = desk.refused(InvalidRow, desk.service.validate_records, desk.SLUG, rows)
    assert error.code == "invalid_row" and error.index == 4 and "line 4" in error.detail


def test_bulk_offers_for_many_records_in_one_call(desk):
    import_batch(desk, range(1, 41))
    usccs = [desk.licence_claims(seed)["uscc"] for seed in range(1, 41)]
    offers = desk.service.create_offers_bulk(desk.SLUG, type_name="business-licence", usccs=usccs)
    assert [o.uscc for o in offers] == usccs
    assert len({o.offer_id for o in offers}) == len({desk.code(o) for o in offers}) == 40
    assert all(len(o.tx_code) == 6 and o.tx_code.isdigit() for o in offers)
    assert desk.count("offer", "state = 'offered'") == 40
    (batch,) = [r for r in desk.service.audit(desk.operator, limit=1000) if r.action == "offers.created"]
    assert batch.subject == desk.SLUG and batch.details["vct"] == get_type("business-licence").vct
    assert [tuple(pair) for pair in batch.details["offers"]] == [(o.offer_id, o.uscc) for o in offers]
    assert "offer.created" not in desk.actions()
    assert desk.service.verify_audit(desk.operator).broken is None


def test_a_large_bulk_is_audited_in_records_that_list_every_offer_once(desk, monkeypatch):
    monkeypatch.setattr(service_module, "_OFFERS_PER_AUDIT_RECORD", 15)
    import_batch(desk, range(1, 41))
    usccs = [desk.licence_claims(seed)["uscc"] for seed in range(1, 41)]
    offers = desk.service.create_offers_bulk(desk.SLUG, type_name="business-licence", usccs=usccs)
    batches = [r for r in desk.service.audit(desk.operator, limit=1000) if r.action == "offers.created"]
    assert [len(r.details["offers"]) for r in batches] == [15, 15, 10]
    assert [tuple(p) for r in batches for p in r.details["offers"]] == [(o.offer_id, o.uscc) for o in offers]
    assert desk.service.verify_audit(desk.operator).broken is None


def test_pins_skip_the_bytes_that_would_bias_their_digits(desk, monkeypatch):
    biased = bytes(range(250, 256))
    draws = iter([biased * 2 + bytes([255, 0, 9, 10, 19, 99, 123, 249, 200, 41, 7, 66]), bytes([248, 3])])
    asked = []

    def random_bytes(n):
        asked.append(n)
        chunk = next(draws)
        assert len(chunk) == n
        return chunk

    monkeypatch.setattr(desk.service, "_random", random_bytes)
    # Two PINs of six digits: 24 bytes asked, 13 of them biased; then twice the one digit missing.
    assert desk.service._pins(2) == ["090993", "901768"]
    assert asked == [24, 2]


def test_bulk_offer_links_are_those_the_offer_messages_render(desk):
    import_batch(desk, range(1, 6))
    usccs = [desk.licence_claims(seed)["uscc"] for seed in range(1, 6)]
    auth = desk.service.authority(desk.SLUG)
    for offer in desk.service.create_offers_bulk(desk.SLUG, type_name="business-licence", usccs=usccs):
        code = desk.code(offer)
        assert offer.offer_uri == o4.offer_uri(desk.service._offer_value(auth, "business-licence", code))
        reference = desk.service.endpoint(desk.SLUG, f"offers/{offer.offer_id}")
        assert (offer.credential_offer_uri, offer.offer_reference_uri) == (reference, o4.offer_reference_uri(reference))
        assert o4.parse_offer_uri(offer.offer_reference_uri) == reference
        assert desk.service.offer_document(desk.SLUG, offer.offer_id)["grants"][o4.PRE_AUTHORIZED_GRANT][
            "pre-authorized_code"] == code


def test_bulk_offer_issues_the_licence_of_its_own_record(desk):
    import_batch(desk, range(1, 6))
    usccs = [desk.licence_claims(seed)["uscc"] for seed in range(1, 6)]
    offers = desk.service.create_offers_bulk(desk.SLUG, type_name="business-licence", usccs=usccs)
    issued = desk.redeem(offers[2])
    assert desk.verify(issued.text).claims["uscc"] == usccs[2]
    assert desk.status(issued.text) == sl.VALID
    assert desk.offer_row(offers[3].offer_id).state is OfferState.OFFERED


def test_bulk_offer_pins_are_checked_per_offer(desk):
    import_batch(desk, range(1, 3))
    usccs = [desk.licence_claims(seed)["uscc"] for seed in range(1, 3)]
    first, second = desk.service.create_offers_bulk(desk.SLUG, type_name="business-licence", usccs=usccs)
    if first.tx_code != second.tx_code:
        with pytest.raises(o4.InvalidGrant):
            desk.service.token(desk.SLUG, desk.token_form(first, tx_code=second.tx_code))
    assert desk.token(second)


def test_bulk_offers_with_a_missing_record_create_none(desk):
    import_batch(desk, range(1, 4))
    usccs = [desk.licence_claims(seed)["uscc"] for seed in range(1, 5)]
    error = desk.refused(NotFound, desk.service.create_offers_bulk, desk.SLUG, type_name="business-licence",
                    usccs=usccs)
    assert error.code == "not_found"


def test_bulk_offers_for_no_record_create_none(desk):
    assert desk.service.create_offers_bulk(desk.SLUG, type_name="business-licence", usccs=[]) == []
    assert desk.count("offer") == 0
