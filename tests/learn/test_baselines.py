"""The baselines (direct, forward-vae, lsbd-vae): they train, checkpoint, load, evaluate and report."""

import dataclasses
import json
import math
import re

import numpy as np
import pytest
import torch

from dyndis_learn import Learner, Trainer, load_model
from dyndis_learn.baselines import (
    LSBDVAE,
    DirectMethod,
    DirectModel,
    ForwardVAE,
    ForwardVAEMethod,
    LSBDVAEMethod,
    PredictiveModel,
)
from dyndis_learn.baselines.base import all_terms, imagined_frames
from dyndis_learn.baselines.forward_vae import gaussian_kl
from dyndis_learn.baselines.lsbd_vae import circle_kl
from dyndis_learn.config import ModelConfig
from dyndis_learn.evaluate import collect_eval_episodes, rollout_bce
from dyndis_learn.methods import METHODS, make_method
from dyndis_learn.objective import TERMS
from dyndis_learn.results import STRUCTURE_CRITERIA, Criteria, Evaluation

BASELINES = {"direct": DirectMethod, "forward-vae": ForwardVAEMethod, "lsbd-vae": LSBDVAEMethod}


def _config(tiny_config, method, **changes):
    return tiny_config.replace(model={"method": method}, warmup={"kind": "none"}, **changes)


def test__the_baselines_are_registered_methods():
    for name, cls in BASELINES.items():
        assert name in METHODS.names()
        assert isinstance(make_method(ModelConfig(method=name)), cls)


@pytest.mark.parametrize("method", list(BASELINES))
def test__a_baseline_refuses_a_warm_up(tiny_config, method):
    config = tiny_config.replace(model={"method": method})  # TINY's graph warm-up
    message = f"WarmupConfig.kind must be 'none' for the method {method!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        Trainer(config)


@pytest.mark.parametrize("method", list(BASELINES))
def test__a_baseline_lowers_its_own_loss(tiny_config, method):
    config = _config(tiny_config, method, steps=40, optim={"lr": 5e-3, "dynamics_ramp_steps": 0})
    learner = Learner(config)
    trainer = learner.trainer
    batch, weights = trainer.batch(0), trainer.loss_weights(config.steps - 1)

    def loss() -> float:
        torch.manual_seed(123)  # the same posterior noise before and after
        with torch.no_grad():
            return float(trainer.method.terms(learner.model.eval(), batch, weights, None)["loss"])

    before = loss()
    learner.train(progress=False)
    assert loss() < 0.9 * before
    row = learner.history[-1]
    assert math.isnan(row["min_plane_share"])  # no rotation planes
    assert row["regularizer"] == 0 and row["target"] == 0


def test__the_terms_carry_every_log_column():
    loss = torch.tensor(2.0)
    got = all_terms(loss, rollout_bce=torch.tensor(1.0))
    assert list(got) == [*TERMS, "loss"] and got["rollout_bce"] == 1 and got["consistency"] == 0
    with pytest.raises(ValueError, match=re.escape("Unknown loss term(s) ['kl']")):
        all_terms(loss, kl=torch.tensor(1.0))


def test__the_direct_rollout_feeds_its_own_images_back():
    torch.manual_seed(0)
    model = DirectModel((16, 16, 3), 4, 4, channels=(8, 8), hidden_dim=32).eval()
    first = torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8)
    actions = torch.tensor([[0, 3, 1], [2, 2, 1]])
    with torch.no_grad():
        imagined = list(model.imagine_logits(first, actions))
        one = model.next_logits(model.encode(first), actions[:, 0])
        two = model.next_logits(model.encode(torch.sigmoid(one)), actions[:, 1])
    assert len(imagined) == 3 and model.first_step == 1
    torch.testing.assert_close(imagined[0], one)
    torch.testing.assert_close(imagined[1], two)
    with pytest.raises(ValueError, match=re.escape("`steps` must lie in [1, 3], got [0, 2]")):
        imagined_frames(model, first, actions, [0, 2])


