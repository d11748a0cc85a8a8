"""Where the model's tensors live: ``TrainConfig.device`` resolved on the machine that trains.

A config names a device as ``"auto"`` (CUDA where it is available, else the CPU), ``"cpu"``, ``"cuda"`` or
``"cuda:N"``. The config checks only that spelling (:data:`DEVICE_PATTERN`), so a config written on a GPU
machine stays valid everywhere; whether the device exists is checked by :func:`resolve_device` when a
trainer is built (or a model loaded). The episodes are NumPy arrays on the CPU: the trainer moves each
step's batch to the device once, and evaluation, report, planner and wrappers encode and decode on the
model's device (:func:`module_device`) and bring the results back to the CPU. On the CPU, a trainer keeps the
memory of freed tensors for the next step's (:func:`retain_freed_memory`, ``TrainConfig.retain_cpu_memory``)
and computes with subnormal numbers flushed to zero (:func:`flush_subnormals`). :func:`computes_bf16` says
whether a device computes bfloat16 natively (``TrainConfig.bf16="auto"``); :func:`processor_name` names the
CPU, which reports and benchmarks record (timings, and the rounding of float kernels, differ between CPU types).
"""

from __future__ import annotations

import ctypes
import platform
import re
import sys
from pathlib import Path

import torch

__all__ = [
    "DEVICE_ALLOWED",
    "DEVICE_PATTERN",
    "computes_bf16",
    "flush_subnormals",
    "module_device",
    "processor_name",
    "resolve_device",
    "retain_freed_memory",
]

#: The spellings of a device in a config: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?"
#: :data:`DEVICE_PATTERN` in words, for error messages.
DEVICE_ALLOWED = "'auto', 'cpu', 'cuda' or 'cuda:N' (N a GPU index)"

# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it documents on 64-bit systems.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
_TRIM_THRESHOLD_MAX = 2**31 - 1


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


def computes_bf16(device: torch.device) -> bool:
    """Whether ``device`` is a CPU that computes bfloat16 natively: AVX512-BF16 dot products or AMX tiles.

    A CPU without them emulates bfloat16 about ten times slower than float32 (docs/benchmarks/learn_throughput.md).
    False for CUDA devices: on an H200 the default step took longer under bfloat16 autocast
    (docs/benchmarks/gpu.md). torch exposes the CPU's flags through private helpers
    (``torch.cpu._is_avx512_bf16_supported``, ``torch.cpu._is_amx_tile_supported``); a torch without them counts
    as a CPU without the instructions.
    """
    if device.type != "cpu":
        return False
    flags = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, flag, lambda: False)()) for flag in flags)


def processor_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The CPU's model name, e.g. ``"AMD EPYC 9R14"``, or None where the system does not say.

    Read from the first ``model name`` line of ``cpuinfo`` (Linux on x86; other systems fall back to
    :func:`platform.processor`, which on Linux gives only the architecture or nothing, so that is not used
    there). A missing or unreadable file is no error: the name is a courtesy of reports and benchmarks.
    """
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    if sys.platform.startswith("linux"):
        return None
    return platform.processor() or None


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (the CPU for a module without parameters)."""
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def retain_freed_memory() -> bool:
    """Keep the memory of freed CPU tensors in this process for the next ones (glibc's ``malloc`` only).

    By default glibc gives large freed blocks back to the system: it maps each block above a threshold (128 KiB,
    rising to at most 32 MiB as blocks are freed) and trims the top of its heap. A training step then
    gets fresh pages for its activations and gradients, and the kernel zeroes each on first touch: about
    12,000 page faults (47 MB) a step on the notebook configuration, and 15-20% of its time on one thread.
    This sets glibc's mmap threshold to 32 MiB (the largest it documents) and turns trimming off
    (``mallopt``), so that blocks up to 32 MiB come from the heap and freed ones are reused. Results are
    unchanged; the process keeps the memory of its busiest step. It is process-wide, like
    ``torch.set_num_threads``.

    Returns:
        Whether it applied: False off Linux or with a C library other than glibc (e.g. musl), where nothing
        is changed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it; musl's mallopt ignores these parameters)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_MAX)
    )


def flush_subnormals() -> bool:
    """Compute with subnormal floats (below 1.2e-38 in float32) as zero on the CPU (x86's FTZ and DAZ flags).

    Adam's moments of a parameter whose gradient is zero for a while (a dead unit, an angle bin that no
    frame reads) decay through the subnormal range, where every operation on them takes a slow microcode
    path: the full Cars3D's steps grew half as long again once its learning rate decayed
    (``docs/benchmarks/learn_structure.md``). Flushed, such values count as zero, which changes no result
    that matters (Adam adds ``eps = 1e-8`` to the root of the second moment).

    The flags belong to each thread; torch's worker threads copy them from the thread that starts them, so
    this holds for every thread when it runs before torch's first parallel operation in the process (as in
    ``dyndis-learn train``), else for the calling thread only. Process-wide, like ``torch.set_num_threads``.

    Returns:
        Whether it applied: False on CPUs without the flags (``torch.set_flush_denormal``).
    """
    return bool(torch.set_flush_denormal(True))
