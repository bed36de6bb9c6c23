"""Selective Disclosure for JSON Web Tokens: RFC 9901 (November 2025), compact serialization.

Values in, values out:

* :func:`issue` turns a claim set and a set of claim paths into an SD-JWT (section 4, section 6);
* :func:`present` selects Disclosures from an SD-JWT and optionally appends a Key Binding JWT
  (section 4.3, section 7.2);
* :func:`verify` checks an SD-JWT or SD-JWT+KB and returns the Processed SD-JWT Payload
  (sections 7.1 and 7.3);
* :class:`SdJwt` is the one place where the ``~``-separated form is parsed and written (section 4);
* :func:`make_disclosure` / :func:`parse_disclosure` build and read single Disclosures (section 4.2);
* :func:`process_disclosures` is the pure processing step of section 7.1 step 3 (no signature).

A claim path is a tuple of object member names (``str``) and array positions (``int``), e.g.
``("address", "street_address")`` or ``("nationalities", 1)``. Array positions always count the
elements of the array *as issued* (hidden elements included), so a path names the same claim in
issuance, presentation and verification.

Only ``sha-256`` is supported as ``_sd_alg`` (section 4.1.1: "implementations MUST support the
sha-256 hash algorithm"); only the compact serialization is implemented (section 8, the JWS JSON
Serialization, is OPTIONAL).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from credentials import jws
from credentials.trace import CheckTrace
from credentials.errors import (
    ClaimNameCollision,
    CredentialError,
    DigestDuplicate,
    DisclosureUnreferenced,
    DuplicateDisclosure,
    Expired,
    KbAudMismatch,
    KbIatOutOfWindow,
    KbMissing,
    KbNonceMismatch,
    KeyBindingError,
    Malformed,
    MalformedDisclosure,
    MissingClaim,
    NotYetValid,
    PayloadTooLarge,
    ReservedClaimName,
    SdAlgUnsupported,
    SdHashMismatch,
)
from keys.jwk import PublicKey, b64u_decode, b64u_encode
from keys.signer import Signer

__all__ = [
    "SD_ALG",
    "KB_TYP",
    "MAX_SD_JWT_BYTES",
    "MAX_DISCLOSURES",
    "MAX_DEPTH",
    "ClaimPath",
    "IssuerKeyResolver",
    "Disclosure",
    "SdJwt",
    "KeyBindingPolicy",
    "ProcessedPayload",
    "VerifiedSdJwt",
    "digest",
    "default_salt",
    "make_disclosure",
    "parse_disclosure",
    "issue",
    "present",
    "process_disclosures",
    "check_time_claims",
    "verify_key_binding",
    "verify",
]

#: The only digest algorithm: written into every payload, and the only one accepted.
SD_ALG = "sha-256"
#: RFC 9901 s4.3: "typ: REQUIRED. MUST be kb+jwt".
KB_TYP = "kb+jwt"
#: Default bound on a whole SD-JWT / SD-JWT+KB in characters.
MAX_SD_JWT_BYTES = 256 * 1024
#: Default bound on the number of Disclosures in one SD-JWT.
MAX_DISCLOSURES = 512
#: Default bound on the nesting of objects and arrays in the (processed) payload; the payload is level 1.
MAX_DEPTH = 16

_SD = "_sd"
_DOTS = "..."
_SD_ALG_KEY = "_sd_alg"
# RFC 9901 s4.2.1: the claim name "MUST NOT be _sd, ..."; _sd_alg is refused too because section 4.1.1
# allows it only at the top level of the signed payload, never inside a Disclosure.
_RESERVED_NAMES = frozenset({_SD, _DOTS, _SD_ALG_KEY})

ClaimPath = tuple[Union[str, int], ...]

_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})

#: A public key, or a function of the *unverified* protected header and payload returning the key
#: (raising a coded error such as ``unknown_key``). Use the payload only to choose the key.
IssuerKeyResolver = Union[PublicKey, Callable[[Mapping[str, Any], Mapping[str, Any]], PublicKey]]

# --------------------------------------------------------------------------------------------------
# Disclosures (section 4.2)


def digest(encoded: str) -> str:
    """base64url(SHA-256(ASCII bytes of ``encoded``)): the digest of a Disclosure (s4.2.3) or sd_hash."""
    # RFC 9901 s4.2.3: "The digest MUST be taken over the US-ASCII bytes of the base64url-encoded
    # value that is the Disclosure" and "The bytes of the digest MUST then be base64url-encoded."
    return b64u_encode(hashlib.sha256(encoded.encode("ascii")).digest())


def default_salt() -> str:
    """128 bits from the OS CSPRNG, base64url-encoded (RFC 9901 s4.2.1 and s9.3)."""
    return b64u_encode(secrets.token_bytes(16))


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One Disclosure: ``name`` is ``None`` for an array element (s4.2.2).

    ``encoded`` is the exact base64url text that is hashed; ``value`` is the decoded claim value.
    """

    salt: str
    name: str | None
    value: Any
    encoded: str
    digest: str

    @property
    def is_array_element(self) -> bool:
        return self.name is None


