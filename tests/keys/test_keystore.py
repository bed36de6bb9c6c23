"""keys/keystore.py: keys encrypted at rest, told-apart failures (wrong KEK vs tampering), key states."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import threading
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import KeyMaterialError
from keys.jwk import b64u_decode, b64u_encode, generate_private_key, load_public_jwk, private_jwk, public_jwk
from keys.keystore import (
    FileKeyRecordStore,
    InMemoryKeyRecordStore,
    KeyRecord,
    KeyRecordStore,
    KeyState,
    Keystore,
    generate_kek,
)

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(days=90)


def _code(excinfo) -> str:
    return excinfo.value.code


def _raises(code: str, fn, *args, **kwargs) -> KeyMaterialError:
    with pytest.raises(KeyMaterialError) as info:
        fn(*args, **kwargs)
    assert _code(info) == code, info.value.detail
    return info.value


def _verify_with_jwk(jwk, signer, message: bytes = b"signing input") -> None:
    """Verify a signer's JWS-form signature (R || S for ES256) with the published key; raises if bad."""
    public = load_public_jwk(jwk, alg=signer.alg)
    signature = signer.sign(message)
    assert len(signature) == 64
    if signer.alg == "ES256":
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    else:
        public.verify(signature, message)


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path) -> KeyRecordStore:
    if request.param == "memory":
        return InMemoryKeyRecordStore()
    return FileKeyRecordStore(tmp_path / "keystore.json")


@pytest.fixture
def kek() -> bytes:
    return generate_kek()


@pytest.fixture
def path(tmp_path):
    return tmp_path / "keystore.json"


def _edit(path, kid: str, **changes) -> None:
    doc = json.loads(path.read_text())
    doc["keys"][kid].update(changes)
    path.write_text(json.dumps(doc))


def _flip(b64: str, index: int = 0) -> str:
    raw = bytearray(b64u_decode(b64))
    raw[index] ^= 0x01
    return b64u_encode(bytes(raw))


# --- round trips ------------------------------------------------------------------------------------


def test_both_stores_implement_the_protocol(tmp_path):
    assert isinstance(InMemoryKeyRecordStore(), KeyRecordStore)
    assert isinstance(FileKeyRecordStore(tmp_path / "k.json"), KeyRecordStore)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_generated_key_signs_and_verifies_with_its_published_jwk(store, kek, alg):
    ks = Keystore(store, kek)
    kid = ks.generate(alg, now=NOW, label="issuer 2025", owner="samr")
    signer = ks.signer(kid)
    assert (signer.alg, signer.kid) == (alg, kid)
    published = ks.public_jwk(kid)
    assert published["kid"] == kid and published["alg"] == alg and "d" not in published
    _verify_with_jwk(published, signer)
    record = ks.record(kid)
    assert (record.state, record.created_at, record.label, record.owner) == (KeyState.ACTIVE, NOW, "issuer 2025", "samr")


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_imported_private_jwk_decrypts_to_the_same_key(store, kek, alg):
    key = generate_private_key(alg)
    ks = Keystore(store, kek)
    kid = ks.import_private_jwk(private_jwk(key), now=NOW)
    assert private_jwk(ks.signer(kid).private_key) == private_jwk(key)


def test_private_key_is_not_in_the_file_in_clear(path, kek):
    key = generate_private_key("ES256")
    Keystore(FileKeyRecordStore(path), kek).import_private_jwk(private_jwk(key), now=NOW)
    text = path.read_bytes()
    d = private_jwk(key)["d"]
    assert d.encode() not in text
    assert b64u_decode(d) not in text


