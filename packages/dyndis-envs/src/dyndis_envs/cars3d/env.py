"""Cars3D: a car seen from 24 azimuths and 4 elevations; 183 car models (procedural or the real images)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from dyndis_envs.cars3d._factors import cars3d_factors
from dyndis_envs.cars3d._file_source import Cars3DFileSource, read_object_list
from dyndis_envs.cars3d._sources import MODELS, Cars3DRenderedTable, Cars3DRenderSource, check_image_size
from dyndis_envs.data_paths import resolve_backend
from dyndis_envs.factor_env import FactorEnv
from dyndis_envs.factor_vector_env import FactorVectorEnv
from dyndis_envs.factors import FactorSpace, Subset
from dyndis_envs.sources import DEFAULT_TABLE_BYTES, ObservationSource
from dyndis_envs.tasks import Task
from dyndis_envs.validation import check_bool

__all__ = ["Cars3DEnv", "Cars3DVectorEnv"]


class Cars3DEnv(FactorEnv):
    """A car on a white background, seen from a camera that actions move around it; other actions swap the car.

    ## Description
    The Cars3D dataset of the disentanglement literature (Reed et al. 2015; Locatello et al. 2019): 183 car
    models, each seen from 24 azimuths (15 degrees apart, a full turn) and 4 camera elevations. Stepping
    the azimuth 24 times brings the camera back to exactly the same image.

    Two sources of images (``backend``):

    * ``"procedural"`` (default; no file, no GPU): 183 parametric cars drawn from one seeded generator
      (sedans, hatchbacks, SUVs, vans, pickups and sports cars with varied proportions and paint), each a
      lofted body with hood, cabin and windows, trunk, hatch or load bed, wheel arches, four wheels,
      mirrors and lights, rendered with flat shading and 4x supersampling. Views are framed like the real
      data. With ``cache=True`` every view of the chosen cars is read from (or rendered once into) a
      verified cache in ``data_dir() / "cache"``; with ``cache=False`` only the chosen states are rendered,
      in memory.
    * ``"file"``: the real images from a ``cars/`` folder (``list.txt`` and ``car_XXX_mesh.mat`` files,
      128 x 128, resized with Lanczos). ``"auto"`` uses it when found, else procedural.

    ## Factors (state order)
    | factor    | values                                                        | default choice |
    |-----------|---------------------------------------------------------------|----------------|
    | elevation | 0, 10, 20, 30 (camera degrees above the horizon)              | all            |
    | azimuth   | 0, 15, ..., 345 (degrees; 0 = front view, 90 = left side)     | all            |
    | object    | 183 car names (procedural: ``"000_suv"``, ...; file: list.txt) | all            |

    The real data does not label its angles; the values above are the conventions of the procedural
    source (see :mod:`dyndis_envs.cars3d._factors` for how they were read off the real images).

    ## Action Space
    ``Discrete(2 * n_active)``: action ``2k`` moves active factor ``k`` +1, ``2k + 1`` moves it -1, both
    cyclic. Active factors are those with more than one chosen value, in the order of the table.
    ``action_effects[a]`` (an :class:`~dyndis_envs.factors.ActionEffect`, public on the env and its vector env)
    says what action ``a`` does: the ``factor`` it moves (name and ``factor_index``, its column in
    ``info["factors"]``), the ``direction`` (+1 or -1), the factor's ``cycle_length`` and the ``inverse``
    action. Read it instead of relying on the numbering.

    ## Observation Space
    ``Box(0, 255, (image_size, image_size, 3), uint8)``: the state's image, plus per-pixel integer noise
    uniform on ``[-observation_noise, observation_noise]`` (clipped to 0..255) when that is not 0.

    ## Rewards
    The task's (``task``). The default, :class:`~dyndis_envs.tasks.PureDynamics`, gives 0.0 on every step:
    pure dynamics. ``DynDis/Cars3DReach-v0`` uses a :class:`~dyndis_envs.tasks.ReachTask`.

    ## Starting State
    Drawn by the task: uniformly random over the chosen values by default. ``reset(options={"factors":
    [...]})`` sets it.

    ## Episode End
    Never terminates under the default task; ``gym.make`` truncates after ``max_episode_steps`` (200 for
    ``Cars3D-v0``).

    ## Info
    ``info["factors"]``: int64 array, the index of each factor's value within its chosen values.

    ## Arguments
    ``factors`` (chosen values per factor: None or ``"all"``, an int n for the first n, or a list of
    indices), ``image_size`` (16 to 256, default 64; the 96 views of one car take 1.2 MB at 64, 18.9 MB at
    256), ``backend`` (``"procedural"``, ``"file"`` or ``"auto"``), ``data_path`` (the ``cars/`` folder;
    default ``data_dir() / "cars"``), ``cache`` (procedural only), ``render_mode``, ``max_table_bytes``,
    ``task`` (a :class:`~dyndis_envs.tasks.Task`; default pure dynamics), ``observation_noise`` (int 0..255, default 0:
    per-pixel noise of that many intensity levels, see :mod:`dyndis_envs.noise`).

    The file backend reads ``list.txt`` and the ``.mat`` files with the checks of ``dyndis-envs verify
    cars3d`` (:func:`~dyndis_envs.datasets.read_cars_list`, :func:`~dyndis_envs.datasets.read_car_mesh`): a
    bad entry or an unreadable file raises a ``ValueError`` naming the line or the file and the cause.

    ## Version History
    * v0: initial release.

    Example:
        >>> import gymnasium as gym, dyndis_envs
        >>> env = gym.make("DynDis/Cars3D-v0", factors={"object": [0, 1]}, cache=False)
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, obs.dtype, env.action_space
        ((64, 64, 3), dtype('uint8'), Discrete(6))
    """

    def __init__(
        self,
        factors: Mapping[str, Subset] | None = None,
        *,
        image_size: int = 64,
        backend: str = "procedural",
        data_path: str | os.PathLike[str] | None = None,
        cache: bool = True,
        render_mode: str | None = None,
        max_table_bytes: int = DEFAULT_TABLE_BYTES,
        task: Task | None = None,
        observation_noise: int = 0,
    ) -> None:
        image_size = check_image_size(image_size)
        cache = check_bool("cache", cache)
        _, path = resolve_backend(backend, data_path, "cars")  # path is None for the procedural backend
        names = read_object_list(path) if path is not None else [m.name for m in MODELS]
        # resolve the chosen values first (this validates `factors`), so that only the chosen cars are loaded
        # or rendered; the env reuses them
        space = FactorSpace(cars3d_factors(names), factors)
        objects = np.unique(space.selected[2])
        source: ObservationSource
        if path is not None:
            source = Cars3DFileSource(path, image_size, objects, names)
        elif cache:
            source = Cars3DRenderedTable(image_size, objects)
        else:
            source = Cars3DRenderSource(image_size)
        super().__init__(
            source, render_mode=render_mode, max_table_bytes=max_table_bytes, factor_space=space, task=task,
            observation_noise=observation_noise,
        )


class Cars3DVectorEnv(FactorVectorEnv):
    """Natively batched :class:`Cars3DEnv`.

    Takes ``num_envs``, ``max_episode_steps``, ``autoreset_mode``, ``render_mode``, ``task`` and the keyword
    arguments of :class:`Cars3DEnv`; its ``action_effects`` are the single environment's.
    """

    single_env_class = Cars3DEnv
