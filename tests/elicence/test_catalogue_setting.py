"""A deployment's own service item catalogue (``ELICENCE_CATALOGUE_DIR``), and the README's worked example
of a service item: the example loads, a deployment serves the items of the directory instead of the
shipped ones, and a bad directory or item stops the start with a clear error."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from elicence.app import open_deployment
from elicence.config import CATALOGUE_DIR_ENV, ConfigError, Settings
from verifier.service import CatalogueInvalid, load_catalogue

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ID = "310000-social-insurance-01"


def readme_item() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Define a service item"):]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None, "the README lost its service item example"
    return json.loads(block.group(1))


def test_the_readme_example_item_loads(tmp_path):
    (tmp_path / "social-insurance.json").write_text(json.dumps(readme_item(), ensure_ascii=False), encoding="utf-8")
    item = load_catalogue([tmp_path / "social-insurance.json"]).item(EXAMPLE_ID)
    assert [m.id for m in item.materials] == ["business-licence-copy", "legal-representative-id", "registration-form",
                                               "agent-authorisation"]
    assert item.materials[1].satisfied_by is not None and item.materials[1].satisfied_by.type == "natural-person"
    assert item.materials[2].satisfied_by is None and item.materials[3].applies_to == "agent"


def test_a_deployment_serves_its_own_catalogue(tmp_path, database_url):
    catalogue = tmp_path / "catalogue"
    catalogue.mkdir()
    (catalogue / "social-insurance.json").write_text(json.dumps(readme_item(), ensure_ascii=False), encoding="utf-8")
    settings = Settings.from_env({"ELICENCE_DATABASE_URL": database_url, CATALOGUE_DIR_ENV: str(catalogue)},
                                 var_dir=tmp_path / "var")
    assert settings.catalogue_dir == catalogue
    verifier = open_deployment(settings).verifier
    assert verifier is not None and [i["id"] for i in verifier.items()] == [EXAMPLE_ID]


def test_without_the_setting_the_shipped_catalogue_is_served(tmp_path):
    settings = Settings.from_env({"ELICENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'e.db'}"}, var_dir=tmp_path / "var")
    assert settings.catalogue_dir is None
    verifier = open_deployment(settings).verifier
    assert verifier is not None and len(verifier.items()) == len(list((ROOT / "verifier" / "catalogue").glob("*.json")))


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_a_directory_without_items_is_refused(tmp_path, where):
    if where == "empty":
        (tmp_path / where).mkdir()
    with pytest.raises(ConfigError) as info:
        Settings.from_env({CATALOGUE_DIR_ENV: str(tmp_path / where)}, var_dir=tmp_path / "var")
    assert CATALOGUE_DIR_ENV in str(info.value)


def test_an_invalid_item_stops_the_service_with_its_code(tmp_path):
    item = readme_item()
    item["materials"][1]["satisfied_by"]["type"] = "passport"
    catalogue = tmp_path / "catalogue"
    catalogue.mkdir()
    (catalogue / "bad.json").write_text(json.dumps(item), encoding="utf-8")
    with pytest.raises(CatalogueInvalid):
        open_deployment(Settings.from_env({"ELICENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'e.db'}",
                                           CATALOGUE_DIR_ENV: str(catalogue)}, var_dir=tmp_path / "var"))
    env = {"PATH": "/usr/bin:/bin", "ELICENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'e.db'}",
           CATALOGUE_DIR_ENV: str(catalogue), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "elicence.cli", "serve", "--port", "1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "catalogue_invalid" in done.stderr and "passport" in done.stderr
