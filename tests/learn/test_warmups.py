import json
import re
import warnings

import numpy as np
import pytest
import torch

from dyndis_learn import TrainConfig, Trainer, warmups
from dyndis_learn.config import DEFAULT_LATENT_DIM, DEFAULT_STEPS, DEFAULT_WARMUP_STEPS
from dyndis_learn.cycles import walk_cycles
from dyndis_learn.model import MODE_WINDOW
from dyndis_learn.objective import LossWeights
from dyndis_learn.regularizers import dominant_share
from dyndis_learn.rotations import plane_pairs
from dyndis_learn.warmups import GRAPH_FIT_LIMIT, WARMUPS, GraphWarmup, Warmup, register_warmup, stored_warmup


def test__graph_warmup__starts_each_action_as_a_rotation_by_2pi_over_n_in_its_own_plane(tiny_config):
    trainer = Trainer(tiny_config.replace(steps=3, warmup={"steps": 2}))
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
    assert trainer.step > trainer.warmup.steps
    assert torch.equal(trainer.model.rotations.angles.detach(), angles)
    assert all(row["target"] > 0 for row in trainer.history)
    warmup = trainer.warmup
    frames = trainer.batch(trainer.step).frames.numpy()
    targets = warmup.targets(frames)
    assert targets.states.shape == frames.shape[:2] and torch.all(targets.states >= 0)
    assert np.array_equal(warmup.graph.images[targets.states[0, 0]], frames[0, 0])
    assert np.all(warmup.graph.state_indices(np.zeros((3, 16, 16, 3), np.uint8)) == -1)  # an image never seen


def test__graph_warmup_weights(tiny_config):
    trainer = Trainer(tiny_config.replace(warmup={"graph": {"target_weight": 0.5}}))
    during, after = trainer.loss_weights(0), trainer.loss_weights(trainer.warmup.steps + 5)
    assert during.target == after.target == 0.5
    assert during.uniformity == 0 and during.rollout == 0 and after.uniformity == tiny_config.loss.uniformity_weight
    assert trainer.schedules.learning_rate("angles", 100) == 0.0  # the fit is kept


def test__spectral_terms_are_full_in_the_warmup_and_fade_out_with_the_dynamics_ramp(tiny_config):
    config = tiny_config.replace(steps=100, warmup={"kind": "spectral", "steps": 10}, optim={"dynamics_ramp_steps": 20})
    trainer = Trainer(config)
    smoothness = [trainer.loss_weights(k).smoothness for k in (0, 9, 10, 19, 29, 50)]
    assert smoothness == pytest.approx([3 * s for s in (1, 1, 0.95, 0.5, 0, 0)])
    assert trainer.loss_weights(0).whitening == pytest.approx(10.0)
    assert trainer.schedules.learning_rate("angles", 50) > 0  # learned after the spectral warm-up
    graph = Trainer(config.replace(warmup={"kind": "graph"}))
    assert {graph.loss_weights(k).smoothness for k in (0, 9, 10, 50)} == {0.0}


def test__plane_alignment__keeps_the_images_and_starts_the_angles_in_the_new_planes(tiny_config):
    from dyndis_learn.alignment import fit_rotations, plane_angles

    # Enough transitions per action that the fitted rotations are unique (a rank-deficient fit is not).
    trainer = Trainer(
        tiny_config.replace(warmup={"kind": "spectral"}, data={"episodes_per_step": 8, "episode_steps": 8})
    )
    trainer.train(tiny_config.warmup.steps, progress=False)
    batch = trainer.batch(trainer.step)
    actions = batch.actions.reshape(-1)
    model, n = trainer.model, trainer.model.latent_dim
    with torch.no_grad():
        before = model.encode(batch.frames)
        images = model.decode(before)
        trainer.warmup.end(model, batch, trainer.optimizer)
        after = model.encode(batch.frames)
        assert torch.allclose(model.decode(after), images, atol=1e-6)
    # A turn of the basis: every inner product between encodings is kept, but the coordinates change.
    flat_before, flat_after = before.reshape(-1, n), after.reshape(-1, n)
    torch.testing.assert_close(flat_after @ flat_after.T, flat_before @ flat_before.T, atol=1e-5, rtol=0)
    assert not torch.allclose(flat_after, flat_before, atol=1e-3)
    # Each action turns only the planes (0, 1), (2, 3), ..., by the angles of its rotation fitted in the
    # new coordinates.
    angles = model.rotations.angles.detach()
    on_blocks = torch.tensor([i % 2 == 0 and j == i + 1 for i, j in plane_pairs(n).tolist()])
    assert torch.all(angles[:, ~on_blocks] == 0)
    fitted = fit_rotations(after[:, :-1].reshape(-1, n), after[:, 1:].reshape(-1, n), actions, model.n_actions)
    # Loose: two warm-up steps leave the encodings nearly collinear, so the float32 fit is ill-conditioned.
    torch.testing.assert_close(angles, plane_angles(fitted), atol=2e-2, rtol=0)
    assert trainer.optimizer.state == {}


