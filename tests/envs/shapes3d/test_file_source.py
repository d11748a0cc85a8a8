"""The real file format: an h5 written here in the exact layout round-trips through the env; bad files fail clearly."""

import dataclasses
import hashlib
import json
import os
import re

import gymnasium as gym
import h5py
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dyndis_envs  # noqa: F401  (registers the ids)
from dyndis_envs import _digest_cache
from dyndis_envs.cli import main
from dyndis_envs.datasets import DATASETS
from dyndis_envs.download import IntegrityError
from dyndis_envs.factors import FactorSpace
from dyndis_envs.shapes3d import HUES, ORIENTATIONS, SCALES, Shapes3DEnv, Shapes3DFileSource
from tests.envs.shapes3d.fixtures import GRID, grid_labels, write_shapes3d

SIZES = tuple(len(v) for v in GRID.values())  # (2, 2, 2, 2, 2, 3)


def _expected(images, state):
    """The file's image of a state given as value indices into the file's values (row-major file order)."""
    return images[np.ravel_multi_index(tuple(state), SIZES)]


def test__every_state_returns_exactly_the_stored_image(shapes3d_file):
    path, images, _ = shapes3d_file
    env = gym.make("DynDis/Shapes3D-v0", backend="file", data_path=path)
    assert env.unwrapped.backend == "file"
    space = env.unwrapped.factor_space
    assert space.sizes == SIZES
    for state in space.all_states():
        obs, info = env.reset(options={"factors": state})
        assert obs.dtype == np.uint8
        np.testing.assert_array_equal(info["factors"], state)
        np.testing.assert_array_equal(obs, _expected(images, state), err_msg=str(state))


def test__the_chosen_values_are_resolved_once(shapes3d_file, monkeypatch):
    built = []
    init = FactorSpace.__init__
    monkeypatch.setattr(FactorSpace, "__init__", lambda self, *a, **k: built.append(1) or init(self, *a, **k))
    env = Shapes3DEnv({"shape": [1]}, backend="file", data_path=shapes3d_file[0])
    assert len(built) == 1 and env.factor_space is env.source.factor_space


def test__factor_values_come_from_the_labels(shapes3d_file):
    path, _, _ = shapes3d_file
    space = Shapes3DEnv(backend="file", data_path=path).factor_space
    assert space.values_of([1, 0, 1, 1, 1, 2]) == {
        "floor_hue": HUES[3],
        "wall_hue": HUES[1],
        "object_hue": HUES[9],
        "scale": SCALES[7],
        "shape": 3.0,
        "orientation": ORIENTATIONS[14],
    }


def test__steps_follow_the_actions(shapes3d_file):
    path, images, _ = shapes3d_file
    env = gym.make("DynDis/Shapes3D-v0", backend="file", data_path=path)
    env.reset(options={"factors": [0, 0, 0, 0, 0, 0]})
    expected = [[0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 1, 0], [0, 1, 0, 1, 1, 0]]
    for action, state in zip([10, 11, 6, 8, 2], expected):  # orientation+1, -1, scale+1, shape+1, wall_hue+1
        obs, _, _, _, info = env.step(action)
        np.testing.assert_array_equal(info["factors"], state)
        np.testing.assert_array_equal(obs, _expected(images, state))


def test__subsets_load_only_the_chosen_states_in_the_chosen_order(shapes3d_file):
    path, images, _ = shapes3d_file
    env = Shapes3DEnv({"orientation": [2, 0], "shape": [1], "floor_hue": 1}, backend="file", data_path=path)
    assert env.factor_space.sizes == (1, 2, 2, 2, 1, 2)
    assert env.source.n_images == 16 and env.source._frames.dtype == np.uint8
    for state in env.factor_space.all_states():
        obs, _ = env.reset(options={"factors": state})
        file_state = env.factor_space.to_value_indices(state)  # e.g. orientation index 0 -> value index 2
        np.testing.assert_array_equal(obs, _expected(images, file_state))
    with pytest.raises(ValueError, match=re.escape("orientation value index 1 is not loaded; this source holds")):
        env.source.render(np.array([[0, 0, 0, 0, 1, 1]]))