def make_disclosure(name: str | None, value: Any, *, salt: str) -> Disclosure:
    """Create a Disclosure for an object property (``name``) or an array element (``name=None``).

    Raises ``ReservedClaimName`` for ``_sd``/``...``/``_sd_alg`` and ``Malformed`` for a non-string
    salt or name or a value that is not JSON.
    """
    encoded = _encode_disclosure(name, value, salt)
    return Disclosure(salt, name, value, encoded, digest(encoded))


def _encode_disclosure(name: str | None, value: Any, salt: str) -> str:
    # The base64url text of make_disclosure's Disclosure; issue() needs only that and its digest.
    # RFC 9901 s4.2.1: the salt "MUST be a string"; the claim name "MUST be a string and MUST NOT be
    # _sd, ...".
    if not isinstance(salt, str) or not salt:
        raise Malformed("the salt of a Disclosure must be a non-empty string")
    if name is not None and not isinstance(name, str):
        raise Malformed("the claim name of a Disclosure must be a string")
    if name in _RESERVED_NAMES:
        raise ReservedClaimName(f"claim name {name!r} is reserved and cannot be disclosed")
    try:
        raw = jws.dumps([salt, value] if name is None else [salt, name, value])
    except (TypeError, ValueError) as exc:
        raise Malformed(f"claim value is not JSON: {exc}") from exc
    return b64u_encode(raw)


def parse_disclosure(text: str) -> Disclosure:
    """Decode one Disclosure; raises ``MalformedDisclosure`` unless it is a well-formed s4.2 array."""
    if not isinstance(text, str):
        raise MalformedDisclosure("a Disclosure must be a string")
    try:
        raw = b64u_decode(text)
    except ValueError as exc:
        raise MalformedDisclosure("a Disclosure must be base64url without padding") from exc
    try:
        content = jws.loads(raw)
    except Malformed as exc:
        raise MalformedDisclosure(f"a Disclosure must encode JSON: {exc.detail}") from exc
    if type(content) is not list:
        raise MalformedDisclosure("a Disclosure must be a JSON array")
    n = len(content)
    # RFC 9901 s7.1 step 3.3.2.1 / 3.3.3.1: a JSON array of three elements (salt, claim name, claim
    # value) for an object property, of two elements (salt, value) for an array element.
    if n == 3:
        salt, name, value = content
        if type(name) is not str:
            raise MalformedDisclosure("the claim name of a Disclosure must be a string")
    elif n == 2:
        salt, value = content
        name = None
    else:
        raise MalformedDisclosure(f"a Disclosure must have 2 or 3 elements, not {n}")
    if type(salt) is not str:
        # RFC 9901 s4.2.1: the salt "MUST be a string".
        raise MalformedDisclosure("the salt of a Disclosure must be a string")
    return Disclosure(salt, name, value, text, digest(text))


# --------------------------------------------------------------------------------------------------
# The ~ serialization (section 4)


@dataclass(frozen=True, slots=True)
class SdJwt:
    """An SD-JWT (``kb_jwt is None``) or SD-JWT+KB, split into its parts; nothing is verified."""

    issuer_jwt: str
    disclosures: tuple[str, ...] = ()
    kb_jwt: str | None = None

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        max_bytes: int = MAX_SD_JWT_BYTES,
        max_disclosures: int = MAX_DISCLOSURES,
    ) -> "SdJwt":
        """Split ``<JWT>~<D1>~...~<Dn>~[<KB-JWT>]``; raises ``Malformed`` / ``PayloadTooLarge``."""
        if not isinstance(text, str):
            raise Malformed("an SD-JWT must be a string")
        if len(text) > max_bytes:
            raise PayloadTooLarge(f"SD-JWT of {len(text)} characters exceeds {max_bytes}")
        if not text.isascii():
            # RFC 9901 s4 (ABNF): every part is BASE64URL or a JWT; s4.3.1 hashes the US-ASCII bytes.
            raise Malformed("an SD-JWT contains only ASCII characters")
        parts = text.split("~")
        if len(parts) < 2:
            # RFC 9901 s4: "the last separating tilde character MUST NOT be omitted".
            raise Malformed("not an SD-JWT: no '~' separator")
        if len(parts) - 2 > max_disclosures:
            raise PayloadTooLarge(f"{len(parts) - 2} Disclosures exceed the limit of {max_disclosures}")
        issuer_jwt, disclosures, last = parts[0], parts[1:-1], parts[-1]
        if not issuer_jwt:
            raise Malformed("the Issuer-signed JWT is empty")
        if "" in disclosures:
            # RFC 9901 s4 (ABNF): DISCLOSURE = BASE64URL, one or more characters.
            raise Malformed("empty Disclosure ('~~') in SD-JWT")
        return cls(issuer_jwt, tuple(disclosures), last or None)

    @property
    def sd_jwt_text(self) -> str:
        """The SD-JWT without the KB-JWT: what ``sd_hash`` is computed over (s4.3.1)."""
        # RFC 9901 s4.3.1: "the Issuer-signed JWT, a tilde character, and zero or more Disclosures
        # selected for presentation to the Verifier, each followed by a tilde character".
        if not self.disclosures:
            return self.issuer_jwt + "~"
        return self.issuer_jwt + "~" + "~".join(self.disclosures) + "~"

    def serialize(self) -> str:
        """The compact form; an SD-JWT ends with ``~``, an SD-JWT+KB with the KB-JWT."""
        return self.sd_jwt_text + (self.kb_jwt or "")


