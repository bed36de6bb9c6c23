"""The service item catalogue: the shipped items, and refusals of bad catalogue files."""

from __future__ import annotations

import json
import re

import pytest

from verifier.service import CatalogueInvalid, UnknownItem, load_catalogue

SCOPE_CODE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")  # schemas/types/staff-authorisation scope.matters


def test_the_shipped_catalogue_has_five_realistic_items_with_exemptable_materials():
    catalogue = load_catalogue()
    names = {item.name["en"] for item in catalogue.items.values()}
    assert {"Food business permit application", "Change of registration", "Tax registration",
            "Bank account opening (basic deposit account)", "Public tender bid"} <= names
    for item in catalogue.items.values():
        assert SCOPE_CODE.match(item.id)
        assert any(m.satisfied_by is not None for m in item.materials)
        assert any(m.satisfied_by is None for m in item.materials)
        agent = [m for m in item.materials if m.applies_to == "agent"]
        assert agent and agent[0].satisfied_by.scope_covers_item


def test_an_unknown_item_is_refused():
    with pytest.raises(UnknownItem) as info:
        load_catalogue().item("310000-none")
    assert info.value.code == "unknown_item"


GOOD = {"id": "x-01", "name": {"zh-CN": "事项", "en": "Item"},
        "materials": [{"id": "m1", "name": {"zh-CN": "材料", "en": "Material"},
                       "satisfied_by": {"type": "business-licence", "claims": [["uscc"]]}}]}


@pytest.mark.parametrize("change", [
    lambda d: d["materials"][0]["satisfied_by"].update(type="passport"),
    lambda d: d["materials"][0]["satisfied_by"].update(claims=[["no_such_claim"]]),
    lambda d: d["materials"][0].update(id="bad id"),
    lambda d: d.update(id="bad id"),
    lambda d: d.update(materials=[]),
    lambda d: d["materials"][0].update(name={"zh-CN": "材料"}),
    lambda d: d["materials"][0].update(applies_to="everyone"),
    lambda d: d["materials"].append(dict(d["materials"][0])),
])
def test_a_bad_catalogue_file_is_refused(tmp_path, change):
    data = json.loads(json.dumps(GOOD))
    change(data)
    path = tmp_path / "item.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CatalogueInvalid) as info:
        load_catalogue([path])
    assert info.value.code == "catalogue_invalid"


def test_a_good_file_loads_and_an_id_defined_twice_is_refused(tmp_path):
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps(GOOD), encoding="utf-8")
    assert list(load_catalogue([tmp_path / "a.json"]).items) == ["x-01"]
    with pytest.raises(CatalogueInvalid):
        load_catalogue([tmp_path / "a.json", tmp_path / "b.json"])
    (tmp_path / "c.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogueInvalid):
        load_catalogue([tmp_path / "c.json"])
