"""wallet.service accounts: phone numbers, passwords (scrypt), sign-in lockout, token rotation, the PIN."""

from __future__ import annotations

import dataclasses

import pytest

from wallet import errors, store
from wallet.service import (
    SignerPurpose,
    WalletPolicy,
    WalletService,
    hash_secret,
    normalise_phone,
    secret_needs_rehash,
    verify_secret,
)


# --- phone numbers and passwords (pure) -----------------------------------------------------------------


@pytest.mark.parametrize("text", ["13800138000", "+8613800138000", "+86 138 0013 8000", "0086-138-0013-8000",
                                  "8613800138000", " 138 0013 8000 ", "(+86) 13800138000"])
def test_mainland_numbers_are_normalised_to_plus86_and_11_digits(text):
    assert normalise_phone(text) == "+8613800138000"


@pytest.mark.parametrize("text", ["1380013800", "138001380001", "23800138000", "12800138000", "+85291234567",
                                  "+1 415 555 0100", "021-63211234", "１３８００１３８０００", "1380013800x", "", None, 13800138000,
                                  "1" * 40])
def test_other_numbers_are_invalid_phone(text):
    with pytest.raises(errors.InvalidPhone) as caught:
        normalise_phone(text)
    assert caught.value.code == "invalid_phone"


def test_a_secret_hash_names_its_scrypt_parameters_and_verifies_in_constant_time():
    policy = WalletPolicy(scrypt_n=2**4, scrypt_r=8, scrypt_p=1)
    stored = hash_secret("0123456789", salt=b"s" * 16, policy=policy)
    assert stored.startswith("scrypt$n=16,r=8,p=1$")
    assert verify_secret("0123456789", stored)
    assert not verify_secret("0123456788", stored)
    assert secret_needs_rehash(stored, WalletPolicy()) and not secret_needs_rehash(stored, policy)


def test_the_default_policy_is_the_strong_scrypt_cost():
    policy = WalletPolicy()
    assert (policy.scrypt_n, policy.scrypt_r, policy.scrypt_p) == (2**15, 8, 1)
    stored = hash_secret("0123456789", salt=b"s" * 16, policy=policy)  # fits OpenSSL's memory bound
    assert stored.startswith("scrypt$n=32768,r=8,p=1$") and verify_secret("0123456789", stored)


@pytest.mark.parametrize("stored", ["plain", "bcrypt$n=16,r=8,p=1$c2FsdA$aGFzaA", "scrypt$n=16,r=8$c2FsdA$aGFzaA",
                                    "scrypt$n=4194304,r=8,p=1$c2FsdA$aGFzaA"])
def test_a_stored_hash_not_ours_or_too_costly_is_invalid_value(stored):
    with pytest.raises(errors.InvalidValue) as caught:
        verify_secret("x", stored)
    assert caught.value.code == "invalid_value"


@pytest.mark.parametrize("n", [1, 3, 2**21, True])
def test_a_policy_with_an_impossible_scrypt_cost_is_refused(n):
    with pytest.raises(ValueError):
        WalletPolicy(scrypt_n=n)


# --- registration ---------------------------------------------------------------------------------------


def test_registration_stores_a_scrypt_hash_and_makes_a_holder_key(wallet, wkit):
    user = wkit.user(wallet, 1)
    assert user.phone == wkit.phone(1)
    assert user.password_hash.startswith("scrypt$n=16,r=8,p=1$") and wkit.PASSWORD not in user.password_hash
    keys = wallet.holder_keys(user)
    assert [k.owner for k in keys] == [f"user:{user.id}"] and keys[0].alg == "ES256"
    assert "d" not in keys[0].public_jwk


def test_a_short_password_is_weak_password(wallet, wkit):
    with pytest.raises(errors.WeakPassword) as caught:
        wallet.register(phone=wkit.phone(1), password="123456789", display_name="张三")
    assert caught.value.code == "weak_password"


