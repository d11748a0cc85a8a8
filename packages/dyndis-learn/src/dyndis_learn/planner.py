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
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from dyndis_learn.devices import module_device
from dyndis_learn.model import encode_checked, synthesis_modes_for
from dyndis_learn.validation import check_int

__all__ = ["GoalOutOfReach", "LatentPlanner", "Plan"]

Encoder = Callable[[torch.Tensor], torch.Tensor]


class Plan(NamedTuple):
    """The outcome of one search (:meth:`LatentPlanner.search`).

    Attributes:
        actions: The shallowest action sequence to the latent point nearest the goal that the search found.
        reached: Whether that point is within the merge distance of the goal (the plan reaches it).
        distance: Latent distance from the plan's end to the goal.
        merge_distance: The merge distance of this search (the goal counts as reached within it).
    """

    actions: list[int]
    reached: bool
    distance: float
    merge_distance: float


class GoalOutOfReach(ValueError):
    """No plan within the planner's ``max_depth`` and ``beam_width`` reaches the goal.

    Raised by :meth:`LatentPlanner.plan` with ``require_reach=True``.
    """


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
    def from_model(cls, model: Any, synthesis_modes: int | None = None, **kwargs: Any) -> LatentPlanner:
        """A planner over a :class:`~dyndis_learn.model.WorldModel` (its encoder and action rotations).

        Images are encoded on the model's device; the latents and rotations come back to the CPU, where the
        search runs.

        Args:
            model: The trained model.
            synthesis_modes: With an angle-bin model, encode images by
                :meth:`~dyndis_learn.model.WorldModel.encode_by_synthesis` over this many modes per circle (the
                decoder checks the encoder's hesitations); 1 is the plain encoding. Default:
                :data:`~dyndis_learn.model.DEFAULT_SYNTHESIS_MODES` with angle bins,
                else 1 (a model without bins has no modes: more than 1 is an error).
            **kwargs: The planner's other arguments (``beam_width``, ``max_depth``, ``merge_distance``).
        """
        model.eval()
        device = module_device(model)
        modes = synthesis_modes_for(model, "auto" if synthesis_modes is None else synthesis_modes)

        @torch.no_grad()
        def encode(frames: torch.Tensor) -> torch.Tensor:
            return encode_checked(model, frames.to(device), modes).cpu()

        with torch.no_grad():
            matrices = model.rotations.matrices()
        return cls(encode, matrices, **kwargs)

    def latent(self, image: npt.NDArray[np.uint8]) -> torch.Tensor:
        """The encoding of one image (H, W, C) that :meth:`search` starts from or aims at: float64, on the CPU."""
        return self.encode(torch.as_tensor(np.asarray(image))[None])[0].detach().cpu().to(torch.float64)

    def plan(
        self, image: npt.NDArray[np.uint8], goal_image: npt.NDArray[np.uint8], *, require_reach: bool = False
    ) -> list[int]:
        """The action sequence the model predicts leads from ``image`` to ``goal_image`` (empty if already there).

        Where no plan within ``max_depth`` steps (keeping ``beam_width`` nodes per depth) reaches the goal, this
        is the plan to the point nearest it, which re-planning every step (:meth:`act`) can still follow.

        Args:
            image: The current image (H, W, C), uint8.
            goal_image: The goal image (H, W, C), uint8.
            require_reach: Raise :class:`GoalOutOfReach` instead of returning a plan that does not reach the goal.

        Raises:
            GoalOutOfReach: With ``require_reach``, when the search ends away from the goal (naming the limits).
        """
        found = self.search(self.latent(image), self.latent(goal_image))
        if require_reach and not found.reached:
            raise GoalOutOfReach(
                f"No plan of at most max_depth={self.max_depth} steps (beam_width={self.beam_width}) reaches the "
                f"goal: the nearest point found is {found.distance:.3g} from it in latent space (reached within "
                f"{found.merge_distance:.3g}), after {len(found.actions)} steps. Raise max_depth (the longest "
                "shortest path between two states is the sum over the factors of half their cycle lengths) or "
                "beam_width; if that does not help, the goal image is not a state the model has learned."
            )
        return found.actions

    def plan_latent(self, start: torch.Tensor, goal: torch.Tensor) -> list[int]:
        """Beam search from latent ``start`` (n,) towards latent ``goal`` (n,); see :meth:`plan`."""
        return self.search(start, goal).actions

    def search(self, start: torch.Tensor, goal: torch.Tensor) -> Plan:
        """The beam search from latent ``start`` (n,) towards latent ``goal`` (n,), and whether it reached it."""
        matrices = self.action_matrices
        n_actions = matrices.shape[0]
        one_step = torch.linalg.vector_norm(matrices @ start - start, dim=-1)
        merge = self.merge_distance if self.merge_distance is not None else float(one_step.min()) / 3
        nodes = start[None]  # (F, n)
        layers = [nodes]  # per depth: the kept nodes, nearest the goal first
        parents: list[torch.Tensor] = []  # per depth: (F,) index of the parent node
        moves: list[torch.Tensor] = []  # per depth: (F,) action taken from the parent
        visited = {_cells(start[None], merge)[0].tobytes()}  # latent points in cells of size `merge`: states
        for _ in range(self.max_depth):
            children = torch.einsum("aij,fj->fai", matrices, nodes).reshape(-1, nodes.shape[1])
            distance = torch.linalg.vector_norm(children - goal, dim=-1)
            cells = _cells(children, merge)
            kept: list[int] = []
            for index in torch.argsort(distance).tolist():  # nearest first, so the beam keeps the best
                cell = cells[index].tobytes()
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
        end = layers[depth][node]
        plan = []
        for d in range(depth, 0, -1):
            plan.append(int(moves[d - 1][node]))
            node = int(parents[d - 1][node])
        gap = float(torch.linalg.vector_norm(end - goal))
        return Plan(plan[::-1], reached=gap < merge, distance=gap, merge_distance=merge)

    def act(self, observation: dict[str, npt.NDArray[np.uint8]]) -> int | None:
        """The first action of a plan from a Goal task observation (``observation`` and ``desired_goal``).

        Returns None when the model sees the goal as reached (no action brings it closer).
        """
        plan = self.plan(observation["observation"], observation["desired_goal"])
        return plan[0] if plan else None


def _cells(points: torch.Tensor, size: float) -> npt.NDArray[np.int64]:
    """The quantisation cells of latent points (P, n), one row each.

    Points of one state share a cell (up to cell boundaries).
    """
    return np.round(points.numpy() / size).astype(np.int64)