def test_keystore_file_and_lock_are_mode_0600_even_with_a_permissive_umask(path, kek):
    old = os.umask(0)
    try:
        ks = Keystore(FileKeyRecordStore(path), kek)
        kid = ks.generate(now=NOW)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        ks.retire(kid, now=LATER)  # a rewrite keeps the mode
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.with_name(path.name + ".lock").stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_persisted_keystore_reloads_with_states_and_metadata(path, kek):
    ks = Keystore(FileKeyRecordStore(path), kek)
    active = ks.generate("EdDSA", now=NOW, label="current", owner="samr")
    retired = ks.generate(now=NOW - timedelta(days=365), label="2024", owner="samr")
    ks.retire(retired, now=NOW)

    reopened = Keystore(FileKeyRecordStore(path), kek)
    assert reopened.record(active) == ks.record(active)
    assert reopened.record(retired).state is KeyState.RETIRED
    assert reopened.record(retired).retired_at == NOW
    _verify_with_jwk(reopened.public_jwk(active), reopened.signer(active))
    assert [k["kid"] for k in reopened.jwks()["keys"]] == [active, retired]


def test_record_json_round_trip_and_immutability():
    record = KeyRecord(
        kid="k",
        alg="ES256",
        state=KeyState.RETIRED,
        public_jwk={"kty": "EC"},
        nonce=b"n" * 12,
        ciphertext=b"c" * 40,
        created_at=NOW,
        retired_at=LATER,
        label="l",
        owner="o",
    )
    assert KeyRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.state = KeyState.ACTIVE  # type: ignore[misc]
    with pytest.raises(TypeError):
        record.public_jwk["kty"] = "OKP"  # type: ignore[index]


@pytest.mark.parametrize(
    "change",
    [{"state": "dormant"}, {"nonce": "not base64url!"}, {"created_at": "2025-03-01T08:00:00"}, {"kid": 7}],
    ids=["state", "nonce", "naive-time", "kid-type"],
)
def test_record_with_a_bad_field_is_tampered(change):
    good = KeyRecord("k", "ES256", KeyState.ACTIVE, {}, b"n" * 12, b"c", NOW).to_json()
    _raises("keystore_tampered", KeyRecord.from_json, {**good, **change})


# --- wrong KEK vs tampering ---------------------------------------------------------------------------


def test_wrong_kek_is_told_apart(store, kek):
    kid = Keystore(store, kek).generate(now=NOW)
    other = Keystore(store, generate_kek())
    _raises("keystore_wrong_kek", other.signer, kid)
    _raises("keystore_wrong_kek", other.jwks)
    _raises("keystore_wrong_kek", other.public_jwk, kid)
    _raises("keystore_wrong_kek", other.generate, now=NOW)


def test_second_kek_on_a_fresh_store_cannot_take_it_over(store):
    first, second = Keystore(store, generate_kek()), Keystore(store, generate_kek())
    first.generate(now=NOW)
    _raises("keystore_wrong_kek", second.generate, now=NOW)
    assert len(store.list()) == 1


def test_flipped_ciphertext_byte_is_tampered(path, kek):
    ks = Keystore(FileKeyRecordStore(path), kek)
    kid = ks.generate(now=NOW)
    _edit(path, kid, ciphertext=_flip(ks.record(kid).to_json()["ciphertext"], 5))
    _raises("keystore_tampered", ks.signer, kid)
    _raises("keystore_tampered", ks.jwks)


def test_flipped_nonce_byte_is_tampered(path, kek):
    ks = Keystore(FileKeyRecordStore(path), kek)
    kid = ks.generate(now=NOW)
    _edit(path, kid, nonce=_flip(ks.record(kid).to_json()["nonce"]))
    _raises("keystore_tampered", ks.signer, kid)


def test_ciphertexts_swapped_between_records_are_tampered(path, kek):
    ks = Keystore(FileKeyRecordStore(path), kek)
    a, b = ks.generate(now=NOW), ks.generate(now=NOW)
    ra, rb = ks.record(a).to_json(), ks.record(b).to_json()
    _edit(path, a, nonce=rb["nonce"], ciphertext=rb["ciphertext"])
    _edit(path, b, nonce=ra["nonce"], ciphertext=ra["ciphertext"])
    _raises("keystore_tampered", ks.signer, a)
    _raises("keystore_tampered", ks.signer, b)
    # jwks() only checks tags (it never loads the private key): the associated data alone catches it.
    _raises("keystore_tampered", ks.jwks)


