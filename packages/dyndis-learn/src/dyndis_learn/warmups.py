"""Warm-ups: how the encoder gets its start before the dynamics terms switch on.

Learning an encoder and its rotations together from random starts is a chicken-and-egg problem. A warm-up
first gives the encoder a map of the states on which every action is already a rotation in its own plane
(each factor's first Fourier modes ``(cos 2 pi x / N, sin 2 pi x / N)``); the dynamics phase then makes
the rotations exact. A warm-up is one class with a small interface (:class:`Warmup`):

- :meth:`Warmup.resolve`: before the model is built, the config's ``"auto"`` settings made numbers
  (``model.latent_dim``: the cycles warm-up gives each cycle it finds a plane; ``model.angle_bins``; ``steps``
  and ``warmup.steps``: :func:`auto_budget`; ``bf16``: :func:`auto_bf16`);
- :meth:`Warmup.start`: before the first SGD step a trainer takes (step 0, or where a resumed run goes on);
- :meth:`Warmup.batch`: the warm-up's own data for a warm-up step, or None for the run's episodes;
- :meth:`Warmup.weights`: its terms' weights added to the step's (:class:`~dyndis_learn.objective.LossWeights`);
- :meth:`Warmup.targets`: target encodings of a batch's frames, if it has a map of the states;
- :meth:`Warmup.end`: once, on the first step after the warm-up, before that step's loss;
- :meth:`Warmup.start_state` / :meth:`Warmup.load_start_state`: the start's result, computed on one
  data-parallel rank and adopted by the others (:mod:`dyndis_learn.distributed`);

registered under a name with :func:`register_warmup`, and chosen by ``TrainConfig.warmup.kind`` through
:func:`make_warmup`, the only place that reads the kind. Built in:

- ``"cycles"`` (:class:`CycleWarmup`): read the actions' cycles from observations, fix each cycle's rotation
  in its own plane, regress the encoder onto a walk placed on the torus by counting its actions;
- ``"graph"`` (:class:`GraphWarmup`): explore, embed the transition graph, regress the encoder onto it;
- ``"spectral"`` (:class:`SpectralWarmup`): find the same map by SGD, then align the planes;
- ``"none"`` (:class:`NoWarmup`): every term from the first step (the original paper's recipe).
"""

from __future__ import annotations

import abc
import dataclasses
import math
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from dyndis_learn.alignment import fit_planes
from dyndis_learn.config import DEFAULT_LATENT_DIM, DEFAULT_STEPS, DEFAULT_WARMUP_STEPS, TrainConfig
from dyndis_learn.cycles import Cycle, CycleStructure, CycleStructureError, CycleWalk, discover_cycles, walk_cycles
from dyndis_learn.devices import computes_bf16, module_device, resolve_device
from dyndis_learn.model import MODE_WINDOW, WorldModel
from dyndis_learn.objective import FrameTargets, LossWeights, TrainBatch
from dyndis_learn.registry import WARMUPS
from dyndis_learn.rollouts import Policy, RolloutCollector
from dyndis_learn.schedules import Schedules
from dyndis_learn.transition_graph import TransitionGraph, explore, laplacian_eigenmap

__all__ = [
    "AUTO_BINS_LONGEST_CYCLE",
    "AUTO_WALK_STEPS",
    "GRAPH_FIT_LIMIT",
    "LARGE_WORLD_STEPS",
    "LARGE_WORLD_WARMUP_STEPS",
    "LONG_CYCLE_WARMUP_STEPS",
    "MAX_CYCLE_BINS",
    "SMALL_WORLD_STATES",
    "WALK_STEPS_PER_STATE",
    "WARMUPS",
    "CycleWarmup",
    "GraphWarmup",
    "NoWarmup",
    "SpectralWarmup",
    "Warmup",
    "auto_bf16",
    "auto_budget",
    "make_warmup",
    "register_warmup",
    "stored_warmup",
]

#: Entropy tags of the graph warm-up's draws of explored states (training, and the check at its end).
_GRAPH_STREAM = 3
_GRAPH_CHECK_STREAM = 4
#: Entropy tag of the cycles warm-up's draws of walked frames.
_WALK_STREAM = 5

#: Mean squared distance of the encodings to the graph's map above which the graph warm-up is said to have
#: failed (learned runs end far below it).
GRAPH_FIT_LIMIT = 0.1

#: The most angle bins per circle that ``model.angle_bins="cycles"`` gives (each bin has a logit and an
#: embedding of the decoder's; Cars3D's cycles need 1,464).
MAX_CYCLE_BINS = 4096

