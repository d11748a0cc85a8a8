import dataclasses
import hashlib
import re

import numpy as np
import pytest
import scipy.io

from dyndis_envs.datasets import (
    DATASETS,
    Dataset,
    cars_mesh_path,
    check_cars_folder,
    dataset_path,
    download_dataset,
    get_dataset,
    read_car_mesh,
    read_cars_list,
    verify_dataset,
    verify_dataset_file,
)
from dyndis_envs.download import IntegrityError
from tests.envs._http_server import LocalFileServer
from tests.envs.cars3d.fixtures import BAD_LISTS, CAR_NAMES, SUFFIXED_LIST
from tests.envs.fixtures import mesh_array, write_cars_tarball, write_mesh

TARBALL = "/nips2015-analogy-data.tar.gz"


def test_registry__known_datasets__match_the_published_files():
    shapes, cars = DATASETS["shapes3d"], DATASETS["cars3d"]
    assert shapes.url == "https://storage.googleapis.com/3d-shapes/3dshapes.h5"
    assert shapes.checksum == ("sha256", "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785")
    assert (shapes.expected_size, shapes.target, shapes.archive) == (267_573_662, "3dshapes.h5", None)
    assert cars.url == "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz"
    assert cars.checksum == ("md5", "4e866a7919c1beedf53964e6f7a23686")
    assert (cars.target, cars.archive, cars.member_prefix) == ("cars", "nips2015-analogy-data.tar.gz", "data/cars/")
    assert all(name == dataset.name for name, dataset in DATASETS.items())


def test_get_dataset__unknown_name__raises_listing_the_known_ones():
    with pytest.raises(ValueError, match=re.escape("Unknown dataset 'mnist', expected one of ['cars3d', 'shapes3d'].")):
        get_dataset("mnist")


def test_dataset__archive_without_prefix_or_check__raises():
    with pytest.raises(ValueError, match=re.escape("Dataset 'x' is an archive: it needs `member_prefix` and")):
        Dataset("x", "", "http://127.0.0.1/x.tar", ("md5", "0" * 32), None, "x", archive="x.tar")


def test_dataset_path__defaults_to_the_data_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNDIS_DATA", str(tmp_path / "env"))
    assert dataset_path("shapes3d") == tmp_path / "env" / "3dshapes.h5"
    assert dataset_path("cars3d", tmp_path / "given") == tmp_path / "given" / "cars"


@pytest.fixture
def cars_folder(tmp_path):
    folder = tmp_path / "cars"
    folder.mkdir()
    (folder / "list.txt").write_text("car_001_mesh\ncar_002_mesh\n\n")
    write_mesh(folder / "car_001_mesh.mat")
    (folder / "car_002_mesh.mat").write_bytes(b"only the first mesh is loaded")
    return folder


def test_check_cars_folder__valid_folder__summarises(cars_folder):
    summary = check_cars_folder(cars_folder)
    assert summary == (
        "2 meshes listed in list.txt, all present; car_001_mesh.mat holds 'im' uint8 (128, 128, 3, 24, 4)"
    )


def test_check_cars_folder__missing_or_empty_pieces__raise(cars_folder, tmp_path):
    (cars_folder / "car_002_mesh.mat").write_bytes(b"")
    listing = cars_folder / "list.txt"
    with pytest.raises(IntegrityError, match=re.escape(f"1 of the 2 meshes listed in {str(listing)!r} are missing")):
        check_cars_folder(cars_folder)
    listing.write_text("\n")
    with pytest.raises(IntegrityError, match=re.escape(f"{str(listing)!r} names no car.")):
        check_cars_folder(cars_folder)
    listing.unlink()
    with pytest.raises(IntegrityError, match=re.escape("has no list.txt: not a Cars3D folder.")):
        check_cars_folder(cars_folder)
    with pytest.raises(FileNotFoundError, match=re.escape("No Cars3D folder at")):
        check_cars_folder(tmp_path / "absent")


