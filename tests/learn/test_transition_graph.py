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
    ],
)
def test__laplacian_eigenmap__bad_arguments(dim, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        laplacian_eigenmap(_graph([(0, 1), (1, 2), (2, 0)], 3), dim)


def test__explore__bad_batches():
    with pytest.raises(ValueError, match=re.escape("`batches` must be a positive integer, got 0.")):
        explore(None, 0)  # type: ignore[arg-type]
