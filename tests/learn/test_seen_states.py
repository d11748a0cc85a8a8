"""Fidelity on the states training saw and on those it never saw (``fidelity.seen`` / ``fidelity.unseen``)."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from dyndis_learn import EvalConfig, Learner, Trainer
from dyndis_learn.evaluate import _encoder_faithful, collect_eval_episodes, evaluate_model
from dyndis_learn.fidelity import (
    MIN_SET_STATES,
    PROBE_STATES,
    _StateEncodings,
    encode_chunks,
    fidelity,
    seen_and_unseen_states,
)
from dyndis_learn.model import DEFAULT_SYNTHESIS_MODES, WorldModel
from dyndis_learn.report import _fidelity_lines
from dyndis_learn.results import Evaluation, Fidelity, StateSetFidelity, format_summary

#: 5 x 5 positions, 5 colours, 5 backgrounds: 625 states, enough for seen and unseen sets of MIN_SET_STATES.
WIDE = {"image_size": 16, "factors": {"colour": "all", "background": "all"}}
EVAL = EvalConfig(episodes=2, horizon=4)


def _space(env_id="DynDis/GridWorld-v0", **kwargs):
    return gym.make(env_id, **kwargs).unwrapped.factor_space


def test__seen_and_unseen_states__split_a_small_space_whole_and_exactly():
    space = _space(**WIDE)
    seen = space.all_states()[[3, 3, 50, 7, 600]]  # repeats count once
    fraction, seen_set, unseen_set = seen_and_unseen_states(space, seen, seed=0)
    assert fraction == pytest.approx(4 / 625)
    codes = lambda states: set(space.flat_index(states).tolist())  # noqa: E731
    assert codes(seen_set) == {3, 7, 50, 600} and len(seen_set) == 4
    assert codes(unseen_set) == set(range(625)) - {3, 7, 50, 600} and len(unseen_set) == 621


def test__seen_and_unseen_states__draw_disjoint_seeded_samples_of_a_large_space():
    space = _space("DynDis/Shapes3D-v0")  # 480,000 states
    rng = np.random.default_rng(0)
    seen = space.sample_states(25_000, rng)  # more distinct states than a set's PROBE_STATES
    fraction, seen_set, unseen_set = seen_and_unseen_states(space, seen, seed=3)
    seen_codes = set(space.flat_index(seen).tolist())
    assert fraction == pytest.approx(len(seen_codes) / 480_000) and len(seen_codes) > PROBE_STATES
    assert len(seen_set) == len(unseen_set) == PROBE_STATES
    assert len(set(space.flat_index(seen_set).tolist()) & seen_codes) == PROBE_STATES
    unseen_codes = space.flat_index(unseen_set).tolist()
    assert len(set(unseen_codes)) == PROBE_STATES and not set(unseen_codes) & seen_codes
    again = seen_and_unseen_states(space, seen, seed=3)
    assert np.array_equal(again[1], seen_set) and np.array_equal(again[2], unseen_set)
    other = seen_and_unseen_states(space, seen, seed=4)
    assert not np.array_equal(other[2], unseen_set)


def _model():
    torch.manual_seed(0)
    return WorldModel((16, 16, 3), 8, latent_dim=8, channels=(8, 8), hidden_dim=32)


def test__fidelity__judges_seen_and_unseen_states_apart_and_skips_a_set_too_small():
    env = gym.make("DynDis/GridWorld-v0", **WIDE)
    model = _model()
    seen = env.unwrapped.factor_space.all_states()[:40]
    fid = fidelity(model, env, EVAL, seen)
    assert fid.seen_fraction == pytest.approx(40 / 625)
    assert fid.seen is None  # 40 < MIN_SET_STATES
    assert fid.unseen.states == 585 >= MIN_SET_STATES
    assert len(fid.unseen.probe_r2) == 4 and 0 <= fid.unseen.reconstruction_rate <= 1
    plain = fidelity(model, env, EVAL)
    assert (plain.seen_fraction, plain.seen, plain.unseen) == (None, None, None)
    assert dataclasses.replace(fid, seen_fraction=None, seen=None, unseen=None) == plain  # the rest unchanged
    back = Fidelity.from_dict(fid.to_dict())
    assert back == fid
    old = {k: v for k, v in fid.to_dict().items() if k not in ("seen_fraction", "seen", "unseen")}
    assert Fidelity.from_dict(old) == plain  # a report written before reads with None


def test__fidelity__probes_every_state_up_to_probe_states_and_judges_the_pictures_of_a_sample(monkeypatch):
    env = gym.make("DynDis/GridWorld-v0", **WIDE)  # 625 states
    monkeypatch.setattr("dyndis_learn.fidelity.GRID_STATES", 10)  # the pictures: a sample of 40
    monkeypatch.setattr("dyndis_learn.fidelity.SAMPLE_STATES", 40)
    seen = env.unwrapped.factor_space.all_states()[::5]  # 125 seen, 500 unseen
    fid = fidelity(_model(), env, EVAL, seen)
    assert (fid.states, fid.probe_states, fid.grid) == (40, 625, False)
    assert (fid.seen.states, fid.seen.reconstructed_states) == (125, 40)
    assert (fid.unseen.states, fid.unseen.reconstructed_states) == (500, 40)
    monkeypatch.setattr("dyndis_learn.fidelity.PROBE_STATES", 300)  # a sample of every set
    fid = fidelity(_model(), env, EVAL, seen)
    assert (fid.probe_states, fid.seen.states, fid.unseen.states) == (300, 125, 300)
    assert Fidelity.from_dict(fid.to_dict()) == fid
    old = fid.to_dict()
    del old["probe_states"], old["seen"]["reconstructed_states"]  # a report written before they existed
    back = Fidelity.from_dict(old)
    assert back.probe_states is None and back.seen.reconstructed_states is None


def test__state_encodings__encode_each_state_once_in_the_order_asked():
    env = gym.make("DynDis/GridWorld-v0", **WIDE)
    contract, model = env.unwrapped, _model().eval()
    rendered = []
    render = contract.render_states
    contract.render_states = lambda states: rendered.append(len(states)) or render(states)
    encode = _StateEncodings(model, contract, modes=1)
    states = contract.factor_space.all_states()
    with torch.no_grad():
        first, own = encode(states[[7, 3, 7, 100]])
        second, _ = encode(states[[100, 5, 3]])
        expected = encode_chunks(model, render(states[[7, 3, 7, 100, 5]]))
    assert rendered == [3, 1] and own is None  # states 3, 7, 100, then 5 alone
    torch.testing.assert_close(first, expected[:4])
    torch.testing.assert_close(second, expected[[3, 4, 1]])


def _fidelity(probe, seen=None, unseen=None):
    return Fidelity(
        states=100,
        grid=False,
        candidates="one_factor_neighbours",
        factors=("a", "b"),
        probe_r2=probe,
        reconstruction_rate=1.0,
        imagined_steps=4,
        imagined_rate=1.0,
        imagined_rate_last=1.0,
        seen_fraction=None if seen is None and unseen is None else 0.5,
        seen=None if seen is None else StateSetFidelity(100, seen, 1.0),
        unseen=None if unseen is None else StateSetFidelity(100, unseen, 1.0),
    )


def test__encoder_fidelity__needs_the_probe_on_seen_and_on_unseen_states_where_they_are_judged():
    assert _encoder_faithful(_fidelity((0.999, 0.995)), 0.99)
    assert _encoder_faithful(_fidelity((0.999, 0.995), seen=(1.0, 1.0), unseen=(0.995, 0.991)), 0.99)
    assert not _encoder_faithful(_fidelity((0.999, 0.995), seen=(1.0, 1.0), unseen=(0.995, 0.95)), 0.99)
    assert not _encoder_faithful(_fidelity((0.999, 0.995), seen=(0.98, 1.0)), 0.99)
    assert not _encoder_faithful(_fidelity((0.999, 0.95), seen=(1.0, 1.0), unseen=(1.0, 1.0)), 0.99)


def test__evaluate_model__reports_seen_and_unseen_states_in_the_summary_and_report_json():
    episodes = collect_eval_episodes("DynDis/GridWorld-v0", WIDE, EVAL)
    space = _space(**WIDE)
    seen = space.all_states()[::3]  # 209 seen, 416 unseen
    evaluation = evaluate_model(_model(), "DynDis/GridWorld-v0", WIDE, EVAL, episodes=episodes, seen_states=seen)
    fid = evaluation.fidelity
    assert fid.seen_fraction == pytest.approx(209 / 625) and (fid.seen.states, fid.unseen.states) == (209, 416)
    assert evaluation.criteria.encoder_fidelity is False  # an untrained encoder is off the map
    summary = format_summary(evaluation)
    assert "training saw 33.44% of the states; seen (209): probe R^2 min" in summary and "; unseen (416): " in summary
    assert Evaluation.from_dict(evaluation.to_dict()).fidelity == fid


def test__trainer_seen_states__are_the_cycles_walk_and_unknown_for_other_warmups(tiny_config):
    config = tiny_config.replace(
        steps=3,
        env={"kwargs": WIDE},
        model={"latent_manifold": "torus", "latent_dim": 8},
        warmup={"kind": "cycles", "steps": 2, "cycles": {"walk_steps": 60, "starts": 8, "batch_size": 16}},
    )
    trainer = Trainer(config)
    assert trainer.seen_states() is None  # nothing trained, nothing started: nothing seen
    trainer.train(progress=False)
    seen = trainer.seen_states()
    assert np.array_equal(seen, trainer.warmup.walk.factors) and seen.shape == (61, 5)
    assert Trainer(tiny_config).seen_states() is None  # the graph warm-up keeps no states
    learner = Learner(config)
    learner.train(progress=False)
    evaluation = learner.evaluate(EVAL, progress=False)
    assert evaluation.fidelity.seen_fraction == pytest.approx(len(np.unique(seen, axis=0)) / 625)


def _binned_model():
    torch.manual_seed(0)
    return WorldModel(
        (16, 16, 3), 8, latent_dim=8, channels=(8, 8), hidden_dim=32, latent_manifold="torus", angle_bins=10
    )


def test__state_encodings__give_the_decoder_checked_and_the_encoders_own_encodings_of_an_angle_bin_model():
    env = gym.make("DynDis/GridWorld-v0", **WIDE)
    contract, model = env.unwrapped, _binned_model().eval()
    states = contract.factor_space.all_states()[::4]
    with torch.no_grad():
        judged, own = _StateEncodings(model, contract, modes=DEFAULT_SYNTHESIS_MODES)(states)
        images = contract.render_states(states)
        checked = encode_chunks(model, images, DEFAULT_SYNTHESIS_MODES)
        torch.testing.assert_close(judged, checked)
        torch.testing.assert_close(own, encode_chunks(model, images))
    assert not torch.equal(judged, own)  # the decoder chose another mode somewhere


def test__fidelity__judges_an_angle_bin_models_decoder_checked_encodings_beside_the_encoders_own():
    env = gym.make("DynDis/GridWorld-v0", **WIDE)
    model = _binned_model().eval()
    seen = env.unwrapped.factor_space.all_states()[::3]
    checked = fidelity(model, env, EVAL, seen)  # synthesis_modes="auto"
    own = fidelity(model, env, dataclasses.replace(EVAL, synthesis_modes=1), seen)
    assert (checked.synthesis_modes, own.synthesis_modes) == (DEFAULT_SYNTHESIS_MODES, 1)
    assert checked.encoder_probe_r2 == own.probe_r2 and own.encoder_probe_r2 is None
    assert checked.unseen.encoder_probe_r2 == own.unseen.probe_r2 and own.unseen.encoder_probe_r2 is None
    assert checked.probe_r2 != own.probe_r2  # an untrained encoder hesitates: the decoder chose other points
    assert Fidelity.from_dict(checked.to_dict()) == checked
    old = {k: v for k, v in own.to_dict().items() if k not in ("synthesis_modes", "encoder_probe_r2")}
    assert Fidelity.from_dict(old) == own  # a report written before judged the encoder's own encodings
    two = fidelity(model, env, dataclasses.replace(EVAL, synthesis_modes=2))
    assert two.synthesis_modes == 2 and two.probe_r2 not in (own.probe_r2, checked.probe_r2)
    with pytest.raises(ValueError, match=r"`evaluation\.synthesis_modes` above 1 needs an angle-bin model"):
        fidelity(_model(), env, dataclasses.replace(EVAL, synthesis_modes=2))
    assert fidelity(_model(), env, EVAL).synthesis_modes == 1  # "auto": no bins, the encoder's own


def test__report_names_the_decoder_checked_encodings_and_the_encoders_own_probe():
    episodes = collect_eval_episodes("DynDis/GridWorld-v0", WIDE, EVAL)
    seen = _space(**WIDE).all_states()[::3]
    evaluation = evaluate_model(_binned_model(), "DynDis/GridWorld-v0", WIDE, EVAL, episodes=episodes, seen_states=seen)
    lines = "\n".join(_fidelity_lines(evaluation))
    assert f"decoder-checked (the decoder chooses among {DEFAULT_SYNTHESIS_MODES} modes" in lines
    fid = evaluation.fidelity
    first = f"{fid.factors[0]} {fid.unseen.probe_r2[0]:.4f} ({fid.unseen.encoder_probe_r2[0]:.4f})"
    assert f"416 unseen states: probe R^2 {first}, " in lines
    assert f"encoder probe R^2 (625 states, decoder-checked over {DEFAULT_SYNTHESIS_MODES} modes): " in (
        format_summary(evaluation)
    )
