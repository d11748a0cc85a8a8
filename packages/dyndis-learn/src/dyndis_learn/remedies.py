"""What to change when criteria fail: for each failed check, the setting that usually mends it.

A run that stops short of its world's budget (1,000 steps of one's own on Cars3D, say) ends with a report
whose criteria say False; :func:`remedies` turns each False into the setting to change, with the budgets the
large worlds were measured to need (docs/benchmarks/learn_structure.md). A check that cannot be judged (None)
gets none: nothing says what would mend it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dyndis_learn.results import Evaluation
from dyndis_learn.warmups import LARGE_WORLD_STEPS, LARGE_WORLD_WARMUP_STEPS, LONG_CYCLE_WARMUP_STEPS, stored_warmup

__all__ = ["remedies", "remedy_lines"]

#: The measured budgets of the large worlds (``steps`` / ``warmup.steps``), quoted by the advice.
_BUDGETS = (
    f"the whole Shapes3D took {LARGE_WORLD_STEPS:,} / {LARGE_WORLD_WARMUP_STEPS:,}, Cars3D {LARGE_WORLD_STEPS:,} / "
    f"{LONG_CYCLE_WARMUP_STEPS:,}, what `auto` chooses for them"
)

#: The warm-up places the encoder on the map: large worlds need a longer one as well as more steps.
_LONGER = f"train longer (`steps`, and on worlds of many states a longer `warmup.steps`: {_BUDGETS})"
_STRUCTURE = f"the actions' rotations have not settled into planes of their own at faithful angles: {_LONGER}"
_ADVICE = {
    "single_plane": _STRUCTURE,
    "faithful_angles": _STRUCTURE,
    "disjoint_planes": _STRUCTURE,
    "rollout_stable": "long imagined rollouts drift from the true frames: train longer (`steps`)",
    "encoder_fidelity": f"the encodings do not place every state at its value's point: {_LONGER}",
    "decoder_fidelity": (
        "decoded pictures show wrong states: train longer (`steps`); the pictures come right last "
        f"(small worlds from about 850 steps; {_BUDGETS})"
    ),
    "dynamics_trained": (
        "the run stopped before the dynamics phase's ramp ended: raise `steps` above `warmup.steps` + "
        "`optim.dynamics_ramp_steps`"
    ),
}
_UNSEEN = (
    "the encoder places states that training never saw wrongly (it holds on the seen ones): train longer "
    "(`steps`), or let training see more of the world (the cycles warm-up's `warmup.cycles.walk_steps`)"
)


def remedies(evaluation: Evaluation) -> list[tuple[tuple[str, ...], str]]:
    """``(criteria, what to change)`` for the criteria that are False, in the criteria's order.

    Criteria that the same change mends (the three structure checks, say) share one entry.
    """
    grouped: dict[str, list[str]] = {}
    for name, value in evaluation.criteria.checks().items():
        if value is False:
            grouped.setdefault(_advice(evaluation, name), []).append(name)
    return [(tuple(names), advice) for advice, names in grouped.items()]


def remedy_lines(evaluation: Evaluation) -> list[str]:
    """The terminal's lines of :func:`remedies`: ``to mend NAME[, NAME]: ...``, one per change."""
    return [f"to mend {', '.join(names)}: {advice}" for names, advice in remedies(evaluation)]


def _advice(evaluation: Evaluation, name: str) -> str:
    """What to change for the failed criterion ``name``."""
    if name == "encoder_fidelity" and _only_unseen_fails(evaluation):
        return _UNSEEN
    advice = _ADVICE[name]
    if name == "dynamics_trained" and evaluation.training is not None:
        ramp_end = _ramp_end(evaluation.training.config)
        if ramp_end is not None:
            advice += f" ({evaluation.training.steps} steps taken, the ramp ends at step {ramp_end})"
    return advice


def _only_unseen_fails(evaluation: Evaluation) -> bool:
    """Whether the probe holds on every seen factor and misses on an unseen one."""
    fid = evaluation.fidelity
    if fid is None or fid.seen is None or fid.unseen is None:
        return False
    threshold = evaluation.criteria.probe_threshold
    return min(fid.seen.probe_r2) >= threshold > min(fid.unseen.probe_r2)


def _ramp_end(config: Mapping[str, Any]) -> int | None:
    """The step after which a stored config's dynamics ramp is over (None for an unknown or invalid config).

    Its warm-up's steps (0 for kind ``"none"``) plus ``optim.dynamics_ramp_steps``.
    """
    warmup = stored_warmup(config)
    return None if warmup is None else warmup.steps + warmup.config.optim.dynamics_ramp_steps
