"""A NumPy ray caster of the 3D Shapes room, split into per-material colour layers.

The scene (world units, y up): a square room of half-size ``room_half_size`` with walls of height
``wall_height`` and the sky above them; one object centred on the floor at the origin; a pinhole camera
(45 degree vertical field of view, as MuJoCo's default) at ``camera_distance`` from the object's axis and
``camera_height`` above the floor, pitched slightly down. The ``orientation`` factor turns the camera
around the object's axis, so the room's corners and side walls come into view at oblique angles.

Lighting, as in MuJoCo's fixed pipeline: an ambient term, a headlight along the camera axis, a spot light
high above the room's far left (fixed in the world) that casts the object's shadow and brightens a patch of
floor, Blinn-Phong highlights on the object, and a weak fill from the camera's left on the object. A
sample's colour is ``min(rgb * diffuse + 255 * specular, 255)`` per channel, with ``rgb`` the HSV colour of
the material's hue at full saturation and value, as in the real data (whose brightest floors saturate).

Every constant in :class:`Scene` was fitted to the real frames of ``3dshapes.gif`` (DeepMind's 3d-shapes
repository): camera and room to the room corners' image positions and the objects' edges, the light's
position to the shadows, and the shading to the pixel colours.

Because each pixel's value is a sum over materials, and the hues only change colours, a geometry
(orientation, scale, shape) is traced once and kept as three stacks of per-hue layers (floor, wall and sky,
object); an image is then the sum of one layer from each stack. Layers are rounded so that they never sum
past 255 (see :func:`_quantize`), so the sum needs no clipping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from dyndis_envs.shapes3d._factors import HUES

__all__ = [
    "SCENE",
    "Camera",
    "Layers",
    "Samples",
    "Scene",
    "background_layers",
    "hue_rgb",
    "make_camera",
    "object_layers",
    "supersampling",
    "trace",
]

_SKY, _FLOOR, _WALL, _OBJECT = 0, 1, 2, 3
#: HSV colours at full saturation and value have channels in multiples of 51 (0.2 * 255) for hues k / 10.
_LEVELS = np.linspace(0.0, 1.0, 6)
_EPS = 1e-7


@dataclass(frozen=True)
class Scene:
    """Camera, room, object sizes and lights of the 3D Shapes scene (see the module docstring).

    Object sizes are per unit of the ``scale`` factor. Light positions and directions are in world
    coordinates (the object stands at the origin; the camera is at +z for orientation 0) except
    ``fill_direction``, which is in the camera's frame (x right, y up, z towards the viewer).
    """

    fovy_degrees: float = 45.0
    camera_distance: float = 7.303
    camera_height: float = 2.215
    camera_pitch_degrees: float = 2.12
    room_half_size: float = 8.0
    wall_height: float = 4.45
    cube_half_size: float = 0.893
    cylinder_radius: float = 0.973
    cylinder_half_height: float = 0.959
    sphere_radius: float = 1.103
    capsule_radius: float = 0.846
    capsule_half_length: float = 0.854
    sky_rgb: tuple[float, float, float] = (154.0, 226.0, 250.0)
    light_position: tuple[float, float, float] = (-4.75, 21.40, -2.19)
    spot_target: tuple[float, float, float] = (-2.83, 0.0, -1.04)
    spot_exponent: float = 17.96
    floor_ambient: float = 0.348
    room_diffuse: float = 0.957
    wall_ambient: float = 0.443
    wall_headlight: float = 0.518
    object_ambient: float = 0.426
    object_headlight: float = 0.509
    object_diffuse: float = 1.143
    object_specular: float = 0.192
    object_shininess: float = 4.38
    object_fill: float = 0.200
    fill_direction: tuple[float, float, float] = (-0.612, 0.025, -0.790)


#: The scene every Shapes3D image is rendered with.
SCENE = Scene()


def hue_rgb(hue: float) -> npt.NDArray[np.float64]:
    """RGB in [0, 255] of an HSV hue at full saturation and value, shape (3,)."""
    sector, fraction = divmod(6.0 * (hue % 1.0), 1.0)
    falling, rising = 1.0 - fraction, fraction
    rgb = [(1, rising, 0), (falling, 1, 0), (0, 1, rising), (0, falling, 1), (rising, 0, 1), (1, 0, falling)]
    return 255.0 * np.asarray(rgb[int(sector)], dtype=np.float64)


#: For each hue of :data:`HUES` and channel, the index into :data:`_LEVELS` of its value, shape (10, 3): the
#: HSV colours of hues k / 10 have channels in multiples of 51, so six levels per channel cover all of them.
_HUE_LEVELS = np.rint(np.stack([hue_rgb(h) for h in HUES]) / 51.0).astype(np.intp)


def supersampling(image_size: int) -> int:
    """Samples per pixel side: about 192 samples per image side, at least 2 and at most 8 per pixel."""
    return int(np.clip(round(192 / image_size), 2, 8))


class Camera(NamedTuple):
    """A pinhole camera: position (3,), unit axes (3,) each, and the focal length in pixels."""

    position: npt.NDArray[np.float64]
    forward: npt.NDArray[np.float64]
    right: npt.NDArray[np.float64]
    up: npt.NDArray[np.float64]
    focal: float
    image_size: int


def make_camera(orientation_degrees: float, image_size: int, scene: Scene = SCENE) -> Camera:
    """The camera turned ``orientation_degrees`` around the object (negative: from the left)."""
    turn, pitch = np.radians(orientation_degrees), np.radians(scene.camera_pitch_degrees)
    sin, cos = np.sin(turn), np.cos(turn)
    position = np.array([scene.camera_distance * sin, scene.camera_height, scene.camera_distance * cos])
    forward = np.array([-sin * np.cos(pitch), -np.sin(pitch), -cos * np.cos(pitch)])
    right = np.array([cos, 0.0, -sin])
    up = np.cross(right, forward)
    focal = (image_size / 2) / np.tan(np.radians(scene.fovy_degrees) / 2)
    return Camera(position, forward, right, up, float(focal), image_size)


def _project(camera: Camera, points: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
    """Continuous image coordinates (row, column) of points in front of the camera, shape (N, 3) -> (N,), (N,)."""
    rel = points - camera.position
    depth = rel @ camera.forward
    half = camera.image_size / 2
    return half - camera.focal * (rel @ camera.up) / depth, half + camera.focal * (rel @ camera.right) / depth


def _pixel_rays(
    camera: Camera, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp], supersample: int
) -> npt.NDArray[np.float64]:
    """Unit directions of ``supersample**2`` rays through each pixel (rows[i], cols[i]), shape (P, S*S, 3)."""
    offsets = (np.arange(supersample) + 0.5) / supersample
    sub_y = (rows[:, None, None] + offsets[None, :, None]).repeat(supersample, axis=2).reshape(len(rows), -1)
    sub_x = (cols[:, None, None] + offsets[None, None, :]).repeat(supersample, axis=1).reshape(len(cols), -1)
    half = camera.image_size / 2
    u, v = (sub_x - half) / camera.focal, (half - sub_y) / camera.focal
    directions = camera.forward + u[..., None] * camera.right + v[..., None] * camera.up
    return directions / np.sqrt((directions**2).sum(-1, keepdims=True))


def _object_extent(shape: int, scale: float, scene: Scene) -> tuple[float, float]:
    """(horizontal half-extent, height) of the object's axis-aligned bounding box."""
    if shape == 0:
        return scene.cube_half_size * scale, 2 * scene.cube_half_size * scale
    if shape == 1:
        return scene.cylinder_radius * scale, 2 * scene.cylinder_half_height * scale
    if shape == 2:
        return scene.sphere_radius * scale, 2 * scene.sphere_radius * scale
    return scene.capsule_radius * scale, 2 * (scene.capsule_radius + scene.capsule_half_length) * scale


