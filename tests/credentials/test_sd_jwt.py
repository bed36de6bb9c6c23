"""RFC 9901 core: parsing, issuance, presentation, and every verification check failing with its code."""

from __future__ import annotations

import hashlib
import json

import pytest

from credentials import jws
from credentials.errors import CredentialError
from credentials.sd_jwt import (
    KB_TYP,
    SD_ALG,
    Disclosure,
    KeyBindingPolicy,
    SdJwt,
    digest,
    make_disclosure,
    parse_disclosure,
    issue,
    present,
    process_disclosures,
    verify,
)
from keys.jwk import b64u_decode, b64u_encode, load_private_jwk, private_jwk
from keys.signer import SoftwareSigner

TYP = "example+sd-jwt"
NOW = 1_700_000_000
NONCE = "n-0S6_WzA2Mj"
AUD = "https://verifier.example.org"

ISSUER = SoftwareSigner.generate("ES256")
HOLDER = SoftwareSigner.generate("ES256")
OTHER = SoftwareSigner.generate("ES256")
ISSUER_KEY = ISSUER.private_key.public_key()

CLAIMS = {
    "iss": "https://issuer.example.com",
    "iat": NOW - 100,
    "exp": NOW + 86400,
    "sub": "user_42",
    "given_name": "John",
    "family_name": "Doe",
    "address": {"street_address": "123 Main St", "locality": "Anytown", "country": "US"},
    "nationalities": ["US", "DE", "FR"],
}
DISCLOSABLE = [
    ("given_name",),
    ("family_name",),
    ("address",),
    ("address", "street_address"),
    ("address", "locality"),
    ("nationalities", 1),
    ("nationalities", 2),
]


def salts():
    counter = iter(range(10_000))
    return lambda: f"salt-{next(counter):04d}"


def issue_default(*, claims=CLAIMS, **overrides) -> str:
    args = dict(disclosable=DISCLOSABLE, signer=ISSUER, typ=TYP, salt_source=salts(), holder_jwk=HOLDER.public_jwk)
    args.update(overrides)
    return issue(claims, **args)


def policy(**kw) -> KeyBindingPolicy:
    return KeyBindingPolicy(**{"nonce": NONCE, "aud": AUD, **kw})


def do_verify(text: str, **kw):
    args = dict(issuer_key=ISSUER_KEY, expected_typ=TYP, now=NOW)
    args.update(kw)
    return verify(text, **args)


def code_of(fn, *args, **kwargs) -> str:
    with pytest.raises(CredentialError) as err:
        fn(*args, **kwargs)
    return err.value.code


def signed(payload: dict, disclosures=(), kb_jwt=None, *, signer=ISSUER, typ=TYP, header=None) -> str:
    """An SD-JWT over a hand-made payload (for malicious structures the issuer would never emit)."""
    return SdJwt(jws.sign(payload, signer, typ=typ, header=header), tuple(disclosures), kb_jwt).serialize()


def raw_disclosure(content) -> str:
    """Base64url of any JSON: bypasses make_disclosure's own checks."""
    return b64u_encode(json.dumps(content).encode("utf-8"))


def kb_for(sd_jwt_text: str, *, signer=HOLDER, typ=KB_TYP, drop=(), **claims) -> str:
    """Append a hand-made KB-JWT to an SD-JWT (``drop`` removes required claims)."""
    sd = SdJwt.parse(sd_jwt_text)
    payload = {"iat": NOW, "aud": AUD, "nonce": NONCE, "sd_hash": digest(sd.sd_jwt_text)}
    payload.update(claims)
    for name in drop:
        payload.pop(name)
    return SdJwt(sd.issuer_jwt, sd.disclosures, jws.sign(payload, signer, typ=typ, include_kid=False)).serialize()


# ------------------------------------------------------------------------------------------ parse


