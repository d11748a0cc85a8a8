"""Cars3D: 183 cars seen from 24 azimuths and 4 elevations, rendered procedurally or read from the real data.

:class:`Cars3DEnv` and :class:`Cars3DVectorEnv` are registered as ``DynDis/Cars3D-v0``. The procedural
source needs no file: :mod:`._models` draws the parametric cars, :mod:`._mesh` builds their polygons,
:mod:`._renderer` draws them, :mod:`._cache` keeps rendered views on disk. :mod:`._file_source` reads the
real ``cars/`` folder.
"""

from dyndis_envs.cars3d._factors import AZIMUTHS, ELEVATIONS, FACTOR_NAMES
from dyndis_envs.cars3d._file_source import Cars3DFileSource, load_car_views, read_object_list
from dyndis_envs.cars3d._models import BODY_TYPES, CarModel, generate_models
from dyndis_envs.cars3d._sources import MODELS, Cars3DRenderedTable, Cars3DRenderSource, Cars3DViewTable
from dyndis_envs.cars3d.env import Cars3DEnv, Cars3DVectorEnv

__all__ = [
    "AZIMUTHS",
    "BODY_TYPES",
    "ELEVATIONS",
    "FACTOR_NAMES",
    "MODELS",
    "CarModel",
    "Cars3DEnv",
    "Cars3DFileSource",
    "Cars3DRenderSource",
    "Cars3DRenderedTable",
    "Cars3DVectorEnv",
    "Cars3DViewTable",
    "generate_models",
    "load_car_views",
    "read_object_list",
]
