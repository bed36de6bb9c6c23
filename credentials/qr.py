"""The compact offline QR payload of an SD-JWT presentation, and QR rendering and reading.

At a counter without network the wallet shows a short-lived SD-JWT+KB presentation (RFC 9901 s4:
``<Issuer-signed JWT>~<Disclosure 1>~...~<Disclosure N>~<KB-JWT>``) as one QR code. The text form
of the QR, version 1 (``EL1:``), is the approach of the EU Digital COVID Certificate (prefix,
DEFLATE, Base45 in QR alphanumeric mode) adapted to JWS parts::

    "EL1:" || Base45( raw DEFLATE( packing, preset dictionary DICTIONARY ) )

* Base45 (RFC 9285, :mod:`credentials.base45`) uses only the 45 characters of QR alphanumeric mode,
  which costs 5.5 bits per character: 8 bits of payload cost 8.25 bits of QR data, against 10.67
  for Base64 text in byte mode.
* DEFLATE is RFC 1951 raw (``wbits=-15``): the 2-byte zlib header and 4-byte Adler-32 of RFC 1950
  buy nothing here, since every JWS carries its own integrity. The preset dictionary
  :data:`DICTIONARY` holds the JSON that recurs in every eLicence presentation.
* The packing is a mode byte and then:

  - ``0x00`` plain: the UTF-8 text itself;
  - ``0x01`` packed SD-JWT+KB and ``0x02`` packed SD-JWT without key binding (text ending in
    ``~``): ``varint(N)`` disclosures, then the segments, each ``varint(length) || bytes``: the
    issuer JWS header, payload and signature; the N disclosures; for ``0x01`` the KB-JWT header,
    payload and signature. Each segment is the base64url-decoded bytes of that part, so DEFLATE sees
    the JSON (which compresses) rather than its base64url (which does not).

  Varints are unsigned LEB128, minimal, at most 4 bytes. The packed form is used only when it gives
  back exactly the same text: every part canonical base64url (RFC 7515 s2, no padding, zero pad
  bits), every part non-empty, three segments per JWS. Anything else travels in plain mode, so the
  round trip is exact for every string.

The dictionary is part of the format: changing a byte of it, or the packing, needs a new prefix
(``EL2:``) with the old decoder kept. Decoding fails closed: every failure raises a
:class:`~credentials.errors.CredentialError` subclass (``malformed``, or ``payload_too_large`` for
an input or an inflation beyond the bounds below), never another exception.

Both directions use ``zxing-cpp``: its writer is libzint (an encoder written apart from zxing's
reader), which chooses the segments (one alphanumeric segment for an ``EL1:`` text) and the mask
pattern in C, in about 2 ms for a version-19 symbol where the pure-Python ``qrcode`` library took
about 48 ms, most of it in trying the eight masks; the reader takes a PIL image directly (no numpy).
The tests cross-check both with ``qrcode`` as a third, independent encoder.
"""

from __future__ import annotations

import io
import os
import re
import warnings
import zlib
from dataclasses import dataclass
from collections.abc import Iterable
from typing import TYPE_CHECKING, Union

import zxingcpp
from PIL import Image

from credentials.base45 import ALPHABET as BASE45_ALPHABET
from credentials.base45 import b45decode, b45encode
from credentials import sd_jwt
from credentials.errors import Malformed, PayloadTooLarge
from keys.jwk import b64u_decode, b64u_encode

if TYPE_CHECKING:
    from keys.signer import Signer

__all__ = [
    "PREFIX",
    "DICTIONARY",
    "MAX_TEXT_CHARS",
    "MAX_INFLATED_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_FILE_BYTES",
    "QrInfo",
    "encode_payload",
    "decode_payload",
    "is_compact_payload",
    "render_png",
    "render_svg",
    "render_terminal",
    "qr_info",
    "decode_image",
    "OFFLINE_AUDIENCE",
    "OFFLINE_FRESHNESS",
    "present_offline",
]

#: Text prefix of format version 1. Upper case and ``:`` keep it in the QR alphanumeric set.
PREFIX = "EL1:"

#: Longest text accepted by :func:`decode_payload`: about twice the 4,296 alphanumeric characters of
#: the largest QR code (version 40-L), so nothing a QR can carry is refused.
MAX_TEXT_CHARS = 8192