class _Hits:
    """The nearest hit so far of a batch of rays with the object's parts: distance and surface normal."""

    def __init__(self, n: int) -> None:
        self.t = np.full(n, np.inf)
        self.normal = np.zeros((n, 3))

    def offer(self, t: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_], normal: npt.NDArray[np.float64]) -> None:
        closer = valid & (t > _EPS) & (t < self.t)
        self.t = np.where(closer, t, self.t)
        self.normal = np.where(closer[:, None], normal, self.normal)


def _hit_box(hits: _Hits, o: npt.NDArray[np.float64], d: npt.NDArray[np.float64], half: float) -> None:
    low, high = np.array([-half, 0.0, -half]), np.array([half, 2 * half, half])
    t1, t2 = (low - o) / d, (high - o) / d
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_near, t_far = near.max(-1), far.min(-1)
    axis = near.argmax(-1)
    normal = np.zeros_like(d)
    rows = np.arange(len(d))
    normal[rows, axis] = -np.sign(d[rows, axis])
    hits.offer(t_near, t_near <= t_far, normal)


def _hit_vertical_side(
    hits: _Hits, o: npt.NDArray[np.float64], d: npt.NDArray[np.float64], radius: float, y_low: float, y_high: float
) -> None:
    """The side of a vertical cylinder around the y axis, between heights y_low and y_high."""
    ox, oz, dx, dz = o[:, 0], o[:, 2], d[:, 0], d[:, 2]
    a = dx * dx + dz * dz
    b = ox * dx + oz * dz
    c = ox * ox + oz * oz - radius * radius
    disc = b * b - a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    y = o[:, 1] + t * d[:, 1]
    normal = np.stack([(ox + t * dx) / radius, np.zeros_like(t), (oz + t * dz) / radius], axis=-1)
    hits.offer(t, (disc >= 0) & (a > 0) & (y >= y_low) & (y <= y_high), normal)


