"""The verified view cache of the procedural source: keys, round trip, corruption, read-only folders."""

import json
import re

import numpy as np
import pytest

from dyndis_envs.cars3d import MODELS, Cars3DRenderedTable, Cars3DRenderSource, _renderer, _sources

OBJECTS = np.array([4, 1])
SIZE = 16


def _frames(source):
    """Every view of OBJECTS, in (object, elevation, azimuth) order, shape (n, H, W, 3)."""
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(24), OBJECTS, indexing="ij"), axis=-1)
    states = grid.transpose(2, 0, 1, 3).reshape(-1, 3)
    return source.render(states)


def _no_rendering(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("rendered although the cache holds these views")

    monkeypatch.setattr(_sources, "_all_views", fail)


def test__views_are_cached_as_plain_npy_with_a_checksum(data_dir, monkeypatch):
    table = Cars3DRenderedTable(SIZE, OBJECTS)
    expected = _frames(Cars3DRenderSource(SIZE))
    np.testing.assert_array_equal(_frames(table), expected)
    folder = Cars3DRenderedTable.view_cache(SIZE).folder
    assert folder.parent == data_dir / "cache" and folder.name.startswith("cars3d-")
    for index in OBJECTS:
        name = MODELS[index].name
        views = np.load(folder / f"{name}.npy", allow_pickle=False)
        assert views.dtype == np.uint8 and views.shape == (4, 24, SIZE, SIZE, 3)
        sidecar = json.loads((folder / f"{name}.json").read_text())
        assert len(sidecar["sha256"]) == 64 and sidecar["parameters"]["image_size"] == SIZE
    assert not list(folder.glob("*.tmp"))
    _no_rendering(monkeypatch)
    np.testing.assert_array_equal(_frames(Cars3DRenderedTable(SIZE, OBJECTS)), expected)


def test__the_key_changes_with_image_size_and_renderer(monkeypatch):
    folder = Cars3DRenderedTable.view_cache(SIZE).folder
    assert Cars3DRenderedTable.view_cache(SIZE).folder == folder
    assert Cars3DRenderedTable.view_cache(SIZE + 8).folder != folder
    monkeypatch.setattr(_renderer, "RENDERER_VERSION", _renderer.RENDERER_VERSION + 1)
    assert Cars3DRenderedTable.view_cache(SIZE).folder != folder


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "drop the sidecar", "bad sidecar"])
def test__a_damaged_entry_is_rendered_again_with_a_warning(monkeypatch, damage):
    expected = _frames(Cars3DRenderedTable(SIZE, OBJECTS))
    folder = Cars3DRenderedTable.view_cache(SIZE).folder
    array, sidecar = folder / f"{MODELS[4].name}.npy", folder / f"{MODELS[4].name}.json"
    data = bytearray(array.read_bytes())
    if damage == "flip a byte":
        data[-100] ^= 0xFF
        array.write_bytes(bytes(data))
    elif damage == "truncate":
        array.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "drop the sidecar":
        sidecar.unlink()
    else:
        sidecar.write_text("{not json")
    with pytest.warns(RuntimeWarning, match=re.escape(f"view cache entry {str(array)!r} is corrupt or incomplete")):
        table = Cars3DRenderedTable(SIZE, OBJECTS)
    np.testing.assert_array_equal(_frames(table), expected)
    _no_rendering(monkeypatch)  # the entry was repaired
    np.testing.assert_array_equal(_frames(Cars3DRenderedTable(SIZE, OBJECTS)), expected)


def test__an_unwritable_cache_warns_and_still_renders(data_dir):
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.write_text("a file where the data folder should be")
    with pytest.warns(RuntimeWarning, match=re.escape("Cannot write the Cars3D view cache")):
        table = Cars3DRenderedTable(SIZE, OBJECTS)
    np.testing.assert_array_equal(_frames(table), _frames(Cars3DRenderSource(SIZE)))


def test__a_table_serves_only_its_cars():
    table = Cars3DRenderedTable(SIZE, OBJECTS)
    with pytest.raises(ValueError, match=re.escape("Cars [0] are not loaded; this source holds cars [4, 1].")):
        table.render(np.array([[0, 0, 4], [0, 0, 0]]))
