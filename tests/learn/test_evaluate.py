import dataclasses
import json
import math
import re

import gymnasium as gym
import numpy as np
import pytest
import torch

import dyndis_envs
from dyndis_learn import EvalConfig
from dyndis_learn.baselines.base import action_effects
from dyndis_learn.evaluate import (
    EvalEpisodes,
    _faithful_angle,
    check_evaluation_memory,
    collect_eval_episodes,
    evaluate_model,
    evaluation_memory,
    rollout_bce,
    structure,
)
from dyndis_learn.fidelity import (
    IMAGINED_ROLLOUTS,
    _nearest_own,
    _squared_distances_to_each,
    dynamics_trained,
    imagined_rollouts,
    judged_imagined_steps,
)
from dyndis_learn.model import WorldModel
from dyndis_learn.results import (
    CRITERIA,
    ActionStructure,
    Criteria,
    Evaluation,
    FactorStructure,
    Fidelity,
    RolloutError,
    TrainingSummary,
    format_summary,
)
from tests.learn.fixtures import TINY, TINY_ENV_KWARGS

#: GridWorld 5 x 5: actions 0/1 move north_south, 2/3 east_west.
GRID = gym.make("DynDis/GridWorld-v0").unwrapped.action_effects
#: Only east_west (7 values) and colour (3 values) move: the first active factor is not the first factor.
SHIFTED_KWARGS = {"image_size": 16, "grid_shape": [5, 7], "factors": {"north_south": [0], "colour": 3}}
EVAL = EvalConfig(episodes=3, horizon=10)


def _model_with_angles(planes_and_angles):
    model = WorldModel((16, 16, 3), n_actions=4, latent_dim=4, channels=(8, 8), hidden_dim=16)
    with torch.no_grad():
        model.rotations.angles.zero_()
        for action, (plane, angle) in enumerate(planes_and_angles):
            model.rotations.angles[action, plane] = angle
    return model


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    model = TINY["model"]
    return WorldModel(
        (16, 16, 3),
        4,
        latent_dim=model["latent_dim"],
        channels=tuple(model["channels"]),
        hidden_dim=model["hidden_dim"],
    )


def _states():
    return torch.nn.functional.normalize(torch.randn(10, 4, generator=torch.Generator().manual_seed(0)), dim=-1)


def _criteria(**checks):
    values = dict.fromkeys(CRITERIA, True)
    return Criteria(**{**values, **checks}, share_threshold=0.99, angle_tolerance=0.01, bce_ratio_limit=1.2)


@pytest.fixture(scope="module")
def tiny_episodes():
    return collect_eval_episodes("DynDis/GridWorld-v0", TINY_ENV_KWARGS, EVAL)


@pytest.fixture(scope="module")
def tiny_evaluation(tiny_episodes):
    return evaluate_model(_tiny_model(), "DynDis/GridWorld-v0", TINY_ENV_KWARGS, EVAL, episodes=tiny_episodes)


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
    assert result.disjoint_planes is True
    for entry in result.actions:
        assert entry.plane_share == 1.0 and entry.faithful
        assert entry.cycle_closure_max < 1e-5 and entry.inverse_error < 1e-5
    assert [a.nearest_k for a in result.actions] == [1, -1, 2, -2]
    assert [a.factor for a in result.actions] == ["north_south"] * 2 + ["east_west"] * 2
    assert [a.direction for a in result.actions] == [1, -1, 1, -1]
    assert result.factors == (
        FactorStructure("north_south", 5, (0, 1), (0, 1)),
        FactorStructure("east_west", 5, (2, 3), (2, 3)),
    )


def test__structure__half_angle_and_shared_plane_are_caught():
    half = math.pi / 5  # five steps flip a sign: not a faithful 5-cycle
    model = _model_with_angles([(0, half), (0, -half), (1, 2 * half), (1, -2 * half)])  # planes (0,1), (0,2)
    result = structure(model, GRID, _states(), EvalConfig())
    assert result.disjoint_planes is False
    assert [a.faithful for a in result.actions] == [False, False, True, True]
    assert result.actions[0].cycle_closure_mean > 0.1


