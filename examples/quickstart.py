"""Train a rotation world model on GridWorld 5x5, evaluate it and imagine a long rollout (about 5 minutes on 2 cores).

Usage: python examples/quickstart.py [--steps 1000] [--out runs/quickstart]
"""

import argparse

import gymnasium as gym
import numpy as np

import dyndis_envs  # noqa: F401  (registers the ids)
from dyndis_learn import Learner

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=None, help="SGD steps (default: the recipe's)")
parser.add_argument("--out", default="runs/quickstart")
args = parser.parse_args()

learner = Learner.from_env("DynDis/GridWorld-v0", run_dir=args.out)
learner.train(args.steps)
print(f"report: {learner.report()}")
path = learner.save(f"{args.out}/model.safetensors")

# The learned rotations predict 100 steps ahead from one encoded frame.
env = gym.make("DynDis/GridWorld-v0")
obs, _ = env.reset(seed=123)
actions = np.random.default_rng(0).integers(0, env.action_space.n, 100)
imagined = Learner.load(path).predict(obs[None], actions[None])[0]
for action in actions:
    obs, *_ = env.step(int(action))
print(f"mean absolute pixel error after 100 imagined steps: {np.abs(imagined[-1].astype(int) - obs).mean():.2f} / 255")
