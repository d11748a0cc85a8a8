"""Observation noise: independent integer noise added to every pixel and channel of an observation.

With ``observation_noise=k`` (an int in 0..255; 0, the default, is off), each observation is its state's image
plus a draw, independently per pixel and channel, from the integer uniform distribution on ``[-k, k]``
intensity levels of the 0..255 scale, clipped back to 0..255. One observation takes one call
``rng.integers(-k, k + 1, size=(H, W, C), dtype=np.int16)`` of the environment's generator (``np_random``
for a single env, sub-env ``i``'s own generator in a native vector env), so ``reset(seed=...)`` fixes the
noise too, and a vector env's sub-env reproduces the single env seeded like it. With ``k = 0`` nothing is
drawn: observations and the random stream are exactly those of an env without the option.

Only observations are noisy. The clean images of states (``render_states``, ``render()``, the frame table)
and the goal images of Goal tasks (``achieved_goal``, ``desired_goal``) are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from dyndis_envs.validation import check_int

__all__ = ["MAX_OBSERVATION_NOISE", "add_noise", "check_observation_noise"]

#: The largest ``observation_noise``: noise of +-255 levels spans the whole intensity scale.
MAX_OBSERVATION_NOISE = 255


def check_observation_noise(value: Any) -> int:
    """Validate ``observation_noise``: an integer number of intensity levels in [0, 255] (0: no noise).

    Raises:
        ValueError: For anything else, e.g. "`observation_noise` must be an integer in [0, 255], got 2.5.".
    """
    return check_int("observation_noise", value, minimum=0, maximum=MAX_OBSERVATION_NOISE)


def add_noise(
    images: npt.NDArray[np.uint8], level: int, rngs: Sequence[np.random.Generator]
) -> npt.NDArray[np.uint8]:
    """Noisy copies of a batch of images: image ``j`` gets uniform noise on ``[-level, level]`` from ``rngs[j]``.

    Args:
        images: uint8 of shape (B, H, W, C); not modified.
        level: The noise amplitude in intensity levels, >= 1.
        rngs: One generator per image; each makes exactly one draw of shape (H, W, C).

    Returns:
        A new uint8 array of shape (B, H, W, C): ``clip(image + noise, 0, 255)``.
    """
    noisy = np.empty(images.shape, dtype=np.int16)
    for j, rng in enumerate(rngs):
        noisy[j] = rng.integers(-level, level + 1, size=images.shape[1:], dtype=np.int16)
    noisy += images
    np.clip(noisy, 0, 255, out=noisy)
    return noisy.astype(np.uint8)