class TestSdJwtParse:
    def test_sd_jwt_without_kb_round_trips(self):
        sd = SdJwt.parse("a.b.c~d1~d2~")
        assert sd == SdJwt("a.b.c", ("d1", "d2"), None)
        assert sd.serialize() == "a.b.c~d1~d2~"
        assert sd.sd_jwt_text == "a.b.c~d1~d2~"

    def test_sd_jwt_plus_kb_round_trips(self):
        sd = SdJwt.parse("a.b.c~d1~k.b.j")
        assert sd == SdJwt("a.b.c", ("d1",), "k.b.j")
        assert sd.serialize() == "a.b.c~d1~k.b.j"
        assert sd.sd_jwt_text == "a.b.c~d1~"

    def test_sd_jwt_without_disclosures(self):
        assert SdJwt.parse("a.b.c~") == SdJwt("a.b.c", (), None)
        assert SdJwt.parse("a.b.c~k.b.j") == SdJwt("a.b.c", (), "k.b.j")

    @pytest.mark.parametrize(
        "text",
        ["a.b.c", "", "~", "~d1~", "a.b.c~~", "a.b.c~d1~~", "a.b.c~é~", 42, None],
        ids=["no-tilde", "empty", "only-tilde", "empty-jwt", "empty-disclosure", "empty-disclosure-2", "non-ascii", "int", "none"],
    )
    def test_malformed_serializations_are_rejected(self, text):
        assert code_of(SdJwt.parse, text) == "malformed"

    def test_size_bound(self):
        assert code_of(SdJwt.parse, "a.b.c~" + "x" * 100 + "~", max_bytes=50) == "payload_too_large"

    def test_disclosure_count_bound(self):
        text = "a.b.c~" + "d~" * 5
        assert SdJwt.parse(text, max_disclosures=5).disclosures == ("d",) * 5
        assert code_of(SdJwt.parse, text, max_disclosures=4) == "payload_too_large"


# ------------------------------------------------------------------------------------ disclosures


class TestDisclosures:
    def test_object_property_disclosure(self):
        d = make_disclosure("family_name", "Möbius", salt="_26bc4LT-ac6q2KI6cBW5es")
        assert json.loads(base64url_decode(d.encoded)) == ["_26bc4LT-ac6q2KI6cBW5es", "family_name", "Möbius"]
        assert d.digest == b64u_encode(hashlib.sha256(d.encoded.encode("ascii")).digest())
        assert parse_disclosure(d.encoded) == d
        assert not d.is_array_element

    def test_array_element_disclosure(self):
        d = make_disclosure(None, {"a": [1, 2]}, salt="s")
        assert json.loads(base64url_decode(d.encoded)) == ["s", {"a": [1, 2]}]
        assert parse_disclosure(d.encoded) == Disclosure("s", None, {"a": [1, 2]}, d.encoded, d.digest)
        assert d.is_array_element

    @pytest.mark.parametrize("name", ["_sd", "...", "_sd_alg"])
    def test_make_disclosure_refuses_reserved_names(self, name):
        assert code_of(make_disclosure, name, 1, salt="s") == "reserved_claim_name"

    def test_make_disclosure_refuses_bad_salt_and_values(self):
        assert code_of(make_disclosure, "a", 1, salt="") == "malformed"
        assert code_of(make_disclosure, "a", 1, salt=7) == "malformed"
        assert code_of(make_disclosure, 5, 1, salt="s") == "malformed"
        assert code_of(make_disclosure, "a", {1, 2}, salt="s") == "malformed"
        assert code_of(make_disclosure, "a", float("nan"), salt="s") == "malformed"

    @pytest.mark.parametrize(
        "text",
        [
            "not base64!",
            raw_disclosure(["s", "a", 1]) + "=",
            b64u_encode(b"not json"),
            raw_disclosure({"salt": "s"}),
            raw_disclosure(["s"]),
            raw_disclosure(["s", "a", 1, 2]),
            raw_disclosure([]),
            raw_disclosure([1, "a", 1]),
            raw_disclosure([None, "x"]),
            raw_disclosure(["s", 5, 1]),
            raw_disclosure(["s", None, 1]),
            b64u_encode(b'["s","a",1,"a"'),
            b64u_encode(b'["s",NaN]'),
            "",
            42,
        ],
        ids=[
            "alphabet", "padding", "not-json", "object", "one-element", "four-elements", "empty-array",
            "salt-int", "salt-null", "name-int", "name-null", "truncated-json", "nan", "empty", "not-str",
        ],
    )
    def test_parse_disclosure_rejects(self, text):
        assert code_of(parse_disclosure, text) == "malformed_disclosure"


def base64url_decode(text: str) -> bytes:
    return b64u_decode(text)


# --------------------------------------------------------------------------------------- issuance


