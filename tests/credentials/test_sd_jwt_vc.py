"""SD-JWT VC (draft-ietf-oauth-sd-jwt-vc-13): issue_vc, verify_vc and JWT VC Issuer Metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from credentials import jws
from credentials.errors import CredentialError, IssuerNotAuthorizedForType, UnknownKey
from credentials.sd_jwt import KeyBindingPolicy, SdJwt, issue, parse_disclosure, present
from credentials.sd_jwt_vc import (
    NEVER_DISCLOSABLE,
    VC_TYP,
    IssuerMetadataResolver,
    StatusReference,
    check_issuer_identifier,
    issue_vc,
    verify_vc,
    well_known_url,
)
from credentials.trace import CheckTrace
from keys.jwk import jwks, private_jwk
from keys.signer import SoftwareSigner

NOW = 1_750_000_000
ISS = "https://samr.example.gov.cn/issuer"
VCT = "https://elicence.example.gov.cn/vct/business-licence/v1"
NONCE, AUD = "nonce-123", "https://window.example.gov.cn"
ISSUER = SoftwareSigner.generate("ES256")
HOLDER = SoftwareSigner.generate("ES256")
OTHER = SoftwareSigner.generate("ES256")
SUBJECT = {
    "uscc": "91310000MA1FL0EXAM",
    "name": "上海示例科技有限公司",
    "legal_representative": "张三",
    "domicile": {"city": "上海市", "street": "浦东新区示例路1号"},
}
VC_VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "sd-jwt-vc"
RFC_VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc9901"


def counter_salts():
    n = iter(range(10_000))
    return lambda: f"salt{next(n)}"


def make_vc(**kw) -> str:
    args = dict(
        vct=VCT,
        issuer=ISS,
        signer=ISSUER,
        disclosable=["uscc", "name", "legal_representative", ("domicile", "street")],
        holder_jwk=HOLDER.public_jwk,
        status=(4711, "https://samr.example.gov.cn/status/1"),
        iat=NOW - 3600,
        exp=NOW + 86400 * 365,
        salt_source=counter_salts(),
    )
    args.update(kw)
    return issue_vc(SUBJECT, **args)


def resolver_for(signer):
    def resolve(iss, header, vct):
        if iss != ISS:
            raise UnknownKey()
        return signer.private_key.public_key()

    return resolve


def kb_present(text, disclose=("name",), **kw):
    args = dict(holder_signer=HOLDER, aud=AUD, nonce=NONCE, now=NOW)
    args.update(kw)
    return present(text, disclose=disclose, **args)


def check(text, **kw):
    args = dict(resolve_issuer_key=resolver_for(ISSUER), now=NOW, kb=KeyBindingPolicy(nonce=NONCE, aud=AUD))
    args.update(kw)
    return verify_vc(text, **args)


def code_of(fn, *args, **kwargs) -> str:
    with pytest.raises(CredentialError) as err:
        fn(*args, **kwargs)
    return err.value.code


def raw_vc(payload: dict, *, typ=VC_TYP, disclosable=(), holder=True) -> str:
    """A credential built with the bare RFC 9901 issuer, to make what issue_vc refuses to make."""
    return issue(
        payload, disclosable=disclosable, signer=ISSUER, typ=typ, holder_jwk=HOLDER.public_jwk if holder else None
    )


BASE = {"iss": ISS, "iat": NOW - 10, "exp": NOW + 1000, "vct": VCT}


# ------------------------------------------------------------------------------------------ issue


class TestIssueVc:
    def test_registered_claims_stay_in_the_clear(self):
        sd = SdJwt.parse(make_vc())
        signed = jws.parse(sd.issuer_jwt)
        assert signed.header["typ"] == "dc+sd-jwt" and signed.header["kid"] == ISSUER.kid
        p = signed.payload
        assert (p["iss"], p["vct"], p["iat"], p["exp"]) == (ISS, VCT, NOW - 3600, NOW + 86400 * 365)
        assert p["cnf"] == {"jwk": dict(HOLDER.public_jwk)}
        assert p["status"] == {"status_list": {"idx": 4711, "uri": "https://samr.example.gov.cn/status/1"}}
        assert "nbf" not in p and "name" not in p
        names = {parse_disclosure(d).name for d in sd.disclosures}
        assert names == {"uscc", "name", "legal_representative", "street"}
        assert not names & NEVER_DISCLOSABLE

    def test_nbf_and_no_status(self):
        p = jws.parse(SdJwt.parse(make_vc(nbf=NOW - 60, status=None)).issuer_jwt).payload
        assert p["nbf"] == NOW - 60 and "status" not in p

    @pytest.mark.parametrize("name", sorted(NEVER_DISCLOSABLE))
    def test_registered_claims_cannot_be_made_disclosable(self, name):
        assert code_of(make_vc, disclosable=[name]) == "malformed"

    @pytest.mark.parametrize("name", ["iss", "vct", "iat", "exp", "nbf", "cnf", "status"])
    def test_registered_claims_come_from_parameters(self, name):
        assert code_of(issue_vc, {**SUBJECT, name: 1}, vct=VCT, issuer=ISS, signer=ISSUER, holder_jwk=None,
                       status=None, iat=NOW, exp=NOW + 1) == "malformed"

    @pytest.mark.parametrize(
        "issuer",
        ["http://samr.example.gov.cn", "https://samr.example.gov.cn?x=1", "https://samr.example.gov.cn#f",
         "https://user@samr.example.gov.cn", "https://", "samr.example.gov.cn", "https://a b.cn", "HTTPS://x.cn",
         "https://x.cn:port"],
    )
    def test_issuer_must_be_an_https_identifier(self, issuer):
        assert code_of(make_vc, issuer=issuer) == "malformed"

    @pytest.mark.parametrize(
        "kw",
        [dict(vct=""), dict(vct=5), dict(exp=NOW - 7200), dict(iat=1.5), dict(nbf=NOW + 86400 * 366),
         dict(status=(-1, "https://s.example/1")), dict(status=(True, "https://s.example/1")),
         dict(status=(1, "http://s.example/1")), dict(status=(1,))],
    )
    def test_bad_parameters(self, kw):
        assert code_of(make_vc, **kw) == "malformed"


# ----------------------------------------------------------------------------------------- verify


class TestVerifyVc:
    def test_round_trip_with_key_binding(self):
        cred = check(kb_present(make_vc(nbf=NOW - 60), disclose=["name", ("domicile", "street")]))
        assert cred.issuer == ISS and cred.vct == VCT
        assert (cred.iat, cred.nbf, cred.exp) == (NOW - 3600, NOW - 60, NOW + 86400 * 365)
        assert cred.status == StatusReference(4711, "https://samr.example.gov.cn/status/1")
        assert cred.holder_jwk == dict(HOLDER.public_jwk)
        assert cred.key_bound and cred.kb_payload["aud"] == AUD
        assert cred.kid == ISSUER.kid
        assert cred.claims["name"] == SUBJECT["name"] and cred.claims["domicile"] == SUBJECT["domicile"]
        assert "uscc" not in cred.claims and "legal_representative" not in cred.claims
        assert set(cred.disclosed_paths) == {("name",), ("domicile", "street")}

    def test_without_key_binding_when_not_required(self):
        cred = check(present(make_vc(), disclose=[]), kb=None)
        assert not cred.key_bound and cred.kb_payload is None
        assert cred.claims["domicile"] == {"city": "上海市"}

    def test_key_binding_required_but_missing(self):
        assert code_of(check, present(make_vc(), disclose=[])) == "kb_missing"

    def test_kb_errors_pass_through(self):
        assert code_of(check, kb_present(make_vc(), nonce="x")) == "kb_nonce_mismatch"
        assert code_of(check, kb_present(make_vc(), aud="https://x.example")) == "kb_aud_mismatch"
        assert code_of(check, kb_present(make_vc(), now=NOW - 3600)) == "kb_iat_out_of_window"
        assert code_of(check, kb_present(make_vc(), holder_signer=OTHER)) == "kb_invalid"

    def test_wrong_typ(self):
        assert code_of(check, kb_present(raw_vc(BASE, typ="example+sd-jwt"), disclose=[])) == "invalid_typ"

    def test_legacy_vc_typ_is_not_accepted(self):
        assert code_of(check, kb_present(raw_vc(BASE, typ="vc+sd-jwt"), disclose=[])) == "invalid_typ"

    def test_raw_vc_with_base_claims_verifies(self):
        assert check(kb_present(raw_vc(BASE), disclose=[])).vct == VCT

    def test_missing_vct(self):
        assert code_of(check, kb_present(raw_vc({k: v for k, v in BASE.items() if k != "vct"}), disclose=[])) == "missing_claim"

    @pytest.mark.parametrize("vct", ["", 5, ["a"]])
    def test_bad_vct(self, vct):
        assert code_of(check, kb_present(raw_vc({**BASE, "vct": vct}), disclose=[])) == "malformed"

    def test_missing_iss(self):
        assert code_of(check, kb_present(raw_vc({k: v for k, v in BASE.items() if k != "iss"}), disclose=[])) == "missing_claim"

    @pytest.mark.parametrize("iss", ["http://samr.example.gov.cn", "did:web:samr.example", 7, "https://x.cn/?q"])
    def test_iss_not_an_https_url(self, iss):
        assert code_of(check, kb_present(raw_vc({**BASE, "iss": iss}), disclose=[])) == "malformed"

    def test_unexpected_credential_type(self):
        text = kb_present(make_vc())
        assert check(text, expected_vcts={VCT}).vct == VCT
        assert code_of(check, text, expected_vcts={"https://other/vct"}) == "invalid_typ"

    def test_expired(self):
        text = kb_present(make_vc(iat=NOW - 7200, exp=NOW - 61))
        assert code_of(check, text) == "expired"
        assert check(kb_present(make_vc(iat=NOW - 7200, exp=NOW - 59))).exp == NOW - 59
        assert code_of(check, kb_present(make_vc(iat=NOW - 7200, exp=NOW - 10)), skew=5) == "expired"

    def test_not_yet_valid(self):
        assert code_of(check, kb_present(make_vc(nbf=NOW + 61))) == "not_yet_valid"
        assert check(kb_present(make_vc(nbf=NOW + 59))).nbf == NOW + 59

    def test_iat_in_future(self):
        assert code_of(check, kb_present(make_vc(iat=NOW + 61))) == "iat_in_future"
        assert check(kb_present(make_vc(iat=NOW + 59))).iat == NOW + 59

    def test_missing_exp(self):
        payload = {k: v for k, v in BASE.items() if k != "exp"}
        assert code_of(check, kb_present(raw_vc(payload), disclose=[])) == "missing_claim"

    def test_non_numeric_iat(self):
        assert code_of(check, kb_present(raw_vc({**BASE, "iat": "yesterday"}), disclose=[])) == "malformed"

    def test_kb_required_needs_cnf_jwk(self):
        text = kb_present(raw_vc(BASE, holder=False), disclose=[])
        assert code_of(check, text) == "missing_claim"

    @pytest.mark.parametrize("name", ["exp", "nbf", "status", "iat"])
    def test_registered_claim_smuggled_into_a_disclosure(self, name):
        payload = {**BASE, name: {"status_list": {"idx": 1, "uri": "https://s.example/1"}} if name == "status" else NOW - 5}
        if name == "exp":
            payload["exp"] = NOW + 100
        text = kb_present(raw_vc(payload, disclosable=[name]), disclose=[name])
        assert code_of(check, text) == "malformed"

    def test_untrusted_issuer_from_resolver(self):
        def resolve(iss, header, vct):
            raise IssuerNotAuthorizedForType()

        assert code_of(check, kb_present(make_vc()), resolve_issuer_key=resolve) == "issuer_not_authorized_for_type"

    def test_resolver_sees_iss_header_and_vct(self):
        seen = []

        def resolve(iss, header, vct):
            seen.append((iss, header["kid"], vct))
            return ISSUER.private_key.public_key()

        check(kb_present(make_vc()), resolve_issuer_key=resolve)
        assert seen == [(ISS, ISSUER.kid, VCT)]

    def test_signed_by_a_key_the_resolver_does_not_name(self):
        assert code_of(check, kb_present(make_vc(signer=OTHER))) == "invalid_signature"

    @pytest.mark.parametrize("status", [{"status_list": {"idx": "1", "uri": "u"}}, {"status_list": {"idx": -1, "uri": "u"}}, "x", {"status_list": []}])
    def test_malformed_status(self, status):
        assert code_of(check, kb_present(raw_vc({**BASE, "status": status}), disclose=[])) == "malformed"

    def test_malformed_status_fails_the_status_check_after_the_others(self):
        # Found by tests/fuzz: the error escaped every named check (error.check was None).
        trace = CheckTrace()
        with pytest.raises(CredentialError) as err:
            check(kb_present(raw_vc({**BASE, "status": "x"}), disclose=[]), trace=trace)
        assert (err.value.code, err.value.check) == ("malformed", "status")
        assert err.value.passed == tuple(trace.passed) and "status" not in trace.passed

    def test_other_status_mechanism_is_left_alone(self):
        cred = check(kb_present(raw_vc({**BASE, "status": {"other": {}}}), disclose=[]))
        assert cred.status is None

    def test_rfc9901_appendix_a3_pid_credential(self):
        doc = json.loads((RFC_VECTORS / "a.3-sd-jwt-vc.json").read_text(encoding="utf-8"))
        key = jws.public_key_from_jwk(doc["issuer_jwk"])
        pres = doc["presentation"]
        cred = verify_vc(
            pres["text"],
            resolve_issuer_key=lambda iss, header, vct: key,
            now=pres["now"],
            kb=KeyBindingPolicy(**pres["key_binding"]),
        )
        assert cred.issuer == "https://pid-issuer.bund.de.example" and cred.vct == "urn:eudi:pid:de:1"
        assert cred.claims == pres["processed"] and cred.key_bound


# ------------------------------------------------------------------------------- issuer metadata


class Fetcher:
    """A dict-backed fetch(url) -> bytes that counts calls."""

    def __init__(self, documents: dict):
        self.documents = documents
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        doc = self.documents[url]
        return doc if isinstance(doc, bytes) else json.dumps(doc).encode()


def metadata_for(iss: str, *signers, **extra) -> dict:
    return {"issuer": iss, "jwks": jwks([s.public_jwk for s in signers]), **extra}


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class TestIssuerMetadata:
    @pytest.mark.parametrize(
        "iss, url",
        [
            ("https://example.com", "https://example.com/.well-known/jwt-vc-issuer"),
            ("https://example.com/", "https://example.com/.well-known/jwt-vc-issuer"),
            ("https://example.com/tenant/1234", "https://example.com/.well-known/jwt-vc-issuer/tenant/1234"),
            ("https://example.com/tenant/1234/", "https://example.com/.well-known/jwt-vc-issuer/tenant/1234"),
            ("https://example.com:8443/a", "https://example.com:8443/.well-known/jwt-vc-issuer/a"),
        ],
    )
    def test_well_known_url(self, iss, url):
        assert well_known_url(iss) == url

    def test_check_issuer_identifier(self):
        assert check_issuer_identifier(ISS) == ISS
        assert code_of(check_issuer_identifier, None) == "missing_claim"
        assert code_of(check_issuer_identifier, "https://x.cn/p?") == "malformed"

    def test_draft_13_section_4_3_example_through_metadata(self):
        doc = json.loads((VC_VECTORS / "s4.3-presentation-with-kb.json").read_text(encoding="utf-8"))
        assert doc["document"] == "draft-ietf-oauth-sd-jwt-vc-13"
        fetch = Fetcher({doc["metadata_url"]: doc["metadata"]})
        pres = doc["presentation"]
        cred = verify_vc(
            pres["text"],
            resolve_issuer_key=IssuerMetadataResolver(fetch),
            now=pres["now"],
            kb=KeyBindingPolicy(**pres["key_binding"]),
        )
        expected = doc["expected"]
        assert (cred.issuer, cred.vct, cred.kid, cred.iat, cred.exp) == (
            expected["issuer"], expected["vct"], expected["kid"], expected["iat"], expected["exp"])
        assert cred.claims == expected["claims"] and cred.kb_payload == pres["kb_payload"]
        assert fetch.calls == [doc["metadata_url"]]

    def test_resolves_by_kid_and_caches(self):
        fetch = Fetcher({well_known_url(ISS): metadata_for(ISS, OTHER, ISSUER)})
        resolver = IssuerMetadataResolver(fetch)
        text = kb_present(make_vc())
        check(text, resolve_issuer_key=resolver)
        check(text, resolve_issuer_key=resolver)
        assert fetch.calls == [well_known_url(ISS)]

    def test_jwks_uri(self):
        fetch = Fetcher({
            well_known_url(ISS): {"issuer": ISS, "jwks_uri": "https://keys.example.gov.cn/jwks.json"},
            "https://keys.example.gov.cn/jwks.json": jwks([ISSUER.public_jwk]),
        })
        assert check(kb_present(make_vc()), resolve_issuer_key=IssuerMetadataResolver(fetch)).issuer == ISS
        assert len(fetch.calls) == 2

    def test_metadata_issuer_must_equal_iss(self):
        fetch = Fetcher({well_known_url(ISS): metadata_for("https://samr.example.gov.cn", ISSUER)})
        assert code_of(check, kb_present(make_vc()), resolve_issuer_key=IssuerMetadataResolver(fetch)) == "untrusted_issuer"

    def test_both_or_neither_jwks_and_jwks_uri(self):
        both = metadata_for(ISS, ISSUER, jwks_uri="https://keys.example/j")
        neither = {"issuer": ISS}
        for doc in (both, neither):
            resolver = IssuerMetadataResolver(Fetcher({well_known_url(ISS): doc}))
            assert code_of(check, kb_present(make_vc()), resolve_issuer_key=resolver) == "malformed"

    @pytest.mark.parametrize("doc", [b"not json", b"[]", json.dumps({"issuer": ISS, "jwks": {"keys": "x"}}).encode(),
                                     json.dumps({"issuer": ISS, "jwks_uri": "http://keys.example/j"}).encode()])
    def test_malformed_metadata(self, doc):
        resolver = IssuerMetadataResolver(Fetcher({well_known_url(ISS): doc}))
        assert code_of(check, kb_present(make_vc()), resolve_issuer_key=resolver) == "malformed"

    def test_unknown_kid(self):
        fetch = Fetcher({well_known_url(ISS): metadata_for(ISS, OTHER)})
        assert code_of(check, kb_present(make_vc()), resolve_issuer_key=IssuerMetadataResolver(fetch)) == "unknown_key"

    def test_unknown_kid_refetches_once_for_rotation(self):
        fetch = Fetcher({well_known_url(ISS): metadata_for(ISS, OTHER)})
        resolver = IssuerMetadataResolver(fetch)
        header = {"alg": "ES256", "kid": OTHER.kid}
        resolver(ISS, header, VCT)
        fetch.documents[well_known_url(ISS)] = metadata_for(ISS, OTHER, ISSUER)  # the issuer rotates
        assert check(kb_present(make_vc()), resolve_issuer_key=resolver).issuer == ISS
        assert len(fetch.calls) == 2
        assert code_of(resolver, ISS, {"alg": "ES256", "kid": "gone"}, VCT) == "unknown_key"
        assert len(fetch.calls) == 3

    def test_without_kid_only_a_single_key_is_used(self):
        text = kb_present(make_vc(header={"kid": None}))  # header without a usable kid
        one = IssuerMetadataResolver(Fetcher({well_known_url(ISS): metadata_for(ISS, ISSUER)}))
        assert check(text, resolve_issuer_key=one).kid is None
        two = IssuerMetadataResolver(Fetcher({well_known_url(ISS): metadata_for(ISS, ISSUER, OTHER)}))
        assert code_of(check, text, resolve_issuer_key=two) == "unknown_key"

    def test_key_not_for_the_header_alg(self):
        ed = SoftwareSigner.generate("EdDSA")
        jwk_set = jwks([ed.public_jwk])
        jwk_set["keys"][0]["kid"] = ISSUER.kid
        resolver = IssuerMetadataResolver(Fetcher({well_known_url(ISS): {"issuer": ISS, "jwks": jwk_set}}))
        assert code_of(check, kb_present(make_vc()), resolve_issuer_key=resolver) == "invalid_key"

    def test_private_key_in_jwks_is_refused(self):
        entry = dict(private_jwk(ISSUER.private_key), kid=ISSUER.kid)
        resolver = IssuerMetadataResolver(Fetcher({well_known_url(ISS): {"issuer": ISS, "jwks": {"keys": [entry]}}}))
        assert code_of(check, kb_present(make_vc()), resolve_issuer_key=resolver) == "invalid_key"

    def test_encryption_keys_are_skipped(self):
        jwk_set = jwks([ISSUER.public_jwk])
        jwk_set["keys"][0]["use"] = "enc"
        resolver = IssuerMetadataResolver(Fetcher({well_known_url(ISS): {"issuer": ISS, "jwks": jwk_set}}))
        assert code_of(check, kb_present(make_vc()), resolve_issuer_key=resolver) == "unknown_key"

    def test_fetch_failure_is_cannot_verify(self):
        resolver = IssuerMetadataResolver(Fetcher({}))
        assert code_of(check, kb_present(make_vc()), resolve_issuer_key=resolver) == "cannot_verify"

        def failing(url):
            raise OSError("connection refused")

        assert code_of(check, kb_present(make_vc()), resolve_issuer_key=IssuerMetadataResolver(failing)) == "cannot_verify"

    def test_response_size_bound(self):
        fetch = Fetcher({well_known_url(ISS): metadata_for(ISS, ISSUER)})
        resolver = IssuerMetadataResolver(fetch, max_bytes=50)
        assert code_of(check, kb_present(make_vc()), resolve_issuer_key=resolver) == "payload_too_large"

    def test_cache_expires_after_ttl(self):
        clock = Clock()
        fetch = Fetcher({well_known_url(ISS): metadata_for(ISS, ISSUER)})
        resolver = IssuerMetadataResolver(fetch, ttl=60, clock=clock)
        header = {"alg": "ES256", "kid": ISSUER.kid}
        resolver(ISS, header, VCT)
        clock.t += 59
        resolver(ISS, header, VCT)
        assert len(fetch.calls) == 1
        clock.t += 1
        resolver(ISS, header, VCT)
        assert len(fetch.calls) == 2

    def test_cache_is_bounded(self):
        other_iss = "https://other.example.gov.cn"
        fetch = Fetcher({
            well_known_url(ISS): metadata_for(ISS, ISSUER),
            well_known_url(other_iss): metadata_for(other_iss, OTHER),
        })
        resolver = IssuerMetadataResolver(fetch, cache_size=1)
        resolver(ISS, {"alg": "ES256", "kid": ISSUER.kid}, VCT)
        resolver(other_iss, {"alg": "ES256", "kid": OTHER.kid}, VCT)
        resolver(ISS, {"alg": "ES256", "kid": ISSUER.kid}, VCT)
        assert fetch.calls == [well_known_url(ISS), well_known_url(other_iss), well_known_url(ISS)]
