"""Polygon meshes of the parametric cars: a lofted body, four wheels, mirrors, lights and grille.

The body is a loft: a cross-section ring (underbody, wheel-arch liner, rounded side, shoulder, window
line, cabin side with tumblehome, roof) evaluated at stations along the car and joined by quads. The side
profile comes from the model's heights and stations: hood, windshield, roof, rear window or hatch, trunk
deck or load bed, and wheel arches cut into the lower body. Stretches where the surface is flat (doors,
roof) are merged into single faces, which keeps the polygon count (and the render time) low.

The renderer draws with the painter's algorithm, so every face also carries a sort ``anchor`` (the point
whose depth orders it) and a ``layer``: coplanar faces of one group (a wheel's outer face with its rim, a
bumper face with its lights) share the group's anchor and are drawn in layer order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from dyndis_envs.cars3d._models import CarModel

__all__ = ["CarMesh", "Material", "build_mesh"]


class Material(IntEnum):
    """Surface kinds; the renderer shades each with its own parameters."""

    PAINT = 0
    GLASS = 1
    TYRE = 2
    RIM = 3
    DARK = 4  # underbody, wheel-arch liners, grille, bumpers of utility vehicles, pickup beds
    HEADLIGHT = 5
    TAILLIGHT = 6
    PLATE = 7


# Base colours (RGB in [0, 1]) of the materials whose colour does not come from the model.
_COLOURS = {
    Material.GLASS: (0.12, 0.16, 0.23),
    Material.TYRE: (0.11, 0.11, 0.12),
    Material.DARK: (0.14, 0.14, 0.15),
    Material.HEADLIGHT: (0.93, 0.93, 0.86),
    Material.TAILLIGHT: (0.72, 0.08, 0.08),
    Material.PLATE: (0.92, 0.92, 0.88),
}
_WHEEL_SEGMENTS = 12
_MIN_AREA = 1e-6  # m^2: faces smaller than this (collapsed ring segments) are dropped
_MERGE_TOLERANCE = 0.001  # m: how far from their plane the corners of merged faces may lie
_MERGE_COSINE = np.cos(np.radians(1.0))  # and how far their normals may turn
_MIRROR = np.array([1.0, -1.0, 1.0])  # reflection through the car's centre plane (y -> -y)


@dataclass(frozen=True)
class CarMesh:
    """A car as polygons, with what the painter's algorithm and the shader need per face.

    Attributes:
        vertices: (V, 3) positions in metres (``x`` forward, ``y`` left, ``z`` up from the ground); the
            vertices of face ``f`` are rows ``starts[f]:starts[f + 1]``.
        starts: (F + 1,) int, where each face's vertices start (and the total at the end).
        normals: (F, 3) unit outward normals.
        anchors: (F, 3) the point whose depth orders each face (its group's centre).
        layers: (F,) int, draw order within a group (0 first).
        materials: (F,) int, :class:`Material` values.
        colours: (F, 3) float base colours in [0, 1].
        height: Roof height (the renderer centres the view on half of it).
        length: Bumper to bumper (the renderer scales every car to the same length).
    """

    vertices: npt.NDArray[np.float64]
    starts: npt.NDArray[np.int64]
    normals: npt.NDArray[np.float64]
    anchors: npt.NDArray[np.float64]
    layers: npt.NDArray[np.int64]
    materials: npt.NDArray[np.int64]
    colours: npt.NDArray[np.float64]
    height: float
    length: float

    @property
    def n_faces(self) -> int:
        """Number of faces."""
        return len(self.normals)


_PER_FACE = ("normals", "anchors", "layers", "materials", "colours")


class _Builder:
    """Collects polygons in batches; computes normals (Newell's method) and drops degenerate ones."""

    def __init__(self, model: CarModel) -> None:
        self._model = model
        self._batches: list[dict[str, npt.NDArray]] = []
        colours = {**_COLOURS, Material.PAINT: np.asarray(model.paint) / 255, Material.RIM: np.asarray(model.rim) / 255}
        self.palette = np.stack([np.asarray(colours[m], dtype=float) for m in Material])

    def add(
        self,
        polygons: npt.NDArray[np.float64],
        materials: npt.NDArray[np.int64] | Material,
        anchors: npt.NDArray[np.float64] | None = None,
        layer: int = 0,
        colour: npt.NDArray[np.float64] | None = None,
        facing: npt.NDArray[np.float64] | None = None,
    ) -> None:
        """Add polygons that have the same number of corners, dropping degenerate ones.

        Args:
            polygons: (N, k, 3) corners, in order.
            materials: (N,) or one :class:`Material`.
            anchors: (N, 3) or (3,): the points whose depths order them; their centroids by default.
            layer: Draw order within their groups.
            colour: (3,) base colour instead of the materials'.
            facing: (N, 3) or (3,): directions the outward normals must not oppose (corners are reversed
                where they do); without it, the corners' order gives the normal (counter-clockwise seen
                from outside).
        """
        n = len(polygons)
        normals = np.cross(polygons, np.roll(polygons, -1, axis=1)).sum(axis=1)
        areas = 0.5 * np.linalg.norm(normals, axis=1)
        if facing is not None:
            flip = np.einsum("nk,nk->n", normals, np.broadcast_to(facing, normals.shape)) < 0
            polygons = np.where(flip[:, None, None], polygons[:, ::-1], polygons)
            normals = np.where(flip[:, None], -normals, normals)
        keep = areas >= _MIN_AREA
        materials = np.broadcast_to(np.asarray(materials, dtype=np.int64), (n,))
        self._batches.append({
            "polygons": polygons[keep],
            "normals": normals[keep] / (2.0 * areas[keep, None]),
            "anchors": (polygons.mean(axis=1) if anchors is None else np.broadcast_to(anchors, (n, 3)))[keep],
            "layers": np.full(int(keep.sum()), layer, dtype=np.int64),
            "materials": materials[keep],
            "colours": (self.palette[materials] if colour is None else np.broadcast_to(colour, (n, 3)))[keep],
        })

    def mesh(self) -> CarMesh:
        """The mesh of everything added so far."""
        batches = [b for b in self._batches if len(b["polygons"])]
        counts = np.concatenate([np.full(len(b["polygons"]), b["polygons"].shape[1]) for b in batches])
        return CarMesh(
            vertices=np.concatenate([b["polygons"].reshape(-1, 3) for b in batches]),
            starts=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            **{key: np.concatenate([b[key] for b in batches]) for key in _PER_FACE},
            height=self._model.height,
            length=self._model.length,
        )


# -- the body's side profile and plan ---------------------------------------------------------------------------


def _arch_radius(model: CarModel) -> float:
    return model.wheel_radius + 0.045


def _end_radii(model: CarModel) -> tuple[float, float]:
    """Radii that round the top and bottom edges of the nose and tail (side view)."""
    rounded = model.body_type in ("sedan", "hatchback", "sports")
    return (0.16 if rounded else 0.09), 0.07


def _glass_start(model: CarModel) -> float:
    """Station where the side windows start, just behind the windshield's base (as in the models)."""
    return model.windshield_base - 0.08 * (model.windshield_base - model.windshield_top)


def _rear_glass_bottom(model: CarModel) -> tuple[float, float]:
    """(x, z) of the rear window's lower edge on the cabin's back slope: the deck, or higher on a hatch."""
    share = {"sedan": 0.0, "sports": 0.0, "hatchback": 0.4, "suv": 0.42, "van": 0.45, "pickup": 0.4}[model.body_type]
    x = model.rear_window_base + (model.roof_end - model.rear_window_base) * share
    z = model.deck_height + (model.height - 0.02 - model.deck_height) * share
    return x, z


def _stations(model: CarModel) -> npt.NDArray[np.float64]:
    """``x`` of every cross-section: ends and their rounding, arches, cabin keypoints, then evenly filled."""
    half = model.length / 2
    top_radius, _ = _end_radii(model)
    rounding = top_radius * (1 - np.sin(np.radians([0.0, 45.0, 90.0])))
    xs = [half - rounding, -half + rounding]
    arch = _arch_radius(model)
    arch_cos = np.cos(np.radians([0.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0]))
    for axle in (model.front_axle, model.rear_axle):
        xs += [axle + arch * arch_cos, np.array([axle - arch - 0.012, axle + arch + 0.012])]
    cabin = [model.windshield_base, model.windshield_top, model.roof_end, model.rear_window_base]
    cabin += list(np.linspace(model.windshield_base, model.windshield_top, 4)[1:-1])
    cabin += list(np.linspace(model.rear_window_base, model.roof_end, 4)[1:-1])
    cabin += [_rear_glass_bottom(model)[0], _glass_start(model), model.side_glass_end]
    if model.b_pillar is not None:
        cabin += [model.b_pillar - 0.04, model.b_pillar + 0.04]
    xs.append(np.asarray(cabin))
    stations = np.unique(np.clip(np.concatenate(xs), -half, half))
    stations = stations[np.concatenate([[True], np.diff(stations) > 0.012])]
    filled = [stations[:1]]
    for a, b in itertools.pairwise(stations):  # no gap longer than 0.3 m
        filled.append(np.linspace(a, b, int(np.ceil((b - a) / 0.3)) + 1)[1:])
    return np.concatenate(filled)


def _top_line(model: CarModel, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Height of the cabin's top (windshield, roof, rear window) at ``x``; NaN outside the cabin."""
    h = model.height
    ws0, ws1, r1, rw0 = model.windshield_base, model.windshield_top, model.roof_end, model.rear_window_base
    keys_x = [rw0, r1, (r1 + ws1) / 2, ws1, ws0]
    z = np.interp(x, keys_x, [model.deck_height, h - 0.025, h, h - 0.02, model.cowl_height])
    # windshield and rear window bulge outwards a little (a sine bump along each slope)
    for a, b, bump in ((ws1, ws0, 0.05), (rw0, r1, 0.06 if model.body_type in ("sedan", "sports") else 0.02)):
        t = np.clip((x - a) / (b - a), 0.0, 1.0)
        z = z + bump * (h - model.cowl_height) * np.sin(np.pi * t)
    return np.where((x >= rw0) & (x <= ws0), z, np.nan)


def _belt_line(model: CarModel, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Height of the hood, window line and deck at ``x``, before the ends are rounded."""
    half = model.length / 2
    hood_top = (model.cowl_height + model.nose_height) / 2 + 0.25 * (model.cowl_height - model.nose_height)
    return np.interp(
        x,
        [-half, model.rear_window_base, model.windshield_base, (model.windshield_base + half) / 2, half],
        [model.tail_height, model.deck_height, model.cowl_height, hood_top, model.nose_height],
    )


def _rounding(model: CarModel, x: npt.NDArray[np.float64], radius: float) -> npt.NDArray[np.float64]:
    """How far the ends' rounded edges pull the profile in at ``x`` (0 away from the ends)."""
    t = np.clip((np.abs(x) - (model.length / 2 - radius)) / radius, 0.0, 1.0)
    return radius * (1.0 - np.sqrt(1.0 - t * t))


def _half_width(model: CarModel, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Half the body's width at ``x``: a superellipse in plan view, ``end_width`` wide at the bumpers."""
    p = model.plan_exponent
    u_end = (1.0 - model.end_width**p) ** (1.0 / p)
    u = np.abs(x) / (model.length / 2) * u_end
    return model.width / 2 * (1.0 - u**p) ** (1.0 / p)


def _arch_height(model: CarModel, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Height of the wheel-arch opening at ``x`` (-inf away from the wheels)."""
    radius = _arch_radius(model)
    z = np.full_like(x, -np.inf)
    for axle in (model.front_axle, model.rear_axle):
        dx = x - axle
        inside = np.abs(dx) <= radius + 1e-9
        z = np.where(inside, model.wheel_radius + np.sqrt(np.clip(radius**2 - dx**2, 0.0, None)), z)
    return z


def _lift_outside_axles(model: CarModel, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """0 between the arches, rising to 1 at the bumpers: the underbody lifts towards the ends."""
    radius = _arch_radius(model)
    front = (x - (model.front_axle + radius)) / (model.length / 2 - model.front_axle - radius)
    rear = ((model.rear_axle - radius) - x) / (model.rear_axle - radius + model.length / 2)
    return np.clip(np.maximum(front, rear), 0.0, 1.0) ** 2


# -- the body -----------------------------------------------------------------------------------------------

# The segments of a cross-section ring, from the bottom centre round to the roof centre: segment j joins
# ring points j and j + 1 (see _rings), so point j is where segment j starts.
_SEGMENTS = ("under", "liner", "arch", "rocker", "side", "shoulder", "deck", "sill", "window", "rail", "top")
_SEG = {name: j for j, name in enumerate(_SEGMENTS)}


def _rings(model: CarModel, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Cross-sections of the left half (y >= 0) at stations ``x``, shape (n_stations, 12, 3) of (x, y, z)."""
    top_radius, bottom_radius = _end_radii(model)
    w = _half_width(model, x)
    bottom = model.clearance + _rounding(model, x, bottom_radius) + 0.06 * _lift_outside_axles(model, x)
    lower = np.maximum(bottom, _arch_height(model, x))  # the side's lower edge, raised over the wheels
    belt = _belt_line(model, x) - _rounding(model, x, top_radius)
    top_line = _top_line(model, x)
    in_cabin = ~np.isnan(top_line)
    top = np.where(in_cabin, np.maximum(np.nan_to_num(top_line), belt), belt)
    window = top - belt
    liner = w - model.wheel_inset - model.tyre_width - 0.03  # the arch liner's wall, inside the tyres
    shoulder = np.minimum(0.06, 0.3 * (belt - lower))
    corner = np.minimum(0.05, 0.3 * (belt - lower))
    cabin_base = w - (0.03 if model.body_type == "van" else 0.07)
    cabin_top = cabin_base - model.tumblehome * window / max(model.height - model.cowl_height, 1e-3)
    sill = np.minimum(0.03, 0.3 * window)
    crown = np.where(in_cabin & (window > 0.05), 0.035, 0.02)
    if model.has_bed:  # the bed's rails are narrow: its dark floor spans almost the whole width
        bed = x < model.rear_window_base
        cabin_base = np.where(bed, w - 0.1, cabin_base)
        cabin_top = np.where(bed, cabin_base, cabin_top)
        crown = np.where(bed, 0.0, crown)
    rail = np.minimum(0.09, 0.5 * cabin_top)
    zero = np.zeros_like(x)
    y_z = [  # (y, z) of each ring point, named by the segment that starts there
        (zero, bottom),  # under: the flat underbody
        (liner, bottom),  # liner: the arch liner's wall (zero height away from the wheels)
        (liner, lower),  # arch: the arch's roof above the tyre
        (w - corner, lower),  # rocker: the rounded lower edge of the side
        (w, lower + corner),  # side: doors and fenders
        (w, belt - shoulder),  # shoulder: the rounded upper edge of the side
        (w - shoulder, belt),  # deck: the hood, trunk or bed rail beside the cabin
        (cabin_base, belt),  # sill: below the side windows
        (cabin_base - np.where(sill > 0, 0.01, 0.0), belt + sill),  # window: side windows and pillars
        (cabin_top, top),  # rail: the roof's edge, the A- and C-pillars along the windshield and rear window
        (cabin_top - rail, top + 0.6 * crown),  # top: windshield, roof, rear window (or hood, deck, bed floor)
        (zero, top + crown),
    ]
    return np.stack([np.stack([x, y, z], axis=-1) for y, z in y_z], axis=1)


def _loft_materials(
    model: CarModel, x: npt.NDArray[np.float64], rings: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Material of every loft face, shape (n_stations - 1, n_segments).

    Face (i, j) joins stations i and i + 1 along ring segment j.
    """
    mid = (x[:-1] + x[1:]) / 2
    z_mid = rings[:, :, 2]
    z_mid = (z_mid[:-1, :-1] + z_mid[:-1, 1:] + z_mid[1:, :-1] + z_mid[1:, 1:]) / 4
    segment = np.arange(rings.shape[1] - 1)[None, :]
    in_cabin = ((model.rear_window_base < mid) & (mid < model.windshield_base))[:, None]
    on_pillar = np.zeros_like(mid, dtype=bool) if model.b_pillar is None else np.abs(mid - model.b_pillar) < 0.04
    side_glass = ((model.side_glass_end < mid) & (mid < _glass_start(model)) & ~on_pillar)[:, None]
    rear_glass_x, rear_glass_z = _rear_glass_bottom(model)
    windshield = (mid > model.windshield_top)[:, None]
    rear_window = ((mid < model.roof_end) & (mid > rear_glass_x - 1e-9))[:, None] & (z_mid > rear_glass_z - 0.05)
    glass = in_cabin & (
        ((segment == _SEG["window"]) & side_glass) | ((segment == _SEG["top"]) & (windshield | rear_window))
    )
    materials = np.where(glass, int(Material.GLASS), int(Material.PAINT))
    if model.has_bed:
        materials[(mid < model.rear_window_base)[:, None] & (segment >= _SEG["sill"])] = int(Material.DARK)
    materials[:, [_SEG["under"], _SEG["liner"], _SEG["arch"]]] = int(Material.DARK)
    return materials


def _coplanar_runs(rings: npt.NDArray[np.float64], materials: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """Runs of faces ``(first, last)`` along one ring segment that lie in one plane and share a material.

    Args:
        rings: (n_stations, 2, 3) the segment's two end points at every station.
        materials: (n_stations - 1,) the material of each face along the segment.

    Degenerate faces (both end points collapsed) are left out of every run.
    """
    quads = np.stack([rings[:-1, 0], rings[:-1, 1], rings[1:, 1], rings[1:, 0]], axis=1)
    normals = np.cross(quads, np.roll(quads, -1, axis=1)).sum(axis=1)
    areas = np.linalg.norm(normals, axis=1) / 2
    normals /= np.maximum(2 * areas, 1e-12)[:, None]
    runs: list[tuple[int, int]] = []
    for i in range(len(quads)):
        if areas[i] < _MIN_AREA:
            continue
        if runs and runs[-1][1] == i - 1 and materials[i] == materials[runs[-1][0]]:
            first = runs[-1][0]
            plane_normal, plane_point = normals[first], quads[first, 0]
            in_plane = np.abs((quads[i] - plane_point) @ plane_normal).max() < _MERGE_TOLERANCE
            if in_plane and normals[i] @ plane_normal > _MERGE_COSINE:
                runs[-1] = (first, i)
                continue
        runs.append((i, i))
    return runs


def _add_body(builder: _Builder, model: CarModel) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Add the lofted body; returns the rings (left half) at its rear and front ends, each (12, 3).

    Coplanar faces along a ring segment become one polygon that keeps every station's corner on its edges,
    so that neighbouring faces always share their edges exactly (no cracks at T-junctions).
    """
    x = _stations(model)
    rings = _rings(model, x)
    materials = _loft_materials(model, x, rings)
    by_size: dict[int, tuple[list[npt.NDArray[np.float64]], list[int]]] = {}
    for j in range(rings.shape[1] - 1):
        for first, last in _coplanar_runs(rings[:, j : j + 2], materials[:, j]):
            # corner (first, j), then along edge j + 1 and back along edge j: counter-clockwise from outside
            edge, next_edge = rings[:, j], rings[:, j + 1]
            polygon = np.concatenate(
                [edge[first : first + 1], next_edge[first : last + 2], edge[last + 1 : first : -1]]
            )
            polygons, polygon_materials = by_size.setdefault(len(polygon), ([], []))
            polygons.append(polygon)
            polygon_materials.append(int(materials[first, j]))
    for polygons, polygon_materials in by_size.values():
        left = np.asarray(polygons)
        right = left[:, ::-1] * _MIRROR  # the mirror image, wound the other way
        builder.add(np.concatenate([left, right]), np.tile(polygon_materials, 2))
    return rings[0], rings[-1]


def _add_end(builder: _Builder, model: CarModel, ring: npt.NDArray[np.float64], front: bool) -> None:
    """Close one end of the loft with strips across the width, then put lights, grille and plate on it."""
    axis = np.array([1.0 if front else -1.0, 0.0, 0.0])
    anchor = ring.mean(axis=0) * _MIRROR.clip(0.0)  # on the centre plane
    strips = np.stack([ring[:-1], ring[1:], ring[1:] * _MIRROR, ring[:-1] * _MIRROR], axis=1)
    builder.add(strips, Material.PAINT, anchors=anchor, facing=axis)
    x = ring[0, 0] + 0.004 * axis[0]  # decals float just off the surface
    # the side panel's bottom, the shoulder's top and the half width there
    z_low, z_high, w = ring[_SEG["side"], 2], ring[_SEG["deck"], 2], ring[_SEG["shoulder"], 1]
    height = z_high - z_low

    def rects(boxes: list[tuple[float, float, float, float]], material: Material, layer: int) -> None:
        corners = [[[x, y0, z0], [x, y1, z0], [x, y1, z1], [x, y0, z1]] for y0, y1, z0, z1 in boxes]
        builder.add(np.asarray(corners), material, anchors=anchor, layer=layer, facing=axis)

    boxy = model.body_type in ("suv", "van", "pickup")
    if boxy:  # a dark bumper across the bottom
        rects([(-w, w, z_low, z_low + 0.25 * height)], Material.DARK, 1)
    top = z_high - 0.05 * height
    if front:
        light_w, light_h = 0.3 * w, (0.3 if boxy else 0.42) * height
        rects([(s * (w - 0.05 - light_w), s * (w - 0.05), top - light_h, top) for s in (1, -1)], Material.HEADLIGHT, 2)
        grille_w = w - 0.09 - light_w
        grille_top = top - (0.0 if boxy else 0.25 * height)
        rects([(-grille_w, grille_w, grille_top - (0.45 if boxy else 0.3) * height, grille_top)], Material.DARK, 2)
    else:
        light_w, light_h = 0.26 * w, 0.3 * height
        rects([(s * (w - 0.04 - light_w), s * (w - 0.04), top - light_h, top) for s in (1, -1)], Material.TAILLIGHT, 2)
        plate = z_low + (0.3 if boxy else 0.15) * height
        rects([(-0.16 * w, 0.16 * w, plate, plate + 0.11)], Material.PLATE, 2)


def _add_mirrors(builder: _Builder, model: CarModel) -> None:
    """Two door mirrors: small boxes sticking out at the front of the side windows."""
    x0 = model.windshield_base - 0.12 - (0.1 if model.body_type == "van" else 0.0)
    w = float(_half_width(model, np.array([x0]))[0]) - 0.04
    z0 = float(_belt_line(model, np.array([x0]))[0]) + 0.04
    size = np.array([0.1, 0.16, 0.12])
    unit = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    sides = np.array([(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
    for y0 in (w, -w - size[1]):
        box = np.array([x0 - size[0], y0, z0]) + unit * size
        faces = box[sides]
        centre = box.mean(axis=0)
        builder.add(faces, Material.PAINT, anchors=centre, facing=faces.mean(axis=1) - centre)


def _add_wheels(builder: _Builder, model: CarModel) -> None:
    """Four cylinders: a tread, a tyre-coloured outer face with rim and hub on it, a plain inner face."""
    r = model.wheel_radius
    angles = np.linspace(0.0, 2.0 * np.pi, _WHEEL_SEGMENTS, endpoint=False)
    circle = np.stack([np.cos(angles), np.zeros_like(angles), np.sin(angles)], axis=1)  # in the x-z plane
    following = np.roll(np.arange(_WHEEL_SEGMENTS), -1)
    axles = np.array([model.front_axle, model.front_axle, model.rear_axle, model.rear_axle])
    sides = np.array([1.0, -1.0, 1.0, -1.0])
    y_out = sides * (_half_width(model, axles) - model.wheel_inset)
    centres = np.stack([axles, y_out, np.full(4, r)], axis=1)  # (4, 3), the outer faces' centres
    outward = np.stack([np.zeros(4), sides, np.zeros(4)], axis=1)
    outer = centres[:, None] + r * circle  # (4, n, 3)
    inner = outer - model.tyre_width * outward[:, None]
    treads = np.stack([outer, outer[:, following], inner[:, following], inner], axis=2).reshape(-1, 4, 3)
    builder.add(treads, Material.TYRE, facing=np.tile(circle + circle[following], (4, 1)))
    builder.add(outer, Material.TYRE, anchors=centres, facing=outward)
    builder.add(centres[:, None] + 0.66 * r * circle, Material.RIM, anchors=centres, layer=1, facing=outward)
    hub_colour = 0.55 * builder.palette[Material.RIM]
    hubs = centres[:, None] + 0.24 * r * circle[::2]
    builder.add(hubs, Material.RIM, anchors=centres, layer=2, colour=hub_colour, facing=outward)
    builder.add(inner, Material.TYRE, facing=-outward)


def build_mesh(model: CarModel) -> CarMesh:
    """The polygon mesh of one car model."""
    builder = _Builder(model)
    rear, front = _add_body(builder, model)
    _add_end(builder, model, front, front=True)
    _add_end(builder, model, rear, front=False)
    _add_wheels(builder, model)
    _add_mirrors(builder, model)
    return builder.mesh()
