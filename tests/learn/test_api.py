"""``load_model``: a saved learner's world model for inference, without touching torch's process-wide state."""

import json

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


def test__a_run_stopped_in_the_warm_up_is_not_trained_and_fails_all(tiny_config, tmp_path):
    learner = Learner(tiny_config.replace(threads=1))
    learner.train(2, progress=False)  # TINY's warm-up takes 2 steps, its dynamics ramp 2 more
    evaluation = learner.evaluate()
    assert learner.history[-1]["dynamics_weight"] == 0.0
    assert evaluation.criteria.dynamics_trained is False and evaluation.criteria.all is False
    assert evaluation.dynamics_weight == 0.0 and evaluation.fidelity is not None
    learner.train(progress=False)  # to TINY's 6 steps: the ramp is over
    path = learner.report(tmp_path)
    report = json.loads(path.read_text())
    assert report["criteria"]["dynamics_trained"] is True and report["dynamics_weight"] == 1.0
    assert report["criteria"]["encoder_fidelity"] is False and report["criteria"]["all"] is False  # a few steps
    assert "- last logged dynamics weight: 1.000" in (tmp_path / "report.md").read_text()


def test__report_and_evaluate_print_a_line_per_phase_only_when_asked(tiny_config, tmp_path, capsys):
    learner = Learner(tiny_config.replace(threads=1))
    learner.train(progress=False)
    learner.evaluate()
    path = learner.report(tmp_path / "quiet")
    assert capsys.readouterr().err == ""  # not a terminal: quiet by default
    report = json.loads(path.read_text())
    assert report["provenance"]["seed"] == tiny_config.seed
    assert report["provenance"]["evaluation_seed"] == tiny_config.evaluation.seed
    assert report["metrics"]["states"] == 25 and report["metrics"]["factors"] == ["north_south", "east_west"]
    learner.evaluate(progress=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("evaluate: [1/2] collecting 2 evaluation episodes of 12 steps")
    assert err[-1].startswith("evaluate: evaluated in ")
    learner.report(tmp_path / "loud", progress=True)
    err = capsys.readouterr().err.splitlines()
    starts = [line for line in err if line.endswith(" ...")]
    assert [line.split("]")[0] for line in starts] == [f"report: [{i}/5" for i in range(1, 6)]
    assert err[-1].startswith(f"report: wrote {tmp_path / 'loud'} in ")
