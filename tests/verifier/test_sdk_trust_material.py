"""Trust and status material of the verifier SDK: pinned, refreshed, stale, expired, from files.

The rule under test (DESIGN.md, security model): every step fails closed. Material that is expired or
cannot be fetched gives ``cannot_verify`` / ``status_unavailable``, never "valid"; a trust list whose
refresh fails is used while it is unexpired and the result says it is stale.

Design, as tested in :func:`test_revocation_is_seen_once_the_lists_ttl_has_passed_and_not_before`:
a verifier keeps a status list for the list's ``ttl`` (here 300 s), so an acknowledged revocation is
visible to it at the latest ``ttl`` seconds after the issuer published it, and not necessarily
before. DESIGN.md: "What must never happen: ... an acknowledged revocation that a verifier can still
see as valid after the list's time-to-live".
"""

from __future__ import annotations

import json

import pytest

from credentials.errors import CredentialError
from elicence.scenario import set_status
from keys.signer import SoftwareSigner
from verifier.sdk import StatusSource, TrustListSource, Verifier

NOW = 1_790_000_000
DAY = 86400
IDX = 7


class Feed:
    """A trust list or status list endpoint: serves ``token``, counts fetches, can go down."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.fetches = 0
        self.down = False

    def __call__(self, *args: object) -> str:
        self.fetches += 1
        if self.down:
            raise OSError("connection refused")
        return self.token


def _verifier(kit, clock, trust: TrustListSource) -> Verifier:
    """A verifier over ``trust`` whose status endpoint always serves a list freshly signed at ``clock()``."""

    def fresh_status(uri: str) -> str:
        return kit.status_token(iat=int(clock()), exp=int(clock()) + DAY)

    return Verifier(trust=trust, status=StatusSource(fresh_status, clock=clock), clock=clock)


# ------------------------------------------------------------------------------------------ trust list


def test_expired_trust_list_cannot_verify_and_is_never_valid(kit, clock):
    feed = Feed(kit.world.trust_list)  # 30 days, issued at NOW
    trust = TrustListSource.from_fetch(feed, anchor=kit.world.operator.public_jwk, clock=clock, initial=feed.token)
    verifier = _verifier(kit, clock, trust)
    later = NOW + 30 * DAY
    clock.set(later - 1)
    assert verifier.verify(kit.present(now=later - 1)).status == "valid"
    clock.set(later)
    error = kit.fails(verifier, kit.present(now=later), "cannot_verify", "trusted_issuer")
    assert error.passed == ("decode", "format")
    assert "expired" in error.detail


def test_trust_list_already_expired_at_start_is_refused(kit, clock, tmp_path):
    path = tmp_path / "trust.jwt"
    path.write_text(kit.trust_list([kit.world_entry()], iat=NOW - 31 * DAY, exp=NOW - DAY))
    with pytest.raises(CredentialError) as info:
        TrustListSource.from_file(path, anchor=kit.world.operator.public_jwk, clock=clock)
    assert info.value.code == "cannot_verify"


def test_failed_refresh_keeps_the_last_good_copy_and_says_it_is_stale(kit, clock):
    feed = Feed(kit.world.trust_list)
    trust = TrustListSource.from_fetch(
        feed, anchor=kit.world.operator.public_jwk, clock=clock, initial=feed.token, refresh_interval=3600
    )
    verifier = _verifier(kit, clock, trust)
    assert verifier.verify(kit.present()).trust_list_stale is False
    feed.down = True
    clock.set(NOW + 2 * DAY)
    result = verifier.verify(kit.present(now=NOW + 2 * DAY))
    assert feed.fetches == 1
    assert result.status == "valid"
    assert result.trust_list_stale is True
    assert result.trust_list_age == 2 * DAY
    assert result.to_dict()["trust_list_stale"] is True
    # The network is back: the next refresh (after the retry interval) clears the stale flag.
    feed.down = False
    clock.set(NOW + 2 * DAY + 120)
    assert verifier.verify(kit.present(now=NOW + 2 * DAY + 120)).trust_list_stale is False


@pytest.mark.parametrize("bad", ["wrong-key", "rollback", "garbage"])
def test_bad_refreshed_list_is_not_taken_and_the_last_good_copy_is_stale(kit, clock, bad):
    entries = [kit.world_entry()]
    current = kit.trust_list(entries, sequence=5)
    feed = Feed(current)
    trust = TrustListSource.from_fetch(
        feed, anchor=kit.world.operator.public_jwk, clock=clock, initial=current, refresh_interval=60
    )
    verifier = _verifier(kit, clock, trust)
    feed.token = {
        "wrong-key": kit.trust_list(entries, sequence=6, signer=SoftwareSigner.generate("ES256")),
        "rollback": kit.trust_list(entries, sequence=4),
        "garbage": "not a trust list",
    }[bad]
    clock.set(NOW + 600)
    result = verifier.verify(kit.present(now=NOW + 600))
    assert feed.fetches == 1
    assert result.trust_list_stale is True


def test_last_good_copy_expiring_while_refresh_fails_cannot_verify(kit, clock):
    feed = Feed(kit.world.trust_list)
    trust = TrustListSource.from_fetch(feed, anchor=kit.world.operator.public_jwk, clock=clock, initial=feed.token)
    verifier = _verifier(kit, clock, trust)
    feed.down = True
    clock.set(NOW + 29 * DAY)
    assert verifier.verify(kit.present(now=NOW + 29 * DAY)).trust_list_stale is True
    clock.set(NOW + 30 * DAY + 1)
    kit.fails(verifier, kit.present(now=NOW + 30 * DAY + 1), "cannot_verify", "trusted_issuer")


def test_no_trust_list_at_all_cannot_verify(kit, clock):
    feed = Feed(kit.world.trust_list)
    feed.down = True
    trust = TrustListSource.from_fetch(feed, anchor=kit.world.operator.public_jwk, clock=clock)
    kit.fails(_verifier(kit, clock, trust), kit.present(), "cannot_verify", "trusted_issuer")


@pytest.mark.parametrize("form", ["key", "jwk", "jwk-file"])
def test_wrong_anchor_key_is_invalid_signature_at_construction(kit, clock, tmp_path, form):
    path = tmp_path / "trust.jwt"
    path.write_text(kit.world.trust_list)
    impostor = SoftwareSigner.generate("ES256")
    anchor = {
        "key": impostor.private_key.public_key(),
        "jwk": impostor.public_jwk,
        "jwk-file": tmp_path / "operator.jwk",
    }[form]
    (tmp_path / "operator.jwk").write_text(json.dumps(impostor.public_jwk))
    with pytest.raises(CredentialError) as info:
        TrustListSource.from_file(path, anchor=anchor, clock=clock)
    assert info.value.code == "invalid_signature"


def test_wrong_anchor_key_with_a_remote_list_cannot_verify_at_first_use(kit, clock):
    # Nothing is fetched at construction for a remote list; the first verification has no list.
    trust = TrustListSource.from_url(
        "https://trust.elicence.cn/list.jwt",
        anchor=SoftwareSigner.generate("ES256").public_jwk,
        clock=clock,
        fetch=lambda url: kit.world.trust_list,
    )
    error = kit.fails(_verifier(kit, clock, trust), kit.present(), "cannot_verify", "trusted_issuer")
    assert error.__cause__ is not None and error.__cause__.code == "invalid_signature"


def test_unreadable_anchor_file_is_malformed(kit, clock, tmp_path):
    path = tmp_path / "trust.jwt"
    path.write_text(kit.world.trust_list)
    (tmp_path / "operator.jwk").write_text("{not json")
    for anchor in (tmp_path / "operator.jwk", str(tmp_path / "missing.jwk")):
        with pytest.raises(CredentialError) as info:
            TrustListSource.from_file(path, anchor=anchor, clock=clock)
        assert info.value.code == "malformed"


def test_trust_list_and_status_lists_from_real_files(kit, clock, tmp_path):
    trust_path = tmp_path / "trust.jwt"
    anchor_path = tmp_path / "operator.jwk"
    status_path = tmp_path / "status-1.jwt"
    trust_path.write_text(kit.world.trust_list + "\n")
    anchor_path.write_text(json.dumps(kit.world.operator.public_jwk))
    status_path.write_text(kit.world.status_token + "\n")
    verifier = Verifier(
        trust=TrustListSource.from_file(trust_path, anchor=anchor_path, clock=clock, refresh_interval=60),
        status=StatusSource.from_files([status_path], clock=clock),
        clock=clock,
    )
    assert verifier.verify(kit.el1()).status == "valid"

    # The issuer revokes the licence; the new list file replaces the old one, and is read once the
    # cached copy's ttl (300 s) has passed.
    revoked = set_status(kit.world, IDX, 1, now=NOW + 10)
    status_path.write_text(revoked.status_token)
    clock.set(NOW + 301)
    kit.fails(verifier, kit.el1(now=NOW + 301), "revoked", "status")

    # The operator publishes a new trust list without the issuer; it is read after refresh_interval.
    trust_path.write_text(kit.trust_list([kit.entry("https://amr.js.example.gov.cn", SoftwareSigner.generate("ES256"))], sequence=2))
    clock.set(NOW + 400)
    kit.fails(verifier, kit.el1(now=NOW + 400), "untrusted_issuer", "trusted_issuer")


def test_status_files_only_answer_for_the_lists_they_hold(kit, clock, tmp_path):
    other = tmp_path / "status-2.jwt"
    other.write_text(kit.status_token(sub=kit.world.issuer_id + "/status/2"))
    verifier = kit.verifier(clock=clock, status=StatusSource.from_files([other], clock=clock))
    kit.fails(verifier, kit.present(), "status_unavailable", "status")


@pytest.mark.parametrize("content", [b"this is not a status list token", b"\xff\xfe\x00binary", b"a.b.c"])
def test_status_file_that_is_not_a_token_is_refused_at_start(tmp_path, clock, content):
    path = tmp_path / "status.jwt"
    path.write_bytes(content)
    with pytest.raises(CredentialError) as info:
        StatusSource.from_files([path], clock=clock)
    assert info.value.code == "malformed"


@pytest.mark.parametrize("content", [b"not a trust list", b"\xff\xfe\x00binary", b"a.b.c"])
def test_trust_file_that_is_not_a_trust_list_is_refused_at_start(kit, tmp_path, clock, content):
    path = tmp_path / "trust.jwt"
    path.write_bytes(content)
    with pytest.raises(CredentialError) as info:
        TrustListSource.from_file(path, anchor=kit.world.operator.public_jwk, clock=clock)
    assert info.value.code == "malformed"


# --------------------------------------------------------------------------------------- status lists


def test_revocation_is_seen_once_the_lists_ttl_has_passed_and_not_before(kit, clock):
    feed = Feed(kit.world.status_token)  # ttl 300 s
    verifier = kit.verifier(clock=clock, status=StatusSource(feed, clock=clock))
    clock.set(NOW + 10)
    assert verifier.verify(kit.present(now=NOW + 10)).status == "valid"
    # The issuer revokes at NOW + 20 and publishes at once.
    feed.token = set_status(kit.world, IDX, 1, now=NOW + 20).status_token
    # Design: the cached list is used until its ttl has passed (fetched at NOW + 10, ttl 300) ...
    clock.set(NOW + 309)
    result = verifier.verify(kit.present(now=NOW + 309))
    assert (result.status, result.status_list_age, feed.fetches) == ("valid", 299, 1)
    # ... and the revocation is visible from then on, never later.
    clock.set(NOW + 310)
    kit.fails(verifier, kit.present(now=NOW + 310), "revoked", "status")
    assert feed.fetches == 2


def test_list_past_its_ttl_with_the_fetch_failing_is_status_unavailable(kit, clock):
    feed = Feed(kit.world.status_token)
    verifier = kit.verifier(clock=clock, status=StatusSource(feed, clock=clock))
    assert verifier.verify(kit.present()).status == "valid"
    feed.down = True
    clock.set(NOW + 299)
    assert verifier.verify(kit.present(now=NOW + 299)).status == "valid"  # within ttl: cached copy
    clock.set(NOW + 300)
    kit.fails(verifier, kit.present(now=NOW + 300), "status_unavailable", "status")


def test_list_without_ttl_is_kept_for_max_age(kit, clock):
    feed = Feed(kit.status_token(ttl=None))
    verifier = kit.verifier(clock=clock, status=StatusSource(feed, clock=clock, max_age=900))
    assert verifier.verify(kit.present()).status == "valid"
    feed.down = True
    clock.set(NOW + 899)
    assert verifier.verify(kit.present(now=NOW + 899)).status == "valid"
    clock.set(NOW + 900)
    kit.fails(verifier, kit.present(now=NOW + 900), "status_unavailable", "status")


def test_list_is_not_used_past_its_exp_even_within_ttl(kit, clock):
    feed = Feed(kit.status_token(ttl=3600, exp=NOW + 100))
    verifier = kit.verifier(clock=clock, status=StatusSource(feed, clock=clock))
    assert verifier.verify(kit.present()).status == "valid"
    clock.set(NOW + 100)
    kit.fails(verifier, kit.present(now=NOW + 100), "status_unavailable", "status")
    assert feed.fetches == 2


def test_older_list_served_after_a_newer_one_is_refused(kit, clock):
    newer = set_status(kit.world, IDX, 1, now=NOW + 5)
    feed = Feed(newer.status_token)
    verifier = kit.verifier(clock=clock, status=StatusSource(feed, clock=clock))
    clock.set(NOW + 10)
    kit.fails(verifier, kit.present(now=NOW + 10), "revoked", "status")
    # A CDN serving the older, all-valid copy must not resurrect the licence.
    feed.token = kit.world.status_token  # iat NOW
    clock.set(NOW + 400)
    kit.fails(verifier, kit.present(now=NOW + 400), "status_unavailable", "status")


def test_issuer_removed_from_the_trust_list_cannot_sign_its_status_list(kit, clock):
    # The issuer's key signs the status list, but by the time the list is fetched the issuer has left
    # the trust list: the lookup must not fall back to a key it no longer trusts.
    entries = [kit.world_entry()]
    trust_feed = Feed(kit.trust_list(entries, sequence=1))
    trust = TrustListSource.from_fetch(
        trust_feed, anchor=kit.world.operator.public_jwk, clock=clock, initial=trust_feed.token, refresh_interval=60
    )
    verifier = _verifier(kit, clock, trust)
    assert verifier.verify(kit.present()).status == "valid"
    trust_feed.token = kit.trust_list([kit.entry("https://amr.js.example.gov.cn", SoftwareSigner.generate("ES256"))], sequence=2)
    clock.set(NOW + 120)
    kit.fails(verifier, kit.present(now=NOW + 120), "untrusted_issuer", "trusted_issuer")
