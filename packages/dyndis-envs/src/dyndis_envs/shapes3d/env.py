"""Shapes3D: an object in a room, seen by a camera that turns around it; DeepMind's 3D Shapes factors."""

from __future__ import annotations

import os
from collections.abc import Mapping

from dyndis_envs.data_paths import resolve_backend
from dyndis_envs.datasets import DATASETS
from dyndis_envs.factor_env import FactorEnv
from dyndis_envs.factor_vector_env import FactorVectorEnv
from dyndis_envs.factors import Subset
from dyndis_envs.shapes3d._file_source import IMAGE_SHAPE, Shapes3DFileSource
from dyndis_envs.shapes3d._procedural_source import Shapes3DSource, check_image_size
from dyndis_envs.sources import DEFAULT_TABLE_BYTES
from dyndis_envs.tasks import Task
from dyndis_envs.validation import check_bool

__all__ = ["Shapes3DEnv", "Shapes3DVectorEnv"]


class Shapes3DEnv(FactorEnv):
    """A cube, cylinder, sphere or capsule in a room with coloured floor and walls; actions change one factor.

    ## Description
    The 3D Shapes dataset of the disentanglement literature (Burgess & Kim 2018): an object centred on the
    floor of a room, a sky band above the walls, and six factors. Stepping a factor as many times as it has
    chosen values brings back exactly the same image.

    Two sources of images (``backend``):

    * ``"procedural"`` (default; no file, no GPU, no OpenGL): a NumPy ray caster of the same scene, with
      camera, room, object sizes, lights and the shadow fitted to real frames of the dataset (see
      :mod:`dyndis_envs.shapes3d._renderer`). It renders natively at any ``image_size`` from 16 to 256,
      and traces each of the 480 (orientation, scale, shape) geometries once, on first use, into per-hue
      colour layers, so that a batch of images is a few NumPy gathers.
    * ``"file"``: the real images of ``3dshapes.h5`` (64 x 64), only the chosen states, in RAM as uint8
      (the full set takes 5.9 GB). ``"auto"`` uses the file when found, else procedural.

    Verification of the file (``verify=True``, the default): a file of the published size (267,573,662
    bytes) must have the published SHA-256, the check ``dyndis-envs verify shapes3d`` runs, so a corrupt
    download (even one flipped byte, which HDF5 reads silently) raises an
    :class:`~dyndis_envs.download.IntegrityError` (a ``ValueError``) naming the expected and actual digests
    and the command that downloads the file again. The digest is recorded in ``data_dir() / "cache"``
    against the file's path, size and modification time, so the file is hashed once (about a second), not
    at every load. A file of another size is not the published one (e.g. a smaller grid in the same layout):
    there is no digest to check it against, so only its layout is checked;
    ``env.unwrapped.source.verified`` says whether the digest was checked. ``verify=False`` skips the check.

    ## Factors (state order)
    | factor      | values                                                   | default choice |
    |-------------|----------------------------------------------------------|----------------|
    | floor_hue   | 0.0, 0.1, ..., 0.9 (HSV hue of the floor)                 | all            |
    | wall_hue    | 0.0, 0.1, ..., 0.9 (HSV hue of the walls)                 | all            |
    | object_hue  | 0.0, 0.1, ..., 0.9 (HSV hue of the object)                | all            |
    | scale       | linspace(0.75, 1.25, 8) (object size)                      | all            |
    | shape       | 0 cube, 1 cylinder, 2 sphere, 3 capsule                    | all            |
    | orientation | linspace(-30, 30, 15) (camera angle around the object, degrees; negative: from the left) | all |

    With the file backend the values are the distinct labels found in the file (the same for the real one).

    ## Action Space
    ``Discrete(2 * n_active)`` (12 by default): action ``2k`` moves active factor ``k`` +1, ``2k + 1``
    moves it -1, both cyclic. Active factors are those with more than one chosen value, in table order.
    ``action_effects[a]`` (an :class:`~dyndis_envs.factors.ActionEffect`, public on the env and its vector env)
    says what action ``a`` does: the ``factor`` it moves (name and ``factor_index``, its column in
    ``info["factors"]``), the ``direction`` (+1 or -1), the factor's ``cycle_length`` and the ``inverse``
    action. Read it instead of relying on the numbering.

    ## Observation Space
    ``Box(0, 255, (image_size, image_size, 3), uint8)``: the state's image, plus per-pixel integer noise
    uniform on ``[-observation_noise, observation_noise]`` (clipped to 0..255) when that is not 0.

    ## Rewards
    The task's (``task``). The default, :class:`~dyndis_envs.tasks.PureDynamics`, gives 0.0 on every step:
    pure dynamics. ``DynDis/Shapes3DReach-v0`` uses a :class:`~dyndis_envs.tasks.ReachTask`.

    ## Starting State
    Drawn by the task: uniformly random over the chosen values by default. ``reset(options={"factors":
    [...]})`` sets it.

    ## Episode End
    Never terminates under the default task; ``gym.make`` truncates after ``max_episode_steps`` (200 for
    ``Shapes3D-v0``).

    ## Info
    ``info["factors"]``: int64 array, the index of each factor's value within its chosen values.

    ## Arguments
    ``factors`` (chosen values per factor: None or ``"all"``, an int n for the first n, or a list of
    indices), ``image_size`` (16 to 256, default 64; 64 with the file backend), ``backend``
    (``"procedural"``, ``"file"`` or ``"auto"``), ``data_path`` (the ``3dshapes.h5`` file; default
    ``data_dir() / "3dshapes.h5"``, i.e. in ``$DYNDIS_DATA``), ``verify`` (file backend: check a file of the
    published size against the published SHA-256; default True), ``render_mode``, ``max_table_bytes``
    (prerender every chosen state when they fit in this many bytes), ``task`` (a
    :class:`~dyndis_envs.tasks.Task`; default pure dynamics), ``observation_noise`` (int 0..255, default 0: per-pixel
    noise of that many intensity levels, see :mod:`dyndis_envs.noise`).

    ## Version History
    * v0: initial release.

    Example:
        >>> import gymnasium as gym, dyndis_envs
        >>> env = gym.make("DynDis/Shapes3D-v0", factors={"shape": [2], "scale": 4})
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, obs.dtype, env.action_space
        ((64, 64, 3), dtype('uint8'), Discrete(10))
    """

    def __init__(
        self,
        factors: Mapping[str, Subset] | None = None,
        *,
        image_size: int = 64,
        backend: str = "procedural",
        data_path: str | os.PathLike[str] | None = None,
        verify: bool = True,
        render_mode: str | None = None,
        max_table_bytes: int = DEFAULT_TABLE_BYTES,
        task: Task | None = None,
        observation_noise: int = 0,
    ) -> None:
        image_size = check_image_size(image_size)
        verify = check_bool("verify", verify)
        _, path = resolve_backend(backend, data_path, DATASETS["shapes3d"].target)  # None: procedural
        if path is None:
            super().__init__(
                Shapes3DSource(image_size), factors, render_mode, max_table_bytes, task=task,
                observation_noise=observation_noise,
            )
            return
        if image_size != IMAGE_SHAPE[0]:
            raise ValueError(
                f"`image_size` must be {IMAGE_SHAPE[0]} with the file backend (the images of {str(path)!r}), "
                f"got {image_size}; use backend='procedural' for other sizes."
            )
        # the file source resolves the chosen values (it loads only those states); the env reuses them
        source = Shapes3DFileSource(path, factors, verify=verify)
        super().__init__(
            source, render_mode=render_mode, max_table_bytes=max_table_bytes, factor_space=source.factor_space,
            task=task, observation_noise=observation_noise,
        )


class Shapes3DVectorEnv(FactorVectorEnv):
    """Natively batched :class:`Shapes3DEnv`.

    Takes ``num_envs``, ``max_episode_steps``, ``autoreset_mode``, ``render_mode``, ``task`` and the keyword
    arguments of :class:`Shapes3DEnv`; its ``action_effects`` are the single environment's.
    """

    single_env_class = Shapes3DEnv
