import hashlib
import json
import re
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dyndis_learn.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    load_checkpoint,
    optimizer_state_from_tensors,
    read_checkpoint,
    save_checkpoint,
)
from tests.learn.fixtures import rewrite_checkpoint_header

DATA = Path(__file__).parent / "data"


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
    with pytest.raises(ValueError, match=re.escape("has checkpoint format 99; readable formats: [1, 2, 3].")):
        load_checkpoint(path)


# -- integrity (format 3) --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory, request):
    """A small trained run's checkpoint (read-only: tests copy it)."""
    from dyndis_learn import TrainConfig, Trainer
    from tests.learn.fixtures import TINY

    path = tmp_path_factory.mktemp("saved") / "checkpoint.safetensors"
    trainer = Trainer(TrainConfig.from_dict(TINY).replace(steps=3))
    trainer.train(progress=False)
    trainer.save(path)
    trainer.close()
    return path


@pytest.fixture
def copy(saved, tmp_path):
    path = tmp_path / "checkpoint.safetensors"
    shutil.copyfile(saved, path)
    return path


def _data_start(path) -> int:
    (size,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + size


def test__the_header_stores_digests_of_the_state_and_of_every_tensor(copy):
    with safe_open(str(copy), framework="pt") as f:
        metadata, names = f.metadata(), list(f.keys())
    digests = json.loads(metadata["dyndis_learn.digests"])
    assert digests["header"] == hashlib.sha256(metadata["dyndis_learn"].encode()).hexdigest()
    assert sorted(digests["tensors"]) == sorted(names)
    assert json.loads(metadata["dyndis_learn"])["format"] == CHECKPOINT_FORMAT == 3
    read_checkpoint(copy)  # verifies


def test__a_flipped_bit_in_a_tensor_is_caught_naming_the_tensor(copy):
    data = bytearray(copy.read_bytes())
    data[_data_start(copy) + 3] ^= 0x10
    copy.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"checkpoint corrupted: .*: the tensor \S+ does not match its digest"):
        load_checkpoint(copy)


def test__an_edited_header_is_caught(copy):
    rewrite_checkpoint_header(copy, lambda state: state.update(step=99), resign=False)
    with pytest.raises(CheckpointError, match=re.escape("its header (the JSON state") + ".*does not match its digest"):
        read_checkpoint(copy)


def test__digests_that_are_missing_or_mangled_are_corruption(copy, tmp_path):
    data = copy.read_bytes()
    text = data[8 : _data_start(copy)]
    mangled = text.replace(b'"dyndis_learn.digests"', b'"dyndis_learn.digestz"')
    copy.write_bytes(data[:8] + mangled + data[_data_start(copy) :])
    with pytest.raises(CheckpointError, match=re.escape("format 3 stores digests, and this file has none")):
        load_checkpoint(copy)


def test__files_of_formats_1_and_2_have_no_digests_and_load_silently(copy, recwarn):
    for name in ("checkpoint_v1_graph", "checkpoint_v1_spectral"):
        assert read_checkpoint(DATA / f"{name}.safetensors").step == 4
    rewrite_checkpoint_header(copy, lambda state: None, drop_digests=True)
    assert read_checkpoint(copy).step == 3
    assert not [w for w in recwarn if "digest" in str(w.message)]


def test__a_header_without_a_key_is_named(copy):
    rewrite_checkpoint_header(copy, lambda state: state.pop("config"))
    with pytest.raises(CheckpointError, match=re.escape("is incomplete: its header has no 'config'")):
        read_checkpoint(copy)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"latent_dim": 6},
            "the stored config (model.latent_dim=6) builds the tensor model.encoder.head.3.weight "
            "with shape (6, 32), but the file's has shape (4, 32)",
        ),
        (
            {"channels": [8, 16]},
            "(model.channels=[8, 16]) builds the tensor model.encoder.convs.3.weight with shape "
            "(16, 8, 4, 4), but the file's has shape (8, 8, 4, 4)",
        ),
        (
            {"channels": [8, 8, 8]},
            "(model.channels=[8, 8, 8]) builds the tensor model.encoder.convs.6.weight, which the file lacks",
        ),
    ],
)
def test__a_config_that_no_longer_matches_the_tensors_is_named(copy, model, message):
    from dyndis_learn import load_model

    rewrite_checkpoint_header(copy, lambda state: state["config"]["model"].update(model))
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_model(copy)


def test__an_optimiser_state_that_does_not_fit_is_refused(copy):
    import torch.nn as nn

    checkpoint = read_checkpoint(copy)
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(2))])
    with pytest.raises(CheckpointError, match="optimiser state does not fit"):
        optimizer_state_from_tensors(optimizer, checkpoint.optimizer_tensors, checkpoint.optimizer_meta)