class TestIssue:
    def test_payload_has_sd_alg_cnf_and_no_disclosed_values(self):
        sd = SdJwt.parse(issue_default())
        payload = jws.parse(sd.issuer_jwt).payload
        assert payload["_sd_alg"] == SD_ALG
        assert payload["cnf"] == {"jwk": dict(HOLDER.public_jwk)}
        assert payload["sub"] == "user_42" and payload["iss"] == CLAIMS["iss"]
        assert "given_name" not in payload and "address" not in payload
        assert payload["nationalities"][0] == "US"
        assert set(payload["nationalities"][1]) == {"..."} and set(payload["nationalities"][2]) == {"..."}
        assert len(sd.disclosures) == len(DISCLOSABLE)
        assert jws.parse(sd.issuer_jwt).header["typ"] == TYP

    def test_digest_lists_are_sorted(self):
        payload = jws.parse(SdJwt.parse(issue_default(decoys=3)).issuer_jwt).payload
        assert payload["_sd"] == sorted(payload["_sd"])
        assert len(payload["_sd"]) == 3 + 3  # given_name, family_name, address + 3 decoys

    def test_nested_disclosures_are_recursive(self):
        sd = SdJwt.parse(issue_default())
        by_name = {d.name: d for d in map(parse_disclosure, sd.disclosures)}
        address = by_name["address"]
        assert set(address.value) == {"_sd", "country"}
        assert {by_name["street_address"].digest, by_name["locality"].digest} == set(address.value["_sd"])
        # Children are created before the parent that embeds their digests.
        order = [d.name for d in map(parse_disclosure, sd.disclosures)]
        assert order.index("street_address") < order.index("address")

    def test_decoys_per_level_policy(self):
        text = issue_default(decoys=lambda path: {(): 2, ("address",): 1}.get(path, 0))
        payload = jws.parse(SdJwt.parse(text).issuer_jwt).payload
        assert len(payload["_sd"]) == 3 + 2
        address = next(d for d in map(parse_disclosure, SdJwt.parse(text).disclosures) if d.name == "address")
        assert len(address.value["_sd"]) == 2 + 1

    def test_decoys_are_derived_from_the_salt_source(self):
        text = issue(
            {"a": 1}, disclosable=[], signer=ISSUER, typ=TYP, salt_source=lambda: "fixed", decoys=lambda p: 1
        )
        assert jws.parse(SdJwt.parse(text).issuer_jwt).payload["_sd"] == [digest("fixed")]

    def test_repeated_salt_is_refused(self):
        assert code_of(issue, {"a": 1, "b": 2}, disclosable=["a", "b"], signer=ISSUER, typ=TYP,
                       salt_source=lambda: "same") == "malformed"
        assert code_of(issue, {"a": 1}, disclosable=[], signer=ISSUER, typ=TYP, salt_source=lambda: "same",
                       decoys=lambda p: 2) == "malformed"

    def test_int_decoys_only_where_something_is_disclosable(self):
        text = issue({"a": {"b": 1}, "c": 2}, disclosable=["c"], signer=ISSUER, typ=TYP, decoys=2)
        payload = jws.parse(SdJwt.parse(text).issuer_jwt).payload
        assert len(payload["_sd"]) == 3 and payload["a"] == {"b": 1}

    def test_deterministic_salts_give_deterministic_disclosures(self):
        a, b = SdJwt.parse(issue_default()), SdJwt.parse(issue_default())
        assert a.disclosures == b.disclosures

    def test_fully_deterministic_with_eddsa(self):
        signer = SoftwareSigner(
            load_private_jwk(
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
                    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                }
            )
        )
        one = issue({"a": 1, "b": [1, 2]}, disclosable=["a", ("b", 0)], signer=signer, typ=TYP, salt_source=salts())
        two = issue({"a": 1, "b": [1, 2]}, disclosable=["a", ("b", 0)], signer=signer, typ=TYP, salt_source=salts())
        assert one == two

    def test_default_salts_are_random_128_bit(self):
        text = issue({"a": 1, "b": 2}, disclosable=["a", "b"], signer=ISSUER, typ=TYP)
        salts_ = [parse_disclosure(d).salt for d in SdJwt.parse(text).disclosures]
        assert len(set(salts_)) == 2 and all(len(base64url_decode(s)) == 16 for s in salts_)

    @pytest.mark.parametrize(
        "path",
        [("nope",), ("address", "nope"), ("nationalities", 9), ("nationalities", "x"), ("sub", 0), (), ("a", True), ("a", -1)],
    )
    def test_unknown_or_bad_paths_are_refused(self, path):
        assert code_of(issue_default, disclosable=[path]) == "malformed"

    @pytest.mark.parametrize("name", ["_sd", "...", "_sd_alg"])
    def test_reserved_claim_names_are_refused(self, name):
        assert code_of(issue, {"a": {name: 1}}, disclosable=[], signer=ISSUER, typ=TYP) == "reserved_claim_name"

    def test_cnf_in_claims_conflicts_with_holder_jwk(self):
        assert code_of(issue_default, claims={**CLAIMS, "cnf": {}}) == "malformed"

    def test_private_holder_jwk_is_refused(self):
        assert code_of(issue_default, holder_jwk=private_jwk(HOLDER.private_key)) == "invalid_key"

    def test_non_json_claims_are_refused(self):
        assert code_of(issue, {"a": object()}, disclosable=[], signer=ISSUER, typ=TYP) == "malformed"
        assert code_of(issue, {1: 2}, disclosable=[], signer=ISSUER, typ=TYP) == "malformed"
        assert code_of(issue, {"a": 1}, disclosable=[], signer=ISSUER, typ=TYP, decoys=-1) == "malformed"
        assert code_of(issue, {"a": 1}, disclosable=[], signer=ISSUER, typ=TYP, decoys=lambda p: -1) == "malformed"


