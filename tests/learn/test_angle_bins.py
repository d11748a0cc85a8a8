"""``model.angle_bins``: angle classification in the encoder, a look-up table of angles in the decoder."""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dyndis_learn import Learner, TrainConfig, load_model
from dyndis_learn.model import WorldModel, angle_bin_neighbours, angle_bin_weights
from dyndis_learn.networks import _modulate_in_dtype
from dyndis_learn.objective import FrameTargets, LossWeights, TrainBatch, terms


def _points(angles: torch.Tensor) -> torch.Tensor:
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def test__angle_bin_weights__one_hot_on_bins_interpolated_between_and_wrapped():
    bins = 8
    on_bins = angle_bin_weights(_points(torch.arange(bins) * 2 * math.pi / bins), bins)[:, 0]
    torch.testing.assert_close(on_bins, torch.eye(bins), atol=1e-6, rtol=0)
    between = angle_bin_weights(_points(torch.tensor([2.25 * 2 * math.pi / bins])), bins)[0, 0]
    torch.testing.assert_close(between[[2, 3]], torch.tensor([0.75, 0.25]), atol=1e-5, rtol=0)
    assert between.sum() == pytest.approx(1.0) and (between > 0).sum() == 2
    wrapped = angle_bin_weights(_points(torch.tensor([-0.5 * 2 * math.pi / bins])), bins)[0, 0]  # between 7 and 0
    torch.testing.assert_close(wrapped[[7, 0]], torch.tensor([0.5, 0.5]), atol=1e-5, rtol=0)
    # the circular mean of the weights comes back to the angle, within (2 pi / M)^3 / 32
    angles = torch.rand(2000, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    centres = _points(torch.arange(bins) * 2 * math.pi / bins)
    mean = angle_bin_weights(_points(angles), bins)[:, 0] @ centres
    error = torch.remainder(torch.atan2(mean[:, 1], mean[:, 0]) - angles + math.pi, 2 * math.pi) - math.pi
    assert error.abs().max() < (2 * math.pi / bins) ** 3 / 32


def test__angle_bin_neighbours__are_the_nonzero_weights():
    angles = torch.rand(500, 3, generator=torch.Generator().manual_seed(1)) * 4 * math.pi - 2 * math.pi
    latents = _points(angles).flatten(-2)
    indices, weights = angle_bin_neighbours(latents, 12)
    assert indices.shape == weights.shape == (500, 3, 2) and indices.min() >= 0 and indices.max() < 12
    dense = torch.zeros(500, 3, 12).scatter_add_(-1, indices, weights)
    torch.testing.assert_close(dense, angle_bin_weights(latents, 12), atol=1e-5, rtol=0)


def _model(bins=16, lookup_feature_map=False, lookup_modulation=False):
    torch.manual_seed(0)
    return WorldModel(
        (16, 16, 3),
        4,
        latent_dim=4,
        channels=(8, 8),
        hidden_dim=32,
        latent_manifold="torus",
        angle_bins=bins,
        lookup_feature_map=lookup_feature_map,
        lookup_modulation=lookup_modulation,
    )


def test__lookup_feature_map__adds_each_bins_own_feature_map_after_the_dense_layers():
    model = _model(lookup_feature_map=True)
    assert model.decoder.lookup.weight.shape == (2 * 16, 8 * 4 * 4)  # a first feature map per bin and circle
    assert _model(bins=None, lookup_feature_map=True).decoder.lookup is None  # no bins: no effect
    latents = (_points(torch.tensor([[3 * 2 * math.pi / 16, 2.25 * 2 * math.pi / 16]])) * 0.5**0.5).flatten(-2)
    logits = model.decode_logits(latents)
    weights = angle_bin_weights(latents, 16).flatten(-2)
    hidden = model.decoder.head[:-1](torch.cat([latents, weights], -1))
    table = model.decoder.lookup.weight  # circle 0 on bin 3; circle 1 at 3/4 of bin 2 and 1/4 of bin 3
    features = torch.relu(hidden + table[3] + 0.75 * table[16 + 2] + 0.25 * table[16 + 3])
    expected = model.decoder.deconvs(features.view(1, 8, 4, 4)).permute(0, 2, 3, 1)
    torch.testing.assert_close(logits, expected)
    (grad,) = torch.autograd.grad(logits.sum(), model.decoder.lookup.weight)
    assert set(grad.abs().sum(-1).nonzero().flatten().tolist()) == {3, 18, 19}  # only the rows read learn
    (to_latent,) = torch.autograd.grad(model.decode_logits(latents.requires_grad_()).sum(), latents)
    assert to_latent.abs().sum() > 0  # through the coordinates, as without the table


def test__lookup_modulation__scales_and_shifts_each_hidden_layers_channels_by_the_bins_read():
    model = _model(lookup_feature_map=True, lookup_modulation=True)
    table = model.decoder.modulation.weight
    assert table.shape == (2 * 16, 2 * 8) and not table.any()  # (scale, shift) of the one hidden layer's 8 channels
    assert _model(lookup_modulation=True).decoder.modulation is None  # no feature maps: no effect
    latents = (_points(torch.tensor([[3 * 2 * math.pi / 16, 2.25 * 2 * math.pi / 16]])) * 0.5**0.5).flatten(-2)
    plain = model.decode_logits(latents)
    with torch.no_grad():
        table.normal_()
    logits = model.decode_logits(latents)
    assert not torch.allclose(logits, plain)  # zero rows are the identity; these are not
    weights = angle_bin_weights(latents, 16).flatten(-2)
    hidden = model.decoder.head[:-1](torch.cat([latents, weights], -1))
    maps = model.decoder.lookup.weight
    features = torch.relu(hidden + maps[3] + 0.75 * maps[16 + 2] + 0.25 * maps[16 + 3]).view(1, 8, 4, 4)
    rows = table[3] + 0.75 * table[16 + 2] + 0.25 * table[16 + 3]  # weighted as the feature maps are
    first, relu, last = model.decoder.deconvs
    x = first(features) * (1 + rows[:8, None, None]) + rows[8:, None, None]
    torch.testing.assert_close(logits, last(relu(x)).permute(0, 2, 3, 1))
    (grad,) = torch.autograd.grad(logits.sum(), table)
    assert set(grad.abs().sum(-1).nonzero().flatten().tolist()) == {3, 18, 19}  # only the rows read learn


def test__lookup_modulation_in_bfloat16__keeps_the_small_differences_between_bins_scales():
    # look-alike cars' bins differ slightly: 1 + scale in bfloat16 (steps of 1/128) would make them equal
    x = torch.linspace(0.5, 4.0, 64, dtype=torch.bfloat16)
    near, far = torch.tensor(0.150), torch.tensor(0.152)
    assert (1 + near).bfloat16() == (1 + far).bfloat16()
    no_shift = torch.tensor(0.0)
    near_x, far_x = _modulate_in_dtype(x, near, no_shift), _modulate_in_dtype(x, far, no_shift)
    assert (far_x != near_x).float().mean() > 0.25
    assert near_x.dtype == torch.bfloat16
    torch.testing.assert_close(near_x.double(), x.double() * (1 + near.double()), rtol=2**-7, atol=0)


def test__lookup_modulation__keeps_the_hidden_layers_in_bfloat16_under_an_autocast():
    # float32 (scale, shift) rows would promote each modulated layer to float32 and the next convolution would
    # cast it back: two copies of the layer's largest tensor, forward and backward
    model = _model(lookup_feature_map=True, lookup_modulation=True)
    with torch.no_grad():
        model.decoder.modulation.weight.normal_()
    read = []
    for layer in model.decoder.deconvs:
        if isinstance(layer, torch.nn.ConvTranspose2d):
            layer.register_forward_pre_hook(lambda _, inputs: read.append(inputs[0].dtype))
    latents = (_points(torch.tensor([[0.3, 1.1], [2.0, -0.4]])) * 0.5**0.5).flatten(-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model.decode_logits(latents)
    assert read[1:] == [torch.bfloat16] and logits.dtype == torch.bfloat16  # the first reads the small feature map
    torch.testing.assert_close(logits.float(), model.decode_logits(latents), atol=0.05, rtol=0.05)
    logits.float().sum().backward()
    assert model.decoder.modulation.weight.grad.dtype == torch.float32  # the table stays float32 and learns
    assert model.decoder.modulation.weight.grad.abs().sum() > 0


def _trained_three_steps(tiny_config):
    """A cycles run with angle bins on the tiny GridWorld, three steps in: its config and learner."""
    config = tiny_config.replace(
        steps=3,
        model={"latent_manifold": "torus", "angle_bins": 10},
        warmup={"kind": "cycles", "steps": 2, "cycles": {"walk_steps": 200, "starts": 8, "batch_size": 16}},
    )
    learner = Learner(config)
    learner.train(progress=False)
    return config, learner


def test__lookup_feature_map__is_stored_and_loaded_with_the_model(tiny_config, tmp_path):
    config, learner = _trained_three_steps(tiny_config)
    assert learner.trainer.model.lookup_feature_map and learner.trainer.model.lookup_modulation  # the defaults
    assert learner.trainer.model.decoder.modulation.weight.any()  # trained away from the identity
    model = load_model(learner.save(tmp_path / "run.safetensors"))
    torch.testing.assert_close(model.decoder.lookup.weight, learner.trainer.model.decoder.lookup.weight)
    torch.testing.assert_close(model.decoder.modulation.weight, learner.trainer.model.decoder.modulation.weight)
    without = Learner(config.replace(model={"lookup_feature_map": False}))
    assert without.trainer.model.decoder.lookup is None


def test__learner_encodes_and_predicts_with_the_runs_decoder_checked_encodings(tiny_config):
    config, learner = _trained_three_steps(tiny_config)
    model = learner.trainer.model.eval()
    frames = learner.trainer.warmup.walk.frames[:6]
    with torch.no_grad():
        checked = model.encode_by_synthesis(torch.from_numpy(frames)).numpy()
        own = model.encode(torch.from_numpy(frames)).numpy()
    assert not np.allclose(checked, own)  # three steps in, the encoder hesitates
    np.testing.assert_allclose(learner.encode(frames), checked, atol=1e-6)  # evaluation.synthesis_modes="auto"
    np.testing.assert_allclose(learner.encode(frames, synthesis_modes=1), own, atol=1e-6)
    np.testing.assert_allclose(
        learner.encode(frames.reshape(2, 3, *frames.shape[1:])).reshape(6, -1), checked, atol=1e-6
    )
    predicted = learner.predict(frames, np.zeros((6, 2), dtype=np.int64))
    assert predicted.shape == (6, 3, *frames.shape[1:])
    np.testing.assert_array_equal(predicted[:, 0], learner.decode(checked))
    plain = Learner(config.replace(evaluation={"synthesis_modes": 1}))  # e.g. a stored run of config version 10
    with torch.no_grad():
        own = plain.trainer.model.eval().encode(torch.from_numpy(frames)).numpy()
    np.testing.assert_allclose(plain.encode(frames), own, atol=1e-6)


def test__angle_bins_model__encodes_onto_the_torus_and_decodes_any_point():
    model = _model()
    frames = torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8)
    encodings = model.encode(frames)
    torch.testing.assert_close(encodings.reshape(5, 2, 2).norm(dim=-1), torch.full((5, 2), 0.5**0.5))
    assert model.encoder.head[-1].out_features == 2 * 16 and model.decoder.head[0].in_features == 4 + 2 * 16
    assert model.decode(encodings).shape == (5, 16, 16, 3)


def test__angle_cross_entropy__is_least_for_logits_on_the_target_bins():
    model = _model(bins=8)
    targets = (_points(torch.tensor([[2 * 2 * math.pi / 8, 5.5 * 2 * math.pi / 8]])) * 0.5**0.5).flatten(-2)
    right = torch.full((1, 2, 8), -20.0)
    right[0, 0, 2] = 20.0
    right[0, 1, [5, 6]] = 20.0
    wrong = right.roll(1, dims=-1)
    assert model.angle_cross_entropy(right.flatten(-2), targets) < 0.8  # log 2 for the split target, ~0 else
    assert model.angle_cross_entropy(wrong.flatten(-2), targets) > 10


def test__angle_bins__need_a_torus():
    with pytest.raises(ValueError, match=r"`angle_bins` needs latent_manifold='torus'"):
        WorldModel((16, 16, 3), 4, latent_dim=4, angle_bins=8)
    with pytest.raises(ValueError, match=r"model.angle_bins needs model.latent_manifold='torus'"):
        TrainConfig.from_dict({"model": {"angle_bins": 8}, "warmup": {"kind": "graph"}})
    with pytest.raises(ValueError, match="angle_bins"):
        TrainConfig.from_dict({"model": {"angle_bins": 1}})


def test__the_target_term_is_the_mean_points_distance_plus_the_angle_cross_entropy():
    model = _model()
    frames = torch.randint(0, 256, (3, 1, 16, 16, 3), dtype=torch.uint8)
    batch = TrainBatch(frames, torch.zeros(3, 0, dtype=torch.int64))
    maps = (_points(torch.tensor([[0.3, 1.2], [2.0, -1.0], [0.0, 3.0]])) * 0.5**0.5).flatten(-2)
    targets = FrameTargets(maps, torch.tensor([[0], [1], [2]]))
    values = terms(model, batch, LossWeights(target=1.0), targets)
    outputs = model.encoder(frames[:, 0].float() / 255)
    distance = (model.angle_mean_points(outputs) - maps).square().sum(-1).mean()
    expected = distance + model.angle_cross_entropy(outputs, maps)
    torch.testing.assert_close(values["target"], expected)


def test__the_encoding_is_the_mode_not_a_mean_between_values():
    model = _model()
    bins = model.angle_bins
    logits = torch.full((1, 2, bins), -1e4)
    logits[0, :, 2], logits[0, :, 10] = 1.0, 0.5  # two values, the first more probable: encoded at bin 2, not between
    logits[0, :, 3] = 0.0  # its neighbour counts, interpolating towards it
    weights = torch.tensor([1.0, 0.0]).exp()
    angle = torch.atan2(
        weights @ torch.tensor([2, 3]).mul(2 * math.pi / bins).sin(),
        weights @ torch.tensor([2, 3]).mul(2 * math.pi / bins).cos(),
    )
    expected = (_points(angle.expand(1, 2)) * 0.5**0.5).flatten(-2)
    torch.testing.assert_close(model.latents(logits.flatten(-2)), expected)
    wrapped = torch.full((1, 2, bins), -1e4)
    wrapped[0, :, 0], wrapped[0, :, bins - 1] = 1.0, 1.0  # neighbours across the wrap: halfway between them
    angle = torch.tensor(-math.pi / bins)
    torch.testing.assert_close(
        model.latents(wrapped.flatten(-2)), (_points(angle.expand(1, 2)) * 0.5**0.5).flatten(-2), atol=1e-6, rtol=0
    )


def test__the_mean_point_is_inside_the_circle_while_spread_and_the_encoding_once_on_one_bin():
    model = _model()
    bins = model.angle_bins
    spread = torch.zeros(1, 2 * bins)  # every bin equally likely on both circles
    torch.testing.assert_close(model.angle_mean_points(spread), torch.zeros(1, 4), atol=1e-6, rtol=0)
    peaked = torch.full((1, 2, bins), -1e4)
    peaked[0, 0, 3], peaked[0, 1, 5] = 0.0, 0.0
    peaked = peaked.flatten(-2)
    torch.testing.assert_close(model.angle_mean_points(peaked), model.latents(peaked))
    angles = 2 * math.pi * torch.tensor([3, 5]) / bins
    torch.testing.assert_close(model.latents(peaked), (_points(angles[None]) * 0.5**0.5).flatten(-2))

    # where the distribution is spread, the distances to a target of the mean point and of the encoding (the
    # mode's) have bounded gradients; the mean point's projection onto the circle has not (its radius is ~0)
    def projected(logits):
        return (F.normalize(model.angle_mean_points(logits).unflatten(-1, (2, 2)), dim=-1) * 0.5**0.5).flatten(-2)

    near = spread + 1e-4 * torch.randn(1, 2 * bins, generator=torch.Generator().manual_seed(0))
    target = model.latents(peaked)
    gradients = []
    for point in (model.angle_mean_points, model.latents, projected):
        logits = near.clone().requires_grad_()
        (point(logits) - target).square().sum().backward()
        gradients.append(logits.grad.norm())
    assert gradients[2] > 100 * max(gradients[:2])


def test__a_cycles_run_with_angle_bins_learns_its_map_and_loads_back(tiny_config, tmp_path):
    config = tiny_config.replace(
        steps=44,
        optim={"lr": 1e-2},
        model={"latent_manifold": "torus", "angle_bins": 10},  # every 5-cycle angle a bin's own: no split targets
        warmup={"kind": "cycles", "steps": 40, "cycles": {"walk_steps": 200, "starts": 8, "batch_size": 32}},
    )
    learner = Learner(config)
    learner.train(progress=False)
    history = learner.history
    assert history[-1]["target"] < 0.1 * history[0]["target"]  # 4.46 -> 0.02 here
    path = learner.save(tmp_path / "run.safetensors")
    model = load_model(path)
    assert model.angle_bins == 10
    frames = learner.trainer.warmup.walk.frames[:8]
    with torch.no_grad():
        own, checked = model.encode(torch.from_numpy(frames)), model.encode_by_synthesis(torch.from_numpy(frames))
    np.testing.assert_array_equal(learner.encode(frames, synthesis_modes=1), own.numpy())
    np.testing.assert_array_equal(learner.encode(frames), checked.numpy())  # evaluation.synthesis_modes="auto"


def test__the_decoder_look_up_passes_no_gradient_to_the_latent():
    model = _model()
    latents = (_points(torch.tensor([[0.3, 2.0]])) * 0.5**0.5).flatten(-2).requires_grad_()
    (grad,) = torch.autograd.grad(model.decode_logits(latents).sum(), latents)
    fixed = angle_bin_weights(latents, 16).flatten(-2).detach()  # the look-up weights as constants
    (through_coordinates,) = torch.autograd.grad(model.decoder(torch.cat([latents, fixed], -1)).sum(), latents)
    torch.testing.assert_close(grad, through_coordinates)
    (through_weights,) = torch.autograd.grad(angle_bin_weights(latents, 16).square().sum(), latents)
    assert through_weights.abs().sum() > 0  # the weights do depend on the latent: cut on purpose


def test__with_lookup_targets_the_decoder_reads_known_frames_places_and_the_encoder_keeps_its_gradient():
    model = _model()
    frames = torch.randint(0, 256, (3, 1, 16, 16, 3), dtype=torch.uint8)
    batch = TrainBatch(frames, torch.zeros(3, 0, dtype=torch.int64))
    maps = (_points(torch.tensor([[0.3, 1.2], [2.0, -1.0]])) * 0.5**0.5).flatten(-2)
    states = torch.tensor([[0], [-1], [1]])  # the second frame's place is unknown: it reads its encoding
    read = terms(model, batch, LossWeights(), FrameTargets(maps, states, lookup=True))["autoencoder_bce"]

    encodings = model.encode(frames[:, 0])
    places = torch.stack([maps[0], encodings[1].detach(), maps[1]])
    weights = angle_bin_weights(places, 16).flatten(-2)
    logits = model.decoder(torch.cat([encodings, weights], -1))
    images = frames[:, 0].float() / 255
    expected = F.binary_cross_entropy_with_logits(logits, images)  # the mean over frames of each mean
    torch.testing.assert_close(read, expected)
    assert read != terms(model, batch, LossWeights(), FrameTargets(maps, states))["autoencoder_bce"]
    (grad,) = torch.autograd.grad(read, model.encoder.head[-1].weight)
    assert grad.abs().sum() > 0  # the coordinates are still the encoding's


def test__decoder_reads_targets_reaches_the_trainers_objective(tiny_config):
    config = tiny_config.replace(
        steps=3,
        model={"latent_manifold": "torus", "angle_bins": 10},
        warmup={"kind": "cycles", "steps": 2, "cycles": {"walk_steps": 200, "starts": 8, "batch_size": 16}},
    )
    histories = {}
    for reads in (False, True):
        learner = Learner(config.replace(warmup={"cycles": {"decoder_reads_targets": reads}}))
        learner.train(progress=False)
        histories[reads] = learner.history
    assert histories[True][0]["target"] == histories[False][0]["target"]  # the same encoder at step 0
    assert histories[True][0]["autoencoder_bce"] != histories[False][0]["autoencoder_bce"]


class _FixedLogits(torch.nn.Module):
    """An encoder that answers the same angle logits for every frame."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.logits.flatten().expand(len(frames), -1)


class _PerFrameLogits(torch.nn.Module):
    """An encoder that answers frame ``i`` of a batch with the angle logits ``logits[i]`` (circles, bins)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.logits[: len(frames)].flatten(1)


def test__encode_by_synthesis__lets_the_decoder_choose_among_the_encoders_modes():
    model = _model(bins=8, lookup_feature_map=True).eval()
    logits = torch.full((2, 8), -1e4)
    logits[0, 2], logits[0, 5] = 1.0, 0.5  # circle 0 hesitates: bin 2 most probable, bin 5 second
    logits[1, 6] = 1.0  # circle 1 is sure
    model.encoder = _FixedLogits(logits)
    bin_angle = 2 * math.pi / 8
    truth = (_points(torch.tensor([5 * bin_angle, 6 * bin_angle])) * 0.5**0.5).flatten()[None]
    frame = model.decode(truth).detach()  # the decoder's own picture of the second mode
    with torch.no_grad():
        plain = model.encode(frame)
        torch.testing.assert_close(model.encode_by_synthesis(frame, modes=1), plain)
        torch.testing.assert_close(model.encode_by_synthesis(frame, modes=2), truth)
        torch.testing.assert_close(model.encode_by_synthesis(frame, modes=5), truth)  # fewer peaks than modes
    assert not torch.allclose(plain, truth)
    with torch.no_grad():  # the mode holds e / (e + e^0.5) = 62% of circle 0: sure enough at 0.6, not at 0.99
        torch.testing.assert_close(model.encode_by_synthesis(frame, modes=2, confidence=0.6), plain)
        torch.testing.assert_close(model.encode_by_synthesis(frame, modes=2, confidence=0.99), truth)
        torch.testing.assert_close(model.encode_by_synthesis(frame, modes=2, confidence=None), truth)


def test__encode_by_synthesis__keeps_the_mode_under_which_the_frame_is_most_likely():
    # a white frame; circle 0 hesitates between bins 2 and 5, whose pictures are a sharp one (sure and right on half
    # the pixels, sure and wrong on the rest) and a blurred one: the sharp one is nearer in squared error, the
    # blurred one makes the frame likelier (the decoder's Bernoulli loss), and the check keeps the blurred one
    model = _model(bins=8, lookup_feature_map=True).eval()
    logits = torch.full((2, 8), -1e4)
    logits[0, 2], logits[0, 5], logits[1, 6] = 1.0, 0.5, 1.0
    model.encoder = _FixedLogits(logits)
    frame = torch.full((1, 16, 16, 3), 255, dtype=torch.uint8)
    sharp = torch.where(torch.arange(16 * 16 * 3).reshape(16, 16, 3) % 2 == 0, 0.9999, 0.02)
    blurred = torch.full((16, 16, 3), 0.3)
    assert (sharp - 1).square().sum() < (blurred - 1).square().sum()
    bin_angle = 2 * math.pi / 8

    def decode_logits(latents: torch.Tensor, lookup: torch.Tensor | None = None) -> torch.Tensor:
        at_bin_2 = (torch.atan2(latents[..., 1], latents[..., 0]) - 2 * bin_angle).abs() < 0.1
        return torch.where(at_bin_2[..., None, None, None], sharp.logit(), blurred.logit())

    model.decode_logits = decode_logits
    with torch.no_grad():
        checked = model.encode_by_synthesis(frame, modes=2)[0]
    angle = torch.atan2(checked[1], checked[0]).remainder(2 * math.pi)
    assert angle.item() == pytest.approx(5 * bin_angle, abs=1e-4)


def test__encode_by_synthesis__decodes_only_the_frames_whose_circle_hesitates():
    model = _model(bins=8, lookup_feature_map=True).eval()
    logits = torch.full((2, 2, 8), -1e4)
    logits[:, 0, 2], logits[:, 0, 5], logits[:, 1, 6] = 1.0, 0.5, 1.0  # circle 0 hesitates in both frames...
    logits[1, 0, 5] = -1e4  # ...but in the second it has one mode only
    model.encoder = _PerFrameLogits(logits)
    decoded: list[int] = []
    model.decoder.register_forward_hook(lambda module, args, out: decoded.append(len(args[0])))
    frames = torch.zeros(2, 16, 16, 3, dtype=torch.uint8)
    with torch.no_grad():
        model.encode_by_synthesis(frames, modes=2)
    assert decoded == [2]  # the first frame's two candidates, once


def test__encode_by_synthesis__needs_angle_bins_and_a_positive_count():
    model = _model(bins=8)
    frames = torch.zeros(1, 16, 16, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"`modes` must be a positive integer, got 0"):
        model.encode_by_synthesis(frames, modes=0)
    for confidence in (0, 1.5, "high"):
        with pytest.raises(ValueError, match=r"`confidence` must be a share in \(0, 1\] or None"):
            model.encode_by_synthesis(frames, confidence=confidence)
    plain = WorldModel((16, 16, 3), 4, latent_dim=4, channels=(8, 8), hidden_dim=32)
    with pytest.raises(ValueError, match="encode_by_synthesis needs a model with `angle_bins`"):
        plain.encode_by_synthesis(frames)


# -- bins per circle ---------------------------------------------------------------------------------------------

PER_CIRCLE = (8, 12)  # circle 0: 8 bins, circle 1: 12 (its logits are the encoder's widest)


def _padded_logits(first: torch.Tensor, second: torch.Tensor, padding: float = 50.0) -> torch.Tensor:
    """Encoder outputs (B, 2 * 12) of a PER_CIRCLE model: circle 0's 8 logits then 4 unused, circle 1's 12."""
    filler = torch.full((len(first), 12 - 8), padding)  # large: a model that read them would be thrown off
    return torch.cat([first, filler, second], dim=-1)


def test__angle_bin_weights_per_circle__are_each_circles_own_bins_zero_past_them():
    angles = torch.rand(300, 2, generator=torch.Generator().manual_seed(2)) * 4 * math.pi - 2 * math.pi
    latents = _points(angles).flatten(-2)
    weights = angle_bin_weights(latents, PER_CIRCLE)
    assert weights.shape == (300, 2, 12)
    torch.testing.assert_close(weights[:, 0, :8], angle_bin_weights(latents, 8)[:, 0])
    assert not weights[:, 0, 8:].any()  # circle 0 has no bins there
    torch.testing.assert_close(weights[:, 1], angle_bin_weights(latents, 12)[:, 1])
    indices, row_weights = angle_bin_neighbours(latents, PER_CIRCLE)
    assert indices[:, 0].max() < 8 and indices[:, 1].max() < 12
    dense = torch.zeros(300, 2, 12).scatter_add_(-1, indices, row_weights)
    torch.testing.assert_close(dense, weights, atol=1e-5, rtol=0)


def test__a_model_with_bins_per_circle_reads_each_circle_as_a_model_of_its_bins():
    model, eight, twelve = _model(bins=PER_CIRCLE), _model(bins=8), _model(bins=12)
    assert model.bins == PER_CIRCLE and model.max_bins == 12 and _model(bins=(8, 8)).bins == 8  # equal: one number
    assert model.encoder.head[-1].out_features == 2 * 12  # every circle the widest's logits; the decoder reads
    assert model.decoder.head[0].in_features == 4 + 8 + 12  # each circle's own bins
    logits = torch.randn(5, 24, generator=torch.Generator().manual_seed(3))
    first, second = logits[:, :8], logits[:, 12:]
    outputs = _padded_logits(first, second)
    for read in ("latents", "angle_mean_points"):
        got = getattr(model, read)(outputs)
        torch.testing.assert_close(got[:, :2], getattr(eight, read)(torch.cat([first, first], -1))[:, :2])
        torch.testing.assert_close(got[:, 2:], getattr(twelve, read)(torch.cat([second, second], -1))[:, 2:])
    targets = model.latents(_padded_logits(torch.randn(5, 8), torch.randn(5, 12)))
    loss = model.angle_cross_entropy(outputs.requires_grad_(), targets)
    expected = (
        eight.angle_cross_entropy(torch.cat([first, first], -1), targets[:, [0, 1, 0, 1]])
        + twelve.angle_cross_entropy(torch.cat([second, second], -1), targets[:, [2, 3, 2, 3]])
    ) / 2
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss, outputs)
    assert grad[:, :8].abs().sum() > 0 and not grad[:, 8:12].any()  # the unused logits learn nothing


