"""The procedural cars: models, meshes and renderer (framing, conventions, determinism, symmetry)."""

import collections
import dataclasses

import numpy as np
import pytest

from dyndis_envs.cars3d import AZIMUTHS, BODY_TYPES, ELEVATIONS, MODELS, generate_models
from dyndis_envs.cars3d._mesh import Material, build_mesh
from dyndis_envs.cars3d._renderer import SIDE_VIEW_SPAN, render_views

#: One model of every body type.
ONE_PER_TYPE = {t: next(i for i, m in enumerate(MODELS) if m.body_type == t) for t in BODY_TYPES}
FRONT, LEFT_SIDE, REAR, RIGHT_SIDE = 0, 6, 12, 18  # azimuth indices: 0, 90, 180, 270 degrees


def _all_views(mesh, image_size):
    elevation, azimuth = np.divmod(np.arange(len(ELEVATIONS) * len(AZIMUTHS)), len(AZIMUTHS))
    return render_views(mesh, elevation, azimuth, image_size)


def _ink(image):
    """Mask of the pixels that are not background white."""
    return image.min(axis=-1) < 250


def test__183_distinct_models_of_six_body_types():
    assert len(MODELS) == 183
    assert len({m.name for m in MODELS}) == 183
    assert len({(m.paint, m.length, m.height) for m in MODELS}) == 183
    counts = collections.Counter(m.body_type for m in MODELS)
    assert set(counts) == set(BODY_TYPES) and min(counts.values()) >= 20
    # proportions follow the body types: vans are the tallest, sports cars the lowest
    heights = {t: np.mean([m.height for m in MODELS if m.body_type == t]) for t in BODY_TYPES}
    assert max(heights, key=heights.get) == "van" and min(heights, key=heights.get) == "sports"
    assert all(m.has_bed == (m.body_type == "pickup") for m in MODELS)


def test__models_come_from_the_seed():
    assert generate_models() == MODELS
    assert generate_models(seed=1) != MODELS


def test__meshes_are_closed_outward_solids_of_car_like_volume():
    """Divergence theorem over the non-decal faces: positive volume only if every normal points outwards."""
    for model in MODELS[::7]:
        mesh = build_mesh(model)
        v = mesh.vertices
        starts = mesh.starts[:-1]
        following = np.arange(len(v)) + 1
        following[mesh.starts[1:] - 1] = starts  # each face's last corner wraps to its first
        twice_area_normals = np.add.reduceat(np.cross(v, v[following]), starts, axis=0)
        centroids = np.add.reduceat(v, starts, axis=0) / np.diff(mesh.starts)[:, None]
        solid = mesh.layers == 0
        volume = np.einsum("fk,fk->f", centroids, twice_area_normals)[solid].sum() / 6
        box = model.length * model.width * model.height
        assert 0.45 < volume / box < 0.85, model.name
        np.testing.assert_allclose(np.linalg.norm(mesh.normals, axis=1), 1.0)


def test__every_car_has_glass_wheels_lights_and_paint():
    for index in ONE_PER_TYPE.values():
        materials = set(build_mesh(MODELS[index]).materials.tolist())
        assert {Material.PAINT, Material.GLASS, Material.TYRE, Material.RIM, Material.HEADLIGHT,
                Material.TAILLIGHT} <= materials


def test__rendering_is_deterministic():
    mesh = build_mesh(MODELS[3])
    elevation, azimuth = np.array([0, 3, 1, 2]), np.array([5, 17, 0, 12])
    first = render_views(mesh, elevation, azimuth, 32)
    assert first.shape == (4, 32, 32, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, render_views(build_mesh(MODELS[3]), elevation, azimuth, 32))


def test__opposite_azimuths_are_mirror_images():
    views = _all_views(build_mesh(MODELS[5]), 24).reshape(4, 24, 24, 24, 3)
    for k in range(1, 12):
        np.testing.assert_array_equal(views[:, 24 - k], views[:, k, :, ::-1])


@pytest.mark.parametrize("body_type", BODY_TYPES)
def test__cars_are_framed_like_the_real_data(body_type):
    """White background, the car centred and never clipped, its side view about 82% of the width."""
    size = 32
    views = _all_views(build_mesh(MODELS[ONE_PER_TYPE[body_type]]), size)
    ink = _ink(views)
    assert (views[:, 0, 0] == 255).all() and (views[:, -1, -1] == 255).all()
    assert not ink[:, [0, -1], :].any() and not ink[:, :, [0, -1]].any()  # nothing touches the border
    assert ink.sum(axis=(1, 2)).min() > 0.08 * size * size
    side = ink[LEFT_SIDE]  # elevation 0
    columns, rows = np.flatnonzero(side.any(axis=0)), np.flatnonzero(side.any(axis=1))
    width, height = np.ptp(columns) + 1, np.ptp(rows) + 1
    assert abs(width / size - SIDE_VIEW_SPAN) < 0.08
    assert width > 1.8 * height
    assert abs((rows.min() + rows.max()) / 2 - (size - 1) / 2) < 2  # centred vertically
    assert abs((columns.min() + columns.max()) / 2 - (size - 1) / 2) < 2


def test__azimuth_and_elevation_conventions():
    """Azimuth 0 looks at the front, 90 at the left side with the front pointing to the image's left;
    higher elevations see more of the roof."""
    mesh = build_mesh(MODELS[ONE_PER_TYPE["sedan"]])
    centroids = np.add.reduceat(mesh.vertices, mesh.starts[:-1], axis=0) / np.diff(mesh.starts)[:, None]
    front_half = centroids[:, 0] > 0
    coded = dataclasses.replace(
        mesh,
        materials=np.full(mesh.n_faces, int(Material.DARK)),  # matte: no highlights
        colours=np.where(front_half[:, None], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]),
    )
    views = render_views(coded, np.zeros(4, dtype=np.int64), np.array([FRONT, LEFT_SIDE, REAR, RIGHT_SIDE]), 48)
    red = views[..., 0].astype(int) - views[..., 2]  # > 0 on the front half, < 0 on the rear half
    assert (red[0] > 30).sum() > 5 * (red[0] < -30).sum()  # front view: mostly the front
    assert (red[2] < -30).sum() > 5 * (red[2] > 30).sum()  # rear view: mostly the rear
    columns = np.arange(48)
    for view, front_on_left in ((1, True), (3, False)):
        front_x = (columns * (red[view] > 30)).sum() / (red[view] > 30).sum()
        rear_x = (columns * (red[view] < -30)).sum() / (red[view] < -30).sum()
        assert (front_x < rear_x) == front_on_left
    roofs = [_ink(v).sum() for v in render_views(mesh, np.arange(4), np.full(4, LEFT_SIDE), 48)]
    assert roofs == sorted(roofs) and roofs[-1] > 1.1 * roofs[0]  # the side view grows as the roof shows


def test__every_view_and_every_car_looks_different():
    views = _all_views(build_mesh(MODELS[0]), 24)
    assert len(np.unique(views.reshape(len(views), -1), axis=0)) == len(views)
    cars = np.stack([render_views(build_mesh(m), np.array([1]), np.array([4]), 24)[0] for m in MODELS[:40]])
    assert len(np.unique(cars.reshape(len(cars), -1), axis=0)) == len(cars)
