import re

import pytest
import torch

from dyndis_learn import Learner, TrainConfig, Trainer, load_model
from dyndis_learn.config import ModelConfig
from dyndis_learn.methods import (
    METHODS,
    QUESSARD2020_CONFIG,
    Method,
    Quessard2020Method,
    RotationMethod,
    UnregularisedRotationMethod,
    make_method,
    register_method,
)
from dyndis_learn.objective import LossWeights, TrainBatch, terms
from dyndis_learn.regularizers import entanglement


def test__the_rotation_method_is_the_default(tiny_config):
    method = make_method(tiny_config.model)
    assert isinstance(method, RotationMethod) and method.name == "rotation"
    model = method.build_model((16, 16, 3), 4, tiny_config.model)
    groups = dict(method.parameter_groups(model))
    assert list(groups) == ["encoder", "decoder", "angles"]
    assert sum(len(p) for p in groups.values()) == len(list(model.parameters()))


def test__a_registered_method_plugs_into_trainer_checkpoint_and_loading(tiny_config, tmp_path):
    @register_method("test-autoencoder")
    class Autoencoder(Method):
        """A toy baseline: the rotation model's networks trained by autoencoding alone, angles frozen."""

        def parameter_groups(self, model):
            return [("encoder", list(model.encoder.parameters())), ("decoder", list(model.decoder.parameters()))]

        def terms(self, model, batch, weights, targets):
            return terms(model, batch, LossWeights(autoencoder=weights.autoencoder), None)

    try:
        config = tiny_config.replace(steps=4, model={"method": "test-autoencoder"}, warmup={"kind": "none"})
        learner = Learner(config, run_dir=tmp_path)
        angles = learner.model.rotations.angles.detach().clone()
        learner.train(progress=False)
        assert learner.history[-1]["rollout_bce"] == 0 and learner.history[-1]["target"] == 0
        assert torch.equal(learner.model.rotations.angles, angles)  # not optimised
        resumed = Trainer.resume(tmp_path)
        assert isinstance(resumed.method, Autoencoder)
        model = load_model(tmp_path / "checkpoint.safetensors")
        batch = learner.trainer.collector.collect(9)
        with torch.no_grad():
            expected = learner.model.eval().encode(torch.from_numpy(batch.observations))
            torch.testing.assert_close(model.encode(torch.from_numpy(batch.observations)), expected)
    finally:
        METHODS.unregister("test-autoencoder")


def test__a_name_is_registered_once():
    with pytest.raises(ValueError, match=re.escape("A method is already registered as 'rotation': RotationMethod.")):
        register_method("rotation")(type("Other", (Method,), {}))


def _own_loss_before_and_after(config):
    """The method's loss on one fixed batch (the weights of the last step) before and after training."""
    learner = Learner(config)
    trainer = learner.trainer
    batch, weights = trainer.batch(0), trainer.loss_weights(config.steps - 1)
    with torch.no_grad():
        before = trainer.method.terms(learner.model.eval(), batch, weights, None)
    learner.train(progress=False)
    with torch.no_grad():
        after = trainer.method.terms(learner.model.eval(), batch, weights, None)
    return learner, before, after


def test__the_registry_lists_the_built_in_methods():
    assert {"rotation", "rotation-unregularised", "quessard2020"} <= set(METHODS.names())
    assert isinstance(make_method(ModelConfig(method="rotation-unregularised")), UnregularisedRotationMethod)
    assert isinstance(make_method(ModelConfig(method="quessard2020")), Quessard2020Method)


def test__rotation_unregularised_trains_without_the_regulariser(tiny_config):
    config = tiny_config.replace(
        steps=12, model={"method": "rotation-unregularised"}, warmup={"kind": "none"},
        optim={"lr": 1e-2, "angle_lr": 1e-2, "dynamics_ramp_steps": 0},
        regularizer={"schedule": "constant", "weight": 10.0},
    )
    learner, before, after = _own_loss_before_and_after(config)
    assert after["loss"] < 0.5 * before["loss"]
    assert after["rollout_bce"] < before["rollout_bce"]
    # the regulariser is logged but has no weight: the loss is the rotation model's without it
    weights = learner.trainer.loss_weights(0)
    assert weights.regularizer == 10.0
    batch = learner.trainer.batch(0)
    with torch.no_grad():
        full = terms(learner.model, batch, weights, None)
        ablated = learner.trainer.method.terms(learner.model, batch, weights, None)
    assert full["regularizer"] > 0
    torch.testing.assert_close(ablated["loss"], full["loss"] - 10.0 * full["regularizer"])


