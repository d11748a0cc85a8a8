import copy
import io
import re
import stat
import tarfile

import pytest

from dyndis_envs import archives
from dyndis_envs.archives import UnsafeArchiveError, extract_tar

# Forcing the no-filter path on Python >= 3.12 makes tarfile warn that 3.14 filters by default.
pytestmark = pytest.mark.filterwarnings("ignore:Python 3.14 will, by default, filter:DeprecationWarning")


@pytest.fixture(
    params=[
        pytest.param(
            True,
            id="data-filter",
            marks=pytest.mark.skipif(not hasattr(tarfile, "data_filter"), reason="no tarfile filters"),
        ),
        pytest.param(False, id="own-checks-only"),
    ]
)
def filter_mode(request, monkeypatch):
    """Run each test with tarfile's "data" filter and without it (as on Pythons that lack it)."""
    monkeypatch.setattr(archives, "_HAS_DATA_FILTER", request.param)
    return request.param


def file_member(name, data=b"content", mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def special_member(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def folder_member(name):
    return special_member(name, tarfile.DIRTYPE)


def write_tar(path, members, mode="w"):
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


CARS_MEMBERS = [
    folder_member("data"),
    folder_member("data/cars"),
    file_member("data/cars/list.txt", b"car_001_mesh\n"),
    file_member("data/cars/car_001_mesh.mat", b"mesh bytes"),
    file_member("data/sprites/readme.txt", b"not wanted"),
]


def assert_nothing_left(archive, dest):
    assert not dest.exists()
    assert sorted(path.name for path in dest.parent.iterdir()) == [archive.name]  # No staging folder left.


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (file_member("/tmp/evil.txt"), "has an absolute path"),
        (file_member("C:\\evil.txt"), "has an absolute path"),
        (file_member("../evil.txt"), "escapes the target folder ('..')"),
        (file_member("inner/../../evil.txt"), "escapes the target folder ('..')"),
        (file_member("..\\evil.txt"), "escapes the target folder ('..')"),
        (special_member("link", tarfile.SYMTYPE, "/etc/passwd"), "is a symbolic link (to '/etc/passwd')"),
        (special_member("link", tarfile.SYMTYPE, "ok.txt"), "is a symbolic link (to 'ok.txt')"),
        (special_member("hard", tarfile.LNKTYPE, "ok.txt"), "is a hard link (to 'ok.txt')"),
        (special_member("tty", tarfile.CHRTYPE), "is a device file"),
        (special_member("disk", tarfile.BLKTYPE), "is a device file"),
        (special_member("pipe", tarfile.FIFOTYPE), "is a FIFO"),
    ],
    ids=[
        "absolute",
        "drive",
        "dotdot",
        "nested-dotdot",
        "backslash-dotdot",
        "symlink-out",
        "symlink-in",
        "hardlink",
        "char-device",
        "block-device",
        "fifo",
    ],
)
def test_extract_tar__unsafe_member__refused_and_nothing_left(tmp_path, filter_mode, member, reason):
    # A valid file first: a streaming extractor would already have written it when the bad member comes.
    archive = write_tar(tmp_path / "evil.tar", [file_member("ok.txt"), member])
    dest = tmp_path / "out"
    message = f"Refusing to extract {str(archive)!r}: member {member[0].name!r} {reason}."
    with pytest.raises(UnsafeArchiveError, match=re.escape(message)):
        extract_tar(archive, dest)
    assert_nothing_left(archive, dest)


def test_extract_tar__escape_under_the_prefix__refused(tmp_path, filter_mode):
    archive = write_tar(tmp_path / "evil.tar", [*CARS_MEMBERS, file_member("data/cars/../../../evil.txt")])
    with pytest.raises(UnsafeArchiveError, match=re.escape("'data/cars/../../../evil.txt' escapes the target")):
        extract_tar(archive, tmp_path / "cars", member_prefix="data/cars/")
    assert_nothing_left(archive, tmp_path / "cars")


@pytest.mark.parametrize("compression", ["", "gz"])
@pytest.mark.parametrize("leading", ["", "./"], ids=["plain", "dot-slash"])
def test_extract_tar__member_prefix__extracts_only_that_folder(tmp_path, filter_mode, compression, leading):
    members = []
    for info, data in CARS_MEMBERS:
        renamed = copy.copy(info)
        renamed.name = leading + info.name
        members.append((renamed, data))
    archive = write_tar(tmp_path / "data.tar", members, mode=f"w:{compression}")
    dest = extract_tar(archive, tmp_path / "cache" / "cars", member_prefix="data/cars/")
    assert dest == tmp_path / "cache" / "cars"
    assert sorted(path.name for path in dest.iterdir()) == ["car_001_mesh.mat", "list.txt"]
    assert (dest / "list.txt").read_bytes() == b"car_001_mesh\n"
    assert (dest / "car_001_mesh.mat").read_bytes() == b"mesh bytes"
    assert sorted(path.name for path in dest.parent.iterdir()) == ["cars"]


