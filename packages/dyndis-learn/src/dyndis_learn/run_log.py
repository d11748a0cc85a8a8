"""The run log: one row of figures every ``log_every`` steps, to the CSV file, TensorBoard and the progress bar."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

__all__ = ["LOG_COLUMNS", "LOG_NAME", "RunLog", "log_evaluation"]

#: The training log's file name inside a run folder.
LOG_NAME = "train_log.csv"

#: Columns of the training log, in order: the loss terms, then the schedules' values and the smallest
#: share of an action's squared angles in its dominant plane.
LOG_COLUMNS = (
    "step",
    "wall_time",
    "loss",
    "autoencoder_bce",
    "rollout_bce",
    "consistency",
    "smoothness",
    "whitening",
    "target",
    "uniformity",
    "regularizer",
    "regularizer_weight",
    "dynamics_weight",
    "lr",
    "angle_lr",
    "min_plane_share",
)

#: Columns shown on the progress bar, with their short names and formats.
_BAR = {"autoencoder_bce": ("ae", ".4f"), "rollout_bce": ("roll", ".4f"), "consistency": ("cons", ".1e")}


class RunLog:
    """Writes the log rows of one ``train`` call: the CSV file and TensorBoard (with a run folder), the bar.

    Use it as a context manager; on entry the CSV file is rewritten from ``history``, so a resumed run's log
    has no gaps and no rows from beyond its checkpoint.

    Args:
        run_dir: The run folder (None: only the progress bar).
        history: The rows logged so far.
        total: The step training goes to.
        initial: The step training starts from.
        tensorboard: Also write TensorBoard events (needs the ``tensorboard`` extra).
        progress: Show a tqdm progress bar.
    """

    def __init__(
        self,
        run_dir: str | Path | None,
        history: Sequence[Mapping[str, float]],
        total: int,
        initial: int,
        *,
        tensorboard: bool = False,
        progress: bool = True,
    ) -> None:
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.history = history
        self.total, self.initial = total, initial
        self.tensorboard = tensorboard
        self.progress = progress
        self._bar: Any = None
        self._writer: Any = None

    def __enter__(self) -> RunLog:
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / LOG_NAME, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(LOG_COLUMNS)
                writer.writerows([row[c] for c in LOG_COLUMNS] for row in self.history)
            if self.tensorboard:
                self._writer = _summary_writer(self.run_dir / "tensorboard", purge_step=self.initial + 1)
        self._bar = tqdm(
            total=self.total,
            initial=self.initial,
            disable=not self.progress,
            desc="train",
            unit="step",
            dynamic_ncols=True,
        )
        return self

    def step(self) -> None:
        """Advance the progress bar by one SGD step."""
        self._bar.update(1)

    def write(self, row: Mapping[str, float], losses: Sequence[str]) -> None:
        """Append one row (every column of :data:`LOG_COLUMNS`); ``losses`` go to TensorBoard's ``losses/``."""
        if self.run_dir is not None:
            with open(self.run_dir / LOG_NAME, "a", newline="") as f:
                csv.writer(f).writerow([row[c] for c in LOG_COLUMNS])
        if self._writer is not None:
            for name, value in row.items():
                if name != "step":
                    self._writer.add_scalar(f"{'losses' if name in losses else 'train'}/{name}", value, row["step"])
        self._bar.set_postfix(
            {short: format(row[name], spec) for name, (short, spec) in _BAR.items()}
            | {"share": f"{row['min_plane_share']:.3f}"}
        )

    def __exit__(self, *exc_info: object) -> None:
        self._bar.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def log_evaluation(
    folder: str | Path, step: int, scalars: Mapping[str, float], images: Mapping[str, np.ndarray]
) -> None:
    """Write an evaluation's figures and uint8 (H, W, 3) images as TensorBoard events at training step ``step``."""
    writer = _summary_writer(Path(folder), purge_step=None)
    try:
        for name, value in scalars.items():
            writer.add_scalar(name, value, step)
        for name, image in images.items():
            writer.add_image(name, image, step, dataformats="HWC")
    finally:
        writer.close()


def _summary_writer(folder: Path, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError(
            "logging.tensorboard=True needs TensorBoard: pip install 'dyndis-learn[tensorboard]'."
        ) from exc
    return SummaryWriter(str(folder), purge_step=purge_step)
