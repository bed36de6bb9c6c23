"""The signed trust list (eLicence format modelled on ETSI TS 119 612): load, resolve, cache."""

from __future__ import annotations

import pytest

from credentials import jws
from credentials.errors import CredentialError
from credentials.trust import (
    TYP,
    TrustedIssuer,
    TrustList,
    TrustListCache,
    create_trust_list,
    load_trust_list,
)
from keys.jwk import b64u_encode, private_jwk, public_jwk, thumbprint
from keys.signer import SoftwareSigner

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400
OPERATOR = SoftwareSigner.generate("ES256")
OPERATOR_KEY = OPERATOR.private_key.public_key()
SH = SoftwareSigner.generate("ES256")
GD = SoftwareSigner.generate("EdDSA")
LICENCE = "https://elicence.example/vct/business-licence"
FOOD = "https://elicence.example/vct/food-business-permit"


def _issuers() -> list[dict]:
    return [
        {
            "id": "https://scjgj.sh.example.gov.cn",
            "name": {"zh-CN": "上海市市场监督管理局", "en": "Shanghai Administration for Market Regulation"},
            "region": "310000",
            "vcts": [LICENCE, FOOD],
            "jwks": {"keys": [{**SH.public_jwk, "kid": SH.kid}]},
        },
        {
            "id": "https://amr.gd.example.gov.cn",
            "name": {"zh-CN": "广东省市场监督管理局", "en": "Guangdong Administration for Market Regulation"},
            "region": "440000",
            "vcts": [LICENCE],
            "jwks": {"keys": [dict(GD.public_jwk)]},  # no kid: the RFC 7638 thumbprint is used
        },
    ]


def _token(*, iat=T0, exp=T0 + 7 * DAY, sequence=5, signer=OPERATOR, issuers=None) -> str:
    return create_trust_list(
        _issuers() if issuers is None else issuers,
        signer=signer,
        iss="https://trust.example.gov.cn",
        iat=iat,
        exp=exp,
        sequence=sequence,
    )


def _load(token: str, **kw) -> TrustList:
    args = dict(operator_key=OPERATOR_KEY, now=T0 + 60)
    args.update(kw)
    return load_trust_list(token, **args)


def _code(fn) -> str:
    with pytest.raises(CredentialError) as exc:
        fn()
    return exc.value.code


def _payload(**over) -> dict:
    payload = jws.parse(_token()).payload
    payload = {**payload, **over}
    return {k: v for k, v in payload.items() if v is not None}


# --- load and resolve -----------------------------------------------------------------------------


def test_trust_list_round_trips_and_keeps_its_fields():
    tl = _load(_token())
    assert (tl.iss, tl.iat, tl.exp, tl.sequence) == ("https://trust.example.gov.cn", T0, T0 + 7 * DAY, 5)
    sh = tl.issuer("https://scjgj.sh.example.gov.cn")
    assert sh.name["zh-CN"] == "上海市市场监督管理局" and sh.region == "310000"
    assert sh.vcts == (LICENCE, FOOD)
    assert jws.parse(tl.token).header["typ"] == "trustlist+jwt"
    assert tl.age(T0 + 3600) == 3600
    assert TrustList(tl.iss, tl.iat, tl.exp, tl.sequence, tl.issuers).to_payload() == jws.parse(tl.token).payload


def test_resolver_returns_the_issuer_key_that_verifies_its_credential():
    resolve = _load(_token()).resolver()
    for signer, iss in ((SH, "https://scjgj.sh.example.gov.cn"), (GD, "https://amr.gd.example.gov.cn")):
        credential = jws.sign({"iss": iss, "vct": LICENCE}, signer, typ="dc+sd-jwt")
        verified = jws.verify(credential, lambda header: resolve(iss, header, LICENCE), typ="dc+sd-jwt")
        assert verified.payload["iss"] == iss


def test_key_without_kid_is_listed_under_its_thumbprint():
    gd = _load(_token()).issuer("https://amr.gd.example.gov.cn")
    assert gd.jwks[0]["kid"] == thumbprint(GD.public_jwk) == GD.kid


