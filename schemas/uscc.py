"""GB 32100-2015 unified social credit code (法人和其他组织统一社会信用代码) validation.

The code has 18 characters from a 31-character set (digits and capital letters without I, O, S, V,
Z)::

    position  1      2      3-8                9-17                        18
              dept.  categ. region (GB/T 2260)  organisation code (GB 11714) check character

- Position 1, registration management department (登记管理部门代码), and position 2, category of the
  organisation (机构类别代码), come from a published table. The 2015 text of the standard lists the
  departments 1 (机构编制), 5 (民政), 9 (工商) and Y (其他); departments 2-4, 6-8, A and N have been
  assigned since. :data:`DEPARTMENTS` holds the table as currently published; a code whose first two
  characters are not in it is refused, because no registry can have issued it.
- Positions 3-8 are the administrative division code of the registration authority; only "six
  digits" is checked (``100000`` is used for national-level registrations, and divisions are renamed
  over time, so a list of valid divisions would go stale).
- Positions 9-17 are a GB 11714 organisation code: an 8-character body and its own check character,
  weights 3, 7, 9, 10, 5, 8, 4, 2 over values 0-9, A=10 ... Z=35; check = 11 - (sum mod 11), where
  10 is written X and 11 is written 0.
- Position 18 is the check character of GB 32100 (a pure ISO 7064 / GB/T 17710 system modulo 31):
  weights 3^(i-1) mod 31 for positions 1-17 over the values of the 31-character set;
  check = 31 - (sum mod 31), where 31 is written 0.

Position 17 is both the organisation-code check and an input of the USCC check, so
:func:`make_uscc` computes the organisation check first and the USCC check last.

Every failure raises :class:`schemas.errors.InvalidUscc` (code ``schema_invalid``) with a stable
``reason`` and a message a registry clerk understands, in Chinese and English.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from schemas.errors import InvalidUscc

__all__ = [
    "ALPHABET",
    "WEIGHTS",
    "ORG_WEIGHTS",
    "DEPARTMENTS",
    "Department",
    "Uscc",
    "validate_uscc",
    "is_valid_uscc",
    "parse_uscc",
    "uscc_check_char",
    "org_code_check_char",
    "make_uscc",
]

#: The GB 32100 code character set; a character's value is its index (A=10 ... Y=30).
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_CHARSET = frozenset(ALPHABET)
#: Weights of positions 1-17: 3^(i-1) mod 31.
WEIGHTS: tuple[int, ...] = tuple(pow(3, i, 31) for i in range(17))
#: GB 11714 weights of the eight body characters of the organisation code.
ORG_WEIGHTS: tuple[int, ...] = (3, 7, 9, 10, 5, 8, 4, 2)
_FORBIDDEN = frozenset("IOSVZ")
# The excluded letters are left out because they are read as digits; suggest the digit.
_LOOKALIKE = {"I": "1", "O": "0", "S": "5", "Z": "2"}
_LENGTH = 18


@dataclass(frozen=True)
class Department:
    """A registration management department (position 1) and its organisation categories."""

    code: str
    name_zh: str
    name_en: str
    categories: dict[str, tuple[str, str]] = field(compare=False)  # code -> (zh, en)


def _dept(code: str, zh: str, en: str, **cats: tuple[str, str]) -> Department:
    return Department(code, zh, en, {k[1:]: v for k, v in cats.items()})


#: Position 1 -> department, with the categories (position 2) it may register.
DEPARTMENTS: dict[str, Department] = {
    d.code: d
    for d in (
        _dept(
            "1", "机构编制", "institutional establishment",
            c1=("机关", "government organ"),
            c2=("事业单位", "public institution"),
            c3=("中央编办直接管理机构编制的群众团体", "mass organisation (central establishment)"),
            c9=("其他", "other"),
        ),
        _dept("2", "外交", "foreign affairs",
              c1=("外国常住新闻机构", "resident foreign news agency"), c9=("其他", "other")),
        _dept(
            "3", "司法行政", "justice administration",
            c1=("律师执业机构", "law firm"),
            c2=("公证处", "notary office"),
            c3=("基层法律服务所", "grassroots legal service office"),
            c4=("司法鉴定机构", "forensic appraisal institution"),
            c5=("仲裁委员会", "arbitration commission"),
            c9=("其他", "other"),
        ),
        _dept("4", "文化", "culture",
              c1=("外国在华文化中心", "foreign cultural centre"), c9=("其他", "other")),
        _dept(
            "5", "民政", "civil affairs",
            c1=("社会团体", "social organisation"),
            c2=("民办非企业单位", "private non-enterprise unit"),
            c3=("基金会", "foundation"),
            c9=("其他", "other"),
        ),
        _dept(
            "6", "旅游", "tourism",
            c1=("外国旅游部门常驻代表机构", "foreign tourism office"),
            c2=("港澳台地区旅游部门常驻内地（大陆）代表机构", "HK/Macao/Taiwan tourism office"),
            c9=("其他", "other"),
        ),
        _dept("7", "宗教", "religious affairs",
              c1=("宗教活动场所", "venue for religious activities"),
              c2=("宗教院校", "religious college"), c9=("其他", "other")),
        _dept("8", "工会", "trade unions",
              c1=("基层工会", "grassroots trade union"), c9=("其他", "other")),
        _dept(
            "9", "工商（市场监管）", "market regulation (industry and commerce)",
            c1=("企业", "enterprise"),
            c2=("个体工商户", "individual business"),
            c3=("农民专业合作社", "farmers' specialised cooperative"),
        ),
        _dept("A", "中央军委改革和编制办公室", "Central Military Commission establishment office",
              c1=("军队事业单位", "military public institution"), c9=("其他", "other")),
        _dept(
            "N", "农业", "agriculture",
            c1=("组级集体经济组织", "group-level collective economic organisation"),
            c2=("村级集体经济组织", "village-level collective economic organisation"),
            c3=("乡镇级集体经济组织", "township-level collective economic organisation"),
            c9=("其他", "other"),
        ),
        _dept("Y", "其他", "other", c1=("其他", "other")),
    )
}


@dataclass(frozen=True)
class Uscc:
    """A valid USCC split into its parts (see the module docstring)."""

    code: str
    department: Department
    category: str
    category_zh: str
    category_en: str
    region: str
    org_code: str
    check: str


def _org_value(c: str) -> int:
    # GB 11714 values: digits as themselves, letters A=10 ... Z=35 (the full Latin alphabet).
    return int(c) if c.isdigit() else ord(c) - ord("A") + 10


# The characters an organisation code body may hold are those of the USCC set (checked first).
_ORG_VALUE = {c: _org_value(c) for c in ALPHABET}


def org_code_check_char(body: str) -> str:
    """The GB 11714 check character (0-9 or X) of an 8-character organisation code body.

    Raises :class:`InvalidUscc` (reason ``character``/``length``) if ``body`` is not 8 characters
    of the USCC character set.
    """
    if not isinstance(body, str) or len(body) != 8:
        raise InvalidUscc(
            "length", "组织机构代码本体应为 8 位", "an organisation code body must be 8 characters"
        )
    _check_characters(body, offset=9)
    r = 11 - sum([_ORG_VALUE[c] * w for c, w in zip(body, ORG_WEIGHTS)]) % 11
    return {10: "X", 11: "0"}.get(r, str(r))


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character (position 18) of the first 17 characters.

    Raises :class:`InvalidUscc` (reason ``length``/``character``/``lowercase``/``forbidden_letter``)
    if ``first17`` is not 17 characters of the code character set.
    """
    if not isinstance(first17, str) or len(first17) != 17:
        raise InvalidUscc(
            "length",
            "计算校验码需要前 17 位字符",
            "the check character is computed from exactly 17 characters",
        )
    _check_characters(first17, offset=1)
    r = 31 - sum([_VALUE[c] * w for c, w in zip(first17, WEIGHTS)]) % 31
    return ALPHABET[r % 31]