def test__a_decoder_with_bins_per_circle_reads_each_circles_own_rows():
    model = _model(bins=PER_CIRCLE, lookup_feature_map=True, lookup_modulation=True)
    assert model.decoder.lookup.weight.shape == (8 + 12, 8 * 4 * 4)  # one feature map per bin of each circle
    assert model.decoder.modulation.weight.shape == (8 + 12, 2 * 8)
    latents = (_points(torch.tensor([[3 * 2 * math.pi / 8, 5.25 * 2 * math.pi / 12]])) * 0.5**0.5).flatten(-2)
    logits = model.decode_logits(latents)
    weights = angle_bin_weights(latents, PER_CIRCLE)
    hidden = model.decoder.head[:-1](torch.cat([latents, weights[:, 0, :8], weights[:, 1]], -1))
    table = model.decoder.lookup.weight  # circle 0 on bin 3; circle 1 at 3/4 of bin 5 and 1/4 of bin 6
    features = torch.relu(hidden + table[3] + 0.75 * table[8 + 5] + 0.25 * table[8 + 6]).view(1, 8, 4, 4)
    first, relu, last = model.decoder.deconvs
    torch.testing.assert_close(logits, last(relu(first(features))).permute(0, 2, 3, 1))  # zero modulation rows
    (grad,) = torch.autograd.grad(logits.sum(), table)
    assert set(grad.abs().sum(-1).nonzero().flatten().tolist()) == {3, 13, 14}  # only the rows read learn