# ----------------------------------------------------------------------------------- presentation


class TestPresent:
    def test_selected_claims_only(self):
        text = present(issue_default(), disclose=["given_name", ("nationalities", 2)])
        result = do_verify(text)
        assert result.claims["given_name"] == "John"
        assert "family_name" not in result.claims and "address" not in result.claims
        assert result.claims["nationalities"] == ["US", "FR"]
        assert set(result.disclosed_paths) == {("given_name",), ("nationalities", 2)}

    def test_nested_claim_implies_its_parents(self):
        text = present(issue_default(), disclose=[("address", "street_address")])
        result = do_verify(text)
        assert result.claims["address"] == {"street_address": "123 Main St", "country": "US"}
        assert set(result.disclosed_paths) == {("address",), ("address", "street_address")}

    def test_parent_alone_hides_children(self):
        result = do_verify(present(issue_default(), disclose=["address"]))
        assert result.claims["address"] == {"country": "US"}

    def test_plain_claims_need_no_disclosure(self):
        text = present(issue_default(), disclose=["sub", ("address", "country")])
        assert len(SdJwt.parse(text).disclosures) == 1  # the address, for its plain country
        assert do_verify(text).claims["address"] == {"country": "US"}

    def test_disclosures_keep_issued_order_and_are_not_duplicated(self):
        issued = SdJwt.parse(issue_default())
        text = present(issue_default(), disclose=[("address", "locality"), ("address", "street_address"), "address", "given_name"])
        chosen = SdJwt.parse(text).disclosures
        assert list(chosen) == [d for d in issued.disclosures if d in chosen]
        assert len(chosen) == len(set(chosen)) == 4

    def test_with_key_binding(self):
        text = present(issue_default(), disclose=["given_name"], holder_signer=HOLDER, aud=AUD, nonce=NONCE, now=NOW)
        sd = SdJwt.parse(text)
        kb = jws.parse(sd.kb_jwt)
        assert kb.header == {"alg": "ES256", "typ": "kb+jwt"}
        assert kb.payload == {"iat": NOW, "aud": AUD, "nonce": NONCE, "sd_hash": digest(sd.sd_jwt_text)}
        result = do_verify(text, kb=policy())
        assert result.key_bound and result.kb_payload == kb.payload
        assert result.holder_jwk == dict(HOLDER.public_jwk)

    def test_eddsa_holder(self):
        holder = SoftwareSigner.generate("EdDSA")
        text = present(
            issue_default(holder_jwk=holder.public_jwk), disclose=[], holder_signer=holder, aud=AUD, nonce=NONCE, now=NOW
        )
        assert jws.parse(SdJwt.parse(text).kb_jwt).header["alg"] == "EdDSA"
        assert do_verify(text, kb=policy()).key_bound

    def test_presenting_an_sd_jwt_plus_kb_is_refused(self):
        text = present(issue_default(), disclose=[], holder_signer=HOLDER, aud=AUD, nonce=NONCE, now=NOW)
        assert code_of(present, text, disclose=[]) == "malformed"

    @pytest.mark.parametrize("path", [("nope",), ("address", "nope"), ("nationalities", 7), ("given_name", "x"), ("nationalities", "x")])
    def test_unknown_path_is_refused(self, path):
        assert code_of(present, issue_default(), disclose=[path]) == "malformed"

    @pytest.mark.parametrize(
        "kw", [dict(aud=AUD, now=NOW), dict(nonce=NONCE, now=NOW), dict(aud=AUD, nonce=NONCE), dict(aud=[AUD], nonce=NONCE, now=NOW)]
    )
    def test_key_binding_needs_aud_nonce_and_now(self, kw):
        assert code_of(present, issue_default(), disclose=[], holder_signer=HOLDER, **kw) == "malformed"

    def test_inconsistent_issuance_is_refused(self):
        extra = make_disclosure("x", 1, salt="zz").encoded
        sd = SdJwt.parse(issue_default())
        bad = SdJwt(sd.issuer_jwt, sd.disclosures + (extra,)).serialize()
        assert code_of(present, bad, disclose=[]) == "disclosure_unreferenced"


