"""Goal tasks with hindsight: SB3 DQN + HER from pixels vs from the frozen learned encoder's latent goals.

Worlds (``--world``): ``gridworld``, ``DynDis/GridWorldGoal-v0`` on the default 5 x 5 torus (25 states);
``shapes3d``, ``DynDis/Shapes3DGoal-v0`` with floor hue, wall hue and orientation active (1,500 states).
Every episode starts in a random state with a random goal state, shown as an image; reward 1 and the end of
the episode on reaching it, else the time limit (2x the state space's diameter, plus 2).

Methods, DQN with HER (``future`` goals, 4 per transition) and the same hyperparameters (``DQN_KWARGS``), over
the worlds' native Goal vector envs (:func:`~dyndis_learn.rl.make_sb3_vec_env`):

(a) ``pixels``: ``MultiInputPolicy`` on the three images (observation, achieved and desired goal): SB3's
    ``CombinedExtractor``, a NatureCNN per image; HER relabels with the env's ``compute_reward`` on images.
(b) ``latent goals``: the frozen encoder of a world model trained with the learner's defaults (``--model``,
    else trained here) maps the three images to latent points
    (:class:`~dyndis_learn.rl.VecLatentObservation`); HER relabels with the latent ``compute_reward`` (the
    state whose encoding is nearest); ``MultiInputPolicy`` on the latents.

Measured: success rate (last 50 episodes) vs env steps as a PNG, and the env steps until it first reaches
80%. Target (issue 17): (b) reaches 80% success >= 2x sooner than (a).

Usage: python -m benchmarks.her_goal [--world gridworld] [--steps 50000] [--seeds 0 1 2] [--jobs 2] [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN, HerReplayBuffer

import dyndis_envs  # noqa: F401  (registers the ids)
from benchmarks._common import RESULTS, SHAPES3D_SUBSET, write_json
from benchmarks.planner_scale import diameter
from benchmarks.rl_reach import plot, run_methods, saved_config, speed_ratio, train_model
from dyndis_learn import load_model
from dyndis_learn.rl import SuccessRecorder, VecLatentObservation, make_sb3_vec_env, steps_to_success_rate

METHODS = ("pixels", "latent goals")
#: The worlds: the plain env and its kwargs (its Goal task is ``<Name>Goal-v0``), and the world model's steps.
WORLDS: dict[str, dict[str, Any]] = {
    "gridworld": {"env_id": "DynDis/GridWorld-v0", "env_kwargs": {}, "steps": 600},
    "shapes3d": {"env_id": "DynDis/Shapes3D-v0", "env_kwargs": {"factors": SHAPES3D_SUBSET}, "steps": 600},
}
#: DQN with HER: a replay buffer of 20k transitions (three 64 x 64 RGB images each, twice: 1.5 GB for pixels).
DQN_KWARGS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "buffer_size": 20_000,
    "learning_starts": 1_000,
    "batch_size": 64,
    "train_freq": 4,
    "target_update_interval": 1_000,
    "exploration_fraction": 0.2,
    "exploration_final_eps": 0.05,
    "replay_buffer_kwargs": {"n_sampled_goal": 4, "goal_selection_strategy": "future"},
}
SUCCESS = 0.8


def run_dqn(
    method: str,
    seed: int,
    task: str,
    env_kwargs: dict[str, Any],
    model_path: Path,
    steps: int,
    n_envs: int,
    threads: int,
) -> dict[str, Any]:
    """One DQN + HER run of ``steps`` env steps: its episodes' (end step, success) and the steps to 80%."""
    torch.set_num_threads(threads)  # also in a worker process
    env = make_sb3_vec_env(task, n_envs, seed=seed, **env_kwargs)
    if method == "latent goals":
        env = VecLatentObservation(env, load_model(model_path))
    agent = DQN("MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer, seed=seed, **DQN_KWARGS)
    recorder = SuccessRecorder()
    start = time.perf_counter()
    agent.learn(steps, callback=recorder)
    seconds = time.perf_counter() - start
    final = float(np.mean([ok for _, ok in recorder.episodes[-50:]])) if recorder.episodes else 0.0
    return {
        "method": method,
        "seed": seed,
        "steps_to_80": steps_to_success_rate(recorder.episodes, SUCCESS),
        "final_success": final,
        "seconds": seconds,
        "episodes": recorder.episodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke run)")
    parser.add_argument("--world", choices=list(WORLDS), default="gridworld")
    parser.add_argument("--model", type=Path, help="a saved learner of the world (default: train one here)")
    parser.add_argument("--steps", type=int, default=50_000, help="DQN env steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (the CPU is shared)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    args = parser.parse_args()
    world = WORLDS[args.world]
    model_steps, name = world["steps"], f"her_goal_{args.world}"
    if args.quick:  # a smoke run: its files get their own names, so they never replace a real run's
        args.steps, args.seeds, model_steps, name = 1500, [0], 20, f"{name}_quick"
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(exist_ok=True)
    total_start = time.perf_counter()

    model_path = args.model or train_model(
        world, world["env_kwargs"], RESULTS / f"{name}.safetensors", args.threads, model_steps
    )
    trained = saved_config(model_path)
    if trained.env.id != world["env_id"]:
        raise ValueError(f"`--model` must be a learner of {world['env_id']}, got one of {trained.env.id}.")
    task = trained.env.id.replace("-v0", "Goal-v0")
    sizes = gym.make(trained.env.id, **trained.env.kwargs).unwrapped.factor_space.sizes
    env_kwargs = {**trained.env.kwargs, "max_episode_steps": 2 * diameter(sizes) + 2}

    jobs = [
        (m, seed, task, env_kwargs, model_path, args.steps, args.n_envs, args.threads)
        for m in args.methods
        for seed in args.seeds
    ]
    runs, medians, reached = run_methods(run_dqn, jobs, args.methods, args.jobs, args.steps, "steps_to_80", "80%")
    if set(METHODS) <= set(runs):
        print(f"(a)/(b) = {speed_ratio(medians, reached, *METHODS)} (target >= 2)")

    png = RESULTS / f"{name}.png"
    plot(runs, args.steps, f"DQN + HER on {task.split('/')[1]}, {len(args.seeds)} seeds", png, target=SUCCESS)
    total = time.perf_counter() - total_start
    payload = {
        "task": task,
        "env_kwargs": env_kwargs,
        "model": str(model_path),
        "dqn": DQN_KWARGS,
        "n_envs": args.n_envs,
        "steps": args.steps,
        "threads": args.threads,
        "median_steps_to_80": medians,
        "all_reached_80": reached,
        "runs": {m: [{k: v for k, v in r.items() if k != "episodes"} for r in rs] for m, rs in runs.items()},
        "png": str(png),
        "total_seconds": total,
    }
    print(f"wrote {write_json(name, payload)} and {png} in {total:.0f} s")


if __name__ == "__main__":
    main()
