"""TrainConfig.device and bf16 on this (CPU-only) machine; the CUDA paths are checked by scripts/gpu_check.sh."""

import platform
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from dyndis_learn import Learner, TrainConfig, Trainer, load_model
from dyndis_learn import trainer as trainer_module
from dyndis_learn.checkpoint import CHECKPOINT_NAME, read_checkpoint
from dyndis_learn.devices import (
    computes_bf16,
    flush_subnormals,
    processor_name,
    resolve_device,
    retain_freed_memory,
)
from tests.learn.fixtures import check_cpu_facing_api, rewrite_checkpoint_header

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour of a machine without CUDA")


def test__device_cpu_trains_bit_identically_to_the_default(tiny_config):
    default = Trainer(tiny_config.replace(device="auto"))  # TrainConfig's default; the fixture pins the CPU
    default.train(progress=False)
    cpu = Trainer(tiny_config.replace(device="cpu"))
    cpu.train(progress=False)
    assert TrainConfig().device == "auto" and cpu.device == torch.device("cpu") == default.device
    for name, value in default.model.state_dict().items():
        assert torch.equal(cpu.model.state_dict()[name], value), name
    assert [r["loss"] for r in cpu.history] == [r["loss"] for r in default.history]


def test__auto_resolves_to_the_cpu_without_cuda():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "CUDA", "cuda:", "cuda:x", "cpu:0", "mps", "", 0, None])
def test__a_bad_device_string_is_refused_by_the_config(bad):
    with pytest.raises(ValueError, match=r"TrainConfig\.device must be .*'auto', 'cpu', 'cuda' or 'cuda:N'"):
        TrainConfig(device=bad)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test__cuda_is_a_valid_config_but_refused_by_the_trainer_here(tiny_config, device):
    config = tiny_config.replace(device=device)  # a config stays portable
    assert config.device == device and TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=rf"TrainConfig\.device is '{device}', but CUDA is not available"):
        Trainer(config)


def test__load_model_on_a_device(tmp_path, tiny_config):
    learner = Learner(tiny_config)
    learner.train(progress=False)
    path = learner.save(tmp_path / "model.safetensors")
    model = load_model(path, device="cpu")
    assert next(model.parameters()).device == torch.device("cpu")
    for name, value in learner.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert next(load_model(path, device="auto").parameters()).device == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_model(path, device="cuda")
    with pytest.raises(ValueError, match="device must be"):
        load_model(path, device="gpu")


def test__a_checkpoint_trained_on_cuda_loads_and_resumes_on_the_cpu(tmp_path, tiny_config):
    run = tmp_path / "run"
    trainer = Trainer(tiny_config, run_dir=run)
    trainer.train(3, progress=False)
    trainer.close()
    checkpoint = run / CHECKPOINT_NAME

    def on_cuda(state):
        state["config"]["device"] = "cuda"

    rewrite_checkpoint_header(checkpoint, on_cuda)  # as a GPU run's checkpoint says
    (run / "config.json").unlink()  # the run folder's config.json would say cuda too; the header is the test
    assert read_checkpoint(checkpoint).config["device"] == "cuda"
    assert next(load_model(checkpoint).parameters()).device == torch.device("cpu")
    with pytest.raises(ValueError, match=r"TrainConfig\.device is 'cuda'"):
        Trainer.load(checkpoint)
    resumed = Trainer.resume(run, device="cpu")
    assert resumed.device == torch.device("cpu") and resumed.config.device == "cpu" and resumed.step == 3
    resumed.train(progress=False)
    assert resumed.step == tiny_config.steps
    learner = Learner.load(checkpoint, device="auto")
    assert learner.config.device == "auto" and learner.trainer.device == torch.device("cpu")


def test__format_1_configs_have_the_default_device():
    for name in ("checkpoint_v1_graph", "checkpoint_v1_spectral"):
        stored = read_checkpoint(DATA / f"{name}.safetensors")
        assert "device" not in stored.config and stored.cuda_rng_state is None
        config = TrainConfig.from_dict(stored.config)
        assert config.device == "auto" and config.bf16 is False


@pytest.mark.parametrize(
    ("flags", "native"),
    [({"_is_avx512_bf16_supported": True}, True), ({"_is_amx_tile_supported": True}, True), ({}, False)],
)
def test__computes_bf16__reads_the_cpus_bfloat16_instructions(monkeypatch, flags, native):
    for flag in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, flag, lambda flag=flag: flags.get(flag, False), raising=False)
    assert computes_bf16(torch.device("cpu")) is native
    assert computes_bf16(torch.device("cuda")) is False  # slower there on an H200


