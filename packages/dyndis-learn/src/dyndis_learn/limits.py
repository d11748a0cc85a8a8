"""Limits of this machine that a run is checked against before it starts: threads and memory."""

from __future__ import annotations

import os
import warnings

__all__ = ["THREADS_PER_CORE", "available_memory", "check_threads", "thread_limit"]

#: ``threads`` may be at most this many times the cores this process may run on (:func:`thread_limit`).
THREADS_PER_CORE = 4


def thread_limit() -> int:
    """The most torch threads a run may use here: :data:`THREADS_PER_CORE` x the cores this process may use.

    The cores are ``os.sched_getaffinity`` where the platform has it (a container's CPU set), else
    ``os.cpu_count()`` (1 if unknown).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return THREADS_PER_CORE * max(cores, 1)


def check_threads(threads: int, cap: bool) -> int:
    """``threads`` if this machine allows it (:func:`thread_limit`); else refused, or with ``cap`` lowered.

    Raises:
        ValueError: Without ``cap``, for more threads than :func:`thread_limit`.
    """
    limit = thread_limit()
    if threads <= limit:
        return threads
    message = (
        f"threads={threads} is more than this machine allows: {THREADS_PER_CORE} x its "
        f"{limit // THREADS_PER_CORE} core(s) = {limit}"
    )
    if not cap:
        raise ValueError(f"{message}; lower threads (--threads; 0 leaves torch's default).")
    warnings.warn(f"{message}; running with {limit} threads.", stacklevel=3)
    return limit


def available_memory() -> int | None:
    """Bytes of memory a new allocation can get, or None if this cannot be read (then nothing is checked).

    Linux: ``MemAvailable`` of ``/proc/meminfo``, bounded by the cgroup's (v2) ``memory.max`` less
    ``memory.current`` where a limit is set. Elsewhere: the physical memory
    (``os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")``), an upper bound.
    """
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        try:
            available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
        if available <= 0:
            return None
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            used = int(f.read().strip())
        if limit != "max":
            available = min(available, max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return available
