"""IssuerService.credential_batch: the credential endpoint's group commit.

Plain requests of a batch are issued in one transaction; every other request, and every request of a
batch that fails, goes through the single-request path and gets exactly the outcome it would get on
its own. What a refused request leaves behind is what the single path leaves: nothing (its access
token and nonce stay usable).
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import event

from credentials import openid4vci as o4
from issuer import store
from issuer.service import CredentialRequest
from keys.signer import SoftwareSigner


def _prepared(desk, access_token: str, proof: str, *, configuration: str = "business-licence",
              slug: str | None = None) -> CredentialRequest:
    return desk.service.prepare_credential(
        slug or desk.SLUG, authorization=f"Bearer {access_token}",
        body={"credential_configuration_id": configuration, "proofs": {"jwt": [proof]}})


def _ready(desk, seed: int, holder: SoftwareSigner | None = None) -> tuple[CredentialRequest, SoftwareSigner]:
    holder = holder or SoftwareSigner.generate("ES256")
    return _prepared(desk, desk.token(desk.offer(seed)), desk.proof(holder, desk.nonce())), holder


@pytest.fixture
def single_path(desk, monkeypatch):
    """The requests that went through the single-request path (``IssuerService._credential``)."""
    seen: list[CredentialRequest] = []
    real = desk.service._credential

    def spy(request: CredentialRequest):
        seen.append(request)
        return real(request)

    monkeypatch.setattr(desk.service, "_credential", spy)
    return seen


def _commits(desk) -> list[int]:
    engine = desk.sessions.kw["bind"]
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    return commits


def test_plain_requests_of_a_batch_are_issued_in_one_transaction(desk, single_path):
    ready = [_ready(desk, seed) for seed in range(1, 7)]
    commits = _commits(desk)

    outcomes = desk.service.credential_batch([r for r, _ in ready])

    assert len(commits) == 1
    assert single_path == []
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    texts = [o["credentials"][0]["credential"] for o in outcomes]
    for (request, holder), text in zip(ready, texts):
        verified = desk.verify(text)
        assert verified.claims["uscc"] in {desk.licence_claims(s)["uscc"] for s in range(1, 7)}
        assert desk.row_of(text).holder_thumbprint == request.proof.holder_thumbprint
    # Each answer is its own request's: the USCCs come back in the order of the requests.
    assert [desk.verify(t).claims["uscc"] for t in texts] == [desk.licence_claims(s)["uscc"] for s in range(1, 7)]
    rows = [desk.row_of(t) for t in texts]
    assert len({(r.status_list_id, r.status_idx) for r in rows}) == 6
    assert desk.actions().count("credential.issued") == 6
    assert desk.service.verify_audit(desk.operator).broken is None
    assert desk.count("offer", "state = 'issued'") == 6
    assert desk.count("access_token", "used_at IS NULL") == 0
    assert desk.count("nonce", "used_at IS NULL") == 0


def test_each_refused_request_of_a_batch_gets_its_own_error_and_its_token_stays_usable(desk, single_path):
    good, _ = _ready(desk, 1)
    # A spent access token: its credential was issued before.
    spent_offer = desk.offer(2)
    spent_token = desk.token(spent_offer)
    holder = SoftwareSigner.generate("ES256")
    desk.credential(spent_token, desk.proof(holder, desk.nonce()))
    spent = _prepared(desk, spent_token, desk.proof(holder, desk.nonce()))
    # A used nonce with an unused access token.
    used_nonce = desk.nonce()
    desk.credential(desk.token(desk.offer(3)), desk.proof(SoftwareSigner.generate("ES256"), used_nonce))
    stale_token = desk.token(desk.offer(4))
    stale = _prepared(desk, stale_token, desk.proof(SoftwareSigner.generate("ES256"), used_nonce))
    # An access token for a business licence, used to ask for another configuration of the authority.
    wrong_token = desk.token(desk.offer(5))
    wrong = _prepared(desk, wrong_token, desk.proof(SoftwareSigner.generate("ES256"), desk.nonce()),
                      configuration="staff-authorisation")
    # Two requests with one nonce: one is issued, the other refused.
    shared = desk.nonce()
    twin_a = _prepared(desk, desk.token(desk.offer(6)), desk.proof(SoftwareSigner.generate("ES256"), shared))
    twin_b = _prepared(desk, desk.token(desk.offer(7)), desk.proof(SoftwareSigner.generate("ES256"), shared))

    single_path.clear()
    outcomes = desk.service.credential_batch([good, spent, stale, wrong, twin_a, twin_b])

    assert isinstance(outcomes[0], dict)
    assert isinstance(outcomes[1], o4.InvalidToken) and outcomes[1].code == "invalid_token"
    assert isinstance(outcomes[2], o4.InvalidNonce) and outcomes[2].code == "invalid_nonce"
    assert isinstance(outcomes[3], o4.InvalidCredentialRequest) and outcomes[3].code == "invalid_credential_request"
    twins = outcomes[4:]
    assert sorted(type(o).__name__ for o in twins) == ["InvalidNonce", "dict"], twins
    # Only the plain ones were issued together; the refused and the twins went on their own.
    assert {id(r) for r in single_path} == {id(spent), id(stale), id(wrong), id(twin_a), id(twin_b)}
    # Refused requests changed nothing: their tokens still work with a fresh nonce.
    desk.credential(stale_token, desk.proof(SoftwareSigner.generate("ES256"), desk.nonce()))
    desk.credential(wrong_token, desk.proof(SoftwareSigner.generate("ES256"), desk.nonce()))
    assert desk.actions().count("credential.issued") == 2 + 2 + 2  # before, in the batch, after
    assert desk.service.verify_audit(desk.operator).broken is None


def test_a_change_of_registration_in_a_batch_sends_the_batch_request_by_request(desk, single_path):
    first = desk.issue(1)
    claims = {**desk.licence_claims(1), "legal_representative": "王五"}
    offer, revoked = desk.service.change_registration(desk.operator, type_name="business-licence", claims=claims)
    assert revoked == [first.row.id]
    changed = _prepared(desk, desk.token(offer), desk.proof(SoftwareSigner.generate("ES256"), desk.nonce()))
    plain, _ = _ready(desk, 2)

    single_path.clear()
    outcomes = desk.service.credential_batch([plain, changed])

    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert {id(r) for r in single_path} == {id(plain), id(changed)}
    new_row = desk.row_of(outcomes[1]["credentials"][0]["credential"])
    with store.unit_of_work(desk.sessions, read_only=True) as tx:
        assert store.get_credential(tx, credential_id=first.row.id).replaced_by == new_row.id
    assert desk.verify(outcomes[1]["credentials"][0]["credential"]).claims["legal_representative"] == "王五"


def test_a_staff_authorisation_in_a_batch_is_issued_on_its_own(desk, single_path, staff):
    licence = desk.issue(1)
    offer = desk.service.request_authorisation(desk.SLUG, desk.authorisation_body(licence, staff))
    grant = _prepared(desk, desk.token(offer), desk.proof(staff, desk.nonce()), configuration="staff-authorisation")
    plain, _ = _ready(desk, 2)

    single_path.clear()
    outcomes = desk.service.credential_batch([grant, plain])

    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert [id(r) for r in single_path] == [id(grant)]
    row = desk.row_of(outcomes[0]["credentials"][0]["credential"])
    assert row.vct == desk.STAFF_VCT and row.granted_under == licence.row.id
    assert desk.actions().count("authorisation.granted") == 1


def test_a_batch_whose_transaction_fails_is_tried_request_by_request(desk, single_path, monkeypatch, caplog):
    ready = [_ready(desk, seed)[0] for seed in range(1, 4)]
    real = store.insert_credentials

    def insert_credentials(session, /, *, credentials):
        if len(credentials) > 1:
            raise store.StoreError("the disk is full")
        return real(session, credentials=credentials)

    monkeypatch.setattr(store, "insert_credentials", insert_credentials)
    before = desk.count("access_token", "used_at IS NULL")
    with caplog.at_level(logging.WARNING, logger="issuer.service"):
        outcomes = desk.service.credential_batch(ready)

    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert len(single_path) == 3
    assert "a batch of 3 credential requests failed" in caplog.text
    assert desk.count("access_token", "used_at IS NULL") == before - 3
    assert desk.actions().count("credential.issued") == 3
    assert desk.service.verify_audit(desk.operator).broken is None


def test_requests_of_two_authorities_are_issued_in_a_transaction_each(desk, single_path):
    sh, _ = _ready(desk, 1)
    holder = SoftwareSigner.generate("ES256")
    offer = desk.offer(2, slug=desk.FOOD)
    gd = _prepared(desk, desk.token(offer), desk.proof(holder, desk.nonce(desk.FOOD), slug=desk.FOOD), slug=desk.FOOD)
    commits = _commits(desk)

    outcomes = desk.service.credential_batch([gd, sh])

    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert single_path == [] and len(commits) == 2
    assert desk.verify(outcomes[0]["credentials"][0]["credential"], slug=desk.FOOD).claims["uscc"] == \
        desk.licence_claims(2)["uscc"]
    assert desk.actions(desk.FOOD).count("credential.issued") == 1
    assert desk.actions().count("credential.issued") == 1


def test_two_access_tokens_of_one_offer_in_a_batch_send_it_request_by_request(desk, single_path):
    # The token endpoint never makes two for one offer; the batch path must not issue twice if a second
    # token exists all the same.
    offer = desk.offer(1)
    requests = [_prepared(desk, token, desk.proof(SoftwareSigner.generate("ES256"), desk.nonce()))
                for token in (desk.token(offer), "a-second-token-of-the-same-offer")]
    with store.unit_of_work(desk.sessions) as tx:
        existing = store.get_access_token(tx, token_hash=requests[0].token_hash)
        store.create_access_token(tx, token_hash=requests[1].token_hash, offer_id=offer.offer_id,
                                  expires_at=existing.expires_at)
    plain, _ = _ready(desk, 2)

    outcomes = desk.service.credential_batch([*requests, plain])

    assert {id(r) for r in single_path} == {id(requests[0]), id(requests[1]), id(plain)}
    assert sorted(type(o).__name__ for o in outcomes[:2]) == ["InvalidToken", "dict"], outcomes
    assert isinstance(outcomes[2], dict)
    assert desk.actions().count("credential.issued") == 2
