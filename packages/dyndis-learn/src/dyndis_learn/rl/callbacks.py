"""SB3 callbacks that record task success per finished episode."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["SuccessRecorder", "steps_to_success_rate"]


class SuccessRecorder(BaseCallback):
    """Record, for every finished episode, the env steps taken so far and whether it succeeded.

    An episode succeeds when it terminates (the task's goal reached) rather than being truncated.

    Attributes:
        episodes: ``(num_timesteps_at_end, success)`` per finished episode, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[tuple[int, bool]] = []

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if done:
                self.episodes.append((self.num_timesteps, not info.get("TimeLimit.truncated", False)))
        return True


def steps_to_success_rate(episodes: list[tuple[int, bool]], rate: float = 0.9, window: int = 50) -> int | None:
    """The first env step at which the success rate over the last ``window`` episodes reaches ``rate``."""
    successes = np.array([s for _, s in episodes], dtype=float)
    for end in range(window, len(episodes) + 1):
        if successes[end - window : end].mean() >= rate:
            return episodes[end - 1][0]
    return None
