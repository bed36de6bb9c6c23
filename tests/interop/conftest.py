"""Shared by the interop tests that run an independent library under node: find node (>= 20) and npm,
and install a test folder's locked packages (``npm ci``, once, under a file lock) — skipping with the
reason when node, npm or the npm registry is missing. Test modules use the ``npm_project`` fixture
(conftest modules are not importable under ``--import-mode=importlib``)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

NPM_CI_TIMEOUT = 300
#: npm's messages when the registry cannot be reached (DNS, refused, reset, timed out, offline).
_UNREACHABLE = re.compile(r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|"
                          r"network request .* failed|request to .* failed|--offline")


def _locked_versions_installed(folder: Path, names: tuple[str, ...]) -> bool:
    lock = json.loads((folder / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    for name in names:
        manifest = folder / "node_modules" / name / "package.json"
        if not manifest.is_file():
            return False
        if json.loads(manifest.read_text(encoding="utf-8"))["version"] != lock[f"node_modules/{name}"]["version"]:
            return False
    return True


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    # Two pytest processes (xdist workers, parallel runs) must not run npm ci into one folder at once.
    tag = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"elicence-npm-{tag}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install(folder: Path, libraries: tuple[str, ...], what: str) -> str:
    """The node executable, with ``folder``'s locked ``libraries`` installed (``npm ci`` when needed)."""
    found, npm = shutil.which("node"), shutil.which("npm")
    if found is None or npm is None:
        pytest.skip(f"node and npm are needed to run {what} (node: {found or 'not found'}, npm: {npm or 'not found'})")
    version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.skip(f"{what} needs node >= 20 (fetch, WebCrypto, ES2022); this is node {version}")
    with _folder_lock(folder):
        if not _locked_versions_installed(folder, libraries):
            try:
                done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=folder,
                                      capture_output=True, text=True, timeout=NPM_CI_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.skip(f"npm ci did not finish in {NPM_CI_TIMEOUT} s: is the npm registry reachable?")
            output = done.stdout + done.stderr
            unreachable = _UNREACHABLE.search(output) if done.returncode != 0 else None
            if unreachable:
                line = next(x for x in output.splitlines() if unreachable.group(0) in x).strip()
                pytest.skip(f"the npm registry is unreachable, cannot install {what}: {line}")
            assert done.returncode == 0, f"npm ci failed in {folder}:\n{output[-4000:]}"
            assert _locked_versions_installed(folder, libraries), f"npm ci left {libraries} off the locked versions"
    return found


@pytest.fixture(scope="session")
def npm_project() -> Callable[[Path, tuple[str, ...], str], str]:
    """``npm_project(folder, libraries, what)``: node's path, the folder's locked packages installed."""
    return install
