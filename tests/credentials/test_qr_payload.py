"""The EL1 compact payload (credentials/qr.py): packing, exact round trips, bounded inflation,
fail-closed decoding, and the rendering helpers."""

from __future__ import annotations

import hashlib
import io
import random
import re
import xml.etree.ElementTree as ET
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from credentials import jws, qr
from credentials.base45 import ALPHABET, b45decode, b45encode
from credentials.errors import CredentialError, Malformed, PayloadTooLarge
from keys.jwk import b64u_encode
from keys.signer import SoftwareSigner

# The sha-256 of DICTIONARY as shipped in format EL1. The dictionary is part of the format: if this
# test fails, the change needs a new prefix (EL2:) and the EL1 decoder must be kept as it was.
# Re-pinned once before EL1 was released, for the business licence's nested "registration" claim.
EL1_DICTIONARY_SHA256 = "6819cde60c612895f5d5c87c2d16c5a9f31f6d2c9052fb36d15b585773586d98"


def _presentation(*, alg: str = "ES256", disclose: int = 3, kb: bool = True, seed: int = 7) -> str:
    """A small hand-made SD-JWT (+KB): signed with credentials/jws.py, disclosures [salt, name, value]."""
    rnd = random.Random(seed)
    issuer, holder = SoftwareSigner.generate(alg), SoftwareSigner.generate(alg)
    claims = [("uscc", "91310000MA1FL7JX8Q"), ("name", "上海示例科技有限公司"), ("legal_representative", "张三"),
              ("domicile", "上海市浦东新区张江路100号")]
    disclosures = [b64u_encode(jws.dumps([b64u_encode(rnd.randbytes(16)), n, v])) for n, v in claims]
    payload = {
        "_sd": sorted(b64u_encode(hashlib.sha256(d.encode()).digest()) for d in disclosures),
        "iss": "https://issuer.example.gov.cn",
        "iat": 1767225600,
        "vct": "https://elicence.cn/vct/business-licence",
        "_sd_alg": "sha-256",
        "cnf": {"jwk": dict(holder.public_jwk)},
    }
    sd_jwt = jws.sign(payload, issuer, typ="dc+sd-jwt") + "~"
    sd_jwt += "".join(d + "~" for d in disclosures[:disclose])
    if not kb:
        return sd_jwt
    kb_payload = {
        "iat": 1767229200,
        "aud": "https://verifier.example",
        "nonce": b64u_encode(rnd.randbytes(16)),
        "sd_hash": b64u_encode(hashlib.sha256(sd_jwt.encode()).digest()),
    }
    return sd_jwt + jws.sign(kb_payload, holder, typ="kb+jwt", include_kid=False)


PRESENTATION = _presentation()


def _inflated(text: str) -> bytes:
    """The packing inside an EL1 text, read with only the public constants (an independent reader)."""
    assert text.startswith(qr.PREFIX)
    return zlib.decompressobj(-15, zdict=qr.DICTIONARY).decompress(b45decode(text[len(qr.PREFIX) :]))


def _el1(packing: bytes, *, zdict: bytes | None = qr.DICTIONARY, wbits: int = -15) -> str:
    """An EL1 text around any packing bytes (to reach the decoder's later stages)."""
    if zdict is None:
        c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    else:
        c = zlib.compressobj(9, zlib.DEFLATED, wbits, 9, zlib.Z_DEFAULT_STRATEGY, zdict)
    return qr.PREFIX + b45encode(c.compress(packing) + c.flush())


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def _malformed(text: object, code: str = "malformed") -> CredentialError:
    with pytest.raises(CredentialError) as err:
        qr.decode_payload(text)  # type: ignore[arg-type]
    assert err.value.code == code
    return err.value


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "presentation",
    [
        pytest.param(PRESENTATION, id="es256_kb"),
        pytest.param(_presentation(alg="EdDSA"), id="eddsa_kb"),
        pytest.param(_presentation(disclose=0), id="no_disclosure"),
        pytest.param(_presentation(disclose=4), id="all_disclosed"),
    ],
)
def test_sd_jwt_kb_round_trips_exactly_in_packed_mode(presentation: str) -> None:
    text = qr.encode_payload(presentation)
    assert text.startswith("EL1:") and set(text[4:]) <= set(ALPHABET)
    assert qr.decode_payload(text) == presentation
    packing = _inflated(text)
    assert packing[0] == 0x01
    assert packing[1] == presentation.count("~") - 1  # varint(N), N < 128 here


