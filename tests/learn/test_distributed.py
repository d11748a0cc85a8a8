"""Data-parallel training on 2 gloo processes on the CPU (dyndis_learn.distributed).

One spawn of 2 ranks (module fixture ``ddp``) runs every data-parallel scenario, and the tests check its
results against single-process references; one more test launches ``dyndis-learn train --nproc 2``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from dyndis_learn import TrainConfig, Trainer, cli, distributed
from dyndis_learn.checkpoint import CHECKPOINT_NAME, read_checkpoint
from dyndis_learn.losses import uniformity, whitening_penalty
from dyndis_learn.objective import TrainBatch
from dyndis_learn.run_log import LOG_NAME
from tests.learn.fixtures import TINY

WORLD = 2

#: Every term has weight from step 0 (no warm-up, no ramp, a constant regulariser): the step compared with
#: a single process exercises the whole objective, uniformity included.
STEP_CONFIG = {
    **TINY,
    "warmup": {"kind": "none"},
    "optim": {"dynamics_ramp_steps": 0},
    "regularizer": {"schedule": "constant", "weight": 0.3},
}
#: The default graph warm-up (explored on rank 0, broadcast), two warm-up steps, then the dynamics.
RUN_CONFIG = {**TINY, "steps": 4}
#: The cycles warm-up: cycles found and walked on rank 0, broadcast (each rank's own seed would walk its own
#: walk, a frame of reference of its own).
CYCLES_CONFIG = {
    **RUN_CONFIG,
    "warmup": {"kind": "cycles", "steps": 2, "cycles": {"walk_steps": 100, "starts": 8, "batch_size": 8}},
}


def _worker(rank: int, tmp: str) -> None:
    """One rank: the step scenario, then an uninterrupted run and one interrupted and resumed."""
    out = Path(tmp)
    dist.init_process_group("gloo", init_method=f"file://{out / 'store'}", rank=rank, world_size=WORLD)
    try:
        trainer = Trainer(TrainConfig.from_dict(STEP_CONFIG))
        batch = trainer.batch(0)
        save_file(
            {"frames": batch.frames, "actions": batch.actions, "from_rollout": batch.from_rollout},
            out / f"batch{rank}.safetensors",
        )
        terms = trainer.train_step()
        logged = distributed.mean_over_ranks(terms, distributed.ranks())
        if rank == 0:
            stepped = {name: value.detach().contiguous() for name, value in trainer.model.state_dict().items()}
            save_file(stepped, out / "stepped.safetensors")
            save_file(logged, out / "logged.safetensors")
        trainer.close()

        config = TrainConfig.from_dict(RUN_CONFIG)
        whole = Trainer(config, out / "whole")
        whole.train(progress=False)
        _assert_same_on_every_rank(whole.model)
        whole.close()
        cycles = Trainer(TrainConfig.from_dict(CYCLES_CONFIG))
        cycles.train(progress=False)
        _assert_same_on_every_rank(cycles.model)
        positions = torch.from_numpy(cycles.warmup.walk.positions)
        gathered = [torch.empty_like(positions) for _ in range(WORLD)]
        dist.all_gather(gathered, positions)
        assert torch.equal(gathered[0], gathered[1])  # one walk: rank 0's
        cycles.close()
        first = Trainer(config, out / "resumed")
        first.train(2, progress=False)
        first.close()
        resumed = Trainer.resume(out / "resumed")
        resumed.train(progress=False)
        resumed.close()
    finally:
        dist.destroy_process_group()


def _assert_same_on_every_rank(model: torch.nn.Module) -> None:
    """Every rank holds rank 0's parameters and buffers (the warm-up's start and end are broadcast)."""
    for name, value in model.state_dict().items():
        gathered = [torch.empty_like(value) for _ in range(WORLD)]
        dist.all_gather(gathered, value.contiguous())
        assert all(torch.equal(other, gathered[0]) for other in gathered), name


@pytest.fixture(scope="module")
def ddp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the 2-rank spawn's results."""
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(str(tmp),), nprocs=WORLD, join=True)
    return tmp


def _batch(path: Path) -> TrainBatch:
    tensors = load_file(path)
    return TrainBatch(tensors["frames"], tensors["actions"], tensors["from_rollout"], decode_twice=False)