#: Bound on the inflated packing, checked while inflating (a DEFLATE bomb stops at this size).
MAX_INFLATED_BYTES = 64 * 1024

#: Largest image :func:`decode_image` looks at by default (a 48-megapixel phone photo passes).
MAX_IMAGE_PIXELS = 64_000_000

#: Largest image file :func:`decode_image` reads from a path.
MAX_IMAGE_FILE_BYTES = 64 * 1024 * 1024

_MODE_PLAIN = 0x00
_MODE_PACKED_KB = 0x01
_MODE_PACKED = 0x02

_MAX_VARINT_BYTES = 4  # 2**28 > MAX_INFLATED_BYTES
_RAW_DEFLATE = -15  # RFC 1951 stream, no RFC 1950 header or Adler-32

# Strings that recur in every eLicence presentation, for the DEFLATE preset dictionary. zlib finds
# matches anywhere in the dictionary, and nearer the end they cost fewer bits (shorter distances):
# the order is roughly from the rarest to the most common. Claim names are those of schemas/types/
# (the business licence last, as the most shown); payload order is that of credentials/sd_jwt.py
# (claims, then "_sd", "_sd_alg", "cnf"). A fragment that is not used costs a little compression,
# never correctness.
_DICTIONARY_FRAGMENTS: tuple[str, ...] = (
    # Other credential types (natural person, staff authorisation, food business permit).
    '","age_over_18",true',
    '","age_over_60",',
    '","nationality","CN"',
    '","id_number","',
    '","birthdate","',
    '","gender","',
    '"enterprise_uscc":"',
    '"enterprise_name":"',
    '"staff_name":"',
    '","staff_account","',
    '","scope",["',
    '","valid_from","',
    '","valid_until","',
    '","granted_by","',
    '","licence_status","',
    '"permit_number":"',
    '"operator_name":"',
    '","business_premises","',
    '","main_business_format","',
    '","business_items","',
    '","valid_to","',
    '","issuing_authority","',
    # Values that recur in Chinese business licences (UTF-8, as credentials/jws.py dumps() writes).
    "一般项目：许可项目：技术服务、技术开发、技术咨询、技术交流、技术转让、技术推广；销售；",
    "（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）",
    "（依法须经批准的项目，经相关部门批准后方可开展经营活动）",
    "个体工商户个人独资企业合伙企业股份有限公司有限责任公司（自然人投资或控股）（自然人独资）",
    "市场监督管理局",
    "省市区县镇路号室",
    # Business licence: the register fields are members of "registration", one selectively
    # disclosable object whose members are each selectively disclosable (RFC 9901 s4.2.6): its
    # Disclosure ["<salt>","registration",{"_sd":[...]}], then one per member disclosed,
    # ["<salt>","<member>",<value>].
    '","registration",{"_sd":["',
    '","registration_authority","',
    '","issue_date","',
    '","business_scope","',
    '","domicile","',
    '","business_term",{"from":"',
    '","to":null,"long_term":true}',
    '","long_term":false}',
    '","establishment_date","',
    '","registered_capital",{"amount":"',
    '","currency":"CNY"}',
    '","entity_type","',
    # Issuer-signed JWT payload (SD-JWT VC): claims always disclosed, then the SD-JWT members (for the
    # business licence: legal_representative, then the one digest of "registration").
    '"iss":"https://',
    '"nbf":',
    '"exp":',
    '"vct":"https://elicence.cn/vct/',
    '"status":{"status_list":{"idx":',
    ',"uri":"https://',
    '"vct":"https://elicence.cn/vct/business-licence"',
    '"uscc":"',
    '","name":"',
    '","legal_representative":"',
    '{"...":"',
    '","_sd":["',
    '"],"_sd_alg":"sha-256","cnf":{"jwk":{"kty":"OKP","crv":"Ed25519","x":"',
    '"],"_sd_alg":"sha-256","cnf":{"jwk":{"kty":"EC","crv":"P-256","x":"',
    '","y":"',
    '","',
    # JOSE headers (credentials/jws.py order first, the order of other implementations after).
    '{"typ":"kb+jwt","alg":"ES256"}',
    '{"alg":"EdDSA","typ":"kb+jwt"}',
    '{"alg":"EdDSA","typ":"dc+sd-jwt","kid":"',
    '{"alg":"ES256","typ":"dc+sd-jwt","kid":"',
    # Key binding JWT payload (RFC 9901 s4.3), in the order of credentials/sd_jwt.py present().
    '{"iat":',
    ',"aud":"',
    '","nonce":"',
    '","sd_hash":"',
    '{"alg":"ES256","typ":"kb+jwt"}',
)

