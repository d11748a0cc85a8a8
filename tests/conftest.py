"""Shared test configuration: single-threaded torch and NumPy per xdist worker, SB3's logs in pytest's temp dir."""

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs_in_pytest_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point SB3's logger at pytest's temp dir: without a folder it makes a new ``/tmp/SB3-<time>`` per ``learn``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))
        yield
