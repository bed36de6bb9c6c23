"""RFC 9901 examples (tests/vectors/rfc9901/*.json), one case per example, named after its section.

Every signed example is verified with the RFC's published issuer key (Appendix A.5) and, where it has
a KB-JWT, with the Holder key from its ``cnf`` claim, at the KB-JWT's own ``iat``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from credentials import jws
from credentials.errors import CredentialError
from credentials.sd_jwt import (
    KeyBindingPolicy,
    SdJwt,
    digest,
    make_disclosure,
    parse_disclosure,
    process_disclosures,
    verify,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc9901"
CASES = sorted(VECTORS.glob("*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _case_id(path: Path) -> str:
    return "RFC9901-s" + _load(path)["section"]


def _contents(d) -> list:
    return [d.salt] + ([] if d.name is None else [d.name]) + [d.value]


def test_every_vector_file_names_its_document_and_provenance():
    assert len(CASES) >= 12
    for path in CASES:
        doc = _load(path)
        assert doc["document"] == "RFC 9901"
        assert doc["section"] and doc["provenance"]


@pytest.mark.parametrize("path", CASES, ids=_case_id)
def test_rfc9901_example(path: Path) -> None:
    doc = _load(path)
    checked = 0

    for item in doc.get("disclosures", []):
        d = parse_disclosure(item["encoded"])
        assert d.digest == item["digest"], item["claim"]
        assert _contents(d) == item["contents"], item["claim"]
        assert d.encoded == item["encoded"]
        # Our own encoding of the same contents decodes to the same claim (the bytes may differ).
        ours = make_disclosure(d.name, d.value, salt=d.salt)
        assert _contents(parse_disclosure(ours.encoded)) == item["contents"]
        checked += 1

    if "variants" in doc:
        parsed = [parse_disclosure(e) for e in doc["variants"]["encoded"]]
        assert all(_contents(d) == doc["variants"]["contents"] for d in parsed)
        # s4.2.1: the digest is over the chosen encoding, so each variant has its own.
        assert len({d.digest for d in parsed}) == len(parsed)
        checked += 1

    for item in doc.get("digests", []):
        assert digest(item["encoded"]) == item["digest"]
        checked += 1

    for case in doc.get("processing", []):
        if "error" in case:
            with pytest.raises(CredentialError) as err:
                process_disclosures(case["payload"], case["disclosures"])
            assert err.value.code == case["error"]
        else:
            assert process_disclosures(case["payload"], case["disclosures"]).claims == case["processed"]
        checked += 1

    if "issued" in doc:
        issued = doc["issued"]
        sd = SdJwt.parse(issued["sd_jwt"])
        assert sd.kb_jwt is None and sd.serialize() == issued["sd_jwt"]
        assert jws.parse(sd.issuer_jwt).payload == issued["payload"]
        assert list(sd.disclosures) == [d["encoded"] for d in doc["disclosures"]]
        key = jws.public_key_from_jwk(doc["issuer_jwk"])
        result = verify(issued["sd_jwt"], issuer_key=key, expected_typ=doc["typ"], now=issued["now"])
        assert result.claims == issued["processed"]
        checked += 1

    if "presentation" in doc:
        pres = doc["presentation"]
        key = jws.public_key_from_jwk(doc["issuer_jwk"])
        kb = KeyBindingPolicy(**pres["key_binding"]) if pres["key_binding"] else None
        result = verify(pres["text"], issuer_key=key, expected_typ=doc["typ"], now=pres["now"], kb=kb)
        assert result.claims == pres["processed"]
        assert result.kb_payload == pres["kb_payload"]
        assert SdJwt.parse(pres["text"]).serialize() == pres["text"]
        checked += 1

    if "decoys" in doc:
        payload = jws.parse(SdJwt.parse(doc["presentation"]["text"]).issuer_jwt).payload
        embedded = set(payload["_sd"]) | set(payload["address"]["_sd"])
        real = {d["digest"] for d in doc["disclosures"]}
        assert set(doc["decoys"]) <= embedded and not set(doc["decoys"]) & real
        assert embedded == real | set(doc["decoys"])
        checked += 1

    assert checked, "vector file with nothing to check"
