"""keys/keystore.py: the key-encryption key from the environment or a file, with clear error codes."""

from __future__ import annotations

import base64
import stat

import pytest

from keys.errors import KeyMaterialError
from keys.jwk import b64u_encode
from keys.keystore import KEK_ENV, KEK_FILE_ENV, generate_kek, load_kek, write_kek_file


def _fails(code: str, fn, *args, **kwargs) -> KeyMaterialError:
    with pytest.raises(KeyMaterialError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, info.value.detail
    return info.value


def test_generated_keks_are_32_random_bytes():
    a, b = generate_kek(), generate_kek()
    assert len(a) == len(b) == 32 and a != b


def test_kek_from_environment_variable():
    kek = generate_kek()
    assert load_kek(env={KEK_ENV: b64u_encode(kek)}) == kek


def test_kek_defaults_to_the_process_environment(monkeypatch):
    kek = generate_kek()
    monkeypatch.delenv(KEK_FILE_ENV, raising=False)
    monkeypatch.setenv(KEK_ENV, b64u_encode(kek))
    assert load_kek() == kek


def test_kek_file_is_written_0600_and_read_back(tmp_path):
    path = tmp_path / "kek"
    kek = write_kek_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().endswith("\n")  # a trailing newline, as editors leave, is accepted
    assert load_kek(env={KEK_FILE_ENV: str(path)}) == kek


def test_kek_file_is_never_overwritten(tmp_path):
    path = tmp_path / "kek"
    kek = write_kek_file(path)
    _fails("keystore_error", write_kek_file, path)
    assert load_kek(env={KEK_FILE_ENV: str(path)}) == kek


def test_write_kek_file_refuses_a_short_key(tmp_path):
    _fails("keystore_kek_invalid", write_kek_file, tmp_path / "kek", b"\x01" * 31)
    assert not (tmp_path / "kek").exists()


@pytest.mark.parametrize("env", [{}, {KEK_ENV: ""}, {KEK_FILE_ENV: ""}], ids=["unset", "empty-value", "empty-path"])
def test_missing_kek_is_kek_missing(env):
    error = _fails("keystore_kek_missing", load_kek, env=env)
    assert KEK_ENV in error.detail and KEK_FILE_ENV in error.detail


def test_kek_file_that_does_not_exist_is_kek_missing(tmp_path):
    _fails("keystore_kek_missing", load_kek, env={KEK_FILE_ENV: str(tmp_path / "absent")})


@pytest.mark.parametrize(
    "value",
    [
        base64.b64encode(bytes(range(32))).decode(),  # standard base64 with padding (openssl rand -base64 32)
        b64u_encode(bytes(range(16))),  # AES-128 size
        b64u_encode(bytes(range(33))),
        b64u_encode(bytes(32)),  # all zeros: a placeholder
        b64u_encode(b"ab" * 16),  # two distinct bytes: a placeholder
        "change-me",
        "",
    ],
    ids=["std-base64-padded", "16-bytes", "33-bytes", "zeros", "repeated", "placeholder-text", "empty-file"],
)
def test_malformed_kek_is_kek_invalid(tmp_path, value):
    if value:
        _fails("keystore_kek_invalid", load_kek, env={KEK_ENV: value})
    path = tmp_path / "kek"
    path.write_text(value + "\n")
    _fails("keystore_kek_invalid", load_kek, env={KEK_FILE_ENV: str(path)})


def test_both_sources_set_is_ambiguous(tmp_path):
    path = tmp_path / "kek"
    kek = write_kek_file(path)
    _fails("keystore_kek_invalid", load_kek, env={KEK_ENV: b64u_encode(kek), KEK_FILE_ENV: str(path)})


def test_kek_file_with_binary_content_is_kek_invalid(tmp_path):
    path = tmp_path / "kek"
    path.write_bytes(bytes(range(128, 160)))
    _fails("keystore_kek_invalid", load_kek, env={KEK_FILE_ENV: str(path)})