def test__ddp_step__equals_one_step_on_the_union_of_the_ranks_batches(ddp: Path) -> None:
    reference = Trainer(TrainConfig.from_dict(STEP_CONFIG))
    batches = [_batch(ddp / f"batch{rank}.safetensors") for rank in range(WORLD)]
    own = reference.batch(0)
    assert torch.equal(batches[0].frames, own.frames) and torch.equal(batches[0].from_rollout, own.from_rollout)
    assert not torch.equal(batches[0].frames, batches[1].frames)  # rank 1 collects its own episodes

    # The objective as DDP computes it: the mean over the ranks of each rank's objective on its own batch.
    weights = reference.loss_weights(0)
    model, optimizer = reference.model, reference.optimizer
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    per_rank = [reference.method.terms(model, batch, weights, None) for batch in batches]
    optimizer.zero_grad(set_to_none=True)
    (sum(terms["loss"] for terms in per_rank) / WORLD).backward()
    optimizer.step()

    stepped = load_file(ddp / "stepped.safetensors")
    for name, value in model.state_dict().items():
        assert torch.allclose(stepped[name], value, rtol=0, atol=1e-6), name
        assert not torch.equal(stepped[name], initial[name]), name  # every parameter was trained
    reference.close()


def test__coupling_terms__are_computed_per_rank(ddp: Path) -> None:
    """Uniformity (pairwise distances) and whitening are each rank's own, averaged: not those of the union."""
    config = TrainConfig.from_dict(STEP_CONFIG)
    model = Trainer(config).model
    batches = [_batch(ddp / f"batch{rank}.safetensors") for rank in range(WORLD)]
    logged = load_file(ddp / "logged.safetensors")
    terms = {"uniformity": lambda e: uniformity(e, config.loss.uniformity_temperature), "whitening": whitening_penalty}
    with torch.no_grad():
        encodings = [model.encode(batch.frames) for batch in batches]
        for name, term in terms.items():
            per_rank = sum(float(term(e)) for e in encodings) / WORLD
            union = float(term(torch.cat(encodings)))
            # (the untrained encodings are close together, so the two differ by little, but by far more)
            assert abs(float(logged[name]) - per_rank) < 1e-6, name
            assert abs(float(logged[name]) - union) > 5e-6, name


def test__two_rank_run__resumes_exactly(ddp: Path) -> None:
    whole = read_checkpoint(ddp / "whole" / CHECKPOINT_NAME)
    resumed = read_checkpoint(ddp / "resumed" / CHECKPOINT_NAME)
    assert whole.step == resumed.step == 4 and whole.world_size == resumed.world_size == WORLD
    for name, value in whole.model_state.items():
        assert torch.equal(value, resumed.model_state[name]), name
    for name, value in whole.optimizer_tensors.items():
        assert torch.equal(value, resumed.optimizer_tensors[name]), name
    drop = {"wall_time"}
    assert [{k: v for k, v in row.items() if k not in drop} for row in whole.history] == [
        {k: v for k, v in row.items() if k not in drop} for row in resumed.history
    ]
    # Only rank 0 wrote the run's files (one log, with one row per step).
    assert len((ddp / "whole" / LOG_NAME).read_text().splitlines()) == 1 + 4


def test__resume_with_another_rank_count__warns_and_continues(ddp: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name in (CHECKPOINT_NAME, "config.json"):
        (run / name).write_bytes((ddp / "whole" / name).read_bytes())
    trainer = Trainer.resume(run)
    message = "The checkpoint was trained by 2 data-parallel rank(s) and resumes with 1"
    with pytest.warns(UserWarning, match=re.escape(message)):
        trainer.train(5, progress=False)
    trainer.close()
    continued = read_checkpoint(run / CHECKPOINT_NAME)
    assert continued.step == 5 and continued.world_size == 1


def test__cli_nproc__launches_ranks_that_train_as_the_api_does(ddp: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(RUN_CONFIG))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "dyndis_learn", "train", "--config", str(config), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*command, "--nproc", "2", "--no-report", "--quiet"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("trained 4 steps") == 1  # rank 0 prints
    launched, api = read_checkpoint(out / CHECKPOINT_NAME), read_checkpoint(ddp / "whole" / CHECKPOINT_NAME)
    assert launched.world_size == WORLD
    for name, value in api.model_state.items():
        assert torch.equal(value, launched.model_state[name]), name


def test__cli_nproc__refuses_a_bad_count_and_a_nested_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "run")
    assert cli.main(["train", "--out", out, "--nproc", "0"]) == 2
    assert "--nproc must be an integer >= 1, got 0." in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["train", "--out", out, "--nproc=2"]) == 2
    assert "leave --nproc out" in capsys.readouterr().err
