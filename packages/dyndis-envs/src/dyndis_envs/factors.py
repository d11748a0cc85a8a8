"""Generative factors, the values a user chooses for them, and the cyclic actions that shift them.

A state is one value index per factor, counted within the *chosen* values of that factor. Every factor
with more than one chosen value is *active*; active factor ``k`` owns action ``2k`` (move +1) and
``2k + 1`` (move -1), both cyclic, so ``N_k`` applications of ``2k`` return to the start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dyndis_envs.validation import check_int, is_integer

__all__ = ["ActionEffect", "Factor", "FactorSpace", "Subset"]

#: How a user picks a factor's values: ``None`` or ``"all"`` for every value, an int ``n`` for the first
#: ``n`` values, or a sequence of value indices (in the order given).
Subset = None | str | int | Sequence[int] | npt.NDArray[np.integer]


@dataclass(frozen=True)
class Factor:
    """A named generative factor with its ordered list of allowed values.

    Attributes:
        name: The factor's name, e.g. ``"north_south"``.
        values: Every value the factor can take, in cyclic order.
    """

    name: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Factor name must be a non-empty string.")
        if len(self.values) < 1:
            raise ValueError(f"Factor {self.name!r} needs at least one value, got none.")


@dataclass(frozen=True)
class ActionEffect:
    """What one action does: move one factor one value forward or back along its cycle.

    Attributes:
        factor: The name of the factor the action moves.
        factor_index: The factor's position among all factors (its column in ``info["factors"]``).
        direction: ``+1`` (to the next chosen value) or ``-1`` (to the previous one), cyclically.
        cycle_length: ``N``: the number of chosen values of the factor; ``N`` steps return to the start.
        inverse: The action that undoes this one (same factor, opposite direction).
    """

    factor: str
    factor_index: int
    direction: int
    cycle_length: int
    inverse: int


def _resolve_subset(factor: Factor, subset: Subset) -> npt.NDArray[np.int64]:
    """Turn a user's subset of one factor into indices into ``factor.values``."""
    n = len(factor.values)
    allowed = f"None or 'all', an int in [1, {n}], or a non-empty list of distinct indices in [0, {n - 1}]"
    if subset is None or (isinstance(subset, str) and subset == "all"):
        return np.arange(n, dtype=np.int64)
    if isinstance(subset, str):
        raise ValueError(f"Invalid subset for factor {factor.name!r}: expected {allowed}, got {subset!r}.")
    if isinstance(subset, (bool, np.bool_)):
        raise TypeError(f"Invalid subset for factor {factor.name!r}: expected {allowed}, got {subset!r}.")
    if is_integer(subset):
        if not 1 <= subset <= n:
            raise ValueError(f"Invalid subset for factor {factor.name!r}: expected {allowed}, got {subset}.")
        return np.arange(int(subset), dtype=np.int64)
    try:
        indices = np.asarray(subset)
    except Exception as exc:  # e.g. ragged nested lists
        raise TypeError(f"Invalid subset for factor {factor.name!r}: expected {allowed}, got {subset!r}.") from exc
    if indices.ndim != 1 or indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"Invalid subset for factor {factor.name!r}: expected {allowed}, got {subset!r}.")
    if indices.min() < 0 or indices.max() >= n or len(np.unique(indices)) != indices.size:
        raise ValueError(f"Invalid subset for factor {factor.name!r}: expected {allowed}, got {subset!r}.")
    return indices.astype(np.int64)