#: Bins per value of a cycle that ``model.angle_bins="each_cycle"`` gives: one more than the mode's window
#: (:data:`~dyndis_learn.model.MODE_WINDOW`) on either side, so that an encoding's mode never reaches the next
#: value's bin.
BINS_PER_VALUE = MODE_WINDOW + 1

#: ``model.angle_bins="auto"`` gives the cycles' bins when a cycle found is longer than this, or the world
#: has more than :data:`SMALL_WORLD_STATES` states; else none. A regression onto the angles places Shapes3D's
#: 15 orientations (probe R^2 0.999) and Cars3D's 24 azimuths right, not Cars3D's 183 cars, which look
#: unrelated (R^2 0.47; with the bins 0.95); and only with the bins does the decoder draw the mixed
#: GridWorld's 3 object sizes right (docs/benchmarks/learn_structure.md).
AUTO_BINS_LONGEST_CYCLE = 64

#: ``warmup.cycles.walk_steps="auto"``: steps per state of the world (the product of its cycles' lengths), so
#: that a small world's walk sees nearly every state several times ...
WALK_STEPS_PER_STATE = 4
#: ... within these bounds: at least what small worlds were measured with, at most what is kept in memory
#: comfortably (``H W C`` bytes per frame: 0.7 GiB for 60,000 frames of 64 x 64 x 3).
AUTO_WALK_STEPS = (20_000, 60_000)

#: ``steps="auto"`` and ``warmup.steps="auto"`` (:func:`auto_budget`): a world whose cycles span at most this
#: many states trains :data:`~dyndis_learn.config.DEFAULT_STEPS` with a warm-up of
#: :data:`~dyndis_learn.config.DEFAULT_WARMUP_STEPS` (the Shapes3D subset's 1,500 states hold every criterion
#: in 3 of 3 seeds; the mixed GridWorld's 3,675 needed 6,000 steps) ...
SMALL_WORLD_STATES = 2_000
#: ... a larger one this many steps (the whole Shapes3D and Cars3D: every criterion in 3 of 3 seeds on the
#: machine of session 25; Cars3D's unseen cars sit near the bar, docs/benchmarks/learn_structure.md) ...
LARGE_WORLD_STEPS = 7_200
#: ... with a warm-up of this many (the whole Shapes3D) ...
LARGE_WORLD_WARMUP_STEPS = 2_400
#: ... or of this many where a cycle is longer than :data:`AUTO_BINS_LONGEST_CYCLE`: the encoder needs longer
#: to tell Cars3D's 183 cars apart (half the run, as Cars3D was measured with: 3,000 of 6,000 steps met every
#: criterion in 1 of 3 seeds, 3,600 of 7,200 and 4,000 of 8,000 in 3 of 3).
LONG_CYCLE_WARMUP_STEPS = 3_600

#: An angle learning rate for a warm-up that leaves the angles to be learned.
LEARNED_ANGLE_LR = 1e-2


