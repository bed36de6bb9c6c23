"""SD-JWT-based Verifiable Credentials: draft-ietf-oauth-sd-jwt-vc-13 on RFC 9901 (:mod:`credentials.sd_jwt`).

* :func:`issue_vc` issues an SD-JWT VC (``typ`` ``dc+sd-jwt``, s3.2.1) with ``iss``, ``vct``, ``iat``,
  ``nbf``, ``exp``, ``cnf.jwk`` and ``status.status_list`` kept out of the Disclosures (s3.2.2.2);
* :func:`verify_vc` verifies one (s3.4) and returns a :class:`VerifiedCredential`;
* :class:`IssuerMetadataResolver` resolves the Issuer's key through JWT VC Issuer Metadata (s5),
  ``https://<host>/.well-known/jwt-vc-issuer<path>``, with a pluggable ``fetch`` and a bounded cache.

Issuer keys are resolved by a ``resolve_issuer_key(iss, header, vct) -> public key`` function: the
trust list (offline) or :class:`IssuerMetadataResolver` (online). Either way the key must belong to
the issuer named in ``iss`` (s3.5: "If a recipient cannot validate that the public verification key
corresponds the Issuer ... the SD-JWT VC MUST be rejected").

Choices where the draft leaves room, with the reason:

* ``typ`` ``vc+sd-jwt`` is *not* accepted. s3.2.1 RECOMMENDS accepting it "for a reasonable
  transitional period" after November 2024; every credential in this system is issued with
  ``dc+sd-jwt``, issuers are admitted through the trust list, and a second accepted ``typ`` only widens
  the room for cross-JWT confusion (RFC 8725 s3.11) without serving any credential we accept.
* ``iat`` is never selectively disclosable here although s3.2.2.2 allows it: it is checked for being
  in the future, so it is validity-controlling (RFC 9901 s9.7).
* ``exp`` is required by :func:`verify_vc` (the draft makes it OPTIONAL; RFC 9901 s9.7 lets the
  Verifier decide which validity claims it needs): a licence credential that never expires is refused.
* ``iss`` (and the status list URI) may be ``http://`` for the loopback hosts 127.0.0.1, localhost
  and [::1] only, so that a development deployment on ``http://127.0.0.1:8000`` works without TLS;
  everywhere else s5's "MUST be ... HTTPS" holds. Trust is unaffected: the issuer's key still has
  to come from the pinned trust list or the issuer's metadata (see :func:`check_url`).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from credentials import jws
from credentials.trace import CheckTrace
from credentials.errors import (
    CannotVerify,
    CredentialError,
    IatInFuture,
    InvalidTyp,
    Malformed,
    MissingClaim,
    PayloadTooLarge,
    UnknownKey,
    UntrustedIssuer,
)
from credentials.sd_jwt import (
    MAX_DEPTH,
    MAX_DISCLOSURES,
    MAX_SD_JWT_BYTES,
    ClaimPath,
    KeyBindingPolicy,
    default_salt,
    issue,
    verify,
)
from keys.jwk import PublicKey
from keys.signer import Signer

__all__ = [
    "VC_TYP",
    "NEVER_DISCLOSABLE",
    "WELL_KNOWN_SUFFIX",
    "IssuerKeyLookup",
    "StatusReference",
    "VerifiedCredential",
    "IssuerMetadataResolver",
    "issue_vc",
    "verify_vc",
    "LOOPBACK_HOSTS",
    "well_known_url",
    "check_issuer_identifier",
    "check_url",
]

#: s3.2.1: "The typ value MUST use dc+sd-jwt."
VC_TYP = "dc+sd-jwt"
#: s3.2.2.2: "The following registered JWT claims ... MUST NOT be included in the Disclosures":
#: iss, nbf, exp, cnf, vct, vct#integrity, status; plus iat by this profile's choice (see above).
NEVER_DISCLOSABLE = frozenset({"iss", "nbf", "exp", "cnf", "vct", "vct#integrity", "status", "iat"})
#: s5: the well-known string inserted between host and path of ``iss``.
WELL_KNOWN_SUFFIX = "/.well-known/jwt-vc-issuer"
#: The only hosts for which an ``http://`` URL is accepted, for local development (see
#: :func:`check_url`). Compared with the parsed host, never with a string prefix.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_WELL_KNOWN_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")

#: ``resolve_issuer_key(iss, header, vct)``: the issuer's public key for this header, or a coded
#: error (``untrusted_issuer``, ``issuer_not_authorized_for_type``, ``unknown_key``, ``cannot_verify``).
IssuerKeyLookup = Callable[[str, Mapping[str, Any], str], PublicKey]

_SET_BY_ISSUE_VC = frozenset({"iss", "vct", "iat", "nbf", "exp", "cnf", "status"})

# Identifiers already found valid (exact str values): a verifier sees the same few issuers again and
# again, and urlsplit costs about 2 µs per credential. Bounded; cleared when full (then re-learnt).
_VALID_IDENTIFIERS: set[str] = set()
_MAX_REMEMBERED_IDENTIFIERS = 1024


def check_url(url: Any, *, what: str = "URL", allow_query: bool = True) -> str:
    """Return ``url`` if it is an ``https`` URL (or ``http`` on a loopback host); raises ``Malformed``.

    The one home of the scheme rule for every URL the credential core and the protocols accept:
    a host is required; user info, fragments, white space and backslashes are refused; a query only
    with ``allow_query``.
    """
    if not isinstance(url, str):
        raise Malformed(f"{what} must be a string")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise Malformed(f"{what} {url[:200]!r} is not a URL") from exc
    # Local development (ELICENCE_PUBLIC_URL=http://127.0.0.1:8000) has no TLS certificate, so an
    # http URL is accepted for the loopback hosts only, compared after parsing (a prefix test would
    # let http://127.0.0.1.attacker.example through). This gives no trust: keys still come from the
    # pinned trust list or the issuer's metadata, and a remote host is never reachable over http.
    secure = url.startswith("https://") or (url.startswith("http://") and parts.hostname in LOOPBACK_HOSTS)
    if (
        not secure
        or not parts.hostname
        or "@" in parts.netloc
        or (not allow_query and "?" in url)
        or "#" in url
        or "\\" in url
        or any(c.isspace() for c in url)
    ):
        query = "" if allow_query else ", query"
        raise Malformed(
            f"{what} {url[:200]!r} is not an https URL (http only on a loopback host) without"
            f" fragment{query} or user info"
        )
    return url


def check_issuer_identifier(iss: Any) -> str:
    """Return ``iss`` if it is an issuer identifier of s5; raises ``MissingClaim`` / ``Malformed``.

    s5: "The iss MUST be a case-sensitive URL using the HTTPS scheme that contains scheme, host and,
    optionally, port number and path components, but no query or fragment components."
    (OpenID4VCI 1.0 s12.2.1 defines the Credential Issuer Identifier in the same words.) The one
    exception, ``http`` on a loopback host for local development, is explained in :func:`check_url`.
    """
    if iss is None:
        raise MissingClaim("the credential has no iss")
    if not isinstance(iss, str):
        raise Malformed("iss must be a string")
    if type(iss) is str and iss in _VALID_IDENTIFIERS:
        return iss
    check_url(iss, what="iss", allow_query=False)
    if type(iss) is str:
        if len(_VALID_IDENTIFIERS) >= _MAX_REMEMBERED_IDENTIFIERS:
            _VALID_IDENTIFIERS.clear()
        _VALID_IDENTIFIERS.add(iss)
    return iss


def well_known_url(iss: str, suffix: str = "jwt-vc-issuer") -> str:
    """The metadata URL for ``iss``: ``/.well-known/<suffix>`` inserted between host and path.

    With the default suffix, the JWT VC Issuer Metadata URL (s5, s5.1); the same rule serves
    OpenID4VCI 1.0 s12.2.2 (``openid-credential-issuer``) and RFC 8414 s3.1
    (``oauth-authorization-server``). Raises like :func:`check_issuer_identifier`, and ``Malformed``
    for a suffix that is not one path segment.
    """
    check_issuer_identifier(iss)
    if not isinstance(suffix, str) or not _WELL_KNOWN_NAME.fullmatch(suffix):
        raise Malformed(f"well-known suffix {suffix!r} is not a single path segment")
    parts = urlsplit(iss)
    # s5.1: "If the iss value contains a path component, any terminating / MUST be removed before
    # inserting /.well-known/ and the well-known URI suffix between the host component and the path
    # component." (RFC 8414 s3.1 says the same.) The scheme is kept: https, or http on loopback.
    return f"{parts.scheme}://{parts.netloc}/.well-known/{suffix}{parts.path.rstrip('/')}"


@dataclass(frozen=True, slots=True)
class StatusReference:
    """``status.status_list`` of a credential (draft-ietf-oauth-status-list): index and list URI."""

    idx: int
    uri: str


@dataclass(frozen=True, slots=True)
class VerifiedCredential:
    """A verified SD-JWT VC. ``claims`` is the Processed SD-JWT Payload (disclosed claims only).

    ``kb_payload`` is the verified KB-JWT payload (``None`` without one); ``key_bound`` is true when
    Key Binding was required and checked against nonce and audience. Treat mappings as read-only.
    """

    issuer: str
    vct: str
    claims: Mapping[str, Any]
    iat: int | float | None
    nbf: int | float | None
    exp: int | float
    status: StatusReference | None
    holder_jwk: Mapping[str, Any] | None
    kb_payload: Mapping[str, Any] | None
    key_bound: bool
    kid: str | None
    header: Mapping[str, Any]
    disclosed_paths: tuple[ClaimPath, ...]


def _status_claim(status: tuple[int, str] | None) -> dict[str, Any] | None:
    if status is None:
        return None
    try:
        idx, uri = status
    except (TypeError, ValueError) as exc:
        raise Malformed("status must be (idx, uri)") from exc
    if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
        raise Malformed("status idx must be a non-negative integer")
    check_issuer_identifier(uri)  # an https URL without query or fragment
    return {"status_list": {"idx": idx, "uri": uri}}


def issue_vc(
    claims: Mapping[str, Any],
    *,
    vct: str,
    issuer: str,
    signer: Signer,
    disclosable: Iterable[Any] = (),
    holder_jwk: Mapping[str, Any] | None,
    status: tuple[int, str] | None,
    iat: int,
    nbf: int | None = None,
    exp: int,
    salt_source: Callable[[], str] = default_salt,
    decoys: int | Callable[[ClaimPath], int] = 0,
    header: Mapping[str, Any] | None = None,
) -> str:
    """Issue an SD-JWT VC (``typ`` ``dc+sd-jwt``) over the subject ``claims``.

    ``iss``, ``vct``, ``iat``, ``nbf``, ``exp``, ``cnf.jwk`` and ``status.status_list`` come from the
    parameters and stay in the clear. Raises ``Malformed`` for a non-https ``issuer``, an empty
    ``vct``, non-integer times, registered claims inside ``claims`` or a disclosable path naming a
    never-disclosable claim; plus the errors of :func:`credentials.sd_jwt.issue`.
    """
    check_issuer_identifier(issuer)
    # s3.2.2.1: "Its value MUST be a case-sensitive string serving as an identifier".
    if not isinstance(vct, str) or not vct:
        raise Malformed("vct must be a non-empty string")
    for name, value in (("iat", iat), ("exp", exp), ("nbf", nbf)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise Malformed(f"{name} must be an integer NumericDate")
    if exp <= iat or (nbf is not None and nbf > exp):
        raise Malformed("exp must be after iat and nbf")
    reserved = _SET_BY_ISSUE_VC.intersection(claims)
    if reserved:
        raise Malformed(f"claims {sorted(reserved)} are set by issue_vc's parameters")
    paths = [(p,) if isinstance(p, str) else tuple(p) for p in disclosable]
    for path in paths:
        if path and path[0] in NEVER_DISCLOSABLE:
            # s3.2.2.2: these claims "MUST NOT be included in the Disclosures, i.e., cannot be
            # selectively disclosed" (iat: this profile's choice, see the module docstring).
            raise Malformed(f"claim {path[0]!r} must not be selectively disclosable")
    payload: dict[str, Any] = {"iss": issuer, "iat": iat}
    if nbf is not None:
        payload["nbf"] = nbf
    payload["exp"] = exp
    payload["vct"] = vct
    status_claim = _status_claim(status)
    if status_claim is not None:
        payload["status"] = status_claim
    payload.update(claims)
    return issue(
        payload,
        disclosable=paths,
        signer=signer,
        typ=VC_TYP,
        salt_source=salt_source,
        decoys=decoys,
        header=header,
        holder_jwk=holder_jwk,
    )


def _parse_status(claims: Mapping[str, Any]) -> StatusReference | None:
    status = claims.get("status")
    if status is None and "status" not in claims:
        return None
    if type(status) is not dict:
        raise Malformed("status must be a JSON object")
    ref = status.get("status_list")
    if ref is None:
        return None  # another status mechanism: not ours to interpret
    if type(ref) is not dict or type(ref.get("idx")) is not int or ref["idx"] < 0 or type(ref.get("uri")) is not str:
        raise Malformed("status.status_list must be {idx: non-negative integer, uri: string}")
    return StatusReference(ref["idx"], ref["uri"])


def verify_vc(
    text: str,
    *,
    resolve_issuer_key: IssuerKeyLookup,
    now: int,
    skew: int = 60,
    kb: KeyBindingPolicy | None = None,
    expected_vcts: Collection[str] | None = None,
    max_bytes: int = MAX_SD_JWT_BYTES,
    max_disclosures: int = MAX_DISCLOSURES,
    max_depth: int = MAX_DEPTH,
    trace: CheckTrace | None = None,
) -> VerifiedCredential:
    """Verify an SD-JWT VC presentation (s3.4) and return the disclosed credential.

    Order: structure and bounds, ``kb_missing``; ``iss`` (``missing_claim`` / ``malformed``), ``vct``
    (``missing_claim``; ``invalid_typ`` when not in ``expected_vcts``), ``cnf.jwk`` when Key Binding
    is required (``missing_claim``), issuer key (the resolver's codes), ``typ`` ``dc+sd-jwt`` and
    signature (the codes of :func:`credentials.jws.verify`), disclosures (see
    :func:`credentials.sd_jwt.process_disclosures`), ``exp``/``nbf`` (``expired``, ``not_yet_valid``),
    Key Binding (``kb_*``, ``sd_hash_mismatch``); then registered claims smuggled into Disclosures
    (``malformed``), ``exp`` present (``missing_claim``) and ``iat`` (``iat_in_future``).
    """

    def issuer_key(header: Mapping[str, Any], payload: Mapping[str, Any]) -> PublicKey:
        # These values are read before the signature is checked, only to choose the key; they are
        # the same signed bytes that are then verified. iss, vct and cnf are never disclosable
        # (s3.2.2.2), so the plain payload is where they must be.
        iss = check_issuer_identifier(payload.get("iss"))
        vct = payload.get("vct")
        if vct is None:
            raise MissingClaim("the credential has no vct")  # s3.2.2.2: vct "REQUIRED"
        if not isinstance(vct, str) or not vct:
            raise Malformed("vct must be a non-empty string")
        if expected_vcts is not None and vct not in expected_vcts:
            raise InvalidTyp(f"credential type (vct) {vct!r} is not one of those requested")
        if kb is not None:
            cnf = payload.get("cnf")
            if type(cnf) is not dict or type(cnf.get("jwk")) is not dict:
                # s3.2.2.2: cnf is "REQUIRED" when "cryptographic Key Binding is to be supported".
                raise MissingClaim("Key Binding is required but the credential has no cnf.jwk")
        return resolve_issuer_key(iss, header, vct)

    trace = CheckTrace() if trace is None else trace
    verified = verify(
        text,
        issuer_key=issuer_key,
        expected_typ=VC_TYP,
        now=now,
        kb=kb,
        skew=skew,
        max_bytes=max_bytes,
        max_disclosures=max_disclosures,
        max_depth=max_depth,
        trace=trace,
    )
    claims = verified.claims
    with trace.step("disclosures"):
        for path in verified.disclosed_paths:
            if len(path) == 1 and path[0] in NEVER_DISCLOSABLE:
                # s3.2.2.2: "MUST NOT be included in the Disclosures" (iat: this profile).
                raise Malformed(f"claim {path[0]!r} must not be selectively disclosed")
    with trace.step("validity_period"):
        exp = claims.get("exp")
        if exp is None:
            raise MissingClaim("the credential has no exp")
        iat = claims.get("iat")
        if iat is not None:
            if type(iat) not in (int, float):
                raise Malformed("iat must be a NumericDate (a number)")
            if iat > now + skew:
                raise IatInFuture(f"issued at {iat}, after now ({now}) + {skew} s")
    try:
        status = _parse_status(claims)
    except CredentialError:
        # A malformed reference fails the status check, which comes after the steps above (the
        # verifier SDK runs it on this trace): tag the error so, rather than leave it unattributed.
        with trace.step("status"):
            raise
    kid = verified.header.get("kid")
    return VerifiedCredential(
        issuer=claims["iss"],
        vct=claims["vct"],
        claims=claims,
        iat=iat,
        nbf=claims.get("nbf"),
        exp=exp,
        status=status,
        holder_jwk=verified.holder_jwk,
        kb_payload=verified.kb_payload,
        key_bound=verified.key_bound,
        kid=kid if isinstance(kid, str) else None,
        header=verified.header,
        disclosed_paths=verified.disclosed_paths,
    )


# --------------------------------------------------------------------------------------------------
# JWT VC Issuer Metadata (section 5)


@dataclass(frozen=True, slots=True)
class _CachedKeys:
    fetched_at: float
    keys: tuple[Mapping[str, Any], ...]


class IssuerMetadataResolver:
    """``resolve_issuer_key`` through JWT VC Issuer Metadata (s5), for issuers that publish it.

    ``fetch(url) -> bytes`` performs an HTTP GET (tests pass a dict-backed function; no network
    here); it may raise ``OSError``/``LookupError``/``ValueError`` (reported as ``cannot_verify``) or
    a ``CredentialError``. Up to ``cache_size`` issuers' key sets are kept for ``ttl`` seconds by
    ``clock``. A ``kid`` missing from a cached set causes one refetch (key rotation) before
    ``unknown_key``. Thread-safe.
    """

    def __init__(
        self,
        fetch: Callable[[str], bytes],
        *,
        cache_size: int = 128,
        ttl: float = 3600.0,
        max_bytes: int = 64 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._cache_size = cache_size
        self._ttl = ttl
        self._max_bytes = max_bytes
        self._clock = clock
        self._cache: OrderedDict[str, _CachedKeys] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, iss: str, header: Mapping[str, Any], vct: str) -> PublicKey:
        """The key for ``header`` from ``iss``'s metadata; raises ``unknown_key``, ``untrusted_issuer``,
        ``cannot_verify``, ``malformed``, ``payload_too_large`` or ``invalid_key``."""
        entry = self._cached(iss)
        fresh = entry is None
        if entry is None:
            entry = self._load(iss)
        jwk = self._choose(entry.keys, header)
        if jwk is None and not fresh:
            entry = self._load(iss)
            jwk = self._choose(entry.keys, header)
        if jwk is None:
            raise UnknownKey(f"no key with kid {header.get('kid')!r} in the metadata of {iss}")
        alg = header.get("alg")
        return jws.public_key_from_jwk(jwk, alg=alg if isinstance(alg, str) else None)

    def _cached(self, iss: str) -> _CachedKeys | None:
        with self._lock:
            entry = self._cache.get(iss)
            if entry is None:
                return None
            if self._clock() - entry.fetched_at >= self._ttl:
                del self._cache[iss]
                return None
            self._cache.move_to_end(iss)
            return entry

    @staticmethod
    def _choose(keys: tuple[Mapping[str, Any], ...], header: Mapping[str, Any]) -> Mapping[str, Any] | None:
        kid = header.get("kid")
        if isinstance(kid, str):
            # s5.2: "the JWT contains a kid JWT header parameter that can be used to look up the
            # public key in the JWK Set".
            return next((k for k in keys if k.get("kid") == kid), None)
        # No kid: only an unambiguous single signing key will do.
        return keys[0] if len(keys) == 1 else None

    def _get_json(self, url: str) -> Any:
        try:
            body = self._fetch(url)
        except CredentialError:
            raise
        except (OSError, LookupError, ValueError) as exc:
            raise CannotVerify(f"could not fetch {url}: {exc}") from exc
        if not isinstance(body, (bytes, bytearray)):
            raise Malformed(f"{url} did not return bytes")
        if len(body) > self._max_bytes:
            raise PayloadTooLarge(f"{url} returned more than {self._max_bytes} bytes")
        return jws.loads(bytes(body))

    def _load(self, iss: str) -> _CachedKeys:
        metadata = self._get_json(well_known_url(iss))
        if type(metadata) is not dict:
            raise Malformed("JWT VC Issuer Metadata must be a JSON object")
        # s5.3: "The issuer value returned MUST be identical to the iss value of the JWT. If these
        # values are not identical, the data contained in the response MUST NOT be used."
        if metadata.get("issuer") != iss:
            raise UntrustedIssuer(f"metadata issuer {metadata.get('issuer')!r} is not {iss!r}")
        has_jwks, has_uri = "jwks" in metadata, "jwks_uri" in metadata
        # s5.2: "MUST include either jwks_uri or jwks in their JWT VC Issuer Metadata, but not both."
        if has_jwks == has_uri:
            raise Malformed("JWT VC Issuer Metadata needs exactly one of jwks and jwks_uri")
        if has_jwks:
            jwk_set = metadata["jwks"]
        else:
            uri = metadata["jwks_uri"]
            if not isinstance(uri, str) or not uri.startswith("https://"):
                raise Malformed("jwks_uri must be an https URL")
            jwk_set = self._get_json(uri)
        keys = jwk_set.get("keys") if type(jwk_set) is dict else None
        if type(keys) is not list or not all(type(k) is dict for k in keys):
            # s5.2: jwks "MUST be a JSON object containing a valid JWK Set" (RFC 7517 s5).
            raise Malformed("the issuer's JWK Set is not {keys: [JWK, ...]}")
        usable = tuple(k for k in keys if k.get("use", "sig") == "sig")
        entry = _CachedKeys(self._clock(), usable)
        with self._lock:
            self._cache[iss] = entry
            self._cache.move_to_end(iss)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return entry