def test__the_forward_vae_steps_with_its_linear_maps():
    torch.manual_seed(0)
    model = ForwardVAE((16, 16, 3), 4, 3, channels=(8, 8), hidden_dim=32)
    with torch.no_grad():
        model.action_maps[2] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    z = torch.tensor([[1.0, 2.0, 3.0]])
    torch.testing.assert_close(model.step(z, torch.tensor([2])), torch.tensor([[-2.0, 1.0, 6.0]]))
    torch.testing.assert_close(model.step(z, torch.tensor([0])), z)  # the maps start at the identity
    # KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1 - log s^2) / 2 per dimension
    kl = gaussian_kl(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]]))
    torch.testing.assert_close(kl, torch.tensor([0.5 + 0.5 * (4.0 - 1.0 - math.log(4.0))]))


def test__lsbd_vae_turns_each_factors_circle_by_its_known_angle(tiny_config):
    trainer = Trainer(_config(tiny_config, "lsbd-vae", steps=1))
    try:
        model = trainer.model
        effects = trainer.collector.env.action_effects
        assert isinstance(model, LSBDVAE) and model.circles == 2
        for a, effect in enumerate(effects):  # GridWorld 5 x 5: factor k's actions turn circle k by +-2 pi / 5
            expected = torch.zeros(2)
            expected[effect.factor_index] = effect.direction * 2 * math.pi / 5
            torch.testing.assert_close(model.action_angles[a], expected)
        z = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
        angle = 2 * math.pi / 5
        stepped = model.step(z, torch.tensor([0]))
        torch.testing.assert_close(stepped, torch.tensor([[math.cos(angle), math.sin(angle), 0.0, 1.0]]))
    finally:
        trainer.close()
    small_t = math.log(2 * math.pi) - 0.5 * math.log(2 * math.pi * math.e)  # log(2 pi) - entropy of N(0, 1)
    assert float(circle_kl(torch.tensor(1.0))) == pytest.approx(small_t)
    with pytest.raises(ValueError, match=re.escape("ModelConfig.latent_dim must be 2 x the number of factors")):
        Trainer(tiny_config.replace(model={"method": "lsbd-vae", "latent_dim": 6}, warmup={"kind": "none"}))


@pytest.mark.parametrize("method", list(BASELINES))
def test__a_baseline_round_trips_through_its_checkpoint(tiny_config, tmp_path, method):
    learner = Learner(_config(tiny_config, method, steps=3), run_dir=tmp_path)
    learner.train(progress=False)
    batch = learner.trainer.collector.collect(7)
    first = torch.from_numpy(batch.observations[:, 0])
    actions = torch.from_numpy(batch.actions)
    model = load_model(tmp_path / "checkpoint.safetensors")
    assert isinstance(model, PredictiveModel) and type(model) is type(learner.model)
    resumed = Trainer.resume(tmp_path)
    try:
        with torch.no_grad():
            for other in (model, resumed.model.eval()):
                torch.testing.assert_close(other.encode(first), learner.model.eval().encode(first))
                steps = list(range(model.first_step, actions.shape[1] + 1))
                np.testing.assert_array_equal(
                    imagined_frames(other, first, actions, steps), imagined_frames(learner.model, first, actions, steps)
                )
        if method == "lsbd-vae":
            torch.testing.assert_close(model.action_angles, learner.model.action_angles)
        if method != "direct":  # a latent model also serves Learner.predict: its imagined frames from k = 0
            predicted = learner.predict(batch.observations[:, 0], batch.actions)
            steps = list(range(actions.shape[1] + 1))
            np.testing.assert_array_equal(predicted, imagined_frames(learner.model, first, actions, steps))
        resumed.train(5, progress=False)
        assert resumed.step == 5
    finally:
        resumed.close()


