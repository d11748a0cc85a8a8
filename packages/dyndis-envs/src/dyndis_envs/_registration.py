"""Registers the DynDis environment ids with Gymnasium (run when ``dyndis_envs`` is imported)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

#: name -> (module, single env class, vector env class, max_episode_steps)
_ENVS: dict[str, tuple[str, str, str, int]] = {
    "GridWorld": ("dyndis_envs.gridworld", "GridWorldEnv", "GridWorldVectorEnv", 200),
    "Shapes3D": ("dyndis_envs.shapes3d", "Shapes3DEnv", "Shapes3DVectorEnv", 200),
    "Cars3D": ("dyndis_envs.cars3d", "Cars3DEnv", "Cars3DVectorEnv", 200),
    "BallWorld": ("dyndis_envs.ballworld", "BallWorldEnv", "BallWorldVectorEnv", 200),
}


#: Episode length of the Reach and Goal tasks.
_TASK_EPISODE_STEPS = 100


def _register(env_id: str, **spec: Any) -> str:
    if env_id not in gym.registry:  # importing twice (e.g. reloading) must not warn about overrides
        gym.register(id=env_id, **spec)
    return env_id


def register_envs() -> list[str]:
    """Register every plain ``DynDis/<Name>-v0`` id not registered yet; returns them.

    Each plain id also gets its tasks: ``DynDis/<Name>Reach-v0`` and ``DynDis/<Name>Goal-v0`` (see
    :mod:`dyndis_envs.task_envs`), whose entry points build the plain id's class with the task.
    """
    ids = []
    for name, (module, env_class, vector_class, max_episode_steps) in _ENVS.items():
        plain = _register(
            f"DynDis/{name}-v0",
            entry_point=f"{module}:{env_class}",
            vector_entry_point=f"{module}:{vector_class}",
            max_episode_steps=max_episode_steps,
        )
        ids.append(plain)
        _register(
            f"DynDis/{name}Reach-v0",
            entry_point="dyndis_envs.task_envs:make_reach_env",
            vector_entry_point="dyndis_envs.task_envs:make_reach_vector_env",
            max_episode_steps=_TASK_EPISODE_STEPS,
            kwargs={"env": plain},
        )
        _register(
            f"DynDis/{name}Goal-v0",
            entry_point="dyndis_envs.task_envs:make_goal_env",
            vector_entry_point="dyndis_envs.task_envs:make_goal_vector_env",
            max_episode_steps=_TASK_EPISODE_STEPS,
            kwargs={"env": plain},
            # no `additional_wrappers`: make_vec refuses the vector entry point of an id that has any
        )
    return ids


def task_ids(plain_ids: list[str]) -> list[str]:
    """The Reach and Goal ids of the given plain ids."""
    return [plain.replace("-v0", f"{task}-v0") for plain in plain_ids for task in ("Reach", "Goal")]