def test_check_cars_folder__wrong_mesh_array__raises(cars_folder):
    mesh = cars_folder / "car_001_mesh.mat"
    write_mesh(mesh, np.zeros((64, 64, 3, 24, 4), np.uint8))
    message = (
        f"Cars3D file {str(mesh)!r}: 'im' must be uint8 of shape (128, 128, 3, 24, 4) (H, W, RGB, azimuth, "
        "elevation), got uint8 of shape (64, 64, 3, 24, 4)."
    )
    with pytest.raises(IntegrityError, match=re.escape(message)):
        check_cars_folder(cars_folder)
    mesh.write_bytes(b"not a mat file at all")
    unreadable = f"Cars3D file {str(mesh)!r} is not a readable MATLAB .mat file ("
    with pytest.raises(IntegrityError, match=re.escape(unreadable)):
        check_cars_folder(cars_folder)
    scipy.io.savemat(mesh, {"images": np.zeros((2, 2), np.uint8)})
    with pytest.raises(IntegrityError, match=re.escape(f"{str(mesh)!r} has no variable 'im' (found ['images']).")):
        check_cars_folder(cars_folder)


@pytest.fixture
def nested_cars(tmp_path):
    """A cars folder of the test cars two levels down, and a real-format mesh two folders above it."""
    folder = tmp_path / "a" / "b" / "cars"
    folder.mkdir(parents=True)
    for seed, name in enumerate(CAR_NAMES, start=1):
        write_mesh(folder / f"{name}.mat", mesh_array(seed))
    (folder / "list.txt").write_text("\n".join(CAR_NAMES) + "\n")
    write_mesh(tmp_path / "a" / "outside_car.mat")
    return folder


@pytest.mark.parametrize("case", BAD_LISTS)
def test_verify_dataset__bad_list_entries__refused_as_the_env_refuses_them(nested_cars, case):
    """Replay: `verify` passed repeated names, and ../../outside_car (a file outside cars/) that the env read."""
    text, tail = BAD_LISTS[case]
    listing = nested_cars / "list.txt"
    listing.write_text(text)
    message = f"{str(listing)!r} {tail}"
    with pytest.raises(IntegrityError, match=re.escape(message)):
        verify_dataset("cars3d", nested_cars)
    with pytest.raises(IntegrityError, match=re.escape(message)):
        read_cars_list(listing)


def test_read_cars_list__mat_suffix_blank_lines_and_spaces__plain_names(nested_cars):
    listing = nested_cars / "list.txt"
    listing.write_text(SUFFIXED_LIST.replace("\n", "\r\n", 1) + "\n\n")
    assert read_cars_list(listing) == CAR_NAMES
    summary = verify_dataset("cars3d", nested_cars)
    assert summary == "3 meshes listed in list.txt, all present; car_007_mesh.mat holds 'im' uint8 (128, 128, 3, 24, 4)"


def test_read_cars_list__names_that_look_odd_but_stay_in_the_folder__accepted(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("car..v2\n.hidden\ncar.mat.mat\ncar 1\n")
    assert read_cars_list(listing) == ("car..v2", ".hidden", "car.mat", "car 1")
    assert [cars_mesh_path(tmp_path, n).parent for n in read_cars_list(listing)] == [tmp_path] * 4


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is an empty car name"),
        ("..", "names a folder, not a car"),
        ("a/b", "contains '/'"),
        (7, "is not a string"),
    ],
)
def test_cars_mesh_path__names_outside_the_folder__refused(tmp_path, name, problem):
    with pytest.raises(ValueError, match=re.escape(f"Invalid Cars3D car name {name!r}: it {problem}")):
        cars_mesh_path(tmp_path, name)


