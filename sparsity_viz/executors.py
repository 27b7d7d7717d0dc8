"""Executors: where the independent points of a sweep run (this process, or local worker processes).

A sweep plans its points, hands them to an executor together with the read-only
objects every point needs (``shared``: the dense model, the dataset, the device,
the evaluator, ...), and assembles what comes back. The contract, for every
executor:

- ``map(fn, points, *, shared, stop)`` yields ``fn(point, shared, stop)`` for
  each point, **as each one finishes** (not necessarily in order), so a caller
  that records results as they arrive loses nothing finished;
- ``shared`` reaches every point, whatever the executor: in worker processes it
  is shipped once per worker (not once per point);
- once ``stop`` is set (a callable returning True, or an object with
  ``is_set()``) no new point starts, pending points are cancelled, and points
  already running get a stop flag of their own to end early (``fn`` then
  returns whatever it means by "not finished", e.g. ``None``).

``fn`` must be a module-level function (worker processes import it by name).
``EXECUTORS`` is the registry (``"serial"``, ``"process"``; a ``"ray"`` executor
that puts ``shared`` in the object store once fits the same protocol).
This module knows nothing about sweeps; ``experiments`` imports it, never the reverse.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol, runtime_checkable

import torch

from .training import is_stopped

PointFn = Callable[[Any, Mapping[str, Any], Any], Any]  # fn(point, shared, stop) -> result


@runtime_checkable
class Executor(Protocol):
    """Runs independent points; see the module docstring for the contract."""

    name: str

    def map(self, fn: PointFn, points: Iterable[Any], *, shared: Mapping[str, Any],
            stop: Any = None) -> Iterator[Any]:
        """Yield ``fn(point, shared, stop)`` for every point, as each finishes; start none once ``stop`` is set."""
        ...


class SerialExecutor:
    """Every point in this process, one after the other, in order."""

    name = "serial"

    def __init__(self, workers: int = 1):
        """``workers`` is accepted so every registry entry is built the same way; serial is always one."""
        self.workers = 1

    def map(self, fn: PointFn, points: Iterable[Any], *, shared: Mapping[str, Any],
            stop: Any = None) -> Iterator[Any]:
        for point in points:
            if is_stopped(stop):
                return
            yield fn(point, shared, stop)


class ProcessExecutor:
    """Points in a pool of local worker processes, one torch thread each.

    ``shared`` goes to each worker once, through the pool's initializer. Every
    entry must be picklable (checked up front, with the offending key named):
    worker processes started with ``spawn`` receive it pickled, and the check
    keeps a sweep that works here working on every platform. So an evaluator
    must be a module-level function or class instance, not a lambda or closure.

    Worth it only where a point is much longer than shipping the model and
    dataset to a worker (fine-tuned or scheduled points); measured in
    ``benchmarks/sweep_speed.py``.
    """

    name = "process"

    def __init__(self, workers: int = 2, start_method: str | None = None, poll_seconds: float = 0.05):
        """
        Args:
            workers: worker processes (at least 1).
            start_method: ``"fork"``, ``"spawn"`` or ``"forkserver"``; default ``fork`` where the
                platform has it and CUDA is not yet initialised in this process, else ``spawn``.
            poll_seconds: how often ``stop`` is checked while waiting for results.
        """
        if workers < 1:
            raise ValueError(f"A process executor needs at least one worker, got {workers}.")
        self.workers = int(workers)
        self.start_method = start_method
        self.poll_seconds = float(poll_seconds)

    def context(self) -> mp.context.BaseContext:
        """The multiprocessing context the pool is started with."""
        if self.start_method is not None:
            return mp.get_context(self.start_method)
        fork_safe = "fork" in mp.get_all_start_methods() and not torch.cuda.is_initialized()
        return mp.get_context("fork" if fork_safe else "spawn")

    def map(self, fn: PointFn, points: Iterable[Any], *, shared: Mapping[str, Any],
            stop: Any = None) -> Iterator[Any]:
        shared = dict(shared)
        check_picklable(shared)
        ctx = self.context()
        worker_stop = ctx.Event()  # the running points' own stop flag, set when ``stop`` is
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(shared, worker_stop)) as pool:
            pending: set[Future] = set()
            try:
                for point in points:
                    if is_stopped(stop):
                        break
                    pending.add(pool.submit(_run_point, fn, point))
                while pending:
                    done, pending = wait(pending, timeout=self.poll_seconds, return_when=FIRST_COMPLETED)
                    for future in done:
                        if not future.cancelled():
                            yield future.result()
                    if is_stopped(stop) and not worker_stop.is_set():
                        worker_stop.set()
                        pending = {f for f in pending if not f.cancel()}  # the running ones end early
            finally:
                worker_stop.set()
                for future in pending:
                    future.cancel()


def check_picklable(shared: Mapping[str, Any]) -> None:
    """Raise a ``TypeError`` naming the first entry of ``shared`` that cannot be sent to a worker process."""
    for key, value in shared.items():
        try:
            pickle.dumps(value)
        except Exception as exc:  # pickle raises several types (PicklingError, AttributeError, TypeError)
            raise TypeError(
                f"The sweep's {key!r} ({type(value).__name__}) cannot be sent to worker processes: {exc}. "
                "Use a module-level function or a picklable object, or run the sweep with executor='serial'."
            ) from exc


EXECUTORS: dict[str, type] = {
    SerialExecutor.name: SerialExecutor,
    ProcessExecutor.name: ProcessExecutor,
}


def get_executor(executor: str | Executor, workers: int = 1) -> Executor:
    """An ``Executor``: a registry name built with ``workers``, or an instance passed through unchanged."""
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise ValueError(f"Unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}.")
        return EXECUTORS[executor](workers=workers)
    if not isinstance(executor, Executor):
        raise TypeError(f"executor must be one of {', '.join(EXECUTORS)} or have a map(fn, points, *, shared, stop) "
                        f"method, not {type(executor).__name__}.")
    return executor


# --- inside a worker process ---------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(shared: dict, stop) -> None:
    torch.set_num_threads(1)
    _WORKER.update(shared=shared, stop=stop)


def _run_point(fn: PointFn, point: Any) -> Any:
    try:
        return fn(point, _WORKER["shared"], _WORKER["stop"])
    except Exception as exc:
        try:  # an exception the parent cannot unpickle would surface there as a bare BrokenProcessPool
            pickle.loads(pickle.dumps(exc))
        except Exception:
            raise RuntimeError(f"{type(exc).__name__} in a worker process: {exc}") from None
        raise
