"""RL on Reach tasks: PPO from pixels vs the frozen learned encoder vs the true factors.

Worlds (``--world``, :data:`WORLDS`): ``gridworld``, ``DynDis/GridWorldReach-v0`` on a 13 x 13 torus where the
object's colour and the background's colour are factors too (5 each, cyclic; 4,225 states, 8 actions);
``shapes3d``, ``DynDis/Shapes3DReach-v0`` with floor, wall and object hue and orientation active (15,000
states); ``cars3d``, ``DynDis/Cars3DReach-v0`` with one car (4 elevations x 24 azimuths) and ``cars3d-8`` with
eight. From a random state, reach the target state (the middle value of every factor) within 2x the state
space's diameter, plus 2; reward 1 on arrival; 64 x 64 RGB images. On position-only grids
(``--position-only``) NatureCNN is as sample-efficient as the encoder (9 x 9 and 21 x 21 measured): its
images are a one-hot of the cell. The colours are what makes GridWorld's pixels hard for a real reason: a
background step changes every pixel, an object-colour step a few, and the policy must act on each factor
the same way under all of the others; the encoder's torus gives it each factor's direction to the target
linearly, whatever the others.

Methods, PPO with the same hyperparameters (``PPO_KWARGS``), 3 seeds each:

(a) ``pixels (NatureCNN)``: SB3's ``CnnPolicy`` on the images.
(b) ``frozen learned encoder``: the encoder of a DynDis world model trained on the plain world (``--model``,
    else trained here with the learner's defaults and the world's settings), frozen, maps each image to its
    point on the latent torus (:class:`~dyndis_learn.rl.VecLatentObservation`: one batched ``no_grad``
    encode per env step); then ``MlpPolicy``. :class:`~dyndis_learn.rl.LatentFeaturesExtractor` in a
    ``CnnPolicy`` gives the same features but re-encodes every minibatch in every PPO epoch.
(c) ``one-hot factors``: ``MlpPolicy`` on the one-hot true state (the best state an encoder could give).

Measured: success rate (last 50 episodes) vs env steps as a PNG and, per run, in the JSON (61 even points), and the
env steps until that rate first reaches 90%. Then the latent planner on the world's Goal task: success rate and
path length vs the shortest path. Targets: (b) reaches 90% success >= 3x sooner than (a) and within 1.5x of (c);
the planner succeeds in >= 99% of episodes with mean path length <= 1.1x the shortest.

Usage: python -m benchmarks.rl_reach [--world gridworld] [--quick] [--model PATH] [--shapes3d-model PATH]
    [--steps 300000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import dyndis_envs  # noqa: F401  (registers the ids)
from benchmarks._common import RESULTS, SHARED_WORLDS, print_table, write_json
from benchmarks.planner_scale import diameter, evaluate_planner
from dyndis_learn import Learner, TrainConfig, load_model
from dyndis_learn.checkpoint import read_checkpoint
from dyndis_learn.rl import SuccessRecorder, VecLatentObservation, make_sb3_vec_env, steps_to_success_rate
from dyndis_learn.wrappers import FactorOneHotObservation

matplotlib.use("Agg")
import matplotlib.pyplot as plt

METHODS = ("pixels (NatureCNN)", "frozen learned encoder", "one-hot factors")
#: SB3's Atari settings with a larger step size: at 2.5e-4 the MLPs of (b) and (c) needed ~2.5x more steps
#: (16k to 90%); pixels reached 90% in ~4.4k steps at 2.5e-4, 1e-3 and 3e-3 alike.
PPO_KWARGS = {"n_steps": 128, "batch_size": 256, "n_epochs": 4, "learning_rate": 1e-3, "ent_coef": 0.01}
#: The worlds (``--world``): the plain env and its kwargs (its Reach task is ``<Name>Reach-v0``), the world
#: model's settings beside the learner's defaults (``TrainConfig`` sections) and its SGD steps.
WORLDS: dict[str, dict[str, Any]] = {
    # a 13 x 13 grid whose object colour and background colour are factors too (``--grid`` sets the size);
    # the background changes every pixel: the encoder's instance norm (the default) lets it learn the position
    "gridworld": {
        "env_id": "DynDis/GridWorld-v0",
        "env_kwargs": {"grid_shape": [13, 13], "factors": {"colour": 5, "background": 5}},
        "steps": 600,
    },
    # floor, wall and object hue, orientation: orientation changes a tenth of the pixels a hue does
    "shapes3d": {**SHARED_WORLDS["shapes3d-4"], "steps": 600},
    "cars3d": {**SHARED_WORLDS["cars3d-1"], "steps": 600},
    "cars3d-8": {**SHARED_WORLDS["cars3d-8"], "steps": 1200},
}


def task_id(env_id: str) -> str:
    """The Reach task of a plain id: ``DynDis/<Name>-v0`` -> ``DynDis/<Name>Reach-v0``."""
    return env_id.replace("-v0", "Reach-v0")


def saved_config(model_path: Path) -> TrainConfig:
    """The training recipe stored in a saved learner (its environment id and keyword arguments)."""
    return TrainConfig.from_dict(read_checkpoint(model_path).config)


def train_model(world: dict[str, Any], env_kwargs: dict[str, Any], out: Path, threads: int, steps: int) -> Path:
    """Train the world model of the plain world with the learner's defaults and ``world["model"]``; save to ``out``."""
    env_id = world["env_id"]
    active = len(gym.make(env_id, **env_kwargs).unwrapped.factor_space.active)
    model = {**world.get("model", {}), "latent_dim": 2 * active}
    learner = Learner.from_env(env_id, env_kwargs, model=model, steps=steps, threads=threads)
    start = time.perf_counter()
    learner.train(progress=False)
    print(f"trained the {env_id} model ({env_kwargs}) in {time.perf_counter() - start:.0f} s")
    return learner.save(out)


