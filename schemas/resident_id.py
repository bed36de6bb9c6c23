"""GB 11643-1999 citizen identity number (公民身份号码), the 18-character PRC resident ID number.

Layout::

    positions 1-6   address code: administrative division (GB/T 2260) where the number was issued
    positions 7-14  date of birth, YYYYMMDD (GB/T 7408)
    positions 15-17 sequence code; position 17 is odd for men and even for women
    position  18    check character, ISO 7064 MOD 11-2 (GB/T 17710): weights 2^(18-i) mod 11 for
                    positions i = 1..17, check = (12 - sum mod 11) mod 11, the value 10 written X

Checks here: 18 characters, 17 digits and a digit or capital X; a province-level prefix that exists
(the first two digits; the full six-digit division is not checked, since divisions are renamed while
numbers issued under old codes stay valid); a birth date that is a real calendar date, not before
1800 and, if ``today`` is given, not in the future; and the check character. The 2023 foreigner's
permanent residence ID card (外国人永久居留身份证) uses the same layout with 9 in position 1; it is
accepted too.

Failures raise :class:`schemas.errors.InvalidResidentId` (code ``schema_invalid``) with a stable
``reason`` and a bilingual message.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from schemas.errors import InvalidResidentId

__all__ = [
    "WEIGHTS",
    "PROVINCE_CODES",
    "ResidentId",
    "validate_resident_id",
    "is_valid_resident_id",
    "parse_resident_id",
    "resident_id_check_char",
    "make_resident_id",
]

#: ISO 7064 MOD 11-2 weights of positions 1-17: 2^(18-i) mod 11.
WEIGHTS: tuple[int, ...] = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK = "10X98765432"  # index: sum mod 11 -> check character

#: Province-level prefixes of GB/T 2260 (positions 1-2).
PROVINCE_CODES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
    "50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
# GB 11643-1999 gives 440524188001010014 (born 1880) as an example, so the floor is 1800.
_EARLIEST_BIRTH = dt.date(1800, 1, 1)


@dataclass(frozen=True)
class ResidentId:
    """A valid resident ID number split into its parts."""

    number: str
    region: str
    birthdate: dt.date
    sequence: str
    gender: str  # "male" or "female", from the parity of position 17
    check: str


def resident_id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of 17 digits.

    Raises :class:`InvalidResidentId` (reason ``length``/``character``) if ``first17`` is not 17
    ASCII digits.
    """
    if not isinstance(first17, str) or len(first17) != 17:
        raise InvalidResidentId(
            "length", "计算校验码需要前 17 位数字", "the check character needs exactly 17 digits"
        )
    _check_digits(first17)
    return _CHECK[sum(int(c) * w for c, w in zip(first17, WEIGHTS)) % 11]


def _check_digits(text: str) -> None:
    for i, c in enumerate(text, start=1):
        if not ("0" <= c <= "9"):
            raise InvalidResidentId(
                "character",
                f"第 {i} 位 {c!r} 应为数字",
                f"character {i} {c!r} must be a digit",
            )


def _parse(number: object, today: dt.date | None) -> ResidentId:
    if not isinstance(number, str):
        raise InvalidResidentId("type", "身份证号码应为文本", "an ID number must be a text string")
    if len(number) != 18:
        raise InvalidResidentId(
            "length",
            f"长度应为 18 位，实际为 {len(number)} 位",
            f"must be 18 characters long, got {len(number)}",
        )
    _check_digits(number[:17])
    last = number[17]
    if last == "x":
        raise InvalidResidentId(
            "lowercase",
            "第 18 位应为大写字母 X，而不是小写 x",
            "character 18 must be a capital X, not a lower-case x",
        )
    if not (last == "X" or "0" <= last <= "9"):
        raise InvalidResidentId(
            "character",
            f"第 18 位 {last!r} 应为数字或大写字母 X",
            f"character 18 {last!r} must be a digit or a capital X",
        )
    if number[:2] not in PROVINCE_CODES and number[0] != "9":
        raise InvalidResidentId(
            "region",
            f"前两位 '{number[:2]}' 不是省级行政区划代码",
            f"the first two digits '{number[:2]}' are not a province code",
        )
    try:
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        born = None
    if born is None or born < _EARLIEST_BIRTH or (today is not None and born > today):
        raise InvalidResidentId(
            "birthdate",
            f"第 7–14 位出生日期 '{number[6:14]}' 不是有效日期",
            f"characters 7-14, the date of birth '{number[6:14]}', are not a valid date",
        )
    expected = resident_id_check_char(number[:17])
    if last != expected:
        raise InvalidResidentId(
            "check",
            f"校验码错误：按前 17 位计算，第 18 位应为 '{expected}'，实际为 '{last}'；"
            "请核对整个号码是否有录入错误",
            f"check character is wrong: from the first 17 digits, character 18 should be "
            f"'{expected}', not '{last}'; check the whole number for a typing error",
            expected=expected,
        )
    gender = "male" if int(number[16]) % 2 else "female"
    return ResidentId(number, number[:6], born, number[14:17], gender, last)


def validate_resident_id(number: object, *, today: dt.date | None = None) -> None:
    """Check a resident ID number against GB 11643-1999.

    Raises :class:`InvalidResidentId` with ``reason`` one of ``type``, ``length``, ``character``,
    ``lowercase``, ``region``, ``birthdate``, ``check`` (``expected`` then holds the right one).
    """
    _parse(number, today)


def is_valid_resident_id(number: object, *, today: dt.date | None = None) -> bool:
    """``True`` if :func:`validate_resident_id` accepts ``number``; never raises."""
    try:
        _parse(number, today)
    except InvalidResidentId:
        return False
    return True


def parse_resident_id(number: object, *, today: dt.date | None = None) -> ResidentId:
    """Validate ``number`` and split it into region, birth date, sequence, gender and check.

    Raises :class:`InvalidResidentId`.
    """
    return _parse(number, today)


def make_resident_id(*, region: str, birthdate: dt.date, sequence: int) -> str:
    """Build a valid ID number; ``sequence`` 0-999 (odd for a man, even for a woman).

    Raises :class:`InvalidResidentId` if ``region`` is not six digits with a province prefix, the
    birth date is before 1800, or the sequence is out of range.
    """
    if not (0 <= sequence <= 999):
        raise InvalidResidentId(
            "sequence", "顺序码应在 000–999 之间", "the sequence code must be between 000 and 999"
        )
    if not (isinstance(region, str) and len(region) == 6 and region.isascii() and region.isdigit()):
        raise InvalidResidentId(
            "region", "地址码应为 6 位数字", "the address code must be six digits"
        )
    first17 = f"{region}{birthdate.year:04d}{birthdate.month:02d}{birthdate.day:02d}{sequence:03d}"
    number = first17 + resident_id_check_char(first17)
    _parse(number, None)
    return number
