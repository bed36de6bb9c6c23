"""The Base45 data encoding, RFC 9285 (August 2022).

Base45 carries binary data in the 45 characters of the QR code alphanumeric mode, which stores 5.5
bits per character (11 bits per pair) against 8 bits per character in byte mode: the compact offline
QR payload of :mod:`credentials.qr` is Base45 text.

Decoding is strict: a character outside Table 1, a length of 3n+1, a three-character group whose
value exceeds 65535 and a final two-character group whose value exceeds 255 are all refused with
``malformed``, so every accepted text is the one canonical encoding of its bytes.
"""

from __future__ import annotations

from credentials.errors import Malformed

__all__ = ["ALPHABET", "b45encode", "b45decode"]

#: RFC 9285 s4.2, Table 1: value i is ``ALPHABET[i]``.
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

_VALUES: dict[str, int] = {c: i for i, c in enumerate(ALPHABET)}


def b45encode(data: bytes) -> str:
    """Encode bytes as Base45 text (RFC 9285 s4); raises ``TypeError`` for a non-bytes argument."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("b45encode takes bytes")
    data = bytes(data)
    out: list[str] = []
    # RFC 9285 s4: "From left to right pairs of bytes MUST be encoded as described above."
    for i in range(0, len(data) - 1, 2):
        # "two bytes [a, b] MUST be interpreted as a number n in base 256 ... n = (a * 256) + b"
        # converted to [c, d, e] with n = c + (d * 45) + (e * 45 * 45), least significant first.
        n = data[i] * 256 + data[i + 1]
        e, rest = divmod(n, 45 * 45)
        d, c = divmod(rest, 45)
        out.append(ALPHABET[c] + ALPHABET[d] + ALPHABET[e])
    if len(data) % 2:
        # "If the number of bytes is odd, then the last (rightmost) byte MUST be encoded on two
        # characters": a = c + (45 * d).
        d, c = divmod(data[-1], 45)
        out.append(ALPHABET[c] + ALPHABET[d])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Decode Base45 text strictly (RFC 9285 s4, s6); raises ``Malformed`` on any invalid input."""
    if not isinstance(text, str):
        raise Malformed("Base45 input must be text")
    try:
        values = [_VALUES[ch] for ch in text]
    except KeyError as exc:
        # RFC 9285 s3 interprets encoded data as RFC 4648 does, whose s3.3 says: "Implementations
        # MUST reject the encoded data if it contains characters outside the base alphabet".
        bad = exc.args[0]
        at = text.index(bad)
        raise Malformed(f"character {bad!r} at offset {at} is not in the Base45 alphabet") from exc
    if len(values) % 3 == 1:
        # Encoding yields 3 characters per pair and 2 for a final single byte: 3n+1 cannot occur.
        raise Malformed(f"Base45 text of length {len(values)} has a dangling character")
    out = bytearray()
    full = len(values) - len(values) % 3
    for i in range(0, full, 3):
        # "For decoding a Base45 encoded string the inverse operations are performed": a group
        # stands for an unsigned 16-bit integer, so a larger value is no encoding of anything.
        n = values[i] + values[i + 1] * 45 + values[i + 2] * 45 * 45
        if n > 0xFFFF:
            raise Malformed(f"Base45 group {text[i:i + 3]!r} at offset {i} exceeds 65535")
        out += n.to_bytes(2, "big")
    if full < len(values):
        n = values[full] + values[full + 1] * 45
        if n > 0xFF:
            raise Malformed(f"final Base45 pair {text[full:]!r} exceeds 255")
        out.append(n)
    return bytes(out)