def test__structure__inverse_comes_from_the_effects_not_the_action_order():
    # Actions 0 and 2 undo each other (as do 1 and 3): the pairing is read from ActionEffect.inverse.
    unit = 2 * math.pi / 5
    effects = (
        dyndis_envs.ActionEffect("a", 0, 1, 5, 2),
        dyndis_envs.ActionEffect("b", 1, 1, 5, 3),
        dyndis_envs.ActionEffect("a", 0, -1, 5, 0),
        dyndis_envs.ActionEffect("b", 1, -1, 5, 1),
    )
    model = _model_with_angles([(0, unit), (5, unit), (0, -unit), (5, -unit)])
    result = structure(model, effects, _states(), EvalConfig())
    assert all(a.inverse_error < 1e-5 for a in result.actions)
    assert [f.actions for f in result.factors] == [(0, 2), (1, 3)]
    assert result.disjoint_planes is True


def test__structure__without_effects_leaves_the_factor_figures_out():
    result = structure(_model_with_angles([(0, 1.0)] * 4), None, _states(), EvalConfig())
    assert result.factors is None and result.disjoint_planes is None
    assert all(a.factor is None and a.faithful is None for a in result.actions)
    assert set(result.actions[0].to_dict()) == {"action", "dominant_plane", "plane_share", "angle", "angles"}


def test__structure__effects_must_match_the_actions():
    with pytest.raises(
        ValueError, match=re.escape("`effects` must describe the model's 4 actions, got 2 action effects.")
    ):
        structure(_model_with_angles([(0, 1.0)] * 4), GRID[:2], _states(), EvalConfig())


def test__action_effects_of_envs_without_them_are_none():
    env = gym.make_vec("CartPole-v1", num_envs=2)
    try:
        assert action_effects(env) is None
    finally:
        env.close()


def test__evaluate__names_factors_from_the_action_effects():
    episodes = collect_eval_episodes("DynDis/GridWorld-v0", SHIFTED_KWARGS, EVAL)
    assert episodes.action_effects == gym.make("DynDis/GridWorld-v0", **SHIFTED_KWARGS).unwrapped.action_effects
    evaluation = evaluate_model(_tiny_model(), "DynDis/GridWorld-v0", SHIFTED_KWARGS, EVAL, episodes=episodes)
    assert [(f.name, f.cycle_length, f.actions) for f in evaluation.factors] == [
        ("east_west", 7, (0, 1)),
        ("colour", 3, (2, 3)),
    ]
    assert [(a.factor, a.direction, a.cycle_length) for a in evaluation.actions] == [
        ("east_west", 1, 7),
        ("east_west", -1, 7),
        ("colour", 1, 3),
        ("colour", -1, 3),
    ]


def test__evaluate__shapes_and_untrained_criteria(tiny_evaluation):
    rollout = tiny_evaluation.rollout_bce
    assert rollout.k == tuple(range(11)) and rollout.episodes == 3
    assert len(rollout.mean) == len(rollout.ci95_low) == len(rollout.ci95_high) == 11
    assert rollout.ci95_low[4] <= rollout.mean[4] <= rollout.ci95_high[4]
    assert tiny_evaluation.rollout_bce_ratio == pytest.approx(rollout.mean_at(10) / rollout.mean_at(1))
    assert tiny_evaluation.criteria.all is False  # untrained
    assert len(tiny_evaluation.actions) == 4 and tiny_evaluation.horizon == 10
    assert tiny_evaluation.training is None


