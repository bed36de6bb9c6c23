"""Errors of the credential type layer, with stable codes shared with ``credentials.errors``.

``schemas`` is the bottom layer of the import order (``schemas <- keys <- credentials``), so it
cannot raise ``credentials.errors.SchemaInvalid`` itself. It has this small tree instead; the code
``schema_invalid`` is the same string as ``credentials.errors.SchemaInvalid.code``, so the
credential core and the services can translate by code (``raise SchemaInvalid(...) from exc``).

::

    CredentialTypeError            credential_type_error
    ├── SchemaError                schema_invalid           claims do not fit their type
    │   └── InvalidValue           schema_invalid           one value fails a check (.reason)
    │       ├── InvalidUscc        schema_invalid           GB 32100-2015 credit code
    │       └── InvalidResidentId  schema_invalid           GB 11643-1999 resident ID number
    ├── UnknownCredentialType      unknown_credential_type  no type with this vct or slug
    └── TypeDefinitionError        type_definition_invalid  a type folder is broken

Every :class:`SchemaError` carries ``errors``: a tuple of :class:`FieldError` ``(path, message_zh,
message_en)``, one per problem found, in a stable order, so that a clerk sees everything that is
wrong with a record at once instead of fixing it one field per round trip.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, NamedTuple

__all__ = [
    "CredentialTypeError",
    "FieldError",
    "SchemaError",
    "InvalidValue",
    "InvalidUscc",
    "InvalidResidentId",
    "UnknownCredentialType",
    "TypeDefinitionError",
]


class FieldError(NamedTuple):
    """One problem with one field: where (``business_term.to``, ``business_items[2]``) and why."""

    path: str
    message_zh: str
    message_en: str

    def __str__(self) -> str:
        return f"{self.message_zh} / {self.message_en}"


class CredentialTypeError(Exception):
    """Root of this tree. ``code`` is stable; ``detail`` says what exactly was wrong."""

    code: ClassVar[str] = "credential_type_error"
    description: ClassVar[str] = "The credential type could not be used."
    description_zh: ClassVar[str] = "无法使用该证照类型。"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.description
        super().__init__(self.detail)

    def to_dict(self) -> dict[str, str]:
        """The OAuth-style error body, as in ``credentials.errors.CredentialError.to_dict``."""
        return {"error": self.code, "error_description": self.detail}


class SchemaError(CredentialTypeError):
    """The claims do not match their credential type; ``errors`` lists every problem found."""

    code = "schema_invalid"
    description = "The claims do not match the credential type's schema."
    description_zh = "证照内容不符合该证照类型的数据规范。"

    def __init__(self, detail: str | None = None, *, errors: Iterable[FieldError] = ()) -> None:
        self.errors: tuple[FieldError, ...] = tuple(FieldError(*e) for e in errors)
        if detail is None and self.errors:
            detail = "; ".join(str(e) for e in self.errors)
        super().__init__(detail)


class InvalidValue(SchemaError):
    """A single value (a code, a number) fails its check.

    ``reason`` is a stable machine-readable sub-code (``length``, ``check``, ...);
    ``message_zh`` / ``message_en`` say it in words a registry clerk understands, without naming
    the field (the caller knows which field it was); ``expected`` is the correct check character
    when the failure is a wrong check character, else ``None``.
    """

    def __init__(
        self, reason: str, message_zh: str, message_en: str, *, expected: str | None = None
    ) -> None:
        self.reason = reason
        self.message_zh = message_zh
        self.message_en = message_en
        self.expected = expected
        super().__init__(errors=[FieldError("", message_zh, message_en)])


class InvalidUscc(InvalidValue):
    """A unified social credit code (统一社会信用代码) fails GB 32100-2015."""


class InvalidResidentId(InvalidValue):
    """A resident identity number (公民身份号码) fails GB 11643-1999."""


class UnknownCredentialType(CredentialTypeError):
    code = "unknown_credential_type"
    description = "No credential type with this vct or slug is known."
    description_zh = "未知的证照类型。"


class TypeDefinitionError(CredentialTypeError):
    """A type folder is unusable: bad JSON, an invalid schema, metadata inconsistent with it."""

    code = "type_definition_invalid"
    description = "A credential type definition is invalid."
    description_zh = "证照类型定义有误。"
