"""Write a factor contact sheet (PNG) and a random-rollout GIF of any DynDis environment.

Usage: python scripts/preview_env.py --env DynDis/GridWorld-v0 --out outputs/preview [--env-kwargs JSON]
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym

import dyndis_envs  # noqa: F401  (registers the ids)
from dyndis_envs.preview import factor_sheet, rollout_frames, save_gif, save_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="DynDis/GridWorld-v0", help="environment id")
    parser.add_argument("--env-kwargs", default="{}", type=json.loads, help="JSON keyword arguments of gym.make")
    parser.add_argument("--out", default="outputs/preview", help="output folder")
    parser.add_argument("--steps", type=int, default=60, help="length of the random rollout")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env = gym.make(args.env, **args.env_kwargs).unwrapped
    name = args.env.split("/")[-1].split("-")[0].lower()
    sheet = save_png(factor_sheet(env, seed=args.seed), f"{args.out}/{name}_factors.png")
    gif = save_gif(rollout_frames(env, args.steps, seed=args.seed), f"{args.out}/{name}_rollout.gif", scale=4)
    print(f"wrote {sheet} and {gif}")


if __name__ == "__main__":
    main()
