"""Digital Credentials Query Language (DCQL): OpenID for Verifiable Presentations 1.0, s6 and s7.

Section numbers are those of OpenID4VP 1.0 (final, 2025; the text incorporating errata set 1). Values
in, values out; no network, no clock:

* :func:`parse_query` validates a ``dcql_query`` (s6.1 Credential Query, s6.1.1 Trusted Authorities
  Query, s6.2 Credential Set Query, s6.3 Claims Query, s7 claims path pointers) into a frozen
  :class:`DcqlQuery`; :meth:`DcqlQuery.to_json` writes it back;
* :func:`select_claims` applies a claims path pointer to a JSON credential (s7.1.1);
* :func:`match` (Wallet side, s6.4) finds, for each Credential Query, the candidate credentials that
  satisfy it and the exact claim paths to disclose (the first satisfiable ``claim_sets`` option), and
  chooses the Credential Queries to answer (s6.4.2);
* :func:`check_answers` (Verifier side, s8.6 step 3 and s14 "Security Checks on the Returned
  Credentials") checks that verified presentations answer the query.

Only the SD-JWT VC format (``dc+sd-jwt``, Appendix B.3) is matched; a query for another format is
valid DCQL, and no candidate here satisfies it.

Errors: :class:`InvalidDcqlQuery` (``invalid_dcql_query``) for a malformed query and
:class:`DcqlNotSatisfied` (``dcql_not_satisfied``) when answers do not satisfy a query; nothing else
escapes :func:`parse_query` (a property test feeds it arbitrary JSON).

Choices where the specification leaves room, with the reason:

* Two Claims Queries pointing at the same path are refused (s6.1: "Verifiers MUST NOT point to the
  same claim more than once"; "Wallets SHOULD ignore such duplicate claim queries"): a query is
  parsed on both sides here, and a query breaking a MUST is more likely a bug than a peer to indulge.
* ``vct`` inheritance (B.3.5: the Wallet "MAY return Credentials that inherit from any of the
  specified types") is not followed: a ``vct`` must be one of ``vct_values`` exactly.
* ``trusted_authorities`` is parsed and kept but not matched (the Wallet "SHOULD" match; the types
  ``aki``/``etsi_tl``/``openid_federation`` do not apply to this trust list). The Verifier checks
  issuer trust itself in any case (s6.1: "Verifiers must verify that the issuer ... is trusted").
* ``values`` is enforced on both sides. The Verifier's check runs on verified claims, so it does not
  rely on the Wallet (s6.4.1: Verifiers "MUST NOT rely on it for security checks").
* Array indexes in a pointer are positions *as issued* for the Wallet (its claims hold every
  element) but positions *as presented* for the Verifier, where undisclosed elements are removed
  (RFC 9901 s7.1). A query that must pick one selectively disclosable array element should select it
  by value (``[..., null]`` with ``values``), which reads the same on both sides.
* Limits: at most 32 Credential Queries, 64 Claims Queries each, 16 ``claim_sets`` / ``options``,
  paths of 16 components, 64 ``values``, identifiers of 64 characters, 16 KiB of JSON text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from credentials import jws
# One pair of helpers for read-only JSON values in the core: frozen mappings in, plain JSON out.
from credentials.audit import _freeze, _thaw
from credentials.errors import CredentialError

__all__ = [
    "SD_JWT_VC_FORMAT",
    "MAX_QUERY_CHARS",
    "ClaimsPathPointer",
    "DcqlError",
    "InvalidDcqlQuery",
    "DcqlNotSatisfied",
    "ClaimsQuery",
    "TrustedAuthoritiesQuery",
    "CredentialQuery",
    "CredentialSetQuery",
    "DcqlQuery",
    "parse_query",
    "select_claims",
    "Candidate",
    "CandidateMatch",
    "DcqlMatch",
    "match",
    "check_answers",
]

#: Appendix B.3.1: the Credential Format Identifier of IETF SD-JWT VC.
SD_JWT_VC_FORMAT = "dc+sd-jwt"
#: Bound on a ``dcql_query`` given as JSON text.
MAX_QUERY_CHARS = 16 * 1024
MAX_CREDENTIAL_QUERIES = 32
MAX_CLAIMS = 64
MAX_SETS = 16
MAX_PATH = 16
MAX_VALUES = 64
MAX_ID_CHARS = 64
MAX_TEXT_CHARS = 1024

#: A claims path pointer (s7): names, ``None`` (every element of an array) and array indexes.
ClaimsPathPointer = tuple[Union[str, int, None], ...]
#: A concrete claim path (no ``None``), as :func:`credentials.sd_jwt.present` takes it.
ClaimPath = tuple[Union[str, int], ...]

# s6.1 / s6.3: "a non-empty string consisting of alphanumeric, underscore (_), or hyphen (-) characters".
_ID = re.compile(r"[A-Za-z0-9_-]+")


class DcqlError(Exception):
    """Root of the DCQL errors; ``code`` is stable, ``detail`` says what exactly was wrong."""

    code: ClassVar[str] = "dcql_error"
    description: ClassVar[str] = "The DCQL query could not be processed."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.description
        super().__init__(self.detail)

    def to_dict(self) -> dict[str, str]:
        """``{"error": code, "error_description": detail}``."""
        return {"error": self.code, "error_description": self.detail}


class InvalidDcqlQuery(DcqlError):
    code = "invalid_dcql_query"
    description = "The DCQL query is malformed."


class DcqlNotSatisfied(DcqlError):
    code = "dcql_not_satisfied"
    description = "The presented credentials do not answer the DCQL query."


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# The query (s6)


@dataclass(frozen=True, slots=True)
class ClaimsQuery:
    """s6.3: a claim of the credential, by claims path pointer, optionally with accepted ``values``."""

    path: ClaimsPathPointer
    id: str | None = None
    values: tuple[Union[str, int, bool], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The Claims Query object."""
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out["path"] = list(self.path)
        if self.values is not None:
            out["values"] = list(self.values)
        return out


