"""A compiled accept check of a type's claims: JSON Schema 2020-12 through ``jsonschema-rs``.

:func:`compile_acceptor` turns a type's schema into a function that answers one question fast:
would the reference validator (``jsonschema``'s Draft 2020-12 validator with our formats and
keywords, :mod:`schemas.registry`) find no error in these claims? It is used as a first pass only:
``True`` means accepted, and anything else (``False``, a value it does not take, an error inside it)
sends the claims to the reference validator, which decides and words the errors. A record that is
refused is therefore refused, with the same messages, exactly as without this module; what must hold
is that this function never accepts what the reference validator refuses. That is why it is narrow:

- ``pattern``, ``format`` and our ``x-`` keywords are not jsonschema-rs's own: they call the very
  functions the reference validator calls (Python ``re`` with the ECMA-262 end-of-string rule, the
  GB 32100 / GB 11643 / date checks, the cross-field rules), given by the caller;
- a schema with a keyword outside :data:`KEYWORDS` gets no compiled check (``None``): every keyword
  admitted is one whose semantics both implementations share for the values admitted below, and
  each is exercised by the equivalence tests (``tests/schemas/test_compiled_acceptor.py``);
- only plain JSON values are checked: ``dict`` with ``str`` keys, ``list``, ``str``, ``bool``,
  ``None`` and ``int`` within 64 bits. Anything else (a ``tuple``, which ``jsonschema`` does not take
  for an array, a float, whose equality with integers the two treat differently, a ``str`` or
  ``dict`` subclass, a huge integer) goes to the reference validator.

``jsonschema-rs`` is optional (the ``server`` extra): without it :func:`compile_acceptor` returns
``None`` and every check is the reference validator's. Nothing else in the project imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

try:
    import jsonschema_rs
except ImportError:  # the lean install: the reference validator alone
    jsonschema_rs = None

__all__ = ["KEYWORDS", "compile_acceptor"]

#: A jsonschema keyword function: ``(validator, keyword value, instance, schema) -> errors``.
KeywordFunction = Callable[[Any, Any, Any, Any], Iterator[Any]]

_SUBSCHEMA = frozenset({"items", "additionalProperties", "if", "then", "else"})
_SUBSCHEMA_MAP = frozenset({"properties"})
_SUBSCHEMA_LIST = frozenset({"allOf"})
_ASSERTIONS = frozenset({
    "type", "enum", "const", "required", "minLength", "maxLength", "pattern", "format",
    "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties", "minimum",
})
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "x-messages"})
#: The keywords a schema may use and still get a compiled check (plus the caller's own keywords).
KEYWORDS = _SUBSCHEMA | _SUBSCHEMA_MAP | _SUBSCHEMA_LIST | _ASSERTIONS | _ANNOTATIONS

_INT64 = (-(1 << 63), 1 << 63)


def _known(schema: Any, own: frozenset[str]) -> bool:
    """Whether ``schema`` and all its subschemas use only :data:`KEYWORDS` and ``own``."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, Mapping):
        return False
    for key, value in schema.items():
        if key in own or key in _ASSERTIONS or key in _ANNOTATIONS:
            continue
        if key in _SUBSCHEMA:
            ok = _known(value, own)
        elif key in _SUBSCHEMA_MAP:
            ok = isinstance(value, Mapping) and all(_known(v, own) for v in value.values())
        elif key in _SUBSCHEMA_LIST:
            ok = isinstance(value, list) and all(_known(v, own) for v in value)
        else:
            ok = False
        if not ok:
            return False
    return True


def _plain(value: Any) -> bool:
    """Whether ``value`` is made of the JSON values this check takes (see the module docstring)."""
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return _INT64[0] <= value < _INT64[1]
    if t is dict:
        if not all(type(k) is str for k in value):
            return False
        members = value.values()
    elif t is list:
        members = value
    else:
        return False
    for v in members:
        if type(v) is not str and not _plain(v):  # most members are text: no call for them
            return False
    return True


def _keyword_class(function: KeywordFunction) -> type:
    """A jsonschema-rs custom keyword that fails where ``function`` yields an error."""

    class Keyword:
        __slots__ = ("schema", "value")

        def __init__(self, parent_schema: Any, value: Any, schema_path: Any) -> None:
            self.schema, self.value = parent_schema, value

        def validate(self, instance: Any) -> None:
            for _ in function(None, self.value, instance, self.schema):
                raise ValueError("refused")

    return Keyword


def compile_acceptor(
    schema: Mapping[str, Any],
    *,
    formats: Mapping[str, Callable[[str], bool]],
    keywords: Mapping[str, KeywordFunction],
) -> Callable[[Any], bool] | None:
    """A function ``claims -> bool``: ``True`` only for claims the reference validator accepts.

    ``formats`` maps each asserted format to its check; ``keywords`` maps ``pattern`` and each
    custom keyword to the reference validator's own keyword function. ``None`` when jsonschema-rs is
    not installed, when the schema uses a keyword outside :data:`KEYWORDS` and ``keywords``, or when
    jsonschema-rs refuses the schema. Raises nothing; the function it returns raises nothing either.
    """
    if jsonschema_rs is None or "pattern" not in keywords or not _known(schema, frozenset(keywords)):
        return None
    try:
        compiled = jsonschema_rs.Draft202012Validator(
            schema,
            formats=dict(formats),
            validate_formats=True,
            keywords={name: _keyword_class(f) for name, f in keywords.items()},
        )
    except Exception:  # noqa: BLE001 - any refusal means: no compiled check, the reference one decides
        return None
    is_valid = compiled.is_valid

    def accepts(claims: Any) -> bool:
        try:
            return _plain(claims) and is_valid(claims) is True
        except Exception:  # noqa: BLE001 - undecided (too deep, ...): the reference validator decides
            return False

    return accepts
