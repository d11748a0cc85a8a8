"""The procedural renderer: the scene of the real frames, colours, determinism, native sizes, layer arithmetic."""

import colorsys
import pickle

import numpy as np
import pytest

from dyndis_envs.shapes3d import HUES, SCENE, Shapes3DSource, _procedural_source, _renderer

SKY = np.array(SCENE.sky_rgb)
RED, BLUE, GREEN = 0, 6, 3  # hue indices of the reference frames' floor, walls and object


@pytest.fixture(scope="module")
def source64():
    return Shapes3DSource(64)


def _image(source, scale=0, shape=0, orientation=7, floor=RED, wall=BLUE, obj=GREEN):
    return source.render(np.array([[floor, wall, obj, scale, shape, orientation]]))[0].astype(int)


def _object_box(image):
    """Rows and columns spanned by the green object (threshold at about half coverage)."""
    ys, xs = np.nonzero((image[..., 1] > 150) & (image[..., 0] < 140) & (image[..., 2] < 90))
    return (ys.min(), ys.max()), (xs.min(), xs.max())


def test__scene_matches_the_real_frames(source64):
    """Positions measured on the real frames of 3dshapes.gif (red floor, blue walls, green object)."""
    front = _image(source64)  # cube, scale 0.75, orientation 0
    sky = (np.abs(front - SKY).sum(-1) < 8)
    assert sky[:17].all() and not sky[17:].any()  # sky rows 0-16 across the whole width
    floor = (front[..., 0] > 200) & (front[..., 1] < 60)
    assert not floor[:40, :20].any() and floor[42:, :20].all()  # the floor starts at row 40.5
    assert _object_box(front) == ((38, 54), (24, 39))
    assert front[52, 40, 0] < 120 and front[52, 21, 0] > 240  # shadow right of the cube, none on its left
    capsule = _image(source64, scale=7, shape=3, orientation=14)  # capsule, scale 1.25, orientation +30
    assert _object_box(capsule) == ((7, 51), (21, 42))
    left, right = _image(source64, orientation=0), _image(source64, orientation=14)
    side_left = np.flatnonzero(left[25, :, 2] < 220)  # the darker side wall at -30 degrees: on the right
    side_right = np.flatnonzero(right[25, :, 2] < 220)  # at +30 degrees: on the left
    assert 42 <= side_left.min() <= 45 and side_left.max() == 63
    assert side_right.min() == 0 and 18 <= side_right.max() <= 21
    assert front[25, :, 2].min() >= 220  # no side wall in view at 0 degrees


def test__each_hue_colours_only_its_material(source64):
    base = _image(source64, scale=5, shape=3, orientation=3)
    floors = [_image(source64, 5, 3, 3, floor=h) for h in range(10)]
    walls = [_image(source64, 5, 3, 3, wall=h) for h in range(10)]
    objects = [_image(source64, 5, 3, 3, obj=h) for h in range(10)]
    changed = {
        name: np.any([np.any(img != base, axis=-1) for img in images], axis=0)
        for name, images in [("floor", floors), ("wall", walls), ("object", objects)]
    }
    sky = np.all(base == SKY, axis=-1)
    assert sky[:10].all() and not any(changed[name][sky].any() for name in changed)
    assert not changed["floor"][:38].any() and changed["floor"][45:, :15].all()
    assert changed["wall"][20:36, :5].all() and not changed["wall"][46:].any()
    (top, bottom), (left, right) = _object_box(base)
    outside = np.ones_like(sky)
    outside[top - 1 : bottom + 2, left - 1 : right + 2] = False
    assert not changed["object"][outside].any() and changed["object"][top + 2 : bottom - 2, left + 2 : right - 2].all()


@pytest.mark.parametrize("material", ["floor", "wall", "object"])
def test__colours_are_the_hues_at_full_saturation(source64, material):
    pixel = {"floor": (63, 63), "wall": (22, 2), "object": (30, 40)}[material]  # unsaturated (darker) spots
    for k, hue in enumerate(HUES):
        image = _image(source64, scale=7, shape=3, orientation=0, **{material if material != "object" else "obj": k})
        h, s, v = colorsys.rgb_to_hsv(*(image[pixel] / 255))
        assert abs((h - hue + 0.5) % 1 - 0.5) < 0.01 and s > 0.97 and 0.5 < v < 1, (material, hue, image[pixel])


def test__a_state_gives_the_same_image_whatever_else_is_rendered():
    states = np.random.default_rng(3).integers(0, [10, 10, 10, 8, 4, 15], (40, 6))
    alone = np.stack([Shapes3DSource(32).render(s[None])[0] for s in states[:5]])
    warmed = Shapes3DSource(32)
    warmed.warm_up(states[20:])
    order = np.random.default_rng(4).permutation(len(states))
    together = warmed.render(states[order])[np.argsort(order)]
    np.testing.assert_array_equal(together[:5], alone)
    np.testing.assert_array_equal(warmed.render(states), together)


@pytest.mark.parametrize("size", [32, 128])
def test__other_sizes_are_rendered_natively(source64, size):
    states = np.array([[0, 6, 3, 4, 0, 2], [5, 1, 8, 7, 3, 12], [2, 9, 5, 0, 2, 7]])
    image, reference = Shapes3DSource(size).render(states).astype(float), source64.render(states).astype(float)
    assert image.shape == (3, size, size, 3)
    small, large = (image, reference) if size < 64 else (reference, image)
    factor = large.shape[1] // small.shape[1]
    pooled = large.reshape(3, small.shape[1], factor, small.shape[1], factor, 3).mean((2, 4))
    assert np.abs(pooled - small).mean() < 3  # the same scene ...
    blocks = large.reshape(3, small.shape[1], factor, small.shape[1], factor, 3)
    not_flat = (blocks.max((2, 4)) != blocks.min((2, 4))).any(-1).mean()
    assert not_flat > 0.05  # ... with detail at the larger size's own pixels, not an enlarged copy


def test__layers_never_sum_past_255():
    for orientation in (-30.0, 0.0, 30.0):
        for shape in range(4):
            for scale in (0.75, 1.25):
                _, layers = _renderer.object_layers(orientation, shape, scale, 32)
                room = _renderer.background_layers(orientation, 32)
                for part in (layers, room):
                    peak = sum(layer.astype(int).max(0) for layer in part)  # the brightest hue of each layer
                    assert peak.max() <= 255


def test__pickles_leave_the_layers_out_and_render_the_same():
    source = Shapes3DSource(24)
    states = np.array([[1, 2, 3, 4, 1, 5], [9, 8, 7, 6, 2, 1]])
    images = source.render(states)
    assert source.layer_bytes > 0
    clone = pickle.loads(pickle.dumps(source))
    assert clone.layer_bytes == 0 and len(pickle.dumps(source)) < 1000
    np.testing.assert_array_equal(clone.render(states), images)


def test__warm_up_traces_every_geometry_once(monkeypatch):
    source = Shapes3DSource(16)
    source.warm_up()
    all_geometries = np.stack(np.meshgrid(range(8), range(4), range(15), indexing="ij"), -1).reshape(-1, 3)
    states = np.concatenate([np.zeros((480, 3), int), all_geometries], axis=1)

    def fail(*args):
        raise AssertionError(f"traced again: {args}")

    monkeypatch.setattr(_procedural_source, "object_layers", fail)
    monkeypatch.setattr(_procedural_source, "background_layers", fail)
    assert source.render(states).shape == (480, 16, 16, 3)