@dataclass(frozen=True, slots=True)
class TrustedAuthoritiesQuery:
    """s6.1.1: a type (``aki``, ``etsi_tl``, ``openid_federation``, ...) and its values (kept, not matched)."""

    type: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CredentialQuery:
    """s6.1: one requested credential. ``claims is None`` requests no selectively disclosable claim."""

    id: str
    format: str
    meta: Mapping[str, Any]
    claims: tuple[ClaimsQuery, ...] | None = None
    claim_sets: tuple[tuple[str, ...], ...] | None = None
    multiple: bool = False
    require_cryptographic_holder_binding: bool = True
    trusted_authorities: tuple[TrustedAuthoritiesQuery, ...] | None = None

    @property
    def vct_values(self) -> tuple[str, ...]:
        """B.3.5 ``meta.vct_values`` of an SD-JWT VC query (empty for another format)."""
        values = self.meta.get("vct_values") if self.format == SD_JWT_VC_FORMAT else None
        return tuple(values) if isinstance(values, (list, tuple)) else ()

    def to_json(self) -> dict[str, Any]:
        """The Credential Query object."""
        out: dict[str, Any] = {"id": self.id, "format": self.format}
        if self.multiple:
            out["multiple"] = True
        out["meta"] = _thaw(self.meta)
        if self.trusted_authorities is not None:
            out["trusted_authorities"] = [{"type": t.type, "values": list(t.values)} for t in self.trusted_authorities]
        if not self.require_cryptographic_holder_binding:
            out["require_cryptographic_holder_binding"] = False
        if self.claims is not None:
            out["claims"] = [c.to_json() for c in self.claims]
        if self.claim_sets is not None:
            out["claim_sets"] = [list(s) for s in self.claim_sets]
        return out