def test__evaluate__to_dict_has_the_report_keys_and_round_trips(tiny_evaluation):
    data = tiny_evaluation.to_dict()
    assert list(data) == [
        "env_id",
        "env_kwargs",
        "latent_dim",
        "n_actions",
        "rollout_bce",
        "rollout_bce_ratio",
        "horizon",
        "actions",
        "disjoint_planes",
        "factors",
        "mean_image_bce",
        "frame_entropy",
        "mean_image_ratio",
        "fidelity",
        "dynamics_weight",
        "criteria",
    ]
    assert list(data["fidelity"]) == [
        "states",
        "grid",
        "candidates",
        "factors",
        "probe_r2",
        "reconstruction_rate",
        "imagined_steps",
        "imagined_rate",
        "imagined_rate_last",
        "reconstruction_confusion",
        "seen_fraction",
        "seen",
        "unseen",
        "synthesis_modes",
        "encoder_probe_r2",
        "imagined_rollouts",
        "probe_states",
    ]
    assert list(data["rollout_bce"]) == ["k", "mean", "ci95_low", "ci95_high", "episodes"]
    assert list(data["actions"][0]) == [
        "action",
        "dominant_plane",
        "plane_share",
        "angle",
        "angles",
        "factor",
        "direction",
        "cycle_length",
        "angle_over_unit",
        "nearest_k",
        "angle_relative_error",
        "faithful",
        "cycle_closure_mean",
        "cycle_closure_max",
        "inverse_error",
    ]
    assert list(data["factors"][0]) == ["name", "cycle_length", "actions", "coordinates"]
    assert data["factors"][0]["actions"] == [0, 1] and data["factors"][0]["name"] == "north_south"
    assert list(data["criteria"]) == [
        *CRITERIA,
        "share_threshold",
        "angle_tolerance",
        "bce_ratio_limit",
        "mean_image_margin",
        "probe_threshold",
        "decoder_threshold",
        "not_applicable",
        "all",
    ]
    assert isinstance(data["actions"][0]["dominant_plane"], list)
    text = json.dumps(data)
    assert Evaluation.from_dict(json.loads(text)) == tiny_evaluation

    trained = dataclasses.replace(tiny_evaluation, training=TrainingSummary(6, 1.5, {"seed": 0}))
    data = trained.to_dict()
    assert list(data)[-1] == "training" and data["training"] == {
        "steps": 6,
        "train_seconds": 1.5,
        "config": {"seed": 0},
    }
    report_json = {**json.loads(json.dumps(data)), "rollout_bce_at": {"1": 0.5}, "files": ["report.md"]}
    assert Evaluation.from_dict(report_json) == trained  # report-only keys are ignored


def test__criteria_names_are_the_checks():
    assert CRITERIA == (
        "single_plane",
        "faithful_angles",
        "disjoint_planes",
        "rollout_stable",
        "encoder_fidelity",
        "decoder_fidelity",
        "dynamics_trained",
    )
    assert list(_criteria().checks()) == list(CRITERIA)


def test__criteria__all_holds_only_when_every_check_is_true():
    assert _criteria().all is True
    for name in CRITERIA:
        for value in (False, None):
            criteria = _criteria(**{name: value})
            assert criteria.all is False, (name, value)
            assert criteria.to_dict()["all"] is False
            assert Criteria.from_dict(criteria.to_dict()) == criteria


def test__from_dict__errors():
    data = _criteria().to_dict()
    with pytest.raises(ValueError, match=re.escape("Criteria.from_dict: stored all=False contradicts the checks")):
        Criteria.from_dict({**data, "all": False})
    del data["single_plane"]
    with pytest.raises(ValueError, match=re.escape("Criteria.from_dict: missing key(s) ['single_plane']")):
        Criteria.from_dict(data)
    with pytest.raises(TypeError, match=re.escape("Evaluation.from_dict expects a mapping, got list.")):
        Evaluation.from_dict([])


def test__action_structure__effect_fields_come_all_or_none():
    with pytest.raises(ValueError, match=re.escape("ActionStructure: the effect fields come all or none; missing")):
        ActionStructure(0, (0, 1), 1.0, 0.5, (0.5,), factor="x")


