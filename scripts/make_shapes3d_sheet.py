"""Write the Shapes3D contact sheet: one row per factor varying over all its values, plus random samples.

Usage: python scripts/make_shapes3d_sheet.py [--out docs/images/shapes3d_factors.png]
       python scripts/make_shapes3d_sheet.py --backend file --data-path 3dshapes.h5 --out real.png
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import dyndis_envs  # noqa: F401  (registers the ids)
from dyndis_envs.preview import factor_sheet, save_png

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
    base = [min(BASE[name], size - 1) for name, size in zip(space.names, space.sizes)]
    save_png(factor_sheet(env, base, n_random=args.samples, seed=args.seed, scale=args.scale), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
