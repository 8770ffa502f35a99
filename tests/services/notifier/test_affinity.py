"""Sending processes on one core each (services/notifier/affinity.py), checked in child
processes so the test run itself stays unpinned."""

from __future__ import annotations

import multiprocessing
import os
import threading
from typing import Any

import pytest
from billiard import Pool

from services.notifier import sender
from services.notifier.affinity import cpu_quota_set, pin_to_one_core, pool_index

CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
needs_two_cores = pytest.mark.skipif(
    len(CORES) < 2 or cpu_quota_set(), reason="pinning needs two cores or more, and no CPU quota"
)


def pin_and_report(index: int, results: Any) -> None:
    """Start a thread, pin, start another; report the core and every thread's cores."""
    release = threading.Event()
    before = threading.Thread(target=release.wait)
    before.start()
    core = pin_to_one_core(index)
    seen: dict[str, set[int]] = {}
    after = threading.Thread(target=lambda: seen.update(after=os.sched_getaffinity(0)))
    after.start()
    after.join()
    assert before.native_id is not None
    seen["before"] = os.sched_getaffinity(before.native_id)
    seen["caller"] = os.sched_getaffinity(0)
    release.set()
    before.join()
    results.put((core, seen))


def pinned_in_a_child(index: int) -> tuple[int | None, dict[str, set[int]]]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=pin_and_report, args=(index, results))
    child.start()
    core, seen = results.get(timeout=60)
    child.join(timeout=60)
    return core, seen


@needs_two_cores
@pytest.mark.parametrize("index", [0, 1])
def test_a_process_and_all_its_threads_keep_to_the_index_th_core(index: int) -> None:
    core, seen = pinned_in_a_child(index)

    assert core == CORES[index]
    assert seen == {"before": {core}, "caller": {core}, "after": {core}}


@needs_two_cores
def test_processes_past_the_number_of_cores_are_left_to_the_scheduler() -> None:
    core, seen = pinned_in_a_child(len(CORES))

    assert core is None
    assert seen == {"before": set(CORES), "caller": set(CORES), "after": set(CORES)}


def test_a_refused_pinning_leaves_the_process_sending_unpinned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refused(index: int) -> int | None:
        raise PermissionError("sched_setaffinity: operation not permitted")

    monkeypatch.setattr(sender, "pin_to_one_core", refused)

    sender._pin(0)  # no exception: the sender is made and sends unpinned

    assert "could not pin" in caplog.text


def index_and_pid(_: int) -> tuple[int | None, int]:
    return pool_index(), os.getpid()


def test_pool_processes_know_their_place_and_other_processes_have_none() -> None:
    with Pool(2) as pool:
        places = pool.map(index_and_pid, range(8), chunksize=1)
    assert {index for index, _ in places} <= {0, 1}
    assert all(index is not None for index, _ in places)
    assert pool_index() is None
