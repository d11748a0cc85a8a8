"""Write the Cars3D contact sheet: a full azimuth turn, the elevations, and many different cars.

Usage: python scripts/cars3d_contact_sheet.py [--out docs/images/cars3d_factors.png] [--backend file --data-path cars/]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw, ImageFont

import dyndis_envs  # noqa: F401  (registers the ids)
from dyndis_envs.preview import save_png

COLUMNS = 12
LABEL_WIDTH = 190


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images/cars3d_factors.png", help="output PNG")
    parser.add_argument("--backend", default="procedural", choices=["procedural", "file", "auto"])
    parser.add_argument("--data-path", default=None, help="the cars/ folder of the real data (file backend)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--scale", type=int, default=2, help="pixel upscaling of the sheet")
    parser.add_argument("--car", type=int, default=11, help="the car of the azimuth and elevation rows (< 48)")
    args = parser.parse_args()

    env = gym.make(
        "DynDis/Cars3D-v0", backend=args.backend, data_path=args.data_path, image_size=args.image_size, cache=False,
        factors={"object": 4 * COLUMNS},
    ).unwrapped
    frames = env.frames.batch
    car = args.car
    rows: list[tuple[str, np.ndarray]] = []
    for first in (0, COLUMNS):  # elevation 10 degrees, azimuth 0, 15, ..., 345
        azimuths = np.arange(first, first + COLUMNS)
        label = f"azimuth {15 * first}-{15 * (first + COLUMNS - 1)} deg"
        rows.append((label, frames(np.stack([np.ones(COLUMNS, int), azimuths, np.full(COLUMNS, car)], 1))))
    views = [(e, a) for a in (1, 3, 6) for e in range(4)]  # elevations 0-30 at azimuths 15, 45, 90
    rows.append(("elevation 0-30 deg, x3 azimuths", frames(np.array([[e, a, car] for e, a in views]))))
    for row in range(4):  # 48 different cars, front-left three-quarter view at elevation 20 degrees
        objects = np.arange(row * COLUMNS, (row + 1) * COLUMNS)
        label = f"objects {objects[0]}-{objects[-1]}"
        rows.append((label, frames(np.stack([np.full(COLUMNS, 2), np.full(COLUMNS, 4), objects], 1))))
    save_png(_sheet(rows, args.image_size, args.scale), args.out)
    print(f"wrote {args.out}")


def _sheet(rows: list[tuple[str, np.ndarray]], size: int, scale: int) -> np.ndarray:
    """Rows of images on a white canvas with a label on the left of each row."""
    pad = 2
    image_rows = [np.concatenate(list(images), axis=1) for _, images in rows]
    width = LABEL_WIDTH // scale + max(r.shape[1] for r in image_rows)
    canvas = np.full((len(rows) * (size + pad), width, 3), 255, dtype=np.uint8)
    for i, image_row in enumerate(image_rows):
        y = i * (size + pad)
        canvas[y : y + size, LABEL_WIDTH // scale : LABEL_WIDTH // scale + image_row.shape[1]] = image_row
    picture = Image.fromarray(canvas)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=14)
    for i, (label, _) in enumerate(rows):
        draw.text((6, (i * (size + pad) + size // 2) * scale), label, fill=(60, 60, 60), font=font, anchor="lm")
    return np.asarray(picture)


if __name__ == "__main__":
    main()
