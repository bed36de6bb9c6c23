"""Every named check of the verifier SDK fails with its own code, and the report names the failed check.

For each check of :data:`verifier.checks.CHECKS` the presentation is broken in exactly one way, so the
checks before it pass and it fails: ``error.code``, ``error.check``, ``error.passed`` and
:func:`verifier.sdk.failure_report` are asserted together by ``Kit.fails`` (tests/verifier/conftest.py).
"""

from __future__ import annotations

import io

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image

from credentials import jws, qr, sd_jwt
from elicence.scenario import set_status
from keys.jwk import b64u_decode, b64u_encode
from keys.signer import SoftwareSigner
from schemas.registry import get_type
from verifier.sdk import MemoryReplayStore, Policy, failure_report

NOW = 1_790_000_000
DAY = 86400
IDX = 7
OTHER_ISSUER = "https://amr.js.example.gov.cn"


def _strip_kb(presentation: str) -> str:
    return presentation.rsplit("~", 1)[0] + "~"


def _parts(presentation: str) -> sd_jwt.SdJwt:
    return sd_jwt.SdJwt.parse(presentation)


def _leaf(disclosures: tuple[str, ...]) -> str:
    """A disclosure no other disclosure depends on (its value hides nothing)."""
    return next(d for d in disclosures if "_sd" not in str(sd_jwt.parse_disclosure(d).value))


# --------------------------------------------------------------------------------------------- decode


def _blank_png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (240, 240), 255).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    "data, code",
    [
        pytest.param(b"\xff\xfe\x00\x81garbage\xc3", "malformed", id="garbage-bytes"),
        pytest.param(_blank_png(), "malformed", id="png-without-qr"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "malformed", id="broken-png"),
        pytest.param("hello, this is not a licence", "malformed", id="random-text"),
        pytest.param("", "malformed", id="empty-text"),
        pytest.param("EL1:ABCDEF", "malformed", id="el1-not-deflate"),
        pytest.param("EL1:" + "A" * 10_000, "payload_too_large", id="el1-too-long"),
    ],
)
def test_decode_fails_on_input_that_is_no_presentation(kit, data, code):
    kit.fails(kit.verifier(), data, code, "decode")


