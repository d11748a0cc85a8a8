"""The environment's transition graph, explored through Gymnasium, and its Laplacian eigenmap.

The graph warm-up (:class:`~dyndis_learn.warmups.GraphWarmup`) starts from here:

1. :func:`explore` runs random episodes and identifies states by their images: two frames are the same
   state exactly when their bytes are equal. That holds for environments that render each state
   deterministically (every DynDis env does), and it uses nothing but observations and actions.
2. :func:`laplacian_eigenmap` embeds the undirected graph of observed transitions with eigenvectors of
   its Laplacian ``L = D - A`` (Belkin & Niyogi, 2003). For factors that actions shift cyclically the
   graph is a product of cycles, whose eigenvectors include each factor's first Fourier modes
   ``(cos 2 pi x / N, sin 2 pi x / N)``: scaled to covariance ``I / n`` they have unit norm, and every
   action is a rotation by ``2 pi / N`` in its factor's plane. :func:`factor_planes` picks them out of the
   smoothest eigenvectors (they need not be the lowest: modes of two factors can be smoother).

This is the closed-form version of the spectral objective of :mod:`dyndis_learn.losses` (smoothness under
whitening): solving it exactly on the explored graph, instead of by SGD through the encoder, does not
depend on how much of the image each factor changes (the docs' design page tells what that changed).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg
import torch

from dyndis_learn.alignment import fit_planes
from dyndis_learn.rollouts import RolloutCollector
from dyndis_learn.rotations import circle_planes
from dyndis_learn.validation import check_int

__all__ = ["TransitionGraph", "explore", "factor_planes", "laplacian_eigenmap"]

#: Up to this many states the eigenvectors come from a dense solver (exact); beyond, from a sparse one.
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
    check_int("batches", batches, minimum=1)
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


def laplacian_eigenmap(
    graph: TransitionGraph, dim: int, candidates: int = 64, generator: torch.Generator | None = None
) -> npt.NDArray[np.float64]:
    """An embedding of the states by the first Fourier modes of each factor, one row per state.

    The graph is taken undirected and unweighted (an edge wherever a transition was seen either way). Of
    its lowest ``candidates`` non-constant Laplacian eigenvectors, :func:`factor_planes` keeps the
    ``dim // 2`` planes that only one factor's actions turn, smoothest first. For a product of cycles the
    lowest ``dim`` eigenvectors are those modes only while the cycles' lengths are close: on a 9 x 9 grid
    with 5 colours, ``cos x cos y`` (a mode of two factors) is smoother than the first colour mode. The
    embedding is scaled to zero mean and covariance ``I / dim`` over the states and each row is then
    normalised onto the unit sphere (for a product of cycles the rows have unit norm already).

    Args:
        graph: The explored graph.
        dim: Embedding dimension (the latent dimension).
        candidates: Eigenvectors searched (at least ``dim``; at most the number of states minus 1). Enough
            to reach every factor's first mode past the smoother modes of the others.
        generator: Source of :func:`~dyndis_learn.alignment.common_planes`' random combinations.

    Raises:
        ValueError: If the graph has no more than ``dim`` states or is not connected (explore longer).
    """
    n = graph.n_states
    check_int("dim", dim, minimum=1)
    if check_int("candidates", candidates, minimum=1) < dim:
        raise ValueError(f"`candidates` must be an integer >= dim ({dim}), got {candidates!r}.")
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
    count = min(candidates, n - 1)
    if n <= _DENSE_LIMIT:
        values, vectors = scipy.linalg.eigh(laplacian.toarray(), subset_by_index=[0, count])
    else:  # shift-invert around 0 (L + 1e-3 I is positive definite); a fixed start vector keeps it reproducible
        start = np.random.default_rng(0).random(n)
        values, vectors = scipy.sparse.linalg.eigsh(laplacian.tocsc(), k=count + 1, sigma=-1e-3, v0=start)
        order = np.argsort(values)
        values, vectors = values[order], vectors[:, order]
    if count > dim:
        vectors = vectors[:, 1:] @ factor_planes(vectors[:, 1:], values[1:], graph, dim, generator)
    else:
        vectors = vectors[:, 1 : dim + 1]
    embedding = vectors * np.sqrt(n / dim)  # orthonormal columns -> covariance I / dim
    return embedding / np.linalg.norm(embedding, axis=1, keepdims=True)


def factor_planes(
    vectors: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    graph: TransitionGraph,
    dim: int,
    generator: torch.Generator | None = None,
) -> npt.NDArray[np.float64]:
    """Directions in the span of Laplacian eigenvectors that give each factor's first Fourier modes.

    The actions of a product of cycles commute with the Laplacian, so each of its eigenspaces splits into
    planes that every action turns by an angle of its own (:func:`~dyndis_learn.alignment.fit_planes`,
    fitted per eigenspace: near-equal eigenvalues, within 2%). A plane that one factor's actions alone
    turn is a mode of that factor, and the smoothest such plane is its first mode; a plane turned by two
    factors' actions is a mode of both. Going through the eigenspaces smoothest first, a plane is kept when
    the actions that turn it (by more than a quarter of its largest angle) share none with a plane already
    kept, until ``dim // 2`` are kept; the smoothest remaining directions fill what is left (an odd
    ``dim``, or fewer factors than planes). The last eigenspace's planes are not searched when the
    search's end may cut through it.

    Args:
        vectors: Orthonormal eigenvectors without the constant one, shape (S, m), smoothest first.
        values: Their eigenvalues, shape (m,), ascending.
        graph: The graph whose transitions show how the actions move the states.
        dim: Number of directions wanted (at most ``m``).
        generator: Source of :func:`~dyndis_learn.alignment.common_planes`' random combinations.

    Returns:
        Orthonormal coefficients of the chosen directions in ``vectors``, shape (m, dim).
    """
    m = vectors.shape[1]
    breaks = np.flatnonzero(np.diff(values) > 0.02 * values[1:]) + 1
    spaces = np.split(np.arange(m), breaks)
    # The search may have ended inside the last eigenspace: its planes are not searched, only filled from.
    searched = len(spaces) - 1 if len(spaces) > 1 and m < graph.n_states - 1 else len(spaces)
    n_actions = int(graph.actions.max()) + 1
    actions = torch.from_numpy(graph.actions)
    chosen: list[npt.NDArray[np.float64]] = []
    rest: list[tuple[float, npt.NDArray[np.float64]]] = []
    taken: set[int] = set()
    for i, space in enumerate(spaces):
        directions = np.eye(m)[:, space]  # coefficients of this eigenspace's vectors
        kept = np.zeros(len(space), dtype=bool)
        if i < searched and len(space) >= 2 and len(chosen) < 2 * (dim // 2):
            span = torch.from_numpy(vectors[:, space])
            basis, angles = fit_planes(span[graph.sources], span[graph.targets], actions, n_actions, generator)
            directions = directions @ basis.numpy()
            for plane, column in enumerate(circle_planes(len(space))):
                turns = angles[:, column].abs().numpy()
                largest = turns.max()
                turned = set(np.flatnonzero(turns > largest / 4).tolist()) if largest > 1e-3 else set()
                if len(chosen) < 2 * (dim // 2) and turned and not turned & taken:
                    chosen += [directions[:, 2 * plane], directions[:, 2 * plane + 1]]
                    taken |= turned
                    kept[2 * plane : 2 * plane + 2] = True
        rest += [(float(values[space].mean()), d) for d in directions[:, ~kept].T]
    rest.sort(key=lambda pair: pair[0])
    filling = [d for _, d in rest[: dim - len(chosen)]]
    return np.stack(chosen + filling, axis=1)