def test_sd_jwt_without_key_binding_uses_packed_mode_2() -> None:
    presentation = _presentation(kb=False)
    assert presentation.endswith("~")
    text = qr.encode_payload(presentation)
    assert _inflated(text)[0] == 0x02
    assert qr.decode_payload(text) == presentation


def test_packing_is_smaller_than_the_text_and_the_dictionary_helps() -> None:
    packing = _inflated(qr.encode_payload(PRESENTATION))
    assert len(packing) < 0.8 * len(PRESENTATION)  # base64url 4/3 overhead removed
    with_dict = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, qr.DICTIONARY)
    without = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    with_size = len(with_dict.compress(packing) + with_dict.flush())
    assert with_size < len(without.compress(packing) + without.flush())


def test_el1_dictionary_is_frozen() -> None:
    digest = hashlib.sha256(qr.DICTIONARY).hexdigest()
    assert digest == EL1_DICTIONARY_SHA256, "DICTIONARY changed: that is a new format version (EL2:)"


@pytest.mark.parametrize(
    "presentation",
    [
        pytest.param("", id="empty"),
        pytest.param("hello", id="no_tilde"),
        pytest.param("https://example.gov.cn/?q=1", id="url"),
        pytest.param("eyJhbGciOiJFUzI1NiJ9.e30~", id="jws_of_two_parts"),
        pytest.param("a.b.c~d~e.f", id="kb_of_two_parts"),
        pytest.param("AQ.AQ.AR~", id="non_canonical_pad_bits"),
        pytest.param("AQ.AQ.AQ==~", id="padding"),
        pytest.param("AQ.AQ.A+/~", id="base64_not_url"),
        pytest.param("AQ.AQ.AQ~~", id="empty_disclosure"),
        pytest.param("AQ..AQ~", id="empty_payload"),
        pytest.param("AQ.AQ.AQ~AQ.AQ.AQ.AQ", id="kb_of_four_parts"),
        pytest.param("AQ.AQ.AQ~x.y~", id="dot_in_disclosure"),
        pytest.param("营业执照~", id="non_ascii"),
        pytest.param(PRESENTATION + "\n", id="trailing_newline"),
        pytest.param(" " + PRESENTATION, id="leading_space"),
    ],
)
def test_unusual_structure_falls_back_to_plain_mode_and_round_trips(presentation: str) -> None:
    text = qr.encode_payload(presentation)
    assert _inflated(text)[0] == 0x00
    assert qr.decode_payload(text) == presentation


