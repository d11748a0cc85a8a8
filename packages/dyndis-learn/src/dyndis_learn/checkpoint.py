"""Checkpoints: one safetensors file holding every tensor, with the JSON state in its header.

The layout lives here and nowhere else. Tensors: the model's ``state_dict`` under ``model.``, the
optimiser's moment estimates under ``optim.<param>.<name>``, torch's global RNG state as ``rng.torch``.
The safetensors metadata key ``"dyndis_learn"`` holds a JSON document: the checkpoint ``format``, the
``config`` (:meth:`~dyndis_learn.config.TrainConfig.to_dict`), ``step``, ``train_seconds``, ``history``,
the optimiser's hyper-parameters, ``image_shape`` and ``n_actions``. Nothing is pickled, and reading never
executes code. A file is written to a temporary name in the same folder and moved into place with
``os.replace`` (:func:`~dyndis_learn.files.atomic_write`), so a checkpoint on disk is always complete.

Format 1 (before the config had sections) differs only in its config's layout, which
:func:`~dyndis_learn.config.migrate_config` upgrades when the config is read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dyndis_learn.files import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "Checkpoint",
    "load_checkpoint",
    "optimizer_state_from_tensors",
    "optimizer_state_to_tensors",
    "read_checkpoint",
    "save_checkpoint",
    "write_checkpoint",
]

#: Version of the checkpoint layout, stored in every file; :func:`read_checkpoint` reads these.
CHECKPOINT_FORMAT = 2
_READABLE_FORMATS = (1, 2)
_METADATA_KEY = "dyndis_learn"

#: File names inside a run folder.
CHECKPOINT_NAME = "checkpoint.safetensors"
CONFIG_NAME = "config.json"

_MODEL_PREFIX = "model."
_OPTIM_PREFIX = "optim."
_RNG_KEY = "rng.torch"


@dataclass
class Checkpoint:
    """Everything a checkpoint holds, in memory.

    Attributes:
        config: The run's configuration as a dict (possibly of an older layout: read it with
            :meth:`~dyndis_learn.config.TrainConfig.from_dict`, which migrates it).
        model_state: The model's ``state_dict``.
        image_shape: (H, W, C) of the observations the model was built for.
        n_actions: Number of actions of the model.
        step: SGD steps taken.
        train_seconds: Wall time spent in SGD steps.
        history: The training log, one dict per logged step.
        optimizer_tensors: The optimiser's tensors (``optim.<param>.<name>``), None in a model-only read.
        optimizer_meta: The optimiser's hyper-parameters and scalar state.
        rng_state: torch's global RNG state when the checkpoint was written.
    """

    config: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    image_shape: tuple[int, ...]
    n_actions: int
    step: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    optimizer_tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    optimizer_meta: dict[str, Any] = field(default_factory=dict)
    rng_state: torch.Tensor | None = None


def write_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    config: dict[str, Any],
    step: int,
    train_seconds: float,
    history: list[dict[str, float]],
    image_shape: tuple[int, ...],
    n_actions: int,
) -> Path:
    """Write a training checkpoint (model, optimiser, torch's RNG state, the run's state) atomically."""
    optim_tensors, optim_meta = optimizer_state_to_tensors(optimizer)
    tensors = {f"{_MODEL_PREFIX}{k}": v for k, v in model.state_dict().items()}
    tensors.update(optim_tensors)
    tensors[_RNG_KEY] = torch.get_rng_state()
    state = {
        "config": config,
        "step": step,
        "train_seconds": train_seconds,
        "history": history,
        "optimizer": optim_meta,
        "image_shape": list(image_shape),
        "n_actions": n_actions,
    }
    return save_checkpoint(path, tensors, state)


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`write_checkpoint` (any readable format).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a dyndis-learn checkpoint, or has an unknown format.
    """
    tensors, state = load_checkpoint(path)
    return Checkpoint(
        config=state["config"],
        model_state={k.removeprefix(_MODEL_PREFIX): v for k, v in tensors.items() if k.startswith(_MODEL_PREFIX)},
        image_shape=tuple(state["image_shape"]),
        n_actions=int(state["n_actions"]),
        step=int(state["step"]),
        train_seconds=float(state["train_seconds"]),
        history=[dict(row) for row in state["history"]],
        optimizer_tensors={k: v for k, v in tensors.items() if k.startswith(_OPTIM_PREFIX)},
        optimizer_meta=state["optimizer"],
        rng_state=tensors.get(_RNG_KEY),
    )


def optimizer_state_to_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser's state dict into tensors (``optim.<param>.<name>``) and JSON-able parts."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIM_PREFIX}{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_state_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Undo :func:`optimizer_state_to_tensors`; every moment keeps its parameter's memory layout."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        param = params[int(index)]
        if value.shape == param.shape:  # moments: same memory format as the parameter (e.g. channels_last)
            value = torch.empty_like(param).copy_(value)
        state.setdefault(int(index), {})[name] = value
    for index, entries in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    groups = [  # JSON turned tuples (Adam's betas) into lists: give them back their type
        {key: tuple(value) if isinstance(current.get(key), tuple) else value for key, value in saved.items()}
        for saved, current in zip(meta["param_groups"], optimizer.param_groups, strict=True)
    ]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Write tensors and a JSON-able state into one safetensors file, atomically.

    Args:
        path: Destination file (its folder is created if needed).
        tensors: Named tensors (made contiguous on the way out; their layout is restored on loading).
        state: JSON-serialisable document stored in the file's metadata.
    """
    payload = {name: t.detach().contiguous() for name, t in tensors.items()}
    metadata = {_METADATA_KEY: json.dumps({"format": CHECKPOINT_FORMAT, **state})}
    return atomic_write(path, lambda tmp: save_file(payload, tmp, metadata=metadata))


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`: (tensors on CPU, state document).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a dyndis-learn checkpoint or has an unknown format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {str(path)!r}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{str(path)!r} is not a readable safetensors checkpoint: {exc}") from exc
    if _METADATA_KEY not in metadata:
        raise ValueError(f"{str(path)!r} is a safetensors file but not a dyndis-learn checkpoint.")
    state = json.loads(metadata[_METADATA_KEY])
    if state.get("format") not in _READABLE_FORMATS:
        raise ValueError(
            f"{str(path)!r} has checkpoint format {state.get('format')!r}; readable formats: {list(_READABLE_FORMATS)}."
        )
    return tensors, state
