import re

import numpy as np
import pytest
import torch

from dyndis_learn.alignment import fit_rotations, plane_angles
from dyndis_learn.rollouts import RolloutCollector
from dyndis_learn.transition_graph import TransitionGraph, explore, laplacian_eigenmap


@pytest.fixture(scope="module")
def gridworld_graph() -> TransitionGraph:
    collector = RolloutCollector("DynDis/GridWorld-v0", 32, 25, seed=0, env_kwargs={"image_size": 16})
    try:
        return explore(collector, 2)
    finally:
        collector.close()


def test__explore__one_state_per_distinct_image(gridworld_graph):
    graph = gridworld_graph
    assert graph.n_states == 25 and graph.images.shape == (25, 16, 16, 3)
    assert len(np.unique(graph.images.reshape(25, -1), axis=0)) == 25
    assert len(graph.sources) == len(graph.targets) == len(graph.actions) == 2 * 32 * 25
    # the same batches, collected again, give the same states in the same order
    collector = RolloutCollector("DynDis/GridWorld-v0", 32, 25, seed=0, env_kwargs={"image_size": 16})
    again = explore(collector, 2)
    collector.close()
    np.testing.assert_array_equal(again.images, graph.images)
    np.testing.assert_array_equal(again.sources, graph.sources)


def test__explore__transitions_follow_the_actions(gridworld_graph):
    graph = gridworld_graph
    # GridWorld's four actions are bijections of the 25 states: each maps a state to one state, always,
    # and applying +1 then -1 of a factor comes back.
    successor = {}
    for s, t, a in zip(graph.sources, graph.targets, graph.actions, strict=True):
        assert successor.setdefault((s, a), t) == t
    for (s, a), t in successor.items():
        inverse = a + 1 if a % 2 == 0 else a - 1
        assert successor.get((t, inverse), s) == s


def test__laplacian_eigenmap__product_of_cycles_gives_each_action_a_rotation_by_2pi_over_n(gridworld_graph):
    graph = gridworld_graph
    embedding = laplacian_eigenmap(graph, 4)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(embedding.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(np.cov(embedding.T, bias=True), np.eye(4) / 4, atol=1e-6)
    y = torch.from_numpy(embedding)
    rotations = fit_rotations(y[graph.sources], y[graph.targets], torch.from_numpy(graph.actions), 4)
    # exact: every transition is its action's rotation of the embedding
    moved = torch.einsum("mij,mj->mi", rotations[torch.from_numpy(graph.actions)], y[graph.sources])
    torch.testing.assert_close(moved, y[graph.targets], atol=1e-6, rtol=0)
    # a rotation by theta in one plane of R^4 has trace 2 + 2 cos(theta)
    cosines = (torch.diagonal(rotations, dim1=1, dim2=2).sum(-1) - 2) / 2
    torch.testing.assert_close(cosines, torch.full((4,), np.cos(2 * np.pi / 5), dtype=torch.float64))
    assert plane_angles(rotations).shape == (4, 6)


def _graph(edges: list[tuple[int, int]], n: int) -> TransitionGraph:
    sources, targets = (np.array(x, dtype=np.int64) for x in zip(*edges, strict=True))
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    return TransitionGraph(
        images, sources, targets, np.zeros_like(sources), {x.tobytes(): i for i, x in enumerate(images)}
    )


def _product_of_cycles(sizes: tuple[int, ...]) -> TransitionGraph:
    """Every transition of the DynDis actions (+1 and -1 of each factor) on a product of cycles."""
    states = np.stack(np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij"), -1).reshape(-1, len(sizes))
    index = np.ravel_multi_index(states.T, sizes)
    sources, targets, actions = [], [], []
    for factor, n in enumerate(sizes):
        for direction, action in ((1, 2 * factor), (-1, 2 * factor + 1)):
            moved = states.copy()
            moved[:, factor] = (moved[:, factor] + direction) % n
            sources.append(index)
            targets.append(np.ravel_multi_index(moved.T, sizes))
            actions.append(np.full(len(states), action))
    images = np.zeros((len(states), 1, 1, 1), np.uint8)  # not looked at
    return TransitionGraph(images, np.concatenate(sources), np.concatenate(targets), np.concatenate(actions), {})


def _action_cosines(embedding: np.ndarray, graph: TransitionGraph) -> torch.Tensor:
    """cos of each action's angle, from the trace of its fitted rotation (2 cos(theta) + n - 2 for one plane)."""
    y = torch.from_numpy(embedding)
    rotations = fit_rotations(y[graph.sources], y[graph.targets], torch.from_numpy(graph.actions), 6)
    moved = torch.einsum("mij,mj->mi", rotations[torch.from_numpy(graph.actions)], y[graph.sources])
    torch.testing.assert_close(moved, y[graph.targets], atol=1e-6, rtol=0)  # each action is a rotation
    return (torch.diagonal(rotations, dim1=1, dim2=2).sum(-1) - (y.shape[1] - 2)) / 2


def test__laplacian_eigenmap__finds_each_factors_first_mode_past_smoother_modes_of_two_factors():
    # On 9 x 9 x 5 the mode cos(2 pi x / 9) cos(2 pi y / 9) (eigenvalue 0.94) is smoother than the 5-cycle's
    # first mode (1.38): the lowest 6 eigenvectors miss the third factor, the search finds it.
    graph = _product_of_cycles((9, 9, 5))
    embedding = laplacian_eigenmap(graph, 6, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(np.cov(embedding.T, bias=True), np.eye(6) / 6, atol=1e-6)
    expected = np.cos(2 * np.pi / np.repeat([9, 9, 5], 2))
    torch.testing.assert_close(_action_cosines(embedding, graph), torch.from_numpy(expected), atol=1e-6, rtol=0)
    lowest = laplacian_eigenmap(graph, 6, candidates=6)
    with pytest.raises(AssertionError):
        _action_cosines(lowest, graph)


def test__laplacian_eigenmap__too_few_candidates_fill_with_the_smoothest_directions():
    # 7 candidates end inside the 4-dimensional eigenspace of the x-y modes: its planes are not searched,
    # but the embedding still gets its 6 dimensions: the two position planes and 2 of those directions.
    graph = _product_of_cycles((9, 9, 5))
    embedding = laplacian_eigenmap(graph, 6, candidates=7, generator=torch.Generator().manual_seed(0))
    assert embedding.shape == (405, 6)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1, atol=1e-6)


def test__laplacian_eigenmap__a_disconnected_graph_is_an_error():
    graph = _graph([(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)], 6)
    message = "The explored transition graph (6 states, 6 transitions) falls into 2 disconnected parts"
    with pytest.raises(ValueError, match=re.escape(message)):
        laplacian_eigenmap(graph, 2)


@pytest.mark.parametrize(
    ("dim", "message"),
    [
        (3, "The transition graph has 3 states, too few for a 3-dimensional embedding."),
        (0, "`dim` must be a positive integer, got 0."),
        (2, "`candidates` must be an integer >= dim (2), got 1."),
    ],
)
def test__laplacian_eigenmap__bad_arguments(dim, message):
    candidates = 1 if "candidates" in message else 64
    with pytest.raises(ValueError, match=re.escape(message)):
        laplacian_eigenmap(_graph([(0, 1), (1, 2), (2, 0)], 3), dim, candidates)


def test__explore__bad_batches():
    with pytest.raises(ValueError, match=re.escape("`batches` must be a positive integer, got 0.")):
        explore(None, 0)  # type: ignore[arg-type]
