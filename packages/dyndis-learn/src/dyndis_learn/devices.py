"""Where the model's tensors live: ``TrainConfig.device`` resolved on the machine that trains.

A config names a device as ``"auto"`` (CUDA where it is available, else the CPU), ``"cpu"``, ``"cuda"`` or
``"cuda:N"``. The config checks only that spelling (:data:`DEVICE_PATTERN`), so a config written on a GPU
machine stays valid everywhere; whether the device exists is checked by :func:`resolve_device` when a
trainer is built (or a model loaded). The episodes are NumPy arrays on the CPU: the trainer moves each
step's batch to the device once, and evaluation, report, planner and wrappers encode and decode on the
model's device (:func:`module_device`) and bring the results back to the CPU.
"""

from __future__ import annotations

import re

import torch

__all__ = ["DEVICE_ALLOWED", "DEVICE_PATTERN", "module_device", "resolve_device"]

#: The spellings of a device in a config: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?"
#: :data:`DEVICE_PATTERN` in words, for error messages.
DEVICE_ALLOWED = "'auto', 'cpu', 'cuda' or 'cuda:N' (N a GPU index)"


def resolve_device(spec: str | torch.device, name: str = "TrainConfig.device") -> torch.device:
    """The torch device that ``spec`` names on this machine (``"auto"``: ``cuda`` if available, else ``cpu``).

    Args:
        spec: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or a :class:`torch.device` of those kinds.
        name: How the error names the setting.

    Raises:
        ValueError: For another spelling, or a CUDA device this machine does not have (naming ``name``).
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str) or not _is_spelling(spec):
        raise ValueError(f"{name} must be {DEVICE_ALLOWED}, got {spec!r}.")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            cuda = torch.version.cuda
            built = "without CUDA" if cuda is None else f"with CUDA {cuda}, but no GPU is visible"
            raise ValueError(
                f"{name} is {spec!r}, but CUDA is not available on this machine (torch {torch.__version__} is built "
                f"{built}). Use 'auto' or 'cpu' (a checkpoint trained on a GPU loads elsewhere with device='cpu', "
                "or --device cpu on the command line)."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"{name} is {spec!r}, but this machine has {count} CUDA device(s) (cuda:0 .. cuda:{count - 1})."
            )
    return device


def _is_spelling(spec: str) -> bool:
    return re.fullmatch(DEVICE_PATTERN, spec) is not None


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (the CPU for a module without parameters)."""
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
