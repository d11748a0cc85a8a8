"""Action parametrisations: each discrete action is a rotation of the latent sphere S^(n-1).

An action owns one angle per plane ``(i, j)``, ``i < j``: ``n(n-1)/2`` angles (Quessard et al., 2020,
"Learning disentangled representations and group structure of dynamical environments"). Two ways to turn
the angles into a rotation matrix are offered:

- ``"givens"`` (the paper's parametrisation): the ordered product of one Givens rotation per plane. The
  planes are grouped into rounds of disjoint planes (a round-robin schedule: ``n - 1`` rounds for even
  ``n``, ``n`` for odd ``n``); the rotations of one round commute and form one sparse matrix, built for all
  actions and all rounds in a single scatter. The rounds are then multiplied in a balanced tree, so
  building every action's matrix takes ``O(log n)`` batched matrix products and no Python loop over planes.
- ``"exp"``: ``matrix_exp`` of the skew-symmetric matrix holding the angles, so ``R^m = exp(m A)`` exactly.

With a single non-zero angle both give the same Givens rotation ``G(i, j, theta)``: identity except
``G[i, i] = G[j, j] = cos(theta)``, ``G[j, i] = sin(theta)``, ``G[i, j] = -sin(theta)``.
"""

from __future__ import annotations

import enum

import torch
from torch import nn

from dyndis_learn.validation import check_int

__all__ = [
    "ActionRotations",
    "Parametrisation",
    "circle_planes",
    "cumulative_rotations",
    "givens_product",
    "matrix_power",
    "n_planes",
    "plane_pairs",
    "round_robin_rounds",
    "skew_symmetric",
]


class Parametrisation(str, enum.Enum):
    """How an action's angles become a rotation matrix."""

    GIVENS = "givens"
    """Ordered product of Givens rotations, one per plane (the paper's parametrisation)."""
    EXP = "exp"
    """Matrix exponential of the skew-symmetric matrix of the angles (exact powers)."""


def n_planes(latent_dim: int) -> int:
    """Number of coordinate planes of R^n: ``n (n - 1) / 2``."""
    return latent_dim * (latent_dim - 1) // 2


def plane_pairs(latent_dim: int) -> torch.Tensor:
    """The planes ``(i, j)``, ``i < j``, in lexicographic order: the order of an action's angles.

    Returns:
        Long tensor of shape (n_planes, 2).
    """
    pairs = [(i, j) for i in range(latent_dim) for j in range(i + 1, latent_dim)]
    return torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)


