import csv
import re
import warnings

import numpy as np
import pytest
import torch

from dyndis_learn import Learner, TrainConfig, Trainer
from dyndis_learn.alignment import fit_rotations, plane_angles
from dyndis_learn.checkpoint import load_checkpoint
from dyndis_learn.regularizers import dominant_share
from dyndis_learn.rotations import plane_pairs
from dyndis_learn.trainer import CHECKPOINT_NAME, GRAPH_FIT_LIMIT, LOG_COLUMNS, LOG_NAME, _warn_if_off_the_map


def _parameters(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


@pytest.mark.slow
def test__short_training_lowers_the_loss(tiny_config):
    trainer = Trainer(tiny_config.replace(steps=40, warmup_steps=40, log_every=1, lr=3e-3))
    history = trainer.train(progress=False)
    first = np.mean([row["autoencoder_bce"] for row in history[:5]])
    last = np.mean([row["autoencoder_bce"] for row in history[-5:]])
    assert last < 0.7 * first


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
    _assert_resume_is_bit_identical(tiny_config.replace(steps=6, checkpoint_every=3), tmp_path, 3)
    with open(tmp_path / LOG_NAME) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 7)) and list(rows[0]) == list(LOG_COLUMNS)


def test__resume_across_the_plane_alignment_is_bit_identical(tiny_config, tmp_path):
    config = tiny_config.replace(steps=4, warmup="spectral", align_planes=True)
    # the alignment is the resumed run's first act
    _assert_resume_is_bit_identical(config, tmp_path, config.warmup_steps)


def test__warmup_batches_hold_many_short_episodes_and_later_ones_fewer_long_ones(tiny_config):
    config = tiny_config.replace(warmup="spectral", warmup_episodes_per_step=5, warmup_episode_steps=3)
    trainer = Trainer(config)
    warmup, later = trainer.batch(config.warmup_steps - 1), trainer.batch(config.warmup_steps)
    assert warmup.observations.shape[:2] == (5, 4) and warmup.actions.shape == (5, 3)
    assert later.observations.shape[:2] == (config.episodes_per_step, config.episode_steps + 1)
    # Asked for again (as a resumed run does), a warm-up batch is the same.
    np.testing.assert_array_equal(trainer.batch(0).observations, Trainer(config).batch(0).observations)
    trainer.close()


@pytest.mark.parametrize("align_planes", [True, False])
def test__plane_alignment_runs_once_at_the_end_of_the_warmup(tiny_config, monkeypatch, align_planes):
    trainer = Trainer(tiny_config.replace(warmup="spectral", align_planes=align_planes))
    calls = []
    original = trainer.align_planes

    def spy(batch):
        calls.append(trainer.step)
        np.testing.assert_array_equal(batch.observations, trainer.batch(trainer.step).observations)
        original(batch)

    monkeypatch.setattr(trainer, "align_planes", spy)
    trainer.train(progress=False)
    assert calls == ([tiny_config.warmup_steps] if align_planes else [])


def test__plane_alignment__keeps_the_images_and_starts_the_angles_in_the_new_planes(tiny_config):
    # Enough transitions per action that the fitted rotations are unique (a rank-deficient fit is not).
    trainer = Trainer(tiny_config.replace(warmup="spectral", episodes_per_step=8, episode_steps=8))
    trainer.train(tiny_config.warmup_steps, progress=False)
    batch = trainer.batch(trainer.step)
    frames, actions = torch.from_numpy(batch.observations), torch.from_numpy(batch.actions).reshape(-1)
    model, n = trainer.model, trainer.model.latent_dim
    with torch.no_grad():
        before = model.encode(frames)
        images = model.decode(before)
        trainer.align_planes(batch)
        after = model.encode(frames)
        assert torch.allclose(model.decode(after), images, atol=1e-6)
    # A turn of the basis: every inner product between encodings is kept, but the coordinates change.
    flat_before, flat_after = before.reshape(-1, n), after.reshape(-1, n)
    torch.testing.assert_close(flat_after @ flat_after.T, flat_before @ flat_before.T, atol=1e-5, rtol=0)
    assert not torch.allclose(flat_after, flat_before, atol=1e-3)
    # Each action turns only the planes (0, 1), (2, 3), ..., by the angles of its rotation fitted in the
    # new coordinates (right after the alignment; the next SGD steps move every angle again).
    angles = model.rotations.angles.detach()
    on_blocks = torch.tensor([i % 2 == 0 and j == i + 1 for i, j in plane_pairs(n).tolist()])
    assert torch.all(angles[:, ~on_blocks] == 0)
    fitted = fit_rotations(after[:, :-1].reshape(-1, n), after[:, 1:].reshape(-1, n), actions, model.n_actions)
    # Loose: two warm-up steps leave the encodings nearly collinear, so the float32 fit is ill-conditioned
    # (about 2e-3 apart); angles fitted in the old basis, or turned by basis instead of basis^T, are ~1 off.
    torch.testing.assert_close(angles, plane_angles(fitted), atol=2e-2, rtol=0)
    assert trainer.optimizer.state == {}


