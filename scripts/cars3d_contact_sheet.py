"""Write the Cars3D contact sheet: a full azimuth turn, the elevations, and many different cars.

Usage: python scripts/cars3d_contact_sheet.py [--out docs/images/cars3d_factors.png] [--backend file --data-path cars/]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import dyndis_envs  # noqa: F401  (registers the ids)
from dyndis_envs.preview import labelled_sheet, save_png

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
    save_png(labelled_sheet(rows, scale=args.scale, label_width=LABEL_WIDTH), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