def _check_characters(text: str, *, offset: int) -> None:
    if _CHARSET.issuperset(text):  # the usual case; the loop below says what is wrong otherwise
        return
    for i, c in enumerate(text, start=offset):
        if c in _VALUE:
            continue
        if c.upper() in _VALUE and c != c.upper():
            raise InvalidUscc(
                "lowercase",
                f"第 {i} 位 '{c}' 是小写字母，统一社会信用代码只使用大写字母",
                f"character {i} '{c}' is lower case; a USCC uses capital letters only",
            )
        if c.upper() in _FORBIDDEN:
            hint = _LOOKALIKE.get(c.upper())
            raise InvalidUscc(
                "forbidden_letter",
                f"第 {i} 位是字母 '{c}'：统一社会信用代码不使用字母 I、O、S、V、Z"
                + (f"（是否应为 '{hint}'？）" if hint else ""),
                f"character {i} is the letter '{c}', which a USCC never uses "
                "(I, O, S, V and Z are excluded"
                + (f"; did you mean '{hint}'?)" if hint else ")"),
            )
        folded = unicodedata.normalize("NFKC", c)
        if folded != c and folded.upper() in _VALUE:
            raise InvalidUscc(
                "character",
                f"第 {i} 位 '{c}' 是全角字符，请使用半角数字或字母",
                f"character {i} '{c}' is a full-width character; use the half-width form",
            )
        raise InvalidUscc(
            "character",
            f"第 {i} 位 {c!r} 不是允许的字符（只允许数字和大写字母，不含 I、O、S、V、Z）",
            f"character {i} {c!r} is not allowed (digits and capital letters except I, O, S, V, Z)",
        )


