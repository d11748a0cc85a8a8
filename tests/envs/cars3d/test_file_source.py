"""The real file format: .mat files written here round-trip through the env; bad folders give clear errors."""

import re
import shutil

import gymnasium as gym
import numpy as np
import pytest
import scipy.io
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.vector import AutoresetMode
from PIL import Image
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dyndis_envs  # noqa: F401  (registers the ids)
from dyndis_envs.cars3d import Cars3DEnv, Cars3DFileSource, load_car_views
from dyndis_envs.datasets import verify_dataset
from dyndis_envs.factors import FactorSpace
from tests.envs.cars3d.fixtures import BAD_LISTS, CAR_NAMES, SUFFIXED_LIST, write_car


def _view(im, elevation, azimuth, image_size):
    """The expected observation: the file's image, resized with Lanczos if needed."""
    picture = im[:, :, :, azimuth, elevation]
    if image_size == 128:
        return picture
    return np.asarray(Image.fromarray(picture).resize((image_size, image_size), Image.Resampling.LANCZOS))


@pytest.mark.parametrize("image_size", [128, 32])
def test__mat_files_round_trip_through_the_env(cars_folder, image_size):
    folder, images = cars_folder
    env = gym.make("DynDis/Cars3D-v0", backend="file", data_path=folder, image_size=image_size)
    assert env.unwrapped.backend == "file"
    space = env.unwrapped.factor_space
    assert space.sizes == (4, 24, 3)
    assert space.values_of([3, 6, 2]) == {"elevation": 30.0, "azimuth": 90.0, "object": CAR_NAMES[2]}
    obs, info = env.reset(options={"factors": [1, 5, 0]})
    assert obs.dtype == np.uint8 and obs.shape == (image_size, image_size, 3)
    np.testing.assert_array_equal(obs, _view(images[CAR_NAMES[0]], 1, 5, image_size))
    expected_states = [[1, 6, 0], [1, 6, 1], [2, 6, 1], [2, 5, 1], [2, 5, 0], [2, 5, 2]]
    for action, state in zip([2, 4, 0, 3, 5, 5], expected_states):  # azimuth+1, object+1, elevation+1, ...
        obs, _, _, _, info = env.step(action)
        np.testing.assert_array_equal(info["factors"], state)
        np.testing.assert_array_equal(obs, _view(images[CAR_NAMES[state[2]]], state[0], state[1], image_size))


def test__only_the_chosen_cars_are_read(cars_folder):
    folder, images = cars_folder
    (folder / f"{CAR_NAMES[1]}.mat").write_bytes(b"not a mat file")
    env = Cars3DEnv({"object": [2, 0]}, backend="file", data_path=folder)
    np.testing.assert_array_equal(env.source.objects, [0, 2])
    obs, _ = env.reset(options={"factors": [0, 0, 0]})  # object index 0 of the chosen [2, 0]: car 2
    np.testing.assert_array_equal(obs, _view(images[CAR_NAMES[2]], 0, 0, 64))


@pytest.mark.parametrize("backend", ["file", "procedural"])
def test__the_chosen_values_are_resolved_once(cars_folder, backend, monkeypatch):
    built = []
    init = FactorSpace.__init__
    monkeypatch.setattr(FactorSpace, "__init__", lambda self, *a, **k: built.append(1) or init(self, *a, **k))
    env = Cars3DEnv({"object": [1], "azimuth": 2}, backend=backend, data_path=cars_folder[0], cache=False)
    assert len(built) == 1 and env.factor_space.sizes == (4, 2, 1)


def test__auto_uses_the_folder_when_found(cars_folder, tmp_path):
    folder, _ = cars_folder
    assert Cars3DEnv({"object": 1}, backend="auto", data_path=folder).backend == "file"
    auto = Cars3DEnv({"object": 1}, backend="auto", data_path=tmp_path / "nowhere", cache=False)
    assert auto.backend == "procedural" and auto.factor_space.factors[2].values[0] == "000_suv"


def test__default_folder_is_cars_in_the_data_directory(cars_folder, data_dir):
    folder, _ = cars_folder
    data_dir.mkdir()
    folder.rename(data_dir / "cars")
    assert Cars3DEnv({"object": 1}, backend="file").backend == "file"


