"""Device choice and CPU thread policy.

Every public entry point takes ``device="cpu" | "cuda" | "auto"`` and resolves it
here, so a missing GPU always produces the same clear message.

Thread policy (measured, see ``benchmarks/threads.py``): on the 2-core machines this
project targets, a tiny-MLP training step takes ~0.15 ms with one torch thread and
~1.1 ms with two, because OpenMP fork/join costs more than the arithmetic. The
models here are all small, so the library runs torch with one intra-op thread
unless the caller says otherwise.

The native sparse kernels (``backend/csrc``) run on torch's own OpenMP pool and follow
the same count: a layer's ``threads`` is capped by ``torch.get_num_threads()``. With more
than one thread, a compiled MLP re-chooses 1 or N threads per batch size from its own call
times (``backend.thread_guard``), because a choice measured on idle cores does not hold
when another process is busy on the second core (docs/backend.md, "Threads under load").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")
DEFAULT_NUM_THREADS = 1


class DeviceUnavailableError(RuntimeError):
    """Raised when a device was asked for explicitly but this machine lacks it."""


def cuda_available() -> bool:
    """True when torch sees at least one CUDA device."""
    return torch.cuda.is_available()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda[:n]"`` into a ``torch.device``.

    Raises:
        DeviceUnavailableError: ``"cuda"`` was requested but no GPU is present.
        ValueError: the name is not a device this project knows.
    """
    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not cuda_available():
            raise DeviceUnavailableError(
                "CUDA was requested but no CUDA GPU is available on this machine "
                f"(torch {torch.__version__}); use device='cpu' or 'auto'."
            )
        return torch.device(name)
    raise ValueError(f"Unknown device {device!r}; choose one of {', '.join(DEVICE_CHOICES)}.")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op thread count (default: the measured best, 1) and return it.

    ``SPARSITY_VIZ_THREADS`` in the environment overrides the default: a whole number from 1 to the usable CPUs
    (a million made the next OpenMP library fail to load, with a traceback; 0 and -3 passed silently).
    """
    if num_threads is None:
        raw = os.environ.get("SPARSITY_VIZ_THREADS", "").strip()
        if not raw:
            num_threads = DEFAULT_NUM_THREADS
        elif not raw.isdigit() or not 1 <= int(raw) <= usable_cpus():
            raise ValueError(f"SPARSITY_VIZ_THREADS must be a whole number from 1 to {usable_cpus()} (the CPUs this "
                             f"process may use), got {raw[:40]!r}.")
        else:
            num_threads = int(raw)
    num_threads = max(1, int(num_threads))
    if torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)
    return num_threads


@contextlib.contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Temporarily run torch with ``num_threads`` intra-op threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
