"""``http://`` issuer identifiers are accepted for the loopback hosts only (local development)."""

from __future__ import annotations

import pytest

from credentials.errors import CredentialError
from credentials.sd_jwt_vc import (
    LOOPBACK_HOSTS,
    check_issuer_identifier,
    check_url,
    issue_vc,
    verify_vc,
    well_known_url,
)
from keys.signer import SoftwareSigner

NOW = 1_760_000_000
ISSUER = SoftwareSigner.generate("ES256")


def code_of(fn, *args, **kwargs) -> str:
    with pytest.raises(CredentialError) as info:
        fn(*args, **kwargs)
    return info.value.code


@pytest.mark.parametrize(
    "iss",
    [
        "http://127.0.0.1:8000/issuers/sh-amr",
        "http://127.0.0.1",
        "http://localhost:8000/issuers/sh-amr",
        "http://LOCALHOST:8000",
        "http://[::1]:8000/issuers/sh-amr",
        "https://amr.sh.example.gov.cn/issuers/sh-amr",
    ],
)
def test_loopback_http_and_https_identifiers_are_accepted(iss):
    assert check_issuer_identifier(iss) == iss


@pytest.mark.parametrize(
    "iss",
    [
        "http://amr.sh.example.gov.cn",
        "http://127.0.0.2:8000",
        "http://0.0.0.0:8000",
        "http://10.0.0.1",
        "http://127.0.0.1.nip.io",
        "http://localhost.example.com",
        "http://localhost.",
        "http://[::ffff:127.0.0.1]",
        "http://2130706433",
        "http://127.0.0.1@attacker.example",
        "http://attacker.example@127.0.0.1",
        "http://attacker.example\\@127.0.0.1",
        "http://127.0.0.1:8000/?q=1",
        "http://127.0.0.1:8000/#f",
        "http://127.0.0.1:port",
        "HTTP://127.0.0.1",
        "ws://127.0.0.1",
        "http:///127.0.0.1",
        "http://",
    ],
)
def test_http_is_refused_for_every_other_host(iss):
    assert code_of(check_issuer_identifier, iss) == "malformed"


def test_loopback_hosts():
    assert LOOPBACK_HOSTS == {"127.0.0.1", "localhost", "::1"}


def test_well_known_url_keeps_the_loopback_scheme():
    assert well_known_url("http://127.0.0.1:8000/issuers/sh-amr") == (
        "http://127.0.0.1:8000/.well-known/jwt-vc-issuer/issuers/sh-amr"
    )
    assert well_known_url("http://[::1]:8000/") == "http://[::1]:8000/.well-known/jwt-vc-issuer"
    assert well_known_url("https://a.example/t/", "openid-credential-issuer") == (
        "https://a.example/.well-known/openid-credential-issuer/t"
    )
    assert code_of(well_known_url, "http://a.example/t") == "malformed"


def test_check_url_allows_a_query_unless_told_otherwise():
    assert check_url("http://127.0.0.1:8000/credential?v=1") == "http://127.0.0.1:8000/credential?v=1"
    assert code_of(check_url, "http://127.0.0.1:8000/credential?v=1", allow_query=False) == "malformed"
    assert code_of(check_url, "http://example.com/credential") == "malformed"
    assert code_of(check_url, None) == "malformed"


def test_a_credential_from_a_local_issuer_verifies_with_its_key():
    iss = "http://127.0.0.1:8000/issuers/sh-amr"
    text = issue_vc(
        {"uscc": "91310000MA1FL0EXAM"},
        vct="https://elicence.cn/vct/business-licence",
        issuer=iss,
        signer=ISSUER,
        holder_jwk=None,
        status=(7, "http://127.0.0.1:8000/issuers/sh-amr/status/1"),
        iat=NOW,
        exp=NOW + 3600,
    )
    seen = []

    def resolve(issuer, header, vct):
        seen.append(issuer)
        return ISSUER.private_key.public_key()

    cred = verify_vc(text, resolve_issuer_key=resolve, now=NOW)
    assert (cred.issuer, seen) == (iss, [iss])
    assert cred.status is not None and cred.status.uri.startswith("http://127.0.0.1:8000/")


def test_a_remote_http_issuer_still_cannot_issue():
    with pytest.raises(CredentialError) as info:
        issue_vc({}, vct="v", issuer="http://amr.example.gov.cn", signer=ISSUER, holder_jwk=None, status=None,
                 iat=NOW, exp=NOW + 1)
    assert info.value.code == "malformed"
