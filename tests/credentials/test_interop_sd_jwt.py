"""Interop with the IETF reference implementation of SD-JWT (PyPI ``sd-jwt``, import ``sd_jwt``).

Credentials issued here verify there; credentials issued there verify here (with a resolver naming
its key); a tampered copy fails in both. The reference implementation signs with jwcrypto and puts
the real clock in its KB-JWT's ``iat``, so our ``now`` is taken from that ``iat``.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("sd_jwt.issuer")
from jwcrypto.jwk import JWK  # noqa: E402  (a dependency of the reference implementation)
from sd_jwt.common import SDObj  # noqa: E402
from sd_jwt.holder import SDJWTHolder  # noqa: E402
from sd_jwt.issuer import SDJWTIssuer  # noqa: E402
from sd_jwt.verifier import SDJWTVerifier  # noqa: E402

from credentials import jws  # noqa: E402
from credentials.errors import CredentialError, UnknownKey  # noqa: E402
from credentials.sd_jwt import KeyBindingPolicy, SdJwt, present, verify  # noqa: E402
from credentials.sd_jwt_vc import issue_vc, verify_vc  # noqa: E402
from keys.jwk import b64u_decode, b64u_encode, private_jwk  # noqa: E402
from keys.signer import SoftwareSigner  # noqa: E402

NOW = 1_760_000_000
ISS = "https://samr.example.gov.cn"
VCT = "https://elicence.example.gov.cn/vct/business-licence/v1"
NONCE, AUD = "4f2a9c", "https://window.example.gov.cn"
ISSUER = SoftwareSigner.generate("ES256")
HOLDER = SoftwareSigner.generate("ES256")
SUBJECT = {
    "uscc": "91310000MA1FL0EXAM",
    "name": "上海示例科技有限公司",
    "domicile": {"city": "上海市", "street": "浦东新区示例路1号"},
    "scopes": ["软件开发", "技术咨询", "数据处理"],
}


def jwcrypto_key(jwk: dict) -> JWK:
    return JWK(**jwk)


def their_verify(text: str, issuer_public_jwk: dict, *, aud=None, nonce=None) -> dict:
    def cb_get_issuer_key(iss, header):
        return jwcrypto_key(issuer_public_jwk)

    return SDJWTVerifier(text, cb_get_issuer_key, expected_aud=aud, expected_nonce=nonce).get_verified_payload()


def ours_issued() -> str:
    return issue_vc(
        SUBJECT,
        vct=VCT,
        issuer=ISS,
        signer=ISSUER,
        disclosable=["uscc", "name", "domicile", ("domicile", "street"), ("scopes", 0), ("scopes", 2)],
        holder_jwk=HOLDER.public_jwk,
        status=(12, "https://samr.example.gov.cn/status/1"),
        iat=NOW - 60,
        exp=NOW + 86400,
        decoys=2,
    )


def tamper_issuer_payload(text: str) -> str:
    sd = SdJwt.parse(text)
    header, payload, sig = sd.issuer_jwt.split(".")
    claims = json.loads(b64u_decode(payload))
    claims["exp"] = claims.get("exp", 0) + 10 * 365 * 86400
    forged = ".".join([header, b64u_encode(json.dumps(claims).encode()), sig])
    return SdJwt(forged, sd.disclosures, sd.kb_jwt).serialize()


def tamper_disclosure(text: str) -> str:
    """Change the claim value inside the first Disclosure (a Holder lying about a value)."""
    sd = SdJwt.parse(text)
    content = json.loads(b64u_decode(sd.disclosures[0]))
    content[-1] = "forged"
    forged = b64u_encode(json.dumps(content).encode())
    return SdJwt(sd.issuer_jwt, (forged,) + sd.disclosures[1:], sd.kb_jwt).serialize()


# ------------------------------------------------------------------------- ours -> reference impl


class TestOursVerifyThere:
    def test_key_bound_presentation(self):
        text = present(
            ours_issued(), disclose=[("domicile", "street"), ("scopes", 2), "name"],
            holder_signer=HOLDER, aud=AUD, nonce=NONCE, now=NOW,
        )
        theirs = their_verify(text, ISSUER.public_jwk, aud=AUD, nonce=NONCE)
        ours = verify_vc(text, resolve_issuer_key=lambda i, h, v: ISSUER.private_key.public_key(), now=NOW,
                         kb=KeyBindingPolicy(nonce=NONCE, aud=AUD)).claims
        assert theirs == ours
        assert theirs["domicile"] == SUBJECT["domicile"] and theirs["scopes"] == ["技术咨询", "数据处理"]
        assert "uscc" not in theirs

    def test_full_issuance(self):
        theirs = their_verify(ours_issued(), ISSUER.public_jwk)
        assert {k: theirs[k] for k in SUBJECT} == SUBJECT
        assert theirs["vct"] == VCT and theirs["status"]["status_list"]["idx"] == 12

    def test_eddsa_issuer(self):
        signer = SoftwareSigner.generate("EdDSA")
        text = issue_vc({"a": 1}, vct=VCT, issuer=ISS, signer=signer, disclosable=["a"], holder_jwk=HOLDER.public_jwk,
                        status=None, iat=NOW, exp=NOW + 60)
        assert their_verify(text, signer.public_jwk)["a"] == 1

    def test_tampered_issuer_jwt_fails_in_both(self):
        text = tamper_issuer_payload(present(ours_issued(), disclose=["name"], holder_signer=HOLDER, aud=AUD,
                                             nonce=NONCE, now=NOW))
        with pytest.raises(Exception):
            their_verify(text, ISSUER.public_jwk, aud=AUD, nonce=NONCE)
        with pytest.raises(CredentialError) as err:
            verify(text, issuer_key=ISSUER.private_key.public_key(), expected_typ="dc+sd-jwt", now=NOW,
                   kb=KeyBindingPolicy(nonce=NONCE, aud=AUD))
        assert err.value.code == "invalid_signature"

    def test_tampered_disclosure_fails_in_both(self):
        text = tamper_disclosure(present(ours_issued(), disclose=["name", "uscc"], holder_signer=HOLDER, aud=AUD,
                                         nonce=NONCE, now=NOW))
        with pytest.raises(Exception):  # there: the KB-JWT's sd_hash no longer matches
            their_verify(text, ISSUER.public_jwk, aud=AUD, nonce=NONCE)
        with pytest.raises(CredentialError) as err:
            verify(text, issuer_key=ISSUER.private_key.public_key(), expected_typ="dc+sd-jwt", now=NOW,
                   kb=KeyBindingPolicy(nonce=NONCE, aud=AUD))
        assert err.value.code == "disclosure_unreferenced"

    def test_wrong_nonce_fails_in_both(self):
        text = present(ours_issued(), disclose=["name"], holder_signer=HOLDER, aud=AUD, nonce="other", now=NOW)
        with pytest.raises(Exception):
            their_verify(text, ISSUER.public_jwk, aud=AUD, nonce=NONCE)
        with pytest.raises(CredentialError) as err:
            verify(text, issuer_key=ISSUER.private_key.public_key(), expected_typ="dc+sd-jwt", now=NOW,
                   kb=KeyBindingPolicy(nonce=NONCE, aud=AUD))
        assert err.value.code == "kb_nonce_mismatch"


# ------------------------------------------------------------------------- reference impl -> ours


def their_issued(*, decoys: bool = False) -> str:
    user_claims = {
        "iss": ISS,
        "vct": VCT,
        "iat": NOW - 60,
        # The reference implementation dates its KB-JWT by the real clock, which is then our `now`.
        "exp": NOW + 50 * 365 * 86400,
        SDObj("uscc"): SUBJECT["uscc"],
        SDObj("name"): SUBJECT["name"],
        SDObj("domicile"): {"city": "上海市", SDObj("street"): "浦东新区示例路1号"},
        "scopes": [SDObj("软件开发"), "技术咨询", SDObj("数据处理")],
    }
    issuer = SDJWTIssuer(
        user_claims,
        jwcrypto_key(private_jwk(ISSUER.private_key)),
        holder_key=jwcrypto_key(dict(HOLDER.public_jwk)),
        add_decoy_claims=decoys,
        extra_header_parameters={"typ": "dc+sd-jwt", "kid": ISSUER.kid},
    )
    return issuer.sd_jwt_issuance


def their_presentation(issued: str, disclose: dict, *, nonce=NONCE) -> str:
    holder = SDJWTHolder(issued)
    holder.create_presentation(disclose, nonce=nonce, aud=AUD, holder_key=jwcrypto_key(private_jwk(HOLDER.private_key)))
    return holder.sd_jwt_presentation


def kb_iat(text: str) -> int:
    return jws.parse(SdJwt.parse(text).kb_jwt).payload["iat"]


def resolver_naming_their_key(iss, header, vct):
    if iss != ISS or header.get("kid") != ISSUER.kid:
        raise UnknownKey()
    return jws.public_key_from_jwk(ISSUER.public_jwk)


class TestTheirsVerifyHere:
    @pytest.mark.parametrize("decoys", [False, True], ids=["plain", "decoys"])
    def test_key_bound_presentation(self, decoys):
        text = their_presentation(their_issued(decoys=decoys), {"name": True, "domicile": {"street": True},
                                                                 "scopes": [False, None, True]})
        now = kb_iat(text)
        cred = verify_vc(text, resolve_issuer_key=resolver_naming_their_key, now=now,
                         kb=KeyBindingPolicy(nonce=NONCE, aud=AUD))
        assert cred.key_bound and cred.issuer == ISS and cred.vct == VCT
        assert cred.claims["name"] == SUBJECT["name"]
        assert cred.claims["domicile"] == SUBJECT["domicile"]
        assert cred.claims["scopes"] == ["技术咨询", "数据处理"]
        assert "uscc" not in cred.claims
        assert cred.claims == their_verify(text, ISSUER.public_jwk, aud=AUD, nonce=NONCE)

    def test_full_issuance(self):
        result = verify(their_issued(decoys=True), issuer_key=lambda h, p: resolver_naming_their_key(p["iss"], h, p["vct"]),
                        expected_typ="dc+sd-jwt", now=NOW)
        assert {k: result.claims[k] for k in SUBJECT} == SUBJECT

    def test_tampered_issuer_jwt_fails_in_both(self):
        text = tamper_issuer_payload(their_presentation(their_issued(), {"name": True}))
        with pytest.raises(Exception):
            their_verify(text, ISSUER.public_jwk, aud=AUD, nonce=NONCE)
        with pytest.raises(CredentialError) as err:
            verify_vc(text, resolve_issuer_key=resolver_naming_their_key, now=kb_iat(text),
                      kb=KeyBindingPolicy(nonce=NONCE, aud=AUD))
        assert err.value.code == "invalid_signature"

    def test_tampered_disclosure_fails_in_both(self):
        text = tamper_disclosure(their_presentation(their_issued(), {"name": True, "uscc": True}))
        with pytest.raises(Exception):
            their_verify(text, ISSUER.public_jwk, aud=AUD, nonce=NONCE)
        with pytest.raises(CredentialError) as err:
            verify_vc(text, resolve_issuer_key=resolver_naming_their_key, now=kb_iat(text),
                      kb=KeyBindingPolicy(nonce=NONCE, aud=AUD))
        assert err.value.code == "disclosure_unreferenced"

    def test_unknown_issuer_key_is_refused_here(self):
        text = their_presentation(their_issued(), {"name": True})
        other = SoftwareSigner.generate("ES256")
        with pytest.raises(CredentialError) as err:
            verify_vc(text, resolve_issuer_key=lambda i, h, v: other.private_key.public_key(), now=kb_iat(text),
                      kb=KeyBindingPolicy(nonce=NONCE, aud=AUD))
        assert err.value.code == "invalid_signature"