def test__format_summary():
    with_effect = ActionStructure(
        0, (0, 1), 0.99999, 1.2566, (1.2566, 0.0), "north_south", 1, 5, 0.2, 0, math.inf, False, 0.0, 0.0, 0.0
    )
    evaluation = Evaluation(
        env_id="DynDis/GridWorld-v0",
        env_kwargs={},
        latent_dim=2,
        n_actions=2,
        rollout_bce=RolloutError((0, 1, 5), (0.1, 0.2, 0.3), (0.1, 0.2, 0.3), (0.1, 0.2, 0.3), 1),
        rollout_bce_ratio=1.5,
        horizon=5,
        actions=(with_effect, ActionStructure(1, (0, 1), 0.5, -0.25, (-0.25, 0.0))),
        factors=None,
        disjoint_planes=None,
        criteria=_criteria(rollout_stable=False),
    )
    assert format_summary(evaluation) == "\n".join(
        [
            "rollout BCE k=1: 0.2000  k=5: 0.3000",
            "action 0    north_south+1: plane (0, 1) share 1.0000 angle +0.2000 x 2pi/5",
            "action 1                 : plane (0, 1) share 0.5000 angle -0.2500 rad",
            "criteria: single_plane=True, faithful_angles=True, disjoint_planes=True, rollout_stable=False, "
            "encoder_fidelity=True, decoder_fidelity=True, dynamics_trained=True, all=False",
        ]
    )
    missing = dataclasses.replace(evaluation, rollout_bce=RolloutError((0,), (0.1,), (0.1,), (0.1,), 1))
    assert format_summary(missing).startswith("rollout BCE k=1: nan  k=5: nan")


