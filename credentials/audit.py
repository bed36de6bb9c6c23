"""The hash-chained audit log: canonical record hashes and end-to-end chain verification.

Pure (no database): each role's store appends :class:`AuditRecord` values built by
:func:`next_record` in the same transaction as the change they record, and verifies what it reads back
with :func:`verify_chain` / :func:`check_chain` (DESIGN.md, security model: "an append-only,
hash-chained audit log that a command can verify end to end").

Hash of a record::

    hash = lowercase hex SHA-256( canonical_json( ["elicence-audit-v1", prev_hash, fields] ) )

where ``fields`` is ``{"chain", "seq", "at", "actor", "action", "subject", "details"}`` and ``at`` is
written as UTC ISO 8601 with microseconds (``2026-09-21T13:46:40.000000Z``). The first record of a
chain has ``seq`` 1 and ``prev_hash`` = :data:`GENESIS` (64 zeros). The label is a domain separator,
so an audit hash can never be confused with a hash of some other JSON value.

Canonical JSON is the JSON Canonicalization Scheme, **RFC 8785** (JCS), restricted to the values an
audit record needs: objects with string keys, arrays, strings, ``true``/``false``/``null`` and
integers of magnitude below 2^53. Floats are refused rather than canonicalised (RFC 8785 s3.2.2.3
serialises numbers as ECMAScript does; money and counts are integers here, and refusing floats keeps
the encoding identical in every language without an ES number formatter). Within that subset:

- s3.2.3: "JSON object properties MUST be sorted ... by their names ... as arrays of UTF-16 code
  units", hence the ``utf-16-be`` sort key (code points and UTF-16 units order astral characters
  differently);
- s3.2.2.2: strings are escaped minimally (``\\"``, ``\\\\``, ``\\b \\f \\n \\r \\t``, other
  controls as ``\\u00xx`` in lowercase), everything else is written as UTF-8 — which is what
  ``json.dumps(..., ensure_ascii=False)`` does;
- s3.2.1: no whitespace between tokens.

What a chain check detects, and what it cannot: any change of a stored field, a deleted, inserted or
reordered record (each breaks the ``seq`` sequence, the ``prev_hash`` link or the record's own hash);
truncation of the newest records only when the chain's head (:class:`ChainHead`, kept by the store)
is given and was not rewritten too. Someone who can rewrite the whole table *and* the head can forge a
consistent chain: publishing or countersigning heads elsewhere is what closes that, and is not done
here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, ClassVar

from credentials.errors import CredentialError, Malformed, PayloadTooLarge

__all__ = [
    "GENESIS",
    "HASH_LABEL",
    "AuditChainBroken",
    "AuditRecord",
    "ChainBreak",
    "ChainHead",
    "canonical_json",
    "format_time",
    "record_fields",
    "record_hash",
    "next_record",
    "find_break",
    "verify_chain",
    "check_chain",
]

#: ``prev_hash`` of the first record of every chain.
GENESIS = "0" * 64
#: Domain separator hashed in front of every record.
HASH_LABEL = "elicence-audit-v1"

_MAX_SAFE_INT = 2**53 - 1  # RFC 8785 s3.2.2.3 / I-JSON (RFC 7493 s2.2): integers exactly representable
_MAX_DEPTH = 32


class AuditChainBroken(CredentialError):
    """An audit chain does not verify; ``chain``, ``seq`` (first broken record) and ``reason`` say where."""

    code: ClassVar[str] = "audit_chain_broken"
    description: ClassVar[str] = "The audit log's hash chain is broken."
    description_zh: ClassVar[str] = "审计日志哈希链已被破坏。"

    def __init__(self, detail: str | None = None, *, chain: str = "", seq: int = 0, reason: str = "") -> None:
        super().__init__(detail)
        self.chain = chain
        self.seq = seq
        self.reason = reason


# --- canonical JSON (RFC 8785 subset) -----------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 encoding of ``value`` (no floats; integers below 2^53).

    Raises ``Malformed`` for a value outside the subset (float, non-string key, unpaired surrogate,
    another type) and ``PayloadTooLarge`` for nesting deeper than 32.
    """
    try:
        if _plain(value, 0):
            # The same text as _encode, from the C encoder: keys sorted by code point are sorted by UTF-16
            # code unit when no key holds a character above U+FFFF, and strings are escaped alike.
            return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return _encode(value, 0).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Malformed("audit value holds an unpaired surrogate; it has no UTF-8 encoding") from exc


