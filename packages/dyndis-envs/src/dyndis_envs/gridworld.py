"""GridWorld: an object on a cyclic grid, with size, colour and background colour as further factors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from dyndis_envs.factor_env import FactorEnv
from dyndis_envs.factor_vector_env import FactorVectorEnv
from dyndis_envs.factors import Factor, Subset
from dyndis_envs.sources import DEFAULT_TABLE_BYTES, ObservationSource
from dyndis_envs.tasks import Task
from dyndis_envs.validation import check_choice, check_int

__all__ = ["COLOURS", "MAX_IMAGE_SIZE", "MIN_IMAGE_SIZE", "GridWorldEnv", "GridWorldSource", "GridWorldVectorEnv"]

#: Smallest and largest ``image_size``. At 1024 one RGB frame takes 3 MB; frame tables stay within
#: ``max_table_bytes`` and rendering works through batches of at most :data:`RENDER_PIXELS` pixels, so no
#: single environment allocates gigabytes unless asked to (many sub-envs, a larger ``max_table_bytes``).
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 1024
#: Pixels rendered per pass of :meth:`GridWorldSource.render` (its float32 temporaries take about 40 bytes per
#: pixel, so about 40 MB at this size); larger batches are rendered in several passes.
RENDER_PIXELS = 2**20

#: The palette of the ``colour`` and ``background`` factors, in factor order.
COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "black": (0, 0, 0),
}
# Drawn as an outline when the object's colour equals the background's, so the object stays visible.
# It is not in the palette (nor is its luma), so an outlined object never looks like a filled one.
_OUTLINE = (128, 128, 128)
_LUMA = np.array([0.299, 0.587, 0.114])
_SHAPES = ("square", "disc")


class GridWorldSource(ObservationSource):
    """Procedural images of the grid world, anti-aliased (pixel coverage of the object's edge).

    Args:
        grid_shape: (rows, columns) of the cyclic grid: the values of ``north_south`` and ``east_west``.
        object_sizes: The values of ``size``: object width as a fraction of a cell, each in (0, 1].
        shape: ``"square"`` or ``"disc"``.
        image_size: Height and width in pixels (16 to 1024, and at least 2 pixels per grid cell).
        channels: 3 for RGB or 1 for grayscale (ITU-R 601 luma).
    """

    def __init__(
        self,
        grid_shape: Sequence[int] = (5, 5),
        object_sizes: Sequence[float] = (0.5, 0.7, 0.9),
        shape: str = "square",
        image_size: int = 64,
        channels: int = 3,
    ) -> None:
        if isinstance(grid_shape, (str, bytes)) or len(grid_shape) != 2:
            raise ValueError(f"`grid_shape` must be (rows, columns), got {grid_shape!r}.")
        rows, cols = (check_int("grid_shape", g, minimum=1) for g in grid_shape)
        image_size = check_int("image_size", image_size, minimum=MIN_IMAGE_SIZE, maximum=MAX_IMAGE_SIZE)
        if image_size < 2 * max(rows, cols):
            raise ValueError(
                f"`image_size`={image_size} is too small for `grid_shape`={(rows, cols)}: every cell needs at "
                f"least 2 pixels, so image_size must be >= {2 * max(rows, cols)}."
            )
        sizes = tuple(float(s) for s in object_sizes)
        if not sizes or any(not 0.0 < s <= 1.0 for s in sizes) or len(set(sizes)) != len(sizes):
            raise ValueError(f"`object_sizes` must be distinct fractions of a cell in (0, 1], got {object_sizes!r}.")
        shape = check_choice("shape", shape, _SHAPES)
        channels = check_choice("channels", channels, (1, 3))
        self.grid_shape = (rows, cols)
        self.shape = shape
        self.image_shape = (image_size, image_size, channels)
        self.factors = (
            Factor("north_south", tuple(range(rows))),
            Factor("east_west", tuple(range(cols))),
            Factor("size", sizes),
            Factor("colour", tuple(COLOURS)),
            Factor("background", tuple(COLOURS)),
        )
        palette = np.array([*COLOURS.values(), _OUTLINE], dtype=np.float32)
        self._palette = palette if channels == 3 else (palette @ _LUMA)[:, None].astype(np.float32)
        self._sizes = np.asarray(sizes, dtype=np.float32)
        self._cell = (image_size / rows, image_size / cols)
        self._pixel_centres = np.arange(image_size, dtype=np.float32) + 0.5

    def _coverage(self, dy: npt.NDArray[np.float32], dx: npt.NDArray[np.float32], radius: npt.NDArray[np.float32]):
        """Fraction of each pixel inside the object, from the pixel centre's offsets (anti-aliased edge)."""
        if self.shape == "square":
            cover_y = np.clip(radius - np.abs(dy) + 0.5, 0.0, 1.0)
            cover_x = np.clip(radius - np.abs(dx) + 0.5, 0.0, 1.0)
            return cover_y * cover_x
        return np.clip(radius - np.sqrt(dy * dy + dx * dx) + 0.5, 0.0, 1.0)

    def render(self, value_indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """Images of a batch of states, (B, 5) value indices -> (B, H, W, C) uint8.

        Rendered :data:`RENDER_PIXELS` pixels at a time, so the temporaries stay small whatever the batch.
        """
        value_indices = np.asarray(value_indices, dtype=np.int64)
        height, width, channels = self.image_shape
        per_pass = max(1, RENDER_PIXELS // (height * width))
        if len(value_indices) <= per_pass:
            return self._render(value_indices)
        out = np.empty((len(value_indices), height, width, channels), dtype=np.uint8)
        for start in range(0, len(value_indices), per_pass):
            out[start : start + per_pass] = self._render(value_indices[start : start + per_pass])
        return out

    def _render(self, value_indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        row, col, size, colour, background = value_indices.T
        centre_y = (row + 0.5).astype(np.float32) * self._cell[0]
        centre_x = (col + 0.5).astype(np.float32) * self._cell[1]
        dy = self._pixel_centres[None, :, None] - centre_y[:, None, None]  # (B, H, 1)
        dx = self._pixel_centres[None, None, :] - centre_x[:, None, None]  # (B, 1, W)
        radius = (self._sizes[size] * min(self._cell) / 2)[:, None, None]
        fill = self._coverage(dy, dx, radius)
        # Same colour as the background: draw an outline ring instead of an invisible fill.
        outlined = (colour == background)[:, None, None]
        ring = fill - self._coverage(dy, dx, radius * 0.6)
        cover = np.where(outlined, ring, fill)[..., None]  # (B, H, W, 1)
        ink = np.where(outlined[..., None], self._palette[-1], self._palette[colour][:, None, None, :])
        image = self._palette[background][:, None, None, :] * (1.0 - cover) + ink * cover
        return np.rint(image).astype(np.uint8)


class GridWorldEnv(FactorEnv):
    """An object moving on a cyclic grid; further actions change its size, colour and background.

    ## Description
    The grid world of the dynamical-disentanglement literature (Caselles-Dupré et al., 2019): a square or
    disc on a ``rows x columns`` torus whose cells are spread evenly over the image, so every position is
    visible on every grid shape. Moving off one edge re-enters on the opposite edge. When the object's
    colour equals the background colour it is drawn as a grey outline, so different states always render
    different images.

    ## Factors (state order)
    | factor        | values                                   | default choice |
    |---------------|------------------------------------------|----------------|
    | north_south   | 0 .. rows-1 (rows = 5)                   | all            |
    | east_west     | 0 .. columns-1 (columns = 5)             | all            |
    | size          | ``object_sizes`` (0.5, 0.7, 0.9 of a cell) | [2] (0.9)    |
    | colour        | white, red, green, blue, black           | [0] (white)    |
    | background    | white, red, green, blue, black           | [4] (black)    |

    So ``DynDis/GridWorld-v0`` is a 5 x 5 world with 4 actions unless ``factors`` says otherwise.

    ## Action Space
    ``Discrete(2 * n_active)``: action ``2k`` moves active factor ``k`` +1, ``2k + 1`` moves it -1, both
    cyclic. Active factors are those with more than one chosen value, in the order of the table.
    ``action_effects[a]`` (an :class:`~dyndis_envs.factors.ActionEffect`, public on the env and its vector env)
    says what action ``a`` does: the ``factor`` it moves (name and ``factor_index``, its column in
    ``info["factors"]``), the ``direction`` (+1 or -1), the factor's ``cycle_length`` and the ``inverse``
    action. Read it instead of relying on the numbering.

    ## Observation Space
    ``Box(0, 255, (image_size, image_size, channels), uint8)``: the state's image, plus per-pixel integer
    noise uniform on ``[-observation_noise, observation_noise]`` (clipped to 0..255) when that is not 0.

    ## Rewards
    The task's (``task``). The default, :class:`~dyndis_envs.tasks.PureDynamics`, gives 0.0 on every step:
    pure dynamics. ``DynDis/GridWorldReach-v0`` uses a :class:`~dyndis_envs.tasks.ReachTask`.

    ## Starting State
    Drawn by the task: uniformly random over the chosen values by default. ``reset(options={"factors":
    [...]})`` sets it.

    ## Episode End
    Never terminates under the default task; ``gym.make`` truncates after ``max_episode_steps`` (200 for
    ``GridWorld-v0``).

    ## Info
    ``info["factors"]``: int64 array, the index of each factor's value within its chosen values.

    ## Arguments
    ``factors`` (chosen values per factor: None or ``"all"``, an int n for the first n, or a list of
    indices; merged over the defaults above), ``grid_shape``, ``object_sizes``, ``shape``,
    ``image_size`` (16 to 1024, and at least 2 pixels per cell; a frame takes 3 MB at 1024), ``channels``,
    ``render_mode``, ``max_table_bytes`` (prerender every chosen state when they fit in this many bytes),
    ``task`` (a :class:`~dyndis_envs.tasks.Task`; default pure dynamics), ``observation_noise`` (int 0..255, default 0:
    per-pixel noise of that many intensity levels, see :mod:`dyndis_envs.noise`).

    ## Version History
    * v0: initial release.

    Example:
        >>> import gymnasium as gym, dyndis_envs
        >>> env = gym.make("DynDis/GridWorld-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, obs.dtype, env.action_space
        ((64, 64, 3), dtype('uint8'), Discrete(4))
        >>> env.unwrapped.action_effects[1]
        ActionEffect(factor='north_south', factor_index=0, direction=-1, cycle_length=5, inverse=0)
    """

    default_factors: Mapping[str, Subset] = {"size": [2], "colour": [0], "background": [4]}

    def __init__(
        self,
        factors: Mapping[str, Subset] | None = None,
        *,
        grid_shape: Sequence[int] = (5, 5),
        object_sizes: Sequence[float] = (0.5, 0.7, 0.9),
        shape: str = "square",
        image_size: int = 64,
        channels: int = 3,
        render_mode: str | None = None,
        max_table_bytes: int = DEFAULT_TABLE_BYTES,
        task: Task | None = None,
        observation_noise: int = 0,
    ) -> None:
        source = GridWorldSource(grid_shape, object_sizes, shape, image_size, channels)
        factors = {**self.default_factors, **(factors or {})}
        super().__init__(source, factors, render_mode, max_table_bytes, task=task, observation_noise=observation_noise)


class GridWorldVectorEnv(FactorVectorEnv):
    """Natively batched :class:`GridWorldEnv`.

    Takes ``num_envs``, ``max_episode_steps``, ``autoreset_mode``, ``render_mode``, ``task`` and the keyword
    arguments of :class:`GridWorldEnv`; its ``action_effects`` are the single environment's.
    """

    single_env_class = GridWorldEnv