@dataclass(frozen=True, slots=True)
class CredentialSetQuery:
    """s6.2: alternative sets of Credential Query ids; ``required`` defaults to true."""

    options: tuple[tuple[str, ...], ...]
    required: bool = True

    def to_json(self) -> dict[str, Any]:
        """The Credential Set Query object."""
        out: dict[str, Any] = {"options": [list(o) for o in self.options]}
        if not self.required:
            out["required"] = False
        return out


@dataclass(frozen=True, slots=True)
class DcqlQuery:
    """s6: a validated DCQL query."""

    credentials: tuple[CredentialQuery, ...]
    credential_sets: tuple[CredentialSetQuery, ...] | None = None

    def credential(self, query_id: str) -> CredentialQuery:
        """The Credential Query with this id; raises ``KeyError``."""
        for query in self.credentials:
            if query.id == query_id:
                return query
        raise KeyError(query_id)

    @property
    def ids(self) -> tuple[str, ...]:
        """The Credential Query ids, in query order."""
        return tuple(q.id for q in self.credentials)

    def to_json(self) -> dict[str, Any]:
        """The ``dcql_query`` object."""
        out: dict[str, Any] = {"credentials": [c.to_json() for c in self.credentials]}
        if self.credential_sets is not None:
            out["credential_sets"] = [s.to_json() for s in self.credential_sets]
        return out


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidDcqlQuery(f"{what} must be a JSON object")
    return value


def _array(value: Any, what: str, limit: int) -> list[Any]:
    # "non-empty array" throughout s6.
    if not isinstance(value, list) or not value:
        raise InvalidDcqlQuery(f"{what} must be a non-empty array")
    if len(value) > limit:
        raise InvalidDcqlQuery(f"{what} has {len(value)} entries, more than {limit}")
    return value


def _identifier(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value) or len(value) > MAX_ID_CHARS:
        raise InvalidDcqlQuery(
            f"{what} {_show(value)} must be 1-{MAX_ID_CHARS} letters, digits, '_' or '-'"
        )
    return value


def _boolean(obj: Mapping[str, Any], name: str, default: bool, what: str) -> bool:
    value = obj.get(name, default)
    if type(value) is not bool:
        raise InvalidDcqlQuery(f"{what}.{name} must be a boolean")
    return value


def _path(value: Any, what: str) -> ClaimsPathPointer:
    items = _array(value, what, MAX_PATH)
    for item in items:
        # s7: "a non-empty array of strings, nulls and non-negative integers".
        ok = (
            item is None
            or (isinstance(item, str) and len(item) <= MAX_TEXT_CHARS)
            or (type(item) is int and item >= 0)
        )
        if not ok:
            raise InvalidDcqlQuery(f"{what} component {_show(item)} is not a string, null or non-negative integer")
    return tuple(items)


def _claims_query(value: Any, what: str) -> ClaimsQuery:
    obj = _object(value, what)
    claim_id = None if obj.get("id") is None and "id" not in obj else _identifier(obj.get("id"), f"{what}.id")
    path = _path(obj.get("path"), f"{what}.path")
    values = None
    if "values" in obj:
        raw = _array(obj["values"], f"{what}.values", MAX_VALUES)
        for v in raw:
            # s6.3: values is "A non-empty array of strings, integers or boolean values".
            if not (type(v) in (str, int, bool)) or (isinstance(v, str) and len(v) > MAX_TEXT_CHARS):
                raise InvalidDcqlQuery(f"{what}.values entry {_show(v)} is not a string, integer or boolean")
        values = tuple(raw)
    return ClaimsQuery(path=path, id=claim_id, values=values)