def test__checkers_group_law_and_vector_env_on_the_file_backend(cars_folder):
    folder, _ = cars_folder
    kwargs = {"backend": "file", "data_path": folder, "image_size": 40}
    check_env(gym.make("DynDis/Cars3D-v0", **kwargs).unwrapped, skip_render_check=False)
    sb3_check_env(gym.make("DynDis/Cars3D-v0", **kwargs))
    env = gym.make("DynDis/Cars3D-v0", **kwargs)
    start, _ = env.reset(seed=0)
    for _ in range(24):
        obs, *_ = env.step(2)  # azimuth + 1
    np.testing.assert_array_equal(obs, start)
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        native = gym.make_vec("DynDis/Cars3D-v0", num_envs=3, autoreset_mode=mode, max_episode_steps=4, **kwargs)
        sync = gym.make_vec(
            "DynDis/Cars3D-v0", num_envs=3, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode},
            max_episode_steps=4, **kwargs,
        )
        assert data_equivalence(native.reset(seed=3), sync.reset(seed=3), exact=True)
        for actions in np.random.default_rng(0).integers(0, 6, (11, 3)):
            assert data_equivalence(native.step(actions), sync.step(actions), exact=True)


def _write_list(folder, text):
    (folder / "list.txt").write_text(text)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100_000])


@pytest.mark.parametrize(
    ("breakage", "error", "message"),
    [
        (lambda f: (f / "list.txt").unlink(), FileNotFoundError, "No list.txt in"),
        (lambda f: _write_list(f, "\n  \n"), ValueError, "names no car."),
        (lambda f: _write_list(f, "a\nb\na\n"), ValueError, "list.txt' line 3: 'a' repeats the car 'a' of line 1."),
        (lambda f: (f / f"{CAR_NAMES[0]}.mat").unlink(), FileNotFoundError, "car_007_mesh.mat' is missing"),
        (lambda f: (f / f"{CAR_NAMES[0]}.mat").write_bytes(b""), ValueError, "is not a readable MATLAB .mat file"),
        (lambda f: (f / f"{CAR_NAMES[0]}.mat").write_bytes(b"\x00" * 4096), ValueError, "is not a readable MATLAB"),
        (lambda f: _truncate(f / f"{CAR_NAMES[0]}.mat"), ValueError, "is not a readable MATLAB .mat file"),
        (
            lambda f: write_car(f, CAR_NAMES[0], np.zeros((64, 64, 3, 24, 4), np.uint8)),
            ValueError,
            "'im' must be uint8 of shape (128, 128, 3, 24, 4) (H, W, RGB, azimuth, elevation), got uint8 of "
            "shape (64, 64, 3, 24, 4).",
        ),
        (
            lambda f: write_car(f, CAR_NAMES[0], np.zeros((128, 128, 3, 24, 4), np.float64)),
            ValueError,
            "got float64 of shape (128, 128, 3, 24, 4).",
        ),
    ],
)
def test__broken_folders_give_clear_errors(cars_folder, breakage, error, message):
    folder, _ = cars_folder
    breakage(folder)
    with pytest.raises(error, match=re.escape(message)):
        Cars3DEnv(backend="file", data_path=folder)


def test__a_file_without_im(cars_folder):
    folder, _ = cars_folder
    scipy.io.savemat(folder / f"{CAR_NAMES[0]}.mat", {"images": np.zeros((2, 2), np.uint8)})
    with pytest.raises(ValueError, match=re.escape("has no variable 'im' (found ['images']).")):
        load_car_views(folder / f"{CAR_NAMES[0]}.mat", 64)


def test__missing_folder_with_file_backend(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("backend='file' but the dataset was not found at")):
        Cars3DEnv(backend="file", data_path=tmp_path / "nowhere")


def test__file_source_loads_all_cars_by_default(cars_folder):
    folder, images = cars_folder
    source = Cars3DFileSource(folder, image_size=128)
    np.testing.assert_array_equal(source.render(np.array([[3, 23, 1]]))[0], images[CAR_NAMES[1]][..., 23, 3])


