"""The issuer store's repository functions, one behaviour per test, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from credentials import status_list as sl
from issuer import store
from issuer.store import CredentialStatus, OfferState, RecordInput


def _tx(sessions):
    return store.unit_of_work(sessions)


def _error(exc_info, cls):
    assert isinstance(exc_info.value, cls)
    return exc_info.value.code


# --- authorities ----------------------------------------------------------------------------------------


def test_authority_round_trips(world, sessions, kit):
    with _tx(sessions) as tx:
        authority = store.get_authority(tx, slug=world.slug)
        assert authority is not None
        assert authority.vcts == (kit.BL, kit.STAFF)
        assert authority.created_at == kit.NOW
        assert store.get_authority_by_issuer_id(tx, issuer_id=authority.issuer_id) == authority
        assert store.list_authorities(tx) == (authority,)
        assert store.get_authority(tx, slug="nobody") is None


@pytest.mark.parametrize("field", ["slug", "issuer_id"])
def test_a_taken_slug_or_issuer_id_is_a_conflict(world, sessions, kit, field):
    values = {"slug": "other", "issuer_id": "https://issuer.example.gov.cn/issuers/other"}
    values[field] = {"slug": world.slug, "issuer_id": f"https://issuer.example.gov.cn/issuers/{world.slug}"}[field]
    with _tx(sessions) as tx:
        with pytest.raises(store.Conflict) as exc:
            store.create_authority(tx, name_zh="z", name_en="e", region="", vcts=[kit.BL], now=kit.NOW, **values)
        assert _error(exc, store.Conflict) == "conflict"
        assert len(store.list_authorities(tx)) == 1  # the transaction is still usable


@pytest.mark.parametrize(
    "changes",
    [{"slug": "Upper"}, {"slug": ""}, {"slug": "-x"}, {"slug": "a" * 65}, {"vcts": "not-a-list"},
     {"status_list_size": 12}, {"status_list_size": 0}, {"status_list_size": 2**23}, {"name_zh": ""}],
)
def test_invalid_authorities_are_refused(sessions, kit, changes):
    values = {"slug": "x", "issuer_id": "https://i/x", "name_zh": "z", "name_en": "e", "region": "", "vcts": [kit.BL]}
    with _tx(sessions) as tx:
        with pytest.raises(store.InvalidValue) as exc:
            store.create_authority(tx, now=kit.NOW, **{**values, **changes})
    assert exc.value.code == "invalid_value"


# --- operators ------------------------------------------------------------------------------------------


def test_operator_key_authenticates_until_revoked(world, sessions, kit):
    with _tx(sessions) as tx:
        created = store.create_operator(tx, authority=world.slug, name="窗口 1", now=kit.NOW)
    assert created.api_key.startswith("elk_") and len(created.api_key) == 4 + 43
    assert created.api_key not in repr(created)
    with _tx(sessions) as tx:
        assert store.authenticate_operator(tx, api_key=created.api_key) == created.operator
        assert store.authenticate_operator(tx, api_key=created.api_key + "x") is None
        assert store.authenticate_operator(tx, api_key="elk_" + "A" * 43) is None
        assert store.authenticate_operator(tx, api_key="") is None
        # Only the hash is stored.
        stored = tx.execute(text("SELECT key_hash FROM issuer_operator")).scalar_one()
        assert stored == store.api_key_hash(created.api_key) and created.api_key not in stored
        assert store.list_operators(tx, authority=world.slug) == (created.operator,)
    with _tx(sessions) as tx:
        revoked = store.revoke_operator(tx, operator_id=created.operator.id, now=kit.NOW)
        assert revoked.revoked_at == kit.NOW
    with _tx(sessions) as tx:
        assert store.authenticate_operator(tx, api_key=created.api_key) is None
        with pytest.raises(store.InvalidTransition) as exc:
            store.revoke_operator(tx, operator_id=created.operator.id, now=kit.NOW)
        assert exc.value.code == "invalid_transition"
        with pytest.raises(store.NotFound):
            store.revoke_operator(tx, operator_id="nobody", now=kit.NOW)


def test_operator_keys_come_from_the_given_random_source(world, sessions, kit):
    with _tx(sessions) as tx:
        a = store.create_operator(tx, authority=world.slug, name="a", now=kit.NOW, random_bytes=random.Random(1).randbytes)
    with _tx(sessions) as tx:
        with pytest.raises(store.Conflict):  # the same "random" bytes again: same id and key hash
            store.create_operator(tx, authority=world.slug, name="b", now=kit.NOW, random_bytes=random.Random(1).randbytes)
        with pytest.raises(store.NotFound):
            store.create_operator(tx, authority="nobody", name="c", now=kit.NOW)
    assert a.api_key.startswith("elk_")


# --- registry records -----------------------------------------------------------------------------------


def test_upsert_inserts_then_replaces_keeping_id(world, sessions, kit):
    claims = kit.licence_claims(1)
    with _tx(sessions) as tx:
        first = store.upsert_record(tx, authority=world.slug, vct=kit.BL, uscc=claims["uscc"], claims=claims, now=kit.NOW)
    later = kit.NOW + timedelta(days=1)
    with _tx(sessions) as tx:
        second = store.upsert_record(
            tx, authority=world.slug, vct=kit.BL, uscc=claims["uscc"], claims={**claims, "name": "新名称有限公司"}, now=later
        )
    assert second.id == first.id and second.created_at == kit.NOW and second.updated_at == later
    assert second.claims["name"] == "新名称有限公司"
    assert second.claims["registration"]["business_term"]["long_term"] is False
    with pytest.raises(TypeError):
        second.claims["name"] = "x"  # type: ignore[index]
    with _tx(sessions) as tx:
        assert store.get_record_by_id(tx, record_id=first.id) == second


@pytest.mark.parametrize(
    ("vct", "uscc", "claims"),
    [
        ("https://elicence.cn/vct/food-business-permit", None, None),  # not a type this authority issues
        (None, "913101136317066919", None),  # check character wrong
        (None, "91310113631706691", None),  # 17 characters
        (None, None, ["not", "an", "object"]),
        (None, None, {"amount": float("nan")}),
    ],
)
def test_bad_records_are_refused(world, sessions, kit, vct, uscc, claims):
    good = kit.licence_claims(2)
    with _tx(sessions) as tx:
        with pytest.raises(store.InvalidValue) as exc:
            store.upsert_record(
                tx, authority=world.slug, vct=vct or kit.BL, uscc=uscc or good["uscc"],
                claims=good if claims is None else claims, now=kit.NOW,
            )
    assert exc.value.code == "invalid_value"


def test_import_writes_a_batch_and_reimport_updates_it(world, sessions, kit):
    rows = [RecordInput(kit.BL, c["uscc"], c) for c in map(kit.licence_claims, range(30))]
    with _tx(sessions) as tx:
        assert store.import_records(tx, authority=world.slug, records=rows, now=kit.NOW, chunk=7) == 30
    with _tx(sessions) as tx:
        assert store.import_records(tx, authority=world.slug, records=rows[:5], now=kit.NOW + timedelta(hours=1)) == 5
        page = store.list_records(tx, authority=world.slug, limit=1000)
    assert len(page.items) == 30 and page.next_cursor is None
    assert sum(r.updated_at > r.created_at for r in page.items) == 5


def test_records_page_through_every_row_once(world, sessions, kit):
    rows = [RecordInput(kit.BL, c["uscc"], c) for c in map(kit.licence_claims, range(23))]
    with _tx(sessions) as tx:
        store.import_records(tx, authority=world.slug, records=rows, now=kit.NOW)
    seen, cursor = [], None
    with _tx(sessions) as tx:
        while True:
            page = store.list_records(tx, authority=world.slug, limit=5, cursor=cursor)
            seen.extend(r.uscc for r in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == sorted(r.uscc for r in rows)
        one = store.list_records(tx, authority=world.slug, uscc=rows[3].uscc)
        assert [r.uscc for r in one.items] == [rows[3].uscc]
        with pytest.raises(store.InvalidValue):
            store.list_records(tx, authority=world.slug, cursor="garbage!")
        with pytest.raises(store.InvalidValue):
            store.list_records(tx, authority=world.slug, limit=0)


# --- status lists ---------------------------------------------------------------------------------------


def test_a_new_list_gets_its_uri_from_its_id(world, sessions, kit):
    with _tx(sessions) as tx:
        lst = store.get_list(tx, list_id=world.list_id)
    assert lst.info.uri == f"{kit.URI_PREFIX}{world.list_id}"
    assert (lst.info.bits, lst.info.size, lst.info.used_count, lst.info.version) == (2, 131072, 0, 1)
    assert lst.status_list() == sl.StatusList.new(131072, 2)


def test_allocation_is_random_distinct_and_counted(world, sessions, kit):
    from datetime import timezone

    later = (kit.NOW + timedelta(hours=1)).astimezone(timezone(timedelta(hours=8)))
    with _tx(sessions) as tx:
        slots = store.allocate_indexes(tx, list_id=world.list_id, count=200, now=later)
    indexes = [s.idx for s in slots]
    assert len(set(indexes)) == 200
    assert indexes != sorted(indexes)  # not sequential (probability of sorted order: 1/200!)
    assert all(s.uri == f"{kit.URI_PREFIX}{world.list_id}" for s in slots)
    with _tx(sessions) as tx:
        info = store.get_list(tx, list_id=world.list_id).info
        # Allocation does not change the signed token (fresh entries read VALID), so no new version.
        assert (info.used_count, info.version) == (200, 1)
        assert info.updated_at == later and info.created_at == kit.NOW
        assert store.get_list_version(tx, list_id=world.list_id) == 1
        assert store.get_list_version(tx, list_id=999) is None


def test_the_kept_status_token_never_goes_back_in_version_or_time(world, sessions, kit):
    def save(version: int, signed_at: int, kid: str = "k1") -> tuple[int, int, str]:
        with _tx(sessions) as tx:
            kept = store.save_status_token(tx, store.SignedStatusToken(world.list_id, version, kid, signed_at,
                                                                      f"token-{version}-{signed_at}-{kid}"))
            head = store.get_list_head(tx, list_id=world.list_id)
        assert head.token == kept and head.authority == world.slug
        assert kept.token == f"token-{kept.version}-{kept.signed_at}-{kept.kid}"
        return kept.version, kept.signed_at, kept.kid

    with _tx(sessions) as tx:
        assert store.get_list_head(tx, list_id=world.list_id).token is None
        assert store.get_list_head(tx, list_id=999) is None
    assert save(1, 100) == (1, 100, "k1")
    assert save(1, 100) == (1, 100, "k1")  # the same signing again: one kept
    assert save(1, 99) == (1, 100, "k1")  # signed earlier: refused
    assert save(1, 160) == (1, 160, "k1")  # re-signed later
    assert save(2, 150) == (1, 160, "k1")  # a later version dated earlier would go back in time: refused
    assert save(2, 160) == (2, 160, "k1")  # a later version at the same time
    assert save(1, 200) == (2, 160, "k1")  # an older version signed later: refused
    assert save(2, 160, "k2") == (2, 160, "k2")  # the key rotated
    assert save(3, 170, "k1") == (3, 170, "k1")


def test_allocation_follows_the_given_rng(sessions, kit):
    w1 = kit.make_world(sessions, slug="a")
    w2 = kit.make_world(sessions, slug="b")
    with _tx(sessions) as tx:
        a = store.allocate_indexes(tx, list_id=w1.list_id, count=5, now=kit.NOW, rng=random.Random(7))
        b = store.allocate_indexes(tx, list_id=w2.list_id, count=5, now=kit.NOW, rng=random.Random(7))
    assert [s.idx for s in a] == [s.idx for s in b]


def test_a_full_list_refuses_and_the_next_list_opens_at_the_fill_limit(sessions, kit):
    w = kit.make_world(sessions, list_size=16)
    with _tx(sessions) as tx:
        store.allocate_indexes(tx, list_id=w.list_id, count=11, now=kit.NOW)
        same = store.open_status_list(tx, authority=w.slug, uri_prefix=kit.URI_PREFIX, now=kit.NOW)
        assert same.id == w.list_id  # 11/16 < 75 %
        store.allocate_index(tx, list_id=w.list_id, now=kit.NOW)
        fresh = store.open_status_list(tx, authority=w.slug, uri_prefix=kit.URI_PREFIX, now=kit.NOW)
        assert fresh.id != w.list_id and fresh.used_count == 0  # 12/16 = 75 %: a new list
        assert store.open_status_list(tx, authority=w.slug, uri_prefix=kit.URI_PREFIX, now=kit.NOW).id == fresh.id
        store.allocate_indexes(tx, list_id=w.list_id, count=4, now=kit.NOW)  # the old list can still be filled
        with pytest.raises(store.ListFull) as exc:
            store.allocate_index(tx, list_id=w.list_id, now=kit.NOW)
        assert exc.value.code == "status_list_full"
        assert [i.id for i in store.list_status_lists(tx, authority=w.slug)] == [w.list_id, fresh.id]
        with pytest.raises(store.NotFound):
            store.allocate_index(tx, list_id=12345, now=kit.NOW)
        with pytest.raises(store.NotFound):
            store.open_status_list(tx, authority="nobody", uri_prefix=kit.URI_PREFIX, now=kit.NOW)


def test_allocation_in_the_open_list_keeps_to_the_fill_limit_and_opens_the_next_list(sessions, kit):
    w = kit.make_world(sessions, list_size=16)
    with _tx(sessions) as tx:
        first = store.allocate_in_open_list(tx, authority=w.slug, uri_prefix=kit.URI_PREFIX, count=11, now=kit.NOW)
        assert {a.list_id for a in first} == {w.list_id} and len({a.idx for a in first}) == 11
        one = store.allocate_in_open_list(tx, authority=w.slug, uri_prefix=kit.URI_PREFIX, count=1, now=kit.NOW)
        assert one[0].list_id == w.list_id and one[0].idx not in {a.idx for a in first}  # 11/16 < 75 %
        # 12/16 = 75 %: the next allocation opens a new list (a fill limit bound as an integer would be 100 %).
        fresh = store.allocate_in_open_list(tx, authority=w.slug, uri_prefix=kit.URI_PREFIX, count=3, now=kit.NOW)
        assert {a.list_id for a in fresh} != {w.list_id} and len({a.list_id for a in fresh}) == 1
        assert store.get_list(tx, list_id=w.list_id).info.used_count == 12
        # More than the open list has free: refused, nothing taken.
        with pytest.raises(store.ListFull) as exc:
            store.allocate_in_open_list(tx, authority=w.slug, uri_prefix=kit.URI_PREFIX, count=14, now=kit.NOW)
        assert exc.value.code == "status_list_full"
        for bad in (0, -1, True, 1.5):
            with pytest.raises(store.InvalidValue):
                store.allocate_in_open_list(tx, authority=w.slug, uri_prefix=kit.URI_PREFIX, count=bad, now=kit.NOW)
        with pytest.raises(store.NotFound):
            store.allocate_in_open_list(tx, authority="nobody", uri_prefix=kit.URI_PREFIX, count=1, now=kit.NOW)


def test_set_status_changes_one_entry_and_the_version(world, sessions, kit):
    with _tx(sessions) as tx:
        slot = store.allocate_index(tx, list_id=world.list_id, now=kit.NOW)
        assert store.set_status(tx, list_id=world.list_id, idx=slot.idx, value=sl.SUSPENDED, now=kit.NOW) == 2
    with _tx(sessions) as tx:
        lst = store.get_list(tx, list_id=world.list_id)
    statuses = lst.status_list()
    assert statuses.get(slot.idx) == sl.SUSPENDED
    assert sum(statuses.get(i) for i in range(statuses.size)) == sl.SUSPENDED  # nothing else changed


@pytest.mark.parametrize("case", ["never_allocated", "out_of_range", "too_wide", "no_list"])
def test_set_status_refuses_bad_targets(world, sessions, kit, case):
    with _tx(sessions) as tx:
        slot = store.allocate_index(tx, list_id=world.list_id, now=kit.NOW, rng=random.Random(1))
        args = {"list_id": world.list_id, "idx": slot.idx, "value": 1}
        if case == "never_allocated":
            args["idx"] = (slot.idx + 1) % 131072
        elif case == "out_of_range":
            args["idx"] = 131072
        elif case == "too_wide":
            args["value"] = 4
        else:
            args["list_id"] = 999
        error = store.NotFound if case == "no_list" else store.InvalidValue
        with pytest.raises(error):
            store.set_status(tx, now=kit.NOW, **args)


# --- credentials ----------------------------------------------------------------------------------------


def test_an_index_cannot_be_given_to_two_credentials(world, sessions, kit):
    with _tx(sessions) as tx:
        first = kit.issue(tx, world, uscc=kit.licence_claims(1)["uscc"])
        with pytest.raises(store.Conflict) as exc:
            store.insert_credential(
                tx, credential_id="other", authority=world.slug, vct=kit.BL, uscc=first.uscc, kid=world.kid,
                status_list_id=first.status_list_id, status_idx=first.status_idx, issued_at=kit.NOW,
                expires_at=None, credential_hash="0" * 64,
            )
        assert exc.value.code == "conflict"
        assert store.get_credential(tx, credential_id=first.id) == first  # the transaction goes on


def test_a_credential_needs_a_known_key_and_list(world, sessions, kit):
    with _tx(sessions) as tx:
        with pytest.raises(store.Conflict):
            store.insert_credential(
                tx, credential_id="c1", authority=world.slug, vct=kit.BL, uscc="913101136317066918", kid="no-such-kid",
                status_list_id=world.list_id, status_idx=1, issued_at=kit.NOW, expires_at=None, credential_hash="0" * 64,
            )


def test_credentials_are_listed_by_uscc_status_and_date_with_paging(world, sessions, kit):
    usccs = [kit.licence_claims(i)["uscc"] for i in range(3)]
    ids = []
    with _tx(sessions) as tx:
        for day in range(12):
            ids.append(kit.issue(tx, world, uscc=usccs[day % 3], now=kit.NOW + timedelta(days=day)).id)
        store.set_credential_status(tx, credential_id=ids[4], status="revoked", reason="注销", now=kit.NOW)
    with _tx(sessions) as tx:
        seen, cursor = [], None
        while True:
            page = store.list_credentials(tx, authority=world.slug, limit=5, cursor=cursor)
            seen.extend(c.id for c in page.items)
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        assert seen == ids[::-1]  # newest first, each once
        by_uscc = store.list_credentials(tx, authority=world.slug, uscc=usccs[1]).items
        assert [c.id for c in by_uscc] == [ids[10], ids[7], ids[4], ids[1]]
        revoked = store.list_credentials(tx, authority=world.slug, status=CredentialStatus.REVOKED).items
        assert [c.id for c in revoked] == [ids[4]]
        window = store.list_credentials(
            tx, authority=world.slug, issued_from=kit.NOW + timedelta(days=3), issued_before=kit.NOW + timedelta(days=6)
        ).items
        assert [c.id for c in window] == [ids[5], ids[4], ids[3]]
        assert len(store.list_credentials(tx, authority=world.slug, kid=world.kid, limit=100).items) == 12
        assert store.list_credentials(tx, authority="nobody").items == ()
        with pytest.raises(store.InvalidValue):
            store.list_credentials(tx, authority=world.slug, status="lost")


def test_status_changes_reach_the_list_and_revocation_is_final(world, sessions, kit):
    with _tx(sessions) as tx:
        cred = kit.issue(tx, world, uscc=kit.licence_claims(1)["uscc"])

    def entry() -> int:
        with _tx(sessions) as tx:
            return store.get_list(tx, list_id=world.list_id).status_list().get(cred.status_idx)

    steps = [("suspended", sl.SUSPENDED), ("valid", sl.VALID), ("suspended", sl.SUSPENDED), ("revoked", sl.INVALID)]
    for status, value in steps:
        with _tx(sessions) as tx:
            changed = store.set_credential_status(tx, credential_id=cred.id, status=status, reason="核查", now=kit.NOW)
        assert changed.status == status and changed.status_changed_at == kit.NOW
        assert entry() == value
    for status in ("valid", "suspended", "revoked"):
        with _tx(sessions) as tx:
            with pytest.raises(store.InvalidTransition) as exc:
                store.set_credential_status(tx, credential_id=cred.id, status=status, reason=None, now=kit.NOW)
        assert exc.value.code == "invalid_transition"
    assert entry() == sl.INVALID
    with _tx(sessions) as tx:
        with pytest.raises(store.NotFound):
            store.set_credential_status(tx, credential_id="nobody", status="revoked", reason=None, now=kit.NOW)
        with pytest.raises(store.InvalidValue):
            store.set_credential_status(tx, credential_id=cred.id, status="lost", reason=None, now=kit.NOW)


def test_valid_to_valid_is_not_a_change(world, sessions, kit):
    with _tx(sessions) as tx:
        cred = kit.issue(tx, world, uscc=kit.licence_claims(1)["uscc"])
        with pytest.raises(store.InvalidTransition):
            store.set_credential_status(tx, credential_id=cred.id, status="valid", reason=None, now=kit.NOW)


def test_replacement_is_recorded_once(world, sessions, kit):
    with _tx(sessions) as tx:
        old = kit.issue(tx, world, uscc=kit.licence_claims(1)["uscc"])
        new = kit.issue(tx, world, uscc=old.uscc)
        assert store.mark_replaced(tx, credential_id=old.id, replaced_by=new.id).replaced_by == new.id
        with pytest.raises(store.InvalidTransition):
            store.mark_replaced(tx, credential_id=old.id, replaced_by=new.id)
        with pytest.raises(store.Conflict):
            store.mark_replaced(tx, credential_id=new.id, replaced_by="no-such-credential")
        with pytest.raises(store.NotFound):
            store.mark_replaced(tx, credential_id="nobody", replaced_by=new.id)
        with pytest.raises(store.InvalidValue):
            store.mark_replaced(tx, credential_id=new.id, replaced_by=new.id)


def test_authorisations_are_listed_under_their_licence(world, sessions, kit):
    with _tx(sessions) as tx:
        licence = kit.issue(tx, world, uscc=kit.licence_claims(1)["uscc"])
        staff = [kit.issue(tx, world, uscc=licence.uscc, vct=kit.STAFF, granted_under=licence.id) for _ in range(3)]
        kit.issue(tx, world, uscc=licence.uscc, vct=kit.STAFF)  # not under this licence
        store.set_credential_status(tx, credential_id=staff[1].id, status="revoked", reason="法定代表人变更", now=kit.NOW)
    with _tx(sessions) as tx:
        assert {c.id for c in store.list_authorisations(tx, licence_id=licence.id)} == {c.id for c in staff}
        valid = store.list_authorisations(tx, licence_id=licence.id, status="valid")
        assert {c.id for c in valid} == {staff[0].id, staff[2].id}
        with pytest.raises(store.Conflict):
            kit.issue(tx, world, uscc=licence.uscc, vct=kit.STAFF, granted_under="no-such-licence")


def test_a_batch_of_credentials_is_written_whole_or_not_at_all(world, sessions, kit):
    uscc = kit.licence_claims(1)["uscc"]

    def batch(slots, ids):
        return [
            store.NewCredential(i, world.slug, kit.BL, uscc, world.kid, s.list_id, s.idx, kit.NOW, None, "0" * 64)
            for i, s in zip(ids, slots)
        ]

    with _tx(sessions) as tx:
        slots = store.allocate_indexes(tx, list_id=world.list_id, count=5, now=kit.NOW)
        written = store.insert_credentials(tx, credentials=batch(slots, [f"c{i}" for i in range(5)]))
        assert [c.status_idx for c in written] == [s.idx for s in slots]
        more = store.allocate_indexes(tx, list_id=world.list_id, count=3, now=kit.NOW)
        clash = batch(more, ["d0", "d1", "c3"])  # the last id is taken
        with pytest.raises(store.Conflict):
            store.insert_credentials(tx, credentials=clash)
        assert store.get_credential(tx, credential_id="d0") is None
        with pytest.raises(store.InvalidValue):
            store.insert_credentials(tx, credentials=[*batch(more[:1], ["e0"]), batch(more[1:2], ["x" * 37])[0]])
        assert store.get_credential(tx, credential_id="e0") is None
        assert store.insert_credentials(tx, credentials=[]) == ()
        assert len(store.list_credentials(tx, authority=world.slug).items) == 5


def test_a_batch_of_audit_entries_links_like_single_appends(world, sessions, kit):
    entries = [store.AuditEntry(kit.NOW, "op", "credential.issued", f"c{i}", {"i": i}) for i in range(4)]
    with _tx(sessions) as tx:
        store.append_audit(tx, chain=world.slug, at=kit.NOW, actor="op", action="import.started", subject="b")
        records = store.append_audits(tx, chain=world.slug, entries=entries)
        assert [r.seq for r in records] == [2, 3, 4, 5]
        with pytest.raises(store.InvalidValue):
            store.append_audits(tx, chain=world.slug, entries=[entries[0], store.AuditEntry(kit.NOW, "op", "x", "s", {"f": 0.1})])
        assert store.append_audits(tx, chain=world.slug, entries=[]) == ()
    with _tx(sessions) as tx:
        assert store.verify_audit(tx, chain=world.slug) == store.ChainReport(world.slug, 5, None)


# --- offers, tokens, nonces -----------------------------------------------------------------------------


def _offer(tx, world, kit, *, offer_id="offer-1", code_hash="c" * 64, minutes=10, pin=True, record_id=None):
    return store.create_offer(
        tx, offer_id=offer_id, authority=world.slug, configuration_id="business_licence", code_hash=code_hash,
        expires_at=kit.NOW + timedelta(minutes=minutes), now=kit.NOW, record_id=record_id,
        pin_salt=b"salt" if pin else None, pin_hash=b"hash" if pin else None,
    )


def test_offers_round_trip_and_are_found_by_code(world, sessions, kit):
    claims = kit.licence_claims(1)
    with _tx(sessions) as tx:
        record = store.upsert_record(tx, authority=world.slug, vct=kit.BL, uscc=claims["uscc"], claims=claims, now=kit.NOW)
        offer = _offer(tx, world, kit, record_id=record.id)
    with _tx(sessions) as tx:
        assert store.get_offer(tx, offer_id="offer-1") == offer
        assert store.find_offer_by_code(tx, code_hash="c" * 64) == offer
        assert store.find_offer_by_code(tx, code_hash="d" * 64) is None
        assert offer.state is OfferState.OFFERED and offer.pin_attempts == 0
        with pytest.raises(store.Conflict):
            _offer(tx, world, kit, offer_id="offer-2")  # same code hash
        with pytest.raises(store.InvalidValue):
            store.create_offer(
                tx, offer_id="o3", authority=world.slug, configuration_id="x", code_hash="e" * 64,
                expires_at=kit.NOW, now=kit.NOW, pin_salt=b"s",
            )


def _stored(tx, table, key, value):
    # Every column as the database holds it, a JSON column as its text.
    columns = store.IssuerBase.metadata.tables[table].c
    listed = ", ".join(f"CAST({c.name} AS TEXT) AS {c.name}" if c.name == "claims" else c.name for c in columns)
    return tx.execute(text(f"SELECT {listed} FROM {table} WHERE {key} = :v"), {"v": value}).one()._asdict()


def test_bulk_writes_store_exactly_what_single_statements_store(world, sessions, kit):
    # On PostgreSQL import_records and insert_offers COPY their rows instead of running statements.
    one, two = kit.licence_claims(1), kit.licence_claims(2)
    with _tx(sessions) as tx:
        single = store.upsert_record(tx, authority=world.slug, vct=kit.BL, uscc=one["uscc"], claims=one, now=kit.NOW)
        store.import_records(tx, authority=world.slug, records=[RecordInput(kit.BL, two["uscc"], two)], now=kit.NOW)
        bulk = store.get_record(tx, authority=world.slug, vct=kit.BL, uscc=two["uscc"])
        _offer(tx, world, kit, offer_id="o-single", code_hash="1" * 64, record_id=single.id)
        store.insert_offers(tx, now=kit.NOW, offers=[store.NewOffer(
            "o-bulk", world.slug, "business_licence", "2" * 64, kit.NOW + timedelta(minutes=10), bulk.id, b"salt", b"hash")])
    with _tx(sessions) as tx:
        records = [_stored(tx, "issuer_record", "id", r.id) for r in (single, bulk)]
        offers = [_stored(tx, "issuer_offer", "id", i) for i in ("o-single", "o-bulk")]
    assert [r["claims"] for r in records] == [json.dumps(one), json.dumps(two)]
    assert [{k: v for k, v in r.items() if k not in ("id", "uscc", "claims")} for r in records] == \
        [{k: v for k, v in records[0].items() if k not in ("id", "uscc", "claims")}] * 2
    assert offers[0]["claims"] == offers[1]["claims"] == "null"  # SQLAlchemy's JSON type writes None so
    assert [{k: v for k, v in o.items() if k not in ("id", "code_hash", "record_id")} for o in offers] == \
        [{k: v for k, v in offers[0].items() if k not in ("id", "code_hash", "record_id")}] * 2


@pytest.mark.parametrize("clash", ["code_hash", "record_id"])
def test_a_bulk_offer_that_conflicts_writes_none_of_its_batch(world, sessions, kit, clash):
    claims = kit.licence_claims(1)
    with _tx(sessions) as tx:
        record = store.upsert_record(tx, authority=world.slug, vct=kit.BL, uscc=claims["uscc"], claims=claims, now=kit.NOW)
        _offer(tx, world, kit, offer_id="o-stored", code_hash="1" * 64, record_id=record.id)
    offers = [store.NewOffer(f"o-{i}", world.slug, "business_licence", str(i + 2) * 64, kit.NOW + timedelta(minutes=10),
                             record.id, b"salt", b"hash") for i in range(3)]
    # A code hash taken, or a record that does not exist: the second offer of three breaks the batch.
    offers[1] = dataclasses.replace(offers[1], **{"code_hash": "1" * 64} if clash == "code_hash" else {"record_id": "no-such-record"})
    with _tx(sessions) as tx:
        with pytest.raises(store.Conflict) as exc:
            store.insert_offers(tx, offers=offers, now=kit.NOW)
        assert exc.value.code == "conflict"
        # The transaction goes on: nothing of the batch, the stored offer untouched.
        assert tx.execute(text("SELECT id FROM issuer_offer")).scalars().all() == ["o-stored"]


def test_pin_attempts_run_out(world, sessions, kit):
    with _tx(sessions) as tx:
        _offer(tx, world, kit)
    for expected in range(1, 4):
        with _tx(sessions) as tx:
            assert store.claim_pin_attempt(tx, offer_id="offer-1", max_attempts=3, now=kit.NOW).pin_attempts == expected
    with _tx(sessions) as tx:
        with pytest.raises(store.Spent) as exc:
            store.claim_pin_attempt(tx, offer_id="offer-1", max_attempts=3, now=kit.NOW)
    assert (exc.value.code, exc.value.reason) == ("spent", "exhausted")


def test_an_offer_is_redeemed_once_and_not_after_expiry(world, sessions, kit):
    with _tx(sessions) as tx:
        _offer(tx, world, kit, offer_id="o1", code_hash="1" * 64)
        _offer(tx, world, kit, offer_id="o2", code_hash="2" * 64)
    with _tx(sessions) as tx:
        assert store.redeem_offer(tx, offer_id="o1", now=kit.NOW).state is OfferState.REDEEMED
    cases = [("o1", kit.NOW, "used"), ("o2", kit.NOW + timedelta(minutes=10), "expired"), ("o9", kit.NOW, "unknown")]
    for offer_id, now, reason in cases:
        with _tx(sessions) as tx:
            with pytest.raises(store.Spent) as exc:
                store.redeem_offer(tx, offer_id=offer_id, now=now)
        assert exc.value.reason == reason
    with _tx(sessions) as tx:
        with pytest.raises(store.Spent) as exc:
            store.claim_pin_attempt(tx, offer_id="o1", max_attempts=5, now=kit.NOW)
        assert exc.value.reason == "used"


def test_offer_states_move_forward_only(world, sessions, kit):
    with _tx(sessions) as tx:
        _offer(tx, world, kit)
        with pytest.raises(store.InvalidTransition):
            store.set_offer_state(tx, offer_id="offer-1", state="issued", now=kit.NOW)
        store.redeem_offer(tx, offer_id="offer-1", now=kit.NOW)
        assert store.set_offer_state(tx, offer_id="offer-1", state=OfferState.ISSUED, now=kit.NOW).state is OfferState.ISSUED
        with pytest.raises(store.InvalidTransition):
            store.set_offer_state(tx, offer_id="offer-1", state="withdrawn", now=kit.NOW)
        with pytest.raises(store.NotFound):
            store.set_offer_state(tx, offer_id="nobody", state="withdrawn", now=kit.NOW)
        with pytest.raises(store.InvalidValue):
            store.set_offer_state(tx, offer_id="offer-1", state="lost", now=kit.NOW)


def test_access_tokens_and_nonces_are_single_use(world, sessions, kit):
    with _tx(sessions) as tx:
        _offer(tx, world, kit)
        store.create_access_token(tx, token_hash="t" * 64, offer_id="offer-1", expires_at=kit.NOW + timedelta(minutes=5))
        store.create_nonce(tx, value="n-1", expires_at=kit.NOW + timedelta(minutes=5))
        store.create_nonce(tx, value="n-2", expires_at=kit.NOW + timedelta(minutes=5))
        with pytest.raises(store.Conflict):
            store.create_nonce(tx, value="n-1", expires_at=kit.NOW)
        with pytest.raises(store.Conflict):
            store.create_access_token(tx, token_hash="u" * 64, offer_id="no-offer", expires_at=kit.NOW)
    with _tx(sessions) as tx:
        assert store.consume_access_token(tx, token_hash="t" * 64, now=kit.NOW).used_at == kit.NOW
        assert store.consume_nonce(tx, value="n-1", now=kit.NOW).used_at == kit.NOW
    later = kit.NOW + timedelta(minutes=5)
    cases = [
        (store.consume_access_token, {"token_hash": "t" * 64}, kit.NOW, "used"),
        (store.consume_nonce, {"value": "n-1"}, kit.NOW, "used"),
        (store.consume_nonce, {"value": "n-2"}, later, "expired"),
        (store.consume_nonce, {"value": "n-3"}, kit.NOW, "unknown"),
        (store.consume_access_token, {"token_hash": "v" * 64}, kit.NOW, "unknown"),
    ]
    for consume, args, now, reason in cases:
        with _tx(sessions) as tx:
            with pytest.raises(store.Spent) as exc:
                consume(tx, now=now, **args)
        assert (exc.value.code, exc.value.reason) == ("spent", reason), (consume.__name__, args)
    with _tx(sessions) as tx:
        assert store.get_access_token(tx, token_hash="t" * 64).offer_id == "offer-1"
        assert store.purge_expired(tx, now=later) == 3
        assert store.get_access_token(tx, token_hash="t" * 64) is None


# --- idempotency ----------------------------------------------------------------------------------------


def test_idempotency_keeps_the_first_outcome(world, sessions, kit):
    with _tx(sessions) as tx:
        op = store.create_operator(tx, authority=world.slug, name="op", now=kit.NOW).operator
        assert store.get_idempotency(tx, operator_id=op.id, key="k1") is None
        first, created = store.put_idempotency(
            tx, operator_id=op.id, key="k1", request_hash="a" * 64, status_code=201, response={"id": "c1"}, now=kit.NOW
        )
        assert created and first.response == {"id": "c1"}
    with _tx(sessions) as tx:
        again, created = store.put_idempotency(
            tx, operator_id=op.id, key="k1", request_hash="b" * 64, status_code=201, response={"id": "c2"}, now=kit.NOW
        )
        assert not created and again == first
        assert store.get_idempotency(tx, operator_id=op.id, key="k1") == first


# --- audit ----------------------------------------------------------------------------------------------


def test_audit_appends_link_and_verify(world, sessions, kit):
    with _tx(sessions) as tx:
        for i in range(5):
            store.append_audit(tx, chain=world.slug, at=kit.NOW, actor="op", action="x", subject=str(i), details={"i": i})
        store.append_audit(tx, chain="other", at=kit.NOW, actor="op", action="x", subject="o")
    with _tx(sessions) as tx:
        records = store.list_audit(tx, chain=world.slug)
        assert [r.seq for r in records] == [1, 2, 3, 4, 5]
        assert records[0].prev_hash == "0" * 64 and records[1].prev_hash == records[0].hash
        assert [r.seq for r in store.list_audit(tx, chain=world.slug, after_seq=3)] == [4, 5]
        assert [r.seq for r in store.iter_audit(tx, chain=world.slug, batch=2)] == [1, 2, 3, 4, 5]
        assert store.audit_head(tx, chain=world.slug).seq == 5
        assert store.audit_chains(tx) == ("other", world.slug)
        reports = store.verify_all_audits(tx)
        assert [(r.chain, r.count, r.broken) for r in reports] == [("other", 1, None), (world.slug, 5, None)]


def test_audit_refuses_what_it_cannot_hash(world, sessions, kit):
    with _tx(sessions) as tx:
        with pytest.raises(store.InvalidValue):
            store.append_audit(tx, chain=world.slug, at=kit.NOW, actor="op", action="x", subject="s", details={"f": 1.5})
        with pytest.raises(store.InvalidValue):
            store.append_audit(tx, chain=world.slug, at=kit.NOW.replace(tzinfo=None), actor="op", action="x", subject="s")


def test_times_come_back_in_utc_whatever_went_in(world, sessions, kit):
    from datetime import timezone

    cst = timezone(timedelta(hours=8))
    with _tx(sessions) as tx:
        record = store.append_audit(tx, chain="c", at=kit.NOW.astimezone(cst), actor="a", action="x", subject="s")
    with _tx(sessions) as tx:
        (stored,) = store.list_audit(tx, chain="c")
    assert stored.at == kit.NOW and stored.at.tzinfo == timezone.utc
    assert stored.hash == record.hash


def test_read_only_sessions_see_committed_data(world, sessions, kit):
    with store.unit_of_work(sessions, read_only=True) as tx:
        assert store.get_authority(tx, slug=world.slug) is not None
        assert tx.execute(select(text("1"))).scalar_one() == 1
