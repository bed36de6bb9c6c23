"""Property tests for RFC 9901: arbitrary input fails only with coded errors; issue -> present -> verify
reveals exactly the chosen claims for random claim trees and random choices."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from credentials.errors import CredentialError
from credentials.sd_jwt import (
    KeyBindingPolicy,
    SdJwt,
    issue,
    make_disclosure,
    parse_disclosure,
    present,
    process_disclosures,
    verify,
)
from keys.jwk import b64u_encode
from keys.signer import SoftwareSigner

ISSUER = SoftwareSigner.generate("EdDSA")
HOLDER = SoftwareSigner.generate("ES256")
KEY = ISSUER.private_key.public_key()
TYP = "example+sd-jwt"
NOW = 1_700_000_000
POLICY = KeyBindingPolicy(nonce="n", aud="https://v.example")
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Claim names avoid the reserved names and the validity/binding claims verify() interprets.
names = st.text(alphabet="abcdefghij_", min_size=1, max_size=4).filter(
    lambda n: n not in {"_sd", "_sd_alg"}
)
scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8) | st.floats(
    allow_nan=False, allow_infinity=False
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(names, children, max_size=4),
    max_leaves=20,
)
claim_trees = st.dictionaries(names, json_values, min_size=1, max_size=6)


def all_paths(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield path + (k,)
            yield from all_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield path + (i,)
            yield from all_paths(v, path + (i,))


def expected_view(value, disclosable, revealed, path=()):
    visible = lambda p: p not in disclosable or p in revealed  # noqa: E731
    if isinstance(value, dict):
        return {k: expected_view(v, disclosable, revealed, path + (k,)) for k, v in value.items() if visible(path + (k,))}
    if isinstance(value, list):
        return [expected_view(v, disclosable, revealed, path + (i,)) for i, v in enumerate(value) if visible(path + (i,))]
    return value


def salts():
    n = iter(range(100_000))
    return lambda: f"s{next(n)}"


@st.composite
def scenarios(draw):
    claims = draw(claim_trees)
    paths = sorted(set(all_paths(claims)), key=repr)
    disclosable = draw(st.sets(st.sampled_from(paths), max_size=len(paths))) if paths else set()
    disclose = draw(st.sets(st.sampled_from(paths), max_size=len(paths))) if paths else set()
    decoys = draw(st.integers(0, 2))
    key_bound = draw(st.booleans())
    return claims, disclosable, disclose, decoys, key_bound


@SETTINGS
@given(scenarios())
def test_issue_present_verify_reveals_exactly_the_chosen_claims(scenario):
    claims, disclosable, disclose, decoys, key_bound = scenario
    issued = issue(
        claims, disclosable=disclosable, signer=ISSUER, typ=TYP, salt_source=salts(), decoys=decoys,
        holder_jwk=HOLDER.public_jwk,
    )
    assert len(SdJwt.parse(issued).disclosures) == len(disclosable)
    kb_args = dict(holder_signer=HOLDER, aud=POLICY.aud, nonce=POLICY.nonce, now=NOW) if key_bound else {}
    presentation = present(issued, disclose=disclose, **kb_args)
    result = verify(presentation, issuer_key=KEY, expected_typ=TYP, now=NOW, kb=POLICY if key_bound else None)

    # A disclosed path reveals its own Disclosure and those of its selectively disclosable ancestors.
    revealed = {r[:i] for r in disclose for i in range(1, len(r) + 1) if r[:i] in disclosable}
    view = expected_view(claims, disclosable, revealed)
    view["cnf"] = {"jwk": dict(HOLDER.public_jwk)}
    assert result.claims == json.loads(json.dumps(view))
    assert set(result.disclosed_paths) == revealed
    assert len(SdJwt.parse(presentation).disclosures) == len(revealed)
    assert result.key_bound == key_bound


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text_fails_only_with_coded_errors(text):
    for fn in (
        lambda: SdJwt.parse(text),
        lambda: parse_disclosure(text),
        lambda: verify(text, issuer_key=KEY, expected_typ=TYP, now=NOW),
        lambda: verify(text, issuer_key=KEY, expected_typ=TYP, now=NOW, kb=POLICY),
        lambda: present(text, disclose=[]),
    ):
        try:
            fn()
        except CredentialError:
            pass


_ISSUED = issue(
    {"a": 1, "b": {"c": [1, 2, {"d": "x"}]}, "exp": NOW + 10},
    disclosable=["a", "b", ("b", "c"), ("b", "c", 2), ("b", "c", 2, "d")],
    signer=ISSUER,
    typ=TYP,
    holder_jwk=HOLDER.public_jwk,
    decoys=1,
)
_PRESENTED = present(
    _ISSUED, disclose=[("b", "c", 2, "d"), "a"], holder_signer=HOLDER, aud=POLICY.aud, nonce=POLICY.nonce, now=NOW
)


@SETTINGS
@given(st.data())
def test_mutated_presentations_fail_only_with_coded_errors(data):
    text = _PRESENTED
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["replace", "delete", "insert"]))
        char = data.draw(st.sampled_from(list("~.-_Aa0=+/é ")))
        if op == "replace" and pos < len(text):
            text = text[:pos] + char + text[pos + 1:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1:]
        else:
            text = text[:pos] + char + text[pos:]
    assume(text != _PRESENTED)
    try:
        verify(text, issuer_key=KEY, expected_typ=TYP, now=NOW, kb=POLICY)
    except CredentialError:
        pass


@SETTINGS
@given(st.lists(json_values, max_size=4) | json_values)
def test_arbitrary_json_as_a_disclosure_fails_only_with_coded_errors(content):
    try:
        parse_disclosure(b64u_encode(json.dumps(content).encode("utf-8")))
    except CredentialError:
        pass


@SETTINGS
@given(
    st.dictionaries(st.sampled_from(["_sd", "...", "_sd_alg", "a", "b"]), json_values, max_size=4),
    st.lists(st.tuples(st.sampled_from(["a", "b", "_sd", "...", None]), json_values), max_size=4),
    st.booleans(),
)
def test_arbitrary_payloads_and_disclosures_fail_only_with_coded_errors(payload, items, reference):
    disclosures = [make_disclosure(name, value, salt=f"s{i}") if name not in ("_sd", "...") else None
                   for i, (name, value) in enumerate(items)]
    encoded = [d.encoded for d in disclosures if d is not None]
    if reference and disclosures:
        payload = dict(payload)
        payload["_sd"] = [d.digest for d in disclosures if d is not None and d.name is not None]
        payload["arr"] = [{"...": d.digest} for d in disclosures if d is not None and d.name is None]
    try:
        process_disclosures(payload, encoded)
    except CredentialError:
        pass
