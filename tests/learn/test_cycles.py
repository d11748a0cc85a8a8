import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from dyndis_learn.cycles import CycleStructureError, discover_cycles, walk_cycles
from dyndis_learn.rotations import givens_product

MIXED = {"image_size": 16, "grid_shape": (7, 7), "factors": {"size": "all", "colour": "all"}}


class _OneWay(gym.Env):
    """A 4-cycle that actions only turn forward (action 0), and an action (1) that does nothing."""

    observation_space = gym.spaces.Box(0, 255, (4, 4, 1), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def _image(self):
        image = np.zeros((4, 4, 1), np.uint8)
        image[self.state] = 255
        return image

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = int(self.np_random.integers(4))
        return self._image(), {}

    def step(self, action):
        self.state = (self.state + (action == 0)) % 4
        return self._image(), 0.0, False, False, {}


gym.register("Test/OneWay-v0", entry_point=_OneWay)


def test__discover_cycles__pairs_the_plus_and_minus_actions_and_finds_each_cycle_length():
    structure = discover_cycles("DynDis/GridWorld-v0", MIXED, starts=8)
    # actions: x +-, y +-, size +- (3 values), colour +- (5 values)
    assert [(c.forward, c.backward) for c in structure.cycles] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert structure.lengths == (7, 7, 3, 5)
    assert structure.identities == () and structure.noise_floor == 0.0


def test__discover_cycles__tells_states_apart_through_observation_noise():
    noisy = discover_cycles("DynDis/GridWorld-v0", {**MIXED, "observation_noise": 4}, starts=16)
    assert noisy.lengths == (7, 7, 3, 5)
    # uniform integer noise in [-4, 4] on both frames: 2 * 20 / 3 per pixel, less where clipping at 0 (black)
    assert 2 < noisy.noise_floor < 14 and noisy.step_distance > 2 * noisy.noise_floor


def test__givens_angles__turn_cycle_k_by_2pi_over_n_in_plane_2k_and_leave_the_rest():
    structure = discover_cycles("DynDis/GridWorld-v0", MIXED, starts=8)
    matrices = givens_product(structure.givens_angles(10), 10)
    angle = 2 * math.pi / 3  # the size cycle, k = 2, forward action 4
    expected = torch.eye(10)
    expected[4:6, 4:6] = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    torch.testing.assert_close(matrices[4], expected)
    torch.testing.assert_close(matrices[5], expected.T)
    with pytest.raises(CycleStructureError, match=r"set model.latent_dim to at least 8"):
        structure.givens_angles(6)


def test__discover_cycles__errors_name_what_to_change():
    with pytest.raises(CycleStructureError, match=r"warmup.cycles.max_cycle"):
        discover_cycles("DynDis/GridWorld-v0", MIXED, starts=4, max_cycle=4)
    with pytest.raises(CycleStructureError, match=r"No action of 'Test/OneWay-v0' undoes action 0"):
        discover_cycles("Test/OneWay-v0", starts=8)


def test__walk_cycles__places_every_frame_where_its_true_factors_are_up_to_one_shift():
    structure = discover_cycles("DynDis/GridWorld-v0", MIXED, starts=8)
    walk = walk_cycles("DynDis/GridWorld-v0", MIXED, structure, 300, 10, seed=3)
    # the truth, only to check: replay the same walk with the same seed and read info["factors"]
    lengths = np.array(structure.lengths)
    env = gym.make("DynDis/GridWorld-v0", **MIXED).unwrapped
    truth = env.factor_space.all_states()
    images = env.render_states(truth)
    index = {image.tobytes(): i for i, image in enumerate(images)}
    states = truth[[index[frame.tobytes()] for frame in walk.frames]][:, truth.max(axis=0) > 0]  # active factors
    shift = (states - walk.positions) % lengths
    assert np.all(shift == shift[0])
    assert np.array_equal(walk.factors[:, truth.max(axis=0) > 0], states)  # kept for evaluation
    assert len({tuple(p) for p in walk.positions}) > 100  # strides cover the 245 states quickly
    # targets: unit-norm points of the torus at 2 pi v / N, the fifth plane at angle 0
    np.testing.assert_allclose(np.linalg.norm(walk.targets.reshape(-1, 5, 2), axis=-1), 5**-0.5, rtol=1e-6)
    angles = np.arctan2(walk.targets[:, 1::2], walk.targets[:, 0::2])[:, :4]
    np.testing.assert_allclose(np.cos(angles - 2 * np.pi * walk.positions / lengths), 1.0, atol=1e-5)
    assert np.all(walk.frame_indices(walk.frames[[5, 7]]) >= 0)
    assert np.all(walk.frame_indices(np.zeros((2, 16, 16, 3), np.uint8)) == -1)
    again = walk_cycles("DynDis/GridWorld-v0", MIXED, structure, 300, 10, seed=3)
    assert np.array_equal(again.frames, walk.frames)


def _runs(actions: np.ndarray) -> np.ndarray:
    """Lengths of the maximal runs of one action."""
    ends = np.flatnonzero(np.diff(actions) != 0)
    return np.diff(np.concatenate([[-1], ends, [len(actions) - 1]]))


def test__walk_cycles__strides_no_longer_than_longest_stride():
    structure = discover_cycles("DynDis/GridWorld-v0", MIXED, starts=8)
    assert max(structure.lengths) == 7
    uncapped = walk_cycles("DynDis/GridWorld-v0", MIXED, structure, 600, 10, seed=1, longest_stride=None)
    short = walk_cycles("DynDis/GridWorld-v0", MIXED, structure, 600, 10, seed=1, longest_stride=2)
    # strides of 1-2 repeats (two strides of one action in a row make a longer run now and then)
    assert _runs(short.actions).mean() < 2.0 < 3.0 < _runs(uncapped.actions).mean()
    # a limit no cycle reaches leaves the walk as it was: the small worlds walk as before the limit came
    same = walk_cycles("DynDis/GridWorld-v0", MIXED, structure, 600, 10, seed=1, longest_stride=7)
    assert np.array_equal(same.actions, uncapped.actions) and np.array_equal(same.frames, uncapped.frames)
    with pytest.raises(ValueError, match=r"`longest_stride` must be a positive integer, got 0"):
        walk_cycles("DynDis/GridWorld-v0", MIXED, structure, 50, 10, longest_stride=0)


def test__walk_cycles__refuses_an_episode_shorter_than_the_walk():
    structure = discover_cycles("DynDis/GridWorld-v0", MIXED, starts=8)
    with pytest.raises(ValueError, match=r"warmup.cycles.walk_steps"):
        walk_cycles("DynDis/GridWorld-v0", {**MIXED, "max_episode_steps": 10}, structure, 50, 10)