# ----------------------------------------------------------------------------------- verification


class TestVerifyIssuerJwt:
    def test_issued_sd_jwt_verifies_with_everything_disclosed(self):
        result = do_verify(issue_default())
        expected = dict(CLAIMS, cnf={"jwk": dict(HOLDER.public_jwk)})
        assert result.claims == expected
        assert not result.key_bound and result.kb_payload is None
        assert result.payload["_sd_alg"] == SD_ALG and "_sd_alg" not in result.claims

    def test_wrong_typ(self):
        assert code_of(do_verify, issue_default(), expected_typ="dc+sd-jwt") == "invalid_typ"

    def test_signed_by_another_key(self):
        assert code_of(do_verify, issue_default(signer=OTHER)) == "invalid_signature"

    def test_tampered_payload(self):
        sd = SdJwt.parse(issue_default())
        header, payload, sig = sd.issuer_jwt.split(".")
        claims = json.loads(base64url_decode(payload))
        claims["sub"] = "user_43"
        forged = ".".join([header, b64u_encode(json.dumps(claims).encode()), sig])
        assert code_of(do_verify, SdJwt(forged, sd.disclosures).serialize()) == "invalid_signature"

    def test_alg_none_is_refused(self):
        header = b64u_encode(json.dumps({"alg": "none", "typ": TYP}).encode())
        payload = b64u_encode(json.dumps({"a": 1}).encode())
        assert code_of(do_verify, f"{header}.{payload}.~") == "unsupported_alg"

    def test_unknown_critical_header(self):
        text = signed({"a": 1}, header={"crit": ["x"], "x": 1})
        assert code_of(do_verify, text) == "crit_unsupported"

    def test_resolver_gets_header_and_unverified_payload(self):
        seen = []

        def resolver(header, payload):
            seen.append((header["kid"], payload["iss"]))
            return ISSUER_KEY

        do_verify(issue_default(), issuer_key=resolver)
        assert seen == [(ISSUER.kid, CLAIMS["iss"])]

    def test_resolver_errors_propagate(self):
        from credentials.errors import UnknownKey

        def resolver(header, payload):
            raise UnknownKey()

        assert code_of(do_verify, issue_default(), issuer_key=resolver) == "unknown_key"

    def test_expired(self):
        text = issue_default(claims={**CLAIMS, "exp": NOW - 61})
        assert code_of(do_verify, text) == "expired"
        assert do_verify(issue_default(claims={**CLAIMS, "exp": NOW - 59})).claims["exp"] == NOW - 59

    def test_not_yet_valid(self):
        assert code_of(do_verify, issue_default(claims={**CLAIMS, "nbf": NOW + 61})) == "not_yet_valid"
        assert do_verify(issue_default(claims={**CLAIMS, "nbf": NOW + 59}))

    def test_disclosed_exp_is_checked_too(self):
        # s9.7: Verifiers "need to operate as though security-critical claims might be selectively disclosable".
        text = issue_default(claims={**CLAIMS, "exp": NOW - 1000}, disclosable=["exp"])
        assert do_verify(present(text, disclose=[]))  # hidden: nothing to check here
        assert code_of(do_verify, present(text, disclose=["exp"])) == "expired"

    @pytest.mark.parametrize("value", ["1", None, True, [1]])
    def test_non_numeric_time_claims(self, value):
        assert code_of(do_verify, issue_default(claims={**CLAIMS, "exp": value})) == "malformed"


