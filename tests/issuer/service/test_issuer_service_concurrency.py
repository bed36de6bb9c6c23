"""IssuerService under parallel requests: single-use values stay single use, PIN attempts stay bounded.

Threads are released together (``kit.run_concurrently``); on PostgreSQL they race for real rows, on
SQLite the writers queue. Either way the outcome must be the one a sequential run allows.
"""

from __future__ import annotations

from credentials import openid4vci as o4
from keys.signer import SoftwareSigner

N = 8


def test_parallel_redemptions_of_one_code_give_one_access_token(desk, kit):
    offer = desk.offer(1)
    form = desk.token_form(offer)
    results = kit.run_concurrently(N, lambda i: desk.service.token(desk.SLUG, form))
    tokens = [r for r in results if isinstance(r, dict)]
    errors = [r for r in results if not isinstance(r, dict)]
    assert len(tokens) == 1, results
    assert all(isinstance(e, o4.InvalidGrant) for e in errors), errors
    assert desk.count("access_token") == 1


def test_parallel_wrong_pins_never_exceed_the_attempt_limit(desk, kit):
    offer = desk.offer(1)
    wrong = "000000" if offer.tx_code != "000000" else "111111"
    form = desk.token_form(offer, tx_code=wrong)
    results = kit.run_concurrently(N, lambda i: desk.service.token(desk.SLUG, form))
    assert all(isinstance(r, o4.InvalidGrant) for r in results), results
    assert desk.offer_row(offer.offer_id).pin_attempts == desk.service.policy.max_pin_attempts


def test_parallel_credential_requests_with_one_access_token_issue_one_credential(desk, kit):
    access_token = desk.token(desk.offer(1))
    holders = [SoftwareSigner.generate("ES256") for _ in range(N)]
    proofs = [desk.proof(h, desk.nonce()) for h in holders]
    results = kit.run_concurrently(N, lambda i: desk.credential(access_token, proofs[i]))
    issued = [r for r in results if isinstance(r, dict)]
    assert len(issued) == 1, results
    assert all(isinstance(r, o4.InvalidToken) for r in results if not isinstance(r, dict)), results
    assert desk.count("credential") == 1
    assert desk.actions().count("credential.issued") == 1


def test_parallel_issuances_get_distinct_status_indexes_and_one_audit_chain(desk, kit):
    for seed in range(N):
        desk.import_licence(seed)
    ready = []
    for seed in range(N):
        holder = SoftwareSigner.generate("ES256")
        ready.append((desk.token(desk.offer(seed, imported=True)), desk.proof(holder, desk.nonce())))
    results = kit.run_concurrently(N, lambda i: desk.credential(*ready[i]))
    assert all(isinstance(r, dict) for r in results), results
    rows = [desk.row_of(r["credentials"][0]["credential"]) for r in results]
    assert len({(r.status_list_id, r.status_idx) for r in rows}) == N
    assert desk.service.verify_audit(desk.operator).broken is None
