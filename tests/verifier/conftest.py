"""Shared fixtures of the verifier SDK tests: one eLicence world at a fixed time, and a :class:`Kit`
that presents, re-packs and verifies its credentials.

Time never comes from the wall clock: every verifier gets a :class:`Clock` the test moves by hand,
and every presentation names its ``now``. The world (operator, issuer, holder keys, trust list,
status list) is built once per test session from :mod:`elicence.scenario`; it is an immutable value,
so tests that revoke a credential derive a new world with :func:`elicence.scenario.set_status`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from credentials import jws, qr, sd_jwt, sd_jwt_vc, status_list, trust
from credentials.errors import CredentialError
from elicence.scenario import World, build_world, issue_licence, licence_claims
from keys.jwk import jwks
from keys.signer import SoftwareSigner
from schemas.registry import get_type
from verifier.checks import CHECKS
from verifier.sdk import MemoryReplayStore, Policy, StatusSource, TrustListSource, Verifier, failure_report

#: The fixed "now" of every test: 2026-09-21T13:46:40Z.
NOW = 1_790_000_000
#: The status index of the kit's credential.
IDX = 7
DAY = 86400
CHECK_NAMES = tuple(c.name for c in CHECKS)


class Clock:
    """A clock the test sets by hand (seconds since the epoch)."""

    def __init__(self, t: float = NOW) -> None:
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def set(self, t: float) -> None:
        self.t = float(t)


class Kit:
    """The world of one session and the operations the tests repeat."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.now = NOW
        self.licence = get_type("business-licence")
        self.vct = self.licence.vct
        self.claims = licence_claims(1)
        self.credential = issue_licence(world, self.claims, idx=IDX, now=NOW)
        self._nonces = itertools.count()
        paths = [tuple(p) for p in self.licence.sd_paths]
        #: Disclosable paths with no disclosable path below them (the claims a holder picks).
        self.leaf_paths = [p for p in paths if not any(len(q) > len(p) and q[: len(p)] == p for q in paths)]
        #: Disclosable top-level claim names.
        self.top_sd_names = sorted({p[0] for p in paths})
        self.disclose = self.leaf_paths[:2]

    # --- presentations ------------------------------------------------------------------------------

    def nonce(self) -> str:
        return f"nonce-{next(self._nonces)}"

    def present(
        self,
        credential: str | None = None,
        *,
        disclose: Iterable[Any] | None = None,
        now: int = NOW,
        nonce: str | None = None,
        aud: str = qr.OFFLINE_AUDIENCE,
        holder: SoftwareSigner | None = None,
    ) -> str:
        """An SD-JWT+KB presentation (raw ``~`` text) made by the holder at ``now``."""
        return sd_jwt.present(
            self.credential if credential is None else credential,
            disclose=self.disclose if disclose is None else list(disclose),
            holder_signer=self.world.holder if holder is None else holder,
            aud=aud,
            nonce=self.nonce() if nonce is None else nonce,
            now=now,
        )

    def el1(self, credential: str | None = None, *, now: int = NOW, disclose: Iterable[Any] | None = None) -> str:
        """The offline QR text (``EL1:...``) of a fresh presentation, as the wallet renders it."""
        return qr.present_offline(
            self.credential if credential is None else credential,
            disclose=self.disclose if disclose is None else list(disclose),
            holder_signer=self.world.holder,
            now=now,
            nonce=self.nonce(),
        )

    def kb_jwt(
        self,
        sd_jwt_text: str,
        *,
        signer: SoftwareSigner | None = None,
        now: int = NOW,
        aud: str = qr.OFFLINE_AUDIENCE,
        nonce: str | None = None,
        sd_hash: str | None = None,
    ) -> str:
        """A KB-JWT over ``sd_jwt_text`` (``<JWT>~<D>~...~``), signed by ``signer`` (the holder by default)."""
        payload = {
            "iat": now,
            "aud": aud,
            "nonce": self.nonce() if nonce is None else nonce,
            "sd_hash": sd_jwt.digest(sd_jwt_text) if sd_hash is None else sd_hash,
        }
        return jws.sign(payload, self.world.holder if signer is None else signer, typ=sd_jwt.KB_TYP, include_kid=False)

    def pack(self, issuer_jwt: str, disclosures: Iterable[str], *, kb: bool = True, **kb_args: Any) -> str:
        """Assemble ``<JWT>~<D>~...~<KB-JWT>``, the KB-JWT signed over exactly these parts (a holder's forgery)."""
        sd_text = sd_jwt.SdJwt(issuer_jwt, tuple(disclosures)).sd_jwt_text
        return sd_text + (self.kb_jwt(sd_text, **kb_args) if kb else "")

    def expected_claims(self, disclose: Iterable[Any] | None = None, claims: Mapping[str, Any] | None = None) -> dict:
        """The subject claims a verifier must show for ``disclose``: the always-visible ones plus those picked."""
        claims = self.claims if claims is None else claims
        out: dict[str, Any] = {k: v for k, v in claims.items() if k not in self.top_sd_names}
        for path in self.disclose if disclose is None else disclose:
            path = (path,) if isinstance(path, str) else tuple(path)
            source: Any = claims
            target = out
            for step in path[:-1]:
                source = source[step]
                target = target.setdefault(step, {})
            target[path[-1]] = source[path[-1]]
        return out

    # --- issuing with other parameters ----------------------------------------------------------------

    def issue(
        self,
        *,
        claims: Mapping[str, Any] | None = None,
        issuer_id: str | None = None,
        signer: SoftwareSigner | None = None,
        vct: str | None = None,
        status: tuple[int, str] | None | str = "default",
        iat: int = NOW,
        nbf: int | None = None,
        exp: int | None = None,
    ) -> str:
        """A licence credential like the kit's, with any parameter changed."""
        return sd_jwt_vc.issue_vc(
            self.claims if claims is None else claims,
            vct=self.vct if vct is None else vct,
            issuer=self.world.issuer_id if issuer_id is None else issuer_id,
            signer=self.world.issuer if signer is None else signer,
            disclosable=self.licence.sd_paths,
            holder_jwk=self.world.holder.public_jwk,
            status=(IDX, self.world.status_uri) if status == "default" else status,  # type: ignore[arg-type]
            iat=iat,
            nbf=nbf,
            exp=iat + 365 * DAY if exp is None else exp,
        )

    def issue_raw(
        self, payload: Mapping[str, Any], *, signer: SoftwareSigner | None = None, typ: str = sd_jwt_vc.VC_TYP
    ) -> str:
        """An SD-JWT VC over a hand-made payload (for claims or headers :func:`issue_vc` would not write)."""
        return sd_jwt.issue(
            payload,
            disclosable=self.licence.sd_paths,
            signer=self.world.issuer if signer is None else signer,
            typ=typ,
            holder_jwk=self.world.holder.public_jwk,
        )

    # --- trust and status material ------------------------------------------------------------------

    def entry(self, issuer_id: str, signer: SoftwareSigner, *, vcts: Iterable[str] | None = None) -> trust.TrustedIssuer:
        return trust.TrustedIssuer(
            id=issuer_id,
            name={"zh-CN": "测试签发机关", "en": "Test issuer"},
            region="320000",
            vcts=tuple([self.vct] if vcts is None else vcts),
            jwks=tuple(jwks([signer.public_jwk])["keys"]),
        )

    def world_entry(self) -> trust.TrustedIssuer:
        return trust.load_trust_list(self.world.trust_list, operator_key=self.world.operator.public_jwk, now=NOW).issuer(
            self.world.issuer_id
        )

    def trust_list(
        self,
        entries: Iterable[trust.TrustedIssuer],
        *,
        iat: int = NOW,
        exp: int = NOW + 30 * DAY,
        sequence: int = 1,
        signer: SoftwareSigner | None = None,
    ) -> str:
        return trust.create_trust_list(
            list(entries),
            signer=self.world.operator if signer is None else signer,
            iss="https://trust.elicence.cn",
            iat=iat,
            exp=exp,
            sequence=sequence,
        )

    def status_token(
        self,
        statuses: status_list.StatusList | None = None,
        *,
        signer: SoftwareSigner | None = None,
        sub: str | None = None,
        iat: int = NOW,
        ttl: int | None = 300,
        exp: int | None = NOW + DAY,
        header: Mapping[str, Any] | None = None,
    ) -> str:
        """A status list token like the world's, with any parameter changed."""
        lst = self.world.statuses if statuses is None else statuses
        signer = self.world.issuer if signer is None else signer
        if header is None:
            return status_list.sign_status_list_token(
                lst, signer=signer, sub=self.world.status_uri if sub is None else sub,
                iss=self.world.issuer_id, iat=iat, exp=exp, ttl=ttl,
            )
        # A token whose header says something the signer did not (a forged kid).
        claims: dict[str, Any] = {"sub": self.world.status_uri if sub is None else sub, "iat": iat}
        if exp is not None:
            claims["exp"] = exp
        if ttl is not None:
            claims["ttl"] = ttl
        claims["status_list"] = lst.to_json()
        return jws.sign(claims, signer, typ=status_list.TYP, include_kid=False, header=header)

    # --- verifiers ----------------------------------------------------------------------------------

    def verifier(
        self,
        *,
        clock: Clock | None = None,
        status: str | Callable[[str], bytes | str] | StatusSource | None = None,
        trust_token: str | None = None,
        policy: Policy = Policy(),
        replay: Any = None,
    ) -> Verifier:
        """A verifier pinned to the world's operator key, reading ``status`` (a token, a fetch or a source)."""
        clock = Clock() if clock is None else clock
        token = self.world.trust_list if trust_token is None else trust_token
        if status is None:
            status = self.world.status_token
        if isinstance(status, str):
            served = status
            source = StatusSource(lambda uri: served, clock=clock)
        elif isinstance(status, StatusSource):
            source = status
        else:
            source = StatusSource(status, clock=clock)
        return Verifier(
            trust=TrustListSource.from_fetch(
                lambda: token, anchor=self.world.operator.public_jwk, clock=clock, initial=token
            ),
            status=source,
            policy=policy,
            replay=MemoryReplayStore() if replay is None else replay,
            clock=clock,
        )

    @staticmethod
    def fails(verifier: Verifier, data: Any, code: str, check: str, *, prefix: bool = True, **kw: Any) -> CredentialError:
        """Assert that verifying ``data`` fails with ``code`` in ``check``, and that the report says so.

        With ``prefix`` (the normal case) the checks that passed are exactly those before ``check``
        in :data:`verifier.checks.CHECKS` order.
        """
        with pytest.raises(CredentialError) as info:
            verifier.verify(data, **kw)
        error = info.value
        assert (error.code, error.check) == (code, check), (error.code, error.check, error.detail)
        report = failure_report(error)
        json.dumps(report, ensure_ascii=False)
        assert report["verdict"] == "invalid"
        assert report["error"] == code
        assert report["failed_check"] == check
        assert report["message_en"] and report["message_zh"] and report["error_description"]
        names = [c["name"] for c in report["checks"]]
        assert report["checks"][-1] == {"name": check, "passed": False, "code": code}
        assert all(c["passed"] and c["code"] is None for c in report["checks"][:-1])
        assert len(names) == len(set(names)), f"a check is reported twice: {names}"
        if prefix:
            before = CHECK_NAMES[: CHECK_NAMES.index(check)]
            assert error.passed == before
            assert tuple(names) == before + (check,)
        return error


@pytest.fixture(scope="session")
def world() -> World:
    return build_world(now=NOW)


@pytest.fixture(scope="session")
def kit(world: World) -> Kit:
    return Kit(world)


@pytest.fixture
def clock() -> Clock:
    return Clock()
