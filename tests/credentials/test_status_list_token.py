"""Status List Tokens in JWT form (draft-ietf-oauth-status-list-18 s5.1, s8.3): sign and verify."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

from credentials import jws
from credentials.errors import CannotVerify, CredentialError
from credentials.status_list import (
    ALLOWED_BITS,
    TYP,
    StatusList,
    StatusListBuilder,
    VerifiedStatusList,
    sign_status_list_token,
    status_of,
    verify_status_list_token,
)
from keys.jwk import b64u_encode
from keys.signer import SoftwareSigner

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "status-list" / "examples.json").read_text("utf-8"))

URI = "https://scjgj.example.gov.cn/statuslists/7"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
SIGNER = SoftwareSigner.generate("ES256")
KEY = SIGNER.private_key.public_key()


def _list() -> StatusList:
    builder = StatusListBuilder(1024, 2)
    builder.update({3: 1, 5: 2, 1000: 1})
    return builder.freeze()


def _token(**over) -> str:
    kw = dict(signer=SIGNER, sub=URI, iat=NOW - 10, exp=NOW + 3600, ttl=300)
    kw.update(over)
    return sign_status_list_token(_list(), **kw)


def _raw(payload: dict, *, typ: str = TYP, signer=SIGNER) -> str:
    return jws.sign(payload, signer, typ=typ)


def _payload(**over) -> dict:
    payload = {"sub": URI, "iat": NOW - 10, "exp": NOW + 3600, "ttl": 300, "status_list": _list().to_json()}
    payload.update(over)
    return {k: v for k, v in payload.items() if v is not None}


def _code(token: str, **kw) -> str:
    args = dict(key=KEY, expected_uri=URI, now=NOW)
    args.update(kw)
    with pytest.raises(CredentialError) as exc:
        verify_status_list_token(token, **args)
    return exc.value.code


# --- the draft's example token --------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["tokens"], ids=lambda c: f"s{c['section']}-{c['name']}")
def test_draft_example_token_verifies_with_the_draft_key(case):
    key = jws.public_key_from_jwk(case["public_jwk"])
    verified = verify_status_list_token(case["token"], key=key, expected_uri=case["sub"], now=case["iat"] + 1)
    assert (verified.sub, verified.iss, verified.iat, verified.exp, verified.ttl) == (
        case["sub"],
        case["iss"],
        case["iat"],
        case["exp"],
        case["ttl"],
    )
    assert verified.status_list.bits == case["bits"]
    assert verified.status_list.data.hex() == case["byte_array"]
    assert [status_of(verified, i) for i in range(4)] == [1, 0, 0, 1]


# --- sign / verify round trips --------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
@pytest.mark.parametrize("bits", ALLOWED_BITS)
def test_every_bit_width_round_trips_through_a_signed_token(alg, bits):
    signer = SoftwareSigner.generate(alg)
    lst = StatusList.new(64, bits).with_status(63, (1 << bits) - 1)
    token = sign_status_list_token(lst, signer=signer, sub=URI, iat=NOW, exp=NOW + 60, ttl=30)
    verified = verify_status_list_token(token, key=signer.private_key.public_key(), expected_uri=URI, now=NOW)
    assert verified.status_list == lst
    assert verified.status(63) == (1 << bits) - 1


def test_token_has_the_draft_header_and_claims():
    token = _token(iss="https://scjgj.example.gov.cn", aggregation_uri="https://scjgj.example.gov.cn/agg")
    parsed = jws.parse(token)
    assert parsed.header["typ"] == "statuslist+jwt"
    assert parsed.header["kid"] == SIGNER.kid
    assert set(parsed.payload) == {"sub", "iss", "iat", "exp", "ttl", "status_list"}
    assert parsed.payload["status_list"]["bits"] == 2
    verified = verify_status_list_token(token, key=KEY, expected_uri=URI, now=NOW)
    assert isinstance(verified, VerifiedStatusList)
    assert verified.aggregation_uri == "https://scjgj.example.gov.cn/agg"
    assert verified.verified_at == NOW
    assert verified.age(NOW + 50) == 60


def test_key_resolver_receives_the_protected_header():
    seen = []

    def resolve(header):
        seen.append(header["kid"])
        return KEY

    verify_status_list_token(_token(), key=resolve, expected_uri=URI, now=NOW)
    assert seen == [SIGNER.kid]


def test_token_as_http_body_bytes_is_accepted():
    verified = verify_status_list_token(_token().encode() + b"\n", key=KEY, expected_uri=URI, now=NOW)
    assert verified.status(5) == 2


# --- every check fails with its code --------------------------------------------------------------


def test_wrong_sub_is_status_list_invalid():
    assert _code(_token(), expected_uri=URI + "0") == "status_list_invalid"


def test_wrong_typ_is_invalid_typ():
    assert _code(_raw(_payload(), typ="JWT")) == "invalid_typ"
    assert _code(_raw(_payload(), typ="application/statuslist+cwt")) == "invalid_typ"


def test_signature_by_another_key_is_invalid_signature():
    other = SoftwareSigner.generate("ES256")
    assert _code(_token(signer=other)) == "invalid_signature"


def test_altered_payload_is_invalid_signature():
    header, _, sig = _token().split(".")
    forged = b64u_encode(jws.dumps(_payload(status_list=StatusList.new(1024, 2).to_json())))
    assert _code(f"{header}.{forged}.{sig}") == "invalid_signature"


def test_unsigned_token_is_unsupported_alg():
    header = b64u_encode(jws.dumps({"alg": "none", "typ": TYP}))
    assert _code(f"{header}.{b64u_encode(jws.dumps(_payload()))}.") == "unsupported_alg"


def test_expired_token_is_status_unavailable_not_invalid():
    token = _token(iat=NOW - 7200, exp=NOW - 1)
    with pytest.raises(CannotVerify) as exc:
        verify_status_list_token(token, key=KEY, expected_uri=URI, now=NOW)
    assert exc.value.code == "status_unavailable"
    assert "expired" in exc.value.detail
    # The instant before exp it is still usable.
    verify_status_list_token(token, key=KEY, expected_uri=URI, now=NOW - 2)


def test_token_older_than_max_age_is_status_unavailable():
    token = _token(iat=NOW - 1000)
    assert _code(token, max_age=999) == "status_unavailable"
    verify_status_list_token(token, key=KEY, expected_uri=URI, now=NOW, max_age=1000)


def test_token_not_yet_valid_is_status_unavailable():
    assert _code(_raw(_payload(nbf=NOW + 600))) == "status_unavailable"


def test_token_issued_in_the_future_is_status_list_invalid():
    assert _code(_token(iat=NOW + 61, exp=NOW + 3600)) == "status_list_invalid"
    verify_status_list_token(_token(iat=NOW + 59), key=KEY, expected_uri=URI, now=NOW)  # within leeway


@pytest.mark.parametrize(
    "over",
    [
        {"sub": None},
        {"sub": 7},
        {"iat": None},
        {"iat": "yesterday"},
        {"exp": True},
        {"exp": NOW - 20},  # exp before iat
        {"ttl": 0},
        {"ttl": -5},
        {"ttl": "300"},
        {"iss": 1},
        {"status_list": None},
        {"status_list": {"bits": 3, "lst": StatusList.new(8, 1).lst()}},
        {"status_list": {"bits": 1, "lst": "!!"}},
    ],
    ids=lambda o: "-".join(f"{k}={v!r}"[:24] for k, v in o.items()),
)
def test_bad_claims_are_status_list_invalid(over):
    assert _code(_raw(_payload(**over))) == "status_list_invalid"


def test_zip_bomb_in_a_signed_token_is_payload_too_large():
    c = zlib.compressobj(9)
    bomb = b64u_encode(c.compress(bytes(16 << 20)) + c.flush())
    token = _raw(_payload(status_list={"bits": 8, "lst": bomb}))
    assert _code(token) == "payload_too_large"


def test_oversized_token_is_payload_too_large_before_parsing():
    # The token bound is derived from max_size: 8 entries allow a few KiB of token, not 20 KB.
    token = _raw(_payload(padding="x" * 20_000))
    assert _code(token, max_size=8) == "payload_too_large"
    assert verify_status_list_token(token, key=KEY, expected_uri=URI, now=NOW).status(3) == 1


def test_list_larger_than_max_size_is_payload_too_large():
    assert _code(_token(), max_size=1020) == "payload_too_large"  # 255 bytes at 2 bits
    assert verify_status_list_token(_token(), key=KEY, expected_uri=URI, now=NOW, max_size=1024).status_list.size == 1024


@pytest.mark.parametrize(
    "over",
    [{"sub": ""}, {"ttl": 0}, {"ttl": True}, {"exp": NOW - 11}],
    ids=["empty-sub", "zero-ttl", "bool-ttl", "exp-before-iat"],
)
def test_signing_refuses_bad_claims(over):
    with pytest.raises(CredentialError) as exc:
        _token(**over)
    assert exc.value.code == "status_list_invalid"
