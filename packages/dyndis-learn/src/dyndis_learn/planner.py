"""Plan in latent space with the learned rotations, and act on Goal tasks by re-planning every step.

The planner searches action sequences whose learned rotations carry the encoding of the current image onto
the encoding of a goal image.

The search is a beam search over latent states: every node is expanded by every action's rotation,
nodes that land on the same latent point (the same state, up to ``merge_distance``) are merged, and
the ``beam_width`` nodes nearest the goal are kept. On a disentangled model (each action a rotation in its
own plane) the distance to the goal falls along every shortest path, so the search finds them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from dyndis_learn.devices import module_device
from dyndis_learn.validation import check_int

__all__ = ["LatentPlanner"]

Encoder = Callable[[torch.Tensor], torch.Tensor]


class LatentPlanner:
    """Find action sequences from one image to another with a learned latent world model.

    Args:
        encode: Maps uint8 images (B, H, W, C) to latent points (B, n).
        action_matrices: The rotation of every action, shape (A, n, n).
        beam_width: Nodes kept per search depth.
        max_depth: Longest plan searched.
        merge_distance: Latent points closer than this count as the same state; also the distance at which
            the goal counts as reached. Default: a third of the shortest distance any action moves the
            start point.

    Example:
        >>> planner = LatentPlanner.from_model(model)          # a trained dyndis_learn WorldModel
        >>> actions = planner.plan(obs_image, goal_image)      # e.g. [0, 0, 3]
    """

    def __init__(
        self,
        encode: Encoder,
        action_matrices: torch.Tensor,
        beam_width: int = 512,
        max_depth: int = 64,
        merge_distance: float | None = None,
    ) -> None:
        if action_matrices.ndim != 3 or action_matrices.shape[1] != action_matrices.shape[2]:
            raise ValueError(f"`action_matrices` must have shape (A, n, n), got {tuple(action_matrices.shape)}.")
        check_int("beam_width", beam_width, minimum=1)
        check_int("max_depth", max_depth, minimum=1)
        if merge_distance is not None and not merge_distance > 0:
            raise ValueError(f"`merge_distance` must be positive or None, got {merge_distance!r}.")
        self.encode = encode
        self.action_matrices = action_matrices.detach().cpu().to(torch.float64)  # the search runs on the CPU
        self.beam_width = beam_width
        self.max_depth = max_depth
        self.merge_distance = merge_distance

    @classmethod
    def from_model(cls, model: Any, **kwargs: Any) -> LatentPlanner:
        """A planner over a :class:`~dyndis_learn.model.WorldModel` (its encoder and action rotations).

        Images are encoded on the model's device; the latents and rotations come back to the CPU, where the
        search runs.
        """
        model.eval()
        device = module_device(model)

        @torch.no_grad()
        def encode(frames: torch.Tensor) -> torch.Tensor:
            return model.encode(frames.to(device)).cpu()

        with torch.no_grad():
            matrices = model.rotations.matrices()
        return cls(encode, matrices, **kwargs)

    def _latent(self, image: npt.NDArray[np.uint8]) -> torch.Tensor:
        return self.encode(torch.as_tensor(np.asarray(image))[None])[0].detach().cpu().to(torch.float64)

    def plan(self, image: npt.NDArray[np.uint8], goal_image: npt.NDArray[np.uint8]) -> list[int]:
        """The action sequence the model predicts leads from ``image`` to ``goal_image`` (empty if already there).

        Args:
            image: The current image (H, W, C), uint8.
            goal_image: The goal image (H, W, C), uint8.
        """
        return self.plan_latent(self._latent(image), self._latent(goal_image))

    def plan_latent(self, start: torch.Tensor, goal: torch.Tensor) -> list[int]:
        """Beam search from latent ``start`` (n,) towards latent ``goal`` (n,); see :meth:`plan`."""
        matrices = self.action_matrices
        n_actions = matrices.shape[0]
        one_step = torch.linalg.vector_norm(matrices @ start - start, dim=-1)
        merge = self.merge_distance if self.merge_distance is not None else float(one_step.min()) / 3
        nodes = start[None]  # (F, n)
        layers = [nodes]  # per depth: the kept nodes, nearest the goal first
        parents: list[torch.Tensor] = []  # per depth: (F,) index of the parent node
        moves: list[torch.Tensor] = []  # per depth: (F,) action taken from the parent
        visited = {_cell(start, merge)}  # latent points quantised to cells of size `merge`: known states
        for _ in range(self.max_depth):
            children = torch.einsum("aij,fj->fai", matrices, nodes).reshape(-1, nodes.shape[1])
            distance = torch.linalg.vector_norm(children - goal, dim=-1)
            kept: list[int] = []
            for index in torch.argsort(distance).tolist():  # nearest first, so the beam keeps the best
                cell = _cell(children[index], merge)
                if cell not in visited:
                    visited.add(cell)
                    kept.append(index)
                    if len(kept) == self.beam_width:
                        break
            if not kept:
                break
            order = torch.tensor(kept)
            nodes = children[order]
            layers.append(nodes)
            parents.append(order // n_actions)
            moves.append(order % n_actions)
            if float(distance[order[0]]) < merge:
                break
        # The shallowest plan to the state nearest the goal. Longer paths to that state (cycles) end a hair
        # nearer or farther by the model's small errors and fall into other cells when those straddle a
        # cell boundary; taking the nearest end outright picks among them by chance, and re-planning every
        # step then oscillates. So: the nearest end, then the first depth with an end within `merge` of it.
        nearest_end = min((layer[0] for layer in layers), key=lambda p: float(torch.linalg.vector_norm(p - goal)))
        depth, node = next(
            (d, int(gaps.argmin()))
            for d, gaps in enumerate(torch.linalg.vector_norm(layer - nearest_end, dim=-1) for layer in layers)
            if float(gaps.min()) <= merge
        )
        plan = []
        for d in range(depth, 0, -1):
            plan.append(int(moves[d - 1][node]))
            node = int(parents[d - 1][node])
        return plan[::-1]

    def act(self, observation: dict[str, npt.NDArray[np.uint8]]) -> int | None:
        """The first action of a plan from a Goal task observation (``observation`` and ``desired_goal``).

        Returns None when the model sees the goal as reached (no action brings it closer).
        """
        plan = self.plan(observation["observation"], observation["desired_goal"])
        return plan[0] if plan else None


def _cell(point: torch.Tensor, size: float) -> bytes:
    """The quantisation cell of a latent point: points of one state share it (up to cell boundaries)."""
    return torch.round(point / size).to(torch.int64).numpy().tobytes()