def test__a_graph_warmup_that_ends_off_the_map_warns(tiny_config):
    # Two warm-up steps leave the tiny encoder far from the map: the criteria would not show it.
    trainer = Trainer(tiny_config.replace(steps=3, warmup={"steps": 2}))
    with pytest.warns(UserWarning, match="ended the graph warm-up at a mean squared distance of"):
        trainer.train(progress=False)
    assert trainer.history[1]["target"] > GRAPH_FIT_LIMIT


def test__a_graph_warmup_that_ends_on_the_map_is_silent(tiny_config):
    trainer = Trainer(tiny_config.replace(steps=3, warmup={"steps": 2}))
    trainer.train(2, progress=False)
    warmup: GraphWarmup = trainer.warmup
    batch = trainer.batch(2)
    warmup.map = warmup.map.clone()
    with torch.no_grad():  # put the map where the encoder is
        warmup.map[:] = trainer.model.encode(torch.from_numpy(warmup.graph.images))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warmup.end(trainer.model, batch, trainer.optimizer)
    warmup.map = -warmup.map
    with pytest.warns(UserWarning, match=re.escape("it has not learned every factor")) as caught:
        warmup.end(trainer.model, batch, trainer.optimizer)
    assert str(caught[0].message).endswith("Try more warmup.steps.")  # the encoder is normalised already
    warmup.config = warmup.config.replace(model={"encoder_norm": "none"})
    with pytest.warns(UserWarning, match=re.escape("Try model.encoder_norm='instance' where a factor changes")):
        warmup.end(trainer.model, batch, trainer.optimizer)


def test__a_registered_warmup_plugs_into_the_trainer(tiny_config):
    calls = []

    @register_warmup("test-constant-uniformity")
    class ConstantUniformity(Warmup):
        """A toy: three warm-up steps of autoencoding and a doubled uniformity weight."""

        @property
        def steps(self) -> int:
            return 3

        def start(self, model, step):
            calls.append(("start", step))

        def weights(self, weights: LossWeights, step, schedules):
            return (
                weights.__class__(**{**weights.__dict__, "uniformity": 2 * weights.uniformity}) if step < 3 else weights
            )

        def end(self, model, batch, optimizer):
            calls.append(("end", len(batch.frames)))

    try:
        trainer = Trainer(tiny_config.replace(steps=5, warmup={"kind": "test-constant-uniformity"}))
        trainer.train(progress=False)
        assert calls == [("start", 0), ("end", tiny_config.data.episodes_per_step)]
        assert trainer.loss_weights(0).uniformity == 2 * trainer.loss_weights(4).uniformity
        assert trainer.schedules.dynamics_weight(2) == 0 and trainer.schedules.dynamics_weight(3) > 0
    finally:
        WARMUPS.unregister("test-constant-uniformity")


def test__a_name_is_registered_once():
    with pytest.raises(ValueError, match=re.escape("A warm-up is already registered as 'graph': GraphWarmup.")):
        register_warmup("graph")(type("Other", (Warmup,), {}))


