"""Reinforcement-learning integration with Stable-Baselines3 (install the ``rl`` extra)."""

from dyndis_learn.rl.sb3_vec_env import SB3VecEnv, make_sb3_vec_env, split_vector_infos

__all__ = ["SB3VecEnv", "make_sb3_vec_env", "split_vector_infos"]