def test_decode_fails_on_a_truncated_qr_image(kit):
    png = qr.render_png(kit.el1())
    kit.fails(kit.verifier(), png[: len(png) // 2], "malformed", "decode")


def test_decode_fails_on_an_image_of_a_qr_code_that_is_not_ours(kit):
    kit.fails(kit.verifier(), qr.render_png("https://example.com/not-a-licence"), "malformed", "decode")


# --------------------------------------------------------------------------------------------- format


@pytest.mark.parametrize(
    "text, code",
    [
        pytest.param("abc~", "malformed", id="issuer-jwt-not-a-jws"),
        pytest.param("a.b.c~d~", "malformed", id="parts-not-base64url-json"),
        pytest.param("~abc~", "malformed", id="empty-issuer-jwt"),
        pytest.param("令牌~披露~", "malformed", id="non-ascii"),
        pytest.param("x" * (300 * 1024) + "~", "payload_too_large", id="too-large"),
    ],
)
def test_format_fails_on_text_that_is_not_an_sd_jwt(kit, text, code):
    kit.fails(kit.verifier(), text, code, "format")


def test_format_fails_on_an_empty_disclosure(kit):
    parts = _parts(kit.present())
    text = parts.issuer_jwt + "~~" + "~".join(parts.disclosures) + "~" + parts.kb_jwt
    kit.fails(kit.verifier(), text, "malformed", "format")


# ------------------------------------------------------------------------------------- trusted_issuer


def test_issuer_not_on_the_trust_list_is_untrusted(kit):
    credential = kit.issue(issuer_id=OTHER_ISSUER, signer=SoftwareSigner.generate("ES256"))
    kit.fails(kit.verifier(), kit.present(credential), "untrusted_issuer", "trusted_issuer")


def test_issuer_not_allowed_for_the_type_is_refused(kit):
    person_vct = get_type("natural-person").vct
    credential = kit.issue(vct=person_vct)
    kit.fails(kit.verifier(), kit.present(credential), "issuer_not_authorized_for_type", "trusted_issuer")


def test_issuer_signing_with_a_key_not_on_the_list_is_unknown_key(kit):
    credential = kit.issue(signer=SoftwareSigner.generate("ES256"))  # kid = thumbprint of an unlisted key
    kit.fails(kit.verifier(), kit.present(credential), "unknown_key", "trusted_issuer")


def test_another_trusted_issuers_key_cannot_sign_for_this_issuer(kit):
    other = SoftwareSigner.generate("ES256")
    trust_token = kit.trust_list([kit.world_entry(), kit.entry(OTHER_ISSUER, other)])
    # The other issuer's own credential is accepted ...
    own = kit.issue(issuer_id=OTHER_ISSUER, signer=other, status=None)
    lenient = kit.verifier(trust_token=trust_token, policy=Policy(require_status=False))
    assert lenient.verify(kit.present(own)).issuer == OTHER_ISSUER
    # ... but its key is not a key of the Shanghai issuer.
    forged = kit.issue(signer=other)
    kit.fails(kit.verifier(trust_token=trust_token), kit.present(forged), "unknown_key", "trusted_issuer")


# ------------------------------------------------------------------------------------------ signature


def test_tampered_issuer_payload_fails_the_signature(kit):
    parts = _parts(kit.present())
    header, payload, signature = parts.issuer_jwt.split(".")
    claims = jws.loads(b64u_decode(payload))
    claims["name"] = "上海伪造科技有限公司"
    tampered = ".".join((header, b64u_encode(jws.dumps(claims)), signature))
    # The holder signs a KB-JWT over the tampered text, so only the issuer signature is wrong.
    kit.fails(kit.verifier(), kit.pack(tampered, parts.disclosures), "invalid_signature", "signature")


def test_signature_of_another_credential_fails(kit):
    other = _parts(kit.issue()).issuer_jwt.split(".")[2]
    parts = _parts(kit.present())
    header, payload, _ = parts.issuer_jwt.split(".")
    swapped = ".".join((header, payload, other))
    kit.fails(kit.verifier(), kit.pack(swapped, parts.disclosures), "invalid_signature", "signature")


def test_alg_none_is_refused(kit):
    parts = _parts(kit.present())
    parsed = jws.parse(parts.issuer_jwt)
    unsigned = b64u_encode(jws.dumps({**parsed.header, "alg": "none"})) + "." + parts.issuer_jwt.split(".")[1] + "."
    kit.fails(kit.verifier(), kit.pack(unsigned, parts.disclosures), "unsupported_alg", "signature")


def test_legacy_vc_sd_jwt_typ_is_refused(kit):
    # s3.2.1 of the SD-JWT VC draft: typ dc+sd-jwt; the pre-2024 vc+sd-jwt is deliberately not accepted.
    payload = {
        "iss": kit.world.issuer_id, "iat": NOW, "exp": NOW + DAY, "vct": kit.vct,
        "status": {"status_list": {"idx": IDX, "uri": kit.world.status_uri}}, **kit.claims,
    }
    credential = kit.issue_raw(payload, typ="vc+sd-jwt")
    kit.fails(kit.verifier(), kit.present(credential), "invalid_typ", "signature")


# ---------------------------------------------------------------------------------------- disclosures


def test_tampered_disclosure_is_not_referenced(kit):
    parts = _parts(kit.present(disclose=kit.leaf_paths))
    leaf = sd_jwt.parse_disclosure(_leaf(parts.disclosures))
    forged = sd_jwt.make_disclosure(leaf.name, "篡改后的内容", salt=leaf.salt).encoded
    disclosures = tuple(forged if d == leaf.encoded else d for d in parts.disclosures)
    kit.fails(kit.verifier(), kit.pack(parts.issuer_jwt, disclosures), "disclosure_unreferenced", "disclosures")


def test_disclosure_from_another_credential_is_not_referenced(kit):
    other = _parts(kit.issue())  # same claims, other salts: other digests
    parts = _parts(kit.present(disclose=kit.leaf_paths[:1]))
    disclosures = parts.disclosures + (other.disclosures[-1],)
    kit.fails(kit.verifier(), kit.pack(parts.issuer_jwt, disclosures), "disclosure_unreferenced", "disclosures")


def test_same_disclosure_twice_is_refused(kit):
    parts = _parts(kit.present())
    disclosures = parts.disclosures + (parts.disclosures[-1],)
    kit.fails(kit.verifier(), kit.pack(parts.issuer_jwt, disclosures), "duplicate_disclosure", "disclosures")


# ------------------------------------------------------------------------------------ validity_period


def test_expired_credential_is_refused(kit):
    credential = kit.issue(iat=NOW - 400 * DAY, exp=NOW - 35 * DAY)
    kit.fails(kit.verifier(), kit.present(credential), "expired", "validity_period")


def test_expiry_allows_the_clock_skew_and_no_more(kit):
    verifier = kit.verifier()
    assert verifier.verify(kit.present(kit.issue(iat=NOW - DAY, exp=NOW - 59))).status == "valid"
    kit.fails(verifier, kit.present(kit.issue(iat=NOW - DAY, exp=NOW - 60)), "expired", "validity_period")


def test_credential_not_yet_valid_is_refused(kit):
    credential = kit.issue(nbf=NOW + DAY)
    kit.fails(kit.verifier(), kit.present(credential), "not_yet_valid", "validity_period")


def test_credential_issued_in_the_future_is_refused(kit):
    credential = kit.issue(iat=NOW + 3600)
    # iat is checked by the SD-JWT VC layer after key binding, so key_binding is among the passed
    # checks; the report must still list each check once, the failed one last.
    error = kit.fails(kit.verifier(), kit.present(credential), "iat_in_future", "validity_period", prefix=False)
    assert "signature" in error.passed


# ---------------------------------------------------------------------------------------- key_binding


def test_presentation_without_key_binding_is_refused(kit):
    kit.fails(kit.verifier(), _strip_kb(kit.present()), "kb_missing", "key_binding")


def test_offline_code_for_another_audience_is_refused(kit):
    text = kit.present(aud="https://another-verifier.example.gov.cn")
    kit.fails(kit.verifier(), text, "kb_aud_mismatch", "key_binding")


def test_code_older_than_the_freshness_window_is_refused(kit, clock):
    verifier = kit.verifier(clock=clock)
    freshness = Policy().freshness
    assert verifier.verify(kit.present(now=NOW - freshness)).status == "valid"
    kit.fails(verifier, kit.present(now=NOW - freshness - 1), "kb_iat_out_of_window", "key_binding")


def test_code_dated_in_the_future_beyond_the_skew_is_refused(kit):
    verifier = kit.verifier()
    assert verifier.verify(kit.present(now=NOW + 60)).status == "valid"
    kit.fails(verifier, kit.present(now=NOW + 61), "kb_iat_out_of_window", "key_binding")


def test_kb_jwt_signed_by_another_key_is_invalid(kit):
    parts = _parts(kit.present())
    thief = SoftwareSigner.generate("ES256")
    kit.fails(kit.verifier(), kit.pack(parts.issuer_jwt, parts.disclosures, signer=thief), "kb_invalid", "key_binding")


def test_kb_jwt_with_wrong_typ_is_invalid(kit):
    parts = _parts(kit.present())
    sd_text = parts.sd_jwt_text
    kb = jws.sign(
        {"iat": NOW, "aud": qr.OFFLINE_AUDIENCE, "nonce": kit.nonce(), "sd_hash": sd_jwt.digest(sd_text)},
        kit.world.holder,
        typ="JWT",
        include_kid=False,
    )
    kit.fails(kit.verifier(), sd_text + kb, "kb_invalid", "key_binding")


def test_disclosure_added_after_the_holder_signed_breaks_sd_hash(kit):
    shown = kit.present(disclose=kit.leaf_paths[:1])
    parts = _parts(shown)
    extra = next(d for d in _parts(kit.credential).disclosures if d not in parts.disclosures)
    added = sd_jwt.SdJwt(parts.issuer_jwt, parts.disclosures + (extra,), parts.kb_jwt).serialize()
    kit.fails(kit.verifier(), added, "sd_hash_mismatch", "key_binding")


def test_disclosure_removed_after_the_holder_signed_breaks_sd_hash(kit):
    parts = _parts(kit.present(disclose=kit.leaf_paths))
    leaf = _leaf(parts.disclosures)
    kept = tuple(d for d in parts.disclosures if d != leaf)
    removed = sd_jwt.SdJwt(parts.issuer_jwt, kept, parts.kb_jwt).serialize()
    kit.fails(kit.verifier(), removed, "sd_hash_mismatch", "key_binding")


def test_online_presentation_answering_another_nonce_is_refused(kit):
    audience = "https://window.sh.example.gov.cn"
    text = kit.present(aud=audience, nonce="nonce-of-an-earlier-request")
    kit.fails(kit.verifier(), text, "kb_nonce_mismatch", "key_binding", nonce="nonce-of-this-request", audience=audience)


def test_online_verifier_refuses_an_offline_code(kit):
    kit.fails(
        kit.verifier(), kit.present(), "kb_aud_mismatch", "key_binding",
        nonce=None, audience="https://window.sh.example.gov.cn",
    )


# --------------------------------------------------------------------------------------------- status


@pytest.mark.parametrize("value, code", [(1, "revoked"), (2, "suspended"), (3, "status_error")])
def test_credential_marked_in_the_status_list_is_refused(kit, value, code):
    changed = set_status(kit.world, IDX, value, now=NOW)
    kit.fails(kit.verifier(status=changed.status_token), kit.present(), code, "status")


def test_other_entries_of_the_list_do_not_affect_this_credential(kit):
    changed = set_status(set_status(kit.world, IDX - 1, 1, now=NOW), IDX + 1, 2, now=NOW)
    assert kit.verifier(status=changed.status_token).verify(kit.present()).status == "valid"


def test_status_fetch_failure_is_status_unavailable(kit):
    def offline(uri: str) -> bytes:
        raise OSError("network is unreachable")

    kit.fails(kit.verifier(status=offline), kit.present(), "status_unavailable", "status")


def test_status_list_signed_by_an_unlisted_key_is_refused(kit):
    token = kit.status_token(signer=SoftwareSigner.generate("ES256"))
    kit.fails(kit.verifier(status=token), kit.present(), "unknown_key", "status")


def test_status_list_signed_by_another_trusted_issuer_is_refused(kit):
    # The other issuer is on the trust list and signs a list for the Shanghai issuer's URI: a list
    # counts only when signed by the credential's own issuer.
    other = SoftwareSigner.generate("ES256")
    trust_token = kit.trust_list([kit.world_entry(), kit.entry(OTHER_ISSUER, other)])
    token = kit.status_token(kit.world.statuses, signer=other)
    verifier = kit.verifier(trust_token=trust_token, status=token)
    kit.fails(verifier, kit.present(), "unknown_key", "status")


def test_status_list_with_a_forged_kid_fails_its_signature(kit):
    token = kit.status_token(signer=SoftwareSigner.generate("ES256"), header={"kid": kit.world.issuer.kid})
    kit.fails(kit.verifier(status=token), kit.present(), "invalid_signature", "status")


def test_status_list_for_another_uri_is_refused(kit):
    token = kit.status_token(sub=kit.world.issuer_id + "/status/2")
    kit.fails(kit.verifier(status=token), kit.present(), "status_list_invalid", "status")


def test_status_index_beyond_the_list_is_refused(kit):
    credential = kit.issue(status=(kit.world.statuses.size + 5, kit.world.status_uri))
    kit.fails(kit.verifier(), kit.present(credential), "status_list_invalid", "status")


def test_status_list_with_wrong_typ_is_refused(kit):
    lst = kit.world.statuses
    token = jws.sign(
        {"sub": kit.world.status_uri, "iat": NOW, "exp": NOW + DAY, "ttl": 300, "status_list": lst.to_json()},
        kit.world.issuer,
        typ="JWT",
    )
    kit.fails(kit.verifier(status=token), kit.present(), "invalid_typ", "status")


def test_credential_without_status_is_refused_when_status_is_required(kit):
    credential = kit.issue(status=None)
    kit.fails(kit.verifier(), kit.present(credential), "missing_claim", "status")


def test_expired_status_list_is_status_unavailable(kit, clock):
    token = kit.status_token(iat=NOW - 2 * DAY, exp=NOW - DAY)
    kit.fails(kit.verifier(status=token, clock=clock), kit.present(), "status_unavailable", "status")


# --------------------------------------------------------------------------------------------- policy


def test_type_not_accepted_by_this_verifier_is_refused(kit):
    policy = Policy(accepted_vcts=frozenset({get_type("food-business-permit").vct}))
    kit.fails(kit.verifier(policy=policy), kit.present(), "invalid_typ", "policy")


@pytest.mark.parametrize("as_mapping", [False, True], ids=["tuple", "per-vct"])
def test_required_claim_not_disclosed_is_missing(kit, as_mapping):
    top = kit.top_sd_names[0]
    required = {kit.vct: (top,)} if as_mapping else (top,)
    error = kit.fails(kit.verifier(policy=Policy(required_claims=required)), kit.present(disclose=[]), "missing_claim", "policy")
    assert top in error.detail


def test_required_nested_claim_is_missing_when_only_its_parent_object_is_disclosed(kit):
    # With recursive disclosures the parent object can be shown empty: requiring it requires nothing.
    path = next(p for p in kit.leaf_paths if len(p) > 1)
    policy = Policy(required_claims=(path,))
    shown_empty = kit.present(disclose=[path[:-1]])
    error = kit.fails(kit.verifier(policy=policy), shown_empty, "missing_claim", "policy")
    assert ".".join(path) in error.detail
    assert kit.verifier(policy=policy).verify(kit.present(disclose=[path])).status == "valid"


def test_required_claims_of_another_type_do_not_apply(kit):
    policy = Policy(required_claims={get_type("food-business-permit").vct: ("permit_number",)})
    assert kit.verifier(policy=policy).verify(kit.present(disclose=[])).status == "valid"


# --------------------------------------------------------------------------------------------- replay


def test_same_presentation_twice_is_a_replay(kit):
    verifier = kit.verifier()
    text = kit.el1()
    assert verifier.verify(text).status == "valid"
    kit.fails(verifier, text, "replay", "replay")


def test_same_presentation_in_another_encoding_is_a_replay(kit):
    verifier = kit.verifier()
    raw = kit.present()
    assert verifier.verify(qr.render_png(qr.encode_payload(raw))).status == "valid"
    kit.fails(verifier, raw, "replay", "replay")
    kit.fails(verifier, raw.encode("ascii"), "replay", "replay")


def test_replay_is_caught_across_verifiers_sharing_a_store(kit):
    store = MemoryReplayStore()
    text = kit.present()
    assert kit.verifier(replay=store).verify(text).status == "valid"
    kit.fails(kit.verifier(replay=store), text, "replay", "replay")


def _malleate(kb_jwt: str) -> str:
    """The same KB-JWT with its ECDSA signature (r, s) re-encoded as (r, n - s): still a valid signature."""
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # order of P-256
    header, payload, signature = kb_jwt.split(".")
    raw = b64u_decode(signature)
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    return ".".join((header, payload, b64u_encode(r + (n - s).to_bytes(32, "big"))))


def test_malleated_kb_signature_is_still_a_replay(kit):
    assert isinstance(kit.world.holder.private_key, ec.EllipticCurvePrivateKey)  # P-256, ES256
    original = kit.present()
    parts = _parts(original)
    malleated = sd_jwt.SdJwt(parts.issuer_jwt, parts.disclosures, _malleate(parts.kb_jwt)).serialize()
    assert malleated != original
    # The re-encoded signature is a valid ECDSA signature (no low-s rule in JOSE): a fresh verifier
    # accepts it, so it is the replay check, keyed on the KB-JWT claims, that must stop the copy.
    assert kit.verifier().verify(malleated).status == "valid"
    for first, second in ((original, malleated), (malleated, original)):
        verifier = kit.verifier()
        assert verifier.verify(first).status == "valid"
        kit.fails(verifier, second, "replay", "replay")


def test_failed_verification_does_not_use_up_the_code(kit):
    available = {"up": False}

    def fetch(uri: str) -> str:
        if not available["up"]:
            raise OSError("status server down")
        return kit.world.status_token

    verifier = kit.verifier(status=fetch)
    text = kit.el1()
    kit.fails(verifier, text, "status_unavailable", "status")
    available["up"] = True
    assert verifier.verify(text).status == "valid"
    kit.fails(verifier, text, "replay", "replay")


def test_failure_report_names_the_claimed_issuer_and_type_unverified(kit):
    world = kit.world
    revoked = kit.verifier(status=set_status(world, IDX, 1, now=NOW).status_token)
    error = kit.fails(revoked, kit.present(), "revoked", "status")
    report = failure_report(error)
    assert report["claimed_issuer"] == world.issuer_id
    assert report["claimed_vct"] == kit.licence.vct
    garbage = kit.fails(kit.verifier(), "not a presentation", "malformed", "decode")
    assert failure_report(garbage)["claimed_issuer"] is None
