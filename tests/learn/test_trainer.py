import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dyndis_learn import Learner, TrainConfig, Trainer, files
from dyndis_learn.checkpoint import CHECKPOINT_NAME, CheckpointError, read_checkpoint
from dyndis_learn.config import CONFIG_VERSION
from dyndis_learn.run_log import LOG_COLUMNS, LOG_NAME
from dyndis_learn.warmups import GraphWarmup, NoWarmup, SpectralWarmup
from tests.learn.fixtures import rewrite_checkpoint_header

DATA = Path(__file__).parent / "data"


def _parameters(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


@pytest.mark.slow
def test__short_training_lowers_the_loss(tiny_config):
    config = tiny_config.replace(steps=40, warmup={"steps": 40}, optim={"lr": 3e-3})
    history = Trainer(config).train(progress=False)
    first = np.mean([row["autoencoder_bce"] for row in history[:5]])
    last = np.mean([row["autoencoder_bce"] for row in history[-5:]])
    assert last < 0.7 * first


def test__training_reproduces_the_reference_checkpoint():
    # Written on 2026-12-01 (tests/learn/data/README.md). The graph warm-up's targets and angles are canonical
    # (alignment.canonical_planes), so the result is the same to rounding on any CPU's kernels: 1.2e-7 apart
    # with MKL_CBWR=AVX2 / COMPATIBLE / SSE4_2 and OPENBLAS_CORETYPE=Haswell on the machine that wrote it. (The
    # spectral warm-up is not held to this: its 2-step warm-up leaves planes an ill-conditioned fit.)
    stored = read_checkpoint(DATA / "checkpoint_graph_reference.safetensors")
    trainer = Trainer(TrainConfig.from_dict(stored.config).replace(device="cpu"))  # written on the CPU
    trainer.train(progress=False)
    state = trainer.model.state_dict()
    for name, value in stored.model_state.items():
        torch.testing.assert_close(state[name], value, rtol=0, atol=1e-5, msg=name)
    assert [row["step"] for row in trainer.history] == [row["step"] for row in stored.history]


def test__a_format_1_checkpoint_resumes_and_loads(tmp_path):
    trainer = Trainer.load(DATA / "checkpoint_v1_graph.safetensors", run_dir=tmp_path)
    assert trainer.step == 4 and trainer.config.warmup.kind == "graph"
    trainer.train(6, progress=False)
    assert trainer.step == 6
    stored = read_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert stored.config["version"] == CONFIG_VERSION and stored.step == 6
    assert stored.config["optim"]["adam_beta2"] == 0.999  # the value the run started with


def _assert_resume_is_bit_identical(config: TrainConfig, run_dir, stop: int) -> None:
    """Train straight through, and again stopped after ``stop`` steps and resumed from the run folder."""
    straight = Trainer(config)
    straight.train(progress=False)

    interrupted = Trainer(config, run_dir=run_dir)
    interrupted.train(stop, progress=False)
    resumed = Trainer.resume(run_dir)
    assert resumed.step == stop
    resumed.train(progress=False)

    expected, actual = _parameters(straight), _parameters(resumed)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    for column in ("loss", "consistency", "target"):
        assert [r[column] for r in straight.history] == [r[column] for r in resumed.history]


def test__resume_is_bit_identical(tiny_config, tmp_path):
    _assert_resume_is_bit_identical(tiny_config.replace(steps=6, logging={"checkpoint_every": 3}), tmp_path, 3)
    with open(tmp_path / LOG_NAME) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 7)) and list(rows[0]) == list(LOG_COLUMNS)


def test__resume_across_the_plane_alignment_is_bit_identical(tiny_config, tmp_path):
    config = tiny_config.replace(steps=4, warmup={"kind": "spectral"})
    # the alignment is the resumed run's first act
    _assert_resume_is_bit_identical(config, tmp_path, config.warmup.steps)


def test__resume_during_the_graph_warmup_is_bit_identical(tiny_config, tmp_path):
    # the resumed run explores the graph again, and must not set the angles again
    _assert_resume_is_bit_identical(tiny_config.replace(steps=5, warmup={"steps": 3}), tmp_path, 1)


def test__resume_without_a_warmup_is_bit_identical(tiny_config, tmp_path):
    _assert_resume_is_bit_identical(tiny_config.replace(steps=4, warmup={"kind": "none"}), tmp_path, 2)


def test__the_factory_builds_the_configured_warmup(tiny_config):
    for kind, cls in (("graph", GraphWarmup), ("spectral", SpectralWarmup), ("none", NoWarmup)):
        trainer = Trainer(tiny_config.replace(warmup={"kind": kind}))
        assert type(trainer.warmup) is cls
        trainer.close()


