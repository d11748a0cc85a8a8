import os

from dyndis_learn.limits import THREADS_PER_CORE, available_memory, thread_limit


def test__available_memory_reads_the_system():
    available = available_memory()
    assert available is None or 0 < available <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test__the_thread_limit_counts_the_cores():
    assert thread_limit() == THREADS_PER_CORE * len(os.sched_getaffinity(0))