def test_a_second_account_with_the_same_number_is_phone_taken(wallet, wkit):
    wkit.user(wallet, 1)
    with pytest.raises(errors.PhoneTaken) as caught:
        wallet.register(phone=wkit.phone(1)[3:], password=wkit.PASSWORD, display_name="李四")
    assert caught.value.code == "phone_taken"


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_an_empty_or_long_display_name_is_invalid_value(wallet, wkit, name):
    with pytest.raises(errors.InvalidValue):
        wallet.register(phone=wkit.phone(1), password=wkit.PASSWORD, display_name=name)


def test_a_full_width_password_matches_its_ascii_form(wallet, wkit):
    wallet.register(phone=wkit.phone(1), password="ｐａｓｓｗｏｒｄ１２３", display_name="张三")
    assert wallet.sign_in(phone=wkit.phone(1), password="password123").access_token


# --- sign-in, lockout -----------------------------------------------------------------------------------


def test_sign_in_answers_opaque_tokens_of_which_only_hashes_are_stored(wallet, wkit, sessions):
    wkit.user(wallet, 1)
    pair = wallet.sign_in(phone=wkit.phone(1), password=wkit.PASSWORD)
    assert pair.access_token.startswith("wat_") and pair.refresh_token.startswith("wrt_")
    assert (pair.expires_in, pair.refresh_expires_in) == (900, 30 * 86400)
    dump = repr(wkit.snapshot(sessions))
    assert pair.access_token not in dump and pair.refresh_token not in dump
    assert wallet.authenticate(pair.access_token).user.id == pair.user.id


def test_a_wrong_password_and_an_unknown_number_are_both_invalid_credentials(wallet, wkit):
    wkit.user(wallet, 1)
    for phone in (wkit.phone(1), wkit.phone(2)):
        with pytest.raises(errors.InvalidCredentials) as caught:
            wallet.sign_in(phone=phone, password="not the password")
        assert caught.value.code == "invalid_credentials"


def test_five_failed_sign_ins_lock_the_account_for_fifteen_minutes(wallet, wkit, clock):
    wkit.user(wallet, 1)
    for left in (4, 3, 2, 1):
        with pytest.raises(errors.InvalidCredentials, match=f"{left} attempt"):
            wallet.sign_in(phone=wkit.phone(1), password="wrong password")
    with pytest.raises(errors.AccountLocked) as fifth:
        wallet.sign_in(phone=wkit.phone(1), password="wrong password")
    assert fifth.value.code == "account_locked" and fifth.value.retry_after == 900
    clock.advance(600)
    with pytest.raises(errors.AccountLocked) as locked:  # even the right password
        wallet.sign_in(phone=wkit.phone(1), password=wkit.PASSWORD)
    assert locked.value.retry_after == 300 and locked.value.headers() == {"Retry-After": "300"}
    clock.advance(300)
    assert wallet.sign_in(phone=wkit.phone(1), password=wkit.PASSWORD).access_token


def test_a_successful_sign_in_resets_the_failure_count(wallet, wkit):
    wkit.user(wallet, 1)
    for _ in range(4):
        with pytest.raises(errors.InvalidCredentials):
            wallet.sign_in(phone=wkit.phone(1), password="wrong password")
    wallet.sign_in(phone=wkit.phone(1), password=wkit.PASSWORD)
    with pytest.raises(errors.InvalidCredentials, match="4 attempts"):
        wallet.sign_in(phone=wkit.phone(1), password="wrong password")


def test_a_failed_attempt_is_committed_before_the_password_is_compared(wallet, wkit, sessions, monkeypatch):
    user = wkit.user(wallet, 1)

    def crash(*_args, **_kwargs):
        raise RuntimeError("the process died while comparing")

    monkeypatch.setattr("wallet.service.verify_secret", crash)
    with pytest.raises(RuntimeError):
        wallet.sign_in(phone=wkit.phone(1), password="wrong password")
    with store.unit_of_work(sessions, read_only=True) as tx:
        assert store.get_user(tx, user_id=user.id).sign_in_failures == 1