#: The DEFLATE preset dictionary of format version 1 (``EL1:``). Frozen: see the module docstring.
DICTIONARY: bytes = "".join(_DICTIONARY_FRAGMENTS).encode("utf-8")

_COMPACT_RE = re.compile(r"EL[0-9]:[" + re.escape(BASE45_ALPHABET) + r"]+")
_PREFIX_RE = re.compile(r"EL[0-9]:")
_ALNUM_RE = re.compile(r"[" + re.escape(BASE45_ALPHABET) + r"]*")
_EC_LEVELS = frozenset("LMQH")


# --------------------------------------------------------------------------- packing


def _write_varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise Malformed("packed payload ends inside a length")
        byte = data[pos + i]
        n |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise Malformed("packed payload has a non-minimal length")
            return n, pos + i + 1
    raise Malformed("packed payload has an over-long length")


def _b64u_segment(text: str) -> bytes | None:
    """The bytes of a non-empty base64url part, or None (then plain mode is used)."""
    if not text:
        return None
    try:
        return b64u_decode(text)
    except ValueError:
        return None


def _jws_segments(token: str) -> list[bytes] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segments = [_b64u_segment(p) for p in parts]
    return None if any(s is None for s in segments) else segments  # type: ignore[return-value]


def _pack_structured(text: str) -> bytes | None:
    # RFC 9901 s4: <Issuer-signed JWT>~<Disclosure 1>~...~<Disclosure N>~<optional KB-JWT>
    parts = text.split("~")
    if len(parts) < 2:
        return None
    issuer = _jws_segments(parts[0])
    if issuer is None:
        return None
    disclosures = [_b64u_segment(d) for d in parts[1:-1]]
    if any(d is None for d in disclosures):
        return None
    segments: list[bytes] = issuer + disclosures  # type: ignore[operator]
    if parts[-1]:
        kb = _jws_segments(parts[-1])
        if kb is None:
            return None
        segments += kb
        mode = _MODE_PACKED_KB
    else:
        mode = _MODE_PACKED
    out = bytearray([mode])
    _write_varint(out, len(disclosures))
    for segment in segments:
        _write_varint(out, len(segment))
        out += segment
    return bytes(out)


def _pack(text: str) -> bytes:
    """The packing of ``text``: structured when that round-trips exactly, plain otherwise."""
    packed = _pack_structured(text)
    # Exactness is checked, not assumed: a part that decodes but does not re-encode to the same text
    # (non-zero pad bits, another alphabet) would change the presentation, and its signatures.
    if packed is not None and _unpack(packed) == text:
        return packed
    try:
        return bytes([_MODE_PLAIN]) + text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Malformed("presentation text is not encodable as UTF-8") from exc


