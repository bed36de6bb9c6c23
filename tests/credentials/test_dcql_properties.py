"""Properties of DCQL: arbitrary input raises only ``InvalidDcqlQuery``; valid queries round-trip; matching holds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from credentials import dcql, jws

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
# Values near the real shapes, so that the deeper checks are reached too.
NAMES = st.sampled_from(
    ["credentials", "credential_sets", "id", "format", "meta", "vct_values", "claims", "claim_sets", "path", "values",
     "multiple", "require_cryptographic_holder_binding", "trusted_authorities", "type", "options", "required", "a"]
)
SHAPED = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 3) | st.sampled_from(["", "a", "dc+sd-jwt", "https://v.example/t"]),
    lambda inner: st.lists(inner, min_size=0, max_size=3) | st.dictionaries(NAMES, inner, max_size=6),
    max_leaves=30,
)

IDS = st.sampled_from(["a", "b", "c", "d_1", "e-2"])
PATH = st.lists(st.one_of(st.sampled_from(["uscc", "name", "domicile", "city", "scope"]), st.none(), st.integers(0, 3)),
                min_size=1, max_size=4)
VALUE = st.one_of(st.text(max_size=5), st.integers(-3, 3), st.booleans())


@st.composite
def valid_queries(draw):
    """Well-formed DCQL queries (s6), unique ids and paths, claim_sets and credential_sets referring to them."""
    query_ids = draw(st.lists(IDS, min_size=1, max_size=4, unique=True))
    credentials = []
    for qid in query_ids:
        query = {"id": qid, "format": "dc+sd-jwt",
                 "meta": {"vct_values": draw(st.lists(st.sampled_from(["https://v.example/1", "https://v.example/2"]),
                                                      min_size=1, max_size=2))}}
        if draw(st.booleans()):
            query["multiple"] = True
        if draw(st.booleans()):
            paths = draw(st.lists(PATH, min_size=1, max_size=4, unique_by=lambda p: tuple(p)))
            with_ids = draw(st.booleans())
            claims = []
            for i, path in enumerate(paths):
                claim = {"id": f"c{i}", "path": path} if with_ids else {"path": path}
                if draw(st.booleans()):
                    claim["values"] = draw(st.lists(VALUE, min_size=1, max_size=3))
                claims.append(claim)
            query["claims"] = claims
            if with_ids and draw(st.booleans()):
                names = [c["id"] for c in claims]
                query["claim_sets"] = draw(st.lists(st.lists(st.sampled_from(names), min_size=1, max_size=3),
                                                    min_size=1, max_size=3))
        credentials.append(query)
    out = {"credentials": credentials}
    if draw(st.booleans()):
        sets = draw(st.lists(st.lists(st.lists(st.sampled_from(query_ids), min_size=1, max_size=3), min_size=1,
                                      max_size=3), min_size=1, max_size=3))
        out["credential_sets"] = [
            {"options": options} | ({"required": False} if draw(st.booleans()) else {}) for options in sets
        ]
    return out


def only_dcql_errors(fn, *args):
    try:
        return fn(*args)
    except dcql.InvalidDcqlQuery as exc:
        assert exc.code == "invalid_dcql_query" and exc.detail
        return None


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_arbitrary_json_raises_only_invalid_dcql_query(data):
    only_dcql_errors(dcql.parse_query, data)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"credentials": st.lists(SHAPED, max_size=3)}, optional={"credential_sets": SHAPED}))
def test_shaped_input_raises_only_invalid_dcql_query(data):
    only_dcql_errors(dcql.parse_query, data)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_arbitrary_text_raises_only_invalid_dcql_query(text):
    only_dcql_errors(dcql.parse_query, text)


@settings(max_examples=200, deadline=None)
@given(valid_queries())
def test_valid_queries_parse_and_round_trip(data):
    query = dcql.parse_query(data)
    assert query.to_json() == data
    assert dcql.parse_query(jws.dumps(query.to_json())) == query


@settings(max_examples=200, deadline=None)
@given(JSON, st.lists(JSON, max_size=5))
def test_claims_path_pointers_never_raise(credential, path):
    for where, value in dcql.select_claims(credential if isinstance(credential, dict) else {}, path):
        assert isinstance(where, tuple) and None not in where


@settings(max_examples=150, deadline=None)
@given(valid_queries(), st.lists(st.tuples(st.sampled_from(["https://v.example/1", "https://v.example/2"]),
                                           st.dictionaries(st.sampled_from(["uscc", "name", "domicile", "scope"]), JSON,
                                                           max_size=4)), max_size=4))
def test_matching_never_raises_and_its_answers_pass_the_verifier_check(data, held):
    query = dcql.parse_query(data)
    result = dcql.match(query, [dcql.Candidate(vct, claims) for vct, claims in held])
    assert set(result.by_query) == set(query.ids)
    if result.satisfied:
        # What the Wallet would send (its first candidate per selected query) satisfies the Verifier's check
        # when the Verifier sees the same claims (no array element hidden).
        dcql.check_answers(query, {qid: [result.by_query[qid][0].candidate] for qid in result.selection})
    else:
        assert result.selection == ()