def test__graph_warmup__starts_each_action_as_a_rotation_by_2pi_over_n_in_its_own_plane(tiny_config):
    trainer = Trainer(tiny_config.replace(steps=3, warmup_steps=2))
    trainer.train(1, progress=False)
    angles = trainer.model.rotations.angles.detach()
    assert torch.all(dominant_share(angles) > 1 - 1e-6)
    dominant = angles.abs().argmax(dim=1)
    torch.testing.assert_close(angles.abs().amax(dim=1), torch.full((4,), 2 * np.pi / 5), atol=1e-4, rtol=0)
    # +1 and -1 of one factor share a plane and turn opposite ways; the two factors' planes are disjoint
    assert dominant[0] == dominant[1] and dominant[2] == dominant[3] and dominant[0] != dominant[2]
    assert torch.sign(angles[0, dominant[0]]) == -torch.sign(angles[1, dominant[1]])
    pairs = plane_pairs(4)[dominant[[0, 2]]].tolist()
    assert not set(pairs[0]) & set(pairs[1])
    # The encoder is regressed onto the targets, in the warm-up and after it on the episodes' frames;
    # the angles (angle_lr None: 0 under the graph warm-up) stay at the graph's fit through the dynamics phase.
    trainer.train(progress=False)
    assert trainer.step > trainer.config.warmup_steps
    assert torch.equal(trainer.model.rotations.angles.detach(), angles)
    assert all(row["target"] > 0 for row in trainer.history)
    batch = trainer.batch(trainer.step)
    graph, _ = trainer.graph_embedding()
    states = graph.state_indices(batch.observations)
    assert states.shape == batch.observations.shape[:2] and np.all(states >= 0)
    assert np.array_equal(graph.images[states[0, 0]], batch.observations[0, 0])
    assert np.all(graph.state_indices(np.zeros((3, 16, 16, 3), np.uint8)) == -1)  # an image never seen


def test__resume_during_the_graph_warmup_is_bit_identical(tiny_config, tmp_path):
    # the resumed run explores the graph again, and must not set the angles again
    _assert_resume_is_bit_identical(tiny_config.replace(steps=5, warmup_steps=3), tmp_path, 1)


def test__after_loading_every_parameter_trains(tiny_config, tmp_path):
    trainer = Trainer(tiny_config.replace(steps=3, angle_lr=1e-2))  # angles learned, not kept at the graph's fit
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
    trainer = Trainer(tiny_config.replace(steps=5, checkpoint_every=2), run_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    seen = []
    trainer.train(
        progress=False,
        callback_every=1,
        callback=lambda t: seen.append(load_checkpoint(path)[1]["step"] if path.exists() else None),
    )
    assert seen == [None, 2, 2, 4, 4]
    assert load_checkpoint(path)[1]["step"] == 5  # and the end of training always saves


def test__bad_steps(tiny_config):
    with pytest.raises(ValueError, match=re.escape("`steps` must be a positive integer, got 0.")):
        Trainer(tiny_config).train(0, progress=False)


def test__config_type_is_checked():
    with pytest.raises(TypeError, match=re.escape("`config` must be a TrainConfig, got dict.")):
        Trainer({"steps": 3})


def test__both_parametrisations_train(tiny_config):
    for parametrisation in ("givens", "exp"):
        config = TrainConfig.from_dict(
            {
                **tiny_config.to_dict(),
                "steps": 4,
                "model": {**tiny_config.to_dict()["model"], "parametrisation": parametrisation},
            }
        )
        history = Trainer(config).train(progress=False)
        assert np.isfinite(history[-1]["loss"])


def test__a_graph_warmup_that_ends_off_the_map_warns(tiny_config):
    # Two warm-up steps leave the tiny encoder far from the map: the criteria would not show it.
    trainer = Trainer(tiny_config.replace(steps=3, warmup_steps=2))
    with pytest.warns(UserWarning, match="ended the graph warm-up at a mean squared distance of"):
        trainer.train(progress=False)
    assert trainer.history[1]["target"] > GRAPH_FIT_LIMIT


def test__a_graph_warmup_that_ends_on_the_map_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_off_the_map(0.008)  # Shapes3D's distance at the end of its warm-up
    with pytest.warns(UserWarning, match=re.escape("model={'encoder_norm': 'instance'}")):
        _warn_if_off_the_map(0.9)  # the plain encoder on GridWorld with background colours
