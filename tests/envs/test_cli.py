import dataclasses
import hashlib
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from dyndis_envs.cli import main
from dyndis_envs.datasets import DATASETS
from dyndis_envs.download import part_path
from tests.envs._http_server import LocalFileServer
from tests.envs.fixtures import write_cars_tarball, write_shapes3d

REPO = Path(__file__).resolve().parents[2]
SHAPES, CARS = "/3dshapes.h5", "/nips2015-analogy-data.tar.gz"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fixtures")
    return {SHAPES: write_shapes3d(folder / "3dshapes.h5"), CARS: write_cars_tarball(folder / "cars.tar.gz", folder)}


@pytest.fixture
def server(files, monkeypatch):
    """The fixtures served on 127.0.0.1, with the registry's checksums and sizes patched to match them."""
    monkeypatch.setitem(
        DATASETS,
        "shapes3d",
        dataclasses.replace(
            DATASETS["shapes3d"],
            checksum=("sha256", hashlib.sha256(files[SHAPES]).hexdigest()),
            expected_size=len(files[SHAPES]),
        ),
    )
    monkeypatch.setitem(
        DATASETS,
        "cars3d",
        dataclasses.replace(DATASETS["cars3d"], checksum=("md5", hashlib.md5(files[CARS]).hexdigest())),
    )
    with LocalFileServer(files) as running:
        yield running


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_download_and_verify__shapes3d__installs_the_file(server, files, tmp_path, capsys):
    code, out, _ = run(capsys, "download", "shapes3d", "--data-dir", str(tmp_path), "--url", server.url(SHAPES))
    assert code == 0
    assert out == f"shapes3d: ready at {tmp_path / '3dshapes.h5'}\n"
    assert (tmp_path / "3dshapes.h5").read_bytes() == files[SHAPES]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3dshapes.h5"]

    code, out, _ = run(capsys, "verify", "shapes3d", "--data-dir", str(tmp_path))
    digest = hashlib.sha256(files[SHAPES]).hexdigest()
    assert code == 0
    assert out == f"shapes3d: OK (sha256 {digest}, {len(files[SHAPES]):,} bytes) at {tmp_path / '3dshapes.h5'}\n"


def test_verify__corrupted_file__fails_naming_the_digests(server, files, tmp_path, capsys):
    path = tmp_path / "copy.h5"
    path.write_bytes(files[SHAPES][:-1] + b"\0")
    code, out, err = run(capsys, "verify", "shapes3d", str(path))
    expected = hashlib.sha256(files[SHAPES]).hexdigest()
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (code, out) == (1, "")
    assert err == (
        f"dyndis-envs: error: Checksum mismatch for {str(path)!r}: expected sha256 {expected}, got {actual}. It is "
        "corrupt or not the published 3dshapes.h5. Delete it and run `dyndis-envs download shapes3d` to fetch a "
        "verified copy.\n"
    )


