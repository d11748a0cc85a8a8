"""Does a trained Cars3D model know which car it sees, and draw it? Encoder and decoder measured apart.

For a run trained with the cycles warm-up (its checkpoint), the walk of its warm-up is walked again (a function
of the config) and:

- encoder: for ``--states`` uniformly drawn states, per factor, the share whose encoded angle is nearest its
  value's ``2 pi k / N`` (the walk's frame of reference, as :mod:`benchmarks.encoder_heads` measures it), on
  the states the walk saw and on those it did not; with angle bins, also the share whose most probable bin
  is (what a classifier would answer, where the encoding is the circular mean of every bin), and the encoding
  the decoder checks among ``--modes`` modes per circle (``WorldModel.encode_by_synthesis``, what the planner
  reads);
- decoder: for ``--frames`` walked frames, the share whose decoded picture is nearer (in pixels) its own car's
  image than every other car's at the same elevation and azimuth; decoded from the frame's exact place on the
  torus (the decoder alone) and from its encoding (encoder and decoder); with the median squared error of the
  decoded picture to its own car's image, and percentiles of the distance from that image to the nearest
  other car's: how sharp the decoder must be;
- look-alikes: every state the walk never saw, grouped by how near (squared distance of the images) the
  nearest other car at its elevation and azimuth is, with the share in each group whose decoder-checked car is
  right, and whose exact place the decoder alone draws nearer its own car's image than every other car's:
  whether the cars still missed are the ones with a close look-alike, and whether the decoder draws them apart.

``info["factors"]`` is read for evaluation only. Usage:
python -m benchmarks.car_identity RUN_DIR [--states 2000] [--frames 300] [--modes 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import dyndis_envs  # noqa: F401  (registers the environments)
from benchmarks._common import print_table, write_json
from benchmarks.encoder_heads import angle_accuracy, factor_of_cycles
from dyndis_learn.checkpoint import CHECKPOINT_NAME
from dyndis_learn.cycles import CycleWalk
from dyndis_learn.model import DEFAULT_SYNTHESIS_MODES, WorldModel, encode_frames
from dyndis_learn.trainer import Trainer

#: Edges of the look-alike groups: squared distance (pixels in [0, 1]) to the nearest other car at the same view.
LOOKALIKE_EDGES = (0.0, 10.0, 20.0, 40.0, 80.0, math.inf)


def exact_places(states: np.ndarray, walk: CycleWalk, lengths: tuple[int, ...], latent_dim: int) -> torch.Tensor:
    """The torus points (S, n) that the walk's dead reckoning gives states (S, F), seen or not (as its targets)."""
    angles = np.zeros((len(states), latent_dim // 2))
    for k, ((factor, sign), n) in enumerate(zip(factor_of_cycles(walk, lengths), lengths, strict=True)):
        angles[:, k] = 2 * math.pi * ((sign * (states[:, factor] - walk.factors[0, factor])) % n) / n
    points = np.stack([np.cos(angles), np.sin(angles)], axis=-1).reshape(len(states), -1)
    return torch.from_numpy(points * (latent_dim // 2) ** -0.5).float()


def turns_of(points: torch.Tensor, cycles: int) -> np.ndarray:
    """Each of the first ``cycles`` circles' angle of torus points (S, n), in turns (S, cycles)."""
    points = points.numpy()
    return np.arctan2(points[:, 1::2], points[:, 0::2])[:, :cycles] / (2 * math.pi)


def judge_against_other_cars(
    core: gym.Env, states: np.ndarray, car: int, pictures: dict[str, torch.Tensor]
) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Sets of pictures (S, H, W, C) of states (S, F), floats in [0, 1], against every car's image at each view.

    Returns each state's squared distance (pixels in [0, 1]) from its image to the nearest other car's, and per set
    of pictures whether each is nearer its own car's image than every other car's, and its squared error to its own.
    """
    space = core.factor_space
    nearest = np.empty(len(states))
    judged = {source: (np.empty(len(states), dtype=bool), np.empty(len(states))) for source in pictures}
    keys = np.delete(states, car, axis=1)
    for key in np.unique(keys, axis=0):
        rows = np.nonzero((keys == key).all(1))[0]
        cars = np.repeat(states[rows[:1]], space.sizes[car], axis=0)
        cars[:, car] = np.arange(space.sizes[car])  # every car at this elevation and azimuth
        images = torch.from_numpy(core.render_states(cars)).flatten(1).float() / 255
        own = states[rows, car]
        nearest[rows] = torch.cdist(images, images).square().fill_diagonal_(math.inf).min(1).values.numpy()[own]
        for source, (right, error) in judged.items():
            distances = torch.cdist(pictures[source][rows].flatten(1), images).square().numpy()
            right[rows] = distances.argmin(1) == own
            error[rows] = distances[np.arange(len(rows)), own]
    return nearest, judged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder (its checkpoint) of a Cars3D model, cycles warm-up")
    parser.add_argument("--states", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--modes", type=int, default=DEFAULT_SYNTHESIS_MODES, help="modes per circle of the decoder-checked encoding"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trainer = Trainer.load(args.run / CHECKPOINT_NAME)
    trainer.seen_states()  # walks the warm-up's walk again
    model, walk, lengths = trainer.model.eval(), trainer.warmup.walk, trainer.warmup.structure.lengths
    config = trainer.config
    core = gym.make(config.env.id, **config.env.kwargs).unwrapped
    space = core.factor_space
    rng = np.random.default_rng(args.seed)

    states = space.sample_states(args.states, rng)
    unseen = ~np.isin(space.flat_index(states), space.flat_index(walk.factors))
    images = torch.from_numpy(core.render_states(states))
    with torch.no_grad():
        outputs = torch.cat([encode_frames(model.encoder, images[i : i + 250]) for i in range(0, len(images), 250)])

        # in units of 2 pi / N per cycle: the encoding, and with angle bins its most probable bin beside it
        readouts = {"encoding": turns_of(model.latents(outputs), len(lengths))}
        if model.angle_bins is not None:
            modes = model.angle_logits(outputs).argmax(-1).numpy()[:, : len(lengths)]
            readouts["most probable bin"] = modes / model.angle_bins
            checked = [model.encode_by_synthesis(images[i : i + 250], args.modes) for i in range(0, len(images), 250)]
            readouts[f"checked by the decoder ({args.modes} modes)"] = turns_of(torch.cat(checked), len(lengths))
    hits = {readout: angle_accuracy(turns * lengths, states, walk, lengths) for readout, turns in readouts.items()}
    rows, encoder = [], {}
    for k, ((factor, _), n) in enumerate(zip(factor_of_cycles(walk, lengths), lengths, strict=True)):
        name = space.names[factor]
        encoder[name] = {}
        for readout, right in hits.items():
            shares = {"seen": float(right[~unseen, k].mean()), "unseen": float(right[unseen, k].mean())}
            encoder[name][readout] = shares
            rows.append([name, n, readout, shares["seen"], shares["unseen"]])
    print(f"encoder: {args.states} uniform states, {unseen.mean():.1%} of them unseen by the walk")
    print_table(["factor", "values", "angle of", "right, seen", "right, unseen"], rows)

    car = space.names.index("object")
    frames = rng.choice(len(walk.frames), args.frames, replace=False)
    with torch.no_grad():
        decoded = {
            "exact place": model.decode(torch.from_numpy(walk.targets[frames]).float()),
            "encoding": model.decode(model.encode(torch.from_numpy(walk.frames[frames]))),
        }
    nearest_other, judged = judge_against_other_cars(core, walk.factors[frames], car, decoded)
    # A picture is right when its error to its own car is below its distance to every other: the decoder's
    # error set against how close the nearest other car is says how sharp it must be for a share right.
    decoder = {
        source: {"car_right": float(right.mean()), "median_squared_error": float(np.median(error))}
        for source, (right, error) in judged.items()
    }
    percentiles = (1, 10, 50)
    margin = {f"percentile_{q}": float(np.percentile(nearest_other, q)) for q in percentiles}
    print(f"decoder: {len(frames)} walked frames, the right car among {space.sizes[car]} at the same view")
    print_table(
        ["decoded from", "car right", "squared error to its own car (median)"],
        [[source, d["car_right"], d["median_squared_error"]] for source, d in decoder.items()],
    )
    print(
        "squared distance from the true image to the nearest other car's (pixels in [0, 1]): "
        + ", ".join(f"{q}th percentile {margin[f'percentile_{q}']:.1f}" for q in percentiles)
    )
    lookalikes = judge_lookalikes(model, core, walk, lengths, args.modes)
    payload = {
        "run": str(args.run),
        "step": trainer.step,
        "angle_bins": config.model.angle_bins,
        "encoder": encoder,
        "decoder": decoder,
        "nearest_other_car": margin,
        "unseen_share": float(unseen.mean()),
        "unseen_by_lookalike": lookalikes,
    }
    print(f"wrote {write_json(f'car_identity_{args.run.name}', payload)}")


def judge_lookalikes(
    model: WorldModel, core: gym.Env, walk: CycleWalk, lengths: tuple[int, ...], modes: int
) -> list[dict]:
    """The states the walk never saw, grouped by their nearest other car's distance: how often the car is right.

    Right twice over: the checked encoding's car angle (encoder and decoder), and the decoder's picture of the
    state's exact place (the decoder alone), nearer its own car's image than every other car's at its view.
    """
    space = core.factor_space
    states = space.all_states()
    states = states[~np.isin(space.flat_index(states), space.flat_index(walk.factors))]
    car = space.names.index("object")
    cycle = [factor for factor, _ in factor_of_cycles(walk, lengths)].index(car)
    images = torch.from_numpy(core.render_states(states))
    with torch.no_grad():
        checked = torch.cat([model.encode_by_synthesis(images[i : i + 250], modes) for i in range(0, len(images), 250)])
        pictures = model.decode(exact_places(states, walk, lengths, model.latent_dim))
    encoded_right = angle_accuracy(turns_of(checked, len(lengths)) * lengths, states, walk, lengths)[:, cycle]
    nearest, judged = judge_against_other_cars(core, states, car, {"exact place": pictures})
    drawn_right = judged["exact place"][0]
    groups = []
    for low, high in itertools.pairwise(LOOKALIKE_EDGES):
        inside = (nearest >= low) & (nearest < high)
        groups.append(
            {
                "from": low,
                "below": high,
                "states": int(inside.sum()),
                "checked_car_right": float(encoded_right[inside].mean()) if inside.any() else math.nan,
                "exact_place_drawn_right": float(drawn_right[inside].mean()) if inside.any() else math.nan,
            }
        )
    print(f"look-alikes: the {len(states)} states the walk never saw, by the squared distance from each to the nearest")
    print(f"other car at its view (pixels in [0, 1]); the car of the encoding checked among {modes} modes, and the")
    print("decoder's picture of the state's exact place")
    print_table(
        ["nearest other car", "states", "checked encoding: car right", "decoded exact place: car right"],
        [
            [f"{g['from']:g} to {g['below']:g}", g["states"], g["checked_car_right"], g["exact_place_drawn_right"]]
            for g in groups
        ],
    )
    return groups


if __name__ == "__main__":
    main()