class Warmup(abc.ABC):
    """A way to start the encoder; see the module docstring for when each hook runs.

    Args:
        config: The run's configuration.
        policy: The run's behaviour policy (None: uniformly random actions).
    """

    #: The name it is registered under (``TrainConfig.warmup.kind``).
    name: ClassVar[str]
    #: The angles' learning rate where ``TrainConfig.optim.angle_lr`` is None.
    default_angle_lr: ClassVar[float] = LEARNED_ANGLE_LR
    #: The terms of :data:`~dyndis_learn.objective.WARMUP_TERMS` this warm-up gives a weight (the others stay 0).
    terms: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: TrainConfig, policy: Policy | None = None) -> None:
        self.config = config
        self.policy = policy

    @property
    def steps(self) -> int:
        """SGD steps of the warm-up (``warmup.steps``, or for ``"auto"`` the :meth:`budget`'s)."""
        steps = self.config.warmup.steps
        return self.budget()[1] if steps == "auto" else steps

    def budget(self) -> tuple[int, int]:
        """``(steps, warmup.steps)`` that ``"auto"`` asks for: here the small worlds' defaults.

        A warm-up that reads the world's structure chooses from what it observes (:func:`auto_budget`).
        """
        return DEFAULT_STEPS, DEFAULT_WARMUP_STEPS

    def resolve(self, config: TrainConfig) -> TrainConfig:
        """``config`` with its ``"auto"`` settings made numbers, before the trainer builds the model.

        Here ``model.latent_dim="auto"`` becomes :data:`~dyndis_learn.config.DEFAULT_LATENT_DIM`,
        ``model.angle_bins="auto"`` None, and ``steps`` and ``warmup.steps`` the :meth:`budget`'s; a warm-up
        that reads the world's structure chooses from what it observes. A ``bf16="auto"`` left here becomes
        float32 in the trainer.
        """
        changes: dict[str, int | None] = {}
        if config.model.latent_dim == "auto":
            changes["latent_dim"] = DEFAULT_LATENT_DIM
        if config.model.angle_bins == "auto":
            changes["angle_bins"] = None
        config = config.replace(model=changes) if changes else config
        return _with_budget(config, self.budget())

    def start(self, model: WorldModel, step: int) -> None:  # noqa: B027 (a hook: most warm-ups need none)
        """Prepare before the first SGD step a trainer takes, ``step`` (0 for a fresh run)."""

    def start_state(self) -> dict[str, torch.Tensor] | None:
        """What :meth:`start` computed, as named CPU tensors another process can adopt; None if nothing.

        Data-parallel training (:func:`dyndis_learn.distributed.start_warmup`) runs :meth:`start` on rank 0
        and gives this state to the other ranks (:meth:`load_start_state`). A warm-up that returns None is
        started on every rank, whose config has the rank's seed: a start that computes state from the seed
        must return it here.
        """
        return None

    def load_start_state(self, state: dict[str, torch.Tensor], model: WorldModel) -> None:
        """Adopt the :meth:`start_state` of another rank's warm-up, instead of running :meth:`start`."""
        raise NotImplementedError(f"{type(self).__name__} gives no start_state to adopt.")

    def batch(self, step: int) -> TrainBatch | None:
        """The warm-up's own batch for SGD step ``step``, or None to use the run's episodes."""
        return None

    def weights(self, weights: LossWeights, step: int, schedules: Schedules) -> LossWeights:
        """The step's loss weights with the warm-up's terms set."""
        return weights

    def targets(self, frames: np.ndarray) -> FrameTargets | None:
        """Target encodings of ``frames`` (B, T + 1, H, W, C), or None for a warm-up without a map."""
        return None

    def seen_states(self) -> np.ndarray | None:
        """The true states (``info["factors"]``, shape (S, F)) of every frame the run trains on, or None.

        Only a warm-up that gives every step's data (warm-up and dynamics phase) and kept its frames' factors
        knows them; None before :meth:`start`. For evaluation only (seen against unseen states): training
        never reads them.
        """
        return None

    def end(self, model: WorldModel, batch: TrainBatch, optimizer: torch.optim.Optimizer) -> None:  # noqa: B027
        """Finish, on the first step after the warm-up (``batch`` is that step's), before its loss."""

    def close(self) -> None:  # noqa: B027 (a hook)
        """Release what the warm-up holds (environments)."""


def make_warmup(config: TrainConfig, policy: Policy | None = None) -> Warmup:
    """The warm-up that ``config.warmup.kind`` names."""
    return WARMUPS[WARMUPS.check("WarmupConfig.kind", config.warmup.kind)](config, policy)


def stored_warmup(training_config: Mapping[str, Any] | None) -> Warmup | None:
    """A finished run's warm-up, rebuilt from its stored config (``TrainConfig.to_dict()``, any version).

    None where the config is unknown, not a valid one, or not a trainer's: its ``warmup.steps`` still
    ``"auto"`` (a trainer stores the number it chose; finding it again would explore the world). Neither
    building it nor reading its ``steps`` explores anything.
    """
    try:
        config = TrainConfig.from_dict(training_config) if training_config else None
    except (ValueError, TypeError):
        return None
    return None if config is None or config.warmup.steps == "auto" else make_warmup(config)


def auto_budget(lengths: tuple[int, ...], steps: int | str = "auto") -> tuple[int, int]:
    """``(steps, warmup.steps)`` for a world of cycles of these ``lengths``: the budget measured on such worlds.

    At most :data:`SMALL_WORLD_STATES` states (the product of the lengths): the small worlds'
    :data:`~dyndis_learn.config.DEFAULT_STEPS` and :data:`~dyndis_learn.config.DEFAULT_WARMUP_STEPS`; more:
    :data:`LARGE_WORLD_STEPS` with a warm-up of :data:`LARGE_WORLD_WARMUP_STEPS`, or of
    :data:`LONG_CYCLE_WARMUP_STEPS` where a cycle is longer than :data:`AUTO_BINS_LONGEST_CYCLE`. With
    ``steps`` of one's own (a number), a larger world's warm-up is the same share of them (Cars3D's half:
    6,000 steps warm up for 3,000, as Cars3D was once measured), so that a shorter run still reaches its
    dynamics phase; a small world's stays 150.

    Example: GridWorld 5 x 5 ``(5, 5)`` and Shapes3D's subset ``(10, 10, 15)``: (1000, 150); the whole Shapes3D
    ``(10, 10, 10, 8, 4, 15)``: (7200, 2400); Cars3D ``(4, 24, 183)``: (7200, 3600), with ``steps=2000``
    (2000, 1000).
    """
    if _small_world(lengths):
        return (DEFAULT_STEPS if steps == "auto" else int(steps)), DEFAULT_WARMUP_STEPS
    warmup = LONG_CYCLE_WARMUP_STEPS if _long_cycle(lengths) else LARGE_WORLD_WARMUP_STEPS
    if steps == "auto":
        return LARGE_WORLD_STEPS, warmup
    return int(steps), round(int(steps) * warmup / LARGE_WORLD_STEPS)


