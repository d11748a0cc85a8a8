"""How fast does a decoder learn to draw Cars3D's 183 cars? The decoder alone, from every state's exact place.

The learner's decoder (``WorldModel.decode_logits`` with ``angle_bins="cycles"``: 1,464 bins per circle) is
trained by BCE on uniformly drawn states of the whole Cars3D, each decoded from its exact place on the torus
(angles ``2 pi v / N``), without a look-up, with ``model.lookup_feature_map`` and with
``model.lookup_modulation`` besides (the default). No encoder and no dynamics: this
isolates how much of a run's budget the decoder needs to draw the right car. Every ``--eval-every`` steps,
for ``--frames`` fixed states, the share of decoded pictures nearer (in pixels) their own car's image than
every other car's at the same elevation and azimuth, and the median squared error to the own car's image
(pixels in [0, 1], 64 x 64 x 3), as :mod:`benchmarks.car_identity` measures a trained run. Usage:
python -m benchmarks.car_decoder [--steps 3000] [--variants plain lookup modulation] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

import dyndis_envs  # noqa: F401  (registers the environments)
from benchmarks._common import print_table, write_json
from dyndis_learn.config import OptimConfig
from dyndis_learn.model import WorldModel

#: The variants compared: the decoder's look-up settings (``model.lookup_feature_map``, ``model.lookup_modulation``).
VARIANTS = {
    "plain": {"lookup_feature_map": False, "lookup_modulation": False},
    "lookup": {"lookup_feature_map": True, "lookup_modulation": False},
    "modulation": {"lookup_feature_map": True, "lookup_modulation": True},
}


def places(states: np.ndarray, sizes: np.ndarray) -> torch.Tensor:
    """Each state's exact point on the torus: one circle per factor at ``2 pi v / N``, unit norm in all."""
    angles = torch.from_numpy(2 * math.pi * states / sizes).float()
    return torch.stack([angles.cos(), angles.sin()], dim=-1).flatten(-2) / math.sqrt(len(sizes))


def train_decoder(variant: str, images: torch.Tensor, points: torch.Tensor, args: argparse.Namespace,
                  check) -> list[dict[str, Any]]:  # fmt: skip
    """Train one variant's decoder; ``check(model)`` every ``args.eval_every`` steps gives a row of figures."""
    torch.manual_seed(args.seed)
    sizes = args.sizes
    model = WorldModel(
        images.shape[1:],
        2 * len(sizes),
        latent_dim=2 * len(sizes),
        latent_manifold="torus",
        angle_bins=math.lcm(*sizes),
        **VARIANTS[variant],
    )
    optimizer = torch.optim.Adam(model.decoder.parameters(), lr=OptimConfig().lr)
    rng = np.random.default_rng(args.seed)
    rows, seconds = [], 0.0
    for step in range(1, args.steps + 1):
        batch = torch.from_numpy(rng.integers(0, len(images), args.batch_size))
        started = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model.decode_logits(points[batch]), images[batch].float() / 255)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds += time.perf_counter() - started
        if step % args.eval_every == 0:
            rows.append({"step": step, "sgd_seconds": seconds, "bce": float(loss.detach()), **check(model)})
            print(f"{variant} step {step}: {rows[-1]}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    core = gym.make("DynDis/Cars3D-v0").unwrapped
    space = core.factor_space
    args.sizes = np.array(space.sizes)
    states = space.all_states()  # row-major: a state's row is its flat index
    images = torch.from_numpy(core.render_states(states))
    points = places(states, args.sizes)
    car = space.names.index("object")
    held = np.random.default_rng(args.seed + 1).choice(len(states), args.frames, replace=False)
    # every car at each held state's elevation and azimuth: the pictures a decoded frame is told apart from
    views = np.repeat(states[held][:, None], args.sizes[car], axis=1)
    views[..., car] = np.arange(args.sizes[car])
    references = space.flat_index(views)

    @torch.no_grad()
    def check(model: WorldModel) -> dict[str, float]:
        pictures = model.decode(points[held])
        right, errors = 0, []
        for j, state in enumerate(held):
            distances = (images[references[j]].float() / 255 - pictures[j]).square().flatten(1).sum(1)
            own = states[state][car]
            right += int(distances.argmin().item() == own)
            errors.append(float(distances[own]))
        return {"car_right": right / len(held), "median_squared_error": float(np.median(errors))}

    results = {name: train_decoder(name, images, points, args, check) for name in args.variants}
    print_table(
        ["variant", "step", "SGD s", "car right", "squared error to its own car (median)"],
        [
            [name, row["step"], row["sgd_seconds"], row["car_right"], row["median_squared_error"]]
            for name, rows in results.items()
            for row in rows
        ],
    )
    payload = {"steps": args.steps, "batch_size": args.batch_size, "frames": args.frames, "results": results}
    print(f"wrote {write_json('car_decoder', payload)}")


if __name__ == "__main__":
    main()