def _hit_sphere(hits: _Hits, o: npt.NDArray[np.float64], d: npt.NDArray[np.float64], radius: float, y: float) -> None:
    centred = o - np.array([0.0, y, 0.0])
    b = (centred * d).sum(-1)
    disc = b * b - ((centred**2).sum(-1) - radius * radius)
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    hits.offer(t, disc >= 0, (centred + t[:, None] * d) / radius)


def _hit_object(
    origins: npt.NDArray[np.float64], directions: npt.NDArray[np.float64], shape: int, scale: float, scene: Scene
) -> _Hits:
    """Nearest hits of rays (N, 3) from origins (N, 3) or (3,) with the object; ``t`` is inf for a miss."""
    o = np.broadcast_to(origins, directions.shape)
    d = directions
    hits = _Hits(len(d))
    with np.errstate(divide="ignore", invalid="ignore"):
        if shape == 0:
            _hit_box(hits, o, d, scene.cube_half_size * scale)
        elif shape == 1:
            radius, top = scene.cylinder_radius * scale, 2 * scene.cylinder_half_height * scale
            _hit_vertical_side(hits, o, d, radius, 0.0, top)
            t = (top - o[:, 1]) / d[:, 1]
            x, z = o[:, 0] + t * d[:, 0], o[:, 2] + t * d[:, 2]
            hits.offer(t, x * x + z * z <= radius * radius, np.broadcast_to([0.0, 1.0, 0.0], d.shape))
        elif shape == 2:
            radius = scene.sphere_radius * scale
            _hit_sphere(hits, o, d, radius, radius)
        else:
            radius, half = scene.capsule_radius * scale, scene.capsule_half_length * scale
            _hit_vertical_side(hits, o, d, radius, radius, radius + 2 * half)
            _hit_sphere(hits, o, d, radius, radius)
            _hit_sphere(hits, o, d, radius, radius + 2 * half)
    return hits


class Samples(NamedTuple):
    """What each ray sees, shape (N,) each.

    Attributes:
        material: 0 sky, 1 floor, 2 wall, 3 object (int8).
        diffuse: Brightness factor of the material's colour (1.0: the colour itself; above 1 it saturates).
        specular: White added on top, as a fraction of 255 (object highlights only).
        from_object: True where the object changes the sample: it is the object, or floor in its shadow.
    """

    material: npt.NDArray[np.int8]
    diffuse: npt.NDArray[np.float64]
    specular: npt.NDArray[np.float64]
    from_object: npt.NDArray[np.bool_]


