"""The 3D Shapes factors and their values, shared by the procedural and the file source.

Values are those of DeepMind's ``3dshapes.h5`` labels (Burgess & Kim 2018), in label column order:
three hues in {0.0, 0.1, ..., 0.9} (HSV hue with full saturation and value), the object's ``scale`` in
``linspace(0.75, 1.25, 8)``, its ``shape`` (0 cube, 1 cylinder, 2 sphere, 3 capsule) and the camera
``orientation`` in ``linspace(-30, 30, 15)`` degrees around the object.
"""

from __future__ import annotations

import numpy as np

from dyndis_envs.factors import Factor

__all__ = ["FACTOR_NAMES", "HUES", "ORIENTATIONS", "SCALES", "SHAPES", "SHAPE_NAMES", "shapes3d_factors"]

#: The factors in state order, which is also the column order of the real file's ``labels``.
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
#: Values of ``floor_hue``, ``wall_hue`` and ``object_hue``.
HUES: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(10))
#: Values of ``scale``: the object's size relative to the middle one.
SCALES: tuple[float, ...] = tuple(float(v) for v in np.linspace(0.75, 1.25, 8))
#: Values of ``shape``, as stored in the labels; :data:`SHAPE_NAMES` names them.
SHAPES: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0)
#: What each value of ``shape`` is.
SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")
#: Values of ``orientation``: the camera's angle around the object, in degrees.
ORIENTATIONS: tuple[float, ...] = tuple(float(v) for v in np.linspace(-30.0, 30.0, 15))


def shapes3d_factors() -> tuple[Factor, ...]:
    """The six factors with all their values, in state order."""
    values = (HUES, HUES, HUES, SCALES, SHAPES, ORIENTATIONS)
    return tuple(Factor(name, vals) for name, vals in zip(FACTOR_NAMES, values))