def test__processor_name__reads_the_first_model_name_of_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)  Platinum 8488C\n\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8488C\n"
    )
    assert processor_name(cpuinfo) == "Intel(R) Xeon(R) Platinum 8488C"  # runs of spaces made one


@pytest.mark.parametrize("content", [None, "processor\t: 0\nCPU part\t: 0xd0c\n", "model name\t:   \n"])
def test__processor_name__is_none_on_linux_where_cpuinfo_does_not_say(tmp_path, monkeypatch, content):
    cpuinfo = tmp_path / "cpuinfo"
    if content is not None:
        cpuinfo.write_text(content)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(platform, "processor", lambda: "x86_64")  # on Linux the architecture: not a name
    assert processor_name(cpuinfo) is None
    monkeypatch.setattr(sys, "platform", "darwin")  # elsewhere platform's answer is the name
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert processor_name(cpuinfo) == "arm"


def test__computes_bf16__is_false_where_torch_does_not_say(monkeypatch):
    for flag in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, flag, raising=False)
    assert computes_bf16(torch.device("cpu")) is False


def test__a_cpu_checkpoint_has_no_cuda_rng_state(tmp_path, tiny_config):
    trainer = Trainer(tiny_config.replace(steps=1))
    path = trainer.save(tmp_path / "c.safetensors")
    assert read_checkpoint(path).cuda_rng_state is None and read_checkpoint(path).rng_state is not None


#: A cycles run with angle bins and their look-up (Cars3D's default model), on the tiny GridWorld.
ANGLE_BINS = {
    "model": {"latent_manifold": "torus", "angle_bins": 10},
    "warmup": {"kind": "cycles", "steps": 2, "cycles": {"walk_steps": 200, "starts": 8, "batch_size": 16}},
}


@pytest.mark.parametrize(
    "settings", [{"model": {"method": "rotation"}}, {"model": {"method": "quessard2020"}}, ANGLE_BINS]
)
def test__a_bf16_step_runs_and_gives_finite_losses(tiny_config, settings):
    config = tiny_config.replace(bf16=True, **settings)
    trainer = Trainer(config)
    trainer.train(progress=False)  # warm-up steps and dynamics steps
    assert all(np.isfinite(row["loss"]) for row in trainer.history)
    terms = trainer.train_step()
    assert terms["loss"].dtype == torch.float32 and torch.isfinite(terms["loss"])
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test__bf16_on_a_cpu_without_bfloat16_instructions_warns_that_it_is_slow(tiny_config, monkeypatch):
    monkeypatch.setattr(trainer_module, "computes_bf16", lambda device: False)
    with pytest.warns(UserWarning, match=r"TrainConfig\.bf16 is True, but this CPU has no bfloat16 instructions"):
        Trainer(tiny_config.replace(bf16=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(tiny_config.replace(bf16="auto"))  # float32 on a small world: nothing to say


def test__learner_and_planner_give_cpu_numpy(tiny_config):
    learner = Learner(tiny_config.replace(device="cpu"))
    learner.train(progress=False)
    check_cpu_facing_api(learner)


@pytest.mark.parametrize("retain", [True, False])
def test__a_cpu_trainer_retains_freed_memory_where_configured(tiny_config, monkeypatch, retain):
    calls = []
    monkeypatch.setattr("dyndis_learn.trainer.retain_freed_memory", lambda: calls.append(1) or True)
    Trainer(tiny_config.replace(retain_cpu_memory=retain))
    assert TrainConfig().retain_cpu_memory is True and len(calls) == retain


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86's FTZ and DAZ flags")
def test__a_cpu_trainer_computes_with_subnormals_flushed_to_zero(tiny_config):
    try:  # 1e-30 * 1e-10 = 1e-40, below float32's smallest normal (1.2e-38)
        torch.set_flush_denormal(False)
        assert (torch.tensor([1e-30]) * torch.tensor([1e-10])).item() > 0
        Trainer(tiny_config)
        assert (torch.tensor([1e-30]) * torch.tensor([1e-10])).item() == 0.0
        assert flush_subnormals() is True
    finally:
        torch.set_flush_denormal(False)  # back to torch's default for the rest of this process's tests


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test__retain_freed_memory_applies_on_glibc():
    assert retain_freed_memory() is True  # process-wide; it changes where tensors live, not their values
