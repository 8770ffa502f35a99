"""One core per sending process. A process sending webhooks runs dozens of threads that take
turns on the GIL as their sockets answer; spread over several cores, each turn wakes a thread on
another core to find the GIL still held, and the hand-offs cost more CPU than the requests (on
2 cores, one process sent 1.8x as many webhooks a second, for half the CPU each, once its
threads shared one core: bench/deliveries.py). The n-th pool process takes the n-th core it
may use, so a worker's processes do not share one; processes past the number of cores, and
containers with a CPU quota, are left to the scheduler. Several notifier workers on one
machine would pin their processes alike: turn it off there
(HOUSINGFIRST_PIN_SENDER_PROCESSES=false). Pinning is an optimisation: if it fails, the
process sends unpinned.
"""

from __future__ import annotations

import os
from pathlib import Path


def pool_index() -> int | None:
    """This process's place in its Celery pool (0, 1, ...), or None outside one."""
    from billiard.process import current_process

    index = getattr(current_process(), "index", None)
    return index if isinstance(index, int) else None


def cpu_quota_set() -> bool:
    """True when a cgroup caps this process's CPU time (a container given CPU limits but no
    cpuset sees every core of the host, shared with other containers: no core is its own)."""
    try:
        return Path("/sys/fs/cgroup/cpu.max").read_text().split()[0] != "max"
    except (OSError, IndexError):
        return False


def pin_to_one_core(index: int) -> int | None:
    """Keep this process, every thread it has and every thread it starts, on the index-th
    core it may use; the core, or None where pinning would not help or could hurt: one core,
    more pool processes than cores (they would be stacked on cores the scheduler could no
    longer move them off), a CPU quota, or no way to (not Linux)."""
    if not hasattr(os, "sched_setaffinity") or cpu_quota_set():
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2 or not 0 <= index < len(allowed):
        return None
    core = allowed[index]
    threads = Path("/proc/self/task")  # (every thread of the process, the calling one too)
    for thread in threads.iterdir() if threads.is_dir() else [Path("0")]:
        try:
            os.sched_setaffinity(int(thread.name), {core})
        except ProcessLookupError:  # (a thread that ended meanwhile)
            continue
    return core
