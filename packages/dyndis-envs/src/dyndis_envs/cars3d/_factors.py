"""The Cars3D factors and view conventions, shared by the procedural and the file source.

The real data (Reed et al. 2015, "Deep Visual Analogy-Making") stores for each car ``im`` of shape
(128, 128, 3, 24, 4) = (H, W, RGB, azimuth, elevation) and does not label the angles. What the images show
(reference traversals of the real data, 64 x 64):

* azimuth: 24 views, 15 degrees apart, a full turn. From the front view, further azimuth steps turn the
  car's front towards the image's left, so the camera circles anticlockwise seen from above (front,
  front-left, left side with the front pointing left, rear-left, rear, ...). Index 0 is taken as the front.
* elevation: 4 low camera heights. A front view at the lowest shows no roof at all (camera level with the
  car) and the side view of a car grows by only a few pixels from one elevation to the next, consistent with
  steps of about 10 degrees; we use 0, 10, 20 and 30 degrees (an estimate, not a published value).
* framing: one car, centred, on a plain white background, no shadow; seen from the side a car spans
  about 85% of the image width (cars are scaled to a common size).
"""

from __future__ import annotations

from collections.abc import Sequence

from dyndis_envs.factors import Factor

__all__ = ["AZIMUTHS", "ELEVATIONS", "FACTOR_NAMES", "cars3d_factors"]

#: Camera elevations in degrees above the horizon: the values of the ``elevation`` factor.
ELEVATIONS: tuple[float, ...] = (0.0, 10.0, 20.0, 30.0)
#: Camera azimuths in degrees, 0 in front of the car: the values of the ``azimuth`` factor.
AZIMUTHS: tuple[float, ...] = tuple(15.0 * k for k in range(24))
#: The factors in state order.
FACTOR_NAMES = ("elevation", "azimuth", "object")


def cars3d_factors(object_names: Sequence[str]) -> tuple[Factor, Factor, Factor]:
    """The three factors, with the given car names as the values of ``object``."""
    return (
        Factor("elevation", ELEVATIONS),
        Factor("azimuth", AZIMUTHS),
        Factor("object", tuple(object_names)),
    )
