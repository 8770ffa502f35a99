"""Sending processes on one core each (services/notifier/affinity.py), checked in child
processes so the test run itself stays unpinned."""

from __future__ import annotations

import multiprocessing
import os
import threading
from typing import Any

import pytest
from billiard import Pool

from services.notifier.affinity import pin_to_one_core, pool_index

CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
needs_two_cores = pytest.mark.skipif(len(CORES) < 2, reason="pinning needs two cores or more")


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


@needs_two_cores
@pytest.mark.parametrize("index", [0, 1, len(CORES)])
def test_a_process_and_all_its_threads_keep_to_the_index_th_core(index: int) -> None:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=pin_and_report, args=(index, results))
    child.start()
    core, seen = results.get(timeout=60)
    child.join(timeout=60)

    assert core == CORES[index % len(CORES)]
    assert seen == {"before": {core}, "caller": {core}, "after": {core}}


def index_and_pid(_: int) -> tuple[int | None, int]:
    return pool_index(), os.getpid()


def test_pool_processes_know_their_place_and_other_processes_have_none() -> None:
    with Pool(2) as pool:
        places = pool.map(index_and_pid, range(8), chunksize=1)
    assert {index for index, _ in places} <= {0, 1}
    assert all(index is not None for index, _ in places)
    assert pool_index() is None
