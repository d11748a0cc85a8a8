"""Fit the actions' rotations to encoded transitions and turn the latent basis onto their planes.

After the spectral warm-up (see :mod:`dyndis_learn.losses`) the encoder already maps states to a torus
on which every action is a rotation, but in planes that are an arbitrary rotation ``Q`` of the
coordinate planes (the warm-up's objective does not depend on the basis); the same holds for the
Laplacian eigenmap of the graph warm-up (:mod:`dyndis_learn.transition_graph`), which is turned by these
functions before the encoder is regressed onto it. Gradient descent on the angle
regulariser alone turns that basis very slowly: the rest of the objective is flat along it. This module
does the turn in closed form, once:

1. :func:`fit_rotations`: per action, the rotation that best maps ``e_(t-1)`` to ``e_t`` over the
   transitions of a batch (orthogonal Procrustes with ``det = +1``, by SVD).
2. :func:`common_planes`: the actions of different factors commute, so their rotations share invariant
   planes. The eigenvectors of a random non-negative combination of their symmetric parts ``(R + R^T) / 2``
   (which is ``cos theta`` on a plane, 1 on a fixed axis) span them; sorted eigenvalues come in pairs, one
   per plane, and a common fixed axis (odd ``n``) has the largest one, so it sorts last.
3. :func:`canonical_planes`: the eigenvectors of a plane are any orthonormal pair of it, and which pair an
   eigen-solver returns (and, for near-equal eigenvalues, in which order the planes come) depends on its
   rounding, that is on the machine's CPU kernels: the planes are ordered, oriented and turned by the
   actions and the data, so that the same encodings give the same basis on every machine.
4. :func:`plane_angles`: each action's angle in every coordinate plane of the new basis.

:func:`fit_planes` does the four in a row.

:meth:`dyndis_learn.model.WorldModel.rotate_latent_basis` then rotates the encoder's output and the
decoder's input together (the model computes the same images), and the angles are set to the fitted ones.
"""

from __future__ import annotations

import math

import torch

from dyndis_learn.rotations import circle_planes, n_planes
from dyndis_learn.validation import check_int

__all__ = ["canonical_planes", "common_planes", "fit_planes", "fit_rotations", "plane_angles"]


