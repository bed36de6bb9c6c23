"""Credential types as data: one folder per type, loaded and checked at start.

Specifications:

- SD-JWT VC type metadata, draft-ietf-oauth-sd-jwt-vc (-12 and later), section "Type Metadata":
  ``vct``, ``name``, ``description``, ``display`` (per ``locale``: ``name``, ``description``,
  ``rendering.simple``) and ``claims`` (``path``, ``display`` per ``locale`` with ``label``, ``sd``,
  ``mandatory``). Draft -12 renamed ``lang`` to ``locale`` and removed JSON Schema from type
  metadata, so the schema is referenced from our own extension member (below).
- JSON Schema 2020-12 for the claims (registered JWT claims ``iss``, ``vct``, ``iat``, ``nbf``,
  ``exp``, ``cnf``, ``status`` excluded), validated with ``jsonschema``'s Draft 2020-12 validator,
  ``format`` asserted for ``date``, ``gb32100-uscc`` and ``gb11643-resident-id``.

A type folder ``<slug>/`` holds ``schema.json`` and ``metadata.json``. The metadata member
``"elicence"`` carries what the standard has no member for: ``schema`` (the schema file, relative to
the folder), ``qr_claims`` (claim paths a wallet shows in a QR code by default), ``validity_days``
(default lifetime of an issued credential), ``exp_not_after`` (optional: a date claim the
credential's ``exp`` must not pass) and ``decoys`` (``min``/``max`` decoy digests to add, and why).

Two schema keywords of ours express cross-field rules as data (other validators ignore unknown
keywords): ``x-dateOrder`` (``[{"before": path, "after": path}]``: the second date is not earlier
than the first) and ``x-residentIdMatches`` (the ID number agrees with the birth date and gender).
``x-messages`` on a subschema gives the words for a failure of one of its keywords
(``{"pattern": {"zh-CN": ..., "en": ...}}``).

Claims first go through a compiled check (:mod:`schemas.compiled`, jsonschema-rs calling the same
format, pattern and cross-field functions) that can only accept; whatever it does not accept is
decided, and its errors worded, by the ``jsonschema`` validator above, so a refusal reads as it
always did. A bulk import of valid records then costs a tenth of what it did.

Adding a type means adding a folder: :func:`load_registry` takes extra directories. A folder whose
metadata and schema disagree (a claim in one and not the other, ``mandatory`` not matching
``required``, a missing zh-CN or en label) is refused with ``type_definition_invalid`` when it is
loaded, not when the first credential of that type is issued.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Union

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from schemas.compiled import compile_acceptor
from schemas.errors import (
    FieldError,
    InvalidResidentId,
    InvalidUscc,
    InvalidValue,
    SchemaError,
    TypeDefinitionError,
    UnknownCredentialType,
)
from schemas.resident_id import parse_resident_id, validate_resident_id
from schemas.uscc import validate_uscc

__all__ = [
    "ClaimPath",
    "ClaimLabel",
    "DecoyPolicy",
    "CredentialType",
    "TypeRegistry",
    "REGISTERED_CLAIMS",
    "LOCALES",
    "load_type",
    "load_registry",
    "default_registry",
    "get_type",
    "all_types",
    "validate_claims",
    "path_to_str",
]

#: A claim path as in SD-JWT VC claim metadata: keys, ``None`` (all array elements), indexes.
ClaimPath = tuple[Union[str, int, None], ...]

#: Claims of the SD-JWT VC itself, not of the type: never in a type's schema, ignored by
#: :func:`validate_claims` (``credentials`` checks them).
REGISTERED_CLAIMS = frozenset(
    {"iss", "vct", "vct#integrity", "iat", "nbf", "exp", "cnf", "status", "sub"}
)
#: Every type carries names and labels in these locales.
LOCALES = ("zh-CN", "en")
_SD_VALUES = ("always", "allowed", "never")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # a file in the type folder, no path
_BUILTIN_PACKAGE = "schemas"


@dataclass(frozen=True)
class ClaimLabel:
    """The label of a claim in Chinese and English."""

    zh: str
    en: str


@dataclass(frozen=True)
class DecoyPolicy:
    """How many decoy digests (RFC 9901 section 4.2.5) an issuer adds, and why."""

    min: int
    max: int
    reason: str


@dataclass(frozen=True)
class CredentialType:
    """One credential type: its ``vct``, schema, metadata and what follows from them.

    ``schema`` and ``metadata`` are the parsed files; treat them as read-only (validation uses its
    own copy). Paths are tuples in metadata order.
    """

    slug: str
    vct: str
    name_zh: str
    name_en: str
    claim_paths: tuple[ClaimPath, ...]
    #: Paths whose ``sd`` is ``always`` (or ``allowed``, treated as always): each is a disclosure;
    #: one beneath another listed path is a recursive disclosure (RFC 9901 s4.2.6), its digest in
    #: the parent's disclosure. Metadata order, so a parent comes before its members.
    sd_paths: tuple[ClaimPath, ...]
    #: Paths that are ``never`` selectively disclosable and have no such ancestor: always visible.
    always_visible_paths: tuple[ClaimPath, ...]
    mandatory_paths: tuple[ClaimPath, ...]
    default_qr_claims: tuple[ClaimPath, ...]
    validity_days: int
    exp_not_after: ClaimPath | None
    decoys: DecoyPolicy
    labels: Mapping[ClaimPath, ClaimLabel] = field(repr=False, compare=False)
    sd_policies: Mapping[ClaimPath, str] = field(repr=False, compare=False)
    schema: Mapping[str, Any] = field(repr=False, compare=False)
    metadata: Mapping[str, Any] = field(repr=False, compare=False)
    source: str = field(default="", compare=False)
    _validator: Any = field(default=None, repr=False, compare=False)
    #: The compiled first pass (:mod:`schemas.compiled`), ``None`` where there is none.
    _accepts: Callable[[Any], bool] | None = field(default=None, repr=False, compare=False)

    def display_name(self, locale: str = "zh-CN") -> str:
        """The type's name for people, ``zh-CN`` or ``en``."""
        return self.name_en if locale.lower().startswith("en") else self.name_zh

    def label(self, path: Iterable[str | int | None], locale: str = "zh-CN") -> str:
        """The label of a claim (array indexes fall back to the array's label)."""
        lab = self._label_for(tuple(path))
        return lab.en if locale.lower().startswith("en") else lab.zh

    def sd_policy(self, path: Iterable[str | int | None]) -> str:
        """``always``, ``allowed`` or ``never`` for a claim path; raises ``KeyError`` if unknown."""
        return self.sd_policies[tuple(path)]

    def validate_claims(self, claims: object) -> None:
        """Check claims against this type. Raises :class:`SchemaError` listing every problem."""
        _validate(self, claims)

    def disclosable_paths(self, claims: Mapping[str, Any]) -> tuple[tuple[str | int, ...], ...]:
        """The :attr:`sd_paths` that exist in ``claims``, array wildcards expanded to indexes.

        What an issuer passes as ``disclosable``: an optional claim that a record leaves out (a
        branch's ``registration.registered_capital``) is not a path of that credential. Raises
        nothing; a path through a value of the wrong shape is left out (validate first).
        """
        out: list[tuple[str | int, ...]] = []
        for path in self.sd_paths:
            out.extend(_concrete(claims, path))
        return tuple(out)

    def _label_for(self, path: ClaimPath) -> ClaimLabel:
        generic = tuple(None if isinstance(p, int) else p for p in path)
        while generic:
            if generic in self.labels:
                return self.labels[generic]
            generic = generic[:-1]
        return ClaimLabel("字段", "Field") if path else ClaimLabel("证照内容", "Claims")


