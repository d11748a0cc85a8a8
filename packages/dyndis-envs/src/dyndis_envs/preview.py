"""Pictures of an environment: a factor contact sheet and a random-rollout GIF (Pillow only)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from dyndis_envs._files import atomic_write
from dyndis_envs.factor_env import FactorEnv

__all__ = ["factor_rows", "factor_sheet", "labelled_sheet", "rollout_frames", "save_gif", "save_png"]


def labelled_sheet(
    rows: Sequence[tuple[str, npt.NDArray[np.uint8]]], scale: int = 2, label_width: int = 150, pad: int = 2
) -> npt.NDArray[np.uint8]:
    """Rows of images (each (n_i, H, W, C)) on a white canvas, each with a label on its left, upscaled.

    Args:
        rows: (label, images) per row; rows may have different lengths.
        scale: Pixel upscaling of the sheet (nearest neighbour, so pixels stay sharp).
        label_width: Width of the label column, in pixels of the upscaled sheet.
        pad: Pixels between images, before upscaling.
    """
    size, width_1, channels = rows[0][1].shape[1:]
    left = label_width // scale
    columns = max(len(images) for _, images in rows)
    canvas = np.full((len(rows) * (size + pad), left + columns * (width_1 + pad), 3), 255, dtype=np.uint8)
    for i, (_, images) in enumerate(rows):
        for j, image in enumerate(images):
            y, x = i * (size + pad), left + j * (width_1 + pad)
            canvas[y : y + size, x : x + width_1] = image if channels == 3 else image[..., :1]
    picture = Image.fromarray(canvas)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=14)
    for i, (label, _) in enumerate(rows):
        draw.text((6, (i * (size + pad) + size // 2) * scale), label, fill=(60, 60, 60), font=font, anchor="lm")
    return np.asarray(picture)


def factor_rows(
    env: FactorEnv, base: Sequence[int] | None = None, n_random: int = 10, seed: int = 0
) -> list[tuple[str, npt.NDArray[np.uint8]]]:
    """One row per active factor stepping through all its values from ``base``, then a row of random states.

    Args:
        env: The (unwrapped) environment.
        base: The state each factor row starts from (default: a random state).
        n_random: Images in the row of random states.
        seed: Seed of the random states.
    """
    space = env.factor_space
    rng = np.random.default_rng(seed)
    start = np.asarray(base if base is not None else space.sample(rng), dtype=np.int64)
    rows = []
    for k in space.active:
        states = np.repeat(start[None], space.sizes[k], axis=0)
        states[:, k] = np.arange(space.sizes[k])
        rows.append((space.names[k], env.frames.batch(states)))
    random_states = rng.integers(0, space.sizes, size=(n_random, space.n_factors))
    rows.append(("random samples", env.frames.batch(random_states)))
    return rows


def factor_sheet(env: FactorEnv, base: Sequence[int] | None = None, n_random: int = 10, seed: int = 0,
                 scale: int = 2) -> npt.NDArray[np.uint8]:
    """The contact sheet of :func:`factor_rows`, labelled with the factor names."""
    return labelled_sheet(factor_rows(env, base, n_random, seed), scale=scale)


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


def save_png(image: npt.NDArray[np.uint8], path: str | os.PathLike[str], scale: int = 1) -> Path:
    """Write an (H, W, C) uint8 image as PNG, atomically, upscaled by ``scale``; creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as file:
        _to_pil(image, scale).save(file, format="PNG")
    return path


def save_gif(frames: npt.NDArray[np.uint8], path: str | os.PathLike[str], fps: int = 8, scale: int = 1) -> Path:
    """Write frames (T, H, W, C) as a looping GIF, atomically; creates the folder."""
    pictures = [_to_pil(f, scale) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as file:
        pictures[0].save(
            file, format="GIF", save_all=True, append_images=pictures[1:], duration=int(1000 / fps), loop=0
        )
    return path
