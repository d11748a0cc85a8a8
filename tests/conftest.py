"""Shared test configuration: keep torch and NumPy single-threaded per xdist worker for stable timings."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
