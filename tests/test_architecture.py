"""The import rules of CONVENTIONS.md, enforced by walking every module's imports with ``ast``.

``schemas`` <- ``keys`` <- ``credentials`` <- roles (``issuer``, ``wallet``, ``verifier``) <- ``elicence``.
A role never imports another role. PyJWT (``jwt``) is imported only by ``credentials/jws.py``. The
libraries and the verifier SDK never import a web framework or a database layer.

Imports anywhere in a file count (inside functions and ``if TYPE_CHECKING:`` too), and so do
``importlib.import_module("...")`` / ``__import__("...")`` calls with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("keys", "schemas", "credentials", "issuer", "wallet", "verifier", "elicence")
ROLES = frozenset({"issuer", "wallet", "verifier"})
FRAMEWORKS = frozenset({"fastapi", "sqlalchemy", "starlette", "alembic"})
FRAMEWORK_FREE = ("keys/", "schemas/", "credentials/", "verifier/sdk.py", "verifier/receipts.py")
JWT_HOME = "credentials/jws.py"

#: For each package, the project packages it must not import.
FORBIDDEN: dict[str, frozenset[str]] = {
    "schemas": frozenset({"keys", "credentials", "elicence"} | ROLES),
    "keys": frozenset({"credentials", "elicence"} | ROLES),
    "credentials": frozenset({"elicence"} | ROLES),
    **{role: frozenset({"elicence"} | (ROLES - {role})) for role in ROLES},
    "elicence": frozenset(),
}


def module_name(rel_path: str) -> tuple[str, bool]:
    """Dotted module name of a repository-relative path, and whether it is a package ``__init__``."""
    parts = rel_path[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    # "from pkg import sub" may import the submodule pkg.sub: count both names.
    return [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]


def _dynamic(node: ast.Call) -> str | None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name in {"import_module", "__import__"} and node.args and isinstance(node.args[0], ast.Constant):
        value = node.args[0].value
        return value if isinstance(value, str) else None
    return None


def imported_modules(source: str, rel_path: str) -> set[str]:
    """Every module name the file imports (absolute, dotted)."""
    module, is_package = module_name(rel_path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=rel_path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.update(_absolute(node, module, is_package))
        elif isinstance(node, ast.Call) and (name := _dynamic(node)):
            found.add(name)
    return {name for name in found if name}


def violations(rel_path: str, source: str) -> list[str]:
    """The import rules this file breaks, as readable sentences."""
    package = rel_path.split("/")[0]
    tops = {name.split(".")[0] for name in imported_modules(source, rel_path)}
    out = [f"{rel_path} imports {t} ({package} must not)" for t in sorted(tops & FORBIDDEN[package])]
    if "jwt" in tops and rel_path != JWT_HOME:
        out.append(f"{rel_path} imports jwt (PyJWT); only {JWT_HOME} may")
    if rel_path.startswith(FRAMEWORK_FREE):
        out.extend(f"{rel_path} imports {t} (no web framework or database here)" for t in sorted(tops & FRAMEWORKS))
    return out


def project_files() -> list[str]:
    files = []
    for package in PACKAGES:
        files.extend(p.relative_to(ROOT).as_posix() for p in sorted((ROOT / package).rglob("*.py")))
    return [f for f in files if "/__pycache__/" not in f]


FILES = project_files()


def test_the_walk_finds_the_code():
    assert {"keys/jwk.py", "keys/keystore.py", "credentials/jws.py", "credentials/errors.py"} <= set(FILES)


@pytest.mark.parametrize("rel_path", FILES)
def test_imports_follow_the_layering(rel_path):
    assert violations(rel_path, (ROOT / rel_path).read_text(encoding="utf-8")) == []


def _file_of(module: str) -> str | None:
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if (ROOT / candidate).is_file():
            return candidate
    return None


def _closure(start: str) -> set[str]:
    """Project files loaded by importing ``start``: its imports, transitively, and every parent __init__."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        rel_path = todo.pop()
        if rel_path in seen:
            continue
        seen.add(rel_path)
        module, _ = module_name(rel_path)
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        names = imported_modules((ROOT / rel_path).read_text(encoding="utf-8"), rel_path) | set(parents)
        todo.extend(f for name in names if name.split(".")[0] in PACKAGES and (f := _file_of(name)))
    return seen