def test__rows_are_found_through_the_labels_whatever_their_order(shapes3d_file, tmp_path):
    _, images, labels = shapes3d_file
    order = np.random.default_rng(1).permutation(len(labels))
    path = write_shapes3d(tmp_path / "shuffled.h5", images[order], labels[order])
    env = Shapes3DEnv({"scale": [1]}, backend="file", data_path=path)
    for state in env.factor_space.all_states():
        obs, _ = env.reset(options={"factors": state})
        np.testing.assert_array_equal(obs, _expected(images, env.factor_space.to_value_indices(state)))


def test__labels_that_differ_from_the_nominal_values_by_float_noise(shapes3d_file, tmp_path):
    _, images, labels = shapes3d_file
    noisy = labels.copy()
    noisy[:, :3] = np.rint(noisy[:, :3] * 10) * 0.1  # hues as k * 0.1: 0.30000000000000004, not 0.3
    assert not np.array_equal(noisy, labels)
    path = write_shapes3d(tmp_path / "noisy.h5", images, noisy)
    env = Shapes3DEnv(backend="file", data_path=path)
    assert env.factor_space.sizes == SIZES
    np.testing.assert_allclose(env.factor_space.factors[2].values, [HUES[2], HUES[9]])
    obs, _ = env.reset(options={"factors": [1, 1, 0, 1, 0, 2]})
    np.testing.assert_array_equal(obs, _expected(images, [1, 1, 0, 1, 0, 2]))


def test__checkers_group_law_and_vector_env_on_the_file_backend(shapes3d_file):
    path, _, _ = shapes3d_file
    kwargs = {"backend": "file", "data_path": path}
    check_env(gym.make("DynDis/Shapes3D-v0", **kwargs).unwrapped, skip_render_check=False)
    sb3_check_env(gym.make("DynDis/Shapes3D-v0", **kwargs))
    env = gym.make("DynDis/Shapes3D-v0", **kwargs)
    start, _ = env.reset(seed=0)
    for k, size in enumerate(SIZES):  # every factor: its +1 action `size` times gives the start back
        for _ in range(size):
            obs, *_ = env.step(2 * k)
        np.testing.assert_array_equal(obs, start, err_msg=f"factor {k}")
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        native = gym.make_vec("DynDis/Shapes3D-v0", num_envs=3, autoreset_mode=mode, max_episode_steps=4, **kwargs)
        sync = gym.make_vec(
            "DynDis/Shapes3D-v0", num_envs=3, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode},
            max_episode_steps=4, **kwargs,
        )
        assert data_equivalence(native.reset(seed=3), sync.reset(seed=3), exact=True)
        for actions in np.random.default_rng(0).integers(0, 12, (11, 3)):
            assert data_equivalence(native.step(actions), sync.step(actions), exact=True)


def test__auto_and_the_default_path(shapes3d_file, data_dir, tmp_path):
    path, _, _ = shapes3d_file
    assert Shapes3DEnv(backend="auto", data_path=path).backend == "file"
    assert Shapes3DEnv(backend="auto", data_path=tmp_path / "nowhere.h5").backend == "procedural"
    assert Shapes3DEnv(backend="auto").backend == "procedural"
    data_dir.mkdir()
    path.rename(data_dir / "3dshapes.h5")
    assert Shapes3DEnv(backend="file").backend == "file"
    assert Shapes3DEnv(backend="auto").backend == "file"


def test__file_backend_serves_64_pixels_only(shapes3d_file):
    path, _, _ = shapes3d_file
    message = "`image_size` must be 64 with the file backend (the images of"
    with pytest.raises(ValueError, match=re.escape(message)):
        Shapes3DEnv(backend="file", data_path=path, image_size=32)


def test__missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("backend='file' but the dataset was not found at")):
        Shapes3DEnv(backend="file", data_path=tmp_path / "nowhere.h5")
    with pytest.raises(FileNotFoundError, match=re.escape("No 3dshapes.h5 at")):
        Shapes3DFileSource(tmp_path / "nowhere.h5")


def _rewrite(path, **datasets):
    """Replace the file by one holding ``datasets`` (name -> array) only."""
    path.unlink()
    with h5py.File(path, "w") as file:
        for name, data in datasets.items():
            file[name] = data


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt_header(path):
    data = bytearray(path.read_bytes())
    data[:64] = b"\x17" * 64
    path.write_bytes(bytes(data))