def _cycles_config(tiny_config, **env_kwargs):
    return tiny_config.replace(
        steps=4,
        env={"kwargs": {**tiny_config.env.kwargs, **env_kwargs}},
        model={"latent_manifold": "torus"},
        warmup={"kind": "cycles", "steps": 2, "cycles": {"walk_steps": 200, "starts": 8, "batch_size": 16}},
    )


def test__cycles_warmup__fixes_each_cycle_in_its_own_plane_and_regresses_the_encoder_onto_the_walk(tiny_config):
    trainer = Trainer(_cycles_config(tiny_config))
    trainer.train(progress=False)
    angles = trainer.model.rotations.angles.detach()
    expected = torch.zeros_like(angles)
    planes = {tuple(p): i for i, p in enumerate(plane_pairs(4).tolist())}
    expected[0, planes[(0, 1)]], expected[1, planes[(0, 1)]] = 2 * np.pi / 5, -2 * np.pi / 5
    expected[2, planes[(2, 3)]], expected[3, planes[(2, 3)]] = 2 * np.pi / 5, -2 * np.pi / 5
    assert torch.equal(angles, expected)  # found from observations, kept (angle_lr None: 0)
    warmup = trainer.warmup
    assert warmup.structure.lengths == (5, 5)
    assert all(row["target"] > 0 for row in trainer.history)
    batch = trainer.batch(0)  # a warm-up batch: walked frames, each with its target
    targets = warmup.targets(batch.frames.numpy())
    assert batch.frames.shape[:2] == (16, 1) and torch.all(targets.states >= 0)
    later = trainer.batch(trainer.warmup.steps)  # the dynamics phase: windows of the walk, every frame on the map
    assert later.frames.shape[:2] == (2, 5) and later.from_rollout is not None
    states = warmup.targets(later.frames.numpy()).states
    assert torch.all(states >= 0)
    # the actions are the walk's: each turns one frame's place on the torus onto the next one's
    places = torch.from_numpy(warmup.walk.targets)[states]
    turned = trainer.model.rotate(places[:, :-1], later.actions)
    torch.testing.assert_close(turned, places[:, 1:], atol=1e-5, rtol=0)
    encodings = trainer.model.encode(batch.frames[:2, 0])
    torch.testing.assert_close(encodings.reshape(2, 2, 2).norm(dim=-1), torch.full((2, 2), 0.5**0.5))  # the torus


def test__cycles_warmup__walks_in_strides_of_at_most_its_longest_stride(tiny_config):
    config = _cycles_config(tiny_config).replace(warmup={"cycles": {"longest_stride": 2}})
    trainer = Trainer(config)
    trainer.train(progress=False)
    walk, structure, latent_dim = trainer.warmup.walk, trainer.warmup.structure, trainer.model.latent_dim
    env = config.env
    capped = walk_cycles(env.id, env.kwargs, structure, 200, latent_dim, config.seed, longest_stride=2)
    uncapped = walk_cycles(env.id, env.kwargs, structure, 200, latent_dim, config.seed, longest_stride=None)
    assert np.array_equal(walk.actions, capped.actions)
    assert not np.array_equal(walk.actions, uncapped.actions)  # the 5-cycles are longer than 2


def test__cycles_warmup__learns_under_observation_noise_that_makes_every_frame_unique(tiny_config):
    trainer = Trainer(_cycles_config(tiny_config, observation_noise=4))
    trainer.train(progress=False)
    assert trainer.warmup.structure.lengths == (5, 5)
    assert trainer.warmup.structure.noise_floor > 0
    frames = trainer.warmup.walk.frames
    assert len({f.tobytes() for f in frames}) == len(frames)  # no two frames alike: bytes identify nothing


def test__cycles_warmup__needs_the_torus_and_enough_latent_dimensions(tiny_config):
    with pytest.raises(ValueError, match=r"warmup.kind='cycles' needs model.latent_manifold='torus'"):
        tiny_config.replace(model={"latent_manifold": "sphere"}, warmup={"kind": "cycles"})
    config = _cycles_config(tiny_config, factors={"colour": "all"}).replace(steps=1)
    with pytest.raises(ValueError, match=r"set model.latent_dim to at least 6"):
        Trainer(config).train(progress=False)


