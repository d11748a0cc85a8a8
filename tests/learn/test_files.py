import json

import pytest

from dyndis_learn.files import atomic_write, write_json_atomic


def test__write_json_atomic(tmp_path):
    path = write_json_atomic(tmp_path / "sub" / "x.json", {"a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test__a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test__the_temporary_file_keeps_the_suffix(tmp_path):
    seen = []
    atomic_write(tmp_path / "a.png", lambda tmp: (seen.append(tmp), open(tmp, "wb").close()), suffix=".png")
    assert seen[0].endswith(".png") and (tmp_path / "a.png").is_file()