@pytest.mark.parametrize("method", list(BASELINES))
def test__a_baseline_is_evaluated_without_the_structure_criteria(tiny_config, method):
    config = _config(tiny_config, method, steps=3)
    learner = Learner(config)
    learner.train(progress=False)
    evaluation = learner.evaluate(progress=False)
    first = 1 if method == "direct" else 0
    horizon = config.evaluation.horizon
    assert evaluation.rollout_bce.k == tuple(range(first, horizon + 1))
    assert all(0 < m < 10 for m in evaluation.rollout_bce.mean)
    assert evaluation.actions == () and evaluation.factors is None and evaluation.disjoint_planes is None
    criteria = evaluation.criteria
    assert criteria.not_applicable == STRUCTURE_CRITERIA
    assert all(getattr(criteria, name) is None for name in STRUCTURE_CRITERIA) and criteria.all is False
    assert criteria.dynamics_trained is True and criteria.encoder_fidelity is not None
    fid = evaluation.fidelity
    assert len(fid.probe_r2) == 2 and fid.imagined_rate is not None
    assert (fid.reconstruction_rate is None) == (method == "direct")
    data = json.loads(json.dumps(evaluation.to_dict()))
    assert data["criteria"]["not_applicable"] == list(STRUCTURE_CRITERIA)
    untrained = dataclasses.replace(evaluation, training=None)  # the config's tuples come back as lists
    assert dataclasses.replace(Evaluation.from_dict(data), training=None) == untrained


def test__the_rollout_bce_of_a_baseline_is_its_own_prediction(tiny_config):
    learner = Learner(_config(tiny_config, "forward-vae", steps=2))
    episodes = collect_eval_episodes(tiny_config.env.id, tiny_config.env.kwargs, tiny_config.evaluation)
    model = learner.model.eval()
    ks, bce = rollout_bce(model, episodes.batch, ks=[0, 3, 3])
    frames = torch.from_numpy(episodes.batch.observations)
    with torch.no_grad():
        latents = model.rollout(model.encode(frames[:, 0]), torch.from_numpy(episodes.batch.actions[:, :3]))
        expected = torch.nn.functional.binary_cross_entropy(model.decode(latents[:, 3]), frames[:, 3].float() / 255)
    assert list(ks) == [0, 3, 3]
    np.testing.assert_allclose(bce[:, 1].mean(), float(expected), rtol=1e-4)
    np.testing.assert_array_equal(bce[:, 1], bce[:, 2])
    direct = Learner(_config(tiny_config, "direct", steps=1)).model
    with pytest.raises(ValueError, match=re.escape("`ks` must be integers in [1, 12], got [0]")):
        rollout_bce(direct, episodes.batch, ks=[0])


def test__criteria_name_only_known_checks_as_not_applicable():
    values = {name: None for name in ("single_plane", "faithful_angles", "disjoint_planes")}
    others = {"rollout_stable": True, "encoder_fidelity": True, "decoder_fidelity": True, "dynamics_trained": True}
    thresholds = {"share_threshold": 0.99, "angle_tolerance": 0.01, "bce_ratio_limit": 1.2}
    criteria = Criteria(**values, **others, **thresholds, not_applicable=STRUCTURE_CRITERIA)
    assert criteria.all is False
    assert Criteria.from_dict(criteria.to_dict()) == criteria
    with pytest.raises(ValueError, match=re.escape("Criteria.not_applicable: unknown check(s) ['planes']")):
        Criteria(**values, **others, **thresholds, not_applicable=("planes",))
    with pytest.raises(ValueError, match=re.escape("the checks ['rollout_stable'] are named not applicable")):
        Criteria(**values, **others, **thresholds, not_applicable=("rollout_stable",))


def test__a_baseline_report_says_the_structure_does_not_apply(tiny_config, tmp_path):
    learner = Learner(_config(tiny_config, "direct", steps=2), run_dir=tmp_path)
    learner.train(progress=False)
    report = json.loads(learner.report(progress=False).read_text())
    assert "angles.png" not in report["files"] and not (tmp_path / "angles.png").exists()
    assert (tmp_path / "rollout.gif").exists() and report["metrics"]["d_lsbd"]["value"] >= 0
    assert report["fidelity"]["reconstruction_rate"] is None
    markdown = (tmp_path / "report.md").read_text()
    assert "| single_plane | n/a (no rotations) |" in markdown and "| all | False |" in markdown
    assert "The model has no rotations" in markdown and "angles.png" not in markdown
    assert dataclasses.replace(learner.evaluate(progress=False), training=None).criteria.all is False
