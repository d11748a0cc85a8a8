"""What the actions do, read from observations alone: which actions undo each other, and cycle lengths.

For an environment whose actions shift factors cyclically, the transition graph is a product of cycles,
and its structure can be read off short action sequences from random starts without identifying states:

1. every action ``a`` is compared with every sequence ``a`` then ``b``: where the frames after ``a, b``
   are, on average over the starts, as close to the start frames as observation noise allows, ``b`` undoes
   ``a``; actions that undo each other (a ``+1`` / ``-1`` pair) turn one cycle;
2. repeating one action of each cycle from the starts, the first repeat count ``N`` whose frames are back
   at the start frames is the cycle's length.

"As close as noise allows" is measured, not assumed: the noise floor is the smallest mean squared
distance of any two-action sequence (zero for noise-free renders, the noise's own variance otherwise) and
two frames show the same state where their mean squared distance is within a quarter of the way from that
floor to the smallest one-step distance. An action whose one-step distance stays below 1.5 times the
floor is an identity (it turns nothing). Averaging over many starts keeps a state where an action happens
to leave the image unchanged (a sphere turned on its axis) from deciding anything.

:class:`~dyndis_learn.warmups.CycleWarmup` gives cycle ``k`` the latent plane ``(2k, 2k + 1)`` and its
actions the rotations by ``+-2 pi / N`` there (:meth:`CycleStructure.givens_angles`), and places the frames of
a long walk on that torus by counting the actions taken (:func:`walk_cycles`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import torch

from dyndis_learn.rollouts import make_vector_env, with_episode_limit
from dyndis_learn.rotations import plane_pairs
from dyndis_learn.validation import check_int

__all__ = [
    "IDENTITY_FACTOR",
    "LONGEST_STRIDE",
    "SAME_STATE_FRACTION",
    "Cycle",
    "CycleStructure",
    "CycleStructureError",
    "CycleWalk",
    "discover_cycles",
    "walk_cycles",
]

#: An action whose mean squared one-step distance stays below this many times the noise floor changes
#: nothing that noise does not hide; it is taken for an identity.
IDENTITY_FACTOR = 1.5

#: Two sets of frames show the same states where their mean squared distance lies within this fraction of
#: the way from the noise floor to the smallest mean one-step distance.
SAME_STATE_FRACTION = 0.25

#: The longest stride of the walk (:func:`walk_cycles`): the most repeats of one action it draws at a time. A
#: stride holds every other cycle still, so strides across a whole long cycle leave the walk few visits to each
#: setting of the others: with Cars3D's 183 cars, some views saw a quarter of the cars and others nearly all,
#: and the encoder's misses on the states the walk never saw fell in the poorly seen views
#: (docs/benchmarks/learn_structure.md).
LONGEST_STRIDE = 24

#: Entropy tag of the walk's start and actions.
_WALK_TAG = 11


class CycleStructureError(ValueError):
    """The actions do not shift factors cyclically in a way the observations show (the message says why)."""


@dataclass(frozen=True)
class Cycle:
    """One factor's cycle as the actions show it.

    Attributes:
        forward: The action that turns it by ``+2 pi / length``.
        backward: The action that undoes ``forward`` (turns by ``-2 pi / length``), or None where
            ``forward`` is its own inverse and no other action turns this cycle.
        length: The number of ``forward`` steps that bring every state back: ``N``.
    """

    forward: int
    backward: int | None
    length: int

    @property
    def actions(self) -> tuple[int, ...]:
        """The actions that turn this cycle."""
        return (self.forward,) if self.backward is None else (self.forward, self.backward)


@dataclass(frozen=True)
class CycleStructure:
    """The cycles the actions turn, found by :func:`discover_cycles`.

    Attributes:
        cycles: One per factor the actions shift, in order of their first action.
        identities: Actions that never change the observations (turn nothing).
        n_actions: Number of actions of the environment.
        noise_floor: Mean squared distance (per pixel and channel, 0-255 scale) of frames of the same states.
        step_distance: The smallest mean squared distance made by one action.
    """

    cycles: tuple[Cycle, ...]
    identities: tuple[int, ...]
    n_actions: int
    noise_floor: float
    step_distance: float

    @property
    def lengths(self) -> tuple[int, ...]:
        """Each cycle's length ``N``."""
        return tuple(c.length for c in self.cycles)

    def planes_needed(self) -> int:
        """Latent dimensions needed: two per cycle."""
        return 2 * len(self.cycles)

    def action_turns(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Each action's cycle index (-1 for an identity) and signed angle ``+-2 pi / N`` (0 for an identity)."""
        cycle_of = np.full(self.n_actions, -1, dtype=np.int64)
        angle = np.zeros(self.n_actions)
        for k, cycle in enumerate(self.cycles):
            cycle_of[cycle.forward] = k
            angle[cycle.forward] = 2 * math.pi / cycle.length
            if cycle.backward is not None:
                cycle_of[cycle.backward] = k
                angle[cycle.backward] = -2 * math.pi / cycle.length
        return cycle_of, angle

    def check_latent_dim(self, latent_dim: int) -> None:
        """Raise :class:`CycleStructureError`, naming ``model.latent_dim``, if it has under two dimensions per cycle."""
        if latent_dim < self.planes_needed():
            raise CycleStructureError(
                f"The actions turn {len(self.cycles)} independent cycles (lengths {list(self.lengths)}), which need "
                f"{self.planes_needed()} latent dimensions (one plane each); model.latent_dim={latent_dim}: "
                f"set model.latent_dim to at least {self.planes_needed()}."
            )

    def givens_angles(self, latent_dim: int) -> torch.Tensor:
        """Every action's angles (A, n (n - 1) / 2): cycle ``k`` turns plane ``(2k, 2k + 1)``, nothing else.

        Raises:
            CycleStructureError: If ``latent_dim`` has fewer than two dimensions per cycle.
        """
        self.check_latent_dim(latent_dim)
        planes = {tuple(p): i for i, p in enumerate(plane_pairs(latent_dim).tolist())}
        angles = torch.zeros(self.n_actions, len(planes))
        cycle_of, angle = self.action_turns()
        for action in range(self.n_actions):
            if cycle_of[action] >= 0:
                k = int(cycle_of[action])
                angles[action, planes[(2 * k, 2 * k + 1)]] = float(angle[action])
        return angles

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for logs and the report)."""
        return {
            "cycles": [{"forward": c.forward, "backward": c.backward, "length": c.length} for c in self.cycles],
            "identities": list(self.identities),
            "noise_floor": self.noise_floor,
            "step_distance": self.step_distance,
        }


def _mean_squared_distance(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    """Mean over the batch of the per-pixel-and-channel mean squared distance of two image batches."""
    return float(np.mean(np.square(a.astype(np.float32) - b.astype(np.float32))))


def discover_cycles(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    starts: int = 32,
    max_cycle: int = 512,
) -> CycleStructure:
    """Find which actions undo each other and each cycle's length, from observations (module docstring).

    Args:
        env_id: A registered id with discrete actions and image observations (made with ``gym.make_vec``).
        env_kwargs: Its keyword arguments.
        seed: Seed of the random starts.
        starts: Random starts every distance is averaged over.
        max_cycle: The longest cycle looked for.

    Raises:
        CycleStructureError: If an action has no inverse, turns more than one other action's cycle, or does
            not come back within ``max_cycle`` repeats, or if the actions change the images less than noise.
    """
    check_int("starts", starts, minimum=1)
    check_int("max_cycle", max_cycle, minimum=1)
    env = make_vector_env(env_id, starts, max_cycle, env_kwargs)
    try:
        n_actions = int(env.single_action_space.n)
        reset_seed = (int(seed) << 32) + 7 * starts  # apart from the collectors' first batches

        def after(actions: list[int]) -> npt.NDArray[np.uint8]:
            frames, _ = env.reset(seed=reset_seed)
            for action in actions:
                frames, *_ = env.step(np.full(starts, action))
            return frames

        start = after([])
        step = np.array([_mean_squared_distance(start, after([a])) for a in range(n_actions)])
        pair = np.array(
            [[_mean_squared_distance(start, after([a, b])) for b in range(n_actions)] for a in range(n_actions)]
        )
        floor = float(pair.min())  # a later frame of the start states carries fresh noise, if any
        moving = step > IDENTITY_FACTOR * floor + 1e-3  # 1e-3: a thousandth of an intensity level squared
        if not moving.any():
            raise CycleStructureError(
                f"No action of {env_id!r} changes the observations by more than their noise "
                f"(mean squared distance {step.max():.3g} vs {floor:.3g} between frames of one state)."
            )
        step_distance = float(step[moving].min())
        threshold = floor + SAME_STATE_FRACTION * (step_distance - floor)
        identities = tuple(int(a) for a in np.flatnonzero(~moving))
        cycles = _pair_actions(pair <= threshold, moving, env_id)

        def length(action: int) -> int:
            frames, _ = env.reset(seed=reset_seed)
            for repeats in range(1, max_cycle + 1):
                frames, *_ = env.step(np.full(starts, action))
                if _mean_squared_distance(start, frames) <= threshold:
                    return repeats
            raise CycleStructureError(
                f"Repeating action {action} of {env_id!r} {max_cycle} times never brought the observations back "
                "to where they started: the factor it shifts is not a cycle, or a longer one. Raise "
                "warmup.cycles.max_cycle, or use warmup.kind='spectral' for non-cyclic factors."
            )

        found = tuple(Cycle(forward, backward, length(forward)) for forward, backward in cycles)
        return CycleStructure(found, identities, n_actions, floor, step_distance)
    finally:
        env.close()


def _pair_actions(
    undoes: npt.NDArray[np.bool_], moving: npt.NDArray[np.bool_], env_id: str
) -> list[tuple[int, int | None]]:
    """Group the moving actions into (forward, backward) pairs by which undoes which (``undoes[a, b]``)."""
    pairs: list[tuple[int, int | None]] = []
    grouped: set[int] = set()
    for a in np.flatnonzero(moving).tolist():
        if a in grouped:
            continue
        partners = sorted({b for b in np.flatnonzero(undoes[a] | undoes[:, a]).tolist() if moving[b]} - {a})
        if len(partners) > 1:
            raise CycleStructureError(
                f"Action {a} of {env_id!r} is undone by several other actions {partners}: the cycles warm-up "
                "needs each factor turned by one action and at most one inverse; use warmup.kind='spectral'."
            )
        if not partners and not undoes[a, a]:
            raise CycleStructureError(
                f"No action of {env_id!r} undoes action {a} (the frames after it and any other action are "
                "never back at the start): the cycles warm-up needs an inverse for every action that is not its "
                "own; use warmup.kind='spectral'."
            )
        backward = partners[0] if partners else None
        pairs.append((a, backward))
        grouped |= {a} | set(partners)
    return pairs


@dataclass(frozen=True)
class CycleWalk:
    """The frames of one walk and their places on the torus, known from the actions taken.

    Attributes:
        frames: uint8 images, shape (W + 1, H, W, C); ``frames[0]`` is the start.
        positions: Each frame's position on every cycle relative to the start, int64 (W + 1, K).
        targets: Each frame's target encoding, float32 (W + 1, n): cycle ``k`` at the angle
            ``2 pi v / N`` of plane ``(2k, 2k + 1)``, any further plane at angle 0, every plane of radius
            ``1 / sqrt(n / 2)`` (a point of the latent torus).
        actions: The action taken after each frame, int64 (W,).
        factors: Each frame's ``info["factors"]``, int64 (W + 1, F), or None when the env gives none. For
            evaluation only (which states training saw): training never reads them.
    """

    frames: npt.NDArray[np.uint8]
    positions: npt.NDArray[np.int64]
    targets: npt.NDArray[np.float32]
    actions: npt.NDArray[np.int64]
    factors: npt.NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        index: dict[bytes, int] = {}
        for i, frame in enumerate(self.frames):
            index.setdefault(_digest(frame), i)
        object.__setattr__(self, "_index", index)

    def frame_indices(self, frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        """For each frame (shape ``frames.shape[:-3]``), a walk frame with the same bytes, or -1."""
        flat = frames.reshape(-1, *frames.shape[-3:])
        found = [self._index.get(_digest(frame), -1) for frame in flat]  # type: ignore[attr-defined]
        return np.array(found, dtype=np.int64).reshape(frames.shape[:-3])


def _digest(frame: npt.NDArray[np.uint8]) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest()


def walk_cycles(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None,
    structure: CycleStructure,
    steps: int,
    latent_dim: int,
    seed: int = 0,
    longest_stride: int | None = LONGEST_STRIDE,
) -> CycleWalk:
    """Walk ``steps`` steps from one random start and place every frame on the torus by dead reckoning.

    The walk repeats a uniformly chosen action (of those that turn a cycle) a uniform number of times
    between 1 and its cycle's length or ``longest_stride``, whichever is smaller, again and again: short
    cycles are crossed in a stride or two, and a long one in strides that leave the other cycles' settings
    often enough to visit each of them evenly.

    Args:
        env_id: The environment (made once with ``gym.make``); its episode must last the whole walk.
        env_kwargs: Its keyword arguments.
        structure: Its cycles (:func:`discover_cycles`).
        steps: Steps ``W`` of the walk.
        latent_dim: Dimension ``n`` of the target encodings (at least two per cycle).
        seed: Seed of the start and of the actions.
        longest_stride: The most repeats of one action a stride draws (:data:`LONGEST_STRIDE`); None: the
            cycle's length (the walk of config versions before 12).

    Raises:
        CycleStructureError: If ``latent_dim`` is too small for the cycles.
        RuntimeError: If the environment ends the walk early.
    """
    check_int("steps", steps, minimum=1)
    if longest_stride is not None:
        check_int("longest_stride", longest_stride, minimum=1)
    structure.givens_angles(latent_dim)  # the latent check, with its message
    kwargs = with_episode_limit(env_kwargs, steps, f"the walk of {steps} steps (warmup.cycles.walk_steps)")
    cycle_of, _ = structure.action_turns()
    lengths = np.array(structure.lengths, dtype=np.int64)
    strides = lengths if longest_stride is None else np.minimum(lengths, longest_stride)
    turning = np.array([a for c in structure.cycles for a in c.actions], dtype=np.int64)
    direction = np.zeros(structure.n_actions, dtype=np.int64)
    for cycle in structure.cycles:
        direction[cycle.forward] = 1
        if cycle.backward is not None:
            direction[cycle.backward] = -1

    rng = np.random.default_rng([seed, _WALK_TAG])
    env = gym.make(env_id, **kwargs)
    try:
        frame, info = env.reset(seed=int(rng.integers(2**31)))
        frames = np.empty((steps + 1, *frame.shape), dtype=np.uint8)
        positions = np.zeros((steps + 1, len(lengths)), dtype=np.int64)
        actions = np.empty(steps, dtype=np.int64)
        factors = np.empty((steps + 1, len(info["factors"])), dtype=np.int64) if "factors" in info else None
        frames[0] = frame
        if factors is not None:
            factors[0] = info["factors"]
        t = 0
        while t < steps:
            action = int(turning[rng.integers(len(turning))])
            k = int(cycle_of[action])
            for _ in range(min(int(rng.integers(1, strides[k] + 1)), steps - t)):
                frame, _, terminated, truncated, info = env.step(action)
                if terminated or (truncated and t < steps - 1):
                    raise RuntimeError(
                        f"{env_id!r} ended the walk after {t + 1} of {steps} steps; the cycles warm-up needs an "
                        "environment that runs for the whole walk (a pure-dynamics id)."
                    )
                actions[t] = action
                t += 1
                frames[t] = frame
                if factors is not None:
                    factors[t] = info["factors"]
                positions[t] = positions[t - 1]
                positions[t, k] = (positions[t, k] + direction[action]) % lengths[k]
    finally:
        env.close()
    circles = latent_dim // 2
    angles = np.zeros((steps + 1, circles))
    angles[:, : len(lengths)] = 2 * math.pi * positions / lengths
    targets = np.stack([np.cos(angles), np.sin(angles)], axis=-1).reshape(steps + 1, 2 * circles) / math.sqrt(circles)
    return CycleWalk(frames, positions, targets.astype(np.float32), actions, factors)