def make_env(method: str, task: str, env_kwargs: dict[str, Any], model_path: Path, n_envs: int, seed: int) -> VecEnv:
    """The observations each method sees: images, latent points of the frozen encoder, or one-hot factors."""
    if method == "one-hot factors":
        env = DummyVecEnv([lambda: FactorOneHotObservation(gym.make(task, **env_kwargs)) for _ in range(n_envs)])
        env.seed(seed)
        return env
    images = make_sb3_vec_env(task, n_envs, seed=seed, **env_kwargs)
    return images if method == "pixels (NatureCNN)" else VecLatentObservation(images, load_model(model_path))


def run_ppo(method: str, seed: int, task: str, env_kwargs: dict[str, Any], model_path: Path, steps: int,
            n_envs: int, threads: int) -> dict[str, Any]:
    """One PPO run of ``steps`` env steps: its episodes' (end step, success) and the steps to 90% success."""
    torch.set_num_threads(threads)  # also in a worker process
    env = make_env(method, task, env_kwargs, model_path, n_envs, seed)
    agent = PPO("CnnPolicy" if method == "pixels (NatureCNN)" else "MlpPolicy", env, seed=seed, **PPO_KWARGS)
    recorder = SuccessRecorder()
    start = time.perf_counter()
    agent.learn(steps, callback=recorder)
    seconds = time.perf_counter() - start
    final = float(np.mean([ok for _, ok in recorder.episodes[-50:]])) if recorder.episodes else 0.0
    return {"method": method, "seed": seed, "steps_to_90": steps_to_success_rate(recorder.episodes, 0.9),
            "final_success": final, "seconds": seconds, "episodes": recorder.episodes}


def rolling_success(episodes: list[tuple[int, bool]], grid: np.ndarray, window: int = 50) -> np.ndarray:
    """Success rate of the last ``window`` episodes finished by each env step of ``grid``."""
    steps = np.array([s for s, _ in episodes])
    success = np.array([float(ok) for _, ok in episodes])
    out = np.zeros(len(grid))
    for i, step in enumerate(grid):
        done = success[steps <= step][-window:]
        out[i] = done.mean() if len(done) else 0.0
    return out