def circle_planes(latent_dim: int) -> list[int]:
    """Where the planes ``(0, 1), (2, 3), ...`` (the torus's circles) sit in :func:`plane_pairs`' order.

    ``angles[:, circle_planes(n)]`` are then each action's turns of each circle, shape (A, n // 2).
    """
    pairs = plane_pairs(latent_dim).tolist()
    return [pairs.index([2 * k, 2 * k + 1]) for k in range(latent_dim // 2)]


def round_robin_rounds(latent_dim: int) -> list[list[tuple[int, int]]]:
    """Split all planes into rounds of pairwise disjoint planes (the circle method of a round robin).

    Every plane appears in exactly one round. Even ``n`` gives ``n - 1`` rounds of ``n / 2`` planes; odd
    ``n`` gives ``n`` rounds of ``(n - 1) / 2`` planes (one coordinate sits out each round).

    Returns:
        The rounds, each a list of planes ``(i, j)`` with ``i < j``.
    """
    players = latent_dim + latent_dim % 2  # a dummy player for odd n: pairing with it means sitting out
    fixed, ring = players - 1, players - 1
    rounds = []
    for r in range(players - 1):
        pairs = [(r % ring, fixed)] + [((r + k) % ring, (r - k) % ring) for k in range(1, players // 2)]
        rounds.append(sorted((min(p), max(p)) for p in pairs if max(p) < latent_dim))
    return rounds


def _flat(i: int, j: int, n: int) -> int:
    return i * n + j


class _GivensLayout:
    """Index tables that scatter the angles of every round into sparse round matrices (built once per n)."""

    def __init__(self, latent_dim: int) -> None:
        n = latent_dim
        plane_of = {tuple(p): k for k, p in enumerate(plane_pairs(n).tolist())}
        rounds = round_robin_rounds(n)
        width = max(len(r) for r in rounds)
        self.n_rounds = len(rounds)
        # Per round: which angle each slot holds, and where its cos, cos, -sin, sin entries go.
        self.angle_index = torch.zeros(self.n_rounds, width, dtype=torch.long)
        self.positions = torch.zeros(self.n_rounds, width * 4, dtype=torch.long)
        self.base = torch.zeros(self.n_rounds, n * n)  # the diagonal 1 of the coordinate sitting out
        for r, planes in enumerate(rounds):
            for slot, (i, j) in enumerate(planes):
                self.angle_index[r, slot] = plane_of[(i, j)]
                self.positions[r, 4 * slot : 4 * slot + 4] = torch.tensor(
                    [_flat(i, i, n), _flat(j, j, n), _flat(i, j, n), _flat(j, i, n)]
                )
            idle = set(range(n)) - {c for plane in planes for c in plane}
            for c in idle:
                self.base[r, _flat(c, c, n)] = 1.0
        self.latent_dim = n

    def round_matrices(self, angles: torch.Tensor) -> torch.Tensor:
        """(A, n_planes) angles -> (A, n_rounds, n, n) round matrices."""
        n = self.latent_dim
        theta = angles[:, self.angle_index.to(angles.device)]  # (A, R, width)
        cos, sin = torch.cos(theta), torch.sin(theta)
        values = torch.stack([cos, cos, -sin, sin], dim=-1).flatten(-2)  # (A, R, 4 width)
        base = self.base.to(angles).expand(angles.shape[0], -1, -1)
        positions = self.positions.to(angles.device).expand(angles.shape[0], -1, -1)
        return base.scatter(-1, positions, values).view(angles.shape[0], self.n_rounds, n, n)


_LAYOUTS: dict[int, _GivensLayout] = {}


def _layout(latent_dim: int) -> _GivensLayout:
    if latent_dim not in _LAYOUTS:
        _LAYOUTS[latent_dim] = _GivensLayout(latent_dim)
    return _LAYOUTS[latent_dim]


def _ordered_product(matrices: torch.Tensor) -> torch.Tensor:
    """``M[k-1] @ ... @ M[1] @ M[0]`` over dim 1 of (A, k, n, n), as a balanced tree of batched products."""
    while matrices.shape[1] > 1:
        pairs = matrices.shape[1] // 2
        products = matrices[:, 1 : 2 * pairs : 2] @ matrices[:, 0 : 2 * pairs : 2]
        if matrices.shape[1] % 2:
            products = torch.cat([products, matrices[:, -1:]], dim=1)
        matrices = products
    return matrices[:, 0]


def givens_product(angles: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """Rotation matrices as ordered products of Givens rotations, for any number of actions at once.

    The product applies the rounds of :func:`round_robin_rounds` in order (round 0 first, i.e. rightmost);
    the planes inside one round are disjoint, so their order does not matter.

    Args:
        angles: Angles of shape (..., n_planes), in the plane order of :func:`plane_pairs`.
        latent_dim: The dimension ``n``.

    Returns:
        Rotation matrices of shape (..., n, n).
    """
    _check_angles(angles, latent_dim)
    batch = angles.shape[:-1]
    flat = angles.reshape(-1, angles.shape[-1])
    if latent_dim < 2:
        eye = torch.eye(latent_dim, dtype=angles.dtype, device=angles.device)
        return eye.expand(*batch, latent_dim, latent_dim).clone()
    rounds = _layout(latent_dim).round_matrices(flat)
    return _ordered_product(rounds).reshape(*batch, latent_dim, latent_dim)


def skew_symmetric(angles: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """The skew-symmetric generator ``A`` with ``A[j, i] = theta_ij = -A[i, j]``, shape (..., n, n)."""
    _check_angles(angles, latent_dim)
    pairs = plane_pairs(latent_dim).to(angles.device)
    generator = angles.new_zeros(*angles.shape[:-1], latent_dim, latent_dim)
    generator[..., pairs[:, 1], pairs[:, 0]] = angles
    generator[..., pairs[:, 0], pairs[:, 1]] = -angles
    return generator


def _check_angles(angles: torch.Tensor, latent_dim: int) -> None:
    if angles.shape[-1:] != (n_planes(latent_dim),):
        raise ValueError(
            f"`angles` must have shape (..., {n_planes(latent_dim)}) for latent_dim={latent_dim}, "
            f"got {tuple(angles.shape)}."
        )


def matrix_power(matrices: torch.Tensor, exponents: torch.Tensor) -> torch.Tensor:
    """``M^m`` for a batch of rotations, each with its own integer exponent (negative: ``(M^T)^|m|``).

    Binary exponentiation over the batch: ``O(log max|m|)`` batched products.

    Args:
        matrices: Rotations of shape (..., n, n).
        exponents: Integer tensor of shape (...,).
    """
    if exponents.shape != matrices.shape[:-2]:
        raise ValueError(
            f"`exponents` must have shape {tuple(matrices.shape[:-2])} (one per matrix), got {tuple(exponents.shape)}."
        )
    base = torch.where((exponents < 0)[..., None, None], matrices.transpose(-1, -2), matrices)
    remaining = exponents.abs()
    result = torch.eye(matrices.shape[-1], dtype=matrices.dtype, device=matrices.device).expand_as(matrices)
    while bool((remaining > 0).any()):
        odd = (remaining % 2 == 1)[..., None, None]
        result = torch.where(odd, base @ result, result)
        remaining = remaining // 2
        if bool((remaining > 0).any()):
            base = base @ base
    return result


def cumulative_rotations(steps: torch.Tensor) -> torch.Tensor:
    """Path rotations ``P_t = R_t ... R_1`` for ``t = 0 .. T`` (``P_0 = I``) of a batch of step rotations.

    Args:
        steps: Step rotations ``R_t``, shape (B, T, n, n).

    Returns:
        Shape (B, T + 1, n, n).
    """
    eye = torch.eye(steps.shape[-1], dtype=steps.dtype, device=steps.device).expand(steps.shape[0], -1, -1)
    paths = [eye]
    for t in range(steps.shape[1]):  # T small products; a parallel scan does not pay at these sizes
        paths.append(steps[:, t] @ paths[-1])
    return torch.stack(paths, dim=1)


class ActionRotations(nn.Module):
    """The learnable rotation of every action: ``n(n-1)/2`` angles per action.

    Args:
        n_actions: Number of discrete actions ``A``.
        latent_dim: Dimension ``n`` of the latent space (the sphere is S^(n-1)); at least 2.
        parametrisation: ``"givens"`` (default) or ``"exp"``.
        init_scale: Angles start uniform in ``[-init_scale, init_scale]``: small, so that no plane is
            preferred before learning.
        generator: Optional torch generator for the initial angles.

    Attributes:
        angles: Parameter of shape (A, n_planes), in the plane order of :func:`plane_pairs`.
    """

    def __init__(
        self,
        n_actions: int,
        latent_dim: int,
        parametrisation: Parametrisation | str = Parametrisation.GIVENS,
        init_scale: float = 0.01,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_int("n_actions", n_actions, minimum=1)  # NumPy integers too, as ``single_action_space.n`` gives them
        check_int("latent_dim", latent_dim, minimum=2)
        try:
            self.parametrisation = Parametrisation(parametrisation)
        except ValueError:
            raise ValueError(
                f"Invalid `parametrisation`, expected one of {[p.value for p in Parametrisation]}, "
                f"got {parametrisation!r}."
            ) from None
        self.n_actions = int(n_actions)
        self.latent_dim = int(latent_dim)
        initial = (torch.rand(n_actions, n_planes(latent_dim), generator=generator) * 2 - 1) * init_scale
        self.angles = nn.Parameter(initial)

    def matrices(self) -> torch.Tensor:
        """Every action's rotation matrix, shape (A, n, n)."""
        if self.parametrisation is Parametrisation.EXP:
            return torch.linalg.matrix_exp(skew_symmetric(self.angles, self.latent_dim))
        return givens_product(self.angles, self.latent_dim)

    def forward(self, actions: torch.Tensor, magnitudes: torch.Tensor | None = None) -> torch.Tensor:
        """The rotation of each action, applied ``magnitude`` times (default once).

        Args:
            actions: Long tensor of action indices, any shape (...).
            magnitudes: Optional integer tensor of shape (...): how many times each action is applied in
                one step (negative: the inverse rotation that many times).

        Returns:
            Rotation matrices of shape (..., n, n).
        """
        if magnitudes is None:
            return self.matrices()[actions]
        if magnitudes.shape != actions.shape:
            raise ValueError(
                f"`magnitudes` must have the shape of `actions` {tuple(actions.shape)}, got {tuple(magnitudes.shape)}."
            )
        if self.parametrisation is Parametrisation.EXP:
            generators = skew_symmetric(self.angles, self.latent_dim)[actions]
            return torch.linalg.matrix_exp(generators * magnitudes[..., None, None].to(generators))
        return matrix_power(self.matrices()[actions], magnitudes)

    def extra_repr(self) -> str:
        """Shown by ``repr(module)``."""
        return (
            f"n_actions={self.n_actions}, latent_dim={self.latent_dim}, parametrisation={self.parametrisation.value!r}"
        )
