"""``load_model``: a saved learner's world model for inference, without touching torch's process-wide state."""

import numpy as np
import torch

from dyndis_learn import Learner, load_model


def test__load_model_gives_the_learner_encodings_and_leaves_torch_state_alone(tiny_config, tmp_path):
    learner = Learner(tiny_config.replace(threads=1))
    learner.train(progress=False)
    path = learner.save(tmp_path / "run.safetensors")
    batch = learner.trainer.collector.collect(99)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the run's own setting is 1: loading must not restore it
    try:
        torch.manual_seed(7)
        rng_before = torch.get_rng_state()
        model = load_model(path)
        assert torch.get_num_threads() == 2
        assert torch.equal(torch.get_rng_state(), rng_before)
    finally:
        torch.set_num_threads(threads)
    assert not model.training
    with torch.no_grad():
        encodings = model.encode(torch.as_tensor(batch.observations)).numpy()
    np.testing.assert_array_equal(encodings, learner.encode(batch.observations))