def test_a_hash_made_with_a_lower_cost_is_upgraded_at_sign_in(sessions, clock, wkit):
    weak = WalletService(sessions=sessions, kek=wkit.KEK, policy=wkit.FAST, clock=clock)
    user = wkit.user(weak, 1)
    stronger = dataclasses.replace(wkit.FAST, scrypt_n=2**5)
    WalletService(sessions=sessions, kek=wkit.KEK, policy=stronger, clock=clock).sign_in(
        phone=wkit.phone(1), password=wkit.PASSWORD)
    with store.unit_of_work(sessions, read_only=True) as tx:
        upgraded = store.get_user(tx, user_id=user.id).password_hash
    assert upgraded.startswith("scrypt$n=32,") and verify_secret(wkit.PASSWORD, upgraded)


# --- tokens ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token,error", [(None, errors.TokenRequired), ("", errors.TokenRequired),
                                         ("wat_unknown", errors.InvalidToken), ("elk_x", errors.InvalidToken),
                                         ("wat_" + "a" * 300, errors.InvalidToken)])
def test_a_missing_or_unknown_access_token_is_refused(wallet, token, error):
    with pytest.raises(error) as caught:
        wallet.authenticate(token)
    assert caught.value.http_status == 401 and "WWW-Authenticate" in caught.value.headers()


def test_an_access_token_expires_after_fifteen_minutes(wallet, wkit, clock):
    wkit.user(wallet, 1)
    pair = wallet.sign_in(phone=wkit.phone(1), password=wkit.PASSWORD)
    clock.advance(899)
    wallet.authenticate(pair.access_token)
    clock.advance(1)
    with pytest.raises(errors.TokenExpired) as caught:
        wallet.authenticate(pair.access_token)
    assert caught.value.code == "token_expired"


def test_refresh_rotates_the_pair_and_retires_the_old_refresh_token(wallet, wkit):
    wkit.user(wallet, 1)
    first = wallet.sign_in(phone=wkit.phone(1), password=wkit.PASSWORD)
    second = wallet.refresh(refresh_token=first.refresh_token)
    assert second.refresh_token != first.refresh_token and second.access_token != first.access_token
    third = wallet.refresh(refresh_token=second.refresh_token)
    assert wallet.authenticate(third.access_token).user.phone == wkit.phone(1)


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(wallet, wkit):
    wkit.user(wallet, 1)
    first = wallet.sign_in(phone=wkit.phone(1), password=wkit.PASSWORD)
    second = wallet.refresh(refresh_token=first.refresh_token)
    with pytest.raises(errors.InvalidRefreshToken) as caught:
        wallet.refresh(refresh_token=first.refresh_token)  # the thief, or the user after the thief
    assert caught.value.code == "invalid_refresh_token"
    for token in (second.refresh_token,):
        with pytest.raises(errors.InvalidRefreshToken):
            wallet.refresh(refresh_token=token)
    for token in (first.access_token, second.access_token):
        with pytest.raises(errors.InvalidToken):
            wallet.authenticate(token)


def test_other_sessions_survive_a_reuse_in_one(wallet, wkit):
    wkit.user(wallet, 1)
    phone_a = wallet.sign_in(phone=wkit.phone(1), password=wkit.PASSWORD)
    tablet = wallet.sign_in(phone=wkit.phone(1), password=wkit.PASSWORD)
    wallet.refresh(refresh_token=phone_a.refresh_token)
    with pytest.raises(errors.InvalidRefreshToken):
        wallet.refresh(refresh_token=phone_a.refresh_token)
    assert wallet.authenticate(tablet.access_token)


def test_an_expired_or_unknown_refresh_token_is_invalid_refresh_token(wallet, wkit, clock):
    wkit.user(wallet, 1)
    pair = wallet.sign_in(phone=wkit.phone(1), password=wkit.PASSWORD)
    for token in ("wrt_unknown", "wat_x", None, "wrt_" + "a" * 300):
        with pytest.raises(errors.InvalidRefreshToken):
            wallet.refresh(refresh_token=token)
    clock.advance(30 * 86400)
    with pytest.raises(errors.InvalidRefreshToken, match="expired"):
        wallet.refresh(refresh_token=pair.refresh_token)