def _window_mean(logits: torch.Tensor, bins: list[int], count: int) -> float:
    """The angle of the circular mean of softmax ``logits`` over ``bins`` of a circle of ``count`` bins."""
    weights, angles = logits[bins].exp(), torch.tensor(bins) * (2 * math.pi / count)
    return math.atan2(weights @ angles.sin(), weights @ angles.cos())


def test__encode_by_synthesis_with_bins_per_circle__wraps_each_circle_at_its_own_bins():
    model = _model(bins=PER_CIRCLE, lookup_feature_map=True).eval()
    first = torch.tensor([[0.9, 0.5, 0.4, 0.6, 0.8, 0.3, 0.2, 1.0]])  # peaks at bin 7 (across the wrap) and 4
    second = torch.full((1, 12), -10.0)
    second[0, 2] = 1.0
    model.encoder = _FixedLogits(_padded_logits(first, second)[0])  # the unused logits larger than any peak
    frame = torch.zeros(1, 16, 16, 3, dtype=torch.uint8)
    mode, second_mode = _window_mean(first[0], [6, 7, 0], 8), _window_mean(first[0], [3, 4, 5], 8)

    def decode_logits(latents: torch.Tensor, lookup: torch.Tensor | None = None) -> torch.Tensor:
        # the black frame is likeliest under a point off circle 0 (what an unused bin would give), then the
        # second mode's
        circle_0 = latents[..., :2]
        at_second = (torch.atan2(circle_0[..., 1], circle_0[..., 0]) - second_mode).abs() < 1e-4
        logit = torch.where(circle_0.norm(dim=-1) < 1e-3, -20.0, torch.where(at_second, -5.0, 5.0))
        return logit[..., None, None, None].expand(*latents.shape[:-1], 16, 16, 3)

    with torch.no_grad():
        plain = model.encode(frame)[0]
        model.decode_logits = decode_logits
        checked = model.encode_by_synthesis(frame, modes=8, confidence=None)[0]
    assert math.atan2(plain[1], plain[0]) == pytest.approx(mode, abs=1e-5)
    assert math.atan2(checked[1], checked[0]) == pytest.approx(second_mode, abs=1e-5)
    assert math.atan2(checked[3], checked[2]) == pytest.approx(2 * 2 * math.pi / 12, abs=1e-5)