def _unpack(data: bytes) -> str:
    """Inverse of :func:`_pack`; raises ``Malformed``."""
    if not data:
        raise Malformed("empty packed payload")
    mode = data[0]
    if mode == _MODE_PLAIN:
        try:
            return data[1:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Malformed("plain payload is not UTF-8") from exc
    if mode not in (_MODE_PACKED_KB, _MODE_PACKED):
        raise Malformed(f"unknown packing mode 0x{mode:02x}")
    count, pos = _read_varint(data, 1)
    # Each segment takes at least two bytes (a length and one byte): a cheap bound before reading.
    if count > len(data) // 2:
        raise Malformed(f"packed payload claims {count} disclosures in {len(data)} bytes")
    total = 3 + count + (3 if mode == _MODE_PACKED_KB else 0)
    parts: list[str] = []
    for _ in range(total):
        length, pos = _read_varint(data, pos)
        if length == 0:
            raise Malformed("packed payload has an empty segment")
        if pos + length > len(data):
            raise Malformed("packed payload ends inside a segment")
        parts.append(b64u_encode(data[pos : pos + length]))
        pos += length
    if pos != len(data):
        raise Malformed(f"{len(data) - pos} bytes follow the last packed segment")
    issuer = ".".join(parts[:3])
    disclosures = parts[3 : 3 + count]
    kb = ".".join(parts[3 + count :])  # "" without key binding: the text then ends with "~"
    return "~".join([issuer, *disclosures, kb])


# --------------------------------------------------------------------------- compact payload


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, _RAW_DEFLATE, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    return compressor.compress(data) + compressor.flush()


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj(_RAW_DEFLATE, zdict=DICTIONARY)
    try:
        out = inflater.decompress(data, MAX_INFLATED_BYTES + 1)
    except zlib.error as exc:
        raise Malformed(f"payload is not a valid DEFLATE stream: {exc}") from exc
    if len(out) > MAX_INFLATED_BYTES:
        raise PayloadTooLarge(f"payload inflates beyond {MAX_INFLATED_BYTES} bytes")
    if not inflater.eof:
        raise Malformed("DEFLATE stream is truncated")
    if inflater.unused_data:
        raise Malformed(f"{len(inflater.unused_data)} bytes follow the DEFLATE stream")
    return out


def encode_payload(presentation: str) -> str:
    """The ``EL1:`` QR text of a presentation; raises ``Malformed`` (not text) or ``PayloadTooLarge``."""
    if not isinstance(presentation, str):
        raise Malformed("presentation must be text")
    packed = _pack(presentation)
    if len(packed) > MAX_INFLATED_BYTES:
        # The decoder would refuse it: refuse it here rather than issue an unreadable code.
        raise PayloadTooLarge(f"presentation packs to {len(packed)} bytes, above {MAX_INFLATED_BYTES}")
    return PREFIX + b45encode(_deflate(packed))


def decode_payload(text: str) -> str:
    """The presentation carried by an ``EL1:`` QR text; raises ``Malformed`` or ``PayloadTooLarge``."""
    if not isinstance(text, str):
        raise Malformed("compact payload must be text")
    if len(text) > MAX_TEXT_CHARS:
        raise PayloadTooLarge(f"compact payload of {len(text)} characters exceeds {MAX_TEXT_CHARS}")
    if not text.startswith(PREFIX):
        if _PREFIX_RE.match(text):
            raise Malformed(
                f"unsupported compact payload version {text[:3]!r} (this decoder reads {PREFIX[:3]})"
            )
        raise Malformed(f"not an eLicence compact payload: it does not start with {PREFIX!r}")
    return _unpack(_inflate(b45decode(text[len(PREFIX) :])))


def is_compact_payload(text: object) -> bool:
    """Whether ``text`` has the shape of a compact payload of any version (``EL<digit>:`` + Base45).

    A cheap test to route scanned text; :func:`decode_payload` still decides whether it is valid.
    """
    return isinstance(text, str) and _COMPACT_RE.fullmatch(text) is not None


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True, slots=True)
class QrInfo:
    """Size of the QR code for a text: ``version`` 1-40, ``modules`` per side (17 + 4 x version),
    ``chars`` in the text, and ``bytes`` of the QR data bit stream (mode and length headers
    included, rounded up), to compare with the capacity of the version."""

    version: int
    modules: int
    chars: int
    bytes: int


@dataclass(frozen=True, slots=True)
class _Symbol:
    """A QR symbol as ``n`` x ``n`` bytes, row by row, 0 for a dark module and 255 for a light one."""

    n: int
    modules: bytes

    @property
    def version(self) -> int:
        return (self.n - 17) // 4

    def rows(self) -> list[bytes]:
        return [self.modules[y * self.n:(y + 1) * self.n] for y in range(self.n)]


def _symbol(text: str, error_correction: str) -> _Symbol:
    if not isinstance(text, str):
        raise TypeError("QR text must be str")
    if not isinstance(error_correction, str) or error_correction not in _EC_LEVELS:
        raise ValueError(f"error_correction must be one of L, M, Q, H, not {error_correction!r}")
    try:
        code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=error_correction)
    except ValueError as exc:  # zint: "Input too long for ECC level ..."
        raise PayloadTooLarge(
            f"{len(text)} characters do not fit in a QR code at error correction {error_correction}"
        ) from exc
    image = memoryview(code.to_image(scale=1, add_quiet_zones=False))
    return _Symbol(image.shape[0], image.tobytes())


