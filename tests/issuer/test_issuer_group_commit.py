"""issuer.group_commit.GroupCommit: queued items are handled in batches, each caller gets its own outcome."""

from __future__ import annotations

import threading
import time

import pytest

from issuer.group_commit import GroupCommit

WAIT = 10  # seconds a test waits for a future before it fails (never a timing assertion)


class Recorder:
    """A handler that records its batches and can hold the first one until released."""

    def __init__(self, hold: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, items):
        self.batches.append(list(items))
        self.entered.set()
        assert self.release.wait(WAIT)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


def test_each_caller_gets_its_own_outcome():
    handler = Recorder()
    group = GroupCommit(handler, linger=0)
    futures = [group.submit(i) for i in range(6)]
    for i, future in enumerate(futures):
        if i % 2:
            with pytest.raises(ValueError, match=f"odd {i}"):
                future.result(WAIT)
        else:
            assert future.result(WAIT) == i * 10
    assert sorted(i for batch in handler.batches for i in batch) == list(range(6))


def test_items_queued_while_a_batch_runs_go_together_into_the_next_one():
    handler = Recorder(hold=True)
    group = GroupCommit(handler, linger=0)
    first = group.submit(0)
    assert handler.entered.wait(WAIT)
    rest = [group.submit(i) for i in range(2, 22, 2)]
    handler.release.set()
    assert first.result(WAIT) == 0
    assert [f.result(WAIT) for f in rest] == [i * 10 for i in range(2, 22, 2)]
    assert handler.batches == [[0], list(range(2, 22, 2))]


def test_a_batch_holds_at_most_max_batch_items():
    handler = Recorder(hold=True)
    group = GroupCommit(handler, max_batch=4, linger=0)
    group.submit(0)
    assert handler.entered.wait(WAIT)
    futures = [group.submit(i) for i in range(2, 20, 2)]
    handler.release.set()
    for f in futures:
        f.result(WAIT)
    assert handler.batches[1:] == [[2, 4, 6, 8], [10, 12, 14, 16], [18]]


def test_the_first_item_lingers_for_the_ones_just_behind_it():
    handler = Recorder()
    group = GroupCommit(handler, linger=5.0, max_batch=3)  # a full batch ends the wait at once
    futures = [group.submit(i) for i in (0, 2, 4)]
    assert [f.result(WAIT) for f in futures] == [0, 20, 40]
    assert handler.batches == [[0, 2, 4]]


def test_a_failing_handler_fails_every_item_of_its_batch_and_the_next_batch_runs():
    calls = []

    def handle(items):
        calls.append(list(items))
        if len(calls) == 1:
            raise RuntimeError("database gone")
        return [i for i in items]

    group = GroupCommit(handle, linger=0)
    first = group.submit(1)
    with pytest.raises(RuntimeError, match="database gone"):
        first.result(WAIT)
    assert group.submit(2).result(WAIT) == 2


def test_a_handler_returning_the_wrong_number_of_outcomes_fails_the_batch():
    group = GroupCommit(lambda items: [], linger=0)
    with pytest.raises(RuntimeError, match="0 outcomes for a batch of 1"):
        group.submit(1).result(WAIT)


def test_the_thread_stops_when_idle_and_starts_again_with_the_next_item():
    group = GroupCommit(lambda items: list(items), linger=0, idle=0.05, name="group-commit-idle-test")
    assert group.submit(1).result(WAIT) == 1
    deadline = time.monotonic() + WAIT
    while any(t.name == "group-commit-idle-test" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the idle thread did not stop"
        time.sleep(0.01)
    assert group.submit(2).result(WAIT) == 2


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(lambda items: items, max_batch=0)