def auto_bf16(lengths: tuple[int, ...], device: torch.device) -> bool:
    """``bf16`` for ``"auto"`` on a world of cycles of these ``lengths`` trained on ``device``.

    True on a world of more than :data:`SMALL_WORLD_STATES` states where the device computes bfloat16 natively
    (:func:`~dyndis_learn.devices.computes_bf16`): there a run takes 15-35 minutes, bfloat16 shortens it by
    up to a third, and the whole Shapes3D, Cars3D and the mixed GridWorld met every criterion with it in 3 of 3
    seeds. A small world's run (1-3 minutes) stays in float32, as its budget was measured.

    Example: Cars3D ``(4, 24, 183)`` on a CPU with AVX512-BF16: True; on CUDA, or GridWorld 5 x 5 ``(5, 5)``
    anywhere: False.
    """
    return not _small_world(lengths) and computes_bf16(device)


def _small_world(lengths: tuple[int, ...]) -> bool:
    """Whether cycles of these ``lengths`` span at most :data:`SMALL_WORLD_STATES` states."""
    return math.prod(lengths) <= SMALL_WORLD_STATES


def _long_cycle(lengths: tuple[int, ...]) -> bool:
    """Whether a cycle of these ``lengths`` is longer than :data:`AUTO_BINS_LONGEST_CYCLE`."""
    return max(lengths) > AUTO_BINS_LONGEST_CYCLE


def _with_budget(config: TrainConfig, budget: tuple[int, int]) -> TrainConfig:
    """``config`` with ``steps`` and ``warmup.steps`` that ask for ``"auto"`` set from ``budget``."""
    steps, warmup_steps = budget
    changes: dict[str, Any] = {}
    if config.steps == "auto":
        changes["steps"] = steps
    if config.warmup.steps == "auto":
        changes["warmup"] = {"steps": warmup_steps}
    return config.replace(**changes) if changes else config


#: Class decorator: register a :class:`Warmup` subclass under a name (``TrainConfig.warmup.kind``).
register_warmup = WARMUPS.register


@WARMUPS.register("none")
class NoWarmup(Warmup):
    """No warm-up: the dynamics terms and the regulariser act from the first step."""

    @property
    def steps(self) -> int:
        """0: there is no warm-up phase."""
        return 0


