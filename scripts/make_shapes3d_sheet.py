"""Write the Shapes3D contact sheet: one row per factor varying over all its values, plus random samples.

Usage: python scripts/make_shapes3d_sheet.py [--out docs/images/shapes3d_factors.png]
       python scripts/make_shapes3d_sheet.py --backend file --data-path 3dshapes.h5 --out real.png
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw, ImageFont

import dyndis_envs  # noqa: F401  (registers the ids)
from dyndis_envs.preview import save_png

LABEL_WIDTH = 150
#: The state every factor row starts from (value indices): red floor, blue walls, green object, middle
#: scale, a cube, camera 17 degrees to the left (one corner of the room in view).
BASE = {"floor_hue": 0, "wall_hue": 6, "object_hue": 3, "scale": 4, "shape": 0, "orientation": 4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images/shapes3d_factors.png", help="output PNG")
    parser.add_argument("--backend", default="procedural", choices=["procedural", "file", "auto"])
    parser.add_argument("--data-path", default=None, help="the real 3dshapes.h5 (file backend)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--scale", type=int, default=2, help="pixel upscaling of the sheet")
    parser.add_argument("--samples", type=int, default=15, help="random states in the last row")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random states")
    args = parser.parse_args()

    env = gym.make(
        "DynDis/Shapes3D-v0", backend=args.backend, data_path=args.data_path, image_size=args.image_size,
        max_table_bytes=0,
    ).unwrapped
    space = env.factor_space
    base = np.array([min(BASE[name], size - 1) for name, size in zip(space.names, space.sizes)])
    rows: list[tuple[str, np.ndarray]] = []
    for k, (name, size) in enumerate(zip(space.names, space.sizes)):
        states = np.repeat(base[None], size, axis=0)
        states[:, k] = np.arange(size)
        rows.append((name, env.frames.batch(states)))
    rng = np.random.default_rng(args.seed)
    samples = rng.integers(0, space.sizes, (args.samples, space.n_factors))
    rows.append(("random samples", env.frames.batch(samples)))
    save_png(_sheet(rows, args.image_size, args.scale), args.out)
    print(f"wrote {args.out}")


def _sheet(rows: list[tuple[str, np.ndarray]], size: int, scale: int) -> np.ndarray:
    """Rows of images on a white canvas with a label on the left of each row."""
    pad = 2
    columns = max(len(images) for _, images in rows)
    width = LABEL_WIDTH // scale + columns * (size + pad)
    canvas = np.full((len(rows) * (size + pad), width, 3), 255, dtype=np.uint8)
    for i, (_, images) in enumerate(rows):
        y = i * (size + pad)
        for j, image in enumerate(images):
            x = LABEL_WIDTH // scale + j * (size + pad)
            canvas[y : y + size, x : x + size] = image
    picture = Image.fromarray(canvas)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=14)
    for i, (label, _) in enumerate(rows):
        draw.text((6, (i * (size + pad) + size // 2) * scale), label, fill=(60, 60, 60), font=font, anchor="lm")
    return np.asarray(picture)


if __name__ == "__main__":
    main()
