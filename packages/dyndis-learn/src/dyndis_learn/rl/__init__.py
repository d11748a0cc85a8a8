"""Reinforcement-learning integration with Stable-Baselines3 (install the ``rl`` extra)."""

from dyndis_learn.rl.callbacks import SuccessRecorder, steps_to_success_rate
from dyndis_learn.rl.extractor import LatentFeaturesExtractor
from dyndis_learn.rl.latent_vec_env import VecLatentObservation
from dyndis_learn.rl.sb3_vec_env import SB3VecEnv, make_sb3_vec_env, split_vector_infos

__all__ = [
    "LatentFeaturesExtractor",
    "SB3VecEnv",
    "SuccessRecorder",
    "VecLatentObservation",
    "make_sb3_vec_env",
    "split_vector_infos",
    "steps_to_success_rate",
]