@pytest.mark.parametrize(
    ("ks", "message"),
    [
        ([0, 11], "`ks` must be integers in [0, 10], got [0, 11]."),
        ([-1], "`ks` must be integers in [0, 10], got [-1]."),
        ([1.5], "`ks` must be integers in [0, 10], got [1.5]."),
        ([True], "`ks` must be integers in [0, 10], got [True]."),
    ],
)
def test__rollout_bce__bad_ks(tiny_episodes, ks, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        rollout_bce(_tiny_model(), tiny_episodes.batch, ks)


def test__rollout_bce__chosen_ks(tiny_episodes):
    ks, bce = rollout_bce(_tiny_model(), tiny_episodes.batch, np.array([1, 10]))
    assert ks.tolist() == [1, 10] and bce.shape == (3, 2)
    evaluation = evaluate_model(
        _tiny_model(), "DynDis/GridWorld-v0", TINY_ENV_KWARGS, EVAL, ks=(1, 10), episodes=tiny_episodes
    )
    assert evaluation.rollout_bce.k == (1, 10) and evaluation.rollout_bce_ratio is not None
    no_ratio = evaluate_model(
        _tiny_model(), "DynDis/GridWorld-v0", TINY_ENV_KWARGS, EVAL, ks=(0, 1), episodes=tiny_episodes
    )
    assert no_ratio.rollout_bce_ratio is None and no_ratio.criteria.rollout_stable is None
    assert no_ratio.criteria.all is False


def test__evaluate__bad_episodes(tiny_episodes):
    with pytest.raises(
        ValueError,
        match=re.escape("`episodes` hold 10-step episodes but `config.horizon` is 12; collect them with the same"),
    ):
        evaluate_model(
            _tiny_model(), "DynDis/GridWorld-v0", {}, EvalConfig(episodes=3, horizon=12), episodes=tiny_episodes
        )
    with pytest.raises(TypeError, match=re.escape("`episodes` must be EvalEpisodes")):
        evaluate_model(_tiny_model(), "DynDis/GridWorld-v0", {}, EVAL, episodes=tuple(tiny_episodes))
    assert isinstance(tiny_episodes, EvalEpisodes)


# -- memory limits ---------------------------------------------------------------------------------------


def test__evaluation_memory_counts_the_frames_twice_and_the_decoder_chunk():
    frames_only = evaluation_memory((16, 16, 3), 0, episodes=2, horizon=9)
    assert frames_only == 2 * 2 * 10 * (768 + 8 + 64)
    with_model = evaluation_memory((16, 16, 3), 4, episodes=2, horizon=9)
    assert with_model > frames_only + 3 * 4 * 20 * 768  # every frame decoded in one chunk
    # linear in the horizon beyond the decoder's chunk
    m = [evaluation_memory((64, 64, 3), 4, 32, horizon) for horizon in (500, 1000, 1500)]
    assert m[1] - m[0] == m[2] - m[1] > 2 * 32 * 500 * 64 * 64 * 3


def test__an_evaluation_larger_than_the_memory_is_refused_up_front(monkeypatch):
    monkeypatch.setattr("dyndis_learn.evaluate.available_memory", lambda: 2**30)
    config = EvalConfig(episodes=2, horizon=100_000_000)
    with pytest.raises(ValueError) as info:
        evaluate_model(_tiny_model(), TINY["env"]["id"], TINY_ENV_KWARGS, config)
    message = str(info.value)
    assert re.search(r"needs about [\d,.]+ GiB of memory \(2 x 100000001 frames of 16x16x3 bytes", message)
    assert "but 1.0 GiB is available: lower the horizon (--horizon) or the number of episodes" in message
    with pytest.raises(ValueError, match="GiB is available"):
        collect_eval_episodes(TINY["env"]["id"], TINY_ENV_KWARGS, config)
    check_evaluation_memory((16, 16, 3), 4, EvalConfig(episodes=2, horizon=1000))  # fits
    monkeypatch.setattr("dyndis_learn.evaluate.available_memory", lambda: None)  # unknown: nothing is checked
    check_evaluation_memory((16, 16, 3), 4, config)


# -- criteria that judge the trained model ---------------------------------------------------------------


class _Oracle(WorldModel):
    """A perfect model of the tiny GridWorld (5 x 5, 16 x 16 pixels): the encoder looks each image up and puts
    it on the torus, (cos, sin) of each factor's phase in its own plane; the decoder draws the nearest state's
    image (logits of its pixels); each action turns its factor's plane by 2 pi / 5."""

    def __init__(self):
        super().__init__((16, 16, 3), 4, latent_dim=4, channels=(8, 8), hidden_dim=16)
        env = gym.make("DynDis/GridWorld-v0", **TINY_ENV_KWARGS).unwrapped
        self.states = env.factor_space.all_states()[:, :2]  # north_south, east_west
        self.images = env.render_states(env.factor_space.all_states())
        self.lookup = {image.tobytes(): i for i, image in enumerate(self.images)}
        unit = 2 * math.pi / 5
        with torch.no_grad():
            self.rotations.angles.zero_()
            for action, (plane, angle) in enumerate([(0, unit), (0, -unit), (5, unit), (5, -unit)]):
                self.rotations.angles[action, plane] = angle

    def _torus(self, index):
        phase = 2 * math.pi * torch.as_tensor(self.states[index], dtype=torch.float32) / 5
        return torch.stack([phase[..., 0].cos(), phase[..., 0].sin(), phase[..., 1].cos(), phase[..., 1].sin()], -1)

    def encode(self, frames):
        flat = frames.reshape(-1, *frames.shape[-3:]).numpy()
        index = np.array([self.lookup[image.tobytes()] for image in flat])
        return (self._torus(index) / math.sqrt(2)).reshape(*frames.shape[:-3], 4)

    def decode_logits(self, latents):
        flat = latents.reshape(-1, 4)
        values = [torch.atan2(flat[:, 2 * f + 1], flat[:, 2 * f]) / (2 * math.pi / 5) for f in range(2)]
        ns, ew = (torch.round(v).long() % 5 for v in values)
        pixels = torch.from_numpy(self.images[(ns * 5 + ew).numpy()]).float() / 255
        return torch.logit(pixels.clamp(1e-4, 1 - 1e-4)).reshape(*latents.shape[:-1], 16, 16, 3)


class _ConstantEncoder(_Oracle):
    def encode(self, frames):
        return torch.nn.functional.normalize(torch.ones(*frames.shape[:-3], 4), dim=-1)


class _MeanImageDecoder(_Oracle):
    def decode_logits(self, latents):
        mean = torch.from_numpy(self.images.mean(axis=0) / 255).float().clamp(1e-4, 1 - 1e-4)
        return torch.logit(mean).expand(*latents.shape[:-1], 16, 16, 3)


TRAINED = [{"step": 6, "dynamics_weight": 1.0}]


def test__oracle_passes_every_criterion(tiny_episodes):
    evaluation = evaluate_model(
        _Oracle(), "DynDis/GridWorld-v0", TINY_ENV_KWARGS, EVAL, episodes=tiny_episodes, history=TRAINED
    )
    criteria = evaluation.criteria
    assert criteria.checks() == dict.fromkeys(CRITERIA, True) and criteria.all is True
    fid = evaluation.fidelity
    assert (fid.states, fid.grid, fid.candidates, fid.factors) == (25, True, "all_states", ("north_south", "east_west"))
    assert min(fid.probe_r2) > 0.999
    assert fid.reconstruction_rate == fid.imagined_rate == fid.imagined_rate_last == 1.0 and fid.imagined_steps == 10
    assert fid.imagined_rollouts == IMAGINED_ROLLOUTS
    assert fid.reconstruction_confusion == (0.0, 0.0)
    assert evaluation.mean_image_ratio < 0.01 and evaluation.mean_image_bce > evaluation.frame_entropy > 0
    assert evaluation.dynamics_weight == 1.0
    assert Evaluation.from_dict(json.loads(json.dumps(evaluation.to_dict()))) == evaluation
    summary = format_summary(evaluation)
    assert "encoder probe R^2 (25 states): north_south 1.0000, east_west 1.0000" in summary
    imagined = "imagined k<=10 100.00% (320 rollouts, k=10 100.00%)"
    assert f"decoded nearest own state: reconstructions 100.00% (25 every state), {imagined}" in summary
    old = {k: v for k, v in fid.to_dict().items() if k != "imagined_rollouts"}
    assert Fidelity.from_dict(old) == dataclasses.replace(fid, imagined_rollouts=None)  # a report written before
    assert "last dynamics_weight: 1.000" in summary and "mean-image BCE k=10: " in summary


def test__judged_imagined_steps_are_evenly_spaced_and_end_at_the_rollouts_length():
    assert judged_imagined_steps(100) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert judged_imagined_steps(12) == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    assert judged_imagined_steps(4) == [1, 2, 3, 4]  # a shorter rollout: every step
    assert judged_imagined_steps(1) == [1]


def test__imagined_rollouts_follow_the_environment_from_uniformly_drawn_states():
    env = gym.make("DynDis/GridWorld-v0", **TINY_ENV_KWARGS)
    space = env.unwrapped.factor_space
    states, actions = imagined_rollouts(space, 6, 12, seed=5)
    assert states.shape == (6, 13, space.n_factors) and actions.shape == (6, 12)
    assert actions.min() >= 0 and actions.max() < space.n_actions
    for start, moves, truth in zip(states[:, 0], actions, states, strict=True):
        _, info = env.reset(options={"factors": start})
        for t, action in enumerate(moves, start=1):
            _, _, _, _, info = env.step(int(action))
            np.testing.assert_array_equal(info["factors"], truth[t])
    again, same_actions = imagined_rollouts(space, 6, 12, seed=5)
    np.testing.assert_array_equal(again, states)
    np.testing.assert_array_equal(same_actions, actions)
    other, _ = imagined_rollouts(space, 6, 12, seed=6)
    assert not np.array_equal(other, states)
    starts = imagined_rollouts(space, 2_000, 1, seed=0)[0][:, 0]
    cells = np.bincount(space.flat_index(starts), minlength=25)
    assert cells.min() > 40  # every one of the 25 states drawn (80 expected each)


@pytest.mark.parametrize("width", [1, 255, 256, 12_288, 12_289])
def test__squared_distances_to_each_are_exact(width):
    rng = np.random.default_rng(width)
    candidates = rng.integers(0, 256, (7, width), dtype=np.uint8)
    candidates[0], candidates[1] = 0, 255  # the largest sums: every pixel 255 apart from the query's
    query = np.where(np.arange(width) % 2 == 0, 255, 0).astype(np.uint8)
    query_far = np.full(width, 255, dtype=np.uint8)
    for q in (query, query_far):
        expected = ((candidates.astype(np.int64) - q.astype(np.int64)) ** 2).sum(1)
        got = _squared_distances_to_each(torch.from_numpy(q), torch.from_numpy(candidates))
        assert got.dtype == torch.float64 and np.array_equal(got.numpy(), expected.astype(np.float64))


def test__oracle_passes_on_a_sample_with_one_factor_neighbours(tiny_episodes, monkeypatch):
    monkeypatch.setattr("dyndis_learn.fidelity.GRID_STATES", 10)
    monkeypatch.setattr("dyndis_learn.fidelity.SAMPLE_STATES", 40)
    evaluation = evaluate_model(
        _Oracle(), "DynDis/GridWorld-v0", TINY_ENV_KWARGS, EVAL, episodes=tiny_episodes, history=TRAINED
    )
    fid = evaluation.fidelity
    assert (fid.states, fid.grid, fid.candidates) == (40, False, "one_factor_neighbours")
    assert fid.reconstruction_rate == fid.imagined_rate == 1.0 and evaluation.criteria.all is True
    wrong = evaluate_model(
        _MeanImageDecoder(), "DynDis/GridWorld-v0", TINY_ENV_KWARGS, EVAL, episodes=tiny_episodes, history=TRAINED
    )
    assert wrong.fidelity.reconstruction_rate < 0.5 and wrong.criteria.decoder_fidelity is False
    # every wrong reconstruction confuses at least one factor
    assert sum(wrong.fidelity.reconstruction_confusion) >= 1 - wrong.fidelity.reconstruction_rate - 1e-12


@pytest.mark.parametrize("grid", [True, False])
def test__decoder_confusion_names_the_factors_a_wrong_picture_changes(grid):
    # a "decoded" image that is exactly another state's: wrong, and confused in the factors that differ
    core = gym.make("DynDis/GridWorld-v0", image_size=16, factors={"colour": 3}).unwrapped
    space = core.factor_space
    names = list(space.names)  # north_south, east_west, size, colour, background
    ns, ew, colour = names.index("north_south"), names.index("east_west"), names.index("colour")
    truths = np.zeros((3, len(names)), dtype=np.int64)
    truths[0, [ns, ew]] = 1, 2
    truths[1, [ns, ew, colour]] = 3, 3, 1
    shown = truths.copy()
    shown[0, ns] = 2  # north_south drawn wrong
    shown[1, [ew, colour]] = 4, 2  # east_west and colour drawn wrong
    table = core.render_states(space.all_states()) if grid else None
    right, confused = _nearest_own(core, table, core.render_states(shown), truths)
    assert right.tolist() == [False, False, True]
    expected = np.zeros_like(confused)
    expected[0, ns] = True
    expected[1, [ew, colour]] = True
    if grid:
        assert (confused == expected).all()
    else:  # one-factor neighbours: the drawn state is a candidate for state 0 (others may beat the truth too)
        assert confused[0, ns] and not confused[0, ew] and confused[1].any() and not confused[2].any()


def test__an_encoder_off_the_map_fails_encoder_fidelity(tiny_episodes, tiny_evaluation):
    evaluation = evaluate_model(
        _ConstantEncoder(), "DynDis/GridWorld-v0", TINY_ENV_KWARGS, EVAL, episodes=tiny_episodes, history=TRAINED
    )
    assert max(evaluation.fidelity.probe_r2) < 0.5
    assert evaluation.criteria.encoder_fidelity is False and evaluation.criteria.all is False
    assert evaluation.criteria.single_plane and evaluation.criteria.faithful_angles  # the angles alone pass
    assert tiny_evaluation.criteria.encoder_fidelity is False  # a random encoder
    assert tiny_evaluation.criteria.dynamics_trained is None  # no history given


def test__a_decoder_of_the_mean_image_fails_decoder_fidelity_and_rollout_stable(tiny_episodes):
    evaluation = evaluate_model(
        _MeanImageDecoder(), "DynDis/GridWorld-v0", TINY_ENV_KWARGS, EVAL, episodes=tiny_episodes, history=TRAINED
    )
    criteria = evaluation.criteria
    assert criteria.encoder_fidelity is True
    assert evaluation.fidelity.reconstruction_rate <= 0.1 and evaluation.fidelity.imagined_rate <= 0.2
    assert criteria.decoder_fidelity is False
    assert evaluation.rollout_bce_ratio == pytest.approx(1.0, abs=0.05)  # constant error: the ratio alone passes
    assert evaluation.mean_image_ratio > 0.5 and criteria.rollout_stable is False and criteria.all is False


def test__without_the_evaluation_contract_the_fidelity_cannot_be_judged(tiny_episodes, monkeypatch):
    monkeypatch.setattr("dyndis_learn.evaluate._contract_env", lambda env_id, kwargs: None)
    evaluation = evaluate_model(
        _Oracle(), "DynDis/GridWorld-v0", TINY_ENV_KWARGS, EVAL, episodes=tiny_episodes, history=TRAINED
    )
    assert evaluation.fidelity is None and evaluation.criteria.all is False
    assert evaluation.criteria.encoder_fidelity is None and evaluation.criteria.decoder_fidelity is None
    blind = EvalEpisodes(tiny_episodes.batch._replace(factors=None), tiny_episodes.action_effects)
    monkeypatch.undo()
    evaluation = evaluate_model(
        _Oracle(), "DynDis/GridWorld-v0", TINY_ENV_KWARGS, EVAL, episodes=blind, history=TRAINED
    )
    # the imagined rollouts' true states come from the contract, not from the episodes' info["factors"]
    assert evaluation.fidelity.imagined_rate == 1.0 and evaluation.criteria.decoder_fidelity is True


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (None, (None, None)),
        ([], (False, None)),
        ([{"dynamics_weight": 0.0}], (False, 0.0)),
        ([{"dynamics_weight": 1.0}, {"dynamics_weight": 0.5}], (False, 0.5)),
        ([{"dynamics_weight": 0.5}, {"dynamics_weight": 1.0}], (True, 1.0)),
        ([{"loss": 1.0}], (None, None)),
    ],
)
def test__dynamics_trained(history, expected):
    assert dynamics_trained(history) == expected


def test__criteria_of_a_report_written_before_the_fidelity_criteria_read_as_none():
    later = {
        "encoder_fidelity",
        "decoder_fidelity",
        "dynamics_trained",
        "mean_image_margin",
        "probe_threshold",
        "decoder_threshold",
        "not_applicable",
    }
    old = {key: value for key, value in _criteria().to_dict().items() if key not in later}
    old["all"] = True
    criteria = Criteria.from_dict(old)
    assert criteria.encoder_fidelity is None and criteria.all is False and criteria.not_applicable == ()
    assert criteria.probe_threshold == 0.99  # the default


def test__fidelity_round_trips():
    fid = Fidelity(25, True, "all_states", ("a",), (0.5,), 0.25, 10, None, None)
    assert Fidelity.from_dict(json.loads(json.dumps(fid.to_dict()))) == fid