@pytest.mark.parametrize(("field", "value"), [("owner", "another-enterprise"), ("alg", "EdDSA")])
def test_bound_field_changed_in_the_record_is_tampered(path, kek, field, value):
    ks = Keystore(FileKeyRecordStore(path), kek)
    kid = ks.generate(now=NOW, owner="enterprise-a")
    _edit(path, kid, **{field: value})
    _raises("keystore_tampered", ks.signer, kid)


def test_planted_public_key_is_never_published(path, kek):
    ks = Keystore(FileKeyRecordStore(path), kek)
    kid = ks.generate(now=NOW)
    _edit(path, kid, public_jwk=public_jwk(generate_private_key("ES256")))
    _raises("keystore_tampered", ks.jwks)
    _raises("keystore_tampered", ks.public_jwk, kid)


def test_record_planted_without_the_kek_is_never_published(path, kek):
    ks = Keystore(FileKeyRecordStore(path), kek)
    ks.generate(now=NOW)
    intruder = Keystore(InMemoryKeyRecordStore(), generate_kek())
    planted = intruder.record(intruder.generate(now=NOW))
    doc = json.loads(path.read_text())
    doc["keys"][planted.kid] = planted.to_json()
    path.write_text(json.dumps(doc))
    _raises("keystore_tampered", ks.jwks)


def test_removed_kek_check_value_is_tampered(path, kek):
    ks = Keystore(FileKeyRecordStore(path), kek)
    kid = ks.generate(now=NOW)
    doc = json.loads(path.read_text())
    doc["kek_check"] = None
    path.write_text(json.dumps(doc))
    _raises("keystore_tampered", Keystore(FileKeyRecordStore(path), kek).signer, kid)


def _reseal(path, kek: bytes, kid: str, plaintext: bytes) -> None:
    """What only a KEK holder can do: a valid tag over content that is not this record's key."""
    record = json.loads(path.read_text())["keys"][kid]
    aad = json.dumps(["elicence-keystore-record-v1", kid, record["alg"], record["owner"]], separators=(",", ":"))
    nonce = os.urandom(12)
    _edit(path, kid, nonce=b64u_encode(nonce), ciphertext=b64u_encode(AESGCM(kek).encrypt(nonce, plaintext, aad.encode())))


def test_authentic_record_holding_another_key_is_tampered(path, kek):
    ks = Keystore(FileKeyRecordStore(path), kek)
    kid = ks.generate(now=NOW)
    _reseal(path, kek, kid, json.dumps(private_jwk(generate_private_key("ES256"))).encode())
    _raises("keystore_tampered", ks.signer, kid)


@pytest.mark.parametrize("plaintext", [b"garbage", b"[]", b'{"kty":"EC"}'])
def test_authentic_record_holding_no_key_is_tampered(path, kek, plaintext):
    ks = Keystore(FileKeyRecordStore(path), kek)
    kid = ks.generate(now=NOW)
    _reseal(path, kek, kid, plaintext)
    _raises("keystore_tampered", ks.signer, kid)


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ("not json", "keystore_tampered"),
        ('{"format": "something-else", "version": 1, "keys": {}}', "keystore_tampered"),
        ('{"format": "elicence-keystore", "version": 1, "kek_check": null, "keys": []}', "keystore_tampered"),
        ('{"format": "elicence-keystore", "version": 2, "kek_check": null, "keys": {}}', "keystore_error"),
    ],
    ids=["not-json", "other-format", "keys-not-object", "future-version"],
)
def test_unreadable_keystore_file_is_refused(path, kek, content, code):
    path.write_text(content)
    _raises(code, Keystore(FileKeyRecordStore(path), kek).generate, now=NOW)


# --- key states ------------------------------------------------------------------------------------