def test__quessard2020_trains_on_its_own_loss(tiny_config):
    config = tiny_config.replace(
        steps=30, model={"method": "quessard2020"}, warmup={"kind": "none"},
        optim={"lr": 1e-2, "angle_lr": 1e-2, "dynamics_ramp_steps": 0},
        regularizer={"schedule": "constant", "weight": 1e-2},
    )
    _, before, after = _own_loss_before_and_after(config)
    assert after["loss"] < 0.5 * before["loss"]
    assert after["rollout_bce"] < 0.5 * before["rollout_bce"]


def _papers_loss(model, frames: torch.Tensor, actions: torch.Tensor, regularizer: float) -> torch.Tensor:
    """The paper's loss written out: every frame decoded from the rollout of enc(x_0), summed, / T, + w * reg."""
    latents = model.rollout(model.encode(frames[:, 0]), actions)  # (B, T + 1, n): z_0 = enc(x_0)
    bce = torch.nn.functional.binary_cross_entropy(model.decode(latents), frames.float() / 255, reduction="none")
    per_frame = bce.flatten(2).mean(-1)  # (B, T + 1)
    return per_frame.sum(1).mean() / actions.shape[1] + regularizer * entanglement(model.rotations.angles).mean()


def test__quessard2020_loss_is_the_papers(tiny_config):
    """Every frame t = 0 .. T decoded from the rollout of enc(x_0), summed, / T, plus w * regulariser."""
    method = Quessard2020Method()
    torch.manual_seed(0)
    model = method.build_model((16, 16, 3), 4, tiny_config.model).eval()
    frames = torch.randint(0, 256, (3, 5, 16, 16, 3), dtype=torch.uint8)
    actions = torch.randint(0, 4, (3, 4))
    batch = TrainBatch(frames, actions)  # no decoding choice: the method decodes every frame from the rollout
    weights = LossWeights(autoencoder=5.0, rollout=0.0, consistency=7.0, uniformity=3.0, regularizer=0.5)
    with torch.no_grad():
        got = method.terms(model, batch, weights, None)
        expected = _papers_loss(model, frames, actions, regularizer=0.5)
    torch.testing.assert_close(got["loss"], expected, rtol=1e-4, atol=1e-5)
    assert got["uniformity"] != 0  # logged, but not in the loss


def test__quessard2020_encodes_only_the_first_frames_with_the_same_gradients(tiny_config):
    """The paper's objective reads enc(x_0) alone: only those B frames go through the encoder."""
    method = Quessard2020Method()
    torch.manual_seed(0)
    model = method.build_model((16, 16, 3), 4, tiny_config.model)
    frames = torch.randint(0, 256, (3, 5, 16, 16, 3), dtype=torch.uint8)
    actions = torch.randint(0, 4, (3, 4))
    encoded: list[int] = []
    hook = model.encoder.register_forward_hook(lambda module, args, out: encoded.append(len(out)))
    method.terms(model, TrainBatch(frames, actions), LossWeights(regularizer=0.5), None)["loss"].backward()
    hook.remove()
    assert encoded == [3]
    got = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    _papers_loss(model, frames, actions, regularizer=0.5).backward()
    for grad, parameter in zip(got, model.parameters(), strict=True):
        torch.testing.assert_close(grad, parameter.grad, rtol=1e-4, atol=1e-6)


def test__quessard2020_preset_is_a_valid_config_on_the_ball_world():
    config = TrainConfig.from_dict(QUESSARD2020_CONFIG)
    assert config.model.method == "quessard2020" and config.warmup.kind == "none"
    assert config.model.encoder_norm == "none"  # the paper's networks are not normalised
    assert (config.model.latent_dim, config.data.episode_steps, config.data.episodes_per_step) == (4, 10, 8)
    assert config.optim.lr == config.optim.angle_lr == 1e-2 and config.optim.final_lr_fraction == 1.0
    assert (config.regularizer.schedule, config.regularizer.weight) == ("constant", 1e-2)
    small = config.replace(steps=2, data={"episodes_per_step": 2, "episode_steps": 3},
                           model={"channels": [8, 8], "hidden_dim": 32}, threads=1,
                           logging={"checkpoint_every": 0, "log_every": 1})
    learner = Learner(small)
    assert learner.model.image_shape == (84, 84, 1)
    history = learner.train(progress=False)
    assert len(history) == 2 and history[-1]["consistency"] >= 0
