"""keys.keystore.Keystore over the issuer's tables (issuer.store.SqlKeyRecordStore)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from credentials import jws
from issuer import store
from keys.errors import KeyNotFound, KeyStateError, KeystoreError, KeystoreTampered, WrongKek
from keys.keystore import Keystore, KeyRecordStore, KeyState, generate_kek


def test_the_sql_store_satisfies_the_protocol(sessions, kit):
    assert isinstance(store.SqlKeyRecordStore(sessions, kit.SLUG), KeyRecordStore)


def test_keys_generate_sign_rotate_and_revoke(world, sessions, kit):
    records = store.SqlKeyRecordStore(sessions, world.slug)
    keystore = Keystore(records, world.kek)
    token = jws.sign({"hello": "世界"}, keystore.signer(world.kid), typ="test+jwt")
    assert jws.verify(token, jws.public_key_from_jwk(keystore.public_jwk(world.kid)), typ="test+jwt").payload == {"hello": "世界"}

    new_kid = keystore.generate("EdDSA", now=kit.NOW + timedelta(days=1), owner=world.slug, label="2027")
    retired = keystore.retire(world.kid, now=kit.NOW + timedelta(days=1))
    assert retired.state is KeyState.RETIRED and retired.retired_at == kit.NOW + timedelta(days=1)
    assert [k["kid"] for k in keystore.jwks(owner=world.slug)["keys"]] == [new_kid, world.kid]
    with pytest.raises(KeyStateError):
        keystore.signer(world.kid)
    keystore.revoke(world.kid, now=kit.NOW + timedelta(days=2))
    assert [k["kid"] for k in keystore.jwks()["keys"]] == [new_kid]
    assert records.get(new_kid).label == "2027" and records.get(new_kid).alg == "EdDSA"
    assert [r.kid for r in records.list()] == [world.kid, new_kid]
    with pytest.raises(KeyNotFound):
        records.update_state("nope", KeyState.RETIRED, at=kit.NOW)


def test_stores_are_scoped_to_their_owner(sessions, kit):
    a = kit.make_world(sessions, slug="a")
    b = kit.make_world(sessions, slug="b")
    store_a = store.SqlKeyRecordStore(sessions, "a")
    assert store_a.get(b.kid) is None
    assert [r.kid for r in store_a.list()] == [a.kid]
    assert store_a.list(owner="b") == ()
    with pytest.raises(KeyNotFound):
        store_a.update_state(b.kid, KeyState.REVOKED, at=kit.NOW)
    with pytest.raises(KeystoreError):
        store_a.put(store.SqlKeyRecordStore(sessions, "b").get(b.kid))


def test_a_duplicate_kid_is_refused(world, sessions, kit):
    records = store.SqlKeyRecordStore(sessions, world.slug)
    with pytest.raises(KeystoreError) as exc:
        records.put(records.get(world.kid))
    assert exc.value.code == "keystore_error"


def test_the_kek_check_is_written_once(world, sessions):
    records = store.SqlKeyRecordStore(sessions, world.slug)
    first = records.kek_check()
    assert first is not None
    assert records.init_kek_check(b"another value") == first


def test_a_wrong_kek_is_told_apart(world, sessions, kit):
    keystore = Keystore(store.SqlKeyRecordStore(sessions, world.slug), generate_kek())
    with pytest.raises(WrongKek) as exc:
        keystore.signer(world.kid)
    assert exc.value.code == "keystore_wrong_kek"


def test_a_ciphertext_changed_in_the_database_is_detected(world, sessions):
    with store.unit_of_work(sessions) as tx:
        blob = tx.execute(text("SELECT ciphertext FROM issuer_key WHERE kid = :k"), {"k": world.kid}).scalar_one()
        flipped = bytes([blob[0] ^ 1]) + bytes(blob[1:])
        tx.execute(text("UPDATE issuer_key SET ciphertext = :c WHERE kid = :k"), {"c": flipped, "k": world.kid})
    with pytest.raises(KeystoreTampered) as exc:
        Keystore(store.SqlKeyRecordStore(sessions, world.slug), world.kek).signer(world.kid)
    assert exc.value.code == "keystore_tampered"


def test_a_key_generated_in_a_rolled_back_unit_of_work_is_not_kept(world, sessions, kit):
    records = store.SqlKeyRecordStore(sessions, world.slug)
    with pytest.raises(RuntimeError):
        with store.unit_of_work(sessions) as tx:
            kid = Keystore(records.using(tx), world.kek).generate("ES256", now=kit.NOW, owner=world.slug)
            store.append_audit(tx, chain=world.slug, at=kit.NOW, actor="op", action="key.generated", subject=kid)
            raise RuntimeError("crash before commit")
    assert records.get(kid) is None
    assert [r.kid for r in records.list()] == [world.kid]
    with store.unit_of_work(sessions) as tx:
        assert store.audit_head(tx, chain=world.slug) is None