def _corrupt_chunks(path):
    """Garble the middle of the file: the gzip chunks of ``images`` no longer decompress."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 50_000] = b"\x55" * 50_000
    path.write_bytes(bytes(data))


IMAGES = np.zeros((96, 64, 64, 3), np.uint8)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_truncate, "is not a readable 3dshapes.h5 ("),
        (_corrupt_header, "is not a readable 3dshapes.h5 ("),
        (_corrupt_chunks, "is not a readable 3dshapes.h5 ("),
        (lambda p: p.write_bytes(b""), "is not a readable 3dshapes.h5 ("),
        (
            lambda p: _rewrite(p, labels=grid_labels()),
            "has no dataset 'images' (found ['labels']); a 3dshapes.h5 holds 'images' uint8 (N, 64, 64, 3) and "
            "'labels' float (N, 6).",
        ),
        (lambda p: _rewrite(p, images=IMAGES), "has no dataset 'labels' (found ['images'])"),
        (
            lambda p: _rewrite(p, images=np.zeros((96, 32, 32, 3), np.uint8), labels=grid_labels()),
            "'images' must be uint8 of shape (N, 64, 64, 3), got uint8 of shape (96, 32, 32, 3).",
        ),
        (
            lambda p: _rewrite(p, images=IMAGES.astype(np.float32), labels=grid_labels()),
            "'images' must be uint8 of shape (N, 64, 64, 3), got float32 of shape (96, 64, 64, 3).",
        ),
        (
            lambda p: _rewrite(p, images=IMAGES, labels=grid_labels().astype(np.int64)),
            "'labels' must be float of shape (96, 6) (one row of floor_hue, wall_hue, object_hue, scale, shape, "
            "orientation per image), got int64 of shape (96, 6).",
        ),
        (
            lambda p: _rewrite(p, images=IMAGES, labels=grid_labels()[:, :5]),
            "'labels' must be float of shape (96, 6)",
        ),
        (
            lambda p: _rewrite(p, images=IMAGES[:95], labels=grid_labels()[:95]),
            "'labels' must hold every combination of its factor values exactly once; its 95 rows have "
            "{'floor_hue': 2, 'wall_hue': 2, 'object_hue': 2, 'scale': 2, 'shape': 2, 'orientation': 3} distinct "
            "values per factor.",
        ),
        (
            lambda p: _rewrite(p, images=IMAGES, labels=np.concatenate([grid_labels()[:95], grid_labels()[:1]])),
            "'labels' must hold every combination of its factor values exactly once; its 96 rows",
        ),
        (
            lambda p: _rewrite(p, images=IMAGES, labels=np.where(np.arange(6) == 2, np.nan, grid_labels())),
            "'labels' holds non-finite values.",
        ),
        (lambda p: _rewrite(p, images=IMAGES[:0], labels=grid_labels()[:0]), "holds no images."),
    ],
)
def test__broken_files_give_clear_errors_and_leave_nothing_behind(shapes3d_file, data_dir, breakage, message):
    path, _, _ = shapes3d_file
    breakage(path)
    before = sorted(path.parent.iterdir())
    with pytest.raises(ValueError, match=re.escape(message)):
        Shapes3DEnv(backend="file", data_path=path)
    assert sorted(path.parent.iterdir()) == before
    assert not data_dir.exists()


def _write_uncompressed(path, images, labels):
    """A 3dshapes.h5 in the real layout with ``images`` stored contiguously, uncompressed; the images' offset."""
    with h5py.File(path, "w") as file:
        file.create_dataset("images", data=images)
        file.create_dataset("labels", data=labels)
    with h5py.File(path, "r") as file:
        return file["images"].id.get_offset()


