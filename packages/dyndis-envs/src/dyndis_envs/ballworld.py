"""BallWorld: the grey ball world of Quessard et al. (NeurIPS 2020), a large ball on a small cyclic grid.

Geometry read from the paper's code (IndustAI/learning-group-structure: ``fig6_ourmethod.ipynb``, whose
``FlatWorld`` drives the ``src/flatland/flat_game`` Flatland env): an 84 x 84 screen, black, with 10-pixel
walls of grey level 1 along its border; a white ball of radius 15; ``period = 5`` positions per axis at
``27 + 6.6 i`` pixels (step ``(63 - 2 * 15) / 5 = 6.6``: velocity ``0.66`` times the agent's speed 10 for one
second of simulation), so neighbouring positions overlap by most of the ball. The world is cyclic by a
teleport, not a drawn torus: a wall collision moves the ball by the 33-pixel period, so one step +1 from the
last position lands on the first one, drawn whole (the ball never touches the walls: it spans 12 .. 68.4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from dyndis_envs.factor_env import FactorEnv
from dyndis_envs.factor_vector_env import FactorVectorEnv
from dyndis_envs.factors import Factor, FactorSpace, Subset
from dyndis_envs.sources import DEFAULT_TABLE_BYTES, ObservationSource
from dyndis_envs.tasks import PureDynamics, Task, _one_state
from dyndis_envs.validation import check_choice, check_int

__all__ = [
    "BALL_LEVEL",
    "PAPER_IMAGE_SIZE",
    "PAPER_RADIUS",
    "PAPER_SPAN",
    "PAPER_START",
    "PAPER_WALL",
    "WALL_LEVEL",
    "BallWorldEnv",
    "BallWorldSource",
    "BallWorldVectorEnv",
    "FixedStart",
]

#: The paper's screen side, ball radius, wall thickness, first ball position and the span of positions
#: (one period of the cyclic world), in pixels of the 84 x 84 screen; other image sizes scale them.
PAPER_IMAGE_SIZE = 84
PAPER_RADIUS = 15.0
PAPER_WALL = 10.0
PAPER_START = 27.0
PAPER_SPAN = 63.0 - 2 * PAPER_RADIUS  # 33: positions 27 + 33 i / n, so 6.6 pixels apart for n = 5
#: Grey levels: the ball is white, the walls (colour (1, 1, 1) in the paper) almost black, the floor black.
BALL_LEVEL, WALL_LEVEL = 255.0, 1.0
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 21, 1024


class BallWorldSource(ObservationSource):
    """Procedural grey images of the ball world, anti-aliased (pixel coverage of the ball's edge).

    Args:
        n_positions: Positions per axis (the paper's ``period``, 5); they share the paper's 33-pixel span,
            so they are ``33 / n_positions`` pixels apart at 84 x 84.
        image_size: Height and width in pixels; 84 is the paper's, other sizes scale every length.
        channels: 1 (the paper's observation: one grey channel) or 3 identical grey channels, for
            networks and tools that expect RGB input.
        walls: Draw the paper's 10-pixel border walls of grey level 1 (invisible to the eye, but part of
            the paper's frames).
    """

    def __init__(
        self, n_positions: int = 5, image_size: int = PAPER_IMAGE_SIZE, channels: int = 1, walls: bool = True
    ) -> None:
        n = check_int("n_positions", n_positions, minimum=1)
        image_size = check_int("image_size", image_size, minimum=MIN_IMAGE_SIZE, maximum=MAX_IMAGE_SIZE)
        channels = check_choice("channels", channels, (1, 3))
        if not isinstance(walls, bool):
            raise ValueError(f"`walls` must be True or False, got {walls!r}.")
        self.n_positions = n
        self.image_shape = (image_size, image_size, channels)
        self.factors = (Factor("y", tuple(range(n))), Factor("x", tuple(range(n))))
        scale = image_size / PAPER_IMAGE_SIZE
        self.scale = scale
        #: Ball radius and distance between neighbouring positions, in pixels of this image size.
        self.radius = PAPER_RADIUS * scale
        self.spacing = PAPER_SPAN / n * scale
        #: Ball centres in the paper's (pymunk) coordinates, pixels from the left / bottom edge.
        self.positions = (PAPER_START + PAPER_SPAN / n * np.arange(n)) * scale
        self.walls = walls
        self.wall = PAPER_WALL * scale
        centres = np.arange(image_size, dtype=np.float32) + 0.5
        self._pixel_centres = centres
        floor = np.zeros((image_size, image_size), dtype=np.float32)
        if walls:
            inside = (centres > self.wall) & (centres < image_size - self.wall)
            floor[:] = WALL_LEVEL
            floor[np.ix_(inside, inside)] = 0.0
        self._floor = floor

    def centres(self, value_indices: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Ball centres (row, column) in image coordinates of a batch of (y, x) states.

        ``y`` counts upwards as in the paper (its action 0, "up", is ``y + 1``), so the row is the image
        size minus the pymunk ``y``; pixel ``k`` spans ``[k, k + 1)``.
        """
        value_indices = np.asarray(value_indices, dtype=np.int64)
        rows = self.image_shape[0] - self.positions[value_indices[:, 0]]
        cols = self.positions[value_indices[:, 1]]
        return rows, cols

    def render(self, value_indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """Images of a batch of states, (B, 2) value indices (y, x) -> (B, H, W, C) uint8."""
        rows, cols = self.centres(value_indices)
        dy = self._pixel_centres[None, :, None] - rows.astype(np.float32)[:, None, None]  # (B, H, 1)
        dx = self._pixel_centres[None, None, :] - cols.astype(np.float32)[:, None, None]  # (B, 1, W)
        cover = np.clip(np.float32(self.radius) - np.sqrt(dy * dy + dx * dx) + 0.5, 0.0, 1.0)
        image = self._floor * (1.0 - cover) + BALL_LEVEL * cover
        grey = np.rint(image).astype(np.uint8)[..., None]
        return np.repeat(grey, self.image_shape[2], axis=-1) if self.image_shape[2] > 1 else grey


class FixedStart(PureDynamics):
    """Pure dynamics that always start in one state (the paper resets every episode to the centre).

    Args:
        state: The start, one index into the chosen values per factor.
    """

    def __init__(self, state: Sequence[int] | npt.NDArray[np.integer]) -> None:
        self.state = state

    def bind(self, space: FactorSpace) -> FixedStart:
        """The task with its state checked against ``space``."""
        return FixedStart([int(i) for i in _one_state(space, self.state, "start")])

    def sample_start(self, space: FactorSpace, rng: np.random.Generator) -> list[int]:
        """Always the given state."""
        return [int(i) for i in self.state]

    def __repr__(self) -> str:
        return f"FixedStart(state={list(self.state)!r})"


class BallWorldEnv(FactorEnv):
    """A large grey ball on a small cyclic 2-D grid: the ball world of Quessard et al. (NeurIPS 2020).

    ## Description
    The environment of "Learning Disentangled Representations and Group Structure of Dynamical
    Environments" (Quessard, Barrett and Clements, NeurIPS 2020), section 4 and figure 6, rebuilt from the
    geometry of its code (a Flatland/pymunk scene): an 84 x 84 grey image, black floor, 10-pixel border walls
    of grey level 1, a white ball of radius 15 pixels. The ball takes 5 positions per axis, 6.6 pixels apart
    (centres at 27, 33.6, 40.2, 46.8, 53.4), so neighbouring positions overlap: a step moves the ball by less
    than half its radius, which is what makes the world hard for a next-frame predictor. Both axes are
    cyclic: a step +1 from the last position lands on the first one, as the paper's walls teleport the ball
    by one period (33 pixels); the ball is never cut by the border.

    Differences from the paper's frames: the ball's edge is anti-aliased and its centre exact, where pygame
    drew an aliased disc at the centre truncated to whole pixels (so the paper's steps were 6 or 7 pixels),
    and pymunk's sub-steps could leave the ball a fraction of a pixel off its cycle.

    ## Factors (state order)
    | factor | values                                                    | default choice |
    |--------|-----------------------------------------------------------|----------------|
    | y      | 0 .. n_positions-1 (5), counted upwards as the paper's y  | all            |
    | x      | 0 .. n_positions-1 (5), counted rightwards                 | all            |

    ## Action Space
    ``Discrete(2 * n_active)``, 4 by default: action ``2k`` moves active factor ``k`` +1, ``2k + 1`` moves
    it -1, both cyclic. With both factors active the actions are the paper's, in its order: 0 up, 1 down,
    2 right, 3 left. ``action_effects[a]`` (an :class:`~dyndis_envs.factors.ActionEffect`) says what action
    ``a`` does; read it instead of relying on the numbering.

    ## Observation Space
    ``Box(0, 255, (image_size, image_size, channels), uint8)``: (84, 84, 1) by default, the paper's single
    grey channel; ``channels=3`` repeats it three times for networks and tools that expect RGB. With
    ``observation_noise`` not 0, per-pixel integer noise uniform on ``[-observation_noise, observation_noise]``
    is added (clipped to 0..255).

    ## Rewards
    The task's (``task``). The default, :class:`~dyndis_envs.tasks.PureDynamics`, gives 0.0 on every step.
    ``DynDis/BallWorldReach-v0`` uses a :class:`~dyndis_envs.tasks.ReachTask`.

    ## Starting State
    Uniformly random over the chosen values by default. The paper starts every episode with the ball in
    the centre: ``reset(options={"factors": [2, 2]})`` for one episode, or ``start=[2, 2]`` for every episode
    (a :class:`FixedStart` task, so also in the vector env and in a learner's config:
    ``env.kwargs = {"start": [2, 2]}``).

    ## Episode End
    Never terminates under the default task; ``gym.make`` truncates after ``max_episode_steps`` (200 for
    ``BallWorld-v0``).

    ## Info
    ``info["factors"]``: int64 array ``[y, x]``, the index of each factor's value within its chosen values.

    ## Arguments
    ``factors`` (chosen values per factor: None or ``"all"``, an int n for the first n, or a list of
    indices), ``n_positions`` (positions per axis, sharing the paper's 33-pixel span), ``image_size`` (84,
    the paper's; other sizes scale every length), ``channels`` (1 or 3), ``walls`` (draw the grey-1 border),
    ``start`` (a fixed start state for every episode; not with ``task``), ``render_mode``,
    ``max_table_bytes``, ``task``, ``observation_noise`` (int 0..255, default 0: per-pixel noise of that many intensity
    levels, see :mod:`dyndis_envs.noise`).

    ## Version History
    * v0: initial release.

    Example:
        >>> import gymnasium as gym, dyndis_envs
        >>> env = gym.make("DynDis/BallWorld-v0")
        >>> obs, info = env.reset(seed=0, options={"factors": [2, 2]})
        >>> obs.shape, obs.dtype, env.action_space, info["factors"].tolist()
        ((84, 84, 1), dtype('uint8'), Discrete(4), [2, 2])
        >>> env.unwrapped.action_effects[0]
        ActionEffect(factor='y', factor_index=0, direction=1, cycle_length=5, inverse=1)
    """

    default_factors: Mapping[str, Subset] = {}

    def __init__(
        self,
        factors: Mapping[str, Subset] | None = None,
        *,
        n_positions: int = 5,
        image_size: int = PAPER_IMAGE_SIZE,
        channels: int = 1,
        walls: bool = True,
        start: Sequence[int] | None = None,
        render_mode: str | None = None,
        max_table_bytes: int = DEFAULT_TABLE_BYTES,
        task: Task | None = None,
        observation_noise: int = 0,
    ) -> None:
        if start is not None:
            if task is not None:
                raise ValueError("Pass at most one of `start` and `task` (a fixed start is a task of its own).")
            task = FixedStart(start)
        source = BallWorldSource(n_positions, image_size, channels, walls)
        factors = {**self.default_factors, **(factors or {})}
        super().__init__(source, factors, render_mode, max_table_bytes, task=task, observation_noise=observation_noise)


class BallWorldVectorEnv(FactorVectorEnv):
    """Natively batched :class:`BallWorldEnv`.

    Takes ``num_envs``, ``max_episode_steps``, ``autoreset_mode``, ``render_mode``, ``task`` and the keyword
    arguments of :class:`BallWorldEnv`; its ``action_effects`` are the single environment's.
    """

    single_env_class = BallWorldEnv
