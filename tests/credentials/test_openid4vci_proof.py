"""OpenID4VCI 1.0 Appendix F.1 key proofs (``openid4vci-proof+jwt``): every check made to fail."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from credentials import jws
from credentials import openid4vci as vci
from keys.jwk import b64u_encode, private_jwk, thumbprint
from keys.signer import SoftwareSigner

AUD = "https://amr.sh.example.gov.cn/issuers/sh-amr"
NOW = 1_760_000_000
NONCE = "c-nonce-8f3a"
HOLDER = SoftwareSigner.generate("ES256")
HOLDER_ED = SoftwareSigner.generate("EdDSA")
OTHER = SoftwareSigner.generate("ES256")


def forge(header: dict, payload: dict | bytes, signer: SoftwareSigner = HOLDER) -> str:
    """A compact JWS with exactly this header, signed by ``signer`` (no checks on what it says)."""
    body = payload if isinstance(payload, bytes) else jws.dumps(payload)
    signing_input = b64u_encode(jws.dumps(header)) + "." + b64u_encode(body)
    return signing_input + "." + b64u_encode(signer.sign(signing_input.encode("ascii")))


def header(**changes) -> dict:
    h = {"typ": vci.PROOF_TYP, "alg": "ES256", "jwk": HOLDER.public_jwk}
    h.update(changes)
    return {k: v for k, v in h.items() if v is not None}


def claims(**changes) -> dict:
    c = {"aud": AUD, "iat": NOW, "nonce": NONCE}
    c.update(changes)
    return {k: v for k, v in c.items() if v is not None}


def verify(token, **kwargs):
    args = dict(audience=AUD, now=NOW)
    args.update(kwargs)
    return vci.verify_proof(token, **args)


def code_of(token, **kwargs) -> str:
    with pytest.raises(vci.OpenId4VciError) as info:
        verify(token, **kwargs)
    return info.value.code


@pytest.mark.parametrize("signer", [HOLDER, HOLDER_ED], ids=["ES256", "EdDSA"])
def test_a_proof_made_here_verifies(signer):
    token = vci.make_proof(signer, audience=AUD, nonce=NONCE, iat=NOW)
    parsed = jws.parse(token)
    assert parsed.header == {"alg": signer.alg, "typ": vci.PROOF_TYP, "jwk": signer.public_jwk}
    assert "kid" not in parsed.header and "iss" not in parsed.payload
    result = verify(token)
    assert result == vci.ProofResult(signer.public_jwk, NONCE, NOW, thumbprint(signer.public_jwk))


def test_holder_key_is_returned_without_extra_members():
    jwk = {**HOLDER.public_jwk, "kid": "k1", "use": "sig", "alg": "ES256"}
    result = verify(forge(header(jwk=jwk), claims()))
    assert result.holder_jwk == HOLDER.public_jwk


def test_window_edges_are_accepted():
    assert verify(forge(header(), claims(iat=NOW - 300))).iat == NOW - 300
    assert verify(forge(header(), claims(iat=NOW + 60))).iat == NOW + 60
    assert verify(forge(header(), claims(iat=NOW - 10.5))).iat == NOW - 10.5
    assert verify(forge(header(), claims(iat=NOW - 1000)), max_age=1000).iat == NOW - 1000


def test_client_id_and_iss():
    token = vci.make_proof(HOLDER, audience=AUD, nonce=NONCE, iat=NOW, issuer="wallet-app")
    assert jws.parse(token).payload["iss"] == "wallet-app"
    assert verify(token, client_id="wallet-app").nonce == NONCE
    assert verify(vci.make_proof(HOLDER, audience=AUD, nonce=NONCE, iat=NOW), client_id="wallet-app").nonce == NONCE
    assert code_of(token) == "invalid_proof"  # anonymous access: iss "MUST be omitted"
    assert code_of(token, client_id="another-wallet") == "invalid_proof"


def test_make_proof_without_nonce_is_refused_by_this_issuer():
    token = vci.make_proof(HOLDER, audience=AUD, nonce=None, iat=NOW)
    assert "nonce" not in jws.parse(token).payload
    assert code_of(token) == "invalid_proof"


def _hs256_with_public_key_as_secret() -> str:
    h = {"typ": vci.PROOF_TYP, "alg": "HS256", "jwk": HOLDER.public_jwk}
    signing_input = b64u_encode(jws.dumps(h)) + "." + b64u_encode(jws.dumps(claims()))
    secret = jws.dumps(HOLDER.public_jwk)
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64u_encode(mac)


def _alg_none() -> str:
    h = {"typ": vci.PROOF_TYP, "alg": "none", "jwk": HOLDER.public_jwk}
    return b64u_encode(jws.dumps(h)) + "." + b64u_encode(jws.dumps(claims())) + "."


def _tampered() -> str:
    head, _, sig = forge(header(), claims()).split(".")
    return f"{head}.{b64u_encode(jws.dumps(claims(nonce='another')))}.{sig}"


BAD_PROOFS = {
    "typ JWT": (lambda: forge(header(typ="JWT"), claims()), "is not openid4vci-proof+jwt"),
    "typ missing": (lambda: forge(header(typ=None), claims()), "is not openid4vci-proof+jwt"),
    "typ of a key binding JWT": (lambda: forge(header(typ="kb+jwt"), claims()), "is not openid4vci-proof+jwt"),
    "alg none": (_alg_none, "alg 'none'"),
    "HS256 with the public key as secret": (_hs256_with_public_key_as_secret, "alg 'HS256'"),
    "alg RS256": (lambda: forge(header(alg="RS256"), claims()), "alg 'RS256'"),
    "alg missing": (lambda: forge(header(alg=None), claims()), "alg None"),
    "alg says EdDSA, key is P-256": (lambda: forge(header(alg="EdDSA"), claims()), "not EdDSA"),
    "kid instead of jwk": (lambda: forge(header(jwk=None, kid="did:example:123#key-1"), claims()), "with kid are not supported"),
    "x5c instead of jwk": (lambda: forge(header(jwk=None, x5c=["MIIB..."]), claims()), "with x5c are not supported"),
    "jwk and kid": (lambda: forge(header(kid=HOLDER.kid), claims()), "found ['jwk', 'kid']"),
    "jwk and x5c": (lambda: forge(header(x5c=["MIIB..."]), claims()), "found ['jwk', 'x5c']"),
    "no key at all": (lambda: forge(header(jwk=None), claims()), "found none"),
    "private jwk in header": (lambda: forge(header(jwk=private_jwk(HOLDER.private_key)), claims()), "private key member"),
    "jwk not an object": (lambda: forge(header(jwk="eyJrdHkiOiJFQyJ9"), claims()), "must be a JSON object"),
    "jwk of an unsupported key type": (lambda: forge(header(jwk={"kty": "RSA", "n": "AQAB", "e": "AQAB"}), claims()), "kty 'RSA'"),
    "jwk alg contradicts header": (lambda: forge(header(jwk={**HOLDER.public_jwk, "alg": "EdDSA"}), claims()), "does not match"),
    "signature by another key": (lambda: forge(header(), claims(), signer=OTHER), "signature does not verify"),
    "header names another key": (lambda: forge(header(jwk=OTHER.public_jwk), claims()), "signature does not verify"),
    "payload altered after signing": (_tampered, "signature does not verify"),
    "critical extension": (lambda: forge(header(crit=["x"], x=1), claims()), "critical header"),
    "wrong aud": (lambda: forge(header(), claims(aud="https://other-issuer.example.gov.cn")), "is not this credential issuer"),
    "aud with trailing slash": (lambda: forge(header(), claims(aud=AUD + "/")), "is not this credential issuer"),
    "aud as an array": (lambda: forge(header(), claims(aud=[AUD])), "is not this credential issuer"),
    "aud missing": (lambda: forge(header(), claims(aud=None)), "aud None"),
    "iat too old": (lambda: forge(header(), claims(iat=NOW - 301)), "s old"),
    "iat in the future": (lambda: forge(header(), claims(iat=NOW + 61)), "in the future"),
    "iat far in the future": (lambda: forge(header(), claims(iat=10**400)), "in the future"),
    "iat infinite": (lambda: forge(header(), b'{"aud":"%s","iat":1e999,"nonce":"n"}' % AUD.encode()), "no iat"),
    "iat missing": (lambda: forge(header(), claims(iat=None)), "no iat"),
    "iat a string": (lambda: forge(header(), claims(iat=str(NOW))), "no iat"),
    "iat a boolean": (lambda: forge(header(), claims(iat=True)), "no iat"),
    "nonce missing": (lambda: forge(header(), claims(nonce=None)), "no nonce"),
    "nonce empty": (lambda: forge(header(), claims(nonce="")), "no nonce"),
    "nonce not a string": (lambda: forge(header(), claims(nonce=12345)), "no nonce"),
    "iss under anonymous access": (lambda: forge(header(), claims(iss="wallet-app")), "must be omitted"),
    "two parts": (lambda: ".".join(forge(header(), claims()).split(".")[:2]), "3 parts"),
    "not base64url": (lambda: "e30.e30.***", "base64url"),
    "payload not an object": (lambda: forge(header(), b"[1]"), "JSON objects"),
    "duplicate member": (lambda: forge(header(), b'{"aud":"x","aud":"%s","iat":%d,"nonce":"n"}' % (AUD.encode(), NOW)), "duplicate member"),
    "too long": (lambda: forge(header(), claims(pad="x" * vci.MAX_PROOF_CHARS)), "exceeds"),
    "not a string": (lambda: {"jwt": "..."}, "must be a string"),
}


@pytest.mark.parametrize("make, reason", BAD_PROOFS.values(), ids=BAD_PROOFS.keys())
def test_bad_proofs_are_invalid_proof(make, reason):
    # One code for all of them (8.3.1.2); the description says which check failed.
    with pytest.raises(vci.InvalidProof) as info:
        verify(make())
    assert info.value.code == "invalid_proof"
    assert reason in info.value.description


def test_accepted_algorithms_are_narrowed_by_the_caller_never_widened():
    ed = vci.make_proof(HOLDER_ED, audience=AUD, nonce=NONCE, iat=NOW)
    assert code_of(ed, accepted_algs=("ES256",)) == "invalid_proof"
    assert code_of(_hs256_with_public_key_as_secret(), accepted_algs=("ES256", "HS256")) == "invalid_proof"
    assert code_of(_alg_none(), accepted_algs=("none",)) == "invalid_proof"


@pytest.mark.parametrize(
    "make, words",
    [
        (BAD_PROOFS["kid instead of jwk"][0], "not supported; send the public key as jwk"),
        (BAD_PROOFS["jwk and kid"][0], "exactly one of jwk, kid, x5c"),
        (BAD_PROOFS["nonce missing"][0], "get a c_nonce from the nonce endpoint"),
    ],
)
def test_error_descriptions_say_what_was_wrong(make, words):
    with pytest.raises(vci.InvalidProof) as info:
        verify(make())
    assert words in info.value.description


def test_nonce_check_belongs_to_the_caller():
    result = verify(vci.make_proof(HOLDER, audience=AUD, nonce="not-one-we-issued", iat=NOW))
    issued: set[str] = {NONCE}
    with pytest.raises(vci.InvalidNonce) as info:
        if result.nonce not in issued:
            raise vci.InvalidNonce()
    assert info.value.code == "invalid_nonce" and info.value.status == 400


def test_now_may_be_a_datetime():
    from datetime import datetime, timezone

    token = vci.make_proof(HOLDER, audience=AUD, nonce=NONCE, iat=NOW)
    assert verify(token, now=datetime.fromtimestamp(NOW, timezone.utc)).iat == NOW