class TestVerifyDisclosures:
    def test_removed_disclosure_stays_hidden(self):
        sd = SdJwt.parse(issue_default())
        kept = tuple(d for d in sd.disclosures if parse_disclosure(d).name != "family_name")
        result = do_verify(SdJwt(sd.issuer_jwt, kept).serialize())
        assert "family_name" not in result.claims and result.claims["given_name"] == "John"

    def test_sd_alg_other_than_sha256(self):
        d = make_disclosure("a", 1, salt="s")
        text = signed({"_sd": [d.digest], "_sd_alg": "sha-512"}, [d.encoded])
        assert code_of(do_verify, text) == "sd_alg_unsupported"
        assert code_of(do_verify, signed({"_sd_alg": 256})) == "sd_alg_unsupported"

    def test_sd_alg_defaults_to_sha256(self):
        d = make_disclosure("a", 1, salt="s")
        assert do_verify(signed({"_sd": [d.digest]}, [d.encoded])).claims == {"a": 1}

    def test_tampered_disclosure_is_unreferenced(self):
        d = make_disclosure("given_name", "John", salt="s")
        forged = make_disclosure("given_name", "Jane", salt="s")
        text = signed({"_sd": [d.digest]}, [forged.encoded])
        assert code_of(do_verify, text) == "disclosure_unreferenced"

    def test_unreferenced_disclosure(self):
        d, stray = make_disclosure("a", 1, salt="s1"), make_disclosure("b", 2, salt="s2")
        assert code_of(do_verify, signed({"_sd": [d.digest]}, [d.encoded, stray.encoded])) == "disclosure_unreferenced"

    def test_child_without_parent_is_unreferenced(self):
        child = make_disclosure("street", "x", salt="s1")
        parent = make_disclosure("address", {"_sd": [child.digest]}, salt="s2")
        assert do_verify(signed({"_sd": [parent.digest]}, [parent.encoded, child.encoded])).claims == {"address": {"street": "x"}}
        assert code_of(do_verify, signed({"_sd": [parent.digest]}, [child.encoded])) == "disclosure_unreferenced"

    def test_same_disclosure_twice(self):
        d = make_disclosure("a", 1, salt="s")
        assert code_of(do_verify, signed({"_sd": [d.digest]}, [d.encoded, d.encoded])) == "duplicate_disclosure"

    def test_digest_twice_in_one_sd_array(self):
        d = make_disclosure("a", 1, salt="s")
        assert code_of(do_verify, signed({"_sd": [d.digest, d.digest]}, [d.encoded])) == "digest_duplicate"

    def test_digest_in_two_objects(self):
        d = make_disclosure("a", 1, salt="s")
        text = signed({"_sd": [d.digest], "o": {"_sd": [d.digest]}}, [d.encoded])
        assert code_of(do_verify, text) == "digest_duplicate"

    def test_undisclosed_digest_repeated_is_still_a_duplicate(self):
        decoy = digest("decoy")
        assert code_of(do_verify, signed({"_sd": [decoy], "o": {"_sd": [decoy]}})) == "digest_duplicate"

    def test_digest_repeated_inside_a_disclosure(self):
        inner = make_disclosure("a", 1, salt="s1")
        outer = make_disclosure("o", {"_sd": [inner.digest]}, salt="s2")
        text = signed({"_sd": [outer.digest, inner.digest]}, [outer.encoded, inner.encoded])
        assert code_of(do_verify, text) == "digest_duplicate"

    def test_digest_twice_in_an_array(self):
        d = make_disclosure(None, "x", salt="s")
        text = signed({"arr": [{"...": d.digest}, {"...": d.digest}]}, [d.encoded])
        assert code_of(do_verify, text) == "digest_duplicate"

    @pytest.mark.parametrize("name", ["_sd", "..."])
    def test_reserved_claim_name_in_disclosure(self, name):
        enc = raw_disclosure(["salt", name, ["x"]])
        assert code_of(do_verify, signed({"_sd": [digest(enc)]}, [enc])) == "reserved_claim_name"

    def test_disclosed_name_collides_with_plain_claim(self):
        d = make_disclosure("sub", "someone else", salt="s")
        assert code_of(do_verify, signed({"sub": "user_42", "_sd": [d.digest]}, [d.encoded])) == "claim_name_collision"

    def test_two_disclosures_with_the_same_name(self):
        a, b = make_disclosure("x", 1, salt="s1"), make_disclosure("x", 2, salt="s2")
        text = signed({"_sd": [a.digest, b.digest]}, [a.encoded, b.encoded])
        assert code_of(do_verify, text) == "claim_name_collision"

    def test_array_element_disclosure_in_object_sd(self):
        d = make_disclosure(None, "x", salt="s")
        assert code_of(do_verify, signed({"_sd": [d.digest]}, [d.encoded])) == "malformed_disclosure"

    def test_object_property_disclosure_as_array_element(self):
        d = make_disclosure("a", "x", salt="s")
        assert code_of(do_verify, signed({"arr": [{"...": d.digest}]}, [d.encoded])) == "malformed_disclosure"

    def test_malformed_disclosure_in_presentation(self):
        assert code_of(do_verify, signed({"a": 1}, [raw_disclosure(["s"])])) == "malformed_disclosure"

    @pytest.mark.parametrize(
        "payload",
        [
            {"_sd": "abc"},
            {"_sd": [1]},
            {"_sd": {"a": 1}},
            {"o": {"_sd": [None]}},
            {"arr": [{"...": digest("x"), "extra": 1}]},
            {"arr": [{"...": 5}]},
            {"...": digest("x")},
            {"o": {"...": digest("x")}},
            {"o": {"_sd_alg": "sha-256"}},
        ],
        ids=["sd-string", "sd-int-items", "sd-object", "nested-sd-null", "dots-extra-key", "dots-not-string", "dots-top", "dots-nested", "nested-sd-alg"],
    )
    def test_malformed_digest_containers(self, payload):
        assert code_of(do_verify, signed(payload)) == "malformed"

    def test_malformed_structure_inside_a_disclosure(self):
        d = make_disclosure("o", {"_sd": "abc"}, salt="s")
        assert code_of(do_verify, signed({"_sd": [d.digest]}, [d.encoded])) == "malformed"

    def test_decoys_and_undisclosed_array_elements_are_dropped(self):
        d = make_disclosure(None, "FR", salt="s")
        text = signed({"_sd": [digest("decoy")], "arr": ["DE", {"...": d.digest}, {"...": digest("hidden")}]}, [d.encoded])
        assert do_verify(text).claims == {"arr": ["DE", "FR"]}

    def test_empty_object_after_processing(self):
        assert do_verify(signed({"o": {"_sd": [digest("x")]}})).claims == {"o": {}}

    def test_depth_bound(self):
        deep = {"a": {"b": {"c": {"d": 1}}}}
        assert do_verify(signed(deep), max_depth=4).claims == deep
        assert code_of(do_verify, signed(deep), max_depth=3) == "payload_too_large"

    def test_depth_bound_counts_disclosed_values(self):
        d = make_disclosure("a", {"b": {"c": [1]}}, salt="s")
        text = signed({"_sd": [d.digest]}, [d.encoded])
        assert do_verify(text, max_depth=4)
        assert code_of(do_verify, text, max_depth=3) == "payload_too_large"

    def test_size_and_count_bounds(self):
        text = issue_default()
        assert code_of(do_verify, text, max_bytes=len(text) - 1) == "payload_too_large"
        assert code_of(do_verify, text, max_disclosures=len(DISCLOSABLE) - 1) == "payload_too_large"

    def test_process_disclosures_is_the_same_processing(self):
        sd = SdJwt.parse(issue_default())
        processed = process_disclosures(jws.parse(sd.issuer_jwt).payload, sd.disclosures)
        assert processed.claims == do_verify(sd.serialize()).claims
        assert len(processed.disclosures) == len(sd.disclosures)


