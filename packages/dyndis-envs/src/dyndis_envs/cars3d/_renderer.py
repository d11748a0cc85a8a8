"""Batched rendering of car meshes at the Cars3D views: painter's algorithm, flat shading, supersampling.

Each view places a perspective camera on a sphere around the car: ``azimuth`` degrees around the vertical
axis (0: in front of the car, 90: at its left side, so the car's front points to the image's left) and
``elevation`` degrees above the horizon, looking at the centre of the car's bounding box. Every car is
scaled to the same length, so its side view spans :data:`SIDE_VIEW_SPAN` of the image width, as in the
real data.

Faces facing away from the camera are culled; the others are sorted far to near by their anchors' depths
(then by layer) and filled with Pillow on a canvas :data:`SUPERSAMPLING` times larger than the image, which
is then box-filtered down (anti-aliasing). Shading is per face: a hemisphere ambient term, a key light
above and in front of the camera, and a Blinn-Phong highlight. The cars and the light are mirror-symmetric,
so views at azimuths ``a`` and ``360 - a`` are mirror images: only azimuths 0 to 180 degrees are drawn.
Rendering is deterministic: the same view always gives the same bytes (the group law relies on it).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import PIL
from PIL import Image, ImageDraw

from dyndis_envs.cars3d._factors import AZIMUTHS, ELEVATIONS
from dyndis_envs.cars3d._mesh import CarMesh, Material

__all__ = [
    "RENDERER_VERSION",
    "SIDE_VIEW_SPAN",
    "SUPERSAMPLING",
    "render_views",
    "renderer_parameters",
]

#: Bumped whenever the meshes or the drawing change the images; part of the cache key.
RENDERER_VERSION = 1
#: Canvas scale factor for anti-aliasing.
SUPERSAMPLING = 4
#: Fraction of the image width spanned by a car's length seen from the side.
SIDE_VIEW_SPAN = 0.82
#: Camera distance in car lengths (sets the perspective).
CAMERA_DISTANCE = 3.2

_BACKGROUND = (255, 255, 255)
# Key light direction in camera coordinates (right, up, towards the viewer): above and in front of the car,
# centred, so that mirrored views are lit alike.
_LIGHT = np.array([0.0, 0.8, 0.6])
# Per material: ambient, diffuse, specular, shininess, sky reflection.
_SHADING = np.zeros((len(Material), 5))
_SHADING[Material.PAINT] = (0.42, 0.55, 0.3, 24.0, 0.0)
_SHADING[Material.GLASS] = (0.85, 0.15, 0.55, 40.0, 0.22)
_SHADING[Material.TYRE] = (0.75, 0.35, 0.04, 8.0, 0.0)
_SHADING[Material.RIM] = (0.5, 0.5, 0.35, 20.0, 0.0)
_SHADING[Material.DARK] = (0.8, 0.25, 0.03, 8.0, 0.0)
_SHADING[Material.HEADLIGHT] = (0.85, 0.2, 0.3, 16.0, 0.0)
_SHADING[Material.TAILLIGHT] = (0.75, 0.3, 0.3, 16.0, 0.0)
_SHADING[Material.PLATE] = (0.8, 0.22, 0.1, 8.0, 0.0)


def renderer_parameters() -> dict[str, object]:
    """Everything that determines the rendered images besides the models and the image size."""
    return {
        "version": RENDERER_VERSION,
        "pillow": PIL.__version__,  # its polygon filling decides the edge pixels
        "elevations": ELEVATIONS,
        "azimuths": AZIMUTHS,
        "supersampling": SUPERSAMPLING,
        "side_view_span": SIDE_VIEW_SPAN,
        "camera_distance": CAMERA_DISTANCE,
        "light": _LIGHT.round(6).tolist(),
        "shading": _SHADING.round(6).tolist(),
    }


def _cameras(
    elevations: npt.NDArray[np.float64], azimuths: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Camera positions (B, 3) and orthonormal bases (B, 3, 3) with rows right, up, forward."""
    e, a = np.radians(elevations), np.radians(azimuths)
    position = CAMERA_DISTANCE * np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], axis=1)
    forward = -position / CAMERA_DISTANCE
    right = np.stack([-np.sin(a), np.cos(a), np.zeros_like(a)], axis=1)  # forward x (0, 0, 1), normalised
    up = np.cross(right, forward)
    return position, np.stack([right, up, forward], axis=1)


