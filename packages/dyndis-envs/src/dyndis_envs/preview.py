"""Pictures of an environment: a factor contact sheet and a random-rollout GIF (Pillow only)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from dyndis_envs.factor_env import FactorEnv

__all__ = ["factor_sheet", "rollout_frames", "save_gif", "save_png", "tile"]


def tile(rows: Sequence[npt.NDArray[np.uint8]], pad: int = 2, fill: int = 96) -> npt.NDArray[np.uint8]:
    """Lay out rows of images (each (n_i, H, W, C)) on one canvas, left-aligned, with ``pad`` pixels between."""
    h, w, c = rows[0].shape[1:]
    width = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + pad) + pad, width * (w + pad) + pad, c), fill, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y : y + h, x : x + w] = image
    return canvas


def factor_sheet(env: FactorEnv, n_columns: int = 10, seed: int = 0) -> npt.NDArray[np.uint8]:
    """One row per active factor stepping through its values from a random state, then a row of random states.

    Args:
        env: The (unwrapped) environment.
        n_columns: Images per row (a factor with fewer values shows them all).
        seed: Seed of the random states.
    """
    space = env.factor_space
    rng = np.random.default_rng(seed)
    base = np.asarray(space.sample(rng))
    rows = []
    for k in space.active:
        count = min(n_columns, space.sizes[k])
        values = np.linspace(0, space.sizes[k] - 1, count).round().astype(np.int64)
        states = np.repeat(base[None], count, axis=0)
        states[:, k] = values
        rows.append(env.frames.batch(states))
    random_states = rng.integers(0, space.sizes, size=(n_columns, space.n_factors))
    rows.append(env.frames.batch(random_states))
    return tile(rows)


def rollout_frames(env: FactorEnv, n_steps: int, seed: int = 0) -> npt.NDArray[np.uint8]:
    """Frames of a random-action rollout of ``n_steps`` from ``reset(seed=seed)``, shape (n_steps + 1, H, W, C)."""
    obs, _ = env.reset(seed=seed)
    frames = [obs]
    for action in np.random.default_rng(seed).integers(0, env.action_space.n, n_steps):
        frames.append(env.step(int(action))[0])
    return np.stack(frames)


def _to_pil(image: npt.NDArray[np.uint8], scale: int) -> Image.Image:
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    return picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)


def _atomic_save(path: str | os.PathLike[str], save) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save(tmp)
    os.replace(tmp, path)
    return path


def save_png(image: npt.NDArray[np.uint8], path: str | os.PathLike[str], scale: int = 1) -> Path:
    """Write an (H, W, C) uint8 image as PNG, atomically, upscaled by ``scale``."""
    return _atomic_save(path, lambda tmp: _to_pil(image, scale).save(tmp, format="PNG"))


def save_gif(frames: npt.NDArray[np.uint8], path: str | os.PathLike[str], fps: int = 8, scale: int = 1) -> Path:
    """Write frames (T, H, W, C) as a looping GIF, atomically."""
    pictures = [_to_pil(f, scale) for f in frames]
    return _atomic_save(
        path,
        lambda tmp: pictures[0].save(
            tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=int(1000 / fps), loop=0
        ),
    )