# --------------------------------------------------------------------------------------------------
# Issuance (section 4, section 6)


def _norm_path(path: Any) -> ClaimPath:
    if isinstance(path, str):
        return (path,)
    try:
        out = tuple(path)
    except TypeError as exc:
        raise Malformed(f"a claim path must be a tuple of names and positions, not {path!r}") from exc
    if not out or not all(
        (isinstance(p, str) or (isinstance(p, int) and not isinstance(p, bool) and p >= 0)) for p in out
    ):
        raise Malformed(f"a claim path must be a non-empty tuple of names and positions, not {path!r}")
    return out


DecoyPolicy = Union[int, Callable[[ClaimPath], int]]


def issue(
    claims: Mapping[str, Any],
    *,
    disclosable: Iterable[Any],
    signer: Signer,
    typ: str,
    salt_source: Callable[[], str] = default_salt,
    decoys: DecoyPolicy = 0,
    header: Mapping[str, Any] | None = None,
    holder_jwk: Mapping[str, Any] | None = None,
) -> str:
    """Issue an SD-JWT (``<JWT>~<D1>~...~``) over ``claims``, hiding each path in ``disclosable``.

    A path whose parent is also disclosable yields a recursive Disclosure (s4.2.6, s6.3). ``decoys``
    is the number of decoy digests added to each object that has selectively disclosable members,
    or a function from an object's path (``()`` for the top level) to its number of decoys. With
    ``holder_jwk`` the payload gets ``cnf.jwk`` (s4.1.2). Digests in each ``_sd`` are sorted.

    Raises ``Malformed`` for a path that is not in ``claims`` or claims that are not JSON,
    ``ReservedClaimName`` for claims named ``_sd``/``...``/``_sd_alg`` and the signer's errors.
    """
    if not isinstance(claims, Mapping):
        raise Malformed("claims must be a JSON object")
    paths = {_norm_path(p) for p in disclosable}
    decoy_count: Callable[[ClaimPath, bool], int]
    if callable(decoys):
        decoy_count = lambda path, has_sd: decoys(path)  # noqa: E731
    elif isinstance(decoys, int) and not isinstance(decoys, bool) and decoys >= 0:
        decoy_count = lambda path, has_sd: decoys if has_sd else 0  # noqa: E731
    else:
        raise Malformed("decoys must be a non-negative integer or a function of the object path")

    issued: list[str] = []
    found: set[ClaimPath] = set()
    used_salts: set[str] = set()

    def fresh_salt() -> str:
        salt = salt_source()
        if salt in used_salts:
            # RFC 9901 s4.2.1: "The salt value MUST be unique for each claim that is to be
            # selectively disclosed"; a repeated salt would also repeat decoy digests (s4.1).
            raise Malformed("salt_source returned the same salt twice")
        used_salts.add(salt)
        return salt

    def encode(value: Any, path: ClaimPath) -> Any:
        t = type(value)
        if t in _JSON_SCALARS:
            return value  # the common case first; the checks below are for containers and subclasses
        if t is dict or isinstance(value, Mapping):
            out: dict[str, Any] = {}
            digests: list[str] = []
            for name, member in value.items():
                if not isinstance(name, str):
                    raise Malformed(f"claim names are strings, not {name!r}")
                if name in _RESERVED_NAMES:
                    # RFC 9901 s4.1: "The payload MUST NOT contain the claims _sd or ... except for
                    # the purpose of conveying digests".
                    raise ReservedClaimName(f"claim name {name!r} at {path!r} is reserved")
                sub = path + (name,)
                encoded = member if type(member) in _JSON_SCALARS else encode(member, sub)
                if sub in paths:
                    found.add(sub)
                    disclosure = _encode_disclosure(name, encoded, fresh_salt())
                    issued.append(disclosure)
                    digests.append(digest(disclosure))
                else:
                    out[name] = encoded
            n_decoys = decoy_count(path, bool(digests))
            if not isinstance(n_decoys, int) or isinstance(n_decoys, bool) or n_decoys < 0:
                raise Malformed("the decoy policy must return a non-negative integer")
            if n_decoys:
                # RFC 9901 s4.2.5: decoys are "hashing over a cryptographically secure random number"
                # with "The same digest function as for the Disclosures".
                digests.extend(digest(fresh_salt()) for _ in range(n_decoys))
            if digests:
                # RFC 9901 s4.2.4.1: "The Issuer MUST hide the original order of the claims in the
                # array" - sorting does not depend on the original order.
                digests.sort()
                out[_SD] = digests
            return out
        if isinstance(value, (list, tuple)):
            items: list[Any] = []
            for i, element in enumerate(value):
                sub = path + (i,)
                encoded = encode(element, sub)
                if sub in paths:
                    found.add(sub)
                    disclosure = _encode_disclosure(None, encoded, fresh_salt())
                    issued.append(disclosure)
                    # RFC 9901 s4.2.4.2: {"...": "<digest>"} in the same position; "There MUST NOT
                    # be any other keys in the object."
                    items.append({_DOTS: digest(disclosure)})
                else:
                    items.append(encoded)
            return items
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        raise Malformed(f"claim value at {path!r} is not JSON: {type(value).__name__}")

    payload = encode(claims, ())
    missing = paths - found
    if missing:
        raise Malformed(f"disclosable path(s) not in the claims: {sorted(map(repr, missing))}")
    for name in (_SD_ALG_KEY, "cnf") if holder_jwk is not None else (_SD_ALG_KEY,):
        if name in payload:
            raise Malformed(f"claim {name!r} is set by issue(), not by the caller")
    # RFC 9901 s4.1.1: "When used, this claim MUST appear at the top level of the SD-JWT payload".
    payload[_SD_ALG_KEY] = SD_ALG
    if holder_jwk is not None:
        # RFC 9901 s4.1.2: the Holder's public key in "the cnf claim as defined in [RFC7800]".
        _import_jwk(holder_jwk)
        payload["cnf"] = {"jwk": dict(holder_jwk)}
    issuer_jwt = jws.sign(payload, signer, typ=typ, header=header)
    return SdJwt(issuer_jwt, tuple(issued)).serialize()