@WARMUPS.register("graph")
class GraphWarmup(Warmup):
    """Explore the environment, embed its transition graph, and regress the encoder onto that map.

    At the start, random episodes (``warmup.graph.exploration_*``) explore the environment; frames are
    identified as states by their bytes (every DynDis env renders a state the same way each time), and the
    undirected graph of observed transitions is embedded by its Laplacian eigenmap
    (:mod:`dyndis_learn.transition_graph`), turned onto the common planes of the rotations fitted to the
    embedded transitions (:mod:`dyndis_learn.alignment`). A fresh run starts its angles at those rotations
    (and keeps them: the default angle learning rate is 0). Each warm-up step then trains on
    ``batch_size`` explored states: autoencoding plus ``target_weight`` times the distance of each encoding
    to its state's place on the map; afterwards the same distance, on every frame of an explored state,
    keeps the encoder there. Everything is a function of the config alone, so a resumed run makes the same
    map again. At its end it warns when the encoder is still far from the map.
    """

    default_angle_lr = 0.0
    terms = ("target",)

    def __init__(self, config: TrainConfig, policy: Policy | None = None) -> None:
        super().__init__(config, policy)
        self.settings = config.warmup.graph
        self.graph: TransitionGraph | None = None
        self.map: torch.Tensor | None = None  # each explored state's target encoding, (S, n)

    def start(self, model: WorldModel, step: int) -> None:
        """Explore and embed the graph (once per trainer); a fresh run's angles start at the graph's fit."""
        if self.graph is not None or (step >= self.steps and self.settings.target_weight == 0):
            return
        cfg, settings = self.config, self.settings
        collector = RolloutCollector(
            cfg.env.id, settings.exploration_episodes, settings.exploration_steps, cfg.seed, cfg.env.kwargs, self.policy
        )
        try:
            graph = explore(collector, settings.exploration_batches)
        finally:
            collector.close()
        generator = torch.Generator().manual_seed(cfg.seed)
        embedding = laplacian_eigenmap(graph, model.latent_dim, settings.eigenmap_candidates, generator)
        embedding = torch.from_numpy(embedding).float()
        basis, angles = fit_planes(
            embedding[graph.sources],
            embedding[graph.targets],
            torch.from_numpy(graph.actions),
            model.n_actions,
            generator,
        )
        if step == 0:
            with torch.no_grad():
                model.rotations.angles.copy_(angles)
        self.graph, self.map = graph, (embedding @ basis).to(module_device(model))  # on the model's device

    def start_state(self) -> dict[str, torch.Tensor] | None:
        """The explored graph and its map (None before :meth:`start` made them)."""
        if self.graph is None:
            return None
        graph = self.graph
        arrays = {"images": graph.images, "sources": graph.sources, "targets": graph.targets, "actions": graph.actions}
        return {**{k: torch.from_numpy(v) for k, v in arrays.items()}, "map": self.map.cpu()}

    def load_start_state(self, state: dict[str, torch.Tensor], model: WorldModel) -> None:
        """Take the graph and map of another rank's :meth:`start` (state indices by order of first sight)."""
        images = state["images"].numpy()
        index_of = {image.tobytes(): i for i, image in enumerate(images)}
        arrays = [state[k].numpy() for k in ("sources", "targets", "actions")]
        self.graph = TransitionGraph(images, *arrays, index_of)
        self.map = state["map"].to(module_device(model))

    def _states(self, step: int, stream: int) -> np.ndarray:
        if self.graph is None:
            raise RuntimeError("GraphWarmup.start() must run before the warm-up's batches are drawn.")
        rng = np.random.default_rng([self.config.seed, step, stream])
        return rng.integers(0, self.graph.n_states, self.settings.batch_size)

    def batch(self, step: int) -> TrainBatch | None:
        """During the warm-up, ``batch_size`` explored states drawn for ``step`` (episodes of 0 steps)."""
        if step >= self.steps:
            return None
        frames = torch.from_numpy(self.graph.images[self._states(step, _GRAPH_STREAM)])
        return TrainBatch(frames[:, None], torch.zeros(len(frames), 0, dtype=torch.int64))

    def weights(self, weights: LossWeights, step: int, schedules: Schedules) -> LossWeights:
        """The target term throughout; during the warm-up only autoencoding, target and regulariser."""
        weights = dataclasses.replace(weights, target=self.settings.target_weight)
        if step < self.steps:
            weights = dataclasses.replace(weights, uniformity=0.0)
        return weights

    def targets(self, frames: np.ndarray) -> FrameTargets | None:
        """Each frame's state on the map (-1 for a state exploration never saw), on the map's device."""
        if self.graph is None or self.settings.target_weight == 0:
            return None
        return FrameTargets(self.map, torch.from_numpy(self.graph.state_indices(frames)).to(self.map.device))

    @torch.no_grad()
    def end(self, model: WorldModel, batch: TrainBatch, optimizer: torch.optim.Optimizer) -> None:
        """Warn when the encodings of explored states are far from the map: the criteria would not show it."""
        if self.graph is None or self.steps == 0:
            return
        states = self._states(self.steps, _GRAPH_CHECK_STREAM)
        encodings = model.encode(torch.from_numpy(self.graph.images[states]).to(self.map.device))
        distance = float((encodings - self.map[torch.from_numpy(states).to(self.map.device)]).square().sum(-1).mean())
        if distance > GRAPH_FIT_LIMIT:
            advice = "more warmup.steps"
            if self.config.model.encoder_norm == "none":
                advice = f"model.encoder_norm='instance' where a factor changes the whole image; else {advice}"
            warnings.warn(
                f"The encoder ended the graph warm-up at a mean squared distance of {distance:.3g} from the "
                f"graph's map of the states (limit {GRAPH_FIT_LIMIT}): it has not learned every factor, although "
                f"the angles, fitted on the graph, may look exact. Try {advice}.",
                stacklevel=2,
            )