def test_packing_is_checked_by_a_round_trip_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were base64url decoding lenient (pad bits ignored), packing would alter the text: the round
    trip check in _pack sends such text to plain mode."""
    import base64

    monkeypatch.setattr(qr, "b64u_decode", lambda t: base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))
    presentation = "AQ.AQ.AR~AQ~"  # "AR": pad bits 0001, decodes to the byte of "AQ"
    text = qr.encode_payload(presentation)
    assert _inflated(text)[0] == 0x00
    assert qr.decode_payload(text) == presentation


# --------------------------------------------------------------------------- decoding fails closed


def test_wrong_prefix_is_malformed() -> None:
    text = qr.encode_payload(PRESENTATION)
    assert "does not start" in _malformed("HC1:" + text[4:]).detail
    assert "does not start" in _malformed("el1:" + text[4:]).detail
    _malformed(PRESENTATION)


def test_unknown_version_is_malformed_and_says_so() -> None:
    assert "version" in _malformed("EL2:" + qr.encode_payload(PRESENTATION)[4:]).detail


def test_invalid_base45_is_malformed() -> None:
    assert "alphabet" in _malformed(qr.encode_payload(PRESENTATION) + "a").detail
    assert "dangling" in _malformed(qr.PREFIX + "BB8A").detail
    assert "65535" in _malformed(qr.PREFIX + "GGW").detail


def test_truncated_stream_is_malformed() -> None:
    text = qr.encode_payload(PRESENTATION)
    assert "truncated" in _malformed(text[: 4 + 3 * 40]).detail


def test_bytes_after_the_stream_are_malformed() -> None:
    data = b45decode(qr.encode_payload(PRESENTATION)[4:])
    assert "follow" in _malformed(qr.PREFIX + b45encode(data + b"\x00")).detail


def test_zlib_framed_stream_is_malformed() -> None:
    _malformed(_el1(b"\x00hello", wbits=15))


def test_inflation_beyond_the_bound_is_payload_too_large() -> None:
    bomb = _el1(b"\x00" + b"A" * (qr.MAX_INFLATED_BYTES + 1))
    assert len(bomb) < 400  # a small QR code that would inflate to 64 KiB
    _malformed(bomb, "payload_too_large")
    # Exactly at the bound is accepted.
    at_bound = "A" * (qr.MAX_INFLATED_BYTES - 1)  # plus the mode byte
    assert qr.decode_payload(_el1(b"\x00" + at_bound.encode())) == at_bound


def test_text_beyond_the_bound_is_payload_too_large() -> None:
    _malformed(qr.PREFIX + "0" * qr.MAX_TEXT_CHARS, "payload_too_large")


@pytest.mark.parametrize("value", [None, b"EL1:", 12, ["EL1:"]])
def test_non_text_is_malformed(value: object) -> None:
    _malformed(value)


@pytest.mark.parametrize(
    ("packing", "message"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"\x07abc", "mode 0x07", id="unknown_mode"),
        pytest.param(b"\x00\xff\xfe", "UTF-8", id="plain_not_utf8"),
        pytest.param(b"\x01", "inside a length", id="no_count"),
        pytest.param(b"\x01\x80\x00", "non-minimal", id="non_minimal_varint"),
        pytest.param(b"\x01\xff\xff\xff\xff\x01", "over-long", id="over_long_varint"),
        pytest.param(b"\x01\x7f" + b"\x01A" * 6, "claims 127", id="count_beyond_data"),
        pytest.param(b"\x02\x00\x01A\x01B", "inside a length", id="missing_segment"),
        pytest.param(b"\x02\x00\x01A\x05BC", "inside a segment", id="segment_past_end"),
        pytest.param(b"\x02\x00\x01A\x00\x01C", "empty segment", id="empty_segment"),
        pytest.param(b"\x02\x00\x01A\x01B\x01C\x01D", "follow", id="trailing_bytes"),
        pytest.param(b"\x01\x00\x01A\x01B\x01C", "inside a length", id="kb_missing"),
    ],
)
def test_malformed_packing_is_rejected(packing: bytes, message: str) -> None:
    assert message in _malformed(_el1(packing)).detail


def test_handmade_packing_decodes_to_the_sd_jwt_form() -> None:
    segments = [b"h", b"p", b"s", b"d", b"H", b"P", b"S"]
    packing = b"\x01" + _varint(1) + b"".join(_varint(len(s)) + s for s in segments)
    assert qr.decode_payload(_el1(packing)) == "aA.cA.cw~ZA~SA.UA.Uw"


def test_encode_rejects_non_text_and_unencodable_text() -> None:
    with pytest.raises(Malformed) as err:
        qr.encode_payload(b"abc")  # type: ignore[arg-type]
    assert err.value.code == "malformed"
    with pytest.raises(Malformed) as err:
        qr.encode_payload("\ud800")
    assert err.value.code == "malformed"


def test_encode_refuses_what_the_decoder_would_refuse() -> None:
    with pytest.raises(PayloadTooLarge) as err:
        qr.encode_payload("x" * qr.MAX_INFLATED_BYTES)
    assert err.value.code == "payload_too_large"


def test_is_compact_payload() -> None:
    text = qr.encode_payload(PRESENTATION)
    assert qr.is_compact_payload(text)
    assert qr.is_compact_payload("EL2:ABC")  # another version: decode_payload explains
    for other in ["", "EL1:", "EL1:abc", "el1:ABC", "ELX:ABC", PRESENTATION, "https://x", None, b"EL1:AB"]:
        assert not qr.is_compact_payload(other)


# --------------------------------------------------------------------------- property tests

_B64U = st.binary(min_size=1, max_size=96).map(b64u_encode)
_JWS = st.tuples(_B64U, _B64U, _B64U).map(".".join)
_SD_JWT_SHAPED = st.tuples(_JWS, st.lists(_B64U, max_size=8), _JWS | st.just("")).map(
    lambda t: "~".join([t[0], *t[1], t[2]])
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_any_text_round_trips(text: str) -> None:
    assert qr.decode_payload(qr.encode_payload(text)) == text


@settings(max_examples=300, deadline=None)
@given(_SD_JWT_SHAPED)
def test_any_sd_jwt_shaped_text_round_trips_in_packed_mode(text: str) -> None:
    encoded = qr.encode_payload(text)
    assert _inflated(encoded)[0] == (0x01 if not text.endswith("~") else 0x02)
    assert qr.decode_payload(encoded) == text


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300) | st.text(alphabet=ALPHABET, max_size=300).map(lambda s: qr.PREFIX + s))
def test_decoding_any_text_raises_only_credential_errors(text: str) -> None:
    try:
        qr.decode_payload(text)
    except CredentialError as exc:
        assert exc.code in ("malformed", "payload_too_large")


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_decoding_any_stream_raises_only_credential_errors(data: bytes) -> None:
    try:
        qr.decode_payload(qr.PREFIX + b45encode(data))
    except CredentialError as exc:
        assert exc.code in ("malformed", "payload_too_large")


@settings(max_examples=500, deadline=None)
@given(st.tuples(st.sampled_from([b"\x00", b"\x01", b"\x02", b""]), st.binary(max_size=200)).map(b"".join))
def test_decoding_any_packing_raises_only_credential_errors(packing: bytes) -> None:
    try:
        decoded = qr.decode_payload(_el1(packing))
    except CredentialError as exc:
        assert exc.code == "malformed"
    else:
        assert isinstance(decoded, str)


# --------------------------------------------------------------------------- rendering


def _alnum_stream_bytes(chars: int, version: int) -> int:
    count_bits = 9 if version <= 9 else 11 if version <= 26 else 13
    return (4 + count_bits + 11 * (chars // 2) + 6 * (chars % 2) + 7) // 8


def test_qr_info_shows_one_alphanumeric_segment() -> None:
    text = qr.encode_payload(PRESENTATION)
    info = qr.qr_info(text)
    assert info.chars == len(text)
    assert info.modules == 17 + 4 * info.version
    assert info.bytes == _alnum_stream_bytes(len(text), info.version)
    # A run of digits stays in the single alphanumeric segment too.
    digits = "EL1:" + "1234567890" * 5
    assert qr.qr_info(digits).bytes == _alnum_stream_bytes(len(digits), 2)
    # Byte mode for anything else: 8 bits per character.
    assert qr.qr_info("el1:abc").bytes == (4 + 8 + 8 * 7 + 7) // 8


def test_higher_error_correction_needs_a_larger_symbol() -> None:
    text = qr.encode_payload(PRESENTATION)
    versions = [qr.qr_info(text, level).version for level in "LMQH"]
    assert versions == sorted(versions) and versions[0] < versions[-1]


def test_text_that_fits_no_qr_code_is_payload_too_large() -> None:
    with pytest.raises(PayloadTooLarge) as err:
        qr.qr_info("A" * 4000, "H")
    assert err.value.code == "payload_too_large"
    with pytest.raises(PayloadTooLarge):
        qr.render_png("A" * 4300)


def test_bad_rendering_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError):
        qr.qr_info("EL1:AB", "X")
    with pytest.raises(ValueError):
        qr.render_png("EL1:AB", scale=0)
    with pytest.raises(ValueError):
        qr.render_svg("EL1:AB", border=-1)


def test_png_has_the_requested_geometry_and_decodes() -> None:
    text = qr.encode_payload(PRESENTATION)
    info = qr.qr_info(text)
    img = Image.open(io.BytesIO(qr.render_png(text, scale=3, border=4)))
    assert img.format == "PNG" and img.size == ((info.modules + 8) * 3,) * 2
    assert img.getpixel((0, 0)) != 0 and img.getpixel((4 * 3, 4 * 3)) == 0  # quiet zone, finder corner
    assert qr.decode_image(img) == text
    assert qr.decode_payload(qr.decode_image(img)) == PRESENTATION


def _rasterise_svg(svg: str) -> Image.Image:
    """Paint the path of render_svg (M x y h w v1 h-w z runs) to pixels, 4 per unit."""
    root = ET.fromstring(svg)
    size = int(root.get("viewBox").split()[2])
    path = root.find("{http://www.w3.org/2000/svg}path")
    img = Image.new("L", (size * 4, size * 4), 255)
    for x, y, w in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", path.get("d")):
        img.paste(0, (int(x) * 4, int(y) * 4, (int(x) + int(w)) * 4, (int(y) + 1) * 4))
    return img


def test_svg_is_well_formed_and_its_path_decodes() -> None:
    text = qr.encode_payload(PRESENTATION)
    info = qr.qr_info(text)
    svg = qr.render_svg(text, scale=5, border=4)
    root = ET.fromstring(svg)
    assert root.get("width") == str((info.modules + 8) * 5)
    assert qr.decode_image(_rasterise_svg(svg)) == text


def _terminal_image(lines: str, *, ink_is_light: bool) -> Image.Image:
    rows = lines.rstrip("\n").split("\n")
    top = {" ": 0, "\u2580": 1, "\u2584": 0, "\u2588": 1}
    bottom = {" ": 0, "\u2580": 0, "\u2584": 1, "\u2588": 1}
    ink, paper = (255, 0) if ink_is_light else (0, 255)
    img = Image.new("L", (len(rows[0]) * 4, len(rows) * 8), paper)
    for y, row in enumerate(rows):
        for x, ch in enumerate(row):
            if top[ch]:
                img.paste(ink, (x * 4, y * 8, x * 4 + 4, y * 8 + 4))
            if bottom[ch]:
                img.paste(ink, (x * 4, y * 8 + 4, x * 4 + 4, y * 8 + 8))
    return img


@pytest.mark.parametrize("dark_background", [True, False])
def test_terminal_rendering_reads_back(dark_background: bool) -> None:
    text = qr.encode_payload(_presentation(disclose=1))
    out = qr.render_terminal(text, border=2, dark_background=dark_background)
    info = qr.qr_info(text)
    lines = out.rstrip("\n").split("\n")
    assert len(lines) == (info.modules + 4 + 1) // 2 and {len(line) for line in lines} == {info.modules + 4}
    # Drawn as a terminal shows it: light ink on black for a dark terminal, black on white otherwise.
    img = _terminal_image(out, ink_is_light=dark_background)
    assert qr.decode_image(img) == text
