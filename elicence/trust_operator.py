"""The deployment's trust list operator: a signed trust list naming its own issuing authorities.

In the national picture the trust list is signed by a scheme operator apart from every issuer (see
:mod:`credentials.trust`); a deployment that hosts authorities publishes the list of them so that its
wallets and verifiers, and anyone else who pins the operator key, can check its credentials offline.

The list is built from what the issuer role publishes anyway (each authority's identifier, names,
region, credential types and JWKS: active keys and retired keys whose credentials are unexpired,
never a compromised key), signed with the operator key and kept for ``refresh`` seconds; a key
rotation or compromise is in the list at the latest that long after. ``sequence`` is the Unix time of
signing: it only grows, across restarts and across workers, which is what ETSI TS 119 612's
``TSLSequenceNumber`` asks of it (two workers signing in the same second publish the same content).

The operator key is a private JWK file: in demo mode ``<var>/trust-operator.jwk`` created once with
mode 0600; in production the file named by ``ELICENCE_TRUST_OPERATOR_KEY_FILE``, or no list at all.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from credentials import trust
from issuer.service import IssuerService
from keys.jwk import generate_private_key, load_private_jwk, private_jwk
from keys.keystore import write_secret_file
from keys.signer import SoftwareSigner

__all__ = ["TrustOperator", "operator_signer", "TRUST_LIST_MEDIA_TYPE"]

TRUST_LIST_MEDIA_TYPE = "application/trustlist+jwt"


def operator_signer(path: Path, *, create: bool) -> SoftwareSigner:
    """The operator's signer from its private JWK file, created (0600) first when ``create`` and absent.

    Raises ``KeystoreError`` (file cannot be written), ``OSError``, ``KeyMaterialError``.
    """
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_secret_file(path, json.dumps(private_jwk(generate_private_key("ES256"))), what="trust operator key")
        except Exception:
            if not path.exists():  # another worker may have won the race: then read its key below
                raise
    return SoftwareSigner(load_private_jwk(json.loads(path.read_text(encoding="utf-8"))))


class TrustOperator:
    """Signs and caches the deployment's trust list (thread-safe)."""

    def __init__(
        self,
        *,
        issuer: IssuerService,
        signer: SoftwareSigner,
        operator_id: str,
        lifetime: int = 7 * 86400,
        refresh: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuer = issuer
        self._signer = signer
        self.operator_id = operator_id
        self._lifetime = lifetime
        self.refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, str] | None = None

    @property
    def public_jwk(self) -> dict[str, Any]:
        """The operator key that relying parties pin."""
        return {**self._signer.public_jwk, "kid": self._signer.kid}

    def entries(self) -> list[trust.TrustedIssuer]:
        """Every authority of the deployment with a key to publish."""
        out = []
        for auth in self._issuer.authorities():
            keys = self._issuer.jwks(auth.slug)["keys"]
            if not keys:
                continue
            out.append(trust.TrustedIssuer(id=auth.issuer_id, name={"zh-CN": auth.name_zh, "en": auth.name_en},
                                           region=auth.region or "CN", vcts=tuple(auth.vcts), jwks=tuple(keys)))
        return out

    def token(self) -> str:
        """The signed trust list, rebuilt when older than ``refresh`` seconds."""
        now = self._clock()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self.refresh:
                return self._cached[1]
            signed = trust.create_trust_list(self.entries(), signer=self._signer, iss=self.operator_id, iat=int(now),
                                             exp=int(now) + self._lifetime, sequence=int(now))
            self._cached = (now, signed)
            return signed

    def invalidate(self) -> None:
        """Forget the cached list (after a key event in this process)."""
        with self._lock:
            self._cached = None
