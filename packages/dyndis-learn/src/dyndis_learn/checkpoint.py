"""Checkpoints: one safetensors file holding every tensor, with the JSON state in its header.

A checkpoint holds the model's parameters, the optimiser's moment estimates, torch's RNG state (all as
tensors) and, in the safetensors metadata under the key ``"dyndis_learn"``, a JSON document with the
configuration, the step, the optimiser's hyper-parameters and the training history. Nothing is pickled,
and reading never executes code. One file is written to a temporary name in the same folder and moved into
place with ``os.replace``, so a checkpoint on disk is always complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

__all__ = [
    "CHECKPOINT_FORMAT",
    "load_checkpoint",
    "optimizer_state_from_tensors",
    "optimizer_state_to_tensors",
    "save_checkpoint",
    "write_json_atomic",
]

#: Version of the checkpoint layout, stored in every file.
CHECKPOINT_FORMAT = 1
_METADATA_KEY = "dyndis_learn"


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
                tensors[f"optim.{index}.{name}"] = value
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {name: t.detach().contiguous() for name, t in tensors.items()}
    metadata = {_METADATA_KEY: json.dumps({"format": CHECKPOINT_FORMAT, **state})}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(payload, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{str(path)!r} has checkpoint format {state.get('format')!r}; this version reads {CHECKPOINT_FORMAT}."
        )
    return tensors, state