def run_methods(worker: Callable[..., dict[str, Any]], jobs: list[tuple], methods: list[str], n_jobs: int,
                steps: int, key: str, rate: str) -> tuple[dict[str, list[dict[str, Any]]], dict[str, float],
                                                          dict[str, bool]]:
    """Run ``worker(*job)`` for every job, ``n_jobs`` processes at a time; print each run and the medians.

    Each run is a dict with ``method``, ``seed``, ``final_success``, ``seconds`` and ``key``, the env steps to the
    success ``rate`` (None if never). Returns ``(runs per method, median steps per method, whether every run of
    a method reached the rate)``; a run that never did counts as the budget ``steps`` (a lower bound, ">").
    """
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    rows = []
    with ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for run in pool.map(worker, *zip(*jobs, strict=True)):
            runs[run["method"]].append(run)
            to_rate = run[key]
            rows.append([run["method"], run["seed"], to_rate if to_rate is not None else f"> {steps}",
                         run["final_success"], run["seconds"]])
            print(rows[-1], flush=True)
    print_table(["observation", "seed", f"env steps to {rate}", "final success", "wall s"], rows)
    medians = {m: float(np.median([r[key] or steps for r in rs])) for m, rs in runs.items()}
    reached = {m: all(r[key] is not None for r in rs) for m, rs in runs.items()}
    print_table(["observation", f"median env steps to {rate}"],
                [[m, f"{medians[m]:.0f}" if reached[m] else f"> {medians[m]:.0f}"] for m in runs])
    return runs, medians, reached


def summary(run: dict[str, Any], steps: int, points: int = 61) -> dict[str, Any]:
    """A run's figures for the JSON: its episodes replaced by the success curve at ``points`` even env steps."""
    grid = np.linspace(0, steps, points).round().astype(int)
    curve = {"env_steps": grid.tolist(), "success_rate": rolling_success(run["episodes"], grid).tolist()}
    return {**{k: v for k, v in run.items() if k != "episodes"}, "success_curve": curve}


def speed_ratio(medians: dict[str, float], reached: dict[str, bool], slow: str, fast: str) -> str:
    """``medians[slow] / medians[fast]``; a lower bound (">=") when ``slow`` ran out of steps."""
    if not reached[fast]:
        return "n/a (never reached)"
    return f"{'' if reached[slow] else '>= '}{medians[slow] / medians[fast]:.2f}"


