"""Shapes3D: DeepMind's 3D Shapes scene, rendered procedurally or read from the real ``3dshapes.h5``.

:class:`Shapes3DEnv` and :class:`Shapes3DVectorEnv` are registered as ``DynDis/Shapes3D-v0``. The
procedural source needs no file: :mod:`._renderer` ray-casts the room into per-hue colour layers and
:mod:`._procedural_source` composes images from them. :mod:`._file_source` reads the real file.
"""

from dyndis_envs.shapes3d._factors import (
    FACTOR_NAMES,
    HUES,
    ORIENTATIONS,
    SCALES,
    SHAPE_NAMES,
    SHAPES,
    shapes3d_factors,
)
from dyndis_envs.shapes3d._file_source import Shapes3DFileSource, read_label_grid
from dyndis_envs.shapes3d._procedural_source import Shapes3DSource
from dyndis_envs.shapes3d._renderer import SCENE, Scene
from dyndis_envs.shapes3d.env import Shapes3DEnv, Shapes3DVectorEnv

__all__ = [
    "FACTOR_NAMES",
    "HUES",
    "ORIENTATIONS",
    "SCALES",
    "SCENE",
    "SHAPES",
    "SHAPE_NAMES",
    "Scene",
    "Shapes3DEnv",
    "Shapes3DFileSource",
    "Shapes3DSource",
    "Shapes3DVectorEnv",
    "read_label_grid",
    "shapes3d_factors",
]