def test_download__data_dir_from_environment__used_by_default(server, files, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DYNDIS_DATA", str(tmp_path / "env"))
    assert run(capsys, "download", "shapes3d", "--url", server.url(SHAPES), "--no-progress")[0] == 0
    assert (tmp_path / "env" / "3dshapes.h5").read_bytes() == files[SHAPES]


def test_download_and_verify__cars3d__extracts_the_cars_folder(server, tmp_path, capsys):
    code, out, _ = run(
        capsys, "download", "cars3d", "--data-dir", str(tmp_path), "--url", server.url(CARS), "--no-progress"
    )
    assert (code, out) == (0, f"cars3d: ready at {tmp_path / 'cars'}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cars"]
    assert sorted(p.name for p in (tmp_path / "cars").iterdir()) == ["car_001_mesh.mat", "list.txt"]

    code, out, _ = run(capsys, "verify", "cars3d", str(tmp_path / "cars"))
    assert code == 0
    assert out.startswith("cars3d: OK (1 meshes listed in list.txt, all present; car_001_mesh.mat holds 'im' uint8")

    (tmp_path / "cars" / "car_001_mesh.mat").unlink()
    code, _, err = run(capsys, "verify", "cars3d", "--data-dir", str(tmp_path))
    assert code == 1
    assert "1 of the 1 meshes listed in" in err
    assert err.endswith("are missing or empty: car_001_mesh.mat.\n")


def test_download__keep_archive__archive_kept(server, tmp_path, capsys):
    argv = ["download", "cars3d", "--data-dir", str(tmp_path), "--url", server.url(CARS), "--keep-archive"]
    assert run(capsys, *argv)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cars", "nips2015-analogy-data.tar.gz"]


def test_download__checksum_mismatch__exit_1_and_nothing_installed(server, files, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(DATASETS, "shapes3d", dataclasses.replace(DATASETS["shapes3d"], checksum=("sha256", "1" * 64)))
    code, out, err = run(capsys, "download", "shapes3d", "--data-dir", str(tmp_path), "--url", server.url(SHAPES))
    actual = hashlib.sha256(files[SHAPES]).hexdigest()
    assert (code, out) == (1, "")
    assert f"expected sha256 {'1' * 64}, got {actual}." in err
    assert list(tmp_path.iterdir()) == []


def test_download__unreachable_server__exit_1_with_the_reason(server, tmp_path, capsys):
    code, _, err = run(capsys, "download", "shapes3d", "--data-dir", str(tmp_path), "--url", server.url("/gone.h5"))
    assert code == 1
    assert err == f"dyndis-envs: error: Downloading {server.url('/gone.h5')} failed: HTTP Error 404: Not Found.\n"


def test_list__reports_presence_and_location(server, tmp_path, capsys):
    part_path(tmp_path / "nips2015-analogy-data.tar.gz").write_bytes(b"partial")
    code, out, _ = run(capsys, "list", "--data-dir", str(tmp_path))
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["cars3d", "partial", str(tmp_path / "cars")]
    assert lines[2].split() == ["shapes3d", "missing", str(tmp_path / "3dshapes.h5")]
    assert "(for DynDis/Shapes3D-v0)" in lines[3]

    run(capsys, "download", "shapes3d", "--data-dir", str(tmp_path), "--url", server.url(SHAPES))
    lines = run(capsys, "list", "--data-dir", str(tmp_path))[1].splitlines()
    assert lines[2].split() == ["shapes3d", "present", str(tmp_path / "3dshapes.h5")]


def test_info__lists_the_registered_env_ids(capsys):
    import dyndis_envs

    code, out, _ = run(capsys, "info")
    assert code == 0
    ids = [line.split()[0] for line in out.splitlines()[1:]]
    assert ids == dyndis_envs.ENV_IDS + dyndis_envs.TASK_IDS and len(ids) == 12
    lines = out.splitlines()
    assert (
        "DynDis/GridWorld-v0  (entry point dyndis_envs.gridworld:GridWorldEnv, native vector env, "
        "max_episode_steps=200)" in lines
    )
    assert (
        "DynDis/Cars3DGoal-v0  (entry point dyndis_envs.task_envs:make_goal_env, on DynDis/Cars3D-v0, "
        "native vector env, max_episode_steps=100)" in lines
    )


def test_version__prints_the_installed_version(capsys):
    import importlib.metadata

    import dyndis_envs

    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out == f"dyndis-envs {dyndis_envs.__version__}\n"
    assert dyndis_envs.__version__ == importlib.metadata.version("dyndis-envs")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["download", "mnist"], "argument dataset: invalid choice: 'mnist'"),
        (["verify"], "the following arguments are required: dataset"),
        (["list", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_main__usage_error__exit_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err


def test_main__help__exit_0(capsys):
    code, out, _ = run(capsys, "download", "--help")
    assert code == 0
    assert "--keep-archive" in out


def test_script__download_data__runs_main(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["download_data.py", "list", "--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "scripts" / "download_data.py"), run_name="__main__")
    assert exit_info.value.code == 0
    assert "shapes3d  missing" in capsys.readouterr().out


def test_cli__import__stays_light():
    code = "import sys, dyndis_envs.cli; print(sorted({'scipy', 'tqdm', 'h5py', 'torch'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