def test_verifier_sdk_loads_no_framework_even_indirectly():
    if not (ROOT / "verifier/sdk.py").is_file():
        pytest.skip("verifier/sdk.py does not exist yet")
    reached = _closure("verifier/sdk.py")
    assert "verifier/__init__.py" in reached  # importing verifier.sdk runs the package's __init__
    leaks = {
        f: sorted({n.split(".")[0] for n in imported_modules((ROOT / f).read_text(encoding="utf-8"), f)} & FRAMEWORKS)
        for f in sorted(reached)
    }
    assert {f: names for f, names in leaks.items() if names} == {}


# --- the checker itself catches what it should ------------------------------------------------------


@pytest.mark.parametrize(
    ("rel_path", "source", "expected"),
    [
        ("schemas/x.py", "import keys.jwk", "schemas/x.py imports keys"),
        ("schemas/x.py", "from credentials import errors", "schemas/x.py imports credentials"),
        ("keys/x.py", "from credentials.errors import Malformed", "keys/x.py imports credentials"),
        ("keys/x.py", "def f():\n    import issuer.service", "keys/x.py imports issuer"),
        ("credentials/x.py", "from verifier import sdk", "credentials/x.py imports verifier"),
        ("credentials/x.py", "import elicence.config", "credentials/x.py imports elicence"),
        ("wallet/service.py", "from issuer.api import router", "wallet/service.py imports issuer"),
        ("issuer/store.py", "from ..verifier import checks", "issuer/store.py imports verifier"),
        ("verifier/checks.py", "import importlib\nimportlib.import_module('wallet.store')", "verifier/checks.py imports wallet"),
        ("verifier/api.py", "from elicence.config import Settings", "verifier/api.py imports elicence"),
        ("credentials/sd_jwt.py", "import jwt", "credentials/sd_jwt.py imports jwt (PyJWT); only credentials/jws.py may"),
        ("issuer/service.py", "from jwt.algorithms import ECAlgorithm", "issuer/service.py imports jwt (PyJWT); only credentials/jws.py may"),
        ("keys/x.py", "from sqlalchemy import select", "keys/x.py imports sqlalchemy (no web framework or database here)"),
        ("schemas/x.py", "import fastapi", "schemas/x.py imports fastapi (no web framework or database here)"),
        ("credentials/x.py", "from starlette.requests import Request", "credentials/x.py imports starlette (no web framework or database here)"),
        ("verifier/sdk.py", "import alembic", "verifier/sdk.py imports alembic (no web framework or database here)"),
    ],
)
def test_checker_reports_a_broken_rule(rel_path, source, expected):
    found = violations(rel_path, source)
    assert any(v.startswith(expected) for v in found), found


@pytest.mark.parametrize(
    ("rel_path", "source"),
    [
        ("credentials/jws.py", "import jwt\nfrom keys.jwk import b64u_encode\nimport schemas"),
        ("issuer/api.py", "from fastapi import APIRouter\nfrom sqlalchemy import select\nfrom . import service"),
        ("verifier/service.py", "from credentials import sd_jwt\nfrom .sdk import verify"),
        ("elicence/app.py", "import issuer.api, wallet.api, verifier.api"),
        ("keys/keystore.py", "from keys.jwk import thumbprint\nfrom .signer import Signer"),
    ],
)
def test_checker_allows_what_the_layering_allows(rel_path, source):
    assert violations(rel_path, source) == []


def test_relative_imports_resolve_against_the_package():
    assert "issuer.service" in imported_modules("from .service import issue", "issuer/api.py")
    assert "credentials.errors" in imported_modules("from ..credentials import errors", "issuer/api.py")
    assert "keys.jwk" in imported_modules("from . import jwk", "keys/__init__.py")


def test_import_closure_follows_project_imports_and_parent_packages():
    reached = _closure("credentials/jws.py")
    assert {"credentials/__init__.py", "keys/__init__.py", "keys/jwk.py", "keys/signer.py"} <= reached
    assert "keys/keystore.py" in reached  # through keys/__init__.py, which a bare `import keys.jwk` runs
    assert not any(f.startswith(tuple(f"{r}/" for r in ROLES)) for f in reached)