def test_issuer_not_listed_is_untrusted_issuer():
    resolve = _load(_token()).resolver()
    assert _code(lambda: resolve("https://evil.example", {"kid": SH.kid}, LICENCE)) == "untrusted_issuer"
    # Identifiers compare as exact strings: no normalisation of case or trailing slash.
    assert _code(lambda: resolve("https://scjgj.sh.example.gov.cn/", {"kid": SH.kid}, LICENCE)) == "untrusted_issuer"


def test_vct_not_allowed_is_issuer_not_authorized_for_type():
    resolve = _load(_token()).resolver()
    code = _code(lambda: resolve("https://amr.gd.example.gov.cn", {"kid": GD.kid}, FOOD))
    assert code == "issuer_not_authorized_for_type"


def test_kid_not_in_the_issuer_jwks_is_unknown_key():
    resolve = _load(_token()).resolver()
    # SH's kid is on the list, but under another issuer.
    assert _code(lambda: resolve("https://amr.gd.example.gov.cn", {"kid": SH.kid}, LICENCE)) == "unknown_key"
    assert _code(lambda: resolve("https://amr.gd.example.gov.cn", {}, LICENCE)) == "unknown_key"


# --- every check fails with its code --------------------------------------------------------------


def test_pinned_key_mismatch_is_invalid_signature():
    impostor = SoftwareSigner.generate("ES256")
    assert _code(lambda: _load(_token(signer=impostor))) == "invalid_signature"
    # A key of the other type is a mismatch too, not a key error of the trust list.
    assert _code(lambda: _load(_token(signer=SoftwareSigner.generate("EdDSA")))) == "invalid_signature"


def test_altered_trust_list_is_invalid_signature():
    header, _, sig = _token().split(".")
    issuers = _issuers()
    issuers[1]["vcts"].append(FOOD)
    forged = b64u_encode(jws.dumps(_payload(issuers=issuers)))
    assert _code(lambda: _load(f"{header}.{forged}.{sig}")) == "invalid_signature"


def test_unsigned_and_alg_none_trust_lists_are_refused():
    header = b64u_encode(jws.dumps({"alg": "none", "typ": TYP}))
    body = b64u_encode(jws.dumps(_payload()))
    assert _code(lambda: _load(f"{header}.{body}.")) == "unsupported_alg"
    es_header = b64u_encode(jws.dumps({"alg": "ES256", "typ": TYP}))
    assert _code(lambda: _load(f"{es_header}.{body}.")) == "invalid_signature"
    assert _code(lambda: _load(f"{header}.{body}")) == "malformed"


def test_wrong_typ_is_invalid_typ():
    token = jws.sign(_payload(), OPERATOR, typ="JWT")
    assert _code(lambda: _load(token)) == "invalid_typ"


def test_expired_trust_list_is_cannot_verify_and_says_since_when():
    token = _token(exp=T0 + DAY)
    with pytest.raises(CredentialError) as exc:
        _load(token, now=T0 + DAY + 7200)
    assert exc.value.code == "cannot_verify"
    assert "expired at 2026-01-02T00:00:00Z" in exc.value.detail
    assert "2 h" in exc.value.detail


def test_trust_list_older_than_max_age_is_cannot_verify():
    assert _code(lambda: _load(_token(), now=T0 + 3 * DAY, max_age=2 * DAY)) == "cannot_verify"
    _load(_token(), now=T0 + DAY, max_age=2 * DAY)


def test_trust_list_from_the_future_is_iat_in_future():
    assert _code(lambda: _load(_token(iat=T0 + 3600), now=T0)) == "iat_in_future"


def test_operator_key_can_be_a_jwk_or_a_rollover_set():
    new_operator = SoftwareSigner.generate("EdDSA")
    pinned = [dict(OPERATOR.public_jwk), new_operator.private_key.public_key()]
    assert _load(_token(), operator_key=pinned).sequence == 5
    assert _load(_token(signer=new_operator), operator_key=pinned).sequence == 5
    assert _load(_token(), operator_key=dict(OPERATOR.public_jwk)).sequence == 5


