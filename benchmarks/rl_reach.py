"""RL on a GridWorld Reach task: PPO from pixels vs the frozen learned encoder vs the true factors.

Trains (or loads, ``--model``) a DynDis world model on the plain GridWorld, then runs PPO on
``DynDis/GridWorldReach-v0`` with (a) NatureCNN on pixels, (b) the frozen learned encoder
(:class:`~dyndis_learn.rl.LatentFeaturesExtractor`), (c) the one-hot true factors; several seeds each.
Writes the success rate vs env steps as a PNG, and a table of the env steps until 90% of the last 50
episodes succeed. Also measures the latent planner on Goal tasks: success rate and path length vs the
shortest path.

Usage: python -m benchmarks.rl_reach [--quick] [--grid 7] [--steps 60000] [--seeds 0 1 2] [--model PATH]
Targets: (b) reaches 90% success >= 3x sooner than (a) and within 1.5x of (c); the planner succeeds in
>= 99% of episodes with mean path length <= 1.1x the shortest.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

import dyndis_envs  # noqa: F401  (registers the ids)
from benchmarks._common import RESULTS, print_table, write_json
from dyndis_learn import Learner
from dyndis_learn.planner import LatentPlanner
from dyndis_learn.rl import LatentFeaturesExtractor, SuccessRecorder, make_sb3_vec_env, steps_to_success_rate
from dyndis_learn.wrappers import FactorOneHotObservation

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TASK = "DynDis/GridWorldReach-v0"
PPO_KWARGS = {"n_steps": 128, "batch_size": 256, "n_epochs": 4, "learning_rate": 2.5e-4, "ent_coef": 0.01}


def make_agent(method: str, env_kwargs: dict[str, Any], model_path: Path, n_envs: int, seed: int) -> PPO:
    if method == "one-hot factors":
        env = DummyVecEnv([lambda: FactorOneHotObservation(gym.make(TASK, **env_kwargs)) for _ in range(n_envs)])
        env.seed(seed)
        return PPO("MlpPolicy", env, seed=seed, **PPO_KWARGS)
    env = make_sb3_vec_env(TASK, n_envs, seed=seed, **env_kwargs)
    if method == "pixels (NatureCNN)":
        return PPO("CnnPolicy", env, seed=seed, **PPO_KWARGS)
    extractor = {"features_extractor_class": LatentFeaturesExtractor,
                 "features_extractor_kwargs": {"model_path": str(model_path)}}
    return PPO("CnnPolicy", env, seed=seed, policy_kwargs=extractor, **PPO_KWARGS)


def rolling_success(episodes: list[tuple[int, bool]], grid: np.ndarray, window: int = 50) -> np.ndarray:
    """Success rate of the last ``window`` episodes finished by each env step of ``grid``."""
    steps = np.array([s for s, _ in episodes])
    success = np.array([float(ok) for _, ok in episodes])
    out = np.zeros(len(grid))
    for i, step in enumerate(grid):
        done = success[steps <= step][-window:]
        out[i] = done.mean() if len(done) else 0.0
    return out


def shortest_path(start: np.ndarray, goal: np.ndarray, sizes: tuple[int, ...]) -> int:
    d = np.abs(np.asarray(start) - np.asarray(goal))
    return int(np.minimum(d, np.asarray(sizes) - d).sum())


def evaluate_planner(model_path: Path, env_id: str, env_kwargs: dict[str, Any], episodes: int) -> dict[str, float]:
    """Success rate and mean path length / shortest path of the latent planner acting on a Goal task."""
    planner = LatentPlanner.from_model(Learner.load(model_path).model)
    env = gym.make(env_id, **env_kwargs)
    sizes = env.unwrapped.factor_space.sizes
    successes, ratios = 0, []
    for seed in range(episodes):
        obs, info = env.reset(seed=seed)
        shortest = shortest_path(info["factors"], info["goal_factors"], sizes)
        for length in range(1, env.spec.max_episode_steps + 1):
            action = planner.act(obs)
            if action is None:  # the model thinks it is there: it is not, or the episode would have ended
                break
            obs, _, terminated, truncated, info = env.step(action)
            if terminated:
                successes += 1
                ratios.append(length / shortest)
                break
            if truncated:
                break
    mean_ratio = float(np.mean(ratios)) if ratios else float("nan")
    return {"success_rate": successes / episodes, "mean_path_over_shortest": mean_ratio}


def train_model(env_id: str, env_kwargs: dict[str, Any], out: Path, latent_dim: int, seed: int) -> Path:
    learner = Learner.from_env(env_id, env_kwargs, seed=seed, model={"latent_dim": latent_dim})
    start = time.perf_counter()
    learner.train(progress=False)
    print(f"trained the {env_id} model in {time.perf_counter() - start:.0f} s")
    return learner.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke run)")
    parser.add_argument("--grid", type=int, default=7, help="GridWorld grid size (grid x grid)")
    parser.add_argument("--steps", type=int, default=60_000, help="PPO env steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--model", type=Path, help="a saved GridWorld learner (default: train one)")
    parser.add_argument("--shapes3d-model", type=Path, help="a saved Shapes3D learner for the planner")
    parser.add_argument("--planner-episodes", type=int, default=200)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.seeds, args.planner_episodes = 2048, [0], 10

    RESULTS.mkdir(exist_ok=True)
    world = {"grid_shape": (args.grid, args.grid)}
    model_path = args.model or train_model(
        "DynDis/GridWorld-v0", world, RESULTS / "rl_reach_gridworld.safetensors", 4, 0
    )
    env_kwargs = {**world, "max_episode_steps": 4 * args.grid}

    methods = ["pixels (NatureCNN)", "frozen learned encoder", "one-hot factors"]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    rows = []
    for method in methods:
        for seed in args.seeds:
            agent = make_agent(method, env_kwargs, model_path, args.n_envs, seed)
            recorder = SuccessRecorder()
            start = time.perf_counter()
            agent.learn(args.steps, callback=recorder)
            seconds = time.perf_counter() - start
            to_90 = steps_to_success_rate(recorder.episodes, 0.9)
            final = float(np.mean([ok for _, ok in recorder.episodes[-50:]])) if recorder.episodes else 0.0
            runs[method].append({"seed": seed, "steps_to_90": to_90, "final_success": final, "seconds": seconds,
                                 "episodes": recorder.episodes})
            rows.append([method, seed, to_90 if to_90 is not None else f"> {args.steps}", final, seconds])
            print(rows[-1], flush=True)
    print_table(["observation", "seed", "env steps to 90%", "final success", "wall s"], rows)

    grid = np.linspace(0, args.steps, 100)
    figure, axis = plt.subplots(figsize=(7, 4))
    for method in methods:
        curves = np.stack([rolling_success(run["episodes"], grid) for run in runs[method]])
        axis.plot(grid, curves.mean(0), label=method)
        axis.fill_between(grid, curves.min(0), curves.max(0), alpha=0.2)
    axis.axhline(0.9, color="grey", linestyle=":")
    axis.set(xlabel="env steps", ylabel="success rate (last 50 episodes)",
             title=f"PPO on GridWorldReach {args.grid}x{args.grid}, {len(args.seeds)} seeds")
    axis.legend()
    figure.tight_layout()
    png = RESULTS / "rl_reach.png"
    figure.savefig(png, dpi=120)

    planner = {"GridWorldGoal": evaluate_planner(model_path, "DynDis/GridWorldGoal-v0", world, args.planner_episodes)}
    if args.shapes3d_model:
        learner = Learner.load(args.shapes3d_model)
        planner["Shapes3DGoal"] = evaluate_planner(
            args.shapes3d_model, "DynDis/Shapes3DGoal-v0", learner.config.env_kwargs, args.planner_episodes
        )
    print_table(["task", "success rate", "mean path / shortest"],
                [[k, v["success_rate"], v["mean_path_over_shortest"]] for k, v in planner.items()])
    medians = {m: [r["steps_to_90"] for r in runs[m]] for m in methods}
    payload = {"task": TASK, "env_kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in env_kwargs.items()},
               "ppo": PPO_KWARGS, "steps": args.steps, "steps_to_90": medians,
               "runs": {m: [{k: v for k, v in r.items() if k != "episodes"} for r in rs] for m, rs in runs.items()},
               "planner": planner, "png": str(png)}
    print(f"wrote {write_json('rl_reach', payload)} and {png}")


if __name__ == "__main__":
    main()
