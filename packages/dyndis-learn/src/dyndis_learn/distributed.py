"""Data-parallel training: the process group, this process's rank, and what rank 0 computes for every rank.

``torchrun --nproc-per-node N -m dyndis_learn train ...`` starts ``N`` processes (ranks) that each build the
same :class:`~dyndis_learn.trainer.Trainer`; ``dyndis-learn train --nproc N`` starts them itself through
torchrun's launcher (:func:`launch`). A trainer built while a ``torch.distributed`` process group of more
than one rank is up trains data-parallel; without one it is the single-process trainer, unchanged. Under
data parallelism:

- Every rank collects its own episodes: rank ``r``'s data streams (episodes, decoded frames, a warm-up's
  batches) use the seed :func:`rank_seed`, ``seed + r * 2**32``; rank 0's are the single-process run's.
- :class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients (:func:`objective`), so every
  rank takes the same Adam step: the objective is the mean over the ranks of each rank's objective on its
  own batch. Terms that couple the samples of a batch (uniformity's pairwise distances, the spectral
  warm-up's whitening, the consistency's spread) are computed per rank, on the rank's batch: each keeps
  the statistics of the single-process recipe, whose weights were tuned for a batch of that size, and no
  step waits for an all-gather of encodings.
- The warm-up's start (the graph warm-up's exploration and eigenmap) runs on rank 0 only, and its state
  and the model are broadcast (:func:`start_warmup`); the model is broadcast again after the warm-up's end
  (the spectral warm-up's planes fitted to rank 0's batch).
- The logged terms are their mean over the ranks; only rank 0 writes ``config.json``, the log, the
  checkpoints and the report. A checkpoint records how many ranks trained (``world_size``): resuming with
  as many continues exactly; with another number, training continues with a warning
  (:func:`check_resumed_world_size`).

The process group uses gloo for CPU tensors and NCCL for CUDA tensors (where torch has them); under it,
``TrainConfig.device`` ``"cuda"`` or ``"auto"`` means the GPU of the process's local rank
(:func:`local_device`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from dyndis_learn.devices import module_device
from dyndis_learn.methods import Method
from dyndis_learn.model import WorldModel
from dyndis_learn.objective import FrameTargets, LossWeights, TrainBatch
from dyndis_learn.validation import check_int
from dyndis_learn.warmups import Warmup

__all__ = [
    "RANK_SEED_STRIDE",
    "Ranks",
    "barrier",
    "broadcast_module",
    "check_resumed_world_size",
    "launch",
    "launched",
    "local_device",
    "mean_over_ranks",
    "objective",
    "process_group",
    "rank_seed",
    "ranks",
    "start_warmup",
]

#: Rank ``r``'s data streams use the seed ``seed + r * RANK_SEED_STRIDE``: no two ranks of runs with seeds
#: below 2**32 share an episode.
RANK_SEED_STRIDE = 2**32

#: A function of a step's batch, weights and targets giving the loss terms (see :func:`objective`).
Objective = Callable[[TrainBatch, LossWeights, FrameTargets | None], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Ranks:
    """This process's place among the data-parallel processes.

    Attributes:
        rank: Global rank (0 writes the run's files).
        world_size: Number of ranks (1: no data parallelism).
        local_rank: Rank on this machine (which GPU it uses).
        local_world_size: Ranks on this machine.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes logs, checkpoints and the report."""
        return self.rank == 0


def ranks() -> Ranks:
    """This process's ranks from the default ``torch.distributed`` process group (rank 0 of 1 without one).

    The local rank and local world size come from torchrun's ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``
    (without them: every rank on one machine).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    rank, world_size = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    return Ranks(rank, world_size, local_rank, local_world_size)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s data streams in a run seeded with ``seed`` (``seed`` itself on rank 0)."""
    return seed + rank * RANK_SEED_STRIDE


def launched() -> bool:
    """Whether torchrun (or another launcher setting ``WORLD_SIZE``) started this process among several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _backend() -> str:
    """The backends: gloo for CPU tensors, and NCCL for CUDA tensors where torch has CUDA and NCCL."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


@contextlib.contextmanager
def process_group() -> Iterator[Ranks]:
    """Join the launcher's process group for the ``with`` block, when this process is one of several.

    Under torchrun with more than one process (:func:`launched`), the default process group is initialised
    from torchrun's environment (``env://``; gloo for CPU tensors, NCCL for CUDA tensors) and destroyed on
    exit. Otherwise, or when a process group is already up (a script that made its own), nothing changes.

    Yields:
        This process's :class:`Ranks`.
    """
    if not launched() or dist.is_initialized():
        yield ranks()
        return
    dist.init_process_group(backend=_backend())
    try:
        yield ranks()
    finally:
        dist.destroy_process_group()


def local_device(device: torch.device, where: Ranks) -> torch.device:
    """The device this rank trains on: a CUDA device without an index becomes the local rank's GPU.

    Raises:
        ValueError: If several ranks on this machine would share one GPU (``cuda:N`` under data
            parallelism), or there are fewer GPUs than ranks on this machine.
    """
    if device.type != "cuda" or where.world_size == 1:
        return device
    if device.index is not None and where.local_world_size > 1:
        raise ValueError(
            f"TrainConfig.device is {str(device)!r}, but {where.local_world_size} data-parallel ranks run on this "
            "machine and each needs its own GPU: use 'cuda' or 'auto' (rank r then uses cuda:<local rank>)."
        )
    index = where.local_rank if device.index is None else device.index
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(
            f"Data-parallel rank {where.rank} (local rank {where.local_rank}) needs cuda:{index}, but this machine "
            f"has {count} CUDA device(s): start at most {count} processes per machine."
        )
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


class _Objective(torch.nn.Module):
    """The method's loss terms as the ``forward`` of a module, for DistributedDataParallel to wrap."""

    def __init__(self, model: WorldModel, method: Method) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(
        self, batch: TrainBatch, weights: LossWeights, targets: FrameTargets | None
    ) -> dict[str, torch.Tensor]:
        terms = self.method.terms(self.model, batch, weights, targets)
        # Only the loss leaves with its graph: DDP finds the parameters that backward will reach by walking
        # the outputs' graphs, and a term of weight 0 (logged, not trained on) reaches parameters that the
        # loss does not (the angles, through the regulariser, during a warm-up).
        return {name: value if name == "loss" else value.detach() for name, value in terms.items()}


def objective(model: WorldModel, method: Method, where: Ranks) -> Objective:
    """The function giving a step's loss terms: ``method.terms`` on ``model``, under DDP with several ranks.

    With one rank it is ``method.terms(model, ...)`` itself. With several, a
    :class:`~torch.nn.parallel.DistributedDataParallel` around it: the backward pass of its ``"loss"``
    averages the gradients over the ranks (parameters that no rank's loss reaches keep no gradient, as in
    a single process), and its other terms come back detached.
    """
    if where.world_size == 1:
        return functools.partial(method.terms, model)
    device = module_device(model)
    return DistributedDataParallel(
        _Objective(model, method),
        device_ids=[device] if device.type == "cuda" else None,
        find_unused_parameters=True,  # the angles are not in a warm-up's loss
    )


def mean_over_ranks(terms: Mapping[str, torch.Tensor], where: Ranks) -> dict[str, torch.Tensor]:
    """Each (scalar) term's mean over the ranks, detached; the terms themselves with one rank."""
    if where.world_size == 1:
        return dict(terms)
    names = list(terms)
    values = torch.stack([terms[name].detach().float() for name in names])
    dist.all_reduce(values)
    values /= where.world_size
    return dict(zip(names, values, strict=True))


def barrier(where: Ranks) -> None:
    """Wait until every rank gets here (nothing to wait for with one rank)."""
    if where.world_size > 1:
        dist.barrier()


def broadcast_module(module: torch.nn.Module, where: Ranks) -> None:
    """Give every rank rank 0's parameters and buffers (nothing to do with one rank)."""
    if where.world_size == 1:
        return
    with torch.no_grad():
        for tensor in (*module.parameters(), *module.buffers()):
            dist.broadcast(tensor.data, src=0)


def start_warmup(warmup: Warmup, model: WorldModel, step: int, where: Ranks) -> None:
    """Run the warm-up's start hook: on rank 0, then its state and the model broadcast to the others.

    With one rank it is ``warmup.start(model, step)``. With several, rank 0 starts the warm-up and sends
    :meth:`~dyndis_learn.warmups.Warmup.start_state` to the other ranks, which adopt it
    (:meth:`~dyndis_learn.warmups.Warmup.load_start_state`) instead of computing it again; a warm-up
    without such state is started on every rank. Then every rank takes rank 0's model (a start may set
    the angles).
    """
    if where.world_size == 1:
        warmup.start(model, step)
        return
    state = None
    if where.is_main:
        warmup.start(model, step)
        state = warmup.start_state()
    state = _broadcast_tensors(state, where)
    if not where.is_main:
        if state is None:
            warmup.start(model, step)
        else:
            warmup.load_start_state(state, model)
    broadcast_module(model, where)


def _broadcast_tensors(tensors: Mapping[str, torch.Tensor] | None, where: Ranks) -> dict[str, torch.Tensor] | None:
    """Rank 0's named CPU tensors (or None) on every rank: their names, dtypes and shapes as JSON, then each."""
    header = torch.zeros(1, dtype=torch.int64)
    if where.is_main:
        described = None if tensors is None else [[k, str(v.dtype).removeprefix("torch."), list(v.shape)]
                                                  for k, v in tensors.items()]
        text = torch.frombuffer(bytearray(json.dumps(described).encode()), dtype=torch.uint8)
        header[0] = len(text)
    dist.broadcast(header, src=0)
    if not where.is_main:
        text = torch.empty(int(header[0]), dtype=torch.uint8)
    dist.broadcast(text, src=0)
    described = json.loads(bytes(text.tolist()).decode())
    if described is None:
        return None
    received = {}
    for name, dtype, shape in described:
        if where.is_main:
            tensor = tensors[name].detach().cpu().contiguous()
        else:
            tensor = torch.empty(shape, dtype=getattr(torch, dtype))
        dist.broadcast(tensor, src=0)
        received[name] = tensor
    return received


def check_resumed_world_size(trained: int | None, where: Ranks) -> None:
    """Warn (on rank 0) when a run resumes with another number of ranks than its checkpoint was trained with.

    The model, optimiser, step and schedules continue exactly; rank ``r`` keeps its data stream; but each
    step from now averages ``where.world_size`` ranks' batches instead of ``trained``: the run is no longer
    the one an uninterrupted run of ``trained`` ranks would have been.

    Args:
        trained: The checkpoint's number of ranks (None: not resumed, nothing to check).
        where: This process's ranks.
    """
    if trained is None or trained == where.world_size or not where.is_main:
        return
    warnings.warn(
        f"The checkpoint was trained by {trained} data-parallel rank(s) and resumes with {where.world_size}: the "
        f"model, optimiser, step and schedules continue exactly, but from here each SGD step averages the batches "
        f"of {where.world_size} rank(s) instead of {trained}, so the run differs from an uninterrupted "
        f"{trained}-rank run. Resume with {trained} rank(s) to continue it exactly.",
        stacklevel=3,
    )


def launch(nproc: int, args: Sequence[str], module: str = "dyndis_learn") -> int:
    """Run ``python -m <module> <args>`` in ``nproc`` processes on this machine through torchrun's launcher.

    The same as ``torchrun --standalone --nproc-per-node <nproc> -m <module> <args>``
    (:mod:`torch.distributed.run`, a rendezvous on a free local port). Each process prints its own errors.

    Returns:
        0 when every process succeeded, else the exit status of the first that failed (1 for a signal).
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    check_int("nproc", nproc, minimum=1)
    options = torchrun.parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", module, *args])
    try:
        torchrun.run(options)
    except ChildFailedError as exc:
        _, failure = exc.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0