# --------------------------------------------------------------------------------------------------
# Processing (section 7.1 step 3)


@dataclass(frozen=True, slots=True)
class ProcessedPayload:
    """The Processed SD-JWT Payload and, in document order, the path of each Disclosure used."""

    claims: dict[str, Any]
    disclosed_paths: tuple[ClaimPath, ...]
    disclosures: tuple[Disclosure, ...]


def _index_disclosures(texts: Iterable[str]) -> dict[str, Disclosure]:
    by_digest: dict[str, Disclosure] = {}
    for text in texts:
        d = parse_disclosure(text)
        if d.digest in by_digest:
            # RFC 9901 s4: "A Holder MUST NOT ... send a Disclosure more than once."
            raise DuplicateDisclosure(f"Disclosure {text[:16]}... is presented more than once")
        by_digest[d.digest] = d
    return by_digest


def _process(
    payload: Mapping[str, Any], by_digest: Mapping[str, Disclosure], max_depth: int
) -> ProcessedPayload:
    seen: set[str] = set()
    used: list[tuple[ClaimPath, Disclosure]] = []

    def walk(node: Any, path: ClaimPath, depth: int) -> Any:
        t = type(node)
        if t is dict:
            return walk_object(node, path, depth)
        if t is list:
            return walk_array(node, path, depth)
        return node

    def claim_digest(d: Any) -> None:
        if d in seen:
            # RFC 9901 s7.1 step 4: "If any digest value is encountered more than once in the
            # Issuer-signed JWT payload (directly or recursively via other Disclosures), the SD-JWT
            # MUST be rejected."
            raise DigestDuplicate(f"digest {d} appears more than once")
        seen.add(d)

    def walk_object(obj: dict[str, Any], path: ClaimPath, depth: int) -> dict[str, Any]:
        if depth >= max_depth:
            raise PayloadTooLarge(f"payload nesting exceeds {max_depth} levels")
        out: dict[str, Any] = {}
        digests = None
        for key, value in obj.items():
            if key not in _RESERVED_NAMES:
                # walk() inlined: most claims are strings and numbers, which are kept as they are.
                t = type(value)
                if t is dict:
                    out[key] = walk_object(value, path + (key,), depth + 1)
                elif t is list:
                    out[key] = walk_array(value, path + (key,), depth + 1)
                else:
                    out[key] = value
            elif key == _SD:
                # RFC 9901 s4.2.4.1: "The _sd key MUST refer to an array of strings".
                if type(value) is not list or not all(type(d) is str for d in value):
                    raise Malformed(f"'_sd' at {path!r} is not an array of strings")
                digests = value
            elif key == _DOTS:
                # RFC 9901 s4.1: the payload "MUST NOT contain the claims _sd or ... except for the
                # purpose of conveying digests"; '...' conveys a digest only as an array element.
                raise Malformed(f"'...' outside an array element at {path!r}")
            else:
                # _sd_alg. RFC 9901 s4.1.1: it "MUST NOT be used in any object nested within the
                # payload"; s7.1 step 3.6: "Remove the claim _sd_alg from the SD-JWT payload."
                if depth:
                    raise Malformed(f"'_sd_alg' nested at {path!r}")
        if digests:
            for d in digests:
                claim_digest(d)
                disclosure = by_digest.get(d)
                if disclosure is None:
                    # RFC 9901 s7.1 step 3.3.1: "If no such Disclosure can be found, the digest MUST
                    # be ignored." (a decoy, or a claim the Holder did not disclose)
                    continue
                name = disclosure.name
                if name is None:
                    # RFC 9901 s7.1 step 3.3.2.1: "If the contents of the respective Disclosure is
                    # not a JSON array of three elements (salt, claim name, claim value), the SD-JWT
                    # MUST be rejected."
                    raise MalformedDisclosure(f"array element Disclosure referenced from '_sd' at {path!r}")
                if name in _RESERVED_NAMES:
                    # RFC 9901 s7.1 step 3.3.2.2: "If the claim name is _sd or ..., the SD-JWT MUST be
                    # rejected."
                    raise ReservedClaimName(f"Disclosure uses the reserved claim name {name!r}")
                if name in out:
                    # RFC 9901 s7.1 step 3.3.2.3: "If the claim name already exists at the level of
                    # the _sd key, the SD-JWT MUST be rejected."
                    raise ClaimNameCollision(f"disclosed claim {name!r} already exists at {path!r}")
                sub = path + (name,)
                used.append((sub, disclosure))
                # RFC 9901 s7.1 step 3.3.2.4-5: insert, then "Recursively process the value".
                out[name] = walk(disclosure.value, sub, depth + 1)
        return out

    def walk_array(arr: list[Any], path: ClaimPath, depth: int) -> list[Any]:
        if depth >= max_depth:
            raise PayloadTooLarge(f"payload nesting exceeds {max_depth} levels")
        out: list[Any] = []
        for i, element in enumerate(arr):
            if type(element) is dict and _DOTS in element:
                d = element[_DOTS]
                # RFC 9901 s4.2.4.2: "The key MUST always be the string ... There MUST NOT be any
                # other keys in the object."; the value is a digest, a string.
                if len(element) != 1 or type(d) is not str:
                    raise Malformed(f"array element at {path + (i,)!r} is not {{'...': <digest>}}")
                claim_digest(d)
                disclosure = by_digest.get(d)
                if disclosure is None:
                    # RFC 9901 s7.1 step 3.4: "Remove all array elements for which the digest was
                    # not found in the previous step."
                    continue
                if disclosure.name is not None:
                    # RFC 9901 s7.1 step 3.3.3.1: "If the contents of the respective Disclosure is
                    # not a JSON array of two elements (salt, value), the SD-JWT MUST be rejected."
                    raise MalformedDisclosure(f"object property Disclosure used as array element {path + (i,)!r}")
                sub = path + (i,)
                used.append((sub, disclosure))
                out.append(walk(disclosure.value, sub, depth + 1))
            else:
                out.append(walk(element, path + (i,), depth + 1))
        return out

    claims = walk_object(payload if type(payload) is dict else dict(payload), (), 0)
    if len(used) != len(by_digest):
        referenced = {d.digest for _, d in used}
        stray = next(d for d in by_digest.values() if d.digest not in referenced)
        # RFC 9901 s7.1 step 5: "If any Disclosure was not referenced by digest value in the
        # Issuer-signed JWT (directly or recursively via other Disclosures), the SD-JWT MUST be
        # rejected."
        raise DisclosureUnreferenced(f"Disclosure {stray.encoded[:16]}... is not referenced")
    return ProcessedPayload(
        claims, tuple(p for p, _ in used), tuple(d for _, d in used)
    )


