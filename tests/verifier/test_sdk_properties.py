"""Property tests of the verifier SDK: whatever is scanned, verification ends in a coded error from one
named check (never another exception, never "valid"), and no one-character change to a genuine
presentation is accepted."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from credentials.base45 import ALPHABET as BASE45_ALPHABET
from credentials.errors import CredentialError
from verifier.checks import CHECKS
from verifier.sdk import failure_report

CHECK_NAMES = {c.name for c in CHECKS}
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
B64U = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

segments = st.text(alphabet=B64U, max_size=40)
jws_like = st.lists(segments, min_size=1, max_size=4).map(".".join)
sd_jwt_like = st.lists(jws_like | segments, min_size=1, max_size=6).map(lambda parts: "~".join(parts) + "~")
el1_like = st.text(alphabet=BASE45_ALPHABET, max_size=300).map(lambda body: "EL1:" + body)
image_like = st.tuples(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"RIFF"]), st.binary(max_size=512)).map(
    lambda t: t[0] + t[1]
)


def _assert_refused(verifier, data) -> CredentialError:
    with pytest.raises(CredentialError) as info:
        verifier.verify(data)
    error = info.value
    assert error.check in CHECK_NAMES, (error.code, error.check)
    json.dumps(failure_report(error), ensure_ascii=False)
    return error


@SETTINGS
@given(data=st.binary(max_size=2048) | image_like)
def test_arbitrary_bytes_raise_only_coded_errors(kit, data):
    _assert_refused(kit.verifier(), data)


@SETTINGS
@given(text=st.text(max_size=2048) | sd_jwt_like | el1_like)
def test_arbitrary_text_raises_only_coded_errors(kit, text):
    _assert_refused(kit.verifier(), text)


@pytest.fixture(scope="module")
def genuine(kit):
    """A valid presentation (never verified by the verifier below) and that verifier."""
    return kit.present(disclose=kit.leaf_paths), kit.verifier()


@SETTINGS
@given(position=st.integers(min_value=0), replacement=st.sampled_from(B64U + "~.="))
def test_no_one_character_change_to_a_presentation_is_accepted(genuine, position, replacement):
    text, verifier = genuine
    position %= len(text)
    assume(text[position] != replacement)
    _assert_refused(verifier, text[:position] + replacement + text[position + 1 :])


@SETTINGS
@given(start=st.integers(min_value=0), length=st.integers(min_value=1, max_value=64))
def test_no_cut_from_a_presentation_is_accepted(genuine, start, length):
    text, verifier = genuine
    start %= len(text)
    _assert_refused(verifier, text[:start] + text[start + length :])