@pytest.mark.parametrize(
    "over,code",
    [
        ({"sequence": None}, "missing_claim"),
        ({"sequence": 0}, "malformed"),
        ({"sequence": "6"}, "malformed"),
        ({"iss": None}, "missing_claim"),
        ({"iss": "http://trust.example.gov.cn"}, "malformed"),
        ({"exp": None}, "missing_claim"),
        ({"exp": T0 - 1}, "malformed"),
        ({"iat": "today"}, "malformed"),
        ({"issuers": None}, "missing_claim"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_malformed_claims_are_refused(over, code):
    token = jws.sign(_payload(**over), OPERATOR, typ=TYP)
    assert _code(lambda: _load(token)) == code


def _issuer_with(**over) -> dict:
    entry = _issuers()[0]
    entry.update(over)
    return entry


@pytest.mark.parametrize(
    "entry,code",
    [
        (_issuer_with(id="http://scjgj.sh.example.gov.cn"), "malformed"),
        (_issuer_with(id="https://scjgj.sh.example.gov.cn#x"), "malformed"),
        (_issuer_with(name={}), "malformed"),
        (_issuer_with(name="上海"), "malformed"),
        (_issuer_with(region=""), "malformed"),
        (_issuer_with(vcts=[]), "malformed"),
        (_issuer_with(vcts=[LICENCE, LICENCE]), "malformed"),
        (_issuer_with(vcts=LICENCE), "malformed"),
        (_issuer_with(jwks={"keys": []}), "malformed"),
        (_issuer_with(jwks=[dict(SH.public_jwk)]), "malformed"),
        (_issuer_with(jwks={"keys": [dict(SH.public_jwk), dict(SH.public_jwk)]}), "malformed"),
        (_issuer_with(jwks={"keys": [private_jwk(SH.private_key)]}), "invalid_key"),
        (_issuer_with(jwks={"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}), "invalid_key"),
        ({k: v for k, v in _issuers()[0].items() if k != "vcts"}, "missing_claim"),
    ],
    ids=[
        "http-id",
        "fragment-id",
        "empty-name",
        "name-not-map",
        "empty-region",
        "no-vcts",
        "duplicate-vct",
        "vcts-string",
        "no-keys",
        "jwks-not-set",
        "duplicate-kid",
        "private-key",
        "rsa-key",
        "missing-vcts",
    ],
)
def test_malformed_issuer_entries_are_refused(entry, code):
    token = jws.sign(_payload(issuers=[entry]), OPERATOR, typ=TYP)
    assert _code(lambda: _load(token)) == code


def test_issuer_listed_twice_is_malformed():
    token = jws.sign(_payload(issuers=[_issuers()[0], _issuers()[0]]), OPERATOR, typ=TYP)
    assert _code(lambda: _load(token)) == "malformed"


def test_create_refuses_what_load_would_refuse():
    assert _code(lambda: _token(sequence=0)) == "malformed"
    assert _code(lambda: _token(exp=T0)) == "malformed"
    assert _code(lambda: _token(issuers=[_issuer_with(vcts=[])])) == "malformed"


def test_trusted_issuer_values_round_trip():
    issuer = TrustedIssuer.from_json(_issuers()[0])
    assert TrustedIssuer.from_json(issuer.to_json()) == issuer
    assert issuer.key(SH.kid).public_numbers() == SH.private_key.public_key().public_numbers()
    assert public_jwk(issuer.key(SH.kid)) == SH.public_jwk


# --- the cache: last good copy, expiry, rollback --------------------------------------------------


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Source:
    def __init__(self, token: str) -> None:
        self.token = token
        self.offline = False
        self.fetches = 0

    def __call__(self) -> str:
        self.fetches += 1
        if self.offline:
            raise ConnectionError("trust list host unreachable")
        return self.token


def test_cache_refreshes_after_the_interval():
    clock, source = Clock(), Source(_token(sequence=5))
    cache = TrustListCache(source, OPERATOR_KEY, clock=clock, refresh_interval=3600)
    assert cache.get().trust_list.sequence == 5 and source.fetches == 1
    clock.t += 3599
    assert cache.get().trust_list.sequence == 5 and source.fetches == 1
    source.token = _token(sequence=6, iat=clock.t)
    clock.t += 1
    got = cache.get()
    assert (got.trust_list.sequence, got.stale, source.fetches, cache.sequence) == (6, False, 2, 6)


def test_offline_cache_keeps_the_last_good_copy_and_reports_its_age():
    clock, source = Clock(), Source(_token(exp=T0 + 2 * DAY))
    cache = TrustListCache(source, OPERATOR_KEY, clock=clock, refresh_interval=3600, retry_interval=600)
    cache.get()
    source.offline = True
    clock.t += DAY
    got = cache.get()
    assert got.stale and got.age == DAY
    assert got.last_error.code == "cannot_verify"
    assert got.trust_list.resolver()("https://scjgj.sh.example.gov.cn", {"kid": SH.kid}, LICENCE)
    # Failed refreshes are retried every retry_interval, not on every verification.
    fetches = source.fetches
    clock.t += 599
    cache.get()
    assert source.fetches == fetches
    clock.t += 1
    cache.get()
    assert source.fetches == fetches + 1


def test_offline_cache_fails_closed_once_the_copy_has_expired():
    clock, source = Clock(), Source(_token(exp=T0 + 2 * DAY))
    cache = TrustListCache(source, OPERATOR_KEY, clock=clock)
    cache.get()
    source.offline = True
    clock.t += 2 * DAY
    with pytest.raises(CredentialError) as exc:
        cache.get()
    assert exc.value.code == "cannot_verify"
    assert "expired at 2026-01-03T00:00:00Z" in exc.value.detail
    assert "unreachable" in exc.value.detail


def test_rollback_to_a_lower_sequence_is_refused():
    clock, source = Clock(), Source(_token(sequence=7))
    cache = TrustListCache(source, OPERATOR_KEY, clock=clock, refresh_interval=60)
    cache.get()
    source.token = _token(sequence=6, iat=T0 + 30)  # validly signed, but older
    clock.t += 60
    got = cache.get()
    assert got.trust_list.sequence == 7 and got.stale
    assert got.last_error.code == "cannot_verify" and "rollback" in got.last_error.detail


def test_rollback_below_a_persisted_sequence_is_refused_at_start():
    clock, source = Clock(), Source(_token(sequence=3))
    cache = TrustListCache(source, OPERATOR_KEY, clock=clock, min_sequence=4)
    with pytest.raises(CredentialError) as exc:
        cache.get()
    assert exc.value.code == "cannot_verify" and "rollback" in exc.value.detail


def test_badly_signed_refresh_keeps_the_last_good_copy():
    clock, source = Clock(), Source(_token(sequence=5))
    cache = TrustListCache(source, OPERATOR_KEY, clock=clock, refresh_interval=60)
    cache.get()
    source.token = _token(sequence=9, signer=SoftwareSigner.generate("ES256"))
    clock.t += 60
    got = cache.get()
    assert got.trust_list.sequence == 5 and got.last_error.code == "invalid_signature"


def test_initial_copy_works_offline_from_the_start():
    clock, source = Clock(T0 + 3600), Source("unused")
    source.offline = True
    cache = TrustListCache(source, OPERATOR_KEY, clock=clock, initial=_token(), refresh_interval=DAY)
    got = cache.get()
    assert got.trust_list.sequence == 5 and got.age == 3600 and source.fetches == 0


def test_no_copy_and_unreachable_is_cannot_verify():
    clock, source = Clock(), Source("unused")
    source.offline = True
    assert _code(TrustListCache(source, OPERATOR_KEY, clock=clock).get) == "cannot_verify"


def test_cache_resolver_uses_the_current_list():
    clock, source = Clock(), Source(_token(sequence=5))
    cache = TrustListCache(source, OPERATOR_KEY, clock=clock, refresh_interval=60)
    resolve = cache.resolver()
    assert resolve("https://amr.gd.example.gov.cn", {"kid": GD.kid}, LICENCE)
    issuers = _issuers()[:1]  # Guangdong is removed from the list
    source.token = _token(sequence=6, issuers=issuers)
    clock.t += 60
    assert _code(lambda: resolve("https://amr.gd.example.gov.cn", {"kid": GD.kid}, LICENCE)) == "untrusted_issuer"


def test_trust_list_as_bytes_is_accepted_and_non_ascii_is_malformed():
    assert _load(_token().encode() + b"\r\n").sequence == 5
    assert _code(lambda: _load("信任".encode())) == "malformed"