def _check_sd_alg(payload: Mapping[str, Any]) -> None:
    # RFC 9901 s4.1.1: "If the _sd_alg claim is not present at the top level, a default value of
    # sha-256 MUST be used"; s7.1 step 2.4: "Check that the _sd_alg claim value is understood".
    alg = payload.get(_SD_ALG_KEY, SD_ALG)
    if alg != SD_ALG:
        raise SdAlgUnsupported(f"_sd_alg {alg!r} is not supported; only {SD_ALG}")


def process_disclosures(
    payload: Mapping[str, Any],
    disclosures: Iterable[str],
    *,
    max_depth: int = MAX_DEPTH,
) -> ProcessedPayload:
    """RFC 9901 s7.1 steps 2.4-5 over an already verified payload: the Processed SD-JWT Payload.

    Raises ``sd_alg_unsupported``, ``malformed_disclosure``, ``duplicate_disclosure``,
    ``digest_duplicate``, ``reserved_claim_name``, ``claim_name_collision``,
    ``disclosure_unreferenced``, ``malformed`` and ``payload_too_large``.
    """
    _check_sd_alg(payload)
    return _process(payload, _index_disclosures(disclosures), max_depth)


# --------------------------------------------------------------------------------------------------
# Presentation (section 7.2, section 4.3)