def test_extract_tar__unsafe_member_outside_the_prefix__skipped(tmp_path, filter_mode):
    link = special_member("data/sprites/link", tarfile.SYMTYPE, "/etc/passwd")
    archive = write_tar(tmp_path / "data.tar", [*CARS_MEMBERS, link, file_member("/abs.txt")])
    dest = extract_tar(archive, tmp_path / "cars", member_prefix="data/cars")
    assert sorted(path.name for path in dest.iterdir()) == ["car_001_mesh.mat", "list.txt"]


def test_extract_tar__no_prefix__extracts_everything_with_plain_permissions(tmp_path, filter_mode):
    members = [
        *CARS_MEMBERS,
        file_member("bin/tool", b"#!/bin/sh\n", mode=0o4777),  # setuid, world-writable
        file_member("notes.txt", b"x", mode=0o666),
    ]
    dest = extract_tar(write_tar(tmp_path / "all.tar", members), tmp_path / "out")
    assert (dest / "data" / "sprites" / "readme.txt").read_bytes() == b"not wanted"
    assert stat.S_IMODE((dest / "bin" / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "notes.txt").stat().st_mode) == 0o644


def test_extract_tar__empty_destination_folder__replaced(tmp_path, filter_mode):
    (tmp_path / "cars").mkdir()
    dest = extract_tar(write_tar(tmp_path / "data.tar", CARS_MEMBERS), tmp_path / "cars", member_prefix="data/cars/")
    assert sorted(path.name for path in dest.iterdir()) == ["car_001_mesh.mat", "list.txt"]


def test_extract_tar__existing_destination__refused(tmp_path):
    archive = write_tar(tmp_path / "data.tar", CARS_MEMBERS)
    (tmp_path / "cars").mkdir()
    (tmp_path / "cars" / "old.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=re.escape(f"to {str(tmp_path / 'cars')!r}: it exists; remove it")):
        extract_tar(archive, tmp_path / "cars", member_prefix="data/cars/")
    assert [path.name for path in (tmp_path / "cars").iterdir()] == ["old.txt"]


def test_extract_tar__prefix_not_in_archive__raises_and_leaves_nothing(tmp_path):
    archive = write_tar(tmp_path / "data.tar", CARS_MEMBERS)
    with pytest.raises(ValueError, match=re.escape(f"{str(archive)!r} has no members under 'data/chairs/'.")):
        extract_tar(archive, tmp_path / "chairs", member_prefix="data/chairs/")
    assert_nothing_left(archive, tmp_path / "chairs")


def test_extract_tar__not_a_tar_archive__raises(tmp_path):
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(b"\x1f\x8b" + b"garbage" * 100)
    with pytest.raises(ValueError, match=re.escape(f"{str(archive)!r} is not a readable tar archive")):
        extract_tar(archive, tmp_path / "out")
    assert_nothing_left(archive, tmp_path / "out")


def test_extract_tar__failing_check__aborts_and_leaves_nothing(tmp_path):
    archive = write_tar(tmp_path / "data.tar", CARS_MEMBERS)
    seen = []

    def reject(folder):
        seen.append(sorted(path.name for path in folder.iterdir()))
        raise ValueError("not good enough")

    with pytest.raises(ValueError, match=re.escape("not good enough")):
        extract_tar(archive, tmp_path / "cars", member_prefix="data/cars/", check=reject)
    assert seen == [["car_001_mesh.mat", "list.txt"]]
    assert_nothing_left(archive, tmp_path / "cars")


@pytest.mark.parametrize("prefix", ["/data/cars", "../cars", "", "."])
def test_extract_tar__bad_member_prefix__raises(tmp_path, prefix):
    archive = write_tar(tmp_path / "data.tar", CARS_MEMBERS)
    with pytest.raises(ValueError, match=re.escape("Invalid `member_prefix`, expected a relative folder inside")):
        extract_tar(archive, tmp_path / "cars", member_prefix=prefix)
    assert_nothing_left(archive, tmp_path / "cars")


@pytest.mark.skipif(not hasattr(tarfile, "data_filter"), reason="no tarfile filters")
def test_extract_tar__filters_available__extracts_with_the_data_filter(tmp_path, monkeypatch):
    filters = []
    extractall = tarfile.TarFile.extractall

    def spy(self, *args, **kwargs):
        filters.append(kwargs.get("filter"))
        return extractall(self, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extractall", spy)
    extract_tar(write_tar(tmp_path / "data.tar", CARS_MEMBERS), tmp_path / "cars", member_prefix="data/cars/")
    assert filters == ["data"]