def _flip_middle(path, count=4):
    """Flip ``count`` bytes in the middle of a file: inside the compressed ``im`` of a real-format car."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for k in range(count):
        data[middle + k] ^= 0xFF
    path.write_bytes(bytes(data))


def test__corrupt_compressed_mat__the_documented_error_naming_file_and_cause(cars_folder):
    """Replay: flipped bytes in a compressed .mat escaped from scipy as zlib.error."""
    folder, _ = cars_folder
    path = folder / f"{CAR_NAMES[0]}.mat"
    _flip_middle(path)
    message = (
        f"Cars3D file {str(path)!r} is not a readable MATLAB .mat file (zlib.error: Error -3 while decompressing "
        "data: incorrect data check); it may be truncated or corrupt: remove the cars folder and run "
        "`dyndis-envs download cars3d` to fetch it again."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load_car_views(path, 64)
    with pytest.raises(ValueError, match=re.escape(message)):
        Cars3DEnv(backend="file", data_path=folder)
    with pytest.raises(ValueError, match=re.escape(message)):  # `dyndis-envs verify cars3d` reads the first car
        verify_dataset("cars3d", folder)


def test__any_read_error_of_a_mat_is_the_documented_error(cars_folder, monkeypatch):
    folder, _ = cars_folder

    def broken(*args, **kwargs):
        raise IndexError("index 7 is out of bounds")

    monkeypatch.setattr(scipy.io, "loadmat", broken)
    message = "is not a readable MATLAB .mat file (IndexError: index 7 is out of bounds); it may be truncated"
    with pytest.raises(ValueError, match=re.escape(message)):
        Cars3DEnv(backend="file", data_path=folder)


@pytest.fixture
def nested_cars(cars_folder, tmp_path):
    """The cars folder two levels down, with a real-format car two folders above it: ``../../outside_car``."""
    folder, images = cars_folder
    nested = tmp_path / "a" / "b" / "cars"
    nested.parent.mkdir(parents=True)
    shutil.move(folder, nested)
    shutil.copy(nested / f"{CAR_NAMES[0]}.mat", tmp_path / "a" / "outside_car.mat")
    assert (nested / ".." / ".." / "outside_car.mat").is_file()
    return nested, images


@pytest.mark.parametrize("case", BAD_LISTS)
def test__bad_list_entries__refused_naming_line_and_entry(nested_cars, case):
    """Replay: a repeated name, a .mat suffix or ../../outside_car passed `verify` but not the env (or the
    env read a file outside cars/); the env now refuses what `dyndis-envs verify cars3d` refuses."""
    folder, _ = nested_cars
    text, tail = BAD_LISTS[case]
    _write_list(folder, text)
    message = f"{str(folder / 'list.txt')!r} {tail}"
    with pytest.raises(ValueError, match=re.escape(message)):
        Cars3DEnv(backend="file", data_path=folder)
    with pytest.raises(ValueError, match=re.escape(message)):
        verify_dataset("cars3d", folder)


def test__list_entries_with_the_mat_suffix__name_the_same_cars(cars_folder):
    folder, images = cars_folder
    _write_list(folder, SUFFIXED_LIST)
    env = Cars3DEnv(backend="file", data_path=folder, image_size=128)
    assert env.factor_space.factors[2].values == CAR_NAMES
    obs, _ = env.reset(options={"factors": [2, 7, 2]})
    np.testing.assert_array_equal(obs, images[CAR_NAMES[2]][..., 7, 2])
    assert verify_dataset("cars3d", folder).startswith("3 meshes listed in list.txt, all present; car_007_mesh.mat")


def test__list_that_is_not_utf8(cars_folder):
    folder, _ = cars_folder
    (folder / "list.txt").write_bytes(b"car_007_mesh\n\xff\xfe\n")
    message = f"{str(folder / 'list.txt')!r} is not UTF-8 text ("
    with pytest.raises(ValueError, match=re.escape(message)):
        Cars3DEnv(backend="file", data_path=folder)
    with pytest.raises(ValueError, match=re.escape(message)):
        verify_dataset("cars3d", folder)


def test__file_source_refuses_names_outside_the_folder(cars_folder):
    folder, _ = cars_folder
    with pytest.raises(ValueError, match=re.escape("Invalid Cars3D car name '../car_007_mesh': it contains '/'")):
        Cars3DFileSource(folder, object_names=["../car_007_mesh"])


def test__image_size_bounds_with_the_file_backend(cars_folder):
    folder, _ = cars_folder
    with pytest.raises(ValueError, match=re.escape("`image_size` must be an integer in [16, 256], got 10000.")):
        Cars3DEnv(backend="file", data_path=folder, image_size=10_000)
    with pytest.raises(ValueError, match=re.escape("`image_size` must be an integer in [16, 256], got 512.")):
        load_car_views(folder / f"{CAR_NAMES[0]}.mat", 512)