def _select(
    payload: Mapping[str, Any], by_digest: Mapping[str, Disclosure], path: ClaimPath
) -> list[str]:
    """Digests of the Disclosures needed to reveal ``path`` (its own and its ancestors')."""
    needed: list[str] = []
    node: Any = payload
    for i, step in enumerate(path):
        here = path[: i + 1]
        if type(node) is dict and isinstance(step, str):
            if step in node and step not in (_SD, _DOTS, _SD_ALG_KEY):
                node = node[step]
                continue
            match = next(
                (
                    by_digest[d]
                    for d in node.get(_SD, ())
                    if d in by_digest and by_digest[d].name == step
                ),
                None,
            )
        elif type(node) is list and isinstance(step, int) and step < len(node):
            element = node[step]
            if not (type(element) is dict and len(element) == 1 and _DOTS in element):
                node = element
                continue
            match = by_digest.get(element[_DOTS])
        else:
            match = None
        if match is None:
            raise Malformed(f"no claim at {here!r} in this SD-JWT")
        needed.append(match.digest)
        node = match.value
    return needed


def present(
    sd_jwt_text: str,
    *,
    disclose: Iterable[Any],
    holder_signer: Signer | None = None,
    aud: str | None = None,
    nonce: str | None = None,
    now: int | None = None,
) -> str:
    """Present an issued SD-JWT revealing the claims at the ``disclose`` paths (and their parents).

    Disclosures keep their issued order. With ``holder_signer`` a KB-JWT (``typ`` ``kb+jwt``, the
    signer's ``alg``, claims ``iat``/``aud``/``nonce``/``sd_hash``) is appended; ``aud``, ``nonce``
    and ``now`` are then required. Whether the Verifier requires Key Binding is its policy, so a
    credential with ``cnf`` may still be presented without a KB-JWT.

    Raises ``Malformed`` for an SD-JWT+KB input (s7.2), an unknown path or missing KB inputs, and
    the processing errors of :func:`process_disclosures` for an inconsistent SD-JWT.
    """
    sd = SdJwt.parse(sd_jwt_text)
    if sd.kb_jwt is not None:
        # RFC 9901 s7.2: "If the Holder receives an SD-JWT+KB, it MUST be rejected."
        raise Malformed("an issued SD-JWT must not carry a Key Binding JWT")
    payload = jws.parse(sd.issuer_jwt).payload
    _check_sd_alg(payload)
    by_digest = _index_disclosures(sd.disclosures)
    # RFC 9901 s7.2: the Holder MUST verify that each selected Disclosure is referenced by the
    # Issuer-signed JWT or by another selected Disclosure; processing all of them checks that.
    _process(payload, by_digest, MAX_DEPTH)
    wanted: set[str] = set()
    for path in disclose:
        wanted.update(_select(payload, by_digest, _norm_path(path)))
    # by_digest holds every Disclosure once, in presented order (a repeat raised duplicate_disclosure).
    selected = tuple(d.encoded for d in by_digest.values() if d.digest in wanted)
    presentation = SdJwt(sd.issuer_jwt, selected)
    if holder_signer is None:
        return presentation.serialize()
    if not isinstance(aud, str) or not aud or not isinstance(nonce, str) or not nonce:
        # RFC 9901 s4.3: aud "MUST be a single string", nonce "MUST be a string".
        raise Malformed("a Key Binding JWT needs a string aud and a string nonce")
    if not isinstance(now, int) or isinstance(now, bool):
        raise Malformed("a Key Binding JWT needs now= (seconds since the epoch) for iat")
    kb_payload = {
        "iat": now,
        "aud": aud,
        "nonce": nonce,
        # RFC 9901 s4.3.1: sd_hash over the US-ASCII bytes of <JWT>~<D1>~...~<Dn>~ with the same
        # hash algorithm as the Disclosures.
        "sd_hash": digest(presentation.sd_jwt_text),
    }
    kb_jwt = jws.sign(kb_payload, holder_signer, typ=KB_TYP, include_kid=False)
    return SdJwt(sd.issuer_jwt, selected, kb_jwt).serialize()


# --------------------------------------------------------------------------------------------------
# Verification (sections 7.1, 7.3)


@dataclass(frozen=True, slots=True)
class KeyBindingPolicy:
    """The Verifier's Key Binding requirement for one transaction (RFC 9901 s7.3 step 1).

    ``aud`` is this Verifier's identifier (or the accepted set); ``max_age`` bounds how old the
    KB-JWT's ``iat`` may be, ``skew`` how far in the future it may lie (seconds). ``nonce=None`` is
    for presentations made without a Verifier's challenge (the offline QR code): the KB-JWT must
    still carry a string nonce (s4.3), and freshness comes from ``max_age`` plus a replay cache.
    """

    nonce: str | None
    aud: str | Collection[str]
    max_age: int = 300
    skew: int = 60


@dataclass(frozen=True, slots=True)
class VerifiedSdJwt:
    """The result of :func:`verify`. Treat the mappings as read-only.

    ``payload`` is the Issuer-signed payload as signed; ``claims`` the Processed SD-JWT Payload
    (``_sd``, ``_sd_alg`` and ``...`` removed, disclosed claims inserted). ``kb_payload`` is set when
    a KB-JWT was verified; ``key_bound`` is true when it was checked against a policy.
    """

    header: Mapping[str, Any]
    payload: Mapping[str, Any]
    claims: Mapping[str, Any]
    disclosed_paths: tuple[ClaimPath, ...]
    disclosures: tuple[Disclosure, ...]
    cnf: Mapping[str, Any] | None
    holder_jwk: Mapping[str, Any] | None
    kb_header: Mapping[str, Any] | None
    kb_payload: Mapping[str, Any] | None
    key_bound: bool
    sd_jwt: SdJwt