def plot(runs: dict[str, list[dict[str, Any]]], steps: int, title: str, png: Path, target: float = 0.9) -> None:
    """Mean success-rate curve per method, with the range over seeds shaded and the ``target`` rate dotted."""
    grid = np.linspace(0, steps, 200)
    figure, axis = plt.subplots(figsize=(7, 4))
    for method, method_runs in runs.items():
        curves = np.stack([rolling_success(run["episodes"], grid) for run in method_runs])
        axis.plot(grid, curves.mean(0), label=method)
        axis.fill_between(grid, curves.min(0), curves.max(0), alpha=0.2)
    axis.axhline(target, color="grey", linestyle=":")
    axis.set(xlabel="env steps", ylabel="success rate (last 50 episodes)", ylim=(0, 1.02), title=title)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(png, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke run)")
    parser.add_argument("--world", choices=list(WORLDS), default="gridworld")
    parser.add_argument("--grid", type=int, default=13, help="gridworld: grid size when training the model here")
    parser.add_argument("--position-only", action="store_true", help="gridworld: no colour factors")
    parser.add_argument("--model", type=Path, help="a saved learner of the world (default: train one here)")
    parser.add_argument("--shapes3d-model", type=Path, help="a saved Shapes3D learner for the planner")
    parser.add_argument("--episode-steps", type=int, help="Reach episode limit (default: 2 x diameter + 2)")
    parser.add_argument("--steps", type=int, default=300_000, help="PPO env steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--planner-episodes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per PPO run (the CPU is shared)")
    parser.add_argument("--jobs", type=int, default=1, help="PPO runs at a time, each in its own process")
    args = parser.parse_args()
    world = WORLDS[args.world]
    model_steps, name = world["steps"], "rl_reach" if args.world == "gridworld" else f"rl_reach_{args.world}"
    if args.quick:  # a smoke run: its files get their own names, so they never replace a real run's
        args.steps, args.seeds, args.planner_episodes, model_steps, name = 2048, [0], 10, 20, f"{name}_quick"
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(exist_ok=True)
    total_start = time.perf_counter()

    # The world model and the task built on the same world
    world_kwargs = dict(world["env_kwargs"])
    label = f"{name}_{args.world}"
    if args.world == "gridworld":
        world_kwargs["grid_shape"] = [args.grid, args.grid]
        if args.position_only:
            world_kwargs.pop("factors")
        label = f"{name}_gridworld{args.grid}{'' if args.position_only else '_colours'}"
    model_path = args.model or train_model(
        world, world_kwargs, RESULTS / f"{label}.safetensors", args.threads, model_steps
    )
    trained = saved_config(model_path)
    if trained.env.id != world["env_id"]:
        raise ValueError(f"`--model` must be a learner of {world['env_id']}, got one of {trained.env.id}.")
    task = task_id(trained.env.id)
    space = gym.make(trained.env.id, **trained.env.kwargs).unwrapped.factor_space
    sizes = space.sizes
    env_kwargs = {**trained.env.kwargs, "max_episode_steps": args.episode_steps or 2 * diameter(sizes) + 2}

    # PPO runs: every method and seed for the same number of env steps, ``--jobs`` at a time
    jobs = [(m, seed, task, env_kwargs, model_path, args.steps, args.n_envs, args.threads)
            for m in args.methods for seed in args.seeds]
    runs, medians, reached = run_methods(run_ppo, jobs, args.methods, args.jobs, args.steps, "steps_to_90", "90%")
    if set(METHODS) <= set(runs):
        pixels, frozen, one_hot = METHODS
        print(f"(a)/(b) = {speed_ratio(medians, reached, pixels, frozen)} (target >= 3), "
              f"(b)/(c) = {speed_ratio(medians, reached, frozen, one_hot)} (target <= 1.5)")

    png = RESULTS / f"{name}.png"
    factors = " x ".join(f"{factor.name} {size}" for factor, size in zip(space.factors, sizes, strict=True) if size > 1)
    plot(runs, args.steps, f"PPO on {task.split('/')[1]}, {len(args.seeds)} seeds\n{factors}", png)

    # The latent planner on Goal tasks, with the same model (and a Shapes3D one if given)
    planner = {task.split("/")[1].replace("Reach", "Goal"): evaluate_planner(model_path, args.planner_episodes)}
    if args.shapes3d_model:
        planner["Shapes3DGoal"] = evaluate_planner(args.shapes3d_model, args.planner_episodes)
    print_table(["task", "success rate", "mean path / shortest"],
                [[k, v["success_rate"], v["mean_path_over_shortest"]] for k, v in planner.items()])

    total = time.perf_counter() - total_start
    payload = {"task": task, "env_kwargs": env_kwargs, "model": str(model_path), "ppo": PPO_KWARGS,
               "n_envs": args.n_envs, "steps": args.steps, "threads": args.threads,
               "median_steps_to_90": medians, "all_reached_90": reached,
               "runs": {m: [summary(r, args.steps) for r in rs] for m, rs in runs.items()},
               "planner": planner, "png": str(png), "total_seconds": total}
    print(f"wrote {write_json(name, payload)} and {png} in {total:.0f} s")


if __name__ == "__main__":
    main()
