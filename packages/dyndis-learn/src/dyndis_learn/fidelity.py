"""Fidelity of a trained model to the true states.

Its encoder (a probe of every factor), its decoder (are decoded pictures nearest their own state's image?),
the mean-image baseline, and whether the dynamics phase was trained to the end.

The states and their images come from the environment's evaluation contract only:
``factor_space.all_states()`` / ``sample_states`` and ``render_states``; the imagined rollouts' true states
follow ``factor_space.step``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dyndis_learn.baselines.base import LatentPredictiveModel, PredictiveModel, imagined_frames
from dyndis_learn.config import EvalConfig
from dyndis_learn.devices import module_device
from dyndis_learn.metrics import circular_probe
from dyndis_learn.model import WorldModel, encode_checked, encode_frames, frames_to_float, synthesis_modes_for
from dyndis_learn.results import Fidelity, StateSetFidelity
from dyndis_learn.rollouts import EpisodeBatch

__all__ = [
    "GRID_STATES",
    "IMAGINED_FRAMES_PER_ROLLOUT",
    "IMAGINED_ROLLOUTS",
    "IMAGINED_STEPS",
    "MIN_SET_STATES",
    "PROBE_STATES",
    "SAMPLE_STATES",
    "dynamics_trained",
    "encode_chunks",
    "evaluation_contract",
    "evaluation_states",
    "fidelity",
    "imagined_rollouts",
    "judged_imagined_steps",
    "mean_image_bce",
    "probe_states",
    "seen_and_unseen_states",
]

_CHUNK_FRAMES = 1024  # frames encoded or decoded per pass
_RENDER_STATES = 8192  # states rendered at once for their encodings (Cars3D's 64 x 64 images: 100 MB)

#: Pictures judged: every state of the environment up to this many, else a uniform sample of
#: :data:`SAMPLE_STATES` states drawn with ``EvalConfig.seed`` (each picture of a sample is compared with the
#: rendered images of every state one factor away: hundreds for Cars3D).
GRID_STATES = 5_000
SAMPLE_STATES = 2_000
#: Encodings probed, per set (all states; those training saw; those it did not): every state of the set up to
#: this many, else a uniform seeded sample of this many. An encoding costs no rendered candidates, and a probe
#: on few states is coarse: on Cars3D's unseen states one car placed far off moves R^2 by about 0.003.
PROBE_STATES = 20_000
#: Fewest states of a set (seen, or unseen, by training) judged on their own: a probe on fewer says little.
MIN_SET_STATES = 100
_SEEN_STREAM, _UNSEEN_STREAM, _IMAGINED_STREAM, _PROBE_STREAM = 1, 2, 3, 4  # entropy tags of the seeded samples
#: Imagined rollouts judged by ``decoder_fidelity``: :data:`IMAGINED_ROLLOUTS` of them, each from a uniformly
#: drawn state under uniformly random actions for ``K = min(IMAGINED_STEPS, horizon)`` steps, with
#: :data:`IMAGINED_FRAMES_PER_ROLLOUT` frames judged in each, evenly spaced up to ``k = K`` (10, 20, ..., 100).
#: Frames of one rollout share its start, so their errors come in runs: many short samples of many rollouts
#: judge a 99% threshold far more precisely than every frame of a few (Cars3D: 32 rollouts judged whole
#: gave 94.8-99.6% for one model, 256 gave 98.1%; docs/benchmarks/learn_structure.md).
IMAGINED_STEPS = 100
IMAGINED_ROLLOUTS = 320
IMAGINED_FRAMES_PER_ROLLOUT = 10
_CANDIDATE_BYTES = 64 * 2**20  # rendered candidate images held at once by the nearest-image test
_EXACT_BLOCK = 256  # pixels summed in float32: 256 * 255^2 < 2^24, so the sums of squared differences are exact


# -- fidelity, the mean image, the training ----------------------------------------------------------------


def evaluation_contract(env: Any) -> Any | None:
    """The object holding ``factor_space`` and ``render_states`` (the env or its unwrapped core), or None."""
    for candidate in (env, getattr(env, "unwrapped", None)):
        if hasattr(candidate, "factor_space") and callable(getattr(candidate, "render_states", None)):
            return candidate
    return None


@torch.no_grad()
def _decode_uint8(model: WorldModel | LatentPredictiveModel, latents: torch.Tensor) -> np.ndarray:
    """Latents (M, n) -> uint8 images (M, H, W, C), ``round(255 * sigmoid(logits))``, in chunks."""
    out = np.empty((len(latents), *model.image_shape), dtype=np.uint8)
    for start in range(0, len(latents), _CHUNK_FRAMES):
        part = model.decode(latents[start : start + _CHUNK_FRAMES])
        out[start : start + _CHUNK_FRAMES] = (part * 255).round().to(torch.uint8).cpu().numpy()
    return out


@torch.no_grad()
def evaluation_states(space: Any, seed: int) -> tuple[np.ndarray, bool]:
    """The states a model is judged on: ``(states (S, F), grid)``.

    Every state of ``space`` (``grid`` True) when there are at most :data:`GRID_STATES`, else
    :data:`SAMPLE_STATES` states drawn uniformly with ``seed``.
    """
    grid = int(space.n_states) <= GRID_STATES
    states = space.all_states() if grid else space.sample_states(SAMPLE_STATES, np.random.default_rng(seed))
    return states, grid


def encode_chunks(model: WorldModel | PredictiveModel, images: np.ndarray, synthesis_modes: int = 1) -> torch.Tensor:
    """uint8 images (M, H, W, C) -> encodings (M, n) on the model's device, in chunks (call under no_grad).

    ``synthesis_modes`` above 1: the decoder-checked encodings (:func:`~dyndis_learn.model.encode_checked`).
    """
    device = module_device(model)
    chunks = range(0, len(images), _CHUNK_FRAMES)
    parts = [
        encode_checked(model, torch.from_numpy(images[s : s + _CHUNK_FRAMES]).to(device), synthesis_modes)
        for s in chunks
    ]
    return torch.cat(parts) if parts else torch.empty(0, model.latent_dim, device=device)


def probe_states(space: Any, seed: int) -> np.ndarray:
    """The states whose encodings the probe judges: every state up to :data:`PROBE_STATES`, else a seeded sample."""
    if int(space.n_states) <= PROBE_STATES:
        return space.all_states()
    return space.sample_states(PROBE_STATES, np.random.default_rng([seed, _PROBE_STREAM]))


class _StateEncodings:
    """A model's encodings of states, each state rendered and encoded once however many sets judge it.

    ``modes`` above 1 (an angle-bin :class:`~dyndis_learn.model.WorldModel`): the decoder-checked encodings
    (:meth:`~dyndis_learn.model.WorldModel.encode_by_synthesis`), and the encoder's own beside them.
    """

    def __init__(self, model: WorldModel | PredictiveModel, contract: Any, modes: int) -> None:
        self.model, self.contract, self.modes = model, contract, modes
        self.strides = np.asarray(contract.factor_space.strides, dtype=np.int64)
        self.codes = np.empty(0, dtype=np.int64)  # sorted flat indices of the states encoded so far
        none = torch.empty(0, model.latent_dim, device=module_device(model))
        self.judged = none  # their encodings, in the order of `codes`
        self.own = none if modes > 1 else None

    def __call__(self, states: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(judged, own)`` encodings of ``states`` (S, F), rows in their order; ``own`` None for one mode."""
        codes = np.asarray(states, dtype=np.int64) @ self.strides
        new = np.setdiff1d(codes, self.codes)
        if len(new):
            judged, own = [self.judged], [self.own]
            space, device = self.contract.factor_space, self.judged.device
            for start in range(0, len(new), _RENDER_STATES):  # rendered in blocks: bounds the images' memory
                images = self.contract.render_states(_codes_to_states(space, new[start : start + _RENDER_STATES]))
                if self.own is None:
                    judged.append(encode_chunks(self.model, images))
                    continue
                for part in range(0, len(images), _CHUNK_FRAMES):  # one pass of the encoder gives both
                    floats = frames_to_float(torch.from_numpy(images[part : part + _CHUNK_FRAMES]).to(device))
                    outputs = encode_frames(self.model.encoder, floats)
                    own.append(self.model.latents(outputs))
                    judged.append(self.model.checked_latents(outputs, floats, self.modes))
            order = np.argsort(np.concatenate([self.codes, new]), kind="stable")
            self.codes = np.concatenate([self.codes, new])[order]
            index = torch.from_numpy(order).to(self.judged.device)
            self.judged = torch.cat(judged)[index]
            if self.own is not None:
                self.own = torch.cat(own)[index]
        rows = torch.from_numpy(np.searchsorted(self.codes, codes)).to(self.judged.device)
        return self.judged[rows], None if self.own is None else self.own[rows]


