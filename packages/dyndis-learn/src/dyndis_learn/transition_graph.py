"""The environment's transition graph, explored through Gymnasium, and its Laplacian eigenmap.

The graph warm-up of the trainer (``TrainConfig.warmup="graph"``) starts from here:

1. :func:`explore` runs random episodes and identifies states by their images: two frames are the same
   state exactly when their bytes are equal. That holds for environments that render each state
   deterministically (every DynDis env does), and it uses nothing but observations and actions.
2. :func:`laplacian_eigenmap` embeds the undirected graph of observed transitions with the lowest
   non-constant eigenvectors of its Laplacian ``L = D - A`` (Belkin & Niyogi, 2003). For factors that
   actions shift cyclically the graph is a product of cycles, whose lowest eigenvectors are each factor's
   first Fourier modes ``(cos 2 pi x / N, sin 2 pi x / N)``: scaled to covariance ``I / n`` they have unit
   norm, and every action is a rotation by ``2 pi / N`` in its factor's plane.

This is the closed-form version of the spectral objective of :mod:`dyndis_learn.losses` (smoothness under
whitening): solving it exactly on the explored graph instead of by SGD through the encoder matters when
factors differ in how much of the image they change. On Shapes3D an orientation step changes about a
tenth as many pixel intensity units as a hue step, and an encoder trained by gradient descent on the
spectral terms (or on reconstruction) never finds orientation; regressed onto this embedding, it learns
all three factors in about 150 steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg

from dyndis_learn.rollouts import RolloutCollector

__all__ = ["TransitionGraph", "explore", "laplacian_eigenmap"]

#: Up to this many states the eigenvectors come from a dense solver (exact, about 1 s for 1,500 states).
_DENSE_LIMIT = 3000


class TransitionGraph(NamedTuple):
    """Distinct observations and the transitions observed between them.

    Attributes:
        images: One uint8 image per distinct state, shape (S, H, W, C), in order of first sight.
        sources: State index before each observed transition, shape (M,) int64.
        targets: State index after it, shape (M,) int64.
        actions: The action taken, shape (M,) int64.
        state_of_image: Each image's bytes -> its state index.
    """

    images: npt.NDArray[np.uint8]
    sources: npt.NDArray[np.int64]
    targets: npt.NDArray[np.int64]
    actions: npt.NDArray[np.int64]
    state_of_image: dict[bytes, int]

    @property
    def n_states(self) -> int:
        """Number of distinct states seen."""
        return len(self.images)

    def state_indices(self, frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        """The state of each frame (shape ``frames.shape[:-3]``), -1 for images never seen."""
        flat = frames.reshape(-1, *frames.shape[-3:])
        found = [self.state_of_image.get(frame.tobytes(), -1) for frame in flat]
        return np.array(found, dtype=np.int64).reshape(frames.shape[:-3])


def explore(collector: RolloutCollector, batches: int) -> TransitionGraph:
    """Collect ``batches`` batches of episodes and identify their frames' states by image equality.

    Args:
        collector: Where the episodes come from (its policy decides the actions; random by default).
        batches: Number of batches (batch ``i`` is the collector's batch number ``i``).

    Returns:
        The graph of every transition observed.
    """
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise ValueError(f"`batches` must be a positive integer, got {batches!r}.")
    index_of: dict[bytes, int] = {}
    images: list[npt.NDArray[np.uint8]] = []
    sources, targets, actions = [], [], []
    for i in range(batches):
        batch = collector.collect(i)
        frames = batch.observations.reshape(-1, *batch.observations.shape[2:])
        ids = np.empty(len(frames), dtype=np.int64)
        for j, frame in enumerate(frames):
            key = frame.tobytes()
            state = index_of.setdefault(key, len(index_of))
            if state == len(images):
                images.append(frame.copy())  # a view would keep the whole batch alive
            ids[j] = state
        ids = ids.reshape(batch.observations.shape[:2])
        sources.append(ids[:, :-1].ravel())
        targets.append(ids[:, 1:].ravel())
        actions.append(batch.actions.ravel())
    return TransitionGraph(
        np.stack(images), np.concatenate(sources), np.concatenate(targets), np.concatenate(actions), index_of
    )


def laplacian_eigenmap(graph: TransitionGraph, dim: int) -> npt.NDArray[np.float64]:
    """The ``dim`` lowest non-constant Laplacian eigenvectors of the graph, one row per state.

    The graph is taken undirected and unweighted (an edge wherever a transition was seen either way). The
    eigenvectors are scaled to zero mean and covariance ``I / dim`` over the states and each row is then
    normalised onto the unit sphere (for a product of cycles the rows have unit norm already).

    Args:
        graph: The explored graph.
        dim: Embedding dimension (the latent dimension).

    Raises:
        ValueError: If the graph has no more than ``dim`` states or is not connected (explore longer).
    """
    n = graph.n_states
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"`dim` must be a positive integer, got {dim!r}.")
    if n <= dim:
        raise ValueError(f"The transition graph has {n} states, too few for a {dim}-dimensional embedding.")
    loops = graph.sources == graph.targets
    edges = scipy.sparse.coo_matrix(
        (np.ones(int((~loops).sum())), (graph.sources[~loops], graph.targets[~loops])), shape=(n, n)
    ).tocsr()
    adjacency = ((edges + edges.T) > 0).astype(np.float64)
    components, _ = scipy.sparse.csgraph.connected_components(adjacency, directed=False)
    if components > 1:
        raise ValueError(
            f"The explored transition graph ({n} states, {len(graph.sources)} transitions) falls into "
            f"{components} disconnected parts: explore longer (TrainConfig.exploration_batches) or use "
            "TrainConfig.warmup='spectral'."
        )
    laplacian = scipy.sparse.csgraph.laplacian(adjacency)
    if n <= _DENSE_LIMIT:
        _, vectors = scipy.linalg.eigh(laplacian.toarray(), subset_by_index=[0, dim])
    else:  # shift-invert around 0 (L + 1e-3 I is positive definite); a fixed start vector keeps it reproducible
        start = np.random.default_rng(0).random(n)
        values, vectors = scipy.sparse.linalg.eigsh(laplacian.tocsc(), k=dim + 1, sigma=-1e-3, v0=start)
        vectors = vectors[:, np.argsort(values)]
    embedding = vectors[:, 1:] * np.sqrt(n / dim)  # orthonormal columns -> covariance I / dim
    return embedding / np.linalg.norm(embedding, axis=1, keepdims=True)