# --- formats and custom keywords ----------------------------------------------------------------

_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date", raises=InvalidValue)
def _check_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.fullmatch(value):
        raise InvalidValue(
            "date_format",
            "应为 YYYY-MM-DD 格式的日期",
            "must be a date written YYYY-MM-DD",
        )
    if _parse_date(value) is None:
        raise InvalidValue(
            "date_nonexistent",
            f"{value} 不是存在的日期",
            f"{value} is not a real calendar date",
        )
    return True


@_FORMATS.checks("gb32100-uscc", raises=InvalidUscc)
def _check_uscc(value: object) -> bool:
    if isinstance(value, str):
        validate_uscc(value)
    return True


@_FORMATS.checks("gb11643-resident-id", raises=InvalidResidentId)
def _check_resident_id(value: object) -> bool:
    if isinstance(value, str):
        validate_resident_id(value)
    return True


def _parse_date(value: object) -> str | None:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return None
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return None
    return value


def _get(instance: Any, path: Iterable[Any]) -> Any:
    for key in path:
        if not isinstance(instance, dict) or key not in instance:
            return None
        instance = instance[key]
    return instance


def _concrete(
    node: Any, path: ClaimPath, done: tuple[str | int, ...] = ()
) -> Iterator[tuple[str | int, ...]]:
    if not path:
        yield done
        return
    key, rest = path[0], path[1:]
    if key is None:
        if isinstance(node, list):
            for i, element in enumerate(node):
                yield from _concrete(element, rest, done + (i,))
    elif isinstance(key, int):
        if isinstance(node, list) and key < len(node):
            yield from _concrete(node[key], rest, done + (key,))
    elif isinstance(node, Mapping) and key in node:
        yield from _concrete(node[key], rest, done + (key,))


