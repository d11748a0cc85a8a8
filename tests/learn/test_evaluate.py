import math

import pytest
import torch

from dyndis_learn import EvalConfig, Learner
from dyndis_learn.evaluate import FactorInfo, _faithful_angle, structure
from dyndis_learn.model import WorldModel

GRID = [FactorInfo("north_south", 5), FactorInfo("east_west", 5)]


def _model_with_angles(planes_and_angles):
    model = WorldModel((16, 16, 3), n_actions=4, latent_dim=4, channels=(8, 8), hidden_dim=16)
    with torch.no_grad():
        model.rotations.angles.zero_()
        for action, (plane, angle) in enumerate(planes_and_angles):
            model.rotations.angles[action, plane] = angle
    return model


def _states():
    return torch.nn.functional.normalize(torch.randn(10, 4, generator=torch.Generator().manual_seed(0)), dim=-1)


@pytest.mark.parametrize(
    ("angle", "cycle", "faithful"),
    [
        (2 * math.pi / 5, 5, True),
        (-2 * math.pi / 5, 5, True),
        (4 * math.pi / 5, 5, True),
        (math.pi / 5, 5, False),
        (2 * math.pi / 5 * 1.02, 5, False),
        (math.pi, 4, False),
        (2 * math.pi / 15 * 7, 15, True),
    ],
)
def test__faithful_angle(angle, cycle, faithful):
    assert _faithful_angle(angle, cycle, 0.01)[3] is faithful


def test__structure__perfect_model():
    unit = 2 * math.pi / 5
    model = _model_with_angles([(0, unit), (0, -unit), (5, 2 * unit), (5, -2 * unit)])  # planes (0,1) and (2,3)
    result = structure(model, GRID, _states(), EvalConfig())
    assert result["disjoint_planes"] is True
    for entry in result["actions"]:
        assert entry["plane_share"] == 1.0 and entry["faithful"]
        assert entry["cycle_closure_max"] < 1e-5 and entry["inverse_error"] < 1e-5
    assert [a["nearest_k"] for a in result["actions"]] == [1, -1, 2, -2]
    assert [a["factor"] for a in result["actions"]] == ["north_south"] * 2 + ["east_west"] * 2
    assert result["factors"][1]["coordinates"] == [2, 3]


def test__structure__half_angle_and_shared_plane_are_caught():
    half = math.pi / 5  # five steps flip a sign: not a faithful 5-cycle
    model = _model_with_angles([(0, half), (0, -half), (1, 2 * half), (1, -2 * half)])  # planes (0,1), (0,2)
    result = structure(model, GRID, _states(), EvalConfig())
    assert result["disjoint_planes"] is False
    assert [a["faithful"] for a in result["actions"]] == [False, False, True, True]
    assert result["actions"][0]["cycle_closure_mean"] > 0.1


def test__evaluate__keys_and_shapes(tiny_config):
    learner = Learner(tiny_config)
    evaluation = learner.evaluate(EvalConfig(episodes=3, horizon=10))
    assert evaluation["rollout_bce"]["k"] == list(range(11))
    assert len(evaluation["rollout_bce"]["ci95_low"]) == 11 and evaluation["rollout_bce"]["episodes"] == 3
    low, mean, high = (evaluation["rollout_bce"][k][4] for k in ("ci95_low", "mean", "ci95_high"))
    assert low <= mean <= high
    assert set(evaluation["criteria"]) >= {
        "single_plane",
        "faithful_angles",
        "disjoint_planes",
        "rollout_stable",
        "all",
    }
    assert evaluation["criteria"]["all"] is False  # untrained
    assert len(evaluation["actions"]) == 4