def _plain(value: Any, depth: int) -> bool:
    """Whether ``value`` is within the subset and ``json.dumps`` writes it canonically: only ``dict`` (keys
    ``str`` without characters above U+FFFF), ``list``, ``tuple``, ``str``, ``bool``, ``None`` and safe
    ``int``, nested no deeper than the limit. Anything else goes to :func:`_encode`, which refuses or
    sorts by UTF-16 code unit."""
    if depth > _MAX_DEPTH:
        return False
    t = type(value)
    if t is str or value is None or t is bool:
        return True
    if t is int:
        return -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT
    if t is dict:
        if value and depth >= _MAX_DEPTH:
            return False  # its members would be nested too deep: _encode refuses
        for k, v in value.items():
            if type(k) is not str or (not k.isascii() and max(k) > "\uffff"):
                return False
            if type(v) is not str and not _plain(v, depth + 1):
                return False
        return True
    if t is list or t is tuple:
        if value and depth >= _MAX_DEPTH:
            return False
        return all(type(v) is str or _plain(v, depth + 1) for v in value)
    return False


def _encode(value: Any, depth: int) -> str:
    if depth > _MAX_DEPTH:
        raise PayloadTooLarge(f"audit value is nested deeper than {_MAX_DEPTH}")
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            raise Malformed(f"integer {value} is outside +-(2^53 - 1); write it as a string")
        return str(int(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        raise Malformed("floats are not allowed in audit records (RFC 8785 numbers); use an integer or a string")
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise Malformed("audit object keys must be strings")
        # RFC 8785 s3.2.3: "sorted ... as arrays of UTF-16 code units".
        keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(f"{_encode(k, depth)}:{_encode(value[k], depth + 1)}" for k in keys) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_encode(v, depth + 1) for v in value) + "]"
    raise Malformed(f"{type(value).__name__} cannot appear in an audit record")


# --- records --------------------------------------------------------------------------------------------


def format_time(at: datetime) -> str:
    """``at`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; raises ``Malformed`` for a naive datetime."""
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise Malformed("audit times must be timezone-aware datetimes")
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry of a chain. ``details`` is a read-only JSON object (nested values frozen too)."""

    chain: str
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: Mapping[str, Any] = field(repr=False)
    prev_hash: str
    hash: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", _freeze(dict(self.details)))

    def details_json(self) -> dict[str, Any]:
        """A plain (mutable) copy of ``details``, for storage."""
        return _thaw(self.details)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest ``seq`` and ``hash`` of a chain as the store last wrote them (seq 0: empty chain)."""

    chain: str
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where a chain first fails: the record's ``seq`` and a ``reason`` (a short code and a sentence)."""

    chain: str
    seq: int
    reason: str
    detail: str


def record_fields(
    *, chain: str, seq: int, at: datetime, actor: str, action: str, subject: str, details: Mapping[str, Any]
) -> dict[str, Any]:
    """The hashed fields of a record as a JSON object; raises ``Malformed`` for a wrong type."""
    for name, value in (("chain", chain), ("actor", actor), ("action", action), ("subject", subject)):
        if not isinstance(value, str):
            raise Malformed(f"audit {name} must be a string")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise Malformed("audit seq must be a positive integer")
    if not isinstance(details, Mapping):
        raise Malformed("audit details must be a JSON object")
    return {
        "chain": chain,
        "seq": seq,
        "at": format_time(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": _thaw(details),
    }


def record_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """Lowercase hex SHA-256 of the canonical ``[label, prev_hash, fields]``; raises ``Malformed``."""
    if not isinstance(prev_hash, str):
        raise Malformed("prev_hash must be a string")
    return hashlib.sha256(canonical_json([HASH_LABEL, prev_hash, fields])).hexdigest()


def _hash_of(record: AuditRecord) -> str:
    fields = record_fields(
        chain=record.chain,
        seq=record.seq,
        at=record.at,
        actor=record.actor,
        action=record.action,
        subject=record.subject,
        details=record.details,
    )
    return record_hash(record.prev_hash, fields)


def next_record(
    prev: AuditRecord | ChainHead | None,
    *,
    chain: str,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """The record that follows ``prev`` (the chain's newest record or head; ``None`` for a new chain).

    Raises ``Malformed`` if ``prev`` belongs to another chain or a field cannot be hashed.
    """
    if prev is not None and prev.chain != chain:
        raise Malformed(f"cannot append to chain {chain!r} after a record of chain {prev.chain!r}")
    seq, prev_hash = (1, GENESIS) if prev is None or prev.seq == 0 else (prev.seq + 1, prev.hash)
    details = {} if details is None else details
    fields = record_fields(chain=chain, seq=seq, at=at, actor=actor, action=action, subject=subject, details=details)
    return AuditRecord(
        chain=chain,
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=details,
        prev_hash=prev_hash,
        hash=record_hash(prev_hash, fields),
    )


# --- verification ---------------------------------------------------------------------------------------


def find_break(records: Iterable[AuditRecord], *, head: ChainHead | None = None) -> ChainBreak | None:
    """The first place where ``records`` (one chain, in stored order) fail, or ``None``.

    Checks, record by record: same chain as the first; ``seq`` is 1, 2, 3, ... with no gap or repeat;
    ``prev_hash`` is the previous record's ``hash`` (``GENESIS`` first); ``hash`` is the record's own
    hash. With ``head``, the last record must be the head (else newest records were removed or added
    behind the store's back). Streams: memory does not grow with the chain.
    """
    chain: str | None = head.chain if head is not None else None
    expected_seq, prev_hash = 1, GENESIS
    for record in records:
        if chain is None:
            chain = record.chain
        if record.chain != chain:
            return ChainBreak(chain, record.seq, "chain_mismatch", f"record belongs to chain {record.chain!r}")
        if record.seq != expected_seq:
            return ChainBreak(chain, record.seq, "seq_gap", f"expected seq {expected_seq}, found {record.seq}")
        if record.prev_hash != prev_hash:
            return ChainBreak(chain, record.seq, "prev_hash_mismatch", "prev_hash is not the previous record's hash")
        try:
            actual = _hash_of(record)
        except (Malformed, PayloadTooLarge) as exc:
            return ChainBreak(chain, record.seq, "unhashable", f"record cannot be hashed: {exc.detail}")
        if actual != record.hash:
            return ChainBreak(chain, record.seq, "hash_mismatch", "stored hash does not match the record's fields")
        expected_seq, prev_hash = record.seq + 1, record.hash
    last_seq = expected_seq - 1
    if head is not None and (head.seq != last_seq or (last_seq and head.hash != prev_hash)):
        if head.seq > last_seq:
            return ChainBreak(head.chain, last_seq + 1, "truncated", f"head is at seq {head.seq}; records end at {last_seq}")
        if head.seq < last_seq:
            return ChainBreak(head.chain, head.seq + 1, "beyond_head", f"records go on past the head's seq {head.seq}")
        return ChainBreak(head.chain, last_seq, "head_mismatch", "the newest record is not the one the head names")
    return None


def verify_chain(records: Iterable[AuditRecord], *, head: ChainHead | None = None) -> int | None:
    """``None`` if the chain verifies, else the ``seq`` of its first broken record (see :func:`find_break`)."""
    broken = find_break(records, head=head)
    return None if broken is None else broken.seq


def check_chain(records: Iterable[AuditRecord], *, head: ChainHead | None = None) -> int:
    """Verify a chain; returns its number of records. Raises ``AuditChainBroken`` with the first broken seq."""
    count = 0

    def counted() -> Iterable[AuditRecord]:
        nonlocal count
        for record in records:
            count += 1
            yield record

    broken = find_break(counted(), head=head)
    if broken is not None:
        raise AuditChainBroken(
            f"chain {broken.chain!r} breaks at seq {broken.seq} ({broken.reason}): {broken.detail}",
            chain=broken.chain,
            seq=broken.seq,
            reason=broken.reason,
        )
    return count