def _credential_query(value: Any, what: str) -> CredentialQuery:
    obj = _object(value, what)
    query_id = _identifier(obj.get("id"), f"{what}.id")
    what = f"credential query {query_id!r}"
    fmt = obj.get("format")
    if not isinstance(fmt, str) or not fmt or len(fmt) > MAX_ID_CHARS:
        raise InvalidDcqlQuery(f"{what}: format must be a non-empty string")
    if "meta" not in obj:
        raise InvalidDcqlQuery(f"{what}: meta is required")  # s6.1: meta "REQUIRED"
    meta = _object(obj["meta"], f"{what}.meta")
    if fmt == SD_JWT_VC_FORMAT:
        vcts = _array(meta.get("vct_values"), f"{what}.meta.vct_values", MAX_VALUES)
        # B.3.5: vct_values "REQUIRED. A non-empty array of strings".
        if not all(isinstance(v, str) and v and len(v) <= MAX_TEXT_CHARS for v in vcts):
            raise InvalidDcqlQuery(f"{what}.meta.vct_values must hold non-empty strings")
    authorities = None
    if "trusted_authorities" in obj:
        authorities = []
        for i, entry in enumerate(_array(obj["trusted_authorities"], f"{what}.trusted_authorities", MAX_SETS)):
            entry = _object(entry, f"{what}.trusted_authorities[{i}]")
            kind, values = entry.get("type"), entry.get("values")
            if not isinstance(kind, str) or not kind:
                raise InvalidDcqlQuery(f"{what}.trusted_authorities[{i}].type must be a non-empty string")
            values = _array(values, f"{what}.trusted_authorities[{i}].values", MAX_VALUES)
            if not all(isinstance(v, str) for v in values):
                raise InvalidDcqlQuery(f"{what}.trusted_authorities[{i}].values must be strings")
            authorities.append(TrustedAuthoritiesQuery(kind, tuple(values)))
    claims = None
    if "claims" in obj:
        claims = tuple(
            _claims_query(c, f"{what}.claims[{i}]")
            for i, c in enumerate(_array(obj["claims"], f"{what}.claims", MAX_CLAIMS))
        )
        ids = [c.id for c in claims if c.id is not None]
        if len(ids) != len(set(ids)):
            # s6.3: "Within the particular claims array, the same id MUST NOT be present more than once."
            raise InvalidDcqlQuery(f"{what}: a claim id is repeated")
        paths = [c.path for c in claims]
        if len(paths) != len(set(paths)):
            # s6.1: "Verifiers MUST NOT point to the same claim more than once in a single query."
            raise InvalidDcqlQuery(f"{what}: a claim path is repeated")
    claim_sets = None
    if "claim_sets" in obj:
        if claims is None:
            # s6.4.1: "claim_sets MUST NOT be present if claims is absent."
            raise InvalidDcqlQuery(f"{what}: claim_sets without claims")
        if any(c.id is None for c in claims):
            # s6.3: id is "REQUIRED if claim_sets is present in the Credential Query".
            raise InvalidDcqlQuery(f"{what}: every claim needs an id when claim_sets is present")
        known = {c.id for c in claims}
        sets = []
        for i, option in enumerate(_array(obj["claim_sets"], f"{what}.claim_sets", MAX_SETS)):
            option = _array(option, f"{what}.claim_sets[{i}]", MAX_CLAIMS)
            for ref in option:
                if not isinstance(ref, str) or ref not in known:
                    raise InvalidDcqlQuery(f"{what}.claim_sets[{i}] names unknown claim {_show(ref)}")
            sets.append(tuple(option))
        claim_sets = tuple(sets)
    return CredentialQuery(
        id=query_id,
        format=fmt,
        meta=_freeze(meta),
        claims=claims,
        claim_sets=claim_sets,
        multiple=_boolean(obj, "multiple", False, what),
        require_cryptographic_holder_binding=_boolean(obj, "require_cryptographic_holder_binding", True, what),
        trusted_authorities=None if authorities is None else tuple(authorities),
    )


