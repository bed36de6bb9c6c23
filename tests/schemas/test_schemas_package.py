"""The schemas package: error codes, docstrings, and that it needs only the stdlib and jsonschema
(and jsonschema-rs, optional, in schemas/compiled.py only)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import schemas

PACKAGE_DIR = Path(schemas.__file__).parent


def test_every_exported_name_exists():
    # the names themselves are pinned in tests/test_exported_members.py
    assert [n for n in schemas.__all__ if not hasattr(schemas, n)] == []


def test_error_codes_are_stable():
    assert schemas.SchemaError.code == "schema_invalid"
    assert schemas.InvalidUscc.code == "schema_invalid"
    assert schemas.InvalidResidentId.code == "schema_invalid"
    assert schemas.UnknownCredentialType.code == "unknown_credential_type"
    assert schemas.TypeDefinitionError.code == "type_definition_invalid"


def test_schemas_imports_only_the_standard_library_jsonschema_and_itself():
    allowed = set(sys.stdlib_module_names) | {"jsonschema", "schemas"}
    for source in sorted(PACKAGE_DIR.glob("*.py")):
        allowed_here = allowed | ({"jsonschema_rs"} if source.name == "compiled.py" else set())
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            for root in roots:
                assert root in allowed_here, f"{source.name} imports {root}"


def test_every_module_has_a_docstring():
    for source in sorted(PACKAGE_DIR.glob("*.py")):
        assert ast.get_docstring(ast.parse(source.read_text(encoding="utf-8"))), source.name
