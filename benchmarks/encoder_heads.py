"""Can the encoder learn a factor's values from the cycles warm-up's walk? Linear head against angle bins.

The world's cycles are found and one walk is placed on the torus by dead reckoning, exactly as the cycles
warm-up does (:func:`dyndis_learn.cycles.discover_cycles`, :func:`~dyndis_learn.cycles.walk_cycles`); then the
encoder of a :class:`~dyndis_learn.model.WorldModel` alone (no decoder, no dynamics) is trained onto the walk's
places with each head:

- ``linear``: the default, a linear layer onto the coordinates, trained by the distance to the target;
- ``bins``: ``model.angle_bins`` (256 by default; ``--bins``), trained by the warm-up's target term
  (:func:`dyndis_learn.objective.target_term`: the distance of the bins' mean point plus the cross-entropy);
- ``classifier``: a reference, not a model of the learner's: the same encoder network with one logit per value
  of every cycle, trained by the cross-entropy alone on the walk's counted values.

Every ``--every`` steps, per factor, the share of uniformly drawn states (seen and unseen by the walk) whose
encoded angle is nearest to its true value's ``2 pi k / N`` (the walk's frame of reference: value ``k``
counted from the walk's start, direction from ``info["factors"]``, read here for evaluation only).

Usage: python -m benchmarks.encoder_heads [--env-id DynDis/Cars3D-v0] [--steps 6500] [--heads linear bins]
    [--encoder-norm none] [--channels 32 32 64 64]
This is the measurement behind ``model.angle_bins``: on Cars3D the linear head never learns the 183 cars.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

import dyndis_envs  # noqa: F401  (registers the environments)
from benchmarks._common import longest_stride, print_table, write_json
from dyndis_learn.config import ModelConfig
from dyndis_learn.cycles import LONGEST_STRIDE, CycleWalk, discover_cycles, walk_cycles
from dyndis_learn.model import WorldModel, encode_frames
from dyndis_learn.networks import ENCODER_NORMS, ConvEncoder
from dyndis_learn.objective import target_term

BATCH = 96  # walked frames per step, as the warm-up's default batch
LR = 2e-3  # the learner's default learning rate


def factor_of_cycles(walk: CycleWalk, lengths: tuple[int, ...]) -> list[tuple[int, int]]:
    """For each cycle, the factor it moves and the sign of its count (from the walk's ``info["factors"]``)."""
    found = []
    for k, n in enumerate(lengths):
        match = [
            (f, sign)
            for f in range(walk.factors.shape[1])
            for sign in (1, -1)
            if np.all((walk.factors[:, f] - walk.factors[0, f]) % n == (sign * walk.positions[:, k]) % n)
        ]
        if not match:
            raise RuntimeError(f"No factor moves with cycle {k} (length {n}).")
        found.append(match[0])
    return found


def angle_accuracy(values: np.ndarray, states: np.ndarray, walk: CycleWalk, lengths: tuple[int, ...]) -> np.ndarray:
    """Per cycle, whether each state's encoded value (S, K), in units of ``2 pi / N``, rounds to its own (S, K)."""
    right = np.empty((len(states), len(lengths)), dtype=bool)
    for k, ((factor, sign), n) in enumerate(zip(factor_of_cycles(walk, lengths), lengths, strict=True)):
        wanted = (sign * (states[:, factor] - walk.factors[0, factor])) % n
        right[:, k] = np.round(values[:, k]).astype(np.int64) % n == wanted
    return right


def encoded_values(head: str, model: WorldModel, images: torch.Tensor, lengths: tuple[int, ...]) -> np.ndarray:
    """Each image's value per cycle (S, K) in units of ``2 pi / N``: its encoded angle, or the classifier's class."""
    model.eval()
    with torch.no_grad():
        if head == "classifier":
            outputs = torch.cat([encode_frames(model.encoder, images[s : s + 500]) for s in range(0, len(images), 500)])
            values = np.stack([logits.argmax(-1).numpy() for logits in outputs.split(lengths, dim=-1)], axis=1)
        else:
            points = torch.cat([model.encode(images[s : s + 500]) for s in range(0, len(images), 500)])
            pairs = points.unflatten(-1, (-1, 2)).numpy()[:, : len(lengths)]
            values = np.arctan2(pairs[..., 1], pairs[..., 0]) * np.asarray(lengths) / (2 * math.pi)
    model.train()
    return values


def run_head(head: str, args: argparse.Namespace, walk: CycleWalk, lengths: tuple[int, ...], test: dict) -> list:
    torch.manual_seed(args.seed)
    image_shape = walk.frames.shape[1:]
    bins = args.bins if head == "bins" else None
    model = WorldModel(
        image_shape,
        2 * len(lengths),
        args.latent_dim,
        latent_manifold="torus",
        channels=args.channels,
        angle_bins=bins,
        encoder_norm=args.encoder_norm,
    )
    if head == "classifier":  # one class per value of every cycle: the encoder's network alone, as a reference
        encoder = ConvEncoder(image_shape, sum(lengths), channels=args.channels, norm=args.encoder_norm)
        model.encoder = encoder.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.encoder.parameters(), lr=LR)
    frames, targets = torch.from_numpy(walk.frames), torch.from_numpy(walk.targets)
    positions = torch.from_numpy(walk.positions)
    rng = np.random.default_rng(args.seed)
    rows, started = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        index = torch.from_numpy(rng.integers(0, len(frames), BATCH))
        outputs = encode_frames(model.encoder, frames[index])
        if head == "classifier":
            classes = zip(outputs.split(lengths, dim=-1), positions[index].T, strict=True)
            loss = sum(F.cross_entropy(logits, wanted) for logits, wanted in classes) / len(lengths)
        else:  # the learner's own target term
            loss = target_term(model, model.latents(outputs), None if bins is None else outputs, targets[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % args.every == 0 or step == args.steps:
            values = encoded_values(head, model, test["images"], lengths)
            right = angle_accuracy(values, test["states"], walk, lengths)
            row = {
                "head": head,
                "step": step,
                "seconds": time.perf_counter() - started,
                "loss": loss.item(),
                "right": right.mean(axis=0).tolist(),
                "right_unseen": right[test["unseen"]].mean(axis=0).tolist(),
            }
            rows.append(row)
            print(f"{head} step {step}: " + " / ".join(f"{r:.1%}" for r in row["right"]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-id", default="DynDis/Cars3D-v0")
    parser.add_argument("--env-kwargs", default="{}", help="JSON object of the env's keyword arguments")
    parser.add_argument("--heads", nargs="+", choices=["linear", "bins", "classifier"], default=["linear", "bins"])
    parser.add_argument("--steps", type=int, default=6500)
    parser.add_argument("--every", type=int, default=250, help="steps between measurements")
    parser.add_argument("--bins", type=int, default=256, help="model.angle_bins of the bins head")
    parser.add_argument("--latent-dim", type=int, help="default: two per cycle")
    parser.add_argument(
        "--encoder-norm", choices=ENCODER_NORMS, default=ModelConfig().encoder_norm, help="model.encoder_norm"
    )
    parser.add_argument("--channels", type=int, nargs="+", default=list(ModelConfig().channels), help="model.channels")
    parser.add_argument("--walk-steps", type=int, default=20_000, help="warmup.cycles.walk_steps")
    parser.add_argument(
        "--longest-stride",
        type=longest_stride,
        default=LONGEST_STRIDE,
        help="warmup.cycles.longest_stride ('none': up to the cycle's length)",
    )
    parser.add_argument("--states", type=int, default=2000, help="uniformly drawn states measured")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kwargs: dict[str, Any] = json.loads(args.env_kwargs)
    structure = discover_cycles(args.env_id, kwargs, seed=args.seed)
    lengths = structure.lengths
    args.latent_dim = args.latent_dim or 2 * len(lengths)
    walk = walk_cycles(args.env_id, kwargs, structure, args.walk_steps, args.latent_dim, args.seed, args.longest_stride)
    core = gym.make(args.env_id, **kwargs).unwrapped
    space = core.factor_space
    states = space.sample_states(args.states, np.random.default_rng([args.seed, 1]))
    seen = np.isin(space.flat_index(states), space.flat_index(walk.factors))
    test = {"images": torch.from_numpy(core.render_states(states)), "states": states, "unseen": ~seen}
    print(
        f"cycles {lengths}; the walk sees {len(np.unique(space.flat_index(walk.factors))) / space.n_states:.1%} "
        f"of the states; {np.mean(~seen):.1%} of the measured states unseen"
    )
    rows = [row for head in args.heads for row in run_head(head, args, walk, lengths, test)]
    headers = ["head", "step", "seconds", *(f"right, cycle {n}" for n in lengths), *(f"unseen, {n}" for n in lengths)]
    print_table(headers, [[r["head"], r["step"], r["seconds"], *r["right"], *r["right_unseen"]] for r in rows])
    path = write_json(
        "encoder_heads",
        {
            "command": " ".join(["python -m benchmarks.encoder_heads", *sys.argv[1:]]),
            "env_id": args.env_id,
            "env_kwargs": kwargs,
            "cycle_lengths": list(lengths),
            "encoder_norm": args.encoder_norm,
            "channels": args.channels,
            "rows": rows,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
