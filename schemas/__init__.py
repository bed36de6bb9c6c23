"""Credential types as data (JSON Schema + SD-JWT VC type metadata per ``vct``) and the code checks
they rely on: GB 32100-2015 unified social credit codes and GB 11643-1999 resident ID numbers.

The bottom layer of the import order: imports neither ``keys`` nor ``credentials``, nor any web or
database library. ``schemas.synthetic`` (realistic test records for demos and benchmarks) is not
re-exported here.
"""

from schemas.errors import (
    CredentialTypeError,
    FieldError,
    InvalidResidentId,
    InvalidUscc,
    InvalidValue,
    SchemaError,
    TypeDefinitionError,
    UnknownCredentialType,
)
from schemas.registry import (
    REGISTERED_CLAIMS,
    ClaimLabel,
    ClaimPath,
    CredentialType,
    DecoyPolicy,
    TypeRegistry,
    all_types,
    default_registry,
    get_type,
    load_registry,
    load_type,
    path_to_str,
    validate_claims,
)
from schemas.resident_id import (
    is_valid_resident_id,
    make_resident_id,
    parse_resident_id,
    resident_id_check_char,
    validate_resident_id,
)
from schemas.uscc import (
    is_valid_uscc,
    make_uscc,
    org_code_check_char,
    parse_uscc,
    uscc_check_char,
    validate_uscc,
)

__all__ = [
    # errors
    "CredentialTypeError",
    "FieldError",
    "SchemaError",
    "InvalidValue",
    "InvalidUscc",
    "InvalidResidentId",
    "UnknownCredentialType",
    "TypeDefinitionError",
    # types
    "REGISTERED_CLAIMS",
    "ClaimLabel",
    "ClaimPath",
    "CredentialType",
    "DecoyPolicy",
    "TypeRegistry",
    "all_types",
    "default_registry",
    "get_type",
    "load_registry",
    "load_type",
    "path_to_str",
    "validate_claims",
    # GB 32100-2015
    "validate_uscc",
    "is_valid_uscc",
    "parse_uscc",
    "uscc_check_char",
    "org_code_check_char",
    "make_uscc",
    # GB 11643-1999
    "validate_resident_id",
    "is_valid_resident_id",
    "parse_resident_id",
    "resident_id_check_char",
    "make_resident_id",
]