def _probe(
    encodings: torch.Tensor | None, states: np.ndarray, active: list[int], sizes: np.ndarray
) -> tuple[float, ...] | None:
    """Per active factor, :func:`~dyndis_learn.metrics.circular_probe`'s R^2 (None without encodings)."""
    if encodings is None:
        return None
    r2 = circular_probe(encodings.cpu().numpy(), states[:, active], sizes[active].tolist())
    return tuple(float(r) for r in r2)


def _squared_distances(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Exact squared L2 distances (float64 holds these integer sums exactly) of (Q, D) to (M, D) uint8 rows."""
    q = queries.astype(np.float64)
    c = candidates.astype(np.float64)
    return (q * q).sum(1)[:, None] - 2.0 * (q @ c.T) + (c * c).sum(1)[None, :]


def _squared_distances_to_each(query: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Exact squared L2 distances (float64) of one uint8 row (D,) to each uint8 row of (V, D).

    In float32, by blocks of :data:`_EXACT_BLOCK` pixels: every partial sum is an integer below 2^24, which
    float32 holds exactly in any order of summation; the blocks' sums are added in float64. Called for one
    candidate set at a time, so that its images stay in the CPU's cache; one buffer, changed in place (each
    new tensor of a Cars3D candidate set is 10 MB to write: in place, the test takes half the time).
    """
    squared = candidates.float().sub_(query.float()).square_()
    padding = -squared.shape[1] % _EXACT_BLOCK
    if padding:  # F.pad copies even when it adds nothing
        squared = F.pad(squared, (0, padding))
    return squared.view(len(candidates), -1, _EXACT_BLOCK).sum(-1).sum(-1, dtype=torch.float64)


def _nearest_own(
    contract: Any, grid: np.ndarray | None, decoded: np.ndarray, truths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each decoded image (Q, H, W, C) is nearest to its own state's image, and which factors beat it.

    Returns ``(right (Q,), confused (Q, F))``; ties count as right.

    With ``grid`` (the images of every state, in flat-index order) every state is a candidate, and a wrong image
    confuses the factors in which its nearest state differs; without it the candidates are the states that differ
    from the true state in one factor, rendered in chunks, and a factor is confused where one of its values is
    nearer than the true state's.
    """
    space = contract.factor_space
    sizes = np.asarray(space.sizes, dtype=np.int64)
    queries = decoded.reshape(len(decoded), -1)
    right = np.empty(len(decoded), dtype=bool)
    confused = np.zeros((len(decoded), len(sizes)), dtype=bool)
    if grid is not None:
        flat_grid = grid.reshape(len(grid), -1)
        strides = np.asarray(space.strides, dtype=np.int64)
        own = truths @ strides
        for start in range(0, len(queries), 256):
            part = slice(start, start + 256)
            d2 = _squared_distances(queries[part], flat_grid)
            rows = np.arange(len(d2))
            right[part] = d2[rows, own[part]] <= d2.min(axis=1)
            nearest = (d2.argmin(axis=1)[:, None] // strides) % sizes  # the nearest state's factor values
            confused[part] = (nearest != truths[part]) & ~right[part, None]
        return right, confused
    variants = [(k, v) for k in range(len(sizes)) if sizes[k] > 1 for v in range(int(sizes[k]))]
    factor_of = np.array([k for k, _ in variants])
    per_state = max(1, _CANDIDATE_BYTES // max(1, len(variants) * queries.shape[1]))
    for start in range(0, len(queries), per_state):
        part = slice(start, start + per_state)
        truth = truths[part]
        candidates = np.repeat(truth[:, None, :], len(variants), axis=1)
        for m, (k, v) in enumerate(variants):
            candidates[:, m, k] = v
        images = torch.from_numpy(contract.render_states(candidates).reshape(len(truth), len(variants), -1))
        q = torch.from_numpy(queries[part])
        d2 = torch.stack([_squared_distances_to_each(q[i], images[i]) for i in range(len(truth))]).numpy()
        # the true state is among the variants: the first varied factor at its own value (column = that value)
        own_d2 = d2[np.arange(len(truth)), truth[:, factor_of[0]]]
        right[part] = own_d2 <= d2.min(axis=1)
        beats = d2 < own_d2[:, None]  # the true value's own variant never beats itself
        for k in np.unique(factor_of):
            confused[part, k] = beats[:, factor_of == k].any(axis=1)
    return right, confused


def _codes_to_states(space: Any, codes: np.ndarray) -> np.ndarray:
    """Flat state indices (row-major over the factors) -> value indices (S, F)."""
    return (codes[:, None] // np.asarray(space.strides, dtype=np.int64)) % np.asarray(space.sizes, dtype=np.int64)


def seen_and_unseen_states(space: Any, seen_states: np.ndarray, seed: int) -> tuple[float, np.ndarray, np.ndarray]:
    """``(seen fraction, seen states, unseen states)``: up to :data:`PROBE_STATES` of each, uniformly drawn.

    Args:
        space: The factor space (``n_states``, ``sizes``, ``strides``).
        seen_states: Value indices (S, F) of the states training saw (repeats allowed).
        seed: Seed of the two samples (each set whole where it has at most :data:`PROBE_STATES`).
    """
    n_states = int(space.n_states)
    seen = np.unique(np.asarray(seen_states, dtype=np.int64) @ np.asarray(space.strides, dtype=np.int64))
    rng = np.random.default_rng([seed, _SEEN_STREAM])
    drawn_seen = seen if len(seen) <= PROBE_STATES else np.sort(rng.choice(seen, PROBE_STATES, replace=False))
    rng = np.random.default_rng([seed, _UNSEEN_STREAM])
    if n_states - len(seen) <= PROBE_STATES:
        unseen = np.setdiff1d(np.arange(n_states, dtype=np.int64), seen, assume_unique=True)
    else:  # draw until enough: more than PROBE_STATES states are unseen, so each round finds some
        found = np.empty(0, dtype=np.int64)
        while len(found) < PROBE_STATES:
            draws = rng.integers(0, n_states, 4 * PROBE_STATES)
            found = np.concatenate([found, draws[~np.isin(draws, seen)]])
            found = found[np.sort(np.unique(found, return_index=True)[1])]  # first draws kept, in draw order
        unseen = found[:PROBE_STATES]
    return len(seen) / n_states, _codes_to_states(space, drawn_seen), _codes_to_states(space, unseen)


def _state_set(
    encode: _StateEncodings, table: np.ndarray | None, states: np.ndarray, active: list[int], seed: int
) -> StateSetFidelity | None:
    """The probe and the reconstructions on ``states`` alone (None for fewer than :data:`MIN_SET_STATES`).

    The pictures are judged on :data:`SAMPLE_STATES` of them at most, drawn with ``seed``.
    """
    if len(states) < MIN_SET_STATES:
        return None
    model, contract = encode.model, encode.contract
    sizes = np.asarray(contract.factor_space.sizes, dtype=np.int64)
    encodings, own = encode(states)
    pictured = np.arange(len(states))
    if len(states) > SAMPLE_STATES:
        pictured = np.sort(np.random.default_rng(seed).choice(len(states), SAMPLE_STATES, replace=False))
    rate = None
    if not isinstance(model, PredictiveModel) or isinstance(model, LatentPredictiveModel):
        decoded = _decode_uint8(model, encodings[torch.from_numpy(pictured).to(encodings.device)])
        rate = _right_rate(_nearest_own(contract, table, decoded, states[pictured])[0])
    probe, own_probe = _probe(encodings, states, active, sizes), _probe(own, states, active, sizes)
    return StateSetFidelity(len(states), probe, rate, own_probe, len(pictured))


@torch.no_grad()
def fidelity(
    model: WorldModel | PredictiveModel,
    env: Any,
    config: EvalConfig,
    seen_states: np.ndarray | None = None,
) -> Fidelity | None:
    """Encoder and decoder fidelity on the environment's states (see :class:`Fidelity`).

    Args:
        model: The world model (a model without rotations, :mod:`dyndis_learn.baselines`, is judged on its own
            imagined frames; one that does not reconstruct its input has no reconstruction rate).
        env: An environment with the evaluation contract: ``factor_space`` (``all_states``, ``sample_states``,
            ``sizes``, ``strides``, ``names``, ``n_actions``, ``step``) and ``render_states`` (a single env's
            ``unwrapped`` core or a native vector env).
        config: ``seed`` (of the sample of states, with more than :data:`GRID_STATES` states, and of the
            imagined rollouts), ``horizon`` (imagined rollouts of ``min(IMAGINED_STEPS, horizon)`` steps) and
            ``synthesis_modes`` (which encodings are judged).
        seen_states: Value indices (S, F) of the states training saw (``info["factors"]`` of its frames), to
            judge seen and unseen states separately (:func:`seen_and_unseen_states`); None: not judged.

    Returns:
        The figures, or None if ``env`` has no evaluation contract.
    """
    contract = evaluation_contract(env)
    if contract is None:
        return None
    model.eval()
    space = contract.factor_space
    sizes = np.asarray(space.sizes, dtype=np.int64)
    active = [k for k in range(len(sizes)) if sizes[k] > 1]
    modes = synthesis_modes_for(model, config.synthesis_modes, "evaluation.synthesis_modes")
    encode = _StateEncodings(model, contract, modes)
    probed = probe_states(space, config.seed)
    probe_encodings, own_encodings = encode(probed)
    probe, own_probe = _probe(probe_encodings, probed, active, sizes), _probe(own_encodings, probed, active, sizes)
    states, grid = evaluation_states(space, config.seed)
    table = contract.render_states(states) if grid else None
    reconstructed = confusion = None
    if not isinstance(model, PredictiveModel) or isinstance(model, LatentPredictiveModel):
        right, confused = _nearest_own(contract, table, _decode_uint8(model, encode(states)[0]), states)
        reconstructed, confusion = _right_rate(right), tuple(float(c) for c in confused[:, active].mean(axis=0))
    steps = min(IMAGINED_STEPS, config.horizon)
    right = _imagined(model, contract, table, steps, config.seed, modes)
    imagined, imagined_last = _right_rate(right), _right_rate(right[:, -1])
    seen_fraction = seen = unseen = None
    if seen_states is not None:
        seen_fraction, seen_set, unseen_set = seen_and_unseen_states(space, seen_states, config.seed)
        pictures = np.random.SeedSequence([config.seed, _PROBE_STREAM]).generate_state(2)
        seen = _state_set(encode, table, seen_set, active, int(pictures[0]))
        unseen = _state_set(encode, table, unseen_set, active, int(pictures[1]))
    return Fidelity(
        states=len(states),
        probe_states=len(probed),
        grid=grid,
        candidates="all_states" if grid else "one_factor_neighbours",
        factors=tuple(space.names[k] for k in active),
        probe_r2=probe,
        reconstruction_rate=reconstructed,
        imagined_steps=steps,
        imagined_rate=imagined,
        imagined_rate_last=imagined_last,
        imagined_rollouts=IMAGINED_ROLLOUTS,
        reconstruction_confusion=confusion,
        seen_fraction=seen_fraction,
        seen=seen,
        unseen=unseen,
        synthesis_modes=modes,
        encoder_probe_r2=own_probe,
    )


def judged_imagined_steps(steps: int) -> list[int]:
    """The steps ``k`` of an imagined rollout of ``steps`` steps whose frames are judged.

    Evenly spaced, the last ``steps``: ``ceil(steps * j / IMAGINED_FRAMES_PER_ROLLOUT)`` for ``j = 1 ..
    IMAGINED_FRAMES_PER_ROLLOUT`` (every step of a rollout shorter than that).
    """
    per = IMAGINED_FRAMES_PER_ROLLOUT
    return sorted({-(-steps * j // per) for j in range(1, per + 1)})


def imagined_rollouts(space: Any, rollouts: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly drawn start states, uniformly random actions and the true states they lead to.

    Args:
        space: The environment's ``factor_space`` (``sample_states``, ``n_actions``, ``step``).
        rollouts: Number of rollouts ``R``.
        steps: Actions per rollout ``K``.
        seed: Seed of the starts and the actions (``EvalConfig.seed``; a stream of its own).

    Returns:
        ``(states (R, K + 1, F), actions (R, K))``: ``states[:, 0]`` are the starts, ``states[:, k]`` the state
        after the first ``k`` actions.
    """
    rng = np.random.default_rng([seed, _IMAGINED_STREAM])
    starts = space.sample_states(rollouts, rng)
    actions = rng.integers(0, space.n_actions, size=(rollouts, steps), dtype=np.int64)
    states = np.empty((rollouts, steps + 1, starts.shape[-1]), dtype=np.int64)
    states[:, 0] = starts
    for t in range(steps):
        states[:, t + 1] = space.step(states[:, t], actions[:, t])
    return states, actions


def _imagined(
    model: WorldModel | PredictiveModel, contract: Any, table: np.ndarray | None, steps: int, seed: int, modes: int
) -> np.ndarray:
    """Whether each judged frame of every imagined rollout is right: shape (IMAGINED_ROLLOUTS, judged steps)."""
    judged = judged_imagined_steps(steps)
    states, actions = imagined_rollouts(contract.factor_space, IMAGINED_ROLLOUTS, steps, seed)
    device = module_device(model)
    first = torch.from_numpy(contract.render_states(states[:, 0])).to(device)
    moves = torch.from_numpy(actions).to(device)
    if isinstance(model, PredictiveModel):
        decoded = imagined_frames(model, first, moves, judged).reshape(-1, *model.image_shape)
    else:
        latents = model.rollout(encode_checked(model, first, modes), moves)[:, judged]  # (R, J, n)
        decoded = _decode_uint8(model, latents.reshape(-1, model.latent_dim))
    truths = states[:, judged].reshape(-1, states.shape[-1])
    return _nearest_own(contract, table, decoded, truths)[0].reshape(len(states), len(judged))


def _right_rate(right: np.ndarray) -> float:
    return float(np.mean(right))


def mean_image_bce(batch: EpisodeBatch, k: int) -> tuple[float, float]:
    """``(BCE of the mean frame, BCE of the frames against themselves)`` at step ``k``, averaged over episodes.

    The mean frame is the per-pixel mean of every frame of the batch; the second figure is the frames' own
    entropy, the floor of any prediction's BCE (anti-aliased pixels are neither 0 nor 1).
    """
    mean = torch.from_numpy(batch.observations.mean(axis=(0, 1), dtype=np.float64).astype(np.float32) / 255.0)
    frames = frames_to_float(torch.from_numpy(batch.observations[:, k]))
    against_mean = F.binary_cross_entropy(mean.expand_as(frames), frames)
    entropy = F.binary_cross_entropy(frames, frames)
    return float(against_mean), float(entropy)


def dynamics_trained(history: Sequence[Mapping[str, Any]] | None) -> tuple[bool | None, float | None]:
    """``(trained?, last logged dynamics_weight)`` from a training history.

    A run is trained when its last logged ``dynamics_weight`` reached 1: the warm-up and the dynamics ramp
    (``warmup.steps`` then ``optim.dynamics_ramp_steps``) are behind it. The trainer always logs the last
    step. None without a history (or rows without the weight); an empty history (no step taken) is False.
    """
    if history is None:
        return None, None
    if len(history) == 0:
        return False, None
    weight = history[-1].get("dynamics_weight")
    if weight is None:
        return None, None
    return float(weight) >= 1.0, float(weight)
