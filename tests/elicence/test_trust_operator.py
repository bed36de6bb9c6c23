"""The deployment's trust list (/trust/list): what it names, who signed it, what a key event changes."""

from __future__ import annotations

import base64
import stat
import time

import pytest
from fastapi.testclient import TestClient

from credentials import trust
from credentials.errors import CredentialError
from elicence.app import create_app, open_deployment
from elicence.config import Settings
from keys.keystore import generate_kek


def _settings(tmp_path, **extra) -> Settings:
    env = {"ELICENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", **extra}
    return Settings.from_env(env, var_dir=tmp_path / "var")


@pytest.fixture
def deployment(tmp_path):
    settings = _settings(tmp_path)
    dep = open_deployment(settings)
    dep.issuer.create_authority(slug="sh-amr", name_zh="上海市市场监督管理局", name_en="Shanghai AMR",
                                types=("business-licence",), region="310000", actor="test")
    return settings, dep


def test_the_trust_list_names_each_authority_with_its_keys_and_verifies_with_the_pinned_operator_key(deployment):
    settings, dep = deployment
    with TestClient(create_app(issuer=dep.issuer, wallet=dep.wallet, trust=dep.trust)) as client:
        r = client.get("/trust/list")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/trustlist+jwt")
        assert "max-age=" in r.headers["cache-control"]
        pinned = client.get("/trust/operator.jwk").json()
    listed = trust.load_trust_list(r.text, operator_key=pinned, now=time.time())
    entry = listed.issuer(dep.issuer.issuer_id("sh-amr"))
    assert entry.name["zh-CN"] == "上海市市场监督管理局" and entry.region == "310000"
    assert entry.vcts == ("https://elicence.cn/vct/business-licence",)
    assert [k["kid"] for k in entry.jwks] == [k["kid"] for k in dep.issuer.jwks("sh-amr")["keys"]]
    # Another key cannot stand in for the operator's.
    from keys.signer import SoftwareSigner

    with pytest.raises(CredentialError) as err:
        trust.load_trust_list(r.text, operator_key=dict(SoftwareSigner.generate().public_jwk), now=time.time())
    assert err.value.code == "invalid_signature"


def test_the_operator_key_is_created_once_with_mode_0600_and_kept(deployment, tmp_path):
    settings, dep = deployment
    path = settings.trust_key_file
    assert path is not None and stat.S_IMODE(path.stat().st_mode) == 0o600
    again = open_deployment(settings)
    assert again.trust is not None and again.trust.public_jwk == dep.trust.public_jwk


def test_a_rotated_key_joins_and_a_compromised_key_leaves_the_next_list(deployment):
    _, dep = deployment
    operator = dep.issuer.create_operator(authority="sh-amr", name="t").operator
    first = dep.trust.token()
    assert dep.trust.token() == first  # kept for `refresh` seconds
    old = dep.issuer.keys(operator)[0]["kid"]
    new = dep.issuer.rotate_key(operator)["kid"]
    dep.trust.invalidate()
    listed = trust.load_trust_list(dep.trust.token(), operator_key=dep.trust.public_jwk, now=time.time())
    kids = {k["kid"] for k in listed.issuer(dep.issuer.issuer_id("sh-amr")).jwks}
    assert new in kids and old not in kids  # retired, and no credential of it is unexpired
    dep.issuer.compromise_key(operator, kid=new, reason="test")
    dep.trust.invalidate()
    listed = trust.load_trust_list(dep.trust.token(), operator_key=dep.trust.public_jwk, now=time.time())
    assert new not in {k["kid"] for k in listed.issuer(dep.issuer.issuer_id("sh-amr")).jwks}


def test_sequence_grows_with_time(deployment):
    _, dep = deployment
    first = trust.load_trust_list(dep.trust.token(), operator_key=dep.trust.public_jwk, now=time.time())
    dep.trust.invalidate()
    dep.trust._clock = lambda: time.time() + 5  # a later signing
    second = trust.load_trust_list(dep.trust.token(), operator_key=dep.trust.public_jwk, now=time.time() + 5)
    assert second.sequence > first.sequence


def test_production_without_an_operator_key_publishes_no_trust_list(tmp_path):
    kek = base64.urlsafe_b64encode(generate_kek()).decode().rstrip("=")
    settings = Settings.from_env({"ELICENCE_MODE": "production", "ELICENCE_DATABASE_URL": "postgresql://u@db/e",
                                  "ELICENCE_PUBLIC_URL": "https://licence.example.gov.cn", "ELICENCE_KEK": kek},
                                 var_dir=tmp_path)
    assert settings.trust_key_file is None
    with_key = Settings.from_env({"ELICENCE_MODE": "production", "ELICENCE_DATABASE_URL": "postgresql://u@db/e",
                                  "ELICENCE_PUBLIC_URL": "https://licence.example.gov.cn", "ELICENCE_KEK": kek,
                                  "ELICENCE_TRUST_OPERATOR_KEY_FILE": str(tmp_path / "op.jwk")}, var_dir=tmp_path)
    assert with_key.trust_key_file == tmp_path / "op.jwk"
