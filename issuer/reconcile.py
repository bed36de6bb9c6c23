"""Reconciliation: do the issuer's credentials, status lists and audit log tell one story?

The audit chains prove that the log was not altered (:func:`issuer.store.verify_all_audits`); this module
checks that the log, the ``issuer_credential`` rows and the ``issuer_status_list`` rows agree, per
authority. What DESIGN.md says must never happen ("a credential issued without its audit record and
status index; ... two credentials sharing a status index"; an acknowledged revocation that the served
list does not show) is what each check looks for. Each finding has a stable ``code``:

===========================  ==============================================================================
``index_shared``             two credentials hold the same (list, index)
``index_out_of_range``       a credential's index is outside its list
``index_not_allocated``      a credential's index is not marked used in its list's allocation bitmap
``credential_in_foreign_list``  a credential sits in a status list of another authority
``status_mismatch``          a credential's status (valid 0, revoked 1, suspended 2) is not its list's entry
                             (Token Status List, 2 bits; :mod:`credentials.status_list`)
``used_count_mismatch``      a list's ``used_count`` is not the number of bits set in its bitmap
``entry_without_credential`` a list entry is set (non-zero) at an index no credential holds
``issuance_unaudited``       a credential has no issuance record (``credential.issued`` /
                             ``authorisation.granted``) in its authority's audit chain
``issuance_audit_mismatch``  the issuance record names another (list, index) than the credential row
``status_change_unaudited``  the credential's status is not the one its audit records leave it in
                             (every revocation, suspension and reinstatement is an audit record)
``audited_credential_missing``  the audit log records the issuance of a credential that has no row
===========================  ==============================================================================

:func:`reconcile` reads one database snapshot (the caller opens it; ``elicence audit reconcile`` uses
REPEATABLE READ on PostgreSQL, a read transaction on SQLite, so a running server does not cause false
findings). Lists are read one at a time and their credentials streamed in index order; the audit chain
is read once per authority into a map of credential id -> (issuance slot, last status), about 150 bytes
per credential: a few hundred MB at 10^6 credentials per authority.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from credentials import status_list as sl
from issuer import store

__all__ = ["Finding", "AuthorityReport", "reconcile", "ISSUANCE_ACTIONS", "STATUS_ACTIONS"]

#: Audit actions that record an issuance (issuer.service ``_issue``).
ISSUANCE_ACTIONS = frozenset({"credential.issued", "authorisation.granted"})
#: Audit actions that record a status change, and the status each leaves the credential in.
STATUS_ACTIONS = {
    "credential.revoked": store.CredentialStatus.REVOKED,
    "credential.suspended": store.CredentialStatus.SUSPENDED,
    "credential.reinstated": store.CredentialStatus.VALID,
}
_STATUS_NAMES = {sl.VALID: "valid", sl.INVALID: "revoked", sl.SUSPENDED: "suspended"}

_CRED = store.IssuerCredential.__table__
_LIST = store.IssuerStatusList.__table__


@dataclass(frozen=True, slots=True)
class Finding:
    """One inconsistency: its stable ``code``, the authority, and what is wrong in words."""

    code: str
    authority: str
    detail: str

    def __str__(self) -> str:
        return f"{self.authority}: {self.code}: {self.detail}"


@dataclass
class AuthorityReport:
    """What :func:`reconcile` read of one authority and what it found (``counts`` per code; the
    first ``keep`` findings in ``findings``)."""

    authority: str
    credentials: int = 0
    lists: int = 0
    audit_records: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    keep: int = 20

    @property
    def consistent(self) -> bool:
        return not self.counts

    @property
    def total(self) -> int:
        """How many findings, all codes together."""
        return sum(self.counts.values())

    def add(self, code: str, detail: str) -> None:
        self.counts[code] += 1
        if len(self.findings) < self.keep:
            self.findings.append(Finding(code, self.authority, detail))


@dataclass(slots=True)
class _Audited:
    """What the audit chain says of one credential."""

    slot: tuple[object, object] | None = None  # (status_list, status_idx) of its issuance record
    status: store.CredentialStatus = store.CredentialStatus.VALID
    seen: bool = False  # a credential row was found for it


def _audit_facts(session: Session, slug: str, report: AuthorityReport) -> dict[str, _Audited]:
    facts: dict[str, _Audited] = {}
    for record in store.iter_audit(session, chain=slug):
        report.audit_records += 1
        if record.action in ISSUANCE_ACTIONS:
            details = record.details
            facts.setdefault(record.subject, _Audited()).slot = (details.get("status_list"), details.get("status_idx"))
        elif record.action in STATUS_ACTIONS:
            facts.setdefault(record.subject, _Audited()).status = STATUS_ACTIONS[record.action]
    return facts


def _credentials_of_list(session: Session, list_id: int) -> Iterator[object]:
    query = (
        select(_CRED.c.id, _CRED.c.authority_slug, _CRED.c.status, _CRED.c.status_idx)
        .where(_CRED.c.status_list_id == list_id)
        .order_by(_CRED.c.status_idx, _CRED.c.id)
        .execution_options(yield_per=2000)
    )
    yield from session.execute(query)


def _bit(bitmap: bytes | bytearray, idx: int) -> bool:
    return bool(bitmap[idx >> 3] >> (idx & 7) & 1)


def _check_list(session: Session, row: object, facts: dict[str, _Audited], report: AuthorityReport) -> None:
    lid, size = row.id, row.size
    statuses = sl.StatusList(row.bits, row.statuses)
    set_bits = int.from_bytes(row.used, "little").bit_count()
    if set_bits != row.used_count:
        report.add("used_count_mismatch", f"list {lid}: used_count {row.used_count}, {set_bits} bits set in its bitmap")
    held = bytearray((size + 7) // 8)
    for cred in _credentials_of_list(session, lid):
        report.credentials += 1
        idx, where = cred.status_idx, f"credential {cred.id} (list {lid} index {cred.status_idx})"
        if cred.authority_slug != report.authority:
            report.add("credential_in_foreign_list", f"{where} belongs to {cred.authority_slug!r}")
        _check_audit(cred, lid, facts, report, where)
        if not 0 <= idx < size:
            report.add("index_out_of_range", f"{where}: the list has {size} entries")
            continue
        if _bit(held, idx):
            report.add("index_shared", f"{where}: another credential holds this index")
        held[idx >> 3] |= 1 << (idx & 7)
        if not _bit(row.used, idx):
            report.add("index_not_allocated", f"{where}: the index is not marked used in the list's bitmap")
        expected = store.CredentialStatus(cred.status).list_value
        entry = statuses.get(idx)
        if entry != expected:
            report.add("status_mismatch", f"{where} is {cred.status} but the list reads "
                                          f"{entry} ({_STATUS_NAMES.get(entry, 'undefined')})")
    for idx in _set_entries(statuses):
        if not _bit(held, idx):
            report.add("entry_without_credential", f"list {lid} index {idx} reads {statuses.get(idx)} "
                                                   "but no credential holds it")


def _set_entries(statuses: sl.StatusList) -> Iterator[int]:
    """Indexes whose entry is not 0, skipping zero bytes (most of a list)."""
    per_byte = 8 // statuses.bits
    for i, byte in enumerate(statuses.data):
        if byte:
            for idx in range(i * per_byte, min((i + 1) * per_byte, statuses.size)):
                if statuses.get(idx):
                    yield idx


def _check_audit(cred: object, lid: int, facts: dict[str, _Audited], report: AuthorityReport, where: str) -> None:
    audited = facts.get(cred.id)
    if audited is None or audited.slot is None:
        report.add("issuance_unaudited", f"{where}: no issuance record in the audit log")
    elif audited.slot != (lid, cred.status_idx):
        report.add("issuance_audit_mismatch", f"{where}: its issuance record names list {audited.slot[0]} "
                                              f"index {audited.slot[1]}")
    if audited is not None:
        audited.seen = True
    last = audited.status if audited is not None else store.CredentialStatus.VALID
    if last.value != cred.status:
        report.add("status_change_unaudited", f"{where} is {cred.status} but its audit records leave it {last.value}")


def reconcile(session: Session, /, *, authorities: Sequence[str] | None = None, keep: int = 20) -> list[AuthorityReport]:
    """Check every authority (or those named) of the database: one :class:`AuthorityReport` each, in slug
    order, keeping the first ``keep`` findings of each. Read-only; run it in one snapshot transaction.

    Raises ``issuer.store.NotFound`` for a named authority that does not exist.
    """
    known = [a.slug for a in store.list_authorities(session)]
    if authorities is not None:
        missing = [a for a in authorities if a not in known]
        if missing:
            raise store.NotFound(f"no authority {missing[0]!r}")
        known = sorted(set(authorities))
    reports = []
    for slug in known:
        report = AuthorityReport(slug, keep=keep)
        facts = _audit_facts(session, slug, report)
        list_ids = session.execute(select(_LIST.c.id).where(_LIST.c.authority_slug == slug).order_by(_LIST.c.id))
        for list_id in list_ids.scalars().all():  # one list's statuses and bitmap in memory at a time
            report.lists += 1
            _check_list(session, session.execute(select(_LIST).where(_LIST.c.id == list_id)).one(), facts, report)
        for credential_id, audited in facts.items():
            if audited.slot is not None and not audited.seen:
                report.add("audited_credential_missing",
                           f"the audit log records the issuance of {credential_id} (list {audited.slot[0]} "
                           f"index {audited.slot[1]}) but there is no such credential")
        reports.append(report)
    return reports