def test__cycles_warmup__latent_dim_auto_gives_each_cycle_found_a_plane(tiny_config, tmp_path):
    config = _cycles_config(tiny_config, factors={"colour": "all"}).replace(model={"latent_dim": "auto"}, steps=1)
    trainer = Trainer(config, tmp_path)
    assert trainer.warmup.structure.lengths == (5, 5, 5)  # x, y and colour: found before the model is built
    assert trainer.config.model.latent_dim == 6 and trainer.model.latent_dim == 6
    trainer.train(progress=False)
    stored = TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert stored.model.latent_dim == 6  # the run's files hold the number, so it resumes as it was built
    assert Trainer.resume(tmp_path).model.latent_dim == 6


def test__latent_dim_auto_is_the_default_dimension_for_warmups_that_read_no_cycles(tiny_config):
    trainer = Trainer(tiny_config.replace(model={"latent_dim": "auto"}))  # the graph warm-up
    assert trainer.config.model.latent_dim == DEFAULT_LATENT_DIM == trainer.model.latent_dim


def test__cycles_warmup__angle_bins_cycles_gives_every_value_of_every_cycle_a_bin(tiny_config):
    config = _cycles_config(tiny_config, grid_shape=[4, 6]).replace(
        model={"latent_dim": "auto", "angle_bins": "cycles"}
    )
    trainer = Trainer(config)
    assert trainer.warmup.structure.lengths == (4, 6)
    assert trainer.config.model.angle_bins == 12 == trainer.model.angle_bins  # lcm(4, 6)
    with pytest.raises(ValueError, match=r"model.angle_bins='cycles' reads the cycles warm-up's cycles"):
        tiny_config.replace(model={"angle_bins": "cycles"})  # the graph warm-up


def test__cycles_warmup__angle_bins_each_cycle_gives_each_circle_its_own_cycles_bins(tiny_config):
    config = _cycles_config(tiny_config, grid_shape=[4, 6]).replace(model={"angle_bins": "each_cycle"})
    trainer = Trainer(config.replace(model={"latent_dim": "auto"}))
    per_value = warmups.BINS_PER_VALUE
    assert trainer.config.model.angle_bins == (4 * per_value, 6 * per_value) == trainer.model.angle_bins
    stored = TrainConfig.from_dict(json.loads(json.dumps(trainer.config.to_dict())))
    assert stored.model.angle_bins == (4 * per_value, 6 * per_value)  # a list in JSON, a tuple again
    wider = Trainer(config.replace(model={"latent_dim": 6}))  # a third circle that no cycle turns: one value
    assert wider.model.angle_bins == (4 * per_value, 6 * per_value, per_value)
    assert warmups.BINS_PER_VALUE > MODE_WINDOW  # an encoding's mode never reaches the next value's bin
    with pytest.raises(ValueError, match=re.escape("need 4 latent dimensions (one plane each); model.latent_dim=2")):
        Trainer(config.replace(model={"latent_dim": 2}))  # the latent's error, not the bins'


def test__cycles_warmup__angle_bins_cycles_beyond_the_limit_names_the_setting(tiny_config, monkeypatch):
    monkeypatch.setattr(warmups, "MAX_CYCLE_BINS", 10)
    config = _cycles_config(tiny_config, grid_shape=[4, 6]).replace(model={"angle_bins": "cycles"})
    message = "needs 12 bins per circle (the least common multiple of the cycle lengths [4, 6]), more than 10: set"
    with pytest.raises(ValueError, match=re.escape(f"{message} model.angle_bins to a number")):
        Trainer(config)


