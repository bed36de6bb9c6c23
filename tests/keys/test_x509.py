"""keys.x509: the relying-party PKI, x5c encoding and chain validation for a DNS name (real certificates)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keys.errors import KeyMaterialError
from keys.x509 import (
    MAX_CHAIN_LENGTH,
    CertificateError,
    certificate_pem,
    dns_names,
    issue_access_certificate,
    load_pem_certificates,
    make_registrar_ca,
    subject_organization,
    verify_x5c_for_dns,
    x5c_decode,
    x5c_encode,
)

NOW = 1_780_000_000
DAY = 86_400
HOST = "verifier.window.example.gov.cn"


def _p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


CA_KEY = _p256()
CA = make_registrar_ca(CA_KEY, common_name="eLicence RP Registrar", organization="Registrar",
                       not_before=NOW - DAY, not_after=NOW + 3650 * DAY)
LEAF_KEY = _p256()


def leaf(dns_name: str = HOST, *, ca=CA, ca_key=CA_KEY, not_before=NOW - DAY, not_after=NOW + 365 * DAY):
    return issue_access_certificate(ca_certificate=ca, ca_key=ca_key, dns_name=dns_name,
                                    public_key=LEAF_KEY.public_key(), organization="浦东新区市场监管局窗口",
                                    not_before=not_before, not_after=not_after)


LEAF = leaf()


def test_access_certificate_chain_validates_for_its_dns_name():
    chain = verify_x5c_for_dns(x5c_encode([LEAF]), dns_name=HOST, trust_anchors=[CA], now=NOW)
    assert chain.leaf == LEAF
    assert chain.dns_names == (HOST,)
    assert chain.organization == "浦东新区市场监管局窗口"
    assert chain.public_key.public_numbers() == LEAF_KEY.public_key().public_numbers()
    assert chain.path[-1] == CA


def test_the_name_check_ignores_ascii_case():
    assert verify_x5c_for_dns(x5c_encode([LEAF]), dns_name=HOST.upper(), trust_anchors=[CA], now=NOW).leaf == LEAF


def test_a_chain_that_includes_the_root_validates_too():
    assert verify_x5c_for_dns(x5c_encode([LEAF, CA]), dns_name=HOST, trust_anchors=[CA], now=NOW).leaf == LEAF


def test_time_may_be_an_aware_datetime():
    at = dt.datetime.fromtimestamp(NOW, dt.timezone.utc)
    assert verify_x5c_for_dns(x5c_encode([LEAF]), dns_name=HOST, trust_anchors=[CA], now=at).leaf == LEAF
    with pytest.raises(TypeError):
        verify_x5c_for_dns(x5c_encode([LEAF]), dns_name=HOST, trust_anchors=[CA], now=at.replace(tzinfo=None))


def test_certificate_issued_for_another_name_is_a_name_mismatch():
    with pytest.raises(CertificateError) as info:
        verify_x5c_for_dns(x5c_encode([LEAF]), dns_name="attacker.example.com", trust_anchors=[CA], now=NOW)
    assert info.value.code == "certificate_name_mismatch"


def test_a_parent_domain_does_not_match_a_subdomain_certificate():
    with pytest.raises(CertificateError) as info:
        verify_x5c_for_dns(x5c_encode([LEAF]), dns_name="window.example.gov.cn", trust_anchors=[CA], now=NOW)
    assert info.value.code == "certificate_name_mismatch"


def test_chain_from_another_registrar_is_untrusted():
    other_key = _p256()
    other = make_registrar_ca(other_key, common_name="Rogue", not_before=NOW - DAY, not_after=NOW + DAY * 10)
    rogue_leaf = leaf(ca=other, ca_key=other_key)
    with pytest.raises(CertificateError) as info:
        verify_x5c_for_dns(x5c_encode([rogue_leaf, other]), dns_name=HOST, trust_anchors=[CA], now=NOW)
    assert info.value.code == "certificate_untrusted"


def test_a_self_signed_leaf_is_untrusted():
    own = make_registrar_ca(LEAF_KEY, common_name=HOST, not_before=NOW - DAY, not_after=NOW + DAY)
    with pytest.raises(CertificateError) as info:
        verify_x5c_for_dns(x5c_encode([own]), dns_name=HOST, trust_anchors=[CA], now=NOW)
    # A root certificate has no dNSName SAN: refused before path building.
    assert info.value.code == "certificate_name_mismatch"


def test_no_trust_anchor_is_untrusted():
    with pytest.raises(CertificateError) as info:
        verify_x5c_for_dns(x5c_encode([LEAF]), dns_name=HOST, trust_anchors=[], now=NOW)
    assert info.value.code == "certificate_untrusted"


def test_expired_access_certificate_is_refused():
    old = leaf(not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    with pytest.raises(CertificateError) as info:
        verify_x5c_for_dns(x5c_encode([old]), dns_name=HOST, trust_anchors=[CA], now=NOW)
    assert info.value.code == "certificate_expired"


def test_certificate_not_yet_valid_is_refused():
    future = leaf(not_before=NOW + DAY, not_after=NOW + 2 * DAY)
    with pytest.raises(CertificateError) as info:
        verify_x5c_for_dns(x5c_encode([future]), dns_name=HOST, trust_anchors=[CA], now=NOW)
    assert info.value.code == "certificate_not_yet_valid"


def test_expired_registrar_root_makes_the_chain_untrusted():
    old_ca = make_registrar_ca(CA_KEY, common_name="eLicence RP Registrar", organization="Registrar",
                               not_before=NOW - 10 * DAY, not_after=NOW - DAY)
    with pytest.raises(CertificateError) as info:
        verify_x5c_for_dns(x5c_encode([LEAF]), dns_name=HOST, trust_anchors=[old_ca], now=NOW)
    assert info.value.code == "certificate_untrusted"


def test_leaf_signed_by_a_key_other_than_the_registrar_is_untrusted():
    forged = leaf(ca_key=_p256())  # names the registrar as issuer, signed by another key
    with pytest.raises(CertificateError) as info:
        verify_x5c_for_dns(x5c_encode([forged]), dns_name=HOST, trust_anchors=[CA], now=NOW)
    assert info.value.code == "certificate_untrusted"


@pytest.mark.parametrize(
    "x5c",
    [
        None,
        [],
        "MIIB",
        [42],
        ["not base64!"],
        [base64.b64encode(b"not a certificate").decode()],
        # base64url instead of base64 (RFC 7515 s4.1.6 says base64): '-' and '_' are refused.
        [x5c_encode([LEAF])[0].replace("+", "-").replace("/", "_") + "-_"],
    ],
    ids=["none", "empty", "string", "number", "not-base64", "not-der", "base64url"],
)
def test_malformed_x5c_is_certificate_invalid(x5c):
    with pytest.raises(CertificateError) as info:
        verify_x5c_for_dns(x5c, dns_name=HOST, trust_anchors=[CA], now=NOW)
    assert info.value.code == "certificate_invalid"


def test_x5c_longer_than_the_limit_is_refused():
    with pytest.raises(CertificateError) as info:
        x5c_decode(x5c_encode([LEAF] * (MAX_CHAIN_LENGTH + 1)))
    assert info.value.code == "certificate_invalid"


def test_oversize_certificate_text_is_refused_before_decoding():
    with pytest.raises(CertificateError) as info:
        x5c_decode(["A" * 20_000])
    assert info.value.code == "certificate_invalid"


def test_x5c_round_trip_is_leaf_first_standard_base64_der():
    encoded = x5c_encode([LEAF, CA])
    assert base64.b64decode(encoded[0]) == LEAF.public_bytes(serialization.Encoding.DER)
    assert x5c_decode(encoded) == (LEAF, CA)


def test_access_certificate_profile():
    assert dns_names(LEAF) == (HOST,)
    assert subject_organization(LEAF) == "浦东新区市场监管局窗口"
    bc = LEAF.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    assert LEAF.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert CA.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert dns_names(CA) == ()


def test_internationalised_names_are_stored_as_a_labels():
    cert = leaf("窗口.example.cn")
    (name,) = dns_names(cert)
    assert name.startswith("xn--") and name.isascii()
    assert name.encode("ascii").decode("idna") == "窗口.example.cn"


def test_only_p256_keys_are_accepted():
    with pytest.raises(CertificateError):
        issue_access_certificate(ca_certificate=CA, ca_key=CA_KEY, dns_name=HOST,
                                 public_key=ec.generate_private_key(ec.SECP384R1()).public_key(),
                                 not_before=NOW, not_after=NOW + DAY)
    with pytest.raises(CertificateError):
        ed_key = ed25519.Ed25519PrivateKey.generate()
        make_registrar_ca(ed_key, common_name="x", not_before=NOW, not_after=NOW + DAY)  # type: ignore[arg-type]


def test_pem_bundle_round_trip():
    bundle = certificate_pem(CA) + certificate_pem(LEAF)
    assert load_pem_certificates(bundle) == (CA, LEAF)
    with pytest.raises(CertificateError) as info:
        load_pem_certificates("no certificates here")
    assert info.value.code == "certificate_invalid"


def test_certificate_errors_are_key_material_errors_with_a_body():
    err = CertificateError("detail")
    assert isinstance(err, KeyMaterialError)
    assert err.to_dict() == {"error": "certificate_invalid", "error_description": "detail"}