def test__bins_per_circle__must_be_one_per_circle():
    with pytest.raises(ValueError, match=re.escape("`angle_bins` must give one number of bins per circle (2 for")):
        _model(bins=(8, 12, 4))
    with pytest.raises(ValueError, match=re.escape("`angle_bins[1]` must be an integer >= 2")):
        _model(bins=(8, 1))
    message = "model.angle_bins must give one number of bins per circle (2 for model.latent_dim 4), got 3"
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.from_dict({"model": {"latent_dim": 4, "angle_bins": [8, 12, 4]}})
    with pytest.raises(ValueError, match=re.escape("model.angle_bins='each_cycle' reads the cycles warm-up's")):
        TrainConfig.from_dict({"model": {"angle_bins": "each_cycle"}, "warmup": {"kind": "graph"}})


def test__a_cycles_run_with_bins_per_circle_learns_its_map_and_loads_back(tiny_config, tmp_path):
    config = tiny_config.replace(
        steps=44,
        optim={"lr": 1e-2},
        model={"latent_manifold": "torus", "angle_bins": [10, 15]},  # the 5-cycles' angles on bins of each
        warmup={"kind": "cycles", "steps": 40, "cycles": {"walk_steps": 200, "starts": 8, "batch_size": 32}},
    )
    learner = Learner(config)
    learner.train(progress=False)
    assert learner.history[-1]["target"] < 0.1 * learner.history[0]["target"]
    model = load_model(learner.save(tmp_path / "run.safetensors"))
    assert model.angle_bins == (10, 15) and model.decoder.lookup.weight.shape[0] == 25
    frames = torch.from_numpy(learner.trainer.warmup.walk.frames[:8])
    with torch.no_grad():
        torch.testing.assert_close(model.encode(frames), learner.trainer.model.eval().encode(frames))