def _number(payload: Mapping[str, Any], name: str) -> int | float | None:
    value = payload.get(name)
    if value is None and name not in payload:
        return None
    if type(value) not in (int, float):
        raise Malformed(f"claim {name!r} must be a NumericDate (a number)")
    return value


@functools.lru_cache(maxsize=1024)
def _cached_public_key(members: tuple[tuple[str, str], ...]) -> PublicKey:
    # A wallet presents the same credential many times: importing and validating its cnf key
    # (point-on-curve check) once per distinct JWK takes about a tenth of a verification.
    return jws.public_key_from_jwk(dict(members))


def _import_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """``jws.public_key_from_jwk``, cached when every member is a string; raises ``InvalidKey``."""
    if all(type(k) is str and type(v) is str for k, v in jwk.items()):
        return _cached_public_key(tuple(sorted(jwk.items())))
    return jws.public_key_from_jwk(jwk)


def _holder_key(claims: Mapping[str, Any]) -> tuple[Mapping[str, Any], PublicKey]:
    cnf = claims.get("cnf")
    jwk = cnf.get("jwk") if type(cnf) is dict else None
    if type(jwk) is not dict:
        # RFC 9901 s4.3.2: the Verifier uses "the key specified in the SD-JWT as the Holder's public
        # key"; only the cnf.jwk confirmation method (RFC 7800 s3.2) is supported.
        raise MissingClaim("Key Binding needs the Holder's key in cnf.jwk")
    try:
        return jwk, _import_jwk(jwk)
    except CredentialError as exc:
        raise KeyBindingError(f"cnf.jwk is not a usable key: {exc.detail}") from exc


def check_time_claims(claims: Mapping[str, Any], *, now: int, skew: int) -> None:
    """``exp`` and ``nbf`` of the processed payload with ``skew`` seconds of tolerance.

    Raises ``expired``, ``not_yet_valid``, or ``malformed`` for a non-numeric value.
    """
    # RFC 9901 s7.1 step 6: "Check that the SD-JWT is valid using claims such as nbf, exp, and aud in
    # the processed payload, if present."
    exp = _number(claims, "exp")
    if exp is not None and now >= exp + skew:
        raise Expired(f"expired at {exp} (now {now})")
    nbf = _number(claims, "nbf")
    if nbf is not None and now < nbf - skew:
        raise NotYetValid(f"not valid before {nbf} (now {now})")