def parse_query(data: Any) -> DcqlQuery:
    """Parse and validate a ``dcql_query`` (JSON text or a decoded object); raises ``InvalidDcqlQuery``.

    Unknown members are ignored (s6: "Implementations MUST ignore any unknown properties").
    """
    if isinstance(data, (str, bytes, bytearray)):
        if len(data) > MAX_QUERY_CHARS:
            raise InvalidDcqlQuery(f"the DCQL query is longer than {MAX_QUERY_CHARS} characters")
        try:
            data = jws.loads(bytes(data) if isinstance(data, bytearray) else data)
        except CredentialError as exc:
            raise InvalidDcqlQuery(f"the DCQL query is not JSON: {exc.detail}") from exc
    obj = _object(data, "dcql_query")
    # s6: credentials "REQUIRED. A non-empty array of Credential Queries".
    credentials = tuple(
        _credential_query(c, f"credentials[{i}]")
        for i, c in enumerate(_array(obj.get("credentials"), "credentials", MAX_CREDENTIAL_QUERIES))
    )
    ids = [c.id for c in credentials]
    if len(ids) != len(set(ids)):
        # s6.1: "Within the Authorization Request, the same id MUST NOT be present more than once."
        raise InvalidDcqlQuery("a credential query id is repeated")
    sets = None
    if "credential_sets" in obj:
        sets = []
        for i, entry in enumerate(_array(obj["credential_sets"], "credential_sets", MAX_SETS)):
            entry = _object(entry, f"credential_sets[{i}]")
            options = []
            for j, option in enumerate(_array(entry.get("options"), f"credential_sets[{i}].options", MAX_SETS)):
                option = _array(option, f"credential_sets[{i}].options[{j}]", MAX_CREDENTIAL_QUERIES)
                for ref in option:
                    # s6.2: options hold "identifiers which reference elements in credentials".
                    if not isinstance(ref, str) or ref not in ids:
                        raise InvalidDcqlQuery(f"credential_sets[{i}].options[{j}] names unknown {_show(ref)}")
                options.append(tuple(option))
            sets.append(
                CredentialSetQuery(tuple(options), _boolean(entry, "required", True, f"credential_sets[{i}]"))
            )
        sets = tuple(sets)
    return DcqlQuery(credentials, sets)


# --------------------------------------------------------------------------------------------------
# Claims path pointers (s7.1)


def select_claims(credential: Mapping[str, Any], path: Sequence[Any]) -> tuple[tuple[ClaimPath, Any], ...]:
    """Apply a claims path pointer (s7.1.1): the selected ``(concrete path, value)`` pairs.

    Processing errors of s7.1.1 (a name applied to a non-object, ``null`` or an index to a
    non-array, an empty selection) give an empty result: the claim does not exist.
    """
    selected: list[tuple[ClaimPath, Any]] = [((), credential)]
    for component in path:
        nxt: list[tuple[ClaimPath, Any]] = []
        for where, node in selected:
            if isinstance(component, str):
                # s7.1.1 2.1: "If any of the currently selected element(s) is not an object, abort".
                if not isinstance(node, Mapping):
                    return ()
                if component in node:
                    nxt.append((where + (component,), node[component]))
            elif component is None or (type(component) is int and component >= 0):
                # s7.1.1 2.2 / 2.3: null and an index apply to arrays only.
                if not isinstance(node, list):
                    return ()
                if component is None:
                    nxt.extend((where + (i,), v) for i, v in enumerate(node))
                elif component < len(node):
                    nxt.append((where + (component,), node[component]))
            else:
                return ()  # s7.1.1 2.4: "anything else, abort processing"
        selected = nxt
    # s7.1.1 3: "If the set of elements currently selected is empty, abort processing".
    return tuple(selected) if path else ()


def _same(a: Any, b: Any) -> bool:
    # s6.3: "the type and value of the claim both match exactly" (True is not 1 here).
    return type(a) is type(b) and a == b