class FactorSpace:
    """The chosen values of each factor, the state space they span, and the cyclic actions on it.

    Args:
        factors: Every factor of the environment, with all its values.
        subsets: Chosen values per factor name (see :data:`Subset`); factors not named keep all values.

    Raises:
        ValueError: For an unknown factor name or an empty, out-of-range or duplicated subset.

    Example:
        >>> space = FactorSpace([Factor("x", (0, 1, 2)), Factor("colour", ("red", "blue"))], {"colour": [1]})
        >>> space.sizes, space.n_actions
        ((3, 1), 2)
        >>> space.step_one([2, 0], 0)
        [0, 0]
    """

    def __init__(self, factors: Sequence[Factor], subsets: Mapping[str, Subset] | None = None) -> None:
        self.factors: tuple[Factor, ...] = tuple(factors)
        self.names: tuple[str, ...] = tuple(f.name for f in self.factors)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"Factor names must be unique, got {self.names}.")
        subsets = dict(subsets or {})
        unknown = sorted(set(subsets) - set(self.names))
        if unknown:
            raise ValueError(f"Unknown factor name(s) {unknown} in `factors`; this environment has {list(self.names)}.")
        #: Indices into each factor's full ``values`` of the chosen values, in state order.
        self.selected: tuple[npt.NDArray[np.int64], ...] = tuple(
            _resolve_subset(f, subsets.get(f.name)) for f in self.factors
        )
        self.sizes: tuple[int, ...] = tuple(len(s) for s in self.selected)
        #: Positions (in ``names``) of the factors with more than one chosen value.
        self.active: tuple[int, ...] = tuple(k for k, size in enumerate(self.sizes) if size > 1)
        self.n_states: int = int(np.prod(self.sizes, dtype=np.int64))
        self.strides: tuple[int, ...] = tuple(
            int(np.prod(self.sizes[k + 1 :], dtype=np.int64)) for k in range(len(self.sizes))
        )
        self._sizes_array = np.asarray(self.sizes, dtype=np.int64)
        self._strides_array = np.asarray(self.strides, dtype=np.int64)
        # action a -> (factor position, +1 or -1)
        self.action_factor = np.repeat(np.asarray(self.active, dtype=np.int64), 2)
        self.action_delta = np.tile(np.asarray([1, -1], dtype=np.int64), len(self.active))
        self._action_table = [(int(k), int(d)) for k, d in zip(self.action_factor, self.action_delta)]
        #: What each action does, indexed by action: its factor, direction, cycle length and inverse.
        self.action_effects: tuple[ActionEffect, ...] = tuple(
            ActionEffect(self.names[k], k, d, self.sizes[k], a + d)  # 2k + 1 undoes 2k and vice versa
            for a, (k, d) in enumerate(self._action_table)
        )

    # -- description -----------------------------------------------------------------------------------------

    @property
    def n_factors(self) -> int:
        """Number of factors, active or not."""
        return len(self.factors)

    @property
    def n_actions(self) -> int:
        """Number of actions: two per active factor."""
        return 2 * len(self.active)

    def action_meanings(self) -> list[str]:
        """Human-readable names of the actions, e.g. ``["north_south+1", "north_south-1", ...]``."""
        return [f"{self.names[k]}{'+' if d > 0 else '-'}1" for k, d in self._action_table]

    def values_of(self, state: Sequence[int] | npt.NDArray[np.integer]) -> dict[str, Any]:
        """The factor values (not indices) of one state."""
        return {
            f.name: f.values[int(sel[int(i)])]
            for f, sel, i in zip(self.factors, self.selected, state)
        }

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={s}" for n, s in zip(self.names, self.sizes))
        return f"FactorSpace({parts})"

    # -- states ----------------------------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> list[int]:
        """A uniformly random state (as Python ints), drawn from ``rng``."""
        return [int(i) for i in rng.integers(0, self._sizes_array)]

    def check_states(self, states: Any, name: str = "factors") -> npt.NDArray[np.int64]:
        """Validate states given by a user: shape (..., n_factors), integers within the chosen sizes.

        Args:
            states: One state or a batch of states.
            name: The argument's name, for the error message.
        """
        try:
            array = np.asarray(states)
        except Exception as exc:
            raise TypeError(f"`{name}` must be integer value indices, got {states!r}.") from exc
        if array.ndim == 0 or array.shape[-1] != self.n_factors or not (
            np.issubdtype(array.dtype, np.integer) or array.size == 0
        ):
            raise ValueError(
                f"`{name}` must hold {self.n_factors} integer value indices ({', '.join(self.names)}) per state, "
                f"got {states!r}."
            )
        array = array.astype(np.int64)
        if np.any(array < 0) or np.any(array >= self._sizes_array):
            raise ValueError(
                f"`{name}` out of range: each index k must satisfy 0 <= index < {list(self.sizes)} "
                f"(sizes of {list(self.names)}), got {states!r}."
            )
        return array

    def flat_index(self, states: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
        """Row-major index of each state in the product of the chosen values, shape (...,)."""
        return np.asarray(states, dtype=np.int64) @ self._strides_array

    def all_states(self) -> npt.NDArray[np.int64]:
        """Every state, in row-major (flat index) order, shape (n_states, n_factors)."""
        grids = np.indices(self.sizes, dtype=np.int64)
        return grids.reshape(self.n_factors, -1).T.copy()

    def sample_states(self, n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
        """``n`` states drawn uniformly and independently from ``rng``, shape (n, n_factors)."""
        n = check_int("n", n, minimum=0)
        return rng.integers(0, self._sizes_array, size=(n, self.n_factors), dtype=np.int64)

    def to_value_indices(self, states: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
        """Map states (indices into the chosen values) to indices into each factor's full value list."""
        states = np.asarray(states, dtype=np.int64)
        out = np.empty_like(states)
        for k, sel in enumerate(self.selected):
            out[..., k] = sel[states[..., k]]
        return out

    # -- actions ---------------------------------------------------------------------------------------------

    def step_one(self, state: list[int], action: int) -> list[int]:
        """Apply one action to one state given as a list of ints (fast path for single envs)."""
        k, delta = self._action_table[action]
        new = list(state)
        new[k] = (new[k] + delta) % self.sizes[k]
        return new

    def step(self, states: npt.NDArray[np.int64], actions: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
        """Apply one action per state to a batch, shape (B, n_factors) and (B,); returns a new array."""
        new = states.copy()
        if len(self.active) == 0:
            return new
        rows = np.arange(len(states))
        k = self.action_factor[actions]
        new[rows, k] = (new[rows, k] + self.action_delta[actions]) % self._sizes_array[k]
        return new