def verify_key_binding(
    sd: SdJwt,
    claims: Mapping[str, Any],
    policy: KeyBindingPolicy | None,
    *,
    now: int,
    skew: int,
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Verify the KB-JWT of ``sd`` against the holder key in ``claims`` (RFC 9901 s7.3 step 5).

    Returns the KB-JWT header and payload. Raises ``kb_invalid``, ``kb_iat_out_of_window``,
    ``kb_nonce_mismatch``, ``kb_aud_mismatch``, ``sd_hash_mismatch``, ``missing_claim``.
    """
    try:
        _, holder_key = _holder_key(claims)
    except MissingClaim as exc:
        if policy is not None:
            raise
        raise KeyBindingError("a KB-JWT is present but the credential has no cnf.jwk") from exc
    try:
        kb = jws.parse(sd.kb_jwt)  # type: ignore[arg-type]
        # RFC 9901 s7.3 steps 5.2-5.4: allowed algorithm (never none), signature with the Holder's
        # key, typ kb+jwt.
        kb = jws.verify_parsed(kb, holder_key, typ=KB_TYP)
    except CredentialError as exc:
        raise KeyBindingError(f"KB-JWT: {exc.detail}") from exc
    p = kb.payload
    # RFC 9901 s4.3: iat, aud, nonce and sd_hash are REQUIRED; aud "MUST be a single string",
    # nonce's "value type ... MUST be a string".
    iat = p.get("iat")
    if type(iat) not in (int, float):
        raise KeyBindingError("KB-JWT lacks a numeric iat")
    for name in ("aud", "nonce", "sd_hash"):
        if type(p.get(name)) is not str:
            raise KeyBindingError(f"KB-JWT lacks a string {name}")
    if policy is not None:
        # RFC 9901 s7.3 step 5.5: "Check that the creation time of the Key Binding JWT, as
        # determined by the iat claim, is within an acceptable window."
        if iat > now + policy.skew:
            raise KbIatOutOfWindow(f"KB-JWT iat {iat} is in the future (now {now})")
        if iat < now - policy.max_age:
            raise KbIatOutOfWindow(f"KB-JWT iat {iat} is older than {policy.max_age} s (now {now})")
        # RFC 9901 s7.3 step 5.6: "validating nonce and aud claims".
        if policy.nonce is not None and p["nonce"] != policy.nonce:
            raise KbNonceMismatch()
        accepted = (policy.aud,) if isinstance(policy.aud, str) else policy.aud
        if p["aud"] not in accepted:
            raise KbAudMismatch(f"KB-JWT aud {p['aud']!r} is not this Verifier")
    elif iat > now + skew:
        raise KbIatOutOfWindow(f"KB-JWT iat {iat} is in the future (now {now})")
    # RFC 9901 s7.3 step 5.7: "Calculate the digest over the Issuer-signed JWT and Disclosures as
    # defined in Section 4.3.1 and verify that it matches the value of the sd_hash claim".
    if p["sd_hash"] != digest(sd.sd_jwt_text):
        raise SdHashMismatch()
    return kb.header, p


def verify(
    text: str,
    *,
    issuer_key: IssuerKeyResolver,
    expected_typ: str | Collection[str],
    now: int,
    kb: KeyBindingPolicy | None = None,
    skew: int = 60,
    algorithms: Collection[str] = jws.ALLOWED_ALGS,
    max_bytes: int = MAX_SD_JWT_BYTES,
    max_disclosures: int = MAX_DISCLOSURES,
    max_depth: int = MAX_DEPTH,
    trace: CheckTrace | None = None,
) -> VerifiedSdJwt:
    """Verify an SD-JWT or SD-JWT+KB (RFC 9901 s7.1, s7.3) and return the processed claims.

    Key Binding is required exactly when ``kb`` is given (s7.3 step 1: the decision "MUST NOT be
    based on whether a Key Binding JWT is provided"). A KB-JWT presented although not required is
    still verified (signature by ``cnf.jwk``, ``typ``, required claims, ``iat`` not in the future,
    ``sd_hash``) and rejected if it fails: s4 says a Verifier expecting an SD-JWT "MUST verify that
    the final tilde-separated component is empty", and accepting an unchecked trailing JWT would be
    worse than either; ``key_bound`` stays false because no nonce or audience was checked.

    Raises (codes): issuer JWT - ``malformed``, ``payload_too_large``, ``unsupported_alg``,
    ``invalid_typ``, ``crit_unsupported``, ``invalid_key``, ``unknown_key``, ``invalid_signature``;
    disclosures - see :func:`process_disclosures`; validity - ``expired``, ``not_yet_valid``;
    Key Binding - ``kb_missing``, ``missing_claim`` (no ``cnf.jwk``), ``kb_invalid``,
    ``kb_iat_out_of_window``, ``kb_nonce_mismatch``, ``kb_aud_mismatch``, ``sd_hash_mismatch``.

    The steps run as named checks on ``trace`` (``format``, ``trusted_issuer``, ``signature``,
    ``disclosures``, ``validity_period``, ``key_binding``); an error carries the failed one in ``.check``.
    """
    trace = CheckTrace() if trace is None else trace
    with trace.step("format"):
        sd = SdJwt.parse(text, max_bytes=max_bytes, max_disclosures=max_disclosures)
        parsed = jws.parse(sd.issuer_jwt, max_bytes=max_bytes)
    with trace.step("trusted_issuer"):
        key = issuer_key(parsed.header, parsed.payload) if callable(issuer_key) else issuer_key
    with trace.step("signature"):
        # RFC 9901 s7.1 step 2.1-2.2: an algorithm "deemed secure" ("The none algorithm MUST NOT be
        # accepted") and the signature per RFC 7515 s5.2; s9.11 explicit typing.
        signed = jws.verify_parsed(parsed, key, typ=expected_typ, algorithms=algorithms)
    payload = signed.payload
    with trace.step("disclosures"):
        _check_sd_alg(payload)
        processed = _process(payload, _index_disclosures(sd.disclosures), max_depth)
    claims = processed.claims
    with trace.step("validity_period"):
        check_time_claims(claims, now=now, skew=skew)
    kb_header = kb_payload = None
    with trace.step("key_binding"):
        if kb is not None and sd.kb_jwt is None:
            # RFC 9901 s7.3 step 2: "If Key Binding is required and the Holder has provided an SD-JWT
            # (without Key Binding), the Verifier MUST reject the presentation."
            raise KbMissing()
        if sd.kb_jwt is not None:
            kb_header, kb_payload = verify_key_binding(sd, claims, kb, now=now, skew=skew)
    cnf = claims.get("cnf")
    cnf = cnf if type(cnf) is dict else None
    holder_jwk = cnf.get("jwk") if cnf is not None and type(cnf.get("jwk")) is dict else None
    return VerifiedSdJwt(
        header=signed.header,
        payload=payload,
        claims=claims,
        disclosed_paths=processed.disclosed_paths,
        disclosures=processed.disclosures,
        cnf=cnf,
        holder_jwk=holder_jwk,
        kb_header=kb_header,
        kb_payload=kb_payload,
        key_bound=kb is not None,
        sd_jwt=sd,
    )