@WARMUPS.register("spectral")
class SpectralWarmup(Warmup):
    """Learn the map by SGD on transition smoothness under whitening, then align the planes.

    Minimising the mean ``||e_t - e_(t-1)||^2`` over observed transitions while the encodings stay white is
    the graph-drawing form of Laplacian eigenmaps (Wu et al., 2019): the encoder converges to the smoothest
    eigenvectors of the transition graph, each factor's first Fourier modes. The warm-up's batches hold many
    short episodes (``warmup.spectral``), which the per-batch whitening needs; both spectral terms fade out
    as the dynamics terms ramp in. With ``align_planes``, the end fits every action's rotation to the
    encoded transitions of the first dynamics batch, turns the latent basis onto their common planes and
    starts the angles at the fit (:mod:`dyndis_learn.alignment`). It needs no exploration, but converges
    slowly where factors change the image by very different amounts.
    """

    terms = ("smoothness", "whitening")

    def __init__(self, config: TrainConfig, policy: Policy | None = None) -> None:
        super().__init__(config, policy)
        self.settings = config.warmup.spectral
        self._collector: RolloutCollector | None = None  # made when a warm-up batch is first needed

    def batch(self, step: int) -> TrainBatch | None:
        """Many short episodes during the warm-up (the same batch every time ``step`` is asked for)."""
        if step >= self.steps:
            self.close()
            return None
        if self._collector is None:
            cfg = self.config
            self._collector = RolloutCollector(
                cfg.env.id,
                self.settings.episodes_per_step,
                self.settings.episode_steps,
                cfg.seed,
                cfg.env.kwargs,
                self.policy,
            )
        episodes = self._collector.collect(step)
        return TrainBatch(torch.from_numpy(episodes.observations), torch.from_numpy(episodes.actions))

    def weights(self, weights: LossWeights, step: int, schedules: Schedules) -> LossWeights:
        """Smoothness and whitening at full weight in the warm-up, fading out as the dynamics ramp in."""
        fade = 1.0 - schedules.dynamics_weight(step)
        return dataclasses.replace(
            weights, smoothness=fade * self.settings.smoothness_weight, whitening=fade * self.settings.whitening_weight
        )

    @torch.no_grad()
    def end(self, model: WorldModel, batch: TrainBatch, optimizer: torch.optim.Optimizer) -> None:
        """Turn the latent basis onto the planes of the actions' rotations fitted to ``batch``."""
        if not self.settings.align_planes:
            return
        encodings = model.encode(batch.frames)
        n = model.latent_dim
        basis, angles = fit_planes(
            encodings[:, :-1].reshape(-1, n),
            encodings[:, 1:].reshape(-1, n),
            batch.actions.reshape(-1),
            model.n_actions,
            torch.Generator().manual_seed(self.config.seed),
        )
        model.rotate_latent_basis(basis)
        model.rotations.angles.copy_(angles)
        optimizer.state.clear()  # Adam's moments belong to the coordinates of the old basis

    def close(self) -> None:
        """Close the warm-up's environment."""
        if self._collector is not None:
            self._collector.close()
            self._collector = None