def test_sign_out_revokes_the_access_and_refresh_tokens_of_the_session(wallet, wkit):
    wkit.user(wallet, 1)
    pair = wallet.sign_in(phone=wkit.phone(1), password=wkit.PASSWORD)
    wallet.sign_out(wallet.authenticate(pair.access_token))
    with pytest.raises(errors.InvalidToken):
        wallet.authenticate(pair.access_token)
    with pytest.raises(errors.InvalidRefreshToken):
        wallet.refresh(refresh_token=pair.refresh_token)


# --- the wallet PIN -------------------------------------------------------------------------------------


@pytest.mark.parametrize("pin,error", [("12345", errors.PinFormatInvalid), ("1234567", errors.PinFormatInvalid),
                                       ("12a456", errors.PinFormatInvalid), ("１２３４５６", errors.PinFormatInvalid),
                                       (260817, errors.PinFormatInvalid), ("000000", errors.PinTooSimple),
                                       ("123456", errors.PinTooSimple), ("987654", errors.PinTooSimple)])
def test_a_pin_must_be_six_digits_and_not_trivial(wallet, wkit, pin, error):
    user = wkit.user(wallet, 1)
    with pytest.raises(error) as caught:
        wallet.set_pin(user, pin=pin)
    assert caught.value.code in ("pin_format_invalid", "pin_too_simple")


def test_confirm_pin_before_a_pin_is_set_is_pin_not_set(wallet, wkit):
    user = wkit.user(wallet, 1)
    with pytest.raises(errors.PinNotSet) as caught:
        wallet.confirm_pin(user, wkit.PIN)
    assert caught.value.code == "pin_not_set"
    with pytest.raises(errors.PinNotSet):  # "changing" a PIN that was never set
        wallet.set_pin(user, pin="135790", old_pin=wkit.PIN)


