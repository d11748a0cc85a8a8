import torch

from dyndis_learn.losses import neighbour_margin
from dyndis_learn.model import WorldModel, frames_to_float
from dyndis_learn.objective import TERMS, FrameTargets, LossWeights, TrainBatch, decoding_choice, terms
from dyndis_learn.rotations import cumulative_rotations


def _model() -> WorldModel:
    torch.manual_seed(0)
    return WorldModel((16, 16, 3), 4, latent_dim=4, channels=(8, 8), hidden_dim=32)


def _batch(episodes: int = 3, steps: int = 4) -> TrainBatch:
    generator = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (episodes, steps + 1, 16, 16, 3), dtype=torch.uint8, generator=generator)
    actions = torch.randint(0, 4, (episodes, steps), generator=generator)
    return TrainBatch(frames, actions)


def test__the_loss_is_the_weighted_sum_of_the_terms():
    model, batch = _model(), _batch()
    weights = LossWeights(
        autoencoder=1.0,
        rollout=0.5,
        neighbour_margin=1.5,
        consistency=2.0,
        smoothness=0.25,
        whitening=0.1,
        uniformity=0.3,
        regularizer=4.0,
    )
    choice = decoding_choice(3, 4, split=True, seed=0, step=0, stream=2)
    values = terms(model, batch._replace(from_rollout=choice), weights)
    assert set(values) == {*TERMS, "loss"}
    expected = sum(weights.of(name) * values[name] for name in TERMS)
    torch.testing.assert_close(values["loss"], expected)
    assert values["rollout_bce"] > 0 and values["consistency"] > 0 and values["target"] == 0
    assert values["neighbour_margin"] > 0  # an untrained decoder draws no frame nearer its own image


def test__the_neighbour_margin_reads_every_frame_once_in_episode_order():
    model, batch = _model(), _batch()
    choice = decoding_choice(3, 4, split=True, seed=0, step=0, stream=2)
    for decode_twice in (False, True):
        got = terms(
            model,
            batch._replace(from_rollout=choice, decode_twice=decode_twice),
            LossWeights(rollout=1.0, neighbour_margin=1.0, margin=0.8),
        )["neighbour_margin"]
        with torch.no_grad():  # frame 0 and the frames the choice leaves to their encoding, the rest rolled out
            encodings = model.encode(batch.frames)
            paths = cumulative_rotations(model.rotations.matrices()[batch.actions])
            rolled = (paths[:, 1:] @ encodings[:, :1].unsqueeze(-1)).squeeze(-1)
            if not decode_twice:
                encodings[:, 1:] = torch.where(choice[..., None], rolled, encodings[:, 1:])
            expected = neighbour_margin(model.decode_logits(encodings), frames_to_float(batch.frames), 0.8)
        torch.testing.assert_close(got, expected)
    assert terms(model, batch, LossWeights(rollout=1.0))["neighbour_margin"] == 0  # not computed without weight


def test__terms_change_nothing_in_the_model():
    model, batch = _model(), _batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    terms(model, batch, LossWeights(rollout=1.0, consistency=1.0))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test__a_term_with_weight_zero_gives_no_gradient():
    model, batch = _model(), _batch()
    values = terms(model, batch, LossWeights(autoencoder=1.0, regularizer=0.0))
    values["loss"].backward()
    assert model.rotations.angles.grad is None or torch.all(model.rotations.angles.grad == 0)
    assert model.encoder.head[-1].weight.grad.abs().sum() > 0


def test__batches_of_single_states_have_no_dynamics_terms():
    model, batch = _model(), _batch(steps=0)
    values = terms(model, batch, LossWeights(rollout=1.0, consistency=1.0, smoothness=1.0))
    assert values["rollout_bce"] == 0 and values["consistency"] == 0 and values["smoothness"] == 0
    assert torch.isfinite(values["loss"])


def test__targets_pull_only_the_frames_of_known_states():
    model, batch = _model(), _batch(episodes=2, steps=1)
    with torch.no_grad():
        encodings = model.encode(batch.frames)
    known = torch.tensor([[0, -1], [-1, 1]])
    targets = FrameTargets(torch.stack([encodings[0, 0], encodings[1, 1] + 1.0]), known)
    target = terms(model, batch, LossWeights(target=1.0), targets)["target"]
    # frame (0, 0) sits on its target, frame (1, 1) is 1 away in each of 4 coordinates: mean of 0 and 4
    torch.testing.assert_close(target, torch.tensor(2.0))


def test__decoding_choice_is_a_function_of_seed_and_step():
    a = decoding_choice(8, 10, split=True, seed=3, step=7, stream=2)
    assert torch.equal(a, decoding_choice(8, 10, split=True, seed=3, step=7, stream=2))
    assert not torch.equal(a, decoding_choice(8, 10, split=True, seed=3, step=8, stream=2))
    assert 0.3 < a.float().mean() < 0.7
    assert decoding_choice(2, 3, split=False, seed=0, step=0, stream=2).all()


def test__decode_twice_decodes_the_chosen_frames_from_both():
    model, batch = _model(), _batch()
    choice = torch.ones(3, 4, dtype=torch.bool)
    weights = LossWeights(rollout=1.0)
    once = terms(model, batch._replace(from_rollout=choice), weights)
    twice = terms(model, batch._replace(from_rollout=choice, decode_twice=True), weights)
    torch.testing.assert_close(once["rollout_bce"], twice["rollout_bce"])
    assert not torch.isclose(once["autoencoder_bce"], twice["autoencoder_bce"])  # all frames vs frame 0 only