def _check_structure(code: object) -> str:
    if not isinstance(code, str):
        raise InvalidUscc("type", "统一社会信用代码应为文本", "a USCC must be a text string")
    if len(code) != _LENGTH:
        raise InvalidUscc(
            "length",
            f"长度应为 18 位，实际为 {len(code)} 位",
            f"must be 18 characters long, got {len(code)}",
        )
    _check_characters(code, offset=1)
    dept = DEPARTMENTS.get(code[0])
    if dept is None:
        allowed = "、".join(DEPARTMENTS)
        raise InvalidUscc(
            "department",
            f"第 1 位（登记管理部门代码）'{code[0]}' 无效，应为 {allowed} 之一",
            f"character 1 (registration department) '{code[0]}' is not a department code; "
            f"expected one of {', '.join(DEPARTMENTS)}",
        )
    if code[1] not in dept.categories:
        allowed = "、".join(dept.categories)
        raise InvalidUscc(
            "category",
            f"第 2 位（机构类别代码）'{code[1]}' 不是登记管理部门 '{dept.code}'（{dept.name_zh}）"
            f"的机构类别，应为 {allowed} 之一",
            f"character 2 (organisation category) '{code[1]}' is not a category of department "
            f"'{dept.code}' ({dept.name_en}); expected one of {', '.join(dept.categories)}",
        )
    if not code[2:8].isdigit():
        raise InvalidUscc(
            "region",
            f"第 3–8 位（登记管理机关行政区划码）'{code[2:8]}' 应为 6 位数字",
            f"characters 3-8 (administrative division of the registration authority) "
            f"'{code[2:8]}' must be six digits",
        )
    return code


def validate_uscc(code: object) -> None:
    """Check a USCC against GB 32100-2015 (structure, organisation code check, check character).

    Raises :class:`InvalidUscc` with ``reason`` one of ``type``, ``length``, ``lowercase``,
    ``forbidden_letter``, ``character``, ``department``, ``category``, ``region``, ``check``,
    ``org_check``; ``expected`` holds the correct character for the last two.
    """
    code = _check_structure(code)
    org_expected = org_code_check_char(code[8:16])
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        # A typing error anywhere in positions 1-17 lands here too, so do not tell the clerk to
        # "fix" position 18: say what it should be and ask for the whole code to be checked.
        also = ("", "")
        if code[16] != org_expected:
            also = (
                "；第 9–17 位的组织机构代码也校验不通过",
                "; the organisation code (characters 9-17) also fails its check",
            )
        raise InvalidUscc(
            "check",
            f"校验码错误：按前 17 位计算，第 18 位应为 '{expected}'，实际为 '{code[17]}'{also[0]}；"
            "请核对整个代码是否有录入错误",
            f"check character is wrong: from the first 17 characters, character 18 should be "
            f"'{expected}', not '{code[17]}'{also[1]}; check the whole code for a typing error",
            expected=expected,
        )
    if code[16] != org_expected:
        raise InvalidUscc(
            "org_check",
            f"第 9–17 位（组织机构代码 {code[8:17]}）校验不通过：按 GB 11714，第 17 位应为 "
            f"'{org_expected}'，实际为 '{code[16]}'",
            f"characters 9-17 (organisation code {code[8:17]}) fail the GB 11714 check: "
            f"character 17 should be '{org_expected}', not '{code[16]}'",
            expected=org_expected,
        )


def is_valid_uscc(code: object) -> bool:
    """``True`` if :func:`validate_uscc` accepts ``code``. For forms and filters; never raises."""
    try:
        validate_uscc(code)
    except InvalidUscc:
        return False
    return True


def parse_uscc(code: object) -> Uscc:
    """Validate ``code`` and split it into its parts. Raises :class:`InvalidUscc`."""
    validate_uscc(code)
    assert isinstance(code, str)
    dept = DEPARTMENTS[code[0]]
    zh, en = dept.categories[code[1]]
    return Uscc(code, dept, code[1], zh, en, code[2:8], code[8:17], code[17])


def make_uscc(*, department: str = "9", category: str = "1", region: str, org_body: str) -> str:
    """Build a valid USCC from its parts; both check characters are computed.

    ``org_body`` is the 8-character body of the organisation code (characters 9-16). Raises
    :class:`InvalidUscc` if a part is not valid (unknown department or category, region not six
    digits, body not 8 characters of the code set).
    """
    check17 = org_code_check_char(org_body)  # position 17 first: it is an input of position 18
    first17 = f"{department}{category}{region}{org_body}{check17}"
    _check_structure(first17 + "0")
    code = first17 + uscc_check_char(first17)
    validate_uscc(code)
    return code