def _shade(
    mesh: CarMesh, centroids: npt.NDArray[np.float64], position: npt.NDArray[np.float64],
    basis: npt.NDArray[np.float64],
) -> npt.NDArray[np.int64]:
    """Packed RGB colour (R + 256 G + 65536 B) of every face in every view, shape (B, F)."""
    params = _SHADING[mesh.materials]  # (F, 5)
    ambient, diffuse, specular, shininess, sky = (params[:, k] for k in range(5))
    light = _LIGHT[0] * basis[:, 0] + _LIGHT[1] * basis[:, 1] - _LIGHT[2] * basis[:, 2]  # (B, 3)
    to_eye = position[:, None, :] - centroids[None]
    to_eye /= np.linalg.norm(to_eye, axis=-1, keepdims=True)
    half = to_eye + light[:, None, :]
    half /= np.linalg.norm(half, axis=-1, keepdims=True)
    n_dot_l = np.clip(mesh.normals @ light.T, 0.0, None).T  # (B, F)
    n_dot_h = np.clip(np.einsum("fk,bfk->bf", mesh.normals, half), 0.0, None)
    up = mesh.normals[:, 2]
    hemisphere = 0.8 + 0.2 * up
    lit = mesh.colours[None] * (ambient * hemisphere + diffuse * n_dot_l)[..., None]
    shine = specular * n_dot_h**shininess + sky * np.clip(up, 0.0, None)
    rgb = np.clip(np.rint(255.0 * (lit + shine[..., None])), 0, 255).astype(np.int64)
    return rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)


def _render_canonical(
    mesh: CarMesh, elevations: npt.NDArray[np.float64], azimuths: npt.NDArray[np.float64], image_size: int
) -> npt.NDArray[np.uint8]:
    """Render views given in degrees, shape (B,) each, into a (B, image_size, image_size, 3) array."""
    position, basis = _cameras(elevations, azimuths)
    # every car has length 1 and its bounding box's centre at the origin
    offset = np.array([0.0, 0.0, mesh.height / 2])
    vertices = (mesh.vertices - offset) / mesh.length
    anchors = (mesh.anchors - offset) / mesh.length
    counts = np.diff(mesh.starts)
    centroids = np.add.reduceat(vertices, mesh.starts[:-1], axis=0) / counts[:, None]

    canvas = image_size * SUPERSAMPLING
    focal = SIDE_VIEW_SPAN * canvas * CAMERA_DISTANCE
    camera = (vertices[None] - position[:, None, :]) @ basis.transpose(0, 2, 1)  # (B, V, 3)
    screen = np.empty((*camera.shape[:2], 2))
    screen[..., 0] = canvas / 2 + focal * camera[..., 0] / camera[..., 2]
    screen[..., 1] = canvas / 2 - focal * camera[..., 1] / camera[..., 2]
    depth = np.einsum("bfk,bk->bf", anchors[None] - position[:, None, :], basis[:, 2])
    facing = np.einsum("bfk,fk->bf", position[:, None, :] - centroids[None], mesh.normals) > 0
    colours = _shade(mesh, centroids, position, basis)

    out = np.empty((len(position), image_size, image_size, 3), dtype=np.uint8)
    flat_starts = (2 * mesh.starts).tolist()
    for b in range(len(position)):
        order = np.lexsort((mesh.layers, -depth[b]))  # far to near, then by layer
        order = order[facing[b, order]]
        flat = screen[b].ravel().tolist()
        image = Image.new("RGB", (canvas, canvas), _BACKGROUND)
        polygon = ImageDraw.Draw(image).polygon
        for face, colour in zip(order.tolist(), colours[b, order].tolist()):
            polygon(flat[flat_starts[face] : flat_starts[face + 1]], fill=colour)
        out[b] = np.asarray(image.reduce(SUPERSAMPLING))
    return out


def render_views(
    mesh: CarMesh,
    elevation_indices: npt.NDArray[np.int64],
    azimuth_indices: npt.NDArray[np.int64],
    image_size: int,
) -> npt.NDArray[np.uint8]:
    """Images of one car at a batch of views.

    The cars are mirror-symmetric and lit symmetrically, so the view from azimuth ``360 - a`` is the mirror
    image of the view from ``a``: only azimuths 0 to 180 degrees are rendered, the others are flipped.

    Args:
        mesh: The car.
        elevation_indices: shape (B,), indices into :data:`ELEVATIONS`.
        azimuth_indices: shape (B,), indices into :data:`AZIMUTHS`.
        image_size: Height and width of the images in pixels.

    Returns:
        uint8 array of shape (B, image_size, image_size, 3).
    """
    elevation_indices = np.asarray(elevation_indices, dtype=np.int64)
    azimuth_indices = np.asarray(azimuth_indices, dtype=np.int64)
    n_azimuths = len(AZIMUTHS)
    mirrored = azimuth_indices > n_azimuths // 2
    canonical = np.where(mirrored, n_azimuths - azimuth_indices, azimuth_indices)
    views, inverse = np.unique(elevation_indices * n_azimuths + canonical, return_inverse=True)
    images = _render_canonical(
        mesh, np.asarray(ELEVATIONS)[views // n_azimuths], np.asarray(AZIMUTHS)[views % n_azimuths], image_size
    )
    out = images[inverse.reshape(-1)]
    out[mirrored] = out[mirrored, :, ::-1]
    return out