def fit_rotations(before: torch.Tensor, after: torch.Tensor, actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    """Per action, the rotation ``R`` minimising ``sum ||R e_before - e_after||^2`` (orthogonal Procrustes).

    Args:
        before: Encodings before each transition, shape (M, n).
        after: Encodings after it, shape (M, n).
        actions: Action of each transition, shape (M,), values in ``[0, n_actions)``.
        n_actions: Number of actions ``A``.

    Returns:
        Shape (A, n, n), each in SO(n); the identity for an action with no transition.
    """
    n = before.shape[-1]
    # sum of e_after e_before^T per action, one matmul each (an (M, n, n) outer product would not fit for
    # the graph warm-up's tens of thousands of transitions in 64 dimensions)
    cross = before.new_zeros(n_actions, n, n)
    for action in actions.unique().tolist():
        taken = actions == action
        cross[action] = after[taken].T @ before[taken]
    u, _, vh = torch.linalg.svd(cross)
    # Flip the last singular direction where U V^T is a reflection: the best proper rotation.
    sign = torch.linalg.det(u @ vh).sign()
    u = torch.cat([u[..., :-1], u[..., -1:] * sign[:, None, None]], dim=-1)
    rotations = u @ vh
    seen = torch.bincount(actions, minlength=n_actions) > 0
    eye = torch.eye(n, dtype=before.dtype, device=before.device)
    return torch.where(seen[:, None, None], rotations, eye)


def common_planes(rotations: torch.Tensor, generator: torch.Generator | None = None, draws: int = 16) -> torch.Tensor:
    """An orthonormal basis whose coordinate planes ``(0, 1), (2, 3), ...`` are the rotations' common planes.

    Of ``draws`` random combinations, the one whose sorted eigenvalues split most clearly into pairs (the
    largest smallest gap between consecutive pairs, and before a lone last eigenvalue, relative to the
    spread) gives the basis.

    Args:
        rotations: Commuting rotations, shape (A, n, n).
        generator: Source of the random combinations (for reproducibility).
        draws: Number of random combinations tried.

    Returns:
        An orthogonal matrix ``Z`` of shape (n, n); the new coordinates are ``Z^T e``.
    """
    check_int("draws", draws, minimum=1)
    symmetric = (rotations + rotations.transpose(-1, -2)).double() / 2
    best, best_gap = torch.empty(0), -1.0
    for _ in range(draws):
        # Non-negative: a fixed axis then has the largest eigenvalue (sum of the weights, as cos theta <= 1)
        # and sorts last, after the pairs; with signed weights it could land between a pair's two vectors.
        weights = torch.randn(symmetric.shape[0], generator=generator, dtype=torch.float64).abs()
        weights = weights.to(symmetric.device)  # drawn on the CPU (the generator's): the same on every device
        values, vectors = torch.linalg.eigh(torch.einsum("a,aij->ij", weights, symmetric))
        between = values[2::2] - values[1:-1:2]  # gaps after each pair (the last one before a lone fixed axis)
        spread = (values[-1] - values[0]).clamp_min(1e-12)
        gap = float(between.min() / spread) if between.numel() else 1.0
        if gap > best_gap:
            best, best_gap = vectors, gap
    return best.to(rotations.dtype)


def plane_angles(rotations: torch.Tensor) -> torch.Tensor:
    """Each rotation's angle in every coordinate plane ``(i, j)``, ``i < j``, in the order of ``plane_pairs``.

    For a rotation that is block-diagonal in the planes ``(0, 1), (2, 3), ...`` the angles of those planes
    (``atan2`` of the 2 x 2 block's rotation part) rebuild it exactly; every other plane gets 0.

    Args:
        rotations: Shape (A, n, n).

    Returns:
        Shape (A, n (n - 1) / 2).
    """
    n = rotations.shape[-1]
    angles = rotations.new_zeros(rotations.shape[0], n_planes(n))
    for circle, k in enumerate(circle_planes(n)):
        i, j = 2 * circle, 2 * circle + 1
        sine = rotations[:, j, i] - rotations[:, i, j]
        cosine = rotations[:, i, i] + rotations[:, j, j]
        angles[:, k] = torch.atan2(sine, cosine)
    return angles


def _reference_row(projections: torch.Tensor) -> torch.Tensor:
    """The first row of ``projections`` (M, k) whose norm is at least half the largest.

    A row far from the origin, chosen the same way despite rounding (an argmax could jump between rows).
    """
    norms = torch.linalg.vector_norm(projections, dim=-1)
    return projections[int(torch.nonzero(norms >= norms.max() / 2)[0, 0])]


def canonical_planes(basis: torch.Tensor, rotations: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Order, orient and turn the coordinate planes of ``basis`` by the actions and the data.

    The result depends on the planes alone, not on which orthonormal pair of each an eigen-solver returned.

    Each plane ``(2k, 2k + 1)`` has a leading action: the first that turns it by more than a quarter of its
    largest angle. The planes are ordered by their leading actions (planes no action turns last, as they
    were); each is oriented so that its leading action turns it positively (unless by a half turn, which is
    the same either way), and turned within itself so that a reference point, the first of ``points``
    whose projection is at least half the largest, lies on its first axis. An odd last axis is signed so that
    the reference point's coordinate is positive. Only the planes no action turns keep the solver's choice.

    Args:
        basis: Orthogonal matrix (n, n) whose coordinate planes are the rotations' common planes.
        rotations: The rotations, shape (A, n, n), in the original coordinates.
        points: Encodings to place the planes by, shape (M, n), in the original coordinates.

    Returns:
        The canonical basis, shape (n, n).
    """
    n = basis.shape[0]
    angles = plane_angles(basis.T @ rotations @ basis)
    half_turn = math.pi - 1e-6
    planes: list[tuple[int, torch.Tensor]] = []
    for plane, column in enumerate(circle_planes(n)):
        turns = angles[:, column]
        largest = float(turns.abs().max())
        turned = torch.nonzero((turns.abs() > largest / 4) & (turns.abs() > 1e-6))
        pair = basis[:, 2 * plane : 2 * plane + 2].clone()
        if len(turned):
            leader = int(turned[0, 0])
            if -half_turn < turns[leader] < 0:
                pair[:, 1] = -pair[:, 1]
        else:
            leader = len(rotations) + plane  # after every turned plane, in the solver's order
        x, y = _reference_row(points @ pair).tolist()
        radius = math.hypot(x, y)
        if radius > 0:
            cos, sin = x / radius, y / radius
            pair = torch.stack([cos * pair[:, 0] + sin * pair[:, 1], cos * pair[:, 1] - sin * pair[:, 0]], dim=1)
        planes.append((leader, pair))
    planes.sort(key=lambda item: item[0])  # stable: planes with the same leader keep the solver's order
    columns_out = [pair for _, pair in planes]
    if n % 2:
        axis = basis[:, -1:]
        columns_out.append(-axis if float(_reference_row(points @ axis)[0]) < 0 else axis)
    return torch.cat(columns_out, dim=1)


def fit_planes(
    before: torch.Tensor,
    after: torch.Tensor,
    actions: torch.Tensor,
    n_actions: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit every action's rotation to the transitions, and find their common planes.

    Args:
        before: Encodings before each transition, shape (M, n).
        after: Encodings after it, shape (M, n).
        actions: Action of each transition, shape (M,).
        n_actions: Number of actions ``A``.
        generator: Source of :func:`common_planes`' random combinations.

    Returns:
        The basis ``Z`` of :func:`common_planes`, each plane placed by ``before`` (:func:`canonical_planes`),
        and the fitted rotations' angles in its coordinate planes (:func:`plane_angles` of ``Z^T R Z``), shape
        (A, n (n - 1) / 2).
    """
    rotations = fit_rotations(before, after, actions, n_actions)
    basis = canonical_planes(common_planes(rotations, generator), rotations, before)
    angles = plane_angles(basis.T @ rotations @ basis)
    # A half turn's sign is rounding's choice: one sign on every machine.
    return basis, torch.where(angles < -math.pi + 1e-6, angles + 2 * math.pi, angles)