@pytest.mark.parametrize(
    ("longest_cycle", "small_world_states", "bins"),
    [
        (64, 2_000, None),  # short cycles in a small world: a regression places them right
        (5, 2_000, 12),  # a cycle longer than the limit: the cycles' bins, lcm(4, 6)
        (64, 23, 12),  # more states (24) than a small world's: the cycles' bins too
        (64, 24, None),  # exactly a small world's
    ],
)
def test__angle_bins_auto__gives_bins_where_a_cycle_is_long_or_the_world_large(
    tiny_config, monkeypatch, longest_cycle, small_world_states, bins
):
    monkeypatch.setattr(warmups, "AUTO_BINS_LONGEST_CYCLE", longest_cycle)
    monkeypatch.setattr(warmups, "SMALL_WORLD_STATES", small_world_states)
    config = _cycles_config(tiny_config, grid_shape=[4, 6]).replace(model={"angle_bins": "auto"})
    trainer = Trainer(config)
    assert trainer.config.model.angle_bins == trainer.model.angle_bins == bins  # stored and built
    assert Trainer(tiny_config.replace(model={"angle_bins": "auto"})).config.model.angle_bins is None  # graph


def test__walk_steps_auto__walks_steps_per_state_within_bounds_and_stores_the_number(
    tiny_config, monkeypatch, tmp_path
):
    monkeypatch.setattr(warmups, "AUTO_WALK_STEPS", (50, 300))
    config = _cycles_config(tiny_config).replace(warmup={"cycles": {"walk_steps": "auto"}})
    trainer = Trainer(config, tmp_path)
    assert trainer.config.warmup.cycles.walk_steps == warmups.WALK_STEPS_PER_STATE * 25 == 100  # 5 x 5 states
    trainer.train(progress=False)
    assert len(trainer.warmup.walk.actions) == 100
    stored = TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert stored.warmup.cycles.walk_steps == 100
    monkeypatch.setattr(warmups, "AUTO_WALK_STEPS", (20, 60))
    assert Trainer(config).config.warmup.cycles.walk_steps == 60  # the upper bound
    monkeypatch.setattr(warmups, "AUTO_WALK_STEPS", (150, 300))
    assert Trainer(config).config.warmup.cycles.walk_steps == 150  # the lower bound


@pytest.mark.parametrize(
    ("lengths", "budget"),
    [
        ((5, 5), (1000, 150)),  # GridWorld 5 x 5
        ((10, 10, 15), (1000, 150)),  # Shapes3D's subset: 1,500 states
        ((4, 24, 8), (1000, 150)),  # Cars3D with eight cars: 768 states, no cycle longer than 64
        ((7, 7, 3, 5, 5), (7200, 2400)),  # the mixed GridWorld: 3,675 states
        ((10, 10, 10, 8, 4, 15), (7200, 2400)),  # the whole Shapes3D
        ((4, 24, 183), (7200, 3600)),  # Cars3D: a cycle of 183 cars
    ],
)
def test__auto_budget__gives_small_worlds_the_defaults_and_larger_ones_the_measured_budgets(lengths, budget):
    assert warmups.auto_budget(lengths) == budget


def test__auto_budget__with_steps_of_ones_own_keeps_a_large_worlds_share_of_warm_up():
    assert warmups.auto_budget((4, 24, 183), 6000) == (6000, 3000)  # Cars3D: half, as once measured
    assert warmups.auto_budget((4, 24, 183), 1000) == (1000, 500)  # not a run of warm-up alone
    assert warmups.auto_budget((10, 10, 10, 8, 4, 15), 3000) == (3000, 1000)  # the whole Shapes3D: a third
    assert warmups.auto_budget((5, 5), 40) == (40, 150)  # a small world's warm-up stays as it was


