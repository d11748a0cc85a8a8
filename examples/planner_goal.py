"""Solve GridWorldGoal episodes by planning with the learned rotations (no RL training).

Usage: python examples/planner_goal.py --model runs/quickstart/model.safetensors [--episodes 20]
"""

import argparse

import gymnasium as gym

import dyndis_envs  # noqa: F401  (registers the ids)
from dyndis_learn import load_model
from dyndis_learn.planner import LatentPlanner

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", required=True, help="a GridWorld learner written by Learner.save")
parser.add_argument("--episodes", type=int, default=20)
args = parser.parse_args()

planner = LatentPlanner.from_model(load_model(args.model))
env = gym.make("DynDis/GridWorldGoal-v0")
successes = 0
for seed in range(args.episodes):
    obs, info = env.reset(seed=seed)
    terminated = truncated = False
    while not (terminated or truncated):
        action = planner.act(obs)
        if action is None:
            break
        obs, reward, terminated, truncated, info = env.step(action)
    successes += int(terminated)
print(f"reached the goal in {successes} of {args.episodes} episodes")
