"""OpenID4VP 1.0 examples as data (tests/vectors/openid4vp/examples.json), one case per example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from credentials import dcql, jws
from credentials import openid4vp as vp
from keys.signer import SoftwareSigner
from keys.x509 import issue_access_certificate, make_registrar_ca, x5c_encode

DATA = json.loads((Path(__file__).parents[1] / "vectors" / "openid4vp" / "examples.json").read_text("utf-8"))
CASES = DATA["cases"]
T0 = 1_780_000_000

CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA = make_registrar_ca(CA_KEY, common_name="Registrar", not_before=T0 - 86_400, not_after=T0 + 86_400 * 365)
SIGNER = SoftwareSigner.generate("ES256")
X5C = x5c_encode([
    issue_access_certificate(ca_certificate=CA, ca_key=CA_KEY, dns_name="client.example.org",
                             public_key=SIGNER.private_key.public_key(), organization="Example Verifier",
                             not_before=T0 - 86_400, not_after=T0 + 86_400 * 30)
])


def _error(exc: vp.OpenId4VpError) -> dict:
    return {"error": exc.code, "reason": exc.reason}


def _run(case: dict):
    kind, value = case["kind"], case["input"]
    if kind == "dcql_query":
        query = dcql.parse_query(jws.dumps(value))
        assert query.to_json() == value  # every member of the example is kept and written back
        return {"ids": list(query.ids), "round_trip": True}
    if kind == "dcql_match":
        query = dcql.parse_query(value)
        candidates = [dcql.Candidate(c["vct"], c["claims"]) for c in case["candidates"]]
        result = dcql.match(query, candidates)
        out = {"selection": list(result.selection)}
        expected = case["expected"]
        if "satisfied" in expected:
            out["satisfied"] = result.satisfied
        if "disclose" in expected:
            out["disclose"] = {
                qid: [[list(p) for p in m.disclose] for m in result.by_query[qid]] for qid in expected["disclose"]
            }
        if "matches" in expected:
            out["matches"] = {qid: len(result.by_query[qid]) for qid in expected["matches"]}
        return out
    if kind == "claims_path":
        return [
            {"path": entry["path"], "values": [v for _, v in dcql.select_claims(value, entry["path"])]}
            for entry in case["expected"]
        ]
    if kind == "request_uri":
        try:
            ref = vp.parse_authorization_request_uri(value)
        except vp.OpenId4VpError as exc:
            return _error(exc)
        assert vp.parse_authorization_request_uri(vp.authorization_request_uri(ref)) == ref
        return {"client_id": ref.client_id, "request_uri": ref.request_uri,
                "request_uri_method": ref.request_uri_method}
    if kind == "request_object":
        token = jws.sign(value, SIGNER, typ=vp.REQUEST_TYP, header={"x5c": X5C}, include_kid=False)
        try:
            request = vp.verify_request_object(token, client_id=value["client_id"], trust_anchors=[CA],
                                               now=value["iat"] + 10, wallet_nonce=case.get("wallet_nonce"))
        except vp.OpenId4VpError as exc:
            return _error(exc)
        assert request.verifier_name == "Example Verifier"
        return {"client_id": request.client_id, "response_uri": request.response_uri, "nonce": request.nonce,
                "state": request.state, "dns_name": request.dns_name, "query_ids": list(request.dcql_query.ids)}
    if kind == "response_form":
        response = vp.parse_response_form([tuple(pair) for pair in value])
        if response.error is not None:
            return {"error": response.error, "error_description": response.error_description, "state": response.state}
        return {"vp_token": {k: list(v) for k, v in response.vp_token.items()}, "state": response.state}
    raise AssertionError(f"unknown vector kind {kind}")


@pytest.mark.parametrize("case", CASES, ids=[f"s{c['section']}-{c['name']}" for c in CASES])
def test_specification_example(case):
    assert case["document"].startswith("OpenID for Verifiable Presentations 1.0")
    assert case["section"] and case["anchor"] and case["source"]
    assert _run(case) == case["expected"]
