"""DynDis learning: a world model whose latent space is a sphere and whose actions are rotations.

The four-line API::

    from dyndis_learn import Learner
    learner = Learner.from_env("DynDis/GridWorld-v0")
    learner.train(); results = learner.evaluate()
    learner.save("gridworld.safetensors"); learner = Learner.load("gridworld.safetensors")
"""

__version__ = "0.1.0"

from dyndis_learn.api import Learner, load_config, load_model
from dyndis_learn.baselines import PredictiveModel  # also registers the baseline methods
from dyndis_learn.checkpoint import CheckpointError
from dyndis_learn.config import (
    CycleWarmupConfig,
    DataConfig,
    EnvConfig,
    EvalConfig,
    GraphWarmupConfig,
    LogConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RegularizerConfig,
    SpectralWarmupConfig,
    TrainConfig,
    WarmupConfig,
)
from dyndis_learn.methods import Method, register_method
from dyndis_learn.model import WorldModel
from dyndis_learn.results import Evaluation
from dyndis_learn.rollouts import EpisodeBatch, RolloutCollector
from dyndis_learn.rotations import ActionRotations, Parametrisation
from dyndis_learn.trainer import Trainer
from dyndis_learn.warmups import Warmup, register_warmup

__all__ = [
    "ActionRotations",
    "CheckpointError",
    "CycleWarmupConfig",
    "DataConfig",
    "EnvConfig",
    "EpisodeBatch",
    "EvalConfig",
    "Evaluation",
    "GraphWarmupConfig",
    "Learner",
    "LogConfig",
    "LossConfig",
    "Method",
    "ModelConfig",
    "OptimConfig",
    "Parametrisation",
    "PredictiveModel",
    "RegularizerConfig",
    "RolloutCollector",
    "SpectralWarmupConfig",
    "TrainConfig",
    "Trainer",
    "Warmup",
    "WarmupConfig",
    "WorldModel",
    "load_config",
    "load_model",
    "register_method",
    "register_warmup",
]
