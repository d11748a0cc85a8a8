"""Checkpoints: one safetensors file holding every tensor, with the JSON state in its header.

The layout lives here and nowhere else. Tensors: the model's ``state_dict`` under ``model.``, the
optimiser's moment estimates under ``optim.<param>.<name>``, torch's global RNG state as ``rng.torch``
and, for a model on a CUDA device, every CUDA device's RNG state as ``rng.cuda`` (one row per device;
optional: older files and files written on the CPU have none). Tensors are stored and read on the CPU.
The safetensors metadata key ``"dyndis_learn"`` holds a JSON document: the checkpoint ``format``, the
``config`` (:meth:`~dyndis_learn.config.TrainConfig.to_dict`), ``step``, ``train_seconds``, ``history``,
the optimiser's hyper-parameters, ``image_shape``, ``n_actions`` and ``world_size``, the number of
data-parallel ranks that trained (:mod:`dyndis_learn.distributed`; optional, 1 where
absent). Nothing is pickled, and reading never
executes code. A file is written to a temporary name in the same folder and moved into place with
``os.replace`` (:func:`~dyndis_learn.files.atomic_write`), so a checkpoint on disk is always complete.

Format 3 adds integrity digests: the metadata key ``"dyndis_learn.digests"`` holds a JSON document with the
sha256 of the state document's exact text (``"header"``) and of every tensor's bytes (``"tensors"``).
:func:`load_checkpoint` verifies them all and raises :class:`CheckpointError` ("checkpoint corrupted")
naming the header or the first tensor that differs: a flipped bit, a truncated write or a hand edit of the
header (say of the config) is refused rather than silently trained on. The digests guard against accidents,
not against someone who recomputes them. Files of formats 1 and 2 have no digests; they are read as before,
silently (there is nothing to verify, and warning on every read of an old run would be noise).

Format 2 is format 3 without the digests. Format 1 (before the config had sections) differs from format 2
only in its config's layout, which :func:`~dyndis_learn.config.migrate_config` upgrades when the config is
read.

Reading also checks what the digests cannot: that the header has every key (:func:`read_checkpoint`), and,
when a model is restored, that the stored config builds tensors of the stored shapes
(:func:`load_model_state`), naming the config field that disagrees.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from dyndis_learn.files import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "Checkpoint",
    "CheckpointError",
    "load_checkpoint",
    "load_model_state",
    "optimizer_state_from_tensors",
    "optimizer_state_to_tensors",
    "read_checkpoint",
    "save_checkpoint",
    "write_checkpoint",
]

#: Version of the checkpoint layout, stored in every file; :func:`read_checkpoint` reads these.
CHECKPOINT_FORMAT = 3
_READABLE_FORMATS = (1, 2, 3)
_FIRST_DIGEST_FORMAT = 3
_METADATA_KEY = "dyndis_learn"
_DIGEST_KEY = "dyndis_learn.digests"
#: The keys every state document holds (besides ``format``).
_STATE_KEYS = ("config", "step", "train_seconds", "history", "optimizer", "image_shape", "n_actions")

#: File names inside a run folder.
CHECKPOINT_NAME = "checkpoint.safetensors"
CONFIG_NAME = "config.json"

_MODEL_PREFIX = "model."
_OPTIM_PREFIX = "optim."
_RNG_KEY = "rng.torch"
_CUDA_RNG_KEY = "rng.cuda"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: not a checkpoint, corrupted, incomplete, or inconsistent.

    A ``ValueError``, so code that caught the errors of earlier versions still catches it. Its message
    names the file.
    """


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
        world_size: Number of data-parallel ranks that trained the run (1: a single process).
        cuda_rng_state: The CUDA devices' RNG states (one row per device), where the model was on CUDA.
        path: The file it was read from (None if built in memory).
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
    world_size: int = 1
    cuda_rng_state: torch.Tensor | None = None
    path: str | None = None


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
    world_size: int = 1,
) -> Path:
    """Write a training checkpoint (model, optimiser, torch's RNG state, the run's state) atomically.

    Tensors on any device are stored as CPU tensors; a model on CUDA adds the CUDA RNG states.
    """
    optim_tensors, optim_meta = optimizer_state_to_tensors(optimizer)
    tensors = {f"{_MODEL_PREFIX}{k}": v for k, v in model.state_dict().items()}
    tensors.update(optim_tensors)
    tensors[_RNG_KEY] = torch.get_rng_state()
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device.type == "cuda":
        tensors[_CUDA_RNG_KEY] = torch.stack(torch.cuda.get_rng_state_all())
    state = {
        "config": config,
        "step": step,
        "train_seconds": train_seconds,
        "history": history,
        "optimizer": optim_meta,
        "image_shape": list(image_shape),
        "n_actions": n_actions,
        "world_size": world_size,
    }
    return save_checkpoint(path, tensors, state)


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`write_checkpoint` (any readable format).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CheckpointError: If the file is not a dyndis-learn checkpoint, has an unknown format, fails its
            digests, or its header lacks a key or holds a value of the wrong kind.
    """
    tensors, state = load_checkpoint(path)
    where = f"checkpoint {str(path)!r}"
    missing = [key for key in _STATE_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f"{where} is incomplete: its header has no {', '.join(map(repr, missing))} "
            f"(a checkpoint's header holds {', '.join(_STATE_KEYS)})."
        )
    if not isinstance(state["config"], Mapping):
        raise CheckpointError(f"{where}: its header's 'config' must be a mapping, got {state['config']!r}.")
    try:
        return Checkpoint(
            config=dict(state["config"]),
            model_state={k.removeprefix(_MODEL_PREFIX): v for k, v in tensors.items() if k.startswith(_MODEL_PREFIX)},
            image_shape=tuple(int(s) for s in state["image_shape"]),
            n_actions=int(state["n_actions"]),
            step=int(state["step"]),
            train_seconds=float(state["train_seconds"]),
            history=[dict(row) for row in state["history"]],
            optimizer_tensors={k: v for k, v in tensors.items() if k.startswith(_OPTIM_PREFIX)},
            optimizer_meta=dict(state["optimizer"]),
            rng_state=tensors.get(_RNG_KEY),
            world_size=int(state.get("world_size", 1)),
            cuda_rng_state=tensors.get(_CUDA_RNG_KEY),
            path=str(path),
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: its header holds a value of the wrong kind ({exc}).") from exc


def load_model_state(model: torch.nn.Module, checkpoint: Checkpoint, config: Mapping[str, Any]) -> None:
    """Load ``checkpoint``'s model tensors into ``model``, built from the checkpoint's stored config.

    Before loading, every tensor's shape is compared with what the config built; a difference is
    reported with the config field that explains it, where one does.

    Args:
        model: The model built from the checkpoint's config.
        checkpoint: The checkpoint.
        config: The model section of the stored config (``dataclasses.asdict(config.model)``), whose
            fields the error names as ``model.<field>``.

    Raises:
        CheckpointError: If the stored config and the tensors disagree (a tensor's shape, a tensor the
            config builds that the file lacks, or one the file holds that the config does not build).
    """
    expected = model.state_dict()
    stored = checkpoint.model_state
    problems = []  # in the model's order, then the file's extra tensors
    layers = _says(_list_fields(config))
    for name, tensor in expected.items():
        want = tuple(tensor.shape)
        if name not in stored:
            problems.append(f"{layers} builds the tensor {_MODEL_PREFIX}{name}, which the file lacks")
        elif tuple(stored[name].shape) != want:
            have = tuple(stored[name].shape)
            problems.append(
                f"{_says(_fields_explaining(want, have, config))} builds the tensor {_MODEL_PREFIX}{name} with "
                f"shape {want}, but the file's has shape {have}"
            )
    for name in stored:
        if name not in expected:
            problems.append(f"{layers} builds no tensor {_MODEL_PREFIX}{name}, which the file holds")
    if not problems:
        model.load_state_dict(stored)
        return
    where = f"checkpoint {checkpoint.path!r}" if checkpoint.path else "the checkpoint"
    more = f" (and {len(problems) - 1} more difference(s))" if len(problems) > 1 else ""
    raise CheckpointError(
        f"{where}: its config does not match its tensors: {problems[0]}{more}. "
        f"The header's config was probably edited after the model was saved."
    )


def _says(fields: list[str]) -> str:
    """``the stored config (model.x=...)``: the subject of a difference, with the fields that may explain it."""
    return f"the stored config ({' or '.join(fields)})" if fields else "the stored config"


def _fields_explaining(want: tuple[int, ...], have: tuple[int, ...], config: Mapping[str, Any]) -> list[str]:
    """``model.<field>=<value>`` for each integer (or integer list) field whose value is a dimension that differs."""
    differing = {w for w, h in zip(want, have, strict=False) if w != h}
    if len(want) != len(have):
        differing |= set(want)
    found = []
    for key, value in config.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
        if ints and differing & set(ints):
            found.append(f"model.{key}={_shown(value)}")
    return found


def _list_fields(config: Mapping[str, Any]) -> list[str]:
    """``model.<field>=<value>`` for each list field (the ones that set how many layers there are)."""
    return [f"model.{key}={_shown(value)}" for key, value in config.items() if isinstance(value, (list, tuple))]


def _shown(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


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
    """Undo :func:`optimizer_state_to_tensors`; every moment keeps its parameter's memory layout.

    Raises:
        CheckpointError: If the stored state does not fit the optimiser (another number of parameters or
            groups, a moment of another shape than its parameter).
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, Any]] = {}
    try:
        for key, value in tensors.items():
            _, index, name = key.split(".", 2)
            param = params[int(index)]
            if value.dim() > 0 and value.shape != param.shape:
                raise ValueError(f"{key} has shape {tuple(value.shape)}, its parameter {tuple(param.shape)}")
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
    except (ValueError, KeyError, IndexError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"its optimiser state does not fit the model's parameters: {exc}") from exc