def _data_bits(text: str, version: int) -> int:
    """Bits of ``text`` as one segment (ISO/IEC 18004 s7.4): mode indicator, character count, data."""
    if _ALNUM_RE.fullmatch(text):
        # s7.4.4: 11 bits per pair of characters, 6 for a last single one.
        count_bits = 9 if version <= 9 else 11 if version <= 26 else 13
        return 4 + count_bits + 11 * (len(text) // 2) + 6 * (len(text) % 2)
    data = text.encode("utf-8")
    return 4 + (8 if version <= 9 else 16) + 8 * len(data)


def _check_geometry(scale: int, border: int) -> None:
    if not isinstance(scale, int) or scale < 1:
        raise ValueError("scale must be a positive number of pixels per module")
    if not isinstance(border, int) or border < 0:
        raise ValueError("border must be a non-negative number of modules")


def qr_info(text: str, error_correction: str = "M") -> QrInfo:
    """Version and size of the QR code for ``text``; raises ``PayloadTooLarge`` if none fits.

    ``bytes`` counts the text as one segment (alphanumeric when every character allows it, else
    byte mode); the encoder may split other texts into cheaper segments, never into dearer ones.
    """
    symbol = _symbol(text, error_correction)
    return QrInfo(version=symbol.version, modules=symbol.n, chars=len(text),
                  bytes=(_data_bits(text, symbol.version) + 7) // 8)


def render_png(text: str, *, scale: int = 8, border: int = 4, error_correction: str = "M") -> bytes:
    """A black-on-white PNG of the QR code, ``scale`` pixels per module, ``border`` modules of quiet
    zone (ISO/IEC 18004 asks for 4); raises ``PayloadTooLarge`` if the text does not fit."""
    _check_geometry(scale, border)
    symbol = _symbol(text, error_correction)
    size = symbol.n + 2 * border
    img = Image.new("L", (size, size), 255)
    img.paste(Image.frombytes("L", (symbol.n, symbol.n), symbol.modules), (border, border))
    if scale > 1:
        img = img.resize((size * scale, size * scale), Image.Resampling.NEAREST)
    img = img.convert("1", dither=Image.Dither.NONE)
    buf = io.BytesIO()
    # PNG's optimize pass would take 4 ms more to save about 6 % of 3 kB.
    img.save(buf, format="PNG")
    return buf.getvalue()


def render_svg(text: str, *, scale: int = 8, border: int = 4, error_correction: str = "M") -> str:
    """An SVG document of the QR code (one path, horizontal runs of dark modules), ``scale`` pixels
    per module; raises ``PayloadTooLarge`` if the text does not fit."""
    _check_geometry(scale, border)
    symbol = _symbol(text, error_correction)
    size = symbol.n + 2 * border
    commands: list[str] = []
    for y, row in enumerate(symbol.rows()):
        x = 0
        while x < len(row):
            if row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and not row[x]:
                x += 1
            commands.append(f"M{start + border} {y + border}h{x - start}v1h-{x - start}z")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size * scale}" height="{size * scale}" '
        f'viewBox="0 0 {size} {size}" shape-rendering="crispEdges">'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(commands)}"/></svg>'
    )


def render_terminal(
    text: str, *, border: int = 2, dark_background: bool = True, error_correction: str = "M"
) -> str:
    """The QR code as lines of half-block characters, two modules rows per line.

    Block characters are ink. With ``dark_background`` (the default, most terminals) the light
    modules and the quiet zone are inked, so the code reads dark-on-light on screen; set it to False
    for a light terminal. Raises ``PayloadTooLarge`` if the text does not fit.
    """
    _check_geometry(1, border)
    symbol = _symbol(text, error_correction)
    n, modules = symbol.n, symbol.modules
    size = n + 2 * border

    def ink(x: int, y: int) -> bool:
        if y >= size:
            return False  # below the last row of an odd-sized symbol: leave the terminal as it is
        dark = border <= x < n + border and border <= y < n + border and not modules[(y - border) * n + x - border]
        return (not dark) if dark_background else dark

    glyphs = {(False, False): " ", (True, False): "\u2580", (False, True): "\u2584", (True, True): "\u2588"}
    lines = []
    for y in range(0, size, 2):
        lines.append("".join(glyphs[(ink(x, y), ink(x, y + 1))] for x in range(size)))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- reading


