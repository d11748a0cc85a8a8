"""Gymnasium observation wrappers that replace images by their learned latent vectors.

For agents outside Stable-Baselines3: the encoder of a trained world model becomes a compact state. On a
Goal task the goals become latent vectors too, and :class:`LatentGoalReward` decides when a latent goal is
reached (the ``compute_reward`` that SB3's HER calls).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import torch
from gymnasium import spaces

from dyndis_learn.devices import module_device
from dyndis_learn.model import encode_checked, synthesis_modes_for

__all__ = ["MAX_GOAL_STATES", "FactorOneHotObservation", "LatentGoalReward", "LatentObservation", "encode_images"]

#: The most states :class:`LatentGoalReward` encodes for its nearest-state rule (by default).
MAX_GOAL_STATES = 50_000


@torch.no_grad()
def encode_images(model: Any, images: npt.NDArray[np.uint8], synthesis_modes: int = 1) -> npt.NDArray[np.float32]:
    """Latent vectors of uint8 images of shape (..., H, W, C) -> float32 (..., n), on the unit sphere.

    ``synthesis_modes`` above 1: an angle-bin model's decoder-checked encodings
    (:func:`~dyndis_learn.model.encode_checked`).
    """
    frames = torch.as_tensor(np.asarray(images), device=module_device(model))
    return encode_checked(model, frames, synthesis_modes).cpu().numpy().astype(np.float32)


def latent_space(space: spaces.Space, model: Any, name: str = "env") -> spaces.Box | spaces.Dict:
    """The observation space of ``space``'s images encoded by ``model``: a latent Box, or a Dict of them.

    Raises:
        ValueError: Unless ``space`` is a uint8 image Box of the model's image shape, or a Dict of them.
    """
    latent = spaces.Box(-1.0, 1.0, (model.latent_dim,), np.float32)
    image_shape = tuple(model.image_shape)

    def is_image(box: spaces.Space) -> bool:
        return isinstance(box, spaces.Box) and box.dtype == np.uint8 and box.shape[-3:] == image_shape

    if isinstance(space, spaces.Dict) and space.spaces and all(is_image(s) for s in space.spaces.values()):
        return spaces.Dict({key: latent for key in space.spaces})
    if is_image(space):
        return latent
    raise ValueError(
        f"`{name}` must have uint8 image observations of shape {image_shape} (or a Dict of them) "
        f"to match the model, got {space}."
    )


def is_goal_space(space: spaces.Space) -> bool:
    """Whether ``space`` is a goal-conditioned Dict (``achieved_goal`` and ``desired_goal`` keys)."""
    return isinstance(space, spaces.Dict) and {"achieved_goal", "desired_goal"} <= set(space.spaces)


class LatentGoalReward:
    """``compute_reward`` / ``compute_terminated`` of a Goal task whose goals are latent vectors.

    **Nearest-state rule** (the default, ``threshold=None``): every state of the environment
    (``factor_space.all_states()``) is rendered (``frames.batch``) and encoded once, on the first call, in
    chunks. Each latent then stands for the state whose encoding is nearest to it (Euclidean distance; for
    points on the unit sphere the same as the largest cosine), and a goal is reached where the achieved
    and the desired latent stand for the same state. For the encodings of rendered states this is the true
    success (the env's own reward) as long as the encoder gives different states different codes; it needs
    no tolerance, since the float noise of encoding in other batch sizes is far below the distance between
    two states' codes. States that the encoder maps to the same point count as one state. It needs the
    env's ``factor_space`` and ``frames`` (a DynDis factor env) and at most ``max_states`` states: beyond,
    the first call raises ``ValueError`` (choose fewer values with the env's ``factors=``, or a threshold).

    **Threshold rule** (``threshold=t``): reached where ``||achieved - desired|| <= t``. It enumerates
    nothing, so it serves any state space and any goal env, but it is the true success only if ``t`` is
    below the distance between the codes of any two different states (and above encoding noise).

    Both are vectorised over leading batch dimensions, as HER needs: latents of shape (..., n) give rewards
    of shape (...), float64 (a Python float for one pair); ``info`` is ignored.

    Args:
        model: The trained world model whose ``encode`` made the latents.
        env_attr: Reads an attribute (``"factor_space"``, ``"frames"``) of the single goal env; called only
            by the nearest-state rule, on first use.
        threshold: None for the nearest-state rule, else the distance of the threshold rule.
        max_states: The most states the nearest-state rule encodes.
        chunk: Images encoded per batch while building.
        synthesis_modes: How the latents were encoded (:func:`encode_images`): the states are encoded so too.
    """

    def __init__(
        self,
        model: Any,
        env_attr: Callable[[str], Any],
        *,
        threshold: float | None = None,
        max_states: int = MAX_GOAL_STATES,
        chunk: int = 1024,
        synthesis_modes: int = 1,
    ) -> None:
        if threshold is not None and not (np.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"`threshold` must be None or a distance >= 0, got {threshold!r}.")
        self.model = model
        self.synthesis_modes = synthesis_modes
        self.latent_dim = int(model.latent_dim)
        self.threshold = None if threshold is None else float(threshold)
        self.max_states = int(max_states)
        self.chunk = int(chunk)
        self._env_attr = env_attr
        self._states: npt.NDArray[np.int64] | None = None
        self._codes: npt.NDArray[np.float32] | None = None

    def _index(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Every state of the env and its encoding, built on first use."""
        if self._states is None or self._codes is None:
            try:
                space, frames = self._env_attr("factor_space"), self._env_attr("frames")
            except AttributeError as exc:
                raise TypeError(
                    "The nearest-state rule of latent goals needs a DynDis factor env (its `factor_space` and "
                    "`frames`); pass a distance threshold (goal_threshold=...) for other goal envs."
                ) from exc
            if space.n_states > self.max_states:
                raise ValueError(
                    f"Latent goals: the env has {space.n_states} states, more than max_goal_states={self.max_states} "
                    "that the nearest-state rule encodes. Choose fewer factor values (the env's `factors=`), raise "
                    "max_goal_states, or pass a distance threshold (goal_threshold=...)."
                )
            states = space.all_states()
            codes = np.empty((len(states), self.latent_dim), dtype=np.float32)
            for start in range(0, len(states), self.chunk):
                images = frames.batch(states[start : start + self.chunk])
                codes[start : start + len(images)] = encode_images(self.model, images, self.synthesis_modes)
            self._states, self._codes = states, codes
        return self._states, self._codes

    def _latents(self, latents: Any, name: str) -> npt.NDArray[np.float32]:
        array = np.asarray(latents, dtype=np.float32)
        if array.ndim == 0 or array.shape[-1] != self.latent_dim:
            raise ValueError(f"`{name}` must be latent vectors of shape (..., {self.latent_dim}), got {array.shape}.")
        return array

    def nearest(self, latents: Any) -> npt.NDArray[np.int64]:
        """The flat index (row of ``factor_space.all_states()``) of the state each latent stands for, shape (...)."""
        latents = self._latents(latents, "latents")
        _, codes = self._index()
        flat = latents.reshape(-1, self.latent_dim)
        out = np.empty(len(flat), dtype=np.int64)
        rows = max(1, (1 << 22) // len(codes))  # bounds the (rows, n_states) distance block
        sq_codes = np.einsum("sn,sn->s", codes, codes)
        for start in range(0, len(flat), rows):
            block = flat[start : start + rows]
            out[start : start + rows] = np.argmin(sq_codes[None, :] - 2.0 * block @ codes.T, axis=1)
        return out.reshape(latents.shape[:-1])

    def states_of(self, latents: Any) -> npt.NDArray[np.int64]:
        """The state each latent stands for (nearest-state rule), shape (..., n_factors)."""
        states, _ = self._index()
        return states[self.nearest(latents)]

    def reached(self, achieved_goal: Any, desired_goal: Any) -> npt.NDArray[np.bool_]:
        """Whether each achieved latent reaches its desired latent, shape (...) (see the class docstring)."""
        achieved = self._latents(achieved_goal, "achieved_goal")
        desired = self._latents(desired_goal, "desired_goal")
        if achieved.shape != desired.shape:
            raise ValueError(f"`achieved_goal` {achieved.shape} and `desired_goal` {desired.shape} differ in shape.")
        if self.threshold is not None:
            return np.linalg.norm(achieved - desired, axis=-1) <= self.threshold
        return self.nearest(achieved) == self.nearest(desired)

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> npt.NDArray[np.float64] | float:
        """1.0 where the goal is reached, else 0.0; shape (...) float64, a float for one pair."""
        reached = self.reached(achieved_goal, desired_goal)
        return reached.astype(np.float64) if reached.ndim else float(reached)

    def compute_terminated(self, achieved_goal: Any, desired_goal: Any, info: Any) -> npt.NDArray[np.bool_] | bool:
        """Whether the goal is reached, vectorised like :meth:`compute_reward`."""
        reached = self.reached(achieved_goal, desired_goal)
        return reached if reached.ndim else bool(reached)


class LatentObservation(gym.ObservationWrapper):
    """Replace every image observation by ``model.encode(image)``, a float32 vector on the unit sphere.

    Works on image (Box) observations and on Goal tasks' Dict observations (each image key is encoded).
    The model is put in eval mode and never trained here.

    On a Goal task (a Dict with ``achieved_goal`` and ``desired_goal`` over an env with ``compute_reward``)
    the wrapper has its own vectorised ``compute_reward`` and ``compute_terminated`` on latent goals, so SB3's
    ``check_env`` and HER work on it: by default a goal is reached where the achieved and the desired latent
    are nearest to the encodings of the same state of the env; see :class:`LatentGoalReward` for this rule,
    its cost (every state encoded once, on first use; at most ``max_goal_states``) and the threshold rule.
    The rewards of ``step`` stay the env's own (the true success).

    Args:
        env: An environment with uint8 image observations.
        model: A trained world model (``encode(uint8 (..., H, W, C)) -> (..., n)``, ``latent_dim``).
        goal_threshold: None for the nearest-state rule, or a distance for the threshold rule.
        max_goal_states: The most states the nearest-state rule encodes.
        synthesis_modes: 1 for the encoder's own encodings (the default: one encoder pass per frame); more, or
            ``"auto"``, an angle-bin model's decoder-checked ones, as its report judges them
            (:func:`~dyndis_learn.model.synthesis_modes_for`; decodes where the encoder hesitates).
    """

    def __init__(
        self,
        env: gym.Env,
        model: Any,
        *,
        goal_threshold: float | None = None,
        max_goal_states: int = MAX_GOAL_STATES,
        synthesis_modes: int | str = 1,
    ) -> None:
        super().__init__(env)
        self.model = model.eval()
        self.synthesis_modes = synthesis_modes_for(model, synthesis_modes)
        self.observation_space = latent_space(env.observation_space, model)
        self.goal_reward: LatentGoalReward | None = None
        if is_goal_space(env.observation_space) and env.has_wrapper_attr("compute_reward"):
            self.goal_reward = LatentGoalReward(
                self.model,
                lambda name: getattr(env.unwrapped, name),
                threshold=goal_threshold,
                max_states=max_goal_states,
                synthesis_modes=self.synthesis_modes,
            )

    def observation(self, observation: Any) -> Any:
        """Encode the image (or each image of a Dict observation)."""
        if isinstance(observation, dict):
            return {key: encode_images(self.model, value, self.synthesis_modes) for key, value in observation.items()}
        return encode_images(self.model, observation, self.synthesis_modes)

    def _goals(self) -> LatentGoalReward:
        if self.goal_reward is None:
            raise TypeError(f"{self.env} is not a goal env: it has no `achieved_goal` / `desired_goal` to compare.")
        return self.goal_reward

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> npt.NDArray[np.float64] | float:
        """1.0 where the achieved latent goal reaches the desired one, over leading batch dimensions (..., n)."""
        return self._goals().compute_reward(achieved_goal, desired_goal, info)

    def compute_terminated(self, achieved_goal: Any, desired_goal: Any, info: Any) -> npt.NDArray[np.bool_] | bool:
        """Whether the achieved latent goal reaches the desired one, vectorised like :meth:`compute_reward`."""
        return self._goals().compute_terminated(achieved_goal, desired_goal, info)


class FactorOneHotObservation(gym.Wrapper):
    """Replace the image by the one-hot encoding of the true factors (``info["factors"]``).

    A ground-truth baseline for RL comparisons (the best state a learned encoder could give); not a
    learner's input. The observation concatenates one one-hot vector per factor with more than one value.

    Args:
        env: A DynDis factor environment (``env.unwrapped.factor_space``), possibly wrapped.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.unwrapped.factor_space
        self._active = list(space.active)
        self._offsets = np.cumsum([0] + [space.sizes[k] for k in self._active])[:-1]
        size = int(sum(space.sizes[k] for k in self._active))
        self.observation_space = spaces.Box(0.0, 1.0, (size,), np.float32)

    def _one_hot(self, factors: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        out = np.zeros(self.observation_space.shape, dtype=np.float32)
        out[self._offsets + factors[self._active]] = 1.0
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset and return the one-hot factors."""
        _, info = self.env.reset(seed=seed, options=options)
        return self._one_hot(info["factors"]), info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step and return the one-hot factors."""
        _, reward, terminated, truncated, info = self.env.step(action)
        return self._one_hot(info["factors"]), reward, terminated, truncated, info