@WARMUPS.register("cycles")
class CycleWarmup(Warmup):
    """Read the actions' cycles from observations, then map a long walk by dead reckoning and regress onto it.

    At the start, :func:`~dyndis_learn.cycles.discover_cycles` finds from short action sequences which
    actions undo each other and each cycle's length ``N``. Cycle ``k`` gets the latent plane
    ``(2k, 2k + 1)`` and its actions the rotations by ``+-2 pi / N`` there; a fresh run starts its angles at
    them (and keeps them: the default angle learning rate is 0). Then one environment walks
    ``walk_steps`` steps from one random start, repeating each randomly chosen action a random number of
    times up to its cycle's length (so that long cycles are crossed in a few strides). Counting the actions
    taken places every frame of the walk on the torus exactly: cycle ``k``'s position after the walk's
    first ``t`` steps is the number of its forward minus backward actions among them, modulo ``N``. No
    state is identified by its image, so observation noise changes nothing. That position, at the angle
    ``2 pi v / N`` of each cycle's plane (a constant point of any further plane), is each frame's target
    encoding.

    Each warm-up step trains on ``batch_size`` frames of the walk: autoencoding plus ``target_weight`` times
    the distance of each encoding to its target (with angle bins, the decoder's look-up reads the target, not
    the encoding: ``decoder_reads_targets``). The dynamics phase trains on windows of the same walk
    (with its actions), where the same distance keeps the encoder on the map: on fresh episodes, whose
    frames have no target, the dynamics terms alone pulled a large world's encoder off it within ten steps.
    The latent is a torus (``model.latent_manifold="torus"``), so no factor can shrink away. Everything is
    a function of the config, so a resumed run walks the same walk again.
    """

    default_angle_lr = 0.0
    terms = ("target",)

    def __init__(self, config: TrainConfig, policy: Policy | None = None) -> None:
        super().__init__(config, policy)
        self.settings = config.warmup.cycles
        self.structure: CycleStructure | None = None
        self.walk: CycleWalk | None = None
        self._map: torch.Tensor | None = None  # the walk's targets on the model's device

    def _discover(self) -> CycleStructure:
        """The world's cycles, found once per warm-up."""
        if self.structure is None:
            cfg, settings = self.config, self.settings
            self.structure = discover_cycles(
                cfg.env.id, cfg.env.kwargs, seed=cfg.seed, starts=settings.starts, max_cycle=settings.max_cycle
            )
        return self.structure

    def resolve(self, config: TrainConfig) -> TrainConfig:
        """The settings read from the cycles (found here, once): ``latent_dim``, ``angle_bins``, the budget, ``bf16``.

        ``model.latent_dim="auto"`` becomes two dimensions per cycle; ``model.angle_bins="cycles"`` the least
        common multiple of their lengths, ``"each_cycle"`` a number per circle from its own cycle
        (:meth:`_cycle_bins`), and ``"auto"`` the common multiple where a cycle is longer than
        :data:`AUTO_BINS_LONGEST_CYCLE` or the world has more than :data:`SMALL_WORLD_STATES` states (else None);
        ``warmup.cycles.walk_steps="auto"`` the walk's length (:meth:`walk_steps`); ``steps`` and ``warmup.steps``
        :func:`auto_budget`'s; ``bf16="auto"`` :func:`auto_bf16`'s for ``config.device`` on this machine.

        Raises:
            CycleStructureError: If that multiple exceeds :data:`MAX_CYCLE_BINS` (naming the setting).
        """
        model, changes = config.model, {}
        if model.latent_dim == "auto":
            changes["latent_dim"] = self._discover().planes_needed()
        if model.angle_bins in ("auto", "cycles", "each_cycle"):
            latent_dim = changes.get("latent_dim", model.latent_dim)
            changes["angle_bins"] = self._cycle_bins(model.angle_bins, latent_dim // 2)
        if config.warmup.cycles.walk_steps == "auto":
            config = config.replace(warmup={"cycles": {"walk_steps": self.walk_steps()}})
        config = config.replace(model=changes) if changes else config
        config = _with_budget(config, self.budget())
        if config.bf16 == "auto":
            config = config.replace(bf16=auto_bf16(self._discover().lengths, resolve_device(config.device)))
        return config

    def budget(self) -> tuple[int, int]:
        """``(steps, warmup.steps)`` for ``"auto"``: :func:`auto_budget` of the cycles found (and ``steps``)."""
        return auto_budget(self._discover().lengths, self.config.steps)

    def _cycle_bins(self, asked: str, circles: int) -> int | tuple[int, ...] | None:
        """Bins for ``model.angle_bins=asked`` ("auto", "cycles" or "each_cycle") on ``circles`` circles.

        ``"each_cycle"``: per circle, :data:`BINS_PER_VALUE` times its cycle's length (cycle ``k`` turns circle
        ``k``; a further circle holds one value). Else the lengths' least common multiple for every circle, or
        None (``"auto"`` on a small world of short cycles).
        """
        lengths = self._discover().lengths
        if asked == "auto" and _small_world(lengths) and not _long_cycle(lengths):
            return None
        if asked == "each_cycle":
            self._discover().check_latent_dim(2 * circles)
            values = lengths + (1,) * (circles - len(lengths))
            return tuple(BINS_PER_VALUE * n for n in values)
        bins = math.lcm(*lengths)
        if bins > MAX_CYCLE_BINS:
            raise CycleStructureError(
                f"model.angle_bins={asked!r} needs {bins} bins per circle (the least common multiple of the cycle "
                f"lengths {list(lengths)}), more than {MAX_CYCLE_BINS}: set model.angle_bins to a number (or None)."
            )
        return bins

    def walk_steps(self) -> int:
        """Steps of the walk: ``warmup.cycles.walk_steps``, or for ``"auto"`` a number from the cycles found.

        That is :data:`WALK_STEPS_PER_STATE` per state of the world the cycles span, within
        :data:`AUTO_WALK_STEPS`: 20,000 for Shapes3D's subset, 60,000 for Cars3D and the whole Shapes3D.
        """
        if self.settings.walk_steps != "auto":
            return self.settings.walk_steps
        shortest, longest = AUTO_WALK_STEPS
        return min(longest, max(shortest, WALK_STEPS_PER_STATE * math.prod(self._discover().lengths)))

    def start(self, model: WorldModel, step: int) -> None:
        """Find the cycles and walk (once per trainer); a fresh run's angles start at the cycles' rotations."""
        cfg, structure = self.config, self._discover()
        angles = structure.givens_angles(model.latent_dim)  # checks that the latent is large enough
        if step == 0:
            with torch.no_grad():
                model.rotations.angles.copy_(angles)
        if self.walk is None:
            steps = self.walk_steps()
            self.walk = walk_cycles(
                cfg.env.id, cfg.env.kwargs, structure, steps, model.latent_dim, cfg.seed, self.settings.longest_stride
            )
            self._map = torch.from_numpy(self.walk.targets).to(module_device(model))

    def start_state(self) -> dict[str, torch.Tensor] | None:
        """The cycles found and the walk (None before :meth:`start` made them)."""
        if self.structure is None or self.walk is None:
            return None
        structure, walk = self.structure, self.walk
        cycles = [[c.forward, -1 if c.backward is None else c.backward, c.length] for c in structure.cycles]
        state = {
            "cycles": torch.tensor(cycles, dtype=torch.int64).reshape(-1, 3),
            "identities": torch.tensor(structure.identities, dtype=torch.int64),
            "sizes": torch.tensor([structure.n_actions]),
            "distances": torch.tensor([structure.noise_floor, structure.step_distance], dtype=torch.float64),
            "frames": torch.from_numpy(walk.frames),
            "positions": torch.from_numpy(walk.positions),
            "targets": torch.from_numpy(walk.targets),
            "actions": torch.from_numpy(walk.actions),
        }
        if walk.factors is not None:
            state["factors"] = torch.from_numpy(walk.factors)
        return state

    def load_start_state(self, state: dict[str, torch.Tensor], model: WorldModel) -> None:
        """Take the cycles and the walk of another rank's :meth:`start` (one walk: one frame of reference)."""
        cycles = tuple(
            Cycle(forward, None if backward < 0 else backward, length)
            for forward, backward, length in state["cycles"].tolist()
        )
        noise_floor, step_distance = state["distances"].tolist()
        identities = tuple(state["identities"].tolist())
        self.structure = CycleStructure(cycles, identities, int(state["sizes"][0]), noise_floor, step_distance)
        factors = state["factors"].numpy() if "factors" in state else None
        arrays = (state[k].numpy() for k in ("frames", "positions", "targets", "actions"))
        self.walk = CycleWalk(*arrays, factors)
        self._map = state["targets"].to(module_device(model))

    def batch(self, step: int) -> TrainBatch | None:
        """Frames of the walk drawn for ``step`` (the same every time ``step`` is asked for).

        ``batch_size`` single frames during the warm-up, then ``data.episodes_per_step`` windows of
        ``data.episode_steps`` steps, with the actions taken.
        """
        if self.walk is None:
            raise RuntimeError("CycleWarmup.start() must run before the warm-up's batches are drawn.")
        rng = np.random.default_rng([self.config.seed, step, _WALK_STREAM])
        walk = self.walk
        if step < self.steps:
            frames = torch.from_numpy(walk.frames[rng.integers(0, len(walk.frames), self.settings.batch_size)])
            return TrainBatch(frames[:, None], torch.zeros(len(frames), 0, dtype=torch.int64))
        data = self.config.data
        length = min(data.episode_steps, len(walk.actions))
        starts = rng.integers(0, len(walk.actions) - length + 1, data.episodes_per_step)[:, None]
        steps = starts + np.arange(length)
        frames = np.concatenate([walk.frames[steps], walk.frames[steps[:, -1:] + 1]], axis=1)
        return TrainBatch(torch.from_numpy(frames), torch.from_numpy(walk.actions[steps]))

    def weights(self, weights: LossWeights, step: int, schedules: Schedules) -> LossWeights:
        """The target term throughout, and no uniformity.

        On the torus no factor can collapse, and spreading the frames of one window apart would fight the map.
        """
        return dataclasses.replace(weights, target=self.settings.target_weight, uniformity=0.0)

    def seen_states(self) -> np.ndarray | None:
        """The walk's states: every step, warm-up and dynamics phase alike, trains on the walk's frames."""
        return None if self.walk is None else self.walk.factors

    def targets(self, frames: np.ndarray) -> FrameTargets | None:
        """Each frame's place on the torus where its image is one of the walk's (else -1)."""
        if self.walk is None or self.settings.target_weight == 0:
            return None
        states = torch.from_numpy(self.walk.frame_indices(frames)).to(self._map.device)
        return FrameTargets(self._map, states, self.settings.decoder_reads_targets)