def test_verify_dataset__corrupt_compressed_first_mesh__clear_error(nested_cars):
    """Replay: flipped bytes in a compressed .mat raised zlib.error out of scipy.io.loadmat."""
    mesh = nested_cars / f"{CAR_NAMES[0]}.mat"
    data = bytearray(mesh.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    mesh.write_bytes(bytes(data))
    message = f"Cars3D file {str(mesh)!r} is not a readable MATLAB .mat file (zlib.error: Error -3 while decompressing"
    with pytest.raises(IntegrityError, match=re.escape(message)):
        verify_dataset("cars3d", nested_cars)
    with pytest.raises(IntegrityError, match=re.escape(message)):
        read_car_mesh(mesh)


def test_read_car_mesh__missing_file(tmp_path):
    message = f"Cars3D file {str(tmp_path / 'x.mat')!r} is missing (its name is in list.txt)."
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        read_car_mesh(tmp_path / "x.mat")


@pytest.fixture(scope="module")
def cars_tarball(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cars_tarball")
    return write_cars_tarball(folder / "data.tar.gz", folder / "work")


@pytest.fixture
def cars_server(cars_tarball, monkeypatch):
    with LocalFileServer({TARBALL: cars_tarball}) as server:
        patched = dataclasses.replace(
            DATASETS["cars3d"], url=server.url(TARBALL), checksum=("md5", hashlib.md5(cars_tarball).hexdigest())
        )
        monkeypatch.setitem(DATASETS, "cars3d", patched)
        yield server


def test_download_dataset__cars__extracts_the_folder_and_deletes_the_archive(cars_server, tmp_path):
    path = download_dataset("cars3d", data_dir=tmp_path, progress=False)
    assert path == tmp_path / "cars"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cars"]
    assert sorted(p.name for p in path.iterdir()) == ["car_001_mesh.mat", "list.txt"]
    assert verify_dataset("cars3d", path).startswith("1 meshes listed in list.txt, all present")


def test_download_dataset__keep_archive__archive_stays_and_verifies(cars_server, tmp_path):
    download_dataset("cars3d", data_dir=tmp_path, keep_archive=True, progress=False)
    archive = tmp_path / "nips2015-analogy-data.tar.gz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cars", archive.name]
    assert verify_dataset("cars3d", archive).startswith(f"md5 {DATASETS['cars3d'].checksum[1]}, ")


def test_download_dataset__valid_folder_in_place__kept_without_a_request(cars_server, tmp_path):
    download_dataset("cars3d", data_dir=tmp_path, progress=False)
    requests = len(cars_server.requests)
    download_dataset("cars3d", data_dir=tmp_path, progress=False)
    assert len(cars_server.requests) == requests


def test_download_dataset__broken_folder_in_place__raises_asking_to_remove_it(cars_server, tmp_path):
    (tmp_path / "cars").mkdir()
    (tmp_path / "cars" / "stray.txt").write_text("x")
    with pytest.raises(IntegrityError, match=re.escape(f"Remove {str(tmp_path / 'cars')!r} and download again.")):
        download_dataset("cars3d", data_dir=tmp_path, progress=False)
    assert cars_server.requests == []


def test_verify_dataset_file__size_and_digest_mismatch__name_the_values_and_the_way_back(tmp_path, monkeypatch):
    path = tmp_path / "3dshapes.h5"
    path.write_bytes(b"twelve bytes")
    message = (
        f"Size mismatch for {str(path)!r}: expected 267,573,662 bytes, got 12. `dyndis-envs download shapes3d "
        f"--data-dir {str(tmp_path)!r}` replaces it with a verified copy."
    )
    with pytest.raises(IntegrityError, match=re.escape(message)):
        verify_dataset_file("shapes3d", path)
    monkeypatch.setitem(DATASETS, "shapes3d", dataclasses.replace(DATASETS["shapes3d"], expected_size=12))
    actual = hashlib.sha256(b"twelve bytes").hexdigest()
    message = (
        f"Checksum mismatch for {str(path)!r}: expected sha256 {DATASETS['shapes3d'].checksum[1]}, got {actual}. "
        "It is corrupt or not the published 3dshapes.h5. `dyndis-envs download shapes3d --data-dir"
    )
    with pytest.raises(IntegrityError, match=re.escape(message)):
        verify_dataset_file("shapes3d", path)
    with pytest.raises(FileNotFoundError, match=re.escape("No file to verify at")):
        verify_dataset_file("shapes3d", tmp_path / "absent.h5")
