"""OpenID4VCI 1.0 (final) examples as data (tests/vectors/openid4vci/examples.json), one case per example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from credentials import jws
from credentials import openid4vci as vci

DATA = json.loads((Path(__file__).parents[1] / "vectors" / "openid4vci" / "examples.json").read_text("utf-8"))
CASES = DATA["cases"]


def _offer_dict(offer: vci.CredentialOffer) -> dict:
    return {
        "credential_issuer": offer.credential_issuer,
        "credential_configuration_ids": list(offer.credential_configuration_ids),
        "pre_authorized_code": offer.pre_authorized_code,
        "tx_code": None if offer.tx_code is None else offer.tx_code.to_json(),
    }


def _run(case: dict):
    kind, value = case["kind"], case["input"]
    if kind == "offer_json":
        return _offer_dict(vci.parse_offer(jws.dumps(value)))
    if kind == "offer_uri":
        got = vci.parse_offer_uri(value)
        return {"credential_offer_uri": got} if isinstance(got, str) else _offer_dict(got)
    if kind == "token_request":
        req = vci.parse_token_request([tuple(pair) for pair in value])
        return {"code": req.code, "tx_code": req.tx_code, "client_id": req.client_id}
    if kind == "error":
        err = vci.error_for_code(value)
        return {"error": err.to_dict()["error"], "status": err.status}
    if kind == "nonce_response":
        return vci.nonce_response(value)
    if kind == "credential_request":
        req = vci.parse_credential_request(
            value, configurations=set(case["configurations"]), identifiers=case.get("identifiers")
        )
        return {"configuration_id": req.configuration_id, "proofs": list(req.proofs),
                "credential_identifier": req.credential_identifier}
    if kind == "credential_response":
        return vci.credential_response(value)
    if kind == "proof_jwt":
        result = vci.verify_proof(value, audience=case["audience"], now=case["now"])
        parsed = jws.parse(value)
        assert result.holder_jwk == parsed.header["jwk"]
        assert (result.nonce, result.iat) == (parsed.payload["nonce"], parsed.payload["iat"])
        return {"header": dict(parsed.header), "payload": dict(parsed.payload)}
    if kind == "configuration":
        meta = value.get("credential_metadata", {})
        config = vci.CredentialConfiguration(
            id=case["id"],
            vct=value["vct"],
            scope=value.get("scope"),
            display=tuple(meta.get("display", ())),
            claims=tuple(meta.get("claims", ())),
            signing_algs=tuple(value["credential_signing_alg_values_supported"]),
            proof_algs=tuple(value["proof_types_supported"]["jwt"]["proof_signing_alg_values_supported"]),
        )
        return config.to_json()
    if kind == "well_known":
        return vci.well_known_url(value, case["suffix"])
    raise AssertionError(f"unknown vector kind {kind}")


@pytest.mark.parametrize("case", CASES, ids=[f"s{c['section']}-{c['name']}" for c in CASES])
def test_specification_example(case):
    assert case["document"].startswith("OpenID for Verifiable Credential Issuance 1.0")
    expected = case["expected"]
    if isinstance(expected, dict) and set(expected) == {"error"}:
        with pytest.raises(vci.OpenId4VciError) as info:
            _run(case)
        assert info.value.code == expected["error"]
    else:
        assert _run(case) == expected


def test_every_vector_kind_is_covered():
    kinds = {c["kind"] for c in CASES}
    assert kinds == {
        "offer_json", "offer_uri", "token_request", "error", "nonce_response", "credential_request",
        "credential_response", "proof_jwt", "configuration", "well_known",
    }