def test__without_a_warmup_every_term_acts_from_the_first_step(tiny_config):
    trainer = Trainer(tiny_config.replace(steps=2, warmup={"kind": "none", "steps": 50}))
    assert trainer.warmup.steps == 0 and trainer.schedules.dynamics_weight(0) > 0
    weights = trainer.loss_weights(0)
    assert weights.rollout > 0 and weights.consistency > 0 and weights.target == 0
    assert trainer.schedules.learning_rate("angles", 0) > 0  # the angles are learned
    history = trainer.train(progress=False)
    assert history[0]["rollout_bce"] > 0 and history[0]["consistency"] > 0


def test__warmup_batches_hold_many_short_episodes_and_later_ones_fewer_long_ones(tiny_config):
    config = tiny_config.replace(warmup={"kind": "spectral", "spectral": {"episodes_per_step": 5, "episode_steps": 3}})
    trainer = Trainer(config)
    warmup, later = trainer.batch(config.warmup.steps - 1), trainer.batch(config.warmup.steps)
    assert warmup.frames.shape[:2] == (5, 4) and warmup.actions.shape == (5, 3)
    assert later.frames.shape[:2] == (config.data.episodes_per_step, config.data.episode_steps + 1)
    # Asked for again (as a resumed run does), a batch is the same.
    assert torch.equal(trainer.batch(0).frames, Trainer(config).batch(0).frames)
    assert torch.equal(trainer.batch(5).from_rollout, Trainer(config).batch(5).from_rollout)
    trainer.close()


def test__graph_warmup_batches_are_explored_states_and_dynamics_batches_episodes(tiny_config):
    trainer = Trainer(tiny_config.replace(warmup={"graph": {"batch_size": 7}}))
    warmup = trainer.batch(0)  # explores first
    assert warmup.frames.shape[:2] == (7, 1) and warmup.actions.shape == (7, 0) and warmup.from_rollout is None
    later = trainer.batch(trainer.warmup.steps)
    assert later.frames.shape[1] == tiny_config.data.episode_steps + 1 and later.from_rollout is not None
    trainer.close()


def test__the_warmup_end_runs_once_on_the_first_step_after_it(tiny_config, monkeypatch):
    for kind in ("graph", "spectral"):
        trainer = Trainer(tiny_config.replace(warmup={"kind": kind}))
        calls = []
        original = trainer.warmup.end

        def spy(model, batch, optimizer, trainer=trainer, calls=calls, original=original):
            calls.append(trainer.step)
            assert torch.equal(batch.frames, trainer.batch(trainer.step).frames)
            original(model, batch, optimizer)

        monkeypatch.setattr(trainer.warmup, "end", spy)
        trainer.train(progress=False)
        assert calls == [tiny_config.warmup.steps], kind


def test__after_loading_every_parameter_trains(tiny_config, tmp_path):
    trainer = Trainer(tiny_config.replace(steps=3, optim={"angle_lr": 1e-2}))  # angles learned, not kept
    trainer.train(progress=False)
    trainer.save(tmp_path / "model.safetensors")
    loaded = Trainer.load(tmp_path / "model.safetensors")
    before = _parameters(loaded)
    assert all(p.requires_grad for p in loaded.model.parameters())
    optimised = {id(p) for group in loaded.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in loaded.model.parameters()}
    loaded.train(4, progress=False)
    after = _parameters(loaded)
    frozen = [name for name in before if torch.equal(before[name], after[name])]
    assert frozen == []


def test__adam_beta2_is_the_configs(tiny_config, tmp_path):
    assert {group["betas"] for group in Trainer(tiny_config).optimizer.param_groups} == {(0.9, 0.99)}
    trainer = Trainer(tiny_config.replace(steps=2, optim={"adam_beta2": 0.999}))
    assert {group["betas"] for group in trainer.optimizer.param_groups} == {(0.9, 0.999)}
    trainer.train(progress=False)
    trainer.save(tmp_path / "model.safetensors")
    loaded = Trainer.load(tmp_path / "model.safetensors")
    assert {group["betas"] for group in loaded.optimizer.param_groups} == {(0.9, 0.999)}


def test__save_load_round_trip_gives_equal_predictions(tiny_config, tmp_path):
    learner = Learner(tiny_config)
    learner.train(progress=False)
    path = learner.save(tmp_path / "run.safetensors")
    loaded = Learner.load(path)
    batch = learner.trainer.collector.collect(99)
    np.testing.assert_array_equal(loaded.encode(batch.observations), learner.encode(batch.observations))
    np.testing.assert_array_equal(
        loaded.predict(batch.observations[:, 0], batch.actions),
        learner.predict(batch.observations[:, 0], batch.actions),
    )
    assert loaded.config == learner.config and loaded.history == learner.history
    saved, restored = learner.trainer.optimizer.state_dict(), loaded.trainer.optimizer.state_dict()
    assert saved["param_groups"] == restored["param_groups"] and saved["state"].keys() == restored["state"].keys()
    for index, moments in saved["state"].items():
        for key, value in moments.items():
            assert torch.equal(value, restored["state"][index][key]), (index, key)


