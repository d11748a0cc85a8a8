"""The latent planner finds shortest paths with an exact hand-built model and acts on Goal tasks."""

import math
import re

import gymnasium as gym
import numpy as np
import pytest
import torch

import dyndis_envs  # noqa: F401
from dyndis_learn.planner import GoalOutOfReach, LatentPlanner


def exact_model(env):
    """Encoder and rotations of a perfectly disentangled model of a factor env: one plane per moving factor.

    The actions' factors, directions and cycle lengths come from the env's public ``action_effects``.
    """
    effects = env.action_effects
    moving = list(dict.fromkeys(e.factor_index for e in effects))  # factors, in order of their first action
    cycle = {e.factor_index: e.cycle_length for e in effects}
    index = {frame.tobytes(): state for frame, state in zip(env.frames.table.frames, env.factor_space.all_states())}

    def encode(frames: torch.Tensor) -> torch.Tensor:
        states = np.stack([index[f.numpy().tobytes()] for f in frames])
        angles = np.stack([2 * np.pi * states[:, k] / cycle[k] for k in moving], axis=1)
        latent = np.stack([np.cos(angles), np.sin(angles)], axis=2).reshape(len(frames), -1)
        return torch.as_tensor(latent / math.sqrt(len(moving)))

    n = 2 * len(moving)
    matrices = torch.zeros(len(effects), n, n, dtype=torch.float64)
    for a, effect in enumerate(effects):
        matrices[a] = torch.eye(n, dtype=torch.float64)
        p = moving.index(effect.factor_index)
        theta = effect.direction * 2 * np.pi / effect.cycle_length
        c, s = math.cos(theta), math.sin(theta)
        matrices[a, 2 * p : 2 * p + 2, 2 * p : 2 * p + 2] = torch.tensor([[c, -s], [s, c]])
    return encode, matrices


def shortest(start, goal, sizes):
    return sum(min(abs(a - b), n - abs(a - b)) for a, b, n in zip(start, goal, sizes))


@pytest.mark.parametrize(
    "factors",
    [{"colour": 3}, {"north_south": [0], "colour": 3}],  # the second: the first factor does not move
)
def test__plans_are_shortest_paths_that_reach_the_goal(factors):
    env = gym.make("DynDis/GridWorld-v0", grid_shape=(5, 7), factors=factors).unwrapped
    planner = LatentPlanner(*exact_model(env))
    rng = np.random.default_rng(0)
    space = env.factor_space
    for _ in range(30):
        start, goal = (rng.integers(0, space.sizes) for _ in range(2))
        image, _ = env.reset(options={"factors": start})
        goal_image, _ = env.reset(options={"factors": goal})
        plan = planner.plan(image, goal_image)
        state = list(start)
        for action in plan:
            state = space.step_one(state, action)
        assert state == goal.tolist()
        assert len(plan) == shortest(start, goal, space.sizes)


def test__acts_on_the_goal_task():
    env = gym.make("DynDis/GridWorldGoal-v0", grid_shape=(4, 4))
    planner = LatentPlanner(*exact_model(env.unwrapped))
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        budget = shortest(info["factors"], info["goal_factors"], env.unwrapped.factor_space.sizes)
        for _ in range(budget):
            obs, reward, terminated, _truncated, info = env.step(planner.act(obs))
        assert terminated and reward == 1.0
        assert planner.act(obs) is None


def test__bad_arguments():
    with pytest.raises(ValueError, match=re.escape("`action_matrices` must have shape (A, n, n), got (2, 3).")):
        LatentPlanner(lambda x: x, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=re.escape("`beam_width` must be a positive integer, got 0.")):
        LatentPlanner(lambda x: x, torch.zeros(2, 3, 3), beam_width=0)


def test__of_plans_to_the_same_state_the_shortest_wins():
    # Action 0 turns by theta; action 1 by 0.55 theta, so two of it end 0.1 theta past action 0's end: the
    # same state (nearer than the merge distance) but, here, in another quantisation cell, so the search
    # keeps both. The goal's encoding sits by the two-step end, 0.2 off the plane (an encoder error larger
    # than the merge distance, so the search runs on): that end is nearest, but a model's small errors
    # decide such ties by chance, and re-planning every step then oscillates. The one-step plan must win.
    theta = 2 * math.pi / 15

    def turn(angle):
        c, s = math.cos(angle), math.sin(angle)
        return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)

    one, half = turn(theta), turn(0.55 * theta)
    start = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    goal = half @ half @ start + torch.tensor([0.0, 0.0, 0.2], dtype=torch.float64)
    assert torch.linalg.vector_norm(half @ half @ start - goal) < torch.linalg.vector_norm(one @ start - goal)
    assert LatentPlanner(lambda frames: frames, torch.stack([one, half])).plan_latent(start, goal) == [0]


def test__a_goal_beyond_max_depth_is_out_of_reach_and_says_which_limit():
    env = gym.make("DynDis/GridWorld-v0", grid_shape=(5, 7)).unwrapped
    encode, matrices = exact_model(env)
    start, goal = np.array([0, 0, 0, 0, 0]), np.array([2, 3, 0, 0, 0])  # 5 steps apart
    image, _ = env.reset(options={"factors": start})
    goal_image, _ = env.reset(options={"factors": goal})
    short = LatentPlanner(encode, matrices, max_depth=3)
    found = short.search(short.latent(image), short.latent(goal_image))
    assert not found.reached and len(found.actions) == 3 and found.distance > found.merge_distance
    assert short.plan(image, goal_image) == found.actions  # the partial plan, by default
    with pytest.raises(GoalOutOfReach, match=r"max_depth=3 steps \(beam_width=512\) reaches the goal"):
        short.plan(image, goal_image, require_reach=True)
    deep = LatentPlanner(encode, matrices, max_depth=5)
    assert len(deep.plan(image, goal_image, require_reach=True)) == 5


def test__from_model__lets_the_decoder_check_an_angle_bin_models_encodings():
    from dyndis_learn.model import DEFAULT_SYNTHESIS_MODES, WorldModel

    torch.manual_seed(0)
    binned = WorldModel((16, 16, 3), 4, latent_dim=4, channels=(8, 8), hidden_dim=32, latent_manifold="torus",
                        angle_bins=12, lookup_feature_map=True)  # fmt: skip
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    frames = torch.from_numpy(image)[None]
    with torch.no_grad():
        checked, plain = binned.encode_by_synthesis(frames, DEFAULT_SYNTHESIS_MODES)[0], binned.encode(frames)[0]
    assert not torch.allclose(checked, plain)  # the untrained encoder's modes are not what its decoder draws
    torch.testing.assert_close(LatentPlanner.from_model(binned).latent(image), checked.double())
    torch.testing.assert_close(LatentPlanner.from_model(binned, synthesis_modes=1).latent(image), plain.double())
    sphere = WorldModel((16, 16, 3), 4, latent_dim=4, channels=(8, 8), hidden_dim=32)
    with pytest.raises(ValueError, match="`synthesis_modes` above 1 needs an angle-bin model"):
        LatentPlanner.from_model(sphere, synthesis_modes=2)
    torch.testing.assert_close(LatentPlanner.from_model(sphere).latent(image), sphere.encode(frames)[0].double())