class TestVerifyKeyBinding:
    @pytest.fixture()
    def presented(self) -> str:
        return present(issue_default(), disclose=["given_name"])

    def test_valid(self, presented):
        result = do_verify(kb_for(presented), kb=policy())
        assert result.key_bound and result.kb_payload["nonce"] == NONCE
        assert result.kb_header == {"alg": "ES256", "typ": "kb+jwt"}

    def test_missing_kb(self, presented):
        assert code_of(do_verify, presented, kb=policy()) == "kb_missing"

    def test_wrong_nonce(self, presented):
        assert code_of(do_verify, kb_for(presented, nonce="other"), kb=policy()) == "kb_nonce_mismatch"

    def test_wrong_aud(self, presented):
        assert code_of(do_verify, kb_for(presented, aud="https://evil.example"), kb=policy()) == "kb_aud_mismatch"

    def test_aud_from_an_accepted_set(self, presented):
        assert do_verify(kb_for(presented), kb=policy(aud={AUD, "https://other.example"})).key_bound

    def test_old_iat(self, presented):
        assert code_of(do_verify, kb_for(presented, iat=NOW - 301), kb=policy(max_age=300)) == "kb_iat_out_of_window"
        assert do_verify(kb_for(presented, iat=NOW - 300), kb=policy(max_age=300)).key_bound

    def test_future_iat(self, presented):
        assert code_of(do_verify, kb_for(presented, iat=NOW + 61), kb=policy(skew=60)) == "kb_iat_out_of_window"
        assert do_verify(kb_for(presented, iat=NOW + 60), kb=policy(skew=60)).key_bound

    def test_signed_by_another_key(self, presented):
        assert code_of(do_verify, kb_for(presented, signer=OTHER), kb=policy()) == "kb_invalid"

    def test_wrong_typ(self, presented):
        assert code_of(do_verify, kb_for(presented, typ="JWT"), kb=policy()) == "kb_invalid"

    @pytest.mark.parametrize("claim", ["iat", "aud", "nonce", "sd_hash"])
    def test_missing_required_claim(self, presented, claim):
        assert code_of(do_verify, kb_for(presented, drop=[claim]), kb=policy()) == "kb_invalid"

    @pytest.mark.parametrize("claims", [{"aud": [AUD]}, {"nonce": 1234}, {"iat": "now"}, {"sd_hash": None}])
    def test_wrongly_typed_claims(self, presented, claims):
        assert code_of(do_verify, kb_for(presented, **claims), kb=policy()) == "kb_invalid"

    def test_malformed_kb_jwt(self, presented):
        assert code_of(do_verify, presented + "not-a-jwt", kb=policy()) == "kb_invalid"

    def test_kb_with_alg_none(self, presented):
        header = b64u_encode(json.dumps({"alg": "none", "typ": "kb+jwt"}).encode())
        payload = b64u_encode(json.dumps({"iat": NOW, "aud": AUD, "nonce": NONCE, "sd_hash": digest(presented)}).encode())
        assert code_of(do_verify, f"{presented}{header}.{payload}.", kb=policy()) == "kb_invalid"

    def test_sd_hash_over_another_presentation(self):
        issued = issue_default()
        one = kb_for(present(issued, disclose=["given_name"]))
        two = SdJwt.parse(present(issued, disclose=["given_name", "family_name"]))
        moved = SdJwt(two.issuer_jwt, two.disclosures, SdJwt.parse(one).kb_jwt)
        assert code_of(do_verify, moved.serialize(), kb=policy()) == "sd_hash_mismatch"

    def test_disclosure_stripped_from_kb_presentation(self):
        full = SdJwt.parse(kb_for(present(issue_default(), disclose=["given_name", "family_name"])))
        stripped = SdJwt(full.issuer_jwt, full.disclosures[:1], full.kb_jwt).serialize()
        assert code_of(do_verify, stripped, kb=policy()) == "sd_hash_mismatch"

    def test_kb_required_but_credential_has_no_cnf(self, presented):
        text = kb_for(present(issue_default(holder_jwk=None), disclose=[]))
        assert code_of(do_verify, text, kb=policy()) == "missing_claim"

    def test_cnf_with_unusable_key(self):
        text = kb_for(signed({"cnf": {"jwk": {"kty": "EC", "crv": "P-384", "x": "a", "y": "b"}}}))
        assert code_of(do_verify, text, kb=policy()) == "kb_invalid"

    def test_kb_not_required_but_present_is_still_verified(self, presented):
        result = do_verify(kb_for(presented))
        assert result.kb_payload is not None and not result.key_bound
        assert code_of(do_verify, kb_for(presented, signer=OTHER)) == "kb_invalid"
        assert code_of(do_verify, kb_for(presented, iat=NOW + 3600)) == "kb_iat_out_of_window"
        # Not asked for: nonce and audience are not this transaction's, so they are not compared.
        assert do_verify(kb_for(presented, nonce="whatever", aud="anyone")).kb_payload["nonce"] == "whatever"

    def test_kb_not_required_and_no_cnf(self):
        text = kb_for(present(issue_default(holder_jwk=None), disclose=[]))
        assert code_of(do_verify, text) == "kb_invalid"

    def test_stripping_the_kb_does_not_downgrade(self, presented):
        # s9.5: the policy, not the presence of a KB-JWT, decides; a stripped KB-JWT is kb_missing.
        sd = SdJwt.parse(kb_for(presented))
        assert code_of(do_verify, SdJwt(sd.issuer_jwt, sd.disclosures).serialize(), kb=policy()) == "kb_missing"

    def test_disclosure_checks_run_before_key_binding(self):
        d = make_disclosure("a", 1, salt="s")
        stray = make_disclosure("b", 2, salt="t")
        text = kb_for(signed({"_sd": [d.digest], "cnf": {"jwk": dict(HOLDER.public_jwk)}}, [d.encoded, stray.encoded]))
        assert code_of(do_verify, text, kb=policy()) == "disclosure_unreferenced"
