"""DynDis learning: a world model whose latent space is a sphere and whose actions are rotations.

The four-line API::

    from dyndis_learn import Learner
    learner = Learner.from_env("DynDis/GridWorld-v0")
    learner.train(); results = learner.evaluate()
    learner.save("gridworld.safetensors"); learner = Learner.load("gridworld.safetensors")
"""

from dyndis_learn.api import Learner, load_config, load_model
from dyndis_learn.config import EvalConfig, ModelConfig, RegularizerConfig, TrainConfig
from dyndis_learn.model import WorldModel
from dyndis_learn.rollouts import EpisodeBatch, RolloutCollector
from dyndis_learn.rotations import ActionRotations, Parametrisation
from dyndis_learn.trainer import Trainer

__all__ = [
    "ActionRotations",
    "EpisodeBatch",
    "EvalConfig",
    "Learner",
    "ModelConfig",
    "Parametrisation",
    "RegularizerConfig",
    "RolloutCollector",
    "TrainConfig",
    "Trainer",
    "WorldModel",
    "load_config",
    "load_model",
]
__version__ = "0.1.0"
