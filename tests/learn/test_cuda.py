"""Training, evaluation and loading on a CUDA GPU (skipped on a machine without one, as in CI).

The rest of the test suite pins the CPU (``TINY["device"]``), because it compares runs bit for bit; these
tests train on ``cuda`` and check what a GPU user relies on: every term on the GPU, a report, checkpoints
that resume and load on the CPU with the same model, and the CPU-facing API returning NumPy arrays.
"""

import numpy as np
import pytest
import torch

from dyndis_learn import Learner, Trainer, load_model
from dyndis_learn.checkpoint import CHECKPOINT_NAME, read_checkpoint
from tests.learn.fixtures import check_cpu_facing_api

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("bf16", [False, True])
def test__a_cuda_run_trains_reports_and_resumes_on_the_cpu(tiny_config, tmp_path, bf16):
    run = tmp_path / "run"
    learner = Learner(tiny_config.replace(device="cuda", bf16=bf16), run_dir=run)
    assert learner.trainer.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in learner.model.parameters())
    history = learner.train(progress=False)
    assert all(np.isfinite(row["loss"]) for row in history)
    evaluation = learner.evaluate(progress=False)
    assert np.isfinite(evaluation.rollout_bce.mean).all() and evaluation.criteria.dynamics_trained
    assert learner.report(run).is_file()

    checkpoint = read_checkpoint(run / CHECKPOINT_NAME)
    assert checkpoint.config["device"] == "cuda" and checkpoint.cuda_rng_state is not None
    resumed = Trainer.resume(run, device="cpu")
    assert resumed.device == torch.device("cpu") and resumed.step == tiny_config.steps
    resumed.train(tiny_config.steps + 2, progress=False)
    assert resumed.step == tiny_config.steps + 2


def test__a_cuda_checkpoint_loads_on_the_cpu_with_the_same_model(tiny_config, tmp_path):
    learner = Learner(tiny_config.replace(device="cuda"))
    learner.train(progress=False)
    path = learner.save(tmp_path / "run.safetensors")
    images = learner.trainer.collector.collect(99).observations
    on_gpu, on_cpu = load_model(path, device="cuda"), load_model(path)
    assert next(on_cpu.parameters()).device.type == "cpu"
    with torch.no_grad():
        gpu = on_gpu.encode(torch.as_tensor(images, device="cuda")).cpu()
        cpu = on_cpu.encode(torch.as_tensor(images))
    # the same weights; cuDNN and the CPU sum in other orders (TF32 convolutions included)
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=1e-3)


def test__the_cpu_facing_api_of_a_cuda_model_gives_numpy(tiny_config):
    learner = Learner(tiny_config.replace(device="cuda"))
    learner.train(progress=False)
    check_cpu_facing_api(learner)