def _flip_byte(path, offset):
    """Flip one byte in place; the modification time moves on (by a second, whatever the clock's resolution)."""
    before = path.stat().st_mtime_ns
    with path.open("r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0xFF]))
    os.utime(path, ns=(before + 10**9, before + 10**9))


@pytest.fixture
def published(shapes3d_file, tmp_path, monkeypatch):
    """An uncompressed 3dshapes.h5 made the "published" one: the registry's size and sha256 are patched to it.

    Returns its path, its images, the offset of its image bytes and its sha256.
    """
    _, images, labels = shapes3d_file
    path = tmp_path / "published" / "3dshapes.h5"
    path.parent.mkdir()
    offset = _write_uncompressed(path, images, labels)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    patched = dataclasses.replace(DATASETS["shapes3d"], checksum=("sha256", digest), expected_size=path.stat().st_size)
    monkeypatch.setitem(DATASETS, "shapes3d", patched)
    return path, images, offset, digest


def _count_hashes(monkeypatch):
    calls = []
    real = _digest_cache.file_digest
    monkeypatch.setattr(_digest_cache, "file_digest", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    return calls


def test__a_flipped_byte_in_the_published_file__fails_naming_both_digests(published, data_dir):
    """Replay: one flipped byte in an uncompressed chunk loaded silently (checksummed at download, not at load)."""
    path, images, offset, digest = published
    assert Shapes3DEnv(backend="file", data_path=path).source.verified
    _flip_byte(path, offset + 1000)
    silent = Shapes3DEnv(backend="file", data_path=path, verify=False)  # HDF5 alone does not notice
    assert not silent.source.verified
    assert not np.array_equal(silent.source._frames[0], images[0])
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    message = (
        f"Checksum mismatch for {str(path)!r}: expected sha256 {digest}, got {actual}. It is corrupt or not the "
        f"published 3dshapes.h5. `dyndis-envs download shapes3d --data-dir {str(path.parent)!r}` replaces it with "
        "a verified copy."
    )
    with pytest.raises(IntegrityError, match=re.escape(message)):
        Shapes3DEnv(backend="file", data_path=path)
    with pytest.raises(ValueError, match=re.escape(message)):  # the documented error of a bad file
        gym.make_vec("DynDis/Shapes3D-v0", num_envs=2, backend="file", data_path=path)
    # `dyndis-envs verify` runs the same check and says the same
    assert main(["verify", "shapes3d", str(path)]) == 1


def test__verify_command_and_load_agree(published, capsys):
    path, _, offset, _ = published
    assert main(["verify", "shapes3d", str(path)]) == 0
    _flip_byte(path, offset)
    assert main(["verify", "shapes3d", str(path)]) == 1
    error = capsys.readouterr().err
    with pytest.raises(IntegrityError) as caught:
        Shapes3DFileSource(path)
    assert error == f"dyndis-envs: error: {caught.value}\n"


def test__the_digest_is_recorded_and_the_file_hashed_once(published, data_dir, monkeypatch):
    path, _, _, digest = published
    hashes = _count_hashes(monkeypatch)
    Shapes3DEnv(backend="file", data_path=path)
    record = json.loads((data_dir / "cache" / "file-digests.json").read_text())
    stat = path.stat()
    entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "algorithm": "sha256", "digest": digest}
    assert record == {"version": 1, "files": {str(path.resolve()): entry}}
    for _ in range(2):
        assert Shapes3DEnv(backend="file", data_path=path).source.verified
    assert len(hashes) == 1
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: hashed again
    Shapes3DEnv(backend="file", data_path=path)
    assert len(hashes) == 2


def test__a_recorded_bad_digest_fails_without_hashing_again(published, monkeypatch):
    path, _, offset, _ = published
    _flip_byte(path, offset)
    hashes = _count_hashes(monkeypatch)
    for _ in range(2):
        with pytest.raises(IntegrityError, match=re.escape("Checksum mismatch for")):
            Shapes3DFileSource(path)
    assert len(hashes) == 1


def test__verify_false_or_another_size__no_hash_and_no_record(published, shapes3d_file, data_dir, monkeypatch):
    hashes = _count_hashes(monkeypatch)
    source = Shapes3DFileSource(published[0], verify=False)
    other = Shapes3DEnv(backend="file", data_path=shapes3d_file[0]).source  # the compressed file: another size
    assert (source.verified, other.verified, hashes) == (False, False, [])
    assert not data_dir.exists()


def test__verify_must_be_a_flag(shapes3d_file):
    with pytest.raises(TypeError, match=re.escape("`verify` must be True or False, got 'yes'.")):
        Shapes3DEnv(backend="file", data_path=shapes3d_file[0], verify="yes")
