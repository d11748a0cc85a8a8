"""``AngleBeliefFilter``: the encoder's angle distributions as evidence, the actions' rotations as motion."""

import math
import re

import numpy as np
import pytest
import torch

from dyndis_learn.belief import AngleBeliefFilter
from dyndis_learn.model import WorldModel

BINS = 12


class _ReadsBin(torch.nn.Module):
    """An encoder that reads the bin it answers from the first pixel: sure of it, every other bin far less likely."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        seen = (frames[:, 0, 0, 0] * 255).round().long()
        return torch.nn.functional.one_hot(seen, BINS).float() * 6.0  # P(seen bin) ~ 0.97


def _model(step_bins: float = 1.0) -> WorldModel:
    """One circle of BINS bins; action 0 turns it by ``step_bins`` bins, action 1 back."""
    torch.manual_seed(0)
    model = WorldModel((4, 4, 3), 2, latent_dim=2, channels=(4,), hidden_dim=8, latent_manifold="torus",
                       angle_bins=BINS)  # fmt: skip
    model.encoder = _ReadsBin()
    with torch.no_grad():
        model.rotations.angles.copy_(torch.tensor([[1.0], [-1.0]]) * step_bins * 2 * math.pi / BINS)
    return model


def _frame(shown_bin: int) -> np.ndarray:
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    frame[0, 0, 0] = shown_bin
    return frame


def _bin_of(latent: torch.Tensor) -> float:
    return math.atan2(float(latent[1]), float(latent[0])) * BINS / (2 * math.pi) % BINS


def test__the_belief_follows_the_actions_and_outvotes_a_misleading_view():
    model = _model()
    belief = AngleBeliefFilter(model, evidence_floor=1e-3)
    belief.reset(_frame(3))
    assert _bin_of(belief.latent()) == pytest.approx(3, abs=1e-6)
    for state in (4, 5, 6):  # each action 0 turns the state one bin, and the frames agree
        belief.update(_frame(state), 0)
        assert _bin_of(belief.latent()) == pytest.approx(state, abs=1e-6)
    belief.update(_frame(11), 0)  # the state is 7; this view says 11, as sure as ever
    assert _bin_of(belief.latent()) == pytest.approx(7, abs=0.05)
    plain = model.encode(torch.from_numpy(_frame(11))[None])[0]
    assert _bin_of(plain) == pytest.approx(11, abs=0.05)  # the encoding alone is misled
    belief.update(_frame(6), 1)  # and back
    assert _bin_of(belief.latent()) == pytest.approx(6, abs=0.05)


def test__evidence_floor_bounds_what_one_view_counts_against_a_bin():
    belief = AngleBeliefFilter(_model(), evidence_floor=0.01)
    evidence = belief.evidence(_frame(2))
    assert evidence.shape == (1, BINS)
    assert float(evidence.min()) == pytest.approx(math.log(0.01))
    assert int(evidence.argmax()) == 2


def test__a_fractional_turn_splits_the_belief_between_the_two_bins():
    belief = AngleBeliefFilter(_model(step_bins=0.5), evidence_floor=1e-3)
    belief.reset(_frame(3))
    before = belief.log_belief.exp()[0]
    belief.update(_frame(3), 0)  # a frame that says bin 3 again: the moved belief is half on 3, half on 4
    evidence = belief.evidence(_frame(3))[0].exp()
    expected = (0.5 * before + 0.5 * before.roll(1)) * evidence
    torch.testing.assert_close(belief.log_belief.exp()[0], expected / expected.sum())


def test__bad_arguments_and_order_of_calls():
    with pytest.raises(ValueError, match=re.escape("AngleBeliefFilter needs a model with `angle_bins`")):
        AngleBeliefFilter(WorldModel((4, 4, 3), 2, latent_dim=2, channels=(4,), hidden_dim=8))
    with pytest.raises(ValueError, match=re.escape("`evidence_floor` must be in (0, 1), got 0.")):
        AngleBeliefFilter(_model(), evidence_floor=0)
    belief = AngleBeliefFilter(_model())
    with pytest.raises(RuntimeError, match=r"update before reset"):
        belief.update(_frame(0), 0)
    with pytest.raises(RuntimeError, match=r"latent before reset"):
        belief.latent()


class _ReadsTwoBins(torch.nn.Module):
    """A two-circle encoder of bins (5, BINS): circle 0 reads the first pixel's bin, circle 1 the second's; circle
    0's unused logits (past its 5 bins) are the largest, so a filter that read them would be thrown off."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        seen = (frames[:, 0, :2, 0] * 255).round().long()  # (B, 2)
        first = torch.nn.functional.one_hot(seen[:, 0], BINS).float() * 6.0
        first[:, 5:] = 50.0
        return torch.cat([first, torch.nn.functional.one_hot(seen[:, 1], BINS).float() * 6.0], dim=-1)


def test__with_bins_per_circle_each_circles_belief_turns_and_wraps_on_its_own_bins():
    torch.manual_seed(0)
    model = WorldModel((4, 4, 3), 2, latent_dim=4, channels=(4,), hidden_dim=8, latent_manifold="torus",
                       angle_bins=(5, BINS))  # fmt: skip
    model.encoder = _ReadsTwoBins()
    with torch.no_grad():  # action 0 turns circle 0 by one of its 5 bins and circle 1 by one of its BINS
        model.rotations.angles.copy_(torch.tensor([[2 * math.pi / 5, 0, 0, 0, 0, 2 * math.pi / BINS], [0.0] * 6]))
    belief = AngleBeliefFilter(model)

    def frame(first: int, second: int) -> np.ndarray:
        shown = np.zeros((4, 4, 3), dtype=np.uint8)
        shown[0, :2, 0] = first, second
        return shown

    def bins_of(latent: torch.Tensor) -> tuple[float, float]:
        angles = torch.atan2(latent[1::2], latent[0::2]).remainder(2 * math.pi)
        return float(angles[0] * 5 / (2 * math.pi)), float(angles[1] * BINS / (2 * math.pi))

    belief.reset(frame(3, 10))
    assert belief.evidence(frame(3, 10))[0, 5:].isneginf().all()  # no belief past circle 0's bins
    for first, second in ((4, 11), (0, 0), (1, 1)):  # circle 0 wraps after 5 bins, circle 1 after BINS
        belief.update(frame(first, second), 0)
        assert bins_of(belief.latent()) == pytest.approx((first, second), abs=1e-3)
    belief.update(frame(4, 4), 0)  # the state is (2, 2); this view is wrong on both circles
    assert bins_of(belief.latent()) == pytest.approx((2, 2), abs=0.05)