def trace(
    camera: Camera, directions: npt.NDArray[np.float64], shape: int | None, scale: float, scene: Scene = SCENE
) -> Samples:
    """Trace rays (N, 3) from the camera through the room, with the object (``shape`` 0-3) or without (None)."""
    o, d = camera.position, directions
    half = scene.room_half_size
    with np.errstate(divide="ignore", invalid="ignore"):
        t_x = (np.copysign(half, d[:, 0]) - o[0]) / d[:, 0]
        t_z = (np.copysign(half, d[:, 2]) - o[2]) / d[:, 2]
        t_floor = np.where(d[:, 1] < 0, -o[1] / d[:, 1], np.inf)
    t_wall = np.minimum(t_x, t_z)
    on_x_wall = t_x < t_z
    material = np.where(o[1] + t_wall * d[:, 1] <= scene.wall_height, _WALL, _SKY).astype(np.int8)
    material[t_floor < t_wall] = _FLOOR
    t = np.where(material == _FLOOR, t_floor, t_wall)
    normal = np.zeros_like(d)
    normal[:, 1] = 1.0
    walls = material == _WALL
    normal[walls & on_x_wall, 1] = 0.0
    normal[walls & on_x_wall, 0] = -np.sign(d[walls & on_x_wall, 0])
    normal[walls & ~on_x_wall, 1] = 0.0
    normal[walls & ~on_x_wall, 2] = -np.sign(d[walls & ~on_x_wall, 2])

    from_object = np.zeros(len(d), dtype=bool)
    if shape is not None:
        hits = _hit_object(o, d, shape, scale, scene)
        on_object = hits.t < t
        material[on_object] = _OBJECT
        t = np.where(on_object, hits.t, t)
        normal[on_object] = hits.normal[on_object]
        from_object |= on_object
    points = o + t[:, None] * d

    light = np.asarray(scene.light_position)
    to_light = light - points
    to_light /= np.sqrt((to_light**2).sum(-1, keepdims=True))
    spot_axis = np.asarray(scene.spot_target) - light
    spot_axis /= np.linalg.norm(spot_axis)
    spot = np.maximum(-(to_light @ spot_axis), 0.0) ** scene.spot_exponent
    lit = np.maximum((normal * to_light).sum(-1), 0.0) * spot
    if shape is not None:
        floor = np.flatnonzero(material == _FLOOR)
        shadow = _hit_object(points[floor] + 1e-6 * normal[floor], to_light[floor], shape, scale, scene)
        shadowed = floor[np.isfinite(shadow.t)]
        lit[shadowed] = 0.0
        from_object[shadowed] = True
    headlight = np.maximum(normal @ -camera.forward, 0.0)

    diffuse = np.zeros(len(d))
    specular = np.zeros(len(d))
    is_floor, is_object = material == _FLOOR, material == _OBJECT
    diffuse[is_floor] = scene.floor_ambient + scene.room_diffuse * lit[is_floor]
    diffuse[walls] = scene.wall_ambient + scene.wall_headlight * headlight[walls] + scene.room_diffuse * lit[walls]
    if is_object.any():
        n, to_eye = normal[is_object], -d[is_object]
        # the fill turns with the camera (about the vertical axis): camera right, world up, towards the camera
        towards_camera = np.cross(camera.right, [0.0, 1.0, 0.0])
        fx, fy, fz = scene.fill_direction
        fill = fx * camera.right + np.array([0.0, fy, 0.0]) + fz * towards_camera
        fill /= np.linalg.norm(fill)
        diffuse[is_object] = (
            scene.object_ambient
            + scene.object_headlight * headlight[is_object]
            + scene.object_diffuse * lit[is_object]
            + scene.object_fill * np.maximum(n @ fill, 0.0)
        )
        halfway = to_light[is_object] + to_eye
        halfway /= np.sqrt((halfway**2).sum(-1, keepdims=True))
        highlight = np.maximum((n * halfway).sum(-1), 0.0) ** scene.object_shininess
        specular[is_object] = scene.object_specular * highlight * spot[is_object]
    return Samples(material, diffuse, specular, from_object)


class Layers(NamedTuple):
    """Per-hue colour layers of some pixels; an image's pixel is ``floor[fh] + wall[wh] + object[oh]``.

    Attributes:
        floor: The floor's share of each pixel for each floor hue, uint8 (10, P, 3).
        wall: The walls' and sky's share for each wall hue, uint8 (10, P, 3).
        object: The object's share for each object hue, uint8 (10, P, 3).
    """

    floor: npt.NDArray[np.uint8]
    wall: npt.NDArray[np.uint8]
    object: npt.NDArray[np.uint8]