def test_a_clock_without_a_time_zone_is_refused(sessions, wkit):
    from datetime import datetime

    naive = WalletService(sessions=sessions, kek=wkit.KEK, policy=wkit.FAST, clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        naive.now()


def test_the_pin_is_set_once_and_changed_only_with_the_old_one(wallet, wkit):
    user = wkit.user(wallet, 1, pin=True)
    with pytest.raises(errors.PinAlreadySet) as caught:
        wallet.set_pin(user, pin="135790")
    assert caught.value.code == "pin_already_set"
    with pytest.raises(errors.PinInvalid):
        wallet.set_pin(user, pin="135790", old_pin="111112")
    wallet.set_pin(user, pin="135790", old_pin=wkit.PIN)
    wallet.confirm_pin(user, "135790")
    with pytest.raises(errors.PinInvalid):
        wallet.confirm_pin(user, wkit.PIN)


def test_five_wrong_pins_lock_the_pin_for_fifteen_minutes(wallet, wkit, clock):
    user = wkit.user(wallet, 1, pin=True)
    for left in (4, 3, 2, 1):
        with pytest.raises(errors.PinInvalid, match=f"{left} attempt") as caught:
            wallet.confirm_pin(user, "111112")
        assert caught.value.code == "pin_invalid"
    with pytest.raises(errors.PinLocked) as fifth:
        wallet.confirm_pin(user, "111112")
    assert fifth.value.code == "pin_locked" and fifth.value.retry_after == 900
    with pytest.raises(errors.PinLocked):
        wallet.confirm_pin(user, wkit.PIN)
    clock.advance(900)
    assert wallet.confirm_pin(user, wkit.PIN).user_id == user.id
    # the PIN lock is not the account lock
    assert wallet.sign_in(phone=wkit.phone(1), password=wkit.PASSWORD)


def test_a_presentation_signer_needs_a_fresh_pin_confirmation_of_the_same_user(wallet, wkit, clock):
    alice = wkit.user(wallet, 1, pin=True)
    bob = wkit.user(wallet, 2, pin=True)
    with pytest.raises(errors.PinConfirmationRequired) as caught:
        wallet.signer_for(alice, purpose=SignerPurpose.PRESENTATION)
    assert caught.value.code == "pin_confirmation_required"
    confirmation = wallet.confirm_pin(alice, wkit.PIN)
    with pytest.raises(errors.PinConfirmationRequired):
        wallet.signer_for(bob, purpose="presentation", confirmation=confirmation)
    forged = dataclasses.replace(confirmation, at=clock.now)
    forged = type(confirmation)(bob.id, forged.at, confirmation.mac)
    with pytest.raises(errors.PinConfirmationRequired):
        wallet.signer_for(bob, purpose="presentation", confirmation=forged)
    signer = wallet.signer_for(alice, purpose="presentation", confirmation=confirmation)
    assert signer.kid == wallet.holder_keys(alice)[0].kid
    clock.advance(121)
    with pytest.raises(errors.PinConfirmationRequired, match="expired"):
        wallet.signer_for(alice, purpose="presentation", confirmation=confirmation)


def test_a_key_proof_signer_needs_no_pin_and_signs_with_the_users_key(wallet, wkit):
    from keys.jwk import load_public_jwk

    user = wkit.user(wallet, 1)
    signer = wallet.signer_for(user, purpose="key_proof")
    public = load_public_jwk(wallet.holder_keys(user)[0].public_jwk)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    raw = signer.sign(b"proof")
    signature = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(signature, b"proof", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(errors.InvalidValue):
        wallet.signer_for(user, purpose="anything")


def test_a_revoked_holder_key_is_replaced_not_used(wallet, wkit, sessions):
    from keys.keystore import Keystore

    user = wkit.user(wallet, 1)
    old = wallet.holder_keys(user)[0].kid
    Keystore(store.SqlKeyRecordStore(sessions, f"user:{user.id}"), wkit.KEK).revoke(old, now=wkit.NOW)
    signer = wallet.signer_for(user, purpose="key_proof")
    assert signer.kid != old
    assert [k.kid for k in wallet.holder_keys(user)] == [signer.kid]  # a revoked key is not listed


def test_the_pin_is_kept_as_a_keyed_value_that_the_database_alone_cannot_test(wallet, wkit, sessions):
    from wallet import store as wstore
    from wallet.service import WalletService, hash_pin, verify_pin

    user = wkit.user(wallet, 41, pin=True)
    with wstore.unit_of_work(sessions, read_only=True) as tx:
        stored = wstore.get_user(tx, user_id=user.id).pin_hash
    assert stored.startswith("hmac-sha256$") and wkit.PIN not in stored
    assert verify_pin(wkit.PIN, stored, key=wallet._pin_key) and not verify_pin("135790", stored, key=wallet._pin_key)
    # Without the KEK-derived key no guess can be tested against the stored value.
    assert not verify_pin(wkit.PIN, stored, key=b"\0" * 32)
    other = WalletService(sessions=sessions, kek=b"\1" * 32, policy=wkit.FAST, clock=wallet._clock)
    with pytest.raises(Exception) as err:
        other.confirm_pin(user, wkit.PIN)
    assert err.value.code == "pin_invalid"
    assert hash_pin(wkit.PIN, salt=b"s" * 16, key=b"k" * 32) != hash_pin(wkit.PIN, salt=b"t" * 16, key=b"k" * 32)


def test_an_older_scrypt_pin_still_confirms_and_is_replaced_by_a_keyed_value(wallet, wkit, sessions):
    from wallet import store as wstore
    from wallet.service import hash_secret

    user = wkit.user(wallet, 42)
    with wstore.unit_of_work(sessions) as tx:
        wstore.set_pin_hash(tx, user_id=user.id, pin_hash=hash_secret(wkit.PIN, salt=b"s" * 16, policy=wkit.FAST),
                            now=wkit.NOW)
    wallet.confirm_pin(user, wkit.PIN)
    with wstore.unit_of_work(sessions, read_only=True) as tx:
        assert wstore.get_user(tx, user_id=user.id).pin_hash.startswith("hmac-sha256$")
    wallet.confirm_pin(user, wkit.PIN)
