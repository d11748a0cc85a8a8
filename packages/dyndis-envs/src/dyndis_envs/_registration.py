"""Registers the DynDis environment ids with Gymnasium (run when ``dyndis_envs`` is imported)."""

from __future__ import annotations

import gymnasium as gym

#: name -> (module, single env class, vector env class, max_episode_steps)
_ENVS: dict[str, tuple[str, str, str, int]] = {
    "GridWorld": ("dyndis_envs.gridworld", "GridWorldEnv", "GridWorldVectorEnv", 200),
}


def register_envs() -> list[str]:
    """Register every ``DynDis/<Name>-v0`` id that is not registered yet; returns all DynDis ids."""
    ids = []
    for name, (module, env_class, vector_class, max_episode_steps) in _ENVS.items():
        env_id = f"DynDis/{name}-v0"
        ids.append(env_id)
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=f"{module}:{env_class}",
                vector_entry_point=f"{module}:{vector_class}",
                max_episode_steps=max_episode_steps,
            )
    return ids