def test__checkpoint_written_every_k_steps(tiny_config, tmp_path):
    trainer = Trainer(tiny_config.replace(steps=5, logging={"checkpoint_every": 2}), run_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    seen = []
    trainer.train(
        progress=False,
        callback_every=1,
        callback=lambda t: seen.append(read_checkpoint(path).step if path.exists() else None),
    )
    assert seen == [None, 2, 2, 4, 4]
    assert read_checkpoint(path).step == 5  # and the end of training always saves


def test__bad_steps(tiny_config):
    with pytest.raises(ValueError, match=re.escape("`steps` must be a positive integer, got 0.")):
        Trainer(tiny_config).train(0, progress=False)


def test__config_type_is_checked():
    with pytest.raises(TypeError, match=re.escape("`config` must be a TrainConfig, got dict.")):
        Trainer({"steps": 3})


def test__both_parametrisations_train(tiny_config):
    for parametrisation in ("givens", "exp"):
        config = tiny_config.replace(steps=4, model={"parametrisation": parametrisation})
        history = Trainer(config).train(progress=False)
        assert np.isfinite(history[-1]["loss"])


# -- refusals on resume, limits --------------------------------------------------------------------------


@pytest.fixture
def run_dir(tiny_config, tmp_path):
    """A run folder trained 3 steps (of 6)."""
    trainer = Trainer(tiny_config.replace(steps=6), run_dir=tmp_path / "run")
    trainer.train(3, progress=False)
    trainer.close()
    return tmp_path / "run"


def test__a_total_below_the_stored_step_is_refused(run_dir):
    trainer = Trainer.resume(run_dir)
    with pytest.raises(ValueError, match=re.escape("already at step 3, beyond the requested total of 2 steps")):
        trainer.train(2, progress=False)
    assert trainer.step == 3
    trainer.train(3, progress=False)  # the total it is at: nothing to do
    assert trainer.step == 3


def test__without_steps_a_run_past_config_steps_trains_nothing(run_dir):
    trainer = Trainer.resume(run_dir)
    trainer.train(8, progress=False)
    trainer.train(progress=False)  # config.steps is 6
    assert trainer.step == 8 and read_checkpoint(run_dir / CHECKPOINT_NAME).step == 8


def test__resume_refuses_a_config_json_that_disagrees_with_the_checkpoint(run_dir):
    path = run_dir / "config.json"
    config = json.loads(path.read_text())
    config["env"]["kwargs"]["image_size"] = 32
    config["seed"] = 5
    path.write_text(json.dumps(config))
    message = (
        "config.json disagrees with the checkpoint's config (env.kwargs: config.json has {'image_size': 32}, "
        "the checkpoint {'image_size': 16}; seed: config.json has 5, the checkpoint 0)"
    )
    with pytest.raises(CheckpointError, match=re.escape(message)):
        Trainer.resume(run_dir)
    Trainer.load(run_dir / CHECKPOINT_NAME).close()  # without the run folder, nothing to compare with
    path.write_text("{")
    with pytest.raises(CheckpointError, match=re.escape("its config.json is not a valid config")):
        Trainer.resume(run_dir)


def test__a_checkpoint_of_another_environment_is_refused(run_dir):
    path = run_dir / CHECKPOINT_NAME
    rewrite_checkpoint_header(path, lambda state: state["config"]["env"]["kwargs"].update(image_size=32))
    with pytest.raises(CheckpointError, match=re.escape("now gives images of shape (32, 32, 3) and 4 actions")):
        Trainer.load(path)


def test__resume_removes_the_temporary_file_of_a_killed_save(run_dir):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    stale = run_dir / f".{CHECKPOINT_NAME}.{files._HOST}-{process.pid}-0123abcd.tmp"
    stale.write_bytes(b"half a checkpoint")
    Trainer.resume(run_dir).close()
    assert not stale.exists()


def test__threads_beyond_the_machine_are_refused_and_capped_on_loading(tiny_config, tmp_path, monkeypatch):
    saved = torch.get_num_threads()
    try:
        Trainer(tiny_config.replace(threads=3)).save(tmp_path / "c.safetensors")
        monkeypatch.setattr("dyndis_learn.limits.thread_limit", lambda: 2)
        with pytest.raises(ValueError, match=re.escape("threads=3 is more than this machine allows")):
            Trainer(tiny_config.replace(threads=3))
        with pytest.warns(UserWarning, match="running with 2 threads"):
            Trainer.load(tmp_path / "c.safetensors").close()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)
