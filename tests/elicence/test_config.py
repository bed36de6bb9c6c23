"""elicence.config.Settings: defaults for the demo, every placeholder refused in production."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from elicence.config import ConfigError, Mode, Settings
from keys.keystore import generate_kek

PG = "postgresql+psycopg://elicence:s3cret@db.internal:5432/elicence"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def problems(env, tmp_path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as exc:
        Settings.from_env(env, var_dir=tmp_path)
    assert exc.value.code == "config_invalid"
    return exc.value.problems


def test_demo_defaults(tmp_path):
    s = Settings.from_env({}, var_dir=tmp_path)
    assert s.mode is Mode.DEMO and not s.production
    assert s.database_url == "sqlite:///var/elicence.db"
    assert (s.host, s.port, s.public_url) == ("127.0.0.1", 8000, "http://127.0.0.1:8000")
    assert s.kek_file == tmp_path / "kek" and s.kek_generated
    assert s.status_ttl == 60
    assert s.purge_interval == 600


def test_the_status_ttl_reaches_the_served_tokens(tmp_path):
    from elicence.app import open_issuer

    settings = Settings.from_env({"ELICENCE_STATUS_TTL": "7", "ELICENCE_DATABASE_URL": f"sqlite:///{tmp_path}/e.db"},
                                 var_dir=tmp_path)
    assert settings.status_ttl == 7 and open_issuer(settings).policy.status_ttl == 7


def test_the_port_moves_the_default_public_url(tmp_path):
    s = Settings.from_env({"ELICENCE_PORT": "8123", "ELICENCE_HOST": "0.0.0.0"}, var_dir=tmp_path)
    assert (s.host, s.port, s.public_url) == ("0.0.0.0", 8123, "http://127.0.0.1:8123")


def test_demo_kek_is_generated_once_with_0600(tmp_path):
    first = Settings.from_env({}, var_dir=tmp_path / "var")
    kek = first.kek()
    assert len(kek) == 32
    assert stat.S_IMODE(os.stat(tmp_path / "var" / "kek").st_mode) == 0o600
    assert first.kek() == kek
    assert Settings.from_env({}, var_dir=tmp_path / "var").kek() == kek


def test_an_inline_kek_is_used_and_never_shown(tmp_path):
    kek = generate_kek()
    s = Settings.from_env({"ELICENCE_KEK": b64(kek)}, var_dir=tmp_path)
    assert s.kek() == kek and s.kek_file is None
    assert b64(kek) not in repr(s) and str(kek) not in repr(s)
    assert s.describe()["kek"] == "$ELICENCE_KEK"
    assert not (tmp_path / "kek").exists()


def test_a_kek_file_is_read(tmp_path):
    kek = generate_kek()
    path = tmp_path / "kek.txt"
    path.write_text(b64(kek) + "\n")
    s = Settings.from_env({"ELICENCE_KEK_FILE": str(path)}, var_dir=tmp_path)
    assert s.kek() == kek and not s.kek_generated


def test_production_accepts_a_real_deployment(tmp_path):
    env = {
        "ELICENCE_MODE": "production",
        "ELICENCE_DATABASE_URL": PG,
        "ELICENCE_PUBLIC_URL": "https://licence.example.gov.cn/",
        "ELICENCE_KEK": b64(generate_kek()),
    }
    s = Settings.from_env(env, var_dir=tmp_path)
    assert s.production and s.public_url == "https://licence.example.gov.cn"
    described = s.describe()
    assert "s3cret" not in str(described) and "s3cret" not in repr(s)
    assert described["database"] == "postgresql+psycopg://elicence:***@db.internal:5432/elicence"


def test_production_refuses_every_placeholder_at_once(tmp_path):
    found = problems({"ELICENCE_MODE": "production"}, tmp_path)
    joined = "\n".join(found)
    assert len(found) == 4, found
    assert "ELICENCE_DATABASE_URL is SQLite" in joined
    assert "must be https://" in joined
    assert "loopback host" in joined
    assert "no key-encryption key" in joined and "ELICENCE_KEK" in joined


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"ELICENCE_MODE": "staging"}, "ELICENCE_MODE='staging'"),
        ({"ELICENCE_PORT": "80000"}, "ELICENCE_PORT='80000'"),
        ({"ELICENCE_PORT": "eighty"}, "ELICENCE_PORT='eighty'"),
        ({"ELICENCE_DATABASE_URL": "not a url"}, "ELICENCE_DATABASE_URL is not a database URL"),
        ({"ELICENCE_DATABASE_URL": "mysql://u@h/db"}, "'mysql' is not supported"),
        ({"ELICENCE_PUBLIC_URL": "ftp://x"}, "an absolute http(s) URL"),
        ({"ELICENCE_PUBLIC_URL": "https://x.gov.cn/?a=1"}, "no query, fragment or credentials"),
        ({"ELICENCE_PUBLIC_URL": "http://192.0.2.10:8000"}, "http is accepted only for loopback hosts"),
        ({"ELICENCE_KEK": "AAAA", "ELICENCE_KEK_FILE": "/x"}, "set only one of"),
        ({"ELICENCE_KEK": b64(bytes(32))}, "placeholder"),
        ({"ELICENCE_KEK": "not base64 !"}, "ELICENCE_KEK is not base64url"),
        ({"ELICENCE_KEK_FILE": "/nonexistent/kek"}, "does not exist"),
        ({"ELICENCE_STATUS_TTL": "0"}, "ELICENCE_STATUS_TTL='0'"),
        ({"ELICENCE_STATUS_TTL": "3601"}, "from 1 to 3600"),
        ({"ELICENCE_STATUS_TTL": "1.5"}, "ELICENCE_STATUS_TTL='1.5'"),
        ({"ELICENCE_PURGE_INTERVAL": "-1"}, "ELICENCE_PURGE_INTERVAL='-1'"),
        ({"ELICENCE_PURGE_INTERVAL": "86401"}, "from 0 (never) to 86400"),
        ({"ELICENCE_PURGE_INTERVAL": "ten"}, "ELICENCE_PURGE_INTERVAL='ten'"),
    ],
)
def test_bad_settings_are_named(tmp_path, env, fragment):
    found = problems(env, tmp_path)
    assert any(fragment in p for p in found), found


def test_loopback_http_is_fine_for_the_demo(tmp_path):
    for url in ("http://localhost:9000", "http://[::1]:8000", "http://127.0.0.2"):
        assert Settings.from_env({"ELICENCE_PUBLIC_URL": url}, var_dir=tmp_path).public_url == url