def test__steps_auto__are_chosen_from_the_cycles_found_and_stored_as_numbers(tiny_config, monkeypatch, tmp_path):
    config = _cycles_config(tiny_config).replace(steps="auto", warmup={"steps": "auto"})
    small = Trainer(config)
    assert (small.config.steps, small.config.warmup.steps, small.warmup.steps) == (1000, 150, 150)  # 25 states
    monkeypatch.setattr(warmups, "SMALL_WORLD_STATES", 24)
    monkeypatch.setattr(warmups, "LARGE_WORLD_STEPS", 7)
    monkeypatch.setattr(warmups, "LARGE_WORLD_WARMUP_STEPS", 3)
    trainer = Trainer(config, tmp_path)
    assert (trainer.config.steps, trainer.config.warmup.steps, trainer.warmup.steps) == (7, 3, 3)
    assert trainer.schedules.dynamics_weight(2) == 0 < trainer.schedules.dynamics_weight(3)  # the warm-up's 3 steps
    trainer.train(progress=False)
    assert trainer.step == 7
    stored = TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert (stored.steps, stored.warmup.steps) == (7, 3)  # resumes with the same budget on any machine
    own = Trainer(config.replace(steps=5, warmup={"steps": 1}))
    assert (own.config.steps, own.config.warmup.steps) == (5, 1)  # numbers of one's own are kept
    shorter = Trainer(config.replace(steps=14))
    assert (shorter.config.steps, shorter.config.warmup.steps, shorter.warmup.steps) == (14, 6, 6)  # 3 of 7
    graph = Trainer(tiny_config.replace(steps="auto", warmup={"steps": "auto"}))  # reads no cycles: the defaults
    assert (graph.config.steps, graph.config.warmup.steps) == (DEFAULT_STEPS, DEFAULT_WARMUP_STEPS)


@pytest.mark.parametrize(
    ("lengths", "device", "native", "bf16"),
    [
        ((4, 24, 183), "cpu", True, True),  # Cars3D on a CPU with AVX512-BF16 or AMX
        ((10, 10, 10, 8, 4, 15), "cpu", True, True),  # the whole Shapes3D
        ((7, 7, 3, 5, 5), "cpu", True, True),  # the mixed GridWorld
        ((4, 24, 183), "cpu", False, False),  # a CPU that would emulate it
        ((4, 24, 183), "cuda", True, False),  # CUDA: slower there on an H200
        ((5, 5), "cpu", True, False),  # a small world keeps the float32 it was measured with
        ((10, 10, 15), "cpu", True, False),
    ],
)
def test__auto_bf16__on_large_worlds_where_the_cpu_computes_bfloat16(monkeypatch, lengths, device, native, bf16):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert warmups.auto_bf16(lengths, torch.device(device)) is bf16


def test__bf16_auto__is_chosen_from_the_world_found_and_stored_as_a_bool(tiny_config, monkeypatch, tmp_path):
    config = _cycles_config(tiny_config).replace(bf16="auto")
    monkeypatch.setattr(warmups, "computes_bf16", lambda device: device.type == "cpu")
    assert Trainer(config).config.bf16 is False  # 25 states: a small world
    monkeypatch.setattr(warmups, "SMALL_WORLD_STATES", 24)
    trainer = Trainer(config, tmp_path)
    assert trainer.config.bf16 is True
    trainer.train(progress=False)
    assert all(np.isfinite(row["loss"]) for row in trainer.history)
    assert TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text())).bf16 is True
    assert Trainer(config.replace(bf16=False)).config.bf16 is False  # a choice of one's own is kept
    monkeypatch.setattr(warmups, "computes_bf16", lambda device: False)
    assert Trainer(config).config.bf16 is False
    graph = Trainer(tiny_config.replace(bf16="auto"))  # reads no cycles: float32
    assert graph.config.bf16 is False


def test__stored_warmup__is_rebuilt_from_a_run_config():
    graph = stored_warmup({"warmup": {"kind": "graph", "steps": 30}})
    assert graph.steps == 30 and graph.terms == ("target",)
    assert stored_warmup({"warmup": {"kind": "none", "steps": 30}}).steps == 0
    assert stored_warmup({"warmup": {"kind": "spectral", "steps": 30}}).terms == ("smoothness", "whitening")
    assert stored_warmup({"warmup": {"kind": "cycles"}}) is None  # "auto" steps: not a trainer's stored config
    assert stored_warmup({}) is None and stored_warmup(None) is None
    assert stored_warmup({"warmup": {"kind": "unknown"}}) is None
