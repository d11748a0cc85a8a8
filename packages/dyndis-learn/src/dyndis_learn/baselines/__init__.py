"""Baseline world models without rotations, registered as methods of the same trainer, checkpoint and report.

- ``"direct"`` (:mod:`~dyndis_learn.baselines.direct`): the direct next-image predictor of Quessard et al.
  (2020), its k-step rollout feeding its own predicted images back;
- ``"forward-vae"`` (:mod:`~dyndis_learn.baselines.forward_vae`): the Forward-VAE of Caselles-Dupré et al.
  (2019), a VAE with a learnt linear map per action;
- ``"lsbd-vae"`` (:mod:`~dyndis_learn.baselines.lsbd_vae`): LSBD-VAE (Tonnaer et al., 2022), a VAE on a
  product of circles told each action's group element.

Their models share the interface of :mod:`~dyndis_learn.baselines.base` that evaluation reads. Train one with
``--model.method NAME --warmup.kind none``.
"""

from dyndis_learn.baselines.base import BaselineMethod, LatentPredictiveModel, PredictiveModel
from dyndis_learn.baselines.direct import DirectMethod, DirectModel
from dyndis_learn.baselines.forward_vae import ForwardVAE, ForwardVAEMethod
from dyndis_learn.baselines.lsbd_vae import LSBDVAE, LSBDVAEMethod

__all__ = [
    "LSBDVAE",
    "BaselineMethod",
    "DirectMethod",
    "DirectModel",
    "ForwardVAE",
    "ForwardVAEMethod",
    "LSBDVAEMethod",
    "LatentPredictiveModel",
    "PredictiveModel",
]
