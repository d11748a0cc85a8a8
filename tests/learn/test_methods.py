import re

import pytest
import torch

from dyndis_learn import Learner, Trainer, load_model
from dyndis_learn.methods import METHODS, Method, RotationMethod, make_method, register_method
from dyndis_learn.objective import LossWeights, terms


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