def save_checkpoint(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Write tensors and a JSON-able state into one safetensors file with their digests, atomically.

    The file is flushed to the disk (``fsync``) before it replaces ``path``.

    Args:
        path: Destination file (its folder is created if needed).
        tensors: Named tensors (made contiguous on the way out; their layout is restored on loading).
        state: JSON-serialisable document stored in the file's metadata.

    Raises:
        OSError: If the file cannot be written (naming ``path``); ``path`` is left as it was.
    """
    payload = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    header = json.dumps({"format": CHECKPOINT_FORMAT, **state})
    digests = {"header": _sha256(header.encode("utf-8")), "tensors": {n: _tensor_digest(t) for n, t in payload.items()}}
    data = save(payload, metadata={_METADATA_KEY: header, _DIGEST_KEY: json.dumps(digests)})

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _tensor_digest(tensor: torch.Tensor) -> str:
    """sha256 of a CPU tensor's bytes in row-major order (what the file stores)."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return _sha256(flat.view(torch.uint8).numpy().data if flat.numel() else b"")


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`: (tensors on CPU, state document).

    The digests of format 3 are verified (see the module docstring); older formats have none.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CheckpointError: If the file is not a dyndis-learn checkpoint, has an unknown format, or is corrupted
            (a digest that does not match, naming the header or the tensor).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {str(path)!r}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except OSError:
        raise
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors checkpoint: {exc}") from exc
    if _METADATA_KEY not in metadata:
        raise CheckpointError(f"{str(path)!r} is a safetensors file but not a dyndis-learn checkpoint.")
    header = metadata[_METADATA_KEY]
    digests = _digests(path, metadata)
    if digests is not None and digests.get("header") != _sha256(header.encode("utf-8")):
        raise _corrupted(path, "its header (the JSON state: config, step, history, ...) does not match its digest")
    try:
        state = json.loads(header)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint corrupted: {str(path)!r}: its header is not valid JSON ({exc}).") from exc
    if not isinstance(state, dict) or state.get("format") not in _READABLE_FORMATS:
        found = state.get("format") if isinstance(state, dict) else state
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format {found!r}; readable formats: {list(_READABLE_FORMATS)}."
        )
    if state["format"] >= _FIRST_DIGEST_FORMAT:
        if digests is None:
            raise _corrupted(path, f"format {state['format']} stores digests, and this file has none")
        _verify_tensors(path, tensors, digests.get("tensors"))
    return tensors, state


def _digests(path: Path, metadata: Mapping[str, str]) -> dict[str, Any] | None:
    """The digest document, None if the file has none."""
    if _DIGEST_KEY not in metadata:
        return None
    try:
        digests = json.loads(metadata[_DIGEST_KEY])
    except json.JSONDecodeError:
        digests = None
    if not isinstance(digests, dict) or not isinstance(digests.get("tensors"), dict):
        raise _corrupted(path, "its digests are unreadable")
    return digests


def _verify_tensors(path: Path, tensors: Mapping[str, torch.Tensor], digests: Mapping[str, str]) -> None:
    for name, tensor in tensors.items():
        if name not in digests:
            raise _corrupted(path, f"the tensor {name} has no digest (a tensor was added)")
        if digests[name] != _tensor_digest(tensor):
            raise _corrupted(path, f"the tensor {name} does not match its digest")
    lost = [name for name in digests if name not in tensors]
    if lost:
        raise _corrupted(path, f"the tensor(s) {', '.join(lost)} are missing")


def _corrupted(path: Path, what: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint corrupted: {str(path)!r}: {what}; it was damaged or edited after it was written."
    )