def test_retired_key_cannot_sign_but_stays_in_jwks(store, kek):
    ks = Keystore(store, kek)
    old, new = ks.generate(now=NOW), ks.generate("EdDSA", now=LATER)
    record = ks.retire(old, now=LATER)
    assert (record.state, record.retired_at) == (KeyState.RETIRED, LATER)
    _raises("key_state_invalid", ks.signer, old)
    assert [k["kid"] for k in ks.jwks()["keys"]] == [new, old]
    assert [k["kid"] for k in ks.jwks(include_retired=False)["keys"]] == [new]
    assert ks.public_jwk(old)["kid"] == old


def test_revoked_key_is_absent_from_jwks_and_cannot_sign(store, kek):
    ks = Keystore(store, kek)
    kid, keep = ks.generate(now=NOW), ks.generate(now=NOW)
    record = ks.revoke(kid, now=LATER)
    assert (record.state, record.revoked_at) == (KeyState.REVOKED, LATER)
    assert [k["kid"] for k in ks.jwks()["keys"]] == [keep]
    _raises("key_state_invalid", ks.signer, kid)
    _raises("key_state_invalid", ks.public_jwk, kid)


def test_retired_key_can_be_revoked_and_revoked_is_final(store, kek):
    ks = Keystore(store, kek)
    kid = ks.generate(now=NOW)
    ks.retire(kid, now=NOW)
    _raises("key_state_invalid", ks.retire, kid, now=LATER)
    ks.revoke(kid, now=LATER)
    _raises("key_state_invalid", ks.revoke, kid, now=LATER)
    _raises("key_state_invalid", ks.retire, kid, now=LATER)
    assert ks.record(kid).retired_at == NOW and ks.record(kid).revoked_at == LATER


def test_unknown_kid_is_unknown_key(store, kek):
    ks = Keystore(store, kek)
    for operation in (ks.signer, ks.public_jwk, ks.record):
        _raises("unknown_key", operation, "no-such-kid")
    _raises("unknown_key", ks.retire, "no-such-kid", now=NOW)


def test_jwks_and_list_filter_by_owner(store, kek):
    ks = Keystore(store, kek)
    a = ks.generate(now=NOW, owner="enterprise-a")
    b = ks.generate(now=NOW + timedelta(seconds=1), owner="enterprise-b")
    assert [k["kid"] for k in ks.jwks(owner="enterprise-a")["keys"]] == [a]
    assert [r.kid for r in ks.list(owner="enterprise-b")] == [b]
    assert [r.kid for r in ks.list()] == [a, b]
    ks.retire(a, now=LATER)
    assert [r.kid for r in ks.list(states={KeyState.ACTIVE})] == [b]


# --- refusals at the door ---------------------------------------------------------------------------


def test_importing_the_same_key_twice_is_refused(store, kek):
    ks = Keystore(store, kek)
    jwk = private_jwk(generate_private_key("EdDSA"))
    ks.import_private_jwk(jwk, now=NOW, owner="enterprise-a")
    _raises("keystore_error", ks.import_private_jwk, jwk, now=NOW, owner="enterprise-b")


def test_import_with_a_kid_that_is_not_the_thumbprint_is_refused(store, kek):
    jwk = {**private_jwk(generate_private_key("ES256")), "kid": "my-key-1"}
    _raises("invalid_key", Keystore(store, kek).import_private_jwk, jwk, now=NOW)


def test_import_of_public_or_weak_key_is_refused(store, kek):
    ks = Keystore(store, kek)
    _raises("invalid_key", ks.import_private_jwk, public_jwk(generate_private_key("ES256")), now=NOW)
    _raises("invalid_key", ks.generate, "RS256", now=NOW)
    assert store.list() == ()


def test_kek_of_wrong_length_is_refused(store):
    _raises("keystore_kek_invalid", Keystore, store, b"\x01" * 16)


def test_naive_time_is_a_programming_error(store, kek):
    with pytest.raises(ValueError):
        Keystore(store, kek).generate(now=datetime(2025, 3, 1))


def test_concurrent_writers_lose_no_key(path, kek):
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            ks = Keystore(FileKeyRecordStore(path), kek)
            for _ in range(3):
                ks.generate("EdDSA", now=NOW)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(FileKeyRecordStore(path).list()) == 24
