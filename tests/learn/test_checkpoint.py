import json
import re

import pytest
import torch
from safetensors.torch import save_file

from dyndis_learn.checkpoint import load_checkpoint, save_checkpoint


def test__round_trip_keeps_tensors_and_state(tmp_path):
    tensors = {
        "a": torch.arange(6.0).reshape(2, 3),
        "b": torch.ones(2, 2, 2, 2).contiguous(memory_format=torch.channels_last),
    }
    path = save_checkpoint(tmp_path / "c.safetensors", tensors, {"step": 7, "history": [{"loss": 1.5}]})
    loaded, state = load_checkpoint(path)
    assert state["step"] == 7 and state["history"] == [{"loss": 1.5}]
    for name in tensors:
        assert torch.equal(loaded[name], tensors[name])
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary file left behind


def test__missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("No checkpoint at")):
        load_checkpoint(tmp_path / "nope.safetensors")
    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match=re.escape("is a safetensors file but not a dyndis-learn checkpoint.")):
        load_checkpoint(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=re.escape("is not a readable safetensors checkpoint")):
        load_checkpoint(tmp_path / "junk.safetensors")


def test__unknown_formats_are_refused(tmp_path):
    path = tmp_path / "c.safetensors"
    save_file({"x": torch.zeros(1)}, path, metadata={"dyndis_learn": json.dumps({"format": 99})})
    with pytest.raises(ValueError, match=re.escape("has checkpoint format 99; readable formats: [1, 2].")):
        load_checkpoint(path)