def _descendants(path: ClaimPath, value: Any) -> list[ClaimPath]:
    # s7.3: ["address"] selects "the claim address with its sub-claims": disclosing a container means
    # disclosing what it holds, each nested selectively disclosable claim by its own path.
    out = [path]
    if isinstance(value, Mapping):
        for name, child in value.items():
            out.extend(_descendants(path + (name,), child))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out.extend(_descendants(path + (i,), child))
    return out


def _claim_paths(credential: Mapping[str, Any], query: ClaimsQuery) -> list[ClaimPath] | None:
    """The concrete paths satisfying one Claims Query, or ``None`` when it is not satisfied."""
    selected = select_claims(credential, query.path)
    if query.values is not None:
        # s6.4.1: a claim whose value does not match "should be treated the same as if it did not exist".
        selected = tuple((p, v) for p, v in selected if any(_same(v, w) for w in query.values))
    if not selected:
        return None
    out: list[ClaimPath] = []
    for where, value in selected:
        out.extend(_descendants(where, value))
    return out


def _satisfy_claims(query: CredentialQuery, claims: Mapping[str, Any]) -> tuple[ClaimPath, ...] | None:
    """s6.4.1: the paths to disclose for this credential, or ``None`` if it cannot satisfy the query."""
    if query.claims is None:
        # "If claims is absent, the Verifier is requesting no claims that are selectively disclosable".
        return ()
    by_id = {c.id: c for c in query.claims}
    # Without claim_sets "the Verifier requests all claims listed in claims"; with them the Wallet
    # "SHOULD return the first option that it can satisfy".
    options = query.claim_sets or (tuple(c.id for c in query.claims),)
    for option in options:
        wanted = [by_id[i] for i in option] if query.claim_sets else list(query.claims)
        paths: list[ClaimPath] = []
        for claim in wanted:
            found = _claim_paths(claims, claim)
            if found is None:
                break
            paths.extend(found)
        else:
            return tuple(dict.fromkeys(paths))
    return None


# --------------------------------------------------------------------------------------------------
# Wallet side: matching candidate credentials (s6.4)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A credential the Wallet holds (or the Verifier received), seen through DCQL.

    ``claims`` is the processed payload with every Disclosure applied (array positions as issued);
    ``holder_binding`` says whether it can be key-bound (has ``cnf``) or, on the Verifier side, was.
    ``ref`` is the caller's handle (a database id); ``format`` is always SD-JWT VC here.
    """

    vct: str
    claims: Mapping[str, Any]
    ref: Any = None
    holder_binding: bool = True
    format: str = SD_JWT_VC_FORMAT


@dataclass(frozen=True, slots=True)
class CandidateMatch:
    """A candidate satisfying a Credential Query, and the claim paths to disclose for it."""

    candidate: Candidate
    disclose: tuple[ClaimPath, ...]


@dataclass(frozen=True, slots=True)
class DcqlMatch:
    """The result of :func:`match`.

    ``by_query`` maps each Credential Query id to its matching candidates (possibly none);
    ``selection`` the ids to answer (s6.4.2), empty when ``satisfied`` is false.
    """

    by_query: Mapping[str, tuple[CandidateMatch, ...]]
    selection: tuple[str, ...]
    satisfied: bool = False


def _matches(query: CredentialQuery, candidate: Candidate) -> CandidateMatch | None:
    if candidate.format != query.format or query.format != SD_JWT_VC_FORMAT:
        return None
    if candidate.vct not in query.vct_values:
        return None
    if query.require_cryptographic_holder_binding and not candidate.holder_binding:
        # B.3: "SD-JWTs that do not support Holder Binding (i.e., do not have a cnf Claim) cannot be
        # returned in this case."
        return None
    paths = _satisfy_claims(query, candidate.claims)
    return None if paths is None else CandidateMatch(candidate, paths)


def _first_option(options: Iterable[tuple[str, ...]], answerable: set[str]) -> tuple[str, ...] | None:
    return next((o for o in options if set(o) <= answerable), None)


def _selection(query: DcqlQuery, answerable: set[str]) -> tuple[str, ...] | None:
    if query.credential_sets is None:
        # s6.4.2: "If credential_sets is not provided, the Verifier requests presentations for all
        # Credentials in credentials to be returned."
        return query.ids if answerable >= set(query.ids) else None
    chosen: list[str] = []
    for credential_set in query.credential_sets:
        option = _first_option(credential_set.options, answerable)
        if option is None:
            if credential_set.required:
                # s6.4.2: "If the Wallet cannot deliver all non-optional Credentials ... it MUST NOT
                # return any Credential(s)."
                return None
            continue
        chosen.extend(i for i in option if i not in chosen)
    return tuple(i for i in query.ids if i in chosen)


def match(query: DcqlQuery, candidates: Iterable[Candidate]) -> DcqlMatch:
    """Match the Wallet's credentials against a query (s6.4): candidates, paths and the selection."""
    pool = tuple(candidates)
    by_query: dict[str, tuple[CandidateMatch, ...]] = {}
    for credential_query in query.credentials:
        found = (_matches(credential_query, c) for c in pool)
        by_query[credential_query.id] = tuple(m for m in found if m is not None)
    answerable = {qid for qid, found in by_query.items() if found}
    selection = _selection(query, answerable)
    return DcqlMatch(by_query, selection or (), selection is not None)