def _quantize(share: npt.NDArray[np.float64], coverage: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Round a material's share of pixels (10, P, 3) covering ``coverage`` (P,) of each pixel to uint8.

    ``floor(share + coverage / 2)`` is ordinary rounding for a pixel covered by one material; the shares of
    a pixel's materials cover 1 in total, so their rounded values never sum to more than
    ``floor(sum + 1/2) <= 255`` and the layers add up in uint8 without overflow.
    """
    return np.floor(share + 0.5 * coverage[None, :, None]).astype(np.uint8)


def _layers(samples: Samples, n_pixels: int, scene: Scene) -> Layers:
    """Per-hue layers of pixels from their samples (``n_pixels * S`` samples, pixel-major)."""
    material = samples.material.reshape(n_pixels, -1)
    per_pixel = material.shape[1]
    # a sample's value in each of the six channel levels, (P, S, 6)
    value = 255.0 * np.minimum(
        _LEVELS * samples.diffuse.reshape(n_pixels, -1, 1) + samples.specular.reshape(n_pixels, -1, 1), 1.0
    )
    shares, coverages = {}, {}
    for m in (_SKY, _FLOOR, _WALL, _OBJECT):
        mask = material == m
        coverages[m] = mask.mean(1)
        shares[m] = np.einsum("psl,ps->pl", value, mask.astype(np.float64)) / per_pixel  # (P, 6)
    sky = coverages[_SKY][:, None] * np.asarray(scene.sky_rgb)  # (P, 3)

    def stack(m: int) -> npt.NDArray[np.float64]:
        return np.moveaxis(shares[m][:, _HUE_LEVELS], 1, 0)  # (10, P, 3)

    return Layers(
        floor=_quantize(stack(_FLOOR), coverages[_FLOOR]),
        wall=_quantize(stack(_WALL) + sky[None], coverages[_WALL] + coverages[_SKY]),
        object=_quantize(stack(_OBJECT), coverages[_OBJECT]),
    )


def background_layers(orientation_degrees: float, image_size: int, scene: Scene = SCENE) -> Layers:
    """Layers of the empty room seen from ``orientation_degrees``: every pixel, row-major, P = H * W.

    Its ``object`` layers are all zero.
    """
    camera = make_camera(orientation_degrees, image_size, scene)
    rows, cols = np.divmod(np.arange(image_size * image_size), image_size)
    directions = _pixel_rays(camera, rows, cols, supersampling(image_size))
    samples = trace(camera, directions.reshape(-1, 3), None, 0.0, scene)
    return _layers(samples, len(rows), scene)


def _object_box(camera: Camera, shape: int, scale: float, scene: Scene) -> tuple[slice, slice]:
    """Image rows and columns that can show the object or its shadow (bounding box and its shadow, projected)."""
    half, height = _object_extent(shape, scale, scene)
    corners = np.array([[x, y, z] for x in (-half, half) for y in (0.0, height) for z in (-half, half)])
    light = np.asarray(scene.light_position)
    # each corner's shadow on the floor: where the ray from the light through it meets y = 0
    reach = light[1] / (light[1] - corners[:, 1])
    shadows = light + (corners - light) * reach[:, None]
    row, col = _project(camera, np.concatenate([corners, shadows]))
    size = camera.image_size
    r0, r1 = int(np.clip(np.floor(row.min()) - 1, 0, size)), int(np.clip(np.ceil(row.max()) + 1, 0, size))
    c0, c1 = int(np.clip(np.floor(col.min()) - 1, 0, size)), int(np.clip(np.ceil(col.max()) + 1, 0, size))
    return slice(r0, r1), slice(c0, c1)


def object_layers(
    orientation_degrees: float, shape: int, scale: float, image_size: int, scene: Scene = SCENE
) -> tuple[npt.NDArray[np.intp], Layers]:
    """The pixels where the object or its shadow shows, and their layers.

    Every other pixel of the image equals :func:`background_layers` of the same orientation. Only pixels
    next to one whose centre sees the object or its shadow are supersampled (a part of the object or shadow
    narrower than a pixel in both directions would be missed; none is at the sizes allowed).

    Returns:
        Flat (row-major) indices of those pixels, shape (P,), and their layers.
    """
    camera = make_camera(orientation_degrees, image_size, scene)
    row_range, col_range = _object_box(camera, shape, scale, scene)
    rows, cols = np.meshgrid(np.arange(image_size)[row_range], np.arange(image_size)[col_range], indexing="ij")
    centres = trace(camera, _pixel_rays(camera, rows.ravel(), cols.ravel(), 1)[:, 0], shape, scale, scene)
    seen = np.pad(centres.from_object.reshape(rows.shape), 1)
    near = np.zeros(rows.shape, dtype=bool)
    for dy in range(3):  # dilate by one pixel (3 x 3 neighbourhood)
        for dx in range(3):
            near |= seen[dy : dy + rows.shape[0], dx : dx + rows.shape[1]]
    rows, cols = rows[near], cols[near]
    directions = _pixel_rays(camera, rows, cols, supersampling(image_size))
    samples = trace(camera, directions.reshape(-1, 3), shape, scale, scene)
    changed = samples.from_object.reshape(len(rows), -1).any(1)
    keep = np.repeat(changed, directions.shape[1])
    kept = Samples(*(field[keep] for field in samples))
    return rows[changed] * image_size + cols[changed], _layers(kept, int(changed.sum()), scene)