#: What :func:`decode_image` reads: encoded image bytes (PNG, JPEG, ...), a PIL image, or a path.
ImageInput = Union[bytes, bytearray, Image.Image, str, "os.PathLike[str]"]


def _open_image(image: ImageInput) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, os.PathLike)):
        size = os.stat(image).st_size
        if size > MAX_IMAGE_FILE_BYTES:
            raise PayloadTooLarge(f"image file of {size} bytes exceeds {MAX_IMAGE_FILE_BYTES}")
        with open(image, "rb") as fh:
            image = fh.read()
    if not isinstance(image, (bytes, bytearray)):
        raise Malformed(f"cannot read a QR code from {type(image).__name__}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(bytes(image)))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"image is too large: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # UnidentifiedImageError is an OSError
        raise Malformed(f"not a readable image: {exc}") from exc


def _grey(img: Image.Image, max_pixels: int) -> Image.Image:
    if img.width * img.height > max_pixels:
        raise PayloadTooLarge(f"image of {img.width}x{img.height} pixels exceeds {max_pixels} pixels")
    try:
        if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
            # A transparent screenshot: put it on white, else transparent black pixels read as dark.
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        return img.convert("L")
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data shows up on load
        raise Malformed(f"image data cannot be decoded: {exc}") from exc


def decode_image(image: ImageInput, *, max_pixels: int = MAX_IMAGE_PIXELS) -> str:
    """The text of the QR code in an image (encoded bytes, a PIL image, or a file path).

    With several QR codes, the one with an eLicence prefix is taken. Raises ``Malformed`` if the
    image is unreadable, holds no QR code, or several different candidates; ``PayloadTooLarge``
    above ``max_pixels``; ``OSError`` if a path cannot be read.
    """
    grey = _grey(_open_image(image), max_pixels)
    try:
        found = zxingcpp.read_barcodes(grey, formats=zxingcpp.BarcodeFormat.QRCode)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise Malformed(f"the QR reader failed on this image: {exc}") from exc
    texts = list(dict.fromkeys(b.text for b in found if b.valid))
    if not texts:
        raise Malformed("no QR code found in the image (too small, blurred, cut off or low contrast?)")
    if len(texts) == 1:
        return texts[0]
    ours = [t for t in texts if is_compact_payload(t)]
    if len(ours) == 1:
        return ours[0]
    raise Malformed(
        f"the image holds {len(texts)} different QR codes"
        + (f", {len(ours)} of them eLicence codes" if ours else ", none of them an eLicence code")
        + ": show one code at a time"
    )


# --- the offline presentation profile ---------------------------------------------------------------

#: The KB-JWT ``aud`` of an offline QR presentation. The wallet does not know which counter will scan
#: the code, so the audience names the channel; freshness (``iat`` within :data:`OFFLINE_FRESHNESS`)
#: and the verifier's replay cache take the place of a verifier-chosen nonce.
OFFLINE_AUDIENCE = "urn:elicence:offline"
#: Seconds an offline QR presentation stays acceptable after its KB-JWT ``iat`` (the code refreshes).
OFFLINE_FRESHNESS = 300


def present_offline(
    credential: str,
    *,
    disclose: Iterable[object],
    holder_signer: "Signer",
    now: int,
    nonce: str,
) -> str:
    """A fresh key-bound presentation of the chosen claims, as the ``EL1:`` QR text.

    ``nonce`` must be unpredictable and used once (the verifier's replay cache keys on the KB-JWT);
    pass ``secrets.token_urlsafe(8)`` or similar. Raises the errors of :func:`sd_jwt.present` and
    :func:`encode_payload`.
    """
    presentation = sd_jwt.present(
        credential, disclose=disclose, holder_signer=holder_signer, aud=OFFLINE_AUDIENCE, nonce=nonce, now=now
    )
    return encode_payload(presentation)