# --------------------------------------------------------------------------------------------------
# Verifier side: do the answers satisfy the query? (s8.6 step 3)


def check_answers(query: DcqlQuery, answers: Mapping[str, Sequence[Candidate]]) -> None:
    """Check verified presentations against the query; raises ``DcqlNotSatisfied``.

    ``answers`` maps Credential Query ids to the credentials presented for them (their verified
    ``vct`` and disclosed claims). Every answer must be for a known query, of an accepted ``vct``,
    key-bound unless the query waived it, with the requested claims disclosed (one ``claim_sets``
    option, ``values`` respected), one presentation unless ``multiple``; and the answered queries
    must satisfy ``credentials`` / ``credential_sets`` (s6.4.2).
    """
    known = set(query.ids)
    for query_id, presented in answers.items():
        if query_id not in known:
            raise DcqlNotSatisfied(f"the response answers {_show(query_id)}, which the query does not request")
        credential_query = query.credential(query_id)
        if not presented:
            raise DcqlNotSatisfied(f"{query_id!r}: an empty answer")
        if len(presented) > 1 and not credential_query.multiple:
            # s8.1: "When multiple is omitted, or set to false, the array MUST contain only one Presentation."
            raise DcqlNotSatisfied(f"{query_id!r}: {len(presented)} presentations, but multiple is false")
        for i, credential in enumerate(presented):
            if credential.format != credential_query.format:
                raise DcqlNotSatisfied(f"{query_id!r}[{i}]: format {credential.format!r} was not requested")
            if credential.vct not in credential_query.vct_values:
                raise DcqlNotSatisfied(f"{query_id!r}[{i}]: vct {credential.vct!r} is not one requested")
            if credential_query.require_cryptographic_holder_binding and not credential.holder_binding:
                raise DcqlNotSatisfied(f"{query_id!r}[{i}]: the presentation is not key-bound")
            if _satisfy_claims(credential_query, credential.claims) is None:
                # s6.4.1: "If the Wallet cannot deliver all claims requested ... it MUST NOT return the
                # respective Credential"; s14: the Verifier "MUST perform its own security checks".
                raise DcqlNotSatisfied(f"{query_id!r}[{i}]: the requested claims are not all disclosed")
    if _selection(query, set(answers)) is None:
        missing = [i for i in query.ids if i not in answers]
        raise DcqlNotSatisfied(f"required credentials are missing (unanswered: {missing})")