class _CrossFieldError(ValidationError):
    """A failure of one of our cross-field keywords; ``detail`` says which rule and with what."""

    def __init__(self, message: str, *, path: Iterable[str], detail: tuple[Any, ...]) -> None:
        super().__init__(message, path=list(path))
        self.detail = detail


def _date_order(
    validator: Any, rules: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    for rule in rules:
        before = _parse_date(_get(instance, rule["before"]))
        after = _parse_date(_get(instance, rule["after"]))
        if before and after and after < before:  # ISO dates compare as strings
            yield _CrossFieldError(
                f"{after} is earlier than {before}",
                path=rule["after"],
                detail=("date_order", tuple(rule["before"]), tuple(rule["after"])),
            )


def _resident_id_matches(
    validator: Any, spec: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    try:
        rid = parse_resident_id(_get(instance, spec["id"]))
    except InvalidResidentId:
        return  # absent or invalid: "format" reports it
    birthdate = _get(instance, spec["birthdate"])
    if isinstance(birthdate, str) and birthdate != rid.birthdate.isoformat():
        yield _CrossFieldError(
            "birthdate does not match the ID number",
            path=spec["birthdate"],
            detail=("id_birthdate", rid.birthdate.isoformat()),
        )
    gender = _get(instance, spec["gender"])
    if isinstance(gender, str) and gender != rid.gender:
        yield _CrossFieldError(
            "gender does not match the ID number",
            path=spec["gender"],
            detail=("id_gender", rid.gender),
        )


@functools.lru_cache(maxsize=256)
def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA-262 regular expressions, where a final "$" matches only at the
    # end of the string; Python's "$" also matches before a final newline, which would let
    # "JY23501020012345\n" pass "^JY[1-3][0-9]{13}$".
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _ecma_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_KEYWORDS = {
    "pattern": _pattern,
    "x-dateOrder": _date_order,
    "x-residentIdMatches": _resident_id_matches,
}
_Validator = validators.extend(Draft202012Validator, validators=_KEYWORDS)


def _format_predicate(name: str) -> Callable[[str], bool]:
    return lambda value: _FORMATS.conforms(value, name)


# The compiled first pass checks formats with the checker's own functions.
_FORMAT_PREDICATES = {name: _format_predicate(name) for name in _FORMATS.checkers}


# --- loading ------------------------------------------------------------------------------------


def _read_json(entry: Any, what: str) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        dupes = {k for k in keys if keys.count(k) > 1}
        if dupes:
            raise TypeDefinitionError(f"{what}: duplicate member(s) {sorted(dupes)}")
        return dict(pairs)

    try:
        text = entry.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TypeDefinitionError(f"{what}: cannot be read ({exc})") from exc
    try:
        doc = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise TypeDefinitionError(f"{what}: not valid JSON ({exc})") from exc
    # draft-ietf-oauth-sd-jwt-vc, Type Metadata Format: "The Type Metadata document MUST be a JSON
    # object." (The same holds for a JSON Schema of claims.) Unknown members are kept and ignored:
    # "Consumers MUST ignore properties that are not understood."
    if not isinstance(doc, dict):
        raise TypeDefinitionError(f"{what}: must be a JSON object")
    return doc


def _schema_at(schema: Mapping[str, Any], path: ClaimPath) -> Mapping[str, Any] | None:
    node: Any = schema
    for key in path:
        if not isinstance(node, Mapping):
            return None
        if isinstance(key, str):
            node = node.get("properties", {}).get(key)
        else:
            node = node.get("items")
        if node is None:
            return None
    return node


def _schema_paths(node: Mapping[str, Any], prefix: ClaimPath = ()) -> Iterator[ClaimPath]:
    for name, sub in node.get("properties", {}).items():
        path = prefix + (name,)
        yield path
        if isinstance(sub, Mapping):
            yield from _schema_paths(sub, path)
            items = sub.get("items")
            if isinstance(items, Mapping) and "properties" in items:
                yield from _schema_paths(items, path + (None,))


def _required(schema: Mapping[str, Any], path: ClaimPath) -> bool:
    parent = _schema_at(schema, path[:-1])
    return parent is not None and path[-1] in parent.get("required", ())


def _locale_map(entries: Any, key: str, what: str) -> dict[str, str]:
    if not isinstance(entries, list):
        raise TypeDefinitionError(f"{what}: display must be an array")
    out: dict[str, str] = {}
    for entry in entries:
        # Display Metadata / Claim Display Metadata: "locale ... This property is REQUIRED.",
        # "name" (type) and "label" (claim) likewise.
        if not isinstance(entry, dict) or not isinstance(entry.get("locale"), str):
            raise TypeDefinitionError(f"{what}: every display entry needs a 'locale'")
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise TypeDefinitionError(
                f"{what}: display entry {entry.get('locale')!r} needs '{key}'"
            )
        out[entry["locale"]] = entry[key]
    # "The array MUST contain an object for each locale that is supported by the type": the
    # locales every eLicence type supports are LOCALES.
    for loc in LOCALES:
        if loc not in out:
            raise TypeDefinitionError(f"{what}: no '{key}' for locale {loc}")
    return out


def _path(value: Any, what: str) -> ClaimPath:
    # draft-ietf-oauth-sd-jwt-vc, Claim Path: "a non-empty array of strings, null values, or
    # non-negative integers"
    if not isinstance(value, list) or not value or not all(
        v is None or isinstance(v, str) or (_is_int(v) and v >= 0) for v in value
    ):
        raise TypeDefinitionError(
            f"{what}: a claim path must be a non-empty array of strings, nulls and indexes"
        )
    return tuple(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_type(directory: Any) -> CredentialType:
    """Load and check one type folder (a ``pathlib.Path`` or importlib Traversable).

    Raises :class:`TypeDefinitionError` if the folder is not a consistent type definition.
    """
    slug = directory.name
    where = f"type {slug!r}"
    if not _SLUG.fullmatch(slug):
        raise TypeDefinitionError(f"{where}: the folder name must be a slug (a-z, 0-9, -)")
    metadata = _read_json(directory.joinpath("metadata.json"), f"{where} metadata.json")
    ext = metadata.get("elicence")
    if not isinstance(ext, dict):
        raise TypeDefinitionError(f"{where}: metadata.json has no 'elicence' extension object")
    schema_file = ext.get("schema")
    if not isinstance(schema_file, str) or not _FILE_NAME.fullmatch(schema_file):
        raise TypeDefinitionError(f"{where}: 'elicence.schema' must name a file in the type folder")
    schema = _read_json(directory.joinpath(schema_file), f"{where} {schema_file}")
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise TypeDefinitionError(
            f"{where}: {schema_file} is not a valid JSON Schema: {exc.message}"
        ) from exc
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise TypeDefinitionError(f"{where}: the schema must describe an object with properties")
    clash = REGISTERED_CLAIMS.intersection(schema["properties"])
    if clash or any(k.startswith("_sd") or k == "..." for k in schema["properties"]):
        raise TypeDefinitionError(f"{where}: the schema defines reserved claim names")

    # draft-ietf-oauth-sd-jwt-vc, Type Metadata Format: "vct: REQUIRED"
    vct = metadata.get("vct")
    if not isinstance(vct, str) or not vct:
        raise TypeDefinitionError(f"{where}: metadata.json needs a 'vct' string")
    names = _locale_map(metadata.get("display"), "name", where)

    raw_claims = metadata.get("claims")
    if not isinstance(raw_claims, list) or not raw_claims:
        raise TypeDefinitionError(f"{where}: metadata.json needs a 'claims' array")
    labels: dict[ClaimPath, ClaimLabel] = {}
    policies: dict[ClaimPath, str] = {}
    mandatory: list[ClaimPath] = []
    for entry in raw_claims:
        if not isinstance(entry, dict):
            raise TypeDefinitionError(f"{where}: every claims entry must be an object")
        path = _path(entry.get("path"), where)
        what = f"{where} claim {path_to_str(path)}"
        if path in labels:
            raise TypeDefinitionError(f"{what}: described twice")
        if _schema_at(schema, path) is None:
            raise TypeDefinitionError(f"{what}: in metadata.json but not in the schema")
        texts = _locale_map(entry.get("display"), "label", what)
        labels[path] = ClaimLabel(texts["zh-CN"], texts["en"])
        # draft-ietf-oauth-sd-jwt-vc, Claim Selective Disclosure Metadata: "If omitted, the
        # default value is allowed."
        sd = entry.get("sd", "allowed")
        if sd not in _SD_VALUES:
            raise TypeDefinitionError(f"{what}: 'sd' must be one of {_SD_VALUES}")
        policies[path] = sd
        is_mandatory = entry.get("mandatory", False)
        if not isinstance(is_mandatory, bool):
            raise TypeDefinitionError(f"{what}: 'mandatory' must be a boolean")
        if is_mandatory != _required(schema, path):
            raise TypeDefinitionError(
                f"{what}: 'mandatory' is {is_mandatory} but the schema "
                f"{'requires' if not is_mandatory else 'does not require'} it"
            )
        if is_mandatory:
            mandatory.append(path)
    missing = [p for p in _schema_paths(schema) if p not in labels]
    if missing:
        raise TypeDefinitionError(
            f"{where}: schema claims without metadata: {', '.join(path_to_str(p) for p in missing)}"
        )

    def ext_path(value: Any, what: str) -> ClaimPath:
        path = _path(value, f"{where} {what}")
        if path not in labels:
            raise TypeDefinitionError(
                f"{where} {what}: {path_to_str(path)} is not a claim of the type"
            )
        return path

    qr = ext.get("qr_claims", [])
    if not isinstance(qr, list):
        raise TypeDefinitionError(f"{where}: 'elicence.qr_claims' must be an array of claim paths")
    qr_claims = tuple(ext_path(p, "elicence.qr_claims") for p in qr)
    validity = ext.get("validity_days")
    if not isinstance(validity, int) or isinstance(validity, bool) or validity <= 0:
        raise TypeDefinitionError(f"{where}: 'elicence.validity_days' must be a positive integer")
    exp_not_after = None
    if ext.get("exp_not_after") is not None:
        exp_not_after = ext_path(ext["exp_not_after"], "elicence.exp_not_after")
        if (_schema_at(schema, exp_not_after) or {}).get("format") != "date":
            raise TypeDefinitionError(f"{where}: 'elicence.exp_not_after' must be a date claim")
    decoys = ext.get("decoys", {"min": 0, "max": 0, "reason": ""})
    if (
        not isinstance(decoys, dict)
        or not (_is_int(decoys.get("min")) and _is_int(decoys.get("max")))
        or not 0 <= decoys["min"] <= decoys["max"]
        or not isinstance(decoys.get("reason", ""), str)
    ):
        raise TypeDefinitionError(f"{where}: 'elicence.decoys' needs integers 0 <= min <= max")

    def visible(path: ClaimPath) -> bool:
        return all(policies.get(path[:i], "never") == "never" for i in range(1, len(path) + 1))

    order = tuple(labels)
    return CredentialType(
        slug=slug,
        vct=vct,
        name_zh=names["zh-CN"],
        name_en=names["en"],
        claim_paths=order,
        sd_paths=tuple(p for p in order if policies[p] != "never"),
        always_visible_paths=tuple(p for p in order if visible(p)),
        mandatory_paths=tuple(mandatory),
        default_qr_claims=qr_claims,
        validity_days=validity,
        exp_not_after=exp_not_after,
        decoys=DecoyPolicy(decoys["min"], decoys["max"], decoys.get("reason", "")),
        labels=MappingProxyType(labels),
        sd_policies=MappingProxyType(policies),
        schema=schema,
        metadata=metadata,
        source=str(directory),
        _validator=_Validator(json.loads(json.dumps(schema)), format_checker=_FORMATS),
        _accepts=compile_acceptor(json.loads(json.dumps(schema)), formats=_FORMAT_PREDICATES, keywords=_KEYWORDS),
    )


def _type_dirs(root: Any) -> list[Any]:
    if root.joinpath("metadata.json").is_file():
        return [root]
    return sorted(
        (d for d in root.iterdir() if d.is_dir() and d.joinpath("metadata.json").is_file()),
        key=lambda d: d.name,
    )


@dataclass(frozen=True)
class TypeRegistry:
    """A set of credential types, looked up by ``vct`` or slug."""

    types: tuple[CredentialType, ...]
    _index: Mapping[str, CredentialType] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, CredentialType] = {}
        for t in self.types:
            for key in (t.vct, t.slug):
                if key in index:
                    raise TypeDefinitionError(
                        f"two credential types use {key!r} ({index[key].source}, {t.source})"
                    )
                index[key] = t
        object.__setattr__(self, "_index", MappingProxyType(index))

    def get(self, vct_or_slug: str) -> CredentialType:
        """The type with this ``vct`` or slug. Raises :class:`UnknownCredentialType`."""
        try:
            return self._index[vct_or_slug]
        except (KeyError, TypeError):
            raise UnknownCredentialType(f"unknown credential type {vct_or_slug!r}") from None

    def __iter__(self) -> Iterator[CredentialType]:
        return iter(self.types)

    def __len__(self) -> int:
        return len(self.types)

    def validate_claims(self, vct_or_slug: str, claims: object) -> None:
        """Check claims against a type.

        Raises :class:`UnknownCredentialType` or :class:`SchemaError`.
        """
        self.get(vct_or_slug).validate_claims(claims)


def load_registry(*extra_dirs: str | Path, include_builtin: bool = True) -> TypeRegistry:
    """Load the built-in types and those in ``extra_dirs``.

    Each extra directory is either one type folder or a directory of type folders. Raises
    :class:`TypeDefinitionError` for a broken folder or a ``vct``/slug used twice.
    """
    from importlib.resources import files

    roots: list[Any] = []
    if include_builtin:
        roots.append(files(_BUILTIN_PACKAGE).joinpath("types"))
    for d in extra_dirs:
        p = Path(d)
        if not p.is_dir():
            raise TypeDefinitionError(f"{p} is not a directory of credential types")
        roots.append(p)
    return TypeRegistry(tuple(load_type(d) for root in roots for d in _type_dirs(root)))


@functools.lru_cache(maxsize=1)
def default_registry() -> TypeRegistry:
    """The built-in types, loaded once."""
    return load_registry()


def get_type(vct_or_slug: str) -> CredentialType:
    """A built-in type by ``vct`` or slug. Raises :class:`UnknownCredentialType`."""
    return default_registry().get(vct_or_slug)


def all_types() -> tuple[CredentialType, ...]:
    """The built-in types, ordered by slug."""
    return default_registry().types


def validate_claims(vct_or_slug: str, claims: object) -> None:
    """Check claims against a built-in type: JSON Schema plus USCC, ID number and date checks.

    SD-JWT VC registered claims (``iss``, ``vct``, ``iat``, ``nbf``, ``exp``, ``cnf``, ``status``,
    ``sub``) are not part of a type and are skipped. Raises :class:`UnknownCredentialType`, or
    :class:`SchemaError` (code ``schema_invalid``) whose ``errors`` list every problem as
    ``(path, message_zh, message_en)``.
    """
    default_registry().validate_claims(vct_or_slug, claims)


# --- validation and messages --------------------------------------------------------------------


def path_to_str(path: Iterable[str | int | None]) -> str:
    """``("business_items", 2)`` -> ``business_items[2]``; ``("a", "b")`` -> ``a.b``."""
    out = ""
    for p in path:
        if p is None:
            out += "[*]"
        elif isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else p
    return out


_TYPE_NAMES = {
    "string": ("文本", "text"),
    "integer": ("整数", "an integer"),
    "number": ("数字", "a number"),
    "boolean": ("true 或 false", "true or false"),
    "object": ("对象", "an object"),
    "array": ("列表", "a list"),
    "null": ("空值 null", "null"),
}


def _reason(err: ValidationError, ctype: CredentialType) -> list[tuple[ClaimPath, str, str]]:
    """(path, reason_zh, reason_en) for one jsonschema error; some errors name several fields."""
    path: ClaimPath = tuple(err.absolute_path)
    kind, value, schema = err.validator, err.validator_value, err.schema
    custom = schema.get("x-messages", {}).get(kind) if isinstance(schema, Mapping) else None
    if custom:
        return [(path, custom["zh-CN"], custom["en"])]
    detail = err.detail if isinstance(err, _CrossFieldError) else None
    if detail and detail[0] == "date_order":
        _, before, after = detail
        parent = path[: len(path) - len(after)]
        b = ctype._label_for(parent + before)
        return [(path, f"不能早于{b.zh}（{_get_str(err.instance, before)}）",
                 f"must not be earlier than {b.en.lower()} ({_get_str(err.instance, before)})")]
    if detail and detail[0] == "id_birthdate":
        return [(path, f"与公民身份号码中的出生日期 {detail[1]} 不一致",
                 f"does not match the date of birth {detail[1]} in the ID number")]
    if detail and detail[0] == "id_gender":
        zh = "男" if detail[1] == "male" else "女"
        return [(path, f"与公民身份号码中的性别（{zh}）不一致",
                 f"does not match the gender in the ID number ({detail[1]})")]
    if kind == "required":
        return [(path + (name,), "缺少必填项", "is required but missing")
                for name in value if isinstance(err.instance, dict) and name not in err.instance]
    if kind in ("additionalProperties", "unevaluatedProperties"):
        known = schema.get("properties", {})
        instance = err.instance if isinstance(err.instance, dict) else {}
        extra = [n for n in instance if n not in known]
        return [(path + (n,), "不是该证照类型定义的字段", "is not a field of this credential type")
                for n in extra]
    if kind == "type":
        wanted = value if isinstance(value, list) else [value]
        zh = "或".join(_TYPE_NAMES.get(t, (t, t))[0] for t in wanted)
        en = " or ".join(_TYPE_NAMES.get(t, (t, t))[1] for t in wanted)
        return [(path, f"类型错误，应为{zh}", f"has the wrong type, expected {en}")]
    if kind == "format":
        cause = err.cause
        if isinstance(cause, InvalidValue):
            return [(path, cause.message_zh, cause.message_en)]
        return [(path, f"格式不正确（{value}）", f"is not a valid {value}")]
    if kind == "enum":
        return [(path, "取值应为以下之一：" + "、".join(map(str, value)),
                 "must be one of: " + ", ".join(map(str, value)))]
    if kind == "const":
        v = json.dumps(value, ensure_ascii=False)
        return [(path, f"应为 {v}", f"must be {v}")]
    if kind == "minLength":
        if value == 1:
            return [(path, "不能为空", "must not be empty")]
        return [(path, f"至少应有 {value} 个字符", f"must have at least {value} characters")]
    if kind == "maxLength":
        return [(path, f"最多 {value} 个字符", f"must have at most {value} characters")]
    if kind == "minItems":
        return [(path, f"至少应有 {value} 项", f"must have at least {value} item(s)")]
    if kind == "maxItems":
        return [(path, f"最多 {value} 项", f"must have at most {value} items")]
    if kind == "uniqueItems":
        return [(path, "不能有重复项", "must not contain duplicates")]
    if kind in ("minimum", "exclusiveMinimum"):
        return [(path, f"不能小于 {value}", f"must not be less than {value}")]
    if kind in ("maximum", "exclusiveMaximum"):
        return [(path, f"不能大于 {value}", f"must not be greater than {value}")]
    if kind == "pattern":
        return [(path, "格式不正确", "is not in the expected format")]
    if kind in ("minProperties", "maxProperties"):
        return [(path, "字段数量不符合要求", "has the wrong number of members")]
    return [(path, "不符合该证照类型的规范", "does not match the credential type")]


def _get_str(instance: Any, path: Iterable[Any]) -> str:
    v = _get(instance, path)
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _validate(ctype: CredentialType, claims: object) -> None:
    if not isinstance(claims, dict):
        raise SchemaError(errors=[FieldError(
            "", "证照内容应为 JSON 对象", "the claims must be a JSON object")])
    problems: list[tuple[ClaimPath, str, str]] = []
    vct = claims.get("vct")
    subject = {k: v for k, v in claims.items() if k not in REGISTERED_CLAIMS}
    # The compiled pass only ever accepts; a refusal is decided and worded below.
    if (vct is None or vct == ctype.vct) and ctype._accepts is not None and ctype._accepts(subject):
        return
    if vct is not None and vct != ctype.vct:
        problems.append((("vct",), f"证照类型应为 {ctype.vct}", f"must be {ctype.vct} for this type"))
    for err in ctype._validator.iter_errors(subject):
        problems.extend(_reason(err, ctype))

    order = {p: i for i, p in enumerate(ctype.claim_paths)}
    seen: set[tuple[str, str]] = set()
    out: list[FieldError] = []

    # In the order of the type's claims (the order of the form a clerk fills in), level by level so
    # that nested members (registration.issue_date) keep their metadata order; unknown last, within
    # their parent.
    def position(problem: tuple[ClaimPath, str, str]) -> tuple[tuple[int, ...], str]:
        path = problem[0]
        generic = tuple(None if isinstance(p, int) else p for p in path)
        key = tuple(order.get(generic[: i + 1], len(order)) for i in range(len(generic)))
        return (key or (-1,), path_to_str(path))

    for path, zh, en in sorted(problems, key=position):
        where = path_to_str(path)
        if (where, zh) in seen:
            continue
        seen.add((where, zh))
        if path == ("vct",):
            lab = ClaimLabel("证照类型", "credential type")
        else:
            lab = ctype._label_for(path)
        out.append(FieldError(where, f"{lab.zh} ({where}): {zh}", f"{lab.en} ({where}): {en}"))
    if out:
        raise SchemaError(errors=out)
